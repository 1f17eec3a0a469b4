"""Charts of the admin pages as inline SVG, drawn from the data in plain Python.

A matplotlib PNG costs 100–250 ms of CPU per chart (measured on the call page); these cost about a
millisecond, stay sharp at any zoom, scale to the page's width, and say each value on hover
(``<title>`` of a bar or a point) and to screen readers (``role="img"`` with a title and a summary).
They are markup only — no script, no ``style`` attribute — so the pages' Content-Security-Policy
holds (webapp/security.py). Every text is escaped: nothing from the data can become markup.

Notebooks, reports and e-mails keep the matplotlib charts (ccanalytics.reports.charts): e-mail clients do
not show SVG. Colours and titles are the same as there. Labels are Russian, numbers in Russian format.
The A/B readout's interval charts are SVG everywhere (the admin's A/B page, the readout notebook and
its HTML report, which is opened in a browser).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

from ccanalytics.core import labels, rutext
from ccanalytics.reports.charts import BLUE, GREEN, GREY, RED, YELLOW

WIDTH = 800
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
AXIS, GRID, TEXT = "#757575", "#e0e0e0", "#212121"
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_BOTTOM = 64, 16, 28
TOP = 48  # the title and the legend above the plot


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 × 10ⁿ) up to at least ``top``: the y axis's labels."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _num(value: float) -> str:
    digits = 0 if float(value).is_integer() else min(3, max(1, -math.floor(math.log10(abs(value))) + 1))
    return rutext.num(value, digits)


def _tick_digits(ticks: Sequence[float]) -> int:
    """Decimals that show every tick exactly, the same for all (0,20 … 1,00; 0,04 USD)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return next((d for d in range(6) if abs(round(step, d) - step) < 1e-9), 6)


