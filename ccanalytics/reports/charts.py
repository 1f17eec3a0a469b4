"""Standard charts as matplotlib figures: static images that render in notebooks, in the HTML
reports and in e-mail clients. Every function takes plain data (dicts, lists, DataFrames' columns),
returns a ``Figure`` and never reads the database. Labels are Russian: managers read them, and the
numbers of the axes are in Russian format (decimal comma, real minus) through ``rutext``.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from ccanalytics.core import definitions, labels, rutext
from ccanalytics.core.rutext import compact, num, pct

GREEN, YELLOW, RED, BLUE, GREY = "#2e7d32", "#f9a825", "#c62828", "#1565c0", "#9e9e9e"


def score_colour(score: float | None) -> str:
    """The journal's badge colours: green > 0.8, yellow 0.5–0.8, red < 0.5."""
    if score is None:
        return GREY
    return GREEN if score > definitions.GOOD_QUALITY else YELLOW if score >= definitions.LOW_QUALITY else RED


def tick_digits(ticks: Sequence[float]) -> int:
    """Decimals that show every tick exactly, the same for all (0,20 … 1,00; 0,0025 USD)."""
    steps = [abs(b - a) for a, b in itertools.pairwise(ticks) if b != a]
    step = min(steps) if steps else 1.0
    return next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * max(1.0, step)), 6)


def russian_ticks(axis) -> FuncFormatter:
    """A tick formatter for a numeric ``axis`` writing its ticks through ``rutext``: ``0,05``, ``1 200``,
    ``−0,5``, as many decimals as the step between the ticks needs."""

    def text(value: float, _pos: int | None = None) -> str:
        return rutext.num(value, tick_digits(list(axis.get_majorticklocs())))

    return FuncFormatter(text)


class Chart(Figure):
    """A figure that shows itself in Jupyter as an inline PNG image with alt text (no pyplot, no
    backend needed); the same HTML goes into the reports. Numeric axes are written in Russian format
    when it is drawn (a category or date axis keeps its own labels)."""

    def localise(self) -> None:
        """Every numeric axis still on matplotlib's default formatter (decimal point, hyphen for minus)
        writes its ticks through ``rutext`` instead."""
        for ax in self.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if type(axis.get_major_formatter()) is ScalarFormatter:
                    axis.set_major_formatter(russian_ticks(axis))

    def png(self) -> bytes:
        self.localise()
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    def title(self) -> str:
        return " / ".join(ax.get_title() for ax in self.axes if ax.get_title()) or "график"

    def to_html(self) -> str:
        """An inline PNG image whose alt text is the chart's title (displays in e-mail clients too)."""
        data = base64.b64encode(self.png()).decode("ascii")
        return f'<img alt="{html.escape(self.title())}" src="data:image/png;base64,{data}">'

    def _repr_html_(self) -> str:
        return self.to_html()


