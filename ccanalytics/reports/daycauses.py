"""The causes of the story of a day, found in the day's breakdowns against its normal days."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import time
from statistics import median

from ccanalytics.core.rutext import count, num, pct, signed, usd
from ccanalytics.reports.storymodel import (
    FIGURES,
    MIN_COUNT_CHANGE,
    Cause,
    DayFacts,
    ToolFailure,
    error_label,
    normal_value,
    tool_label,
)

TOOL_INCIDENT_MIN_CALLS = 5  # a tool error is an incident from this many calls hit …
TOOL_INCIDENT_FACTOR = 3.0  # … and this many times the normal day's (plus one)
SLOW_TOOL_MS = 1000.0  # failing tool calls this slow on average hold up the replies too
VERSION_SHIFT_PCT = 20.0  # a prompt version whose share of the calls moved this much (points) is news


def _calls(n: int) -> str:
    return count(n, "звонок", "звонка", "звонков")


def _hm(t: time | None) -> str:
    return t.strftime("%H:%M") if t is not None else "—"


def tool_incidents(day: DayFacts, normal_days: Sequence[DayFacts]) -> list[Cause]:
    """Errors of tools far above a normal day: grouped by the error, the tools it hit, when."""
    by_error: dict[tuple[str, int | None], list[ToolFailure]] = {}
    for f in day.tool_failures:
        by_error.setdefault((f.error, f.status), []).append(f)
    out = []
    for (error, status), fails in by_error.items():
        hit = sum(f.calls for f in fails)  # a call failing on two tools counts twice: an upper bound
        normal = median([sum(f.calls for f in d.tool_failures if f.error == error) for d in normal_days] or [0])
        if hit < TOOL_INCIDENT_MIN_CALLS or hit < TOOL_INCIDENT_FACTOR * (normal + 1):
            continue
        fails.sort(key=lambda f: (-f.calls, f.tool))
        transferred = sum(f.transferred for f in fails)
        firsts = [f.first for f in fails if f.first is not None]
        lasts = [f.last for f in fails if f.last is not None]
        span = f" с {_hm(min(firsts))} до {_hm(max(lasts))}" if firsts and lasts else ""
        tools = ", ".join(f"«{tool_label(f.tool)}» ({num(f.calls)})" for f in fails[:4])
        scenarios: dict[str, int] = {}
        for f in fails:
            for s, n in f.scenarios.items():
                scenarios[s] = scenarios.get(s, 0) + n
        top = max(scenarios, key=lambda s: (scenarios[s], s)) if scenarios else None
        reasons = day.transfer_reasons
        size = (
            f"{_calls(hit)} наткнулись на сбой ({pct(100 * hit / day.calls, 0)} звонков дня), "
            f"{num(transferred)} из них переведены на оператора"
        )
        if reasons.get("cannot_help"):
            size += f"; за день «бот не смог помочь» — {num(reasons['cannot_help'])}"
        filters = {"transferred": "yes"}
        if top is not None:
            filters["scenario"] = top
        # fewer calls resolved: each resolved one costs more (a cost per call that fell with them is judge_tile's)
        explains = {"transferred_pct", "orders", "fittings", "quality", "cost_per_resolved"}
        waited = [f.duration_ms * f.calls for f in fails if f.duration_ms is not None]
        if waited and sum(waited) / hit >= SLOW_TOOL_MS:
            explains.add("response_p95_ms")  # the bot waited on the failing service before each answer
        out.append(
            Cause(
                kind="tool",
                text=f"инструменты {tools} отвечали ошибкой «{error_label(error, status)}»{span}",
                size=size,
                action=(
                    "сообщить команде Store API, выяснить причину сбоя и убедиться, что сервис работает; "
                    "переведённым клиентам перезвонить, если заказ не оформлен"
                ),
                explains=frozenset(explains),
                moves={"transferred_pct": 1, "orders": -1, "fittings": -1, "quality": -1, "cost_per_resolved": 1},
                strength=transferred / max(day.transferred, 1),
                calls=hit,
                filters=filters,
                examples=tuple(x for f in fails for x in f.examples)[:3],
            )
        )
    out.sort(key=lambda c: -c.calls)
    return out


def _expected_transfers(scenario: str, calls: int, normal_days: Sequence[DayFacts]) -> float:
    """The transfers a normal day would have had for ``calls`` calls of the scenario."""
    n = sum(d.scenarios[scenario].calls for d in normal_days if scenario in d.scenarios)
    t = sum(d.scenarios[scenario].transferred for d in normal_days if scenario in d.scenarios)
    return calls * t / n if n else 0.0


def scenario_transfers(
    day: DayFacts, normal_days: Sequence[DayFacts], labels: Mapping[str, str], reasons: Mapping[str, str]
) -> list[Cause]:
    """The scenario holding most of the day's extra transfers (against the normal rate of each)."""
    excess = {s: g.transferred - _expected_transfers(s, g.calls, normal_days) for s, g in day.scenarios.items()}
    total = sum(v for v in excess.values() if v > 0)
    if total < MIN_COUNT_CHANGE:
        return []
    top = max(excess, key=lambda s: (excess[s], s))
    g = day.scenarios[top]
    rate = 100 * g.transferred / g.calls if g.calls else None
    n = sum(d.scenarios[top].calls for d in normal_days if top in d.scenarios)
    t = sum(d.scenarios[top].transferred for d in normal_days if top in d.scenarios)
    usual = pct(100 * t / n, 0) if n else "—"
    reason = max(day.transfer_reasons, key=lambda r: (day.transfer_reasons[r], r)) if day.transfer_reasons else None
    why = f"; чаще всего — «{reasons.get(reason, 'причина не указана')}»" if reason else ""
    return [
        Cause(
            kind="scenario",
            text=(
                f"сценарий «{labels.get(top, 'прочее')}»: переведено {pct(rate, 0)} звонков против обычных {usual}{why}"
            ),
            size=f"лишних переводов около {num(excess[top])} из {num(total)}",
            action="прочитать переведённые звонки сценария и разобрать их в отчёте о проблемных звонках",
            explains=frozenset({"transferred_pct"}),
            moves={"transferred_pct": 1},
            strength=excess[top] / total,
            calls=g.transferred,
            filters={"scenario": top, "transferred": "yes"},
        )
    ]