class _Plot:
    """The frame of one chart: the plot area, its y scale, and the SVG pieces drawn so far."""

    def __init__(self, title: str, summary: str, *, height: int, y_ticks: list[float], unit: str = "") -> None:
        self.height = height
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = TOP, height - MARGIN_BOTTOM
        self.y_min, self.y_max = y_ticks[0], y_ticks[-1]
        self.title, self.summary = title, summary
        self.parts: list[str] = []
        digits = _tick_digits(y_ticks)
        for tick in y_ticks:
            y = self.y(tick)
            self.parts.append(f'<line x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
            label = escape(rutext.num(tick, digits) + (f" {unit}" if unit and tick == y_ticks[-1] else ""))
            self.parts.append(
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{AXIS}">'
                f"{label}</text>"
            )
        self.parts.append(
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="{AXIS}"/>'
        )

    def y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        clipped = min(max(value, self.y_min), self.y_max)
        return self.bottom - (clipped - self.y_min) / span * (self.bottom - self.top)

    def x_label(self, x: float, text: str) -> None:
        self.parts.append(
            f'<text x="{x:.1f}" y="{self.bottom + 16}" text-anchor="middle" font-size="11" fill="{AXIS}">'
            f"{escape(text)}</text>"
        )

    def legend(self, items: Sequence[tuple[str, str]]) -> None:
        x = self.left
        for colour, name in items:
            self.parts.append(f'<rect x="{x}" y="28" width="10" height="10" fill="{colour}"/>')
            self.parts.append(f'<text x="{x + 14}" y="37" font-size="11" fill="{TEXT}">{escape(name)}</text>')
            x += 24 + 7 * len(name)

    def svg(self) -> str:
        return (
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {self.height}" '
            f'width="100%" role="img" aria-label="{escape(self.title)}" {FONT}>'
            f"<title>{escape(self.title)}</title><desc>{escape(self.summary)}</desc>"
            f'<text x="{self.left}" y="16" font-size="13" font-weight="600" fill="{TEXT}">{escape(self.title)}</text>'
            + "".join(self.parts)
            + "</svg>"
        )


LATENCY_PARTS = (("stt", BLUE), ("llm", YELLOW), ("tts", GREEN))


def turn_latency(turns: Sequence[Mapping[str, object]], *, max_ticks: int = 30) -> str:
    """One call's latency per turn as stacked bars: STT (customer turns), LLM first token and TTS
    (bot turns), like ccanalytics.reports.charts.turn_latency. ``turns``: dicts with ``turn_number``,
    ``stt_latency_ms``, ``llm_latency_ms``, ``tts_latency_ms`` (missing or None counts as 0)."""
    title = "Задержки по репликам: STT / LLM / TTS"
    values = [[float(t.get(f"{key}_latency_ms") or 0) for key, _ in LATENCY_PARTS] for t in turns]  # type: ignore[arg-type]
    totals = [sum(v) for v in values]
    slowest = max(range(len(turns)), key=lambda i: totals[i], default=None)
    summary = (
        f"{rutext.plural(len(turns), 'реплика', 'реплики', 'реплик')}; "
        + (
            f"дольше всех T{turns[slowest]['turn_number']}: {rutext.num(totals[slowest])} мс"
            if slowest is not None and totals[slowest] > 0
            else "задержки не записаны"
        )
        + "."
    )
    plot = _Plot(title, summary, height=260, y_ticks=nice_ticks(max(totals, default=0)), unit="мс")
    plot.legend([(colour, labels.COMPONENTS[key]) for key, colour in LATENCY_PARTS])
    n = max(len(turns), 1)
    slot = (plot.right - plot.left) / n
    bar = max(1.0, slot * 0.7)
    step = max(1, -(-len(turns) // max_ticks))
    for i, (turn, parts) in enumerate(zip(turns, values, strict=True)):
        x = plot.left + i * slot + (slot - bar) / 2
        spoken = ", ".join(
            f"{labels.COMPONENTS[key]} {rutext.num(v)} мс"
            for (key, _), v in zip(LATENCY_PARTS, parts, strict=True)
            if v
        )
        tip = f"T{turn['turn_number']}: " + (spoken or "нет данных")
        rects, base = [], 0.0
        for (_, colour), v in zip(LATENCY_PARTS, parts, strict=True):
            if v <= 0:
                continue
            y0, y1 = plot.y(base + v), plot.y(base)
            rects.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar:.1f}" height="{max(y1 - y0, 0.5):.1f}" fill="{colour}"/>'
            )
            base += v
        # the whole column answers the hover, so even a short bar is easy to point at
        rects.append(
            f'<rect x="{plot.left + i * slot:.1f}" y="{plot.top}" width="{slot:.1f}" '
            f'height="{plot.bottom - plot.top}" fill="transparent"/>'
        )
        plot.parts.append(f"<g><title>{escape(tip)}</title>{''.join(rects)}</g>")
        if i % step == 0:
            plot.x_label(plot.left + (i + 0.5) * slot, f"T{turn['turn_number']}")
    return plot.svg()


SERIES_COLOURS = (BLUE, RED, GREEN, YELLOW, GREY)


def trend(
    days: Sequence[date],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str = "",
    ylim: tuple[float, float] | None = None,
    max_labels: int = 10,
) -> str:
    """Lines over days with a point per day (hover: the day and the value); a missing value is a gap.
    Like ccanalytics.reports.charts.trend. ``unit`` follows the top label of the y axis and each value."""
    series = {name: [None if v is None else float(v) for v in values] for name, values in series.items()}
    present = [v for values in series.values() for v in values if v is not None]
    if ylim is not None:
        ticks = [ylim[0] + (ylim[1] - ylim[0]) * i / 5 for i in range(6)]
    else:
        ticks = nice_ticks(max(present, default=0))
    summary = (
        "; ".join(
            f"{name}: {sum(v is not None for v in values)} дн., последнее значение "
            + next((_num(v) for v in reversed(values) if v is not None), "—")
            for name, values in series.items()
        )
        + f"; {days[0].strftime('%d.%m.%Y')} — {days[-1].strftime('%d.%m.%Y')}."
        if days
        else "нет данных."
    )
    plot = _Plot(title, summary, height=240, y_ticks=ticks, unit=unit)
    if len(series) > 1:
        plot.legend([(SERIES_COLOURS[i % len(SERIES_COLOURS)], name) for i, name in enumerate(series)])
    n = max(len(days), 1)
    slot = (plot.right - plot.left) / n
    xs = [plot.left + (i + 0.5) * slot for i in range(len(days))]
    suffix = f" {unit}" if unit else ""
    for s, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
        run: list[str] = []
        for i, v in enumerate([*values, None]):  # the None ends the last run
            if v is not None and i < len(days):
                run.append(f"{xs[i]:.1f},{plot.y(v):.1f}")
                continue
            if len(run) > 1:
                plot.parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
            run = []
        for i, v in enumerate(values[: len(days)]):
            if v is None:
                continue
            tip = f"{days[i].strftime('%d.%m.%Y')}: {name} {_num(v)}{suffix}"
            plot.parts.append(
                f'<circle cx="{xs[i]:.1f}" cy="{plot.y(v):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    step = max(1, -(-len(days) // max_labels))
    for i, day in enumerate(days):
        if i % step == 0:
            plot.x_label(xs[i], day.strftime("%d.%m"))
    return plot.svg()


def range_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round steps (1, 2, 2.5 or 5 × 10ⁿ) from just under ``low`` to just over ``high``: the value axis
    of a chart whose values sit far from 0 (a quality score of 0,80…0,86)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high - low <= 0:
        pad = abs(high) * 0.05 or 0.5
        low, high = low - pad, high + pad
    raw = (high - low) / count * (1 - 1e-9)  # 0,2 / 4 is a step of 0,05, not 0,1
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def variants_with_ci(rows: Sequence[Mapping[str, object]], *, title: str, unit: str = "", digits: int = 3) -> str:
    """A/B: one point per variant with its confidence interval (``variant``, ``value``, ``low``,
    ``high``): variants side by side, the interval a vertical line with caps, the value a labelled
    point; hover and screen readers get «A: 0,812 (95 % ДИ 0,790…0,834)». ``unit`` follows each value
    (e.g. ``%``), ``digits`` is its decimals."""
    items = [
        (str(r["variant"]), float(r["value"]), float(r["low"]), float(r["high"]))  # type: ignore[arg-type]
        for r in rows
    ]
    suffix = f" {unit}" if unit else ""

    def words(name: str, value: float, low: float, high: float) -> str:
        fmt = lambda v: rutext.num(v, digits)
        return f"{name}: {fmt(value)}{suffix} (95 % ДИ {fmt(low)}…{fmt(high)}{suffix})"

    summary = "; ".join(words(*item) for item in items) + "." if items else "нет данных."
    ticks = range_ticks(min((lo for *_, lo, _ in items), default=0.0), max((hi for *_, hi in items), default=1.0))
    plot = _Plot(title, summary, height=220, y_ticks=ticks, unit=unit)
    slot = (plot.right - plot.left) / max(len(items), 1)
    for i, (name, value, low, high) in enumerate(items):
        x = plot.left + (i + 0.5) * slot
        y_low, y_high, y_value = plot.y(low), plot.y(high), plot.y(value)
        shapes = (
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_high:.1f}" y2="{y_low:.1f}" stroke="{BLUE}" stroke-width="2"/>'
            + "".join(
                f'<line x1="{x - 8:.1f}" x2="{x + 8:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{BLUE}" stroke-width="2"/>'
                for y in (y_high, y_low)
            )
            + f'<circle cx="{x:.1f}" cy="{y_value:.1f}" r="5" fill="{BLUE}"/>'
            + f'<text x="{x + 12:.1f}" y="{y_value + 4:.1f}" font-size="11" fill="{TEXT}">'
            f"{escape(rutext.num(value, digits) + suffix)}</text>"
            # the whole column answers the hover
             + f'<rect x="{x - slot / 2:.1f}" y="{plot.top}" width="{slot:.1f}" height="{plot.bottom - plot.top}" '
            'fill="transparent"/>'
        )
        plot.parts.append(f'<g class="variant"><title>{escape(words(name, value, low, high))}</title>{shapes}</g>')
        plot.x_label(x, name)
    return plot.svg()