def _figure(width: float = 8.0, height: float = 3.2) -> tuple[Chart, Axes]:
    fig = Chart(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def calls_by_hour(
    hours: Mapping[int, float], *, compare: Mapping[int, float] | None = None, compare_label: str = "среднее за 7 дней"
) -> Chart:
    """Calls per hour of the day (0–23), optionally against a reference line (e.g. the 7-day mean)."""
    fig, ax = _figure()
    xs = list(range(24))
    ax.bar(xs, [hours.get(h, 0) for h in xs], color=BLUE, label="звонки")
    if compare is not None:
        ax.plot(xs, [compare.get(h, 0) for h in xs], color=RED, marker=".", label=compare_label)
        ax.legend(frameon=False)
    ax.set_xticks(xs[::2])
    ax.set_xlabel("час (Киев)")
    ax.set_ylabel("звонков")
    ax.set_title("Звонки по часам")
    return fig


def shares(
    counts: Mapping[str, float],
    *,
    title: str,
    names: Mapping[str, str] | None = None,
    top: int = 8,
    of: float | None = None,
) -> Chart:
    """Horizontal bars of a breakdown (scenario mix, transfer reasons), largest first, with shares:
    of the bars' sum, or of ``of`` (e.g. every call of the period) when given."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    if len(items) > top:
        rest = sum(v for _, v in items[top - 1 :])
        items = [*items[: top - 1], ("другое", rest)]
    total = of or sum(v for _, v in items) or 1
    fig, ax = _figure(8.0, 0.45 * max(len(items), 2) + 1.0)
    ticks = [labels.label(names or {}, k) for k, _ in items][::-1]
    values = [v for _, v in items][::-1]
    ax.barh(ticks, values, color=BLUE)
    for y, v in enumerate(values):
        ax.text(v, y, f" {compact(v, 4)} ({pct(100 * v / total, 0)})", va="center", fontsize=8)
    ax.set_title(title)
    ax.margins(x=0.2)
    return fig


def quality_per_criterion(
    criteria: Mapping[str, float | None], *, compare: Mapping[str, float | None] | None = None
) -> Chart:
    """Average score per quality criterion, coloured like the journal's badges."""
    keys = list(criteria)
    fig, ax = _figure(8.0, 0.4 * len(keys) + 1.2)
    names = [labels.criterion(k) for k in keys][::-1]
    values = [0.0 if v is None else v for v in criteria.values()][::-1]
    ax.barh(names, values, color=[score_colour(criteria[k]) for k in keys][::-1])
    if compare:
        ax.scatter(
            [compare.get(k) or 0 for k in keys][::-1],
            names,
            color="black",
            marker="|",
            s=200,
            zorder=3,
            label="за 7 дней",
        )
        ax.legend(frameon=False, loc="lower right")
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color=GREY, linewidth=0.8, linestyle=":")
    ax.axvline(0.8, color=GREY, linewidth=0.8, linestyle=":")
    ax.set_title("Качество по критериям (0–1)")
    return fig


def latency_vs_budget(rows: Sequence[Mapping[str, Any]]) -> Chart:
    """p50 and p95 per component against its p95 budget and alert threshold.

    ``rows``: dicts with ``component``, ``p50_ms``, ``p95_ms``, ``budget_ms``, ``alert_ms``."""
    fig, ax = _figure(8.0, 3.0)
    names = [str(r["component"]) for r in rows]
    xs = range(len(rows))
    p50 = [float(r["p50_ms"] or 0) for r in rows]
    p95 = [float(r["p95_ms"] or 0) for r in rows]
    colours = [
        RED if v > float(r["alert_ms"]) else YELLOW if v > float(r["budget_ms"]) else GREEN
        for v, r in zip(p95, rows, strict=True)
    ]
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, color=GREY, label="p50")
    ax.bar([x + 0.2 for x in xs], p95, width=0.4, color=colours, label="p95")
    for x, r in zip(xs, rows, strict=True):
        ax.hlines(float(r["budget_ms"]), x - 0.45, x + 0.45, colors="black", linestyles="--", linewidth=1)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("мс")
    ax.set_title("Задержки: p50 / p95 против бюджета (пунктир)")
    ax.legend(frameon=False)
    return fig


def latency_distribution(values_ms: Sequence[float], *, budget_ms: float, title: str) -> Chart:
    """Histogram of latencies with the budget line and the share over it."""
    fig, ax = _figure()
    data = [v for v in values_ms if v is not None]
    if data:
        top = max(data)
        ax.hist(data, bins=40, range=(0, max(top, budget_ms * 1.2)), color=BLUE)
        over = sum(1 for v in data if v > budget_ms) / len(data)
        ax.set_title(f"{title}: {100 * over:.1f}% выше бюджета {budget_ms:g} мс")
    else:
        ax.set_title(f"{title}: нет данных")
    ax.axvline(budget_ms, color=RED, linestyle="--")
    ax.set_xlabel("мс")
    return fig