def _ranges(hours: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for h in sorted(hours):
        if out and h == out[-1][1] + 1:
            out[-1] = (out[-1][0], h)
        else:
            out.append((h, h))
    return out


def slow_hours(day: DayFacts, normal_days: Sequence[DayFacts], budget_ms: float) -> list[Cause]:
    """The hours whose reply p95 was over the budget and well above a normal day's."""
    normal = normal_value(normal_days, "response_p95_ms") or budget_ms
    slow = [
        h
        for h, g in day.hours.items()
        if g.response_p95_ms is not None and g.response_p95_ms > max(budget_ms, 1.3 * normal) and g.calls
    ]
    spans = _ranges(slow)
    if not slow or len(spans) > 2:  # slow all day long: not a matter of hours
        return []
    text = ", ".join(f"с {a:02d}:00 до {b + 1:02d}:00" for a, b in spans)
    calls = sum(day.hours[h].calls for h in slow)
    worst = max(day.hours[h].response_p95_ms or 0 for h in slow)
    return [
        Cause(
            kind="hours",
            text=f"медленные ответы {text} (p95 до {num(worst, 0)} мс при бюджете {num(budget_ms, 0)} мс)",
            size=f"{_calls(calls)} в эти часы",
            action="проверить задержку LLM и TTS в эти часы (панель задержек) и нагрузку у провайдера",
            explains=frozenset({"response_p95_ms"}),
            moves={"response_p95_ms": 1},
            strength=calls / max(day.calls, 1),
            calls=calls,
        )
    ]


def prompt_versions(day: DayFacts, normal_days: Sequence[DayFacts]) -> list[Cause]:
    """A prompt version whose calls scored clearly lower than on its normal days (a version new today:
    lower than the day's other calls)."""
    quality = {v: g.quality for v, g in day.prompt_versions.items() if g.quality is not None and g.calls}
    scored = {v: day.prompt_versions[v] for v in quality}
    drops: dict[str, tuple[float, str]] = {}
    for v, q in quality.items():
        history = [d.prompt_versions[v].quality for d in normal_days if v in d.prompt_versions]
        usual = [x for x in history if x is not None]
        if usual:
            ref = float(median(usual))
            drops[v] = (ref - q, f"против обычных {num(ref, 2)} на этой версии")
        elif len(scored) > 1:  # new today: against the others
            rest = [(quality[k], x.calls) for k, x in scored.items() if k != v]
            ref = sum(r * n for r, n in rest) / sum(n for _, n in rest)
            drops[v] = (ref - q, f"против {num(ref, 2)} у остальных (версия новая)")
    if not drops:
        return []
    worst = max(drops, key=lambda v: (drops[v][0], v))
    drop, against = drops[worst]
    if drop < FIGURES["quality"][3]:
        return []
    g = scored[worst]
    return [
        Cause(
            kind="prompt_version",
            text=f"версия промпта «{worst}»: качество {num(g.quality, 2)} {against}",
            size=f"{_calls(g.calls)} на этой версии",
            action="сравнить версии в A/B-отчёте и при необходимости вернуть прежнюю версию",
            explains=frozenset({"quality"}),
            moves={"quality": -1},
            strength=g.calls / max(day.calls, 1),
            calls=g.calls,
            filters={"prompt_version": worst},
        )
    ]


def version_shift(day: DayFacts, normal_days: Sequence[DayFacts]) -> list[Cause]:
    """A prompt version that took a much larger share of the calls than on a normal day and
    transfers at another rate than the rest (a new version, an A/B test started)."""
    if len(day.prompt_versions) < 1 or not day.calls:
        return []
    normal_calls = sum(d.calls for d in normal_days) or 1
    shifts = {}
    for v, g in day.prompt_versions.items():
        usual = sum(d.prompt_versions[v].calls for d in normal_days if v in d.prompt_versions)
        shifts[v] = 100 * g.calls / day.calls - 100 * usual / normal_calls
    top = max(shifts, key=lambda v: (shifts[v], v))
    g = day.prompt_versions[top]
    rest = [x for v, x in day.prompt_versions.items() if v != top]
    rest_calls = sum(x.calls for x in rest)
    if shifts[top] < VERSION_SHIFT_PCT or not g.calls:
        return []
    rate = 100 * g.transferred / g.calls
    others_rate = 100 * sum(x.transferred for x in rest) / rest_calls if rest_calls else rate
    others = f" против {pct(others_rate, 0)} у остальных" if rest_calls else ""
    share = 100 * g.calls / day.calls
    return [
        Cause(
            kind="prompt_version",
            text=(
                f"версия промпта «{top}» ведёт {pct(share, 0)} звонков (обычно {pct(share - shifts[top], 0)}): "
                f"переводов на ней {pct(rate, 0)}{others}"
            ),
            size=f"{_calls(g.calls)} на этой версии",
            action="посмотреть отчёт по A/B-тесту версий и решить, какую оставить",
            explains=frozenset({"transferred_pct", "quality", "cost_per_call", "cost_per_resolved"}),
            strength=shifts[top] / 100,
            calls=g.calls,
            filters={"prompt_version": top},
            moves={"transferred_pct": 1 if rest_calls and rate > others_rate else -1},
        )
    ]


def cost_components(day: DayFacts, normal_days: Sequence[DayFacts], names: Mapping[str, str]) -> list[Cause]:
    """The cost component that moved the cost per call most."""
    keys = set(day.cost_components)
    delta = {}
    for k in keys:
        usual = [d.cost_components[k] for d in normal_days if k in d.cost_components]
        if usual:
            delta[k] = day.cost_components[k] - float(median(usual))
    if not delta:
        return []
    top = max(delta, key=lambda k: (abs(delta[k]), k))
    total = sum(abs(v) for v in delta.values()) or 1.0
    before = day.cost_components[top] - delta[top]
    return [
        Cause(
            kind="cost_component",
            text=(
                f"статья «{names.get(top, 'прочее')}»: {usd(day.cost_components[top])} на звонок "
                f"вместо обычных {usd(before)}"
            ),
            size=f"{'+' if delta[top] > 0 else ''}{usd(delta[top] * day.calls, 2)} за день",
            action="проверить расход по этой статье в обзоре стоимости (модели, повторы запросов, кэш)",
            explains=frozenset({"cost_per_call", "cost_per_resolved"}),
            moves={"cost_per_call": 1 if delta[top] > 0 else -1, "cost_per_resolved": 1 if delta[top] > 0 else -1},
            strength=abs(delta[top]) / total,
        )
    ]


def volume(day: DayFacts, normal_days: Sequence[DayFacts], labels: Mapping[str, str]) -> list[Cause]:
    """The scenario whose number of calls moved the day's volume most."""
    change = {}
    for s, g in day.scenarios.items():
        usual = [d.scenarios[s].calls if s in d.scenarios else 0 for d in normal_days]
        change[s] = g.calls - float(median(usual or [0]))
    if not change:
        return []
    top = max(change, key=lambda s: (abs(change[s]), s))
    return [
        Cause(
            kind="scenario",
            text=f"больше всего изменился сценарий «{labels.get(top, 'прочее')}»: {signed(change[top], 0)} звонков",
            size=f"{_calls(day.calls)} за день",
            action="проверить, нет ли внешней причины (акция, сбой у клиентов, праздник)",
            explains=frozenset({"calls"}),
            strength=0.5,
            filters={"scenario": top},
        )
    ]