def trend(
    days: Sequence[date],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str = "",
    ylim: tuple[float, float] | None = None,
) -> Chart:
    """Lines over days (quality trend, cost per call trend, calls per day); gaps stay gaps."""
    fig, ax = _figure()
    colours = [BLUE, RED, GREEN, YELLOW, GREY]
    for i, (name, values) in enumerate(series.items()):
        ax.plot(
            list(days),  # type: ignore[arg-type]  # matplotlib's ArrayLike omits dates, which its unit converters plot
            [float("nan") if v is None else v for v in values],
            marker=".",
            color=colours[i % len(colours)],
            label=name,
        )
    if len(series) > 1:
        ax.legend(frameon=False)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.autofmt_xdate()
    return fig


def stacked_days(
    days: Sequence[date],
    parts: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "",
    names: Mapping[str, str] | None = None,
) -> Chart:
    """Stacked bars per day (scenario mix over time, cost components per call over time)."""
    fig, ax = _figure()
    bottom = [0.0] * len(days)
    colours = [BLUE, GREEN, YELLOW, RED, GREY, "#6a1b9a", "#00838f", "#ef6c00"]
    for i, (name, values) in enumerate(parts.items()):
        vals = [float(v or 0) for v in values]
        ax.bar(
            list(days),  # type: ignore[arg-type]  # matplotlib's ArrayLike omits dates, which its unit converters plot
            vals,
            bottom=bottom,
            color=colours[i % len(colours)],
            label=labels.label(names or {}, name),
        )
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.legend(frameon=False, fontsize=7, ncols=3)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.autofmt_xdate()
    return fig


def bars(
    categories: Sequence[str],
    parts: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "",
) -> Chart:
    """Stacked bars over named categories (the days of a week as «23.11 пн»), one colour per part."""
    fig, ax = _figure()
    bottom = [0.0] * len(categories)
    colours = [BLUE, RED, GREEN, YELLOW, GREY]
    xs = list(range(len(categories)))
    for i, (name, values) in enumerate(parts.items()):
        vals = [float(v or 0) for v in values]
        ax.bar(xs, vals, bottom=bottom, color=colours[i % len(colours)], label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(xs, list(categories))
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return fig


def turn_latency(turns: Sequence[Mapping[str, Any]], *, max_ticks: int = 30) -> Chart:
    """One call's latency per turn as stacked bars: STT (customer turns), LLM first token and TTS
    (bot turns). ``turns``: dicts with ``turn_number``, ``stt_latency_ms``, ``llm_latency_ms`` and
    ``tts_latency_ms`` (missing or None counts as 0)."""
    fig, ax = _figure(8.0, 2.6)
    xs = list(range(len(turns)))
    bottom = [0.0] * len(turns)
    for key, colour in (("stt", BLUE), ("llm", YELLOW), ("tts", GREEN)):
        values = [float(t.get(f"{key}_latency_ms") or 0) for t in turns]
        ax.bar(xs, values, bottom=bottom, color=colour, label=labels.COMPONENTS[key])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, -(-len(turns) // max_ticks))
    ax.set_xticks(xs[::step], [f"T{t['turn_number']}" for t in turns][::step], fontsize=7)
    ax.set_ylim(0, 1.3 * max(bottom, default=0) or 1)  # room for the legend above the bars
    ax.set_ylabel("мс")
    ax.set_title("Задержки по репликам: STT / LLM / TTS")
    ax.legend(frameon=False, fontsize=7, ncols=3, loc="upper left")
    return fig


def signed_bars(values: Mapping[str, float], *, title: str, xlabel: str = "", digits: int = 4) -> Chart:
    """Horizontal bars that may be negative (a lever's saving: a negative one costs money), each
    labelled with its value in Russian format; green for positive, red for negative."""
    items = list(values.items())[::-1]
    fig, ax = _figure(8.0, 0.45 * max(len(items), 2) + 1.0)
    vals = [float(v) for _, v in items]
    ax.barh([k for k, _ in items], vals, color=[GREEN if v >= 0 else RED for v in vals])
    ax.axvline(0, color="black", linewidth=0.8)
    for y, v in enumerate(vals):
        ax.text(v, y, f" {num(v, digits)} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.xaxis.set_major_formatter(lambda x, _pos: num(x, digits))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.25)
    return fig
