"""The story of a day: the two or three things that changed most against a normal day of the same
weekday, each with its cause found in the data, its size and what to do.

Pure: :class:`DayFacts` of the day and of the normal days in (``storyfacts.read`` builds them from the
database), a :class:`Story` out. A normal day is the median of the reference days, figure by figure.

1. **Changes**: every headline figure of the day against the normal day; a change counts when it is
   larger than the figure's threshold (``THRESHOLDS``), and ranks by how many thresholds it is.
2. **Causes** found in the breakdowns: a tool failing with one error far more than usual (which tools,
   the error, the time range), the scenario holding most of the extra transfers, the hours the reply
   was slow, the prompt version whose quality fell, the cost component that grew.
3. **Findings**: the largest change first, with the cause that explains it; the other changes the same
   cause explains join it (an outage raises transfers and cuts orders: one finding). At most three.

The tiles of the report are judged in context (:func:`judge_tile`): a cost per call that fell while
orders or resolution fell too is not good news.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from statistics import median

from ccanalytics.core.labels import TOOLS  # the agent's tools in words a manager reads
from ccanalytics.core.rutext import count, num, pct, signed, usd, weekday

# figure -> (Russian title, unit, higher is better, threshold of a change that counts)
# units: count (relative change, %), pct (points), score (absolute), ms / usd (relative, %)
FIGURES: dict[str, tuple[str, str, bool | None, float]] = {
    "transferred_pct": ("переводы на оператора", "pct", False, 8.0),
    "orders": ("заказы", "count", True, 35.0),
    "fittings": ("записи на шиномонтаж", "count", True, 35.0),
    "quality": ("качество", "score", True, 0.05),
    "response_p95_ms": ("задержка ответа p95", "ms", False, 30.0),
    "cost_per_call": ("стоимость звонка", "usd", False, 20.0),
    "cost_per_resolved": ("стоимость решённого звонка", "usd", False, 20.0),
    "calls": ("звонки", "count", None, 30.0),
}
MIN_COUNT_CHANGE = 3  # a count that moved by fewer than this many is noise whatever the percentage
COUNT_NOISE = 2.5  # … or by fewer than this many square roots of its normal value (Poisson scatter)
TOOL_INCIDENT_MIN_CALLS = 5  # a tool error is an incident from this many calls hit …
TOOL_INCIDENT_FACTOR = 3.0  # … and this many times the normal day's (plus one)
SLOW_TOOL_MS = 1000.0  # failing tool calls this slow on average hold up the replies too
VERSION_SHIFT_PCT = 20.0  # a prompt version whose share of the calls moved this much (points) is news
MAX_FINDINGS = 3
MESSAGE_CHANGES = 3  # the changes of a finding the message names (the report names them all)

# the errors of the agent's tools, in words a manager reads
ERRORS = {
    "upstream_unavailable": "сервис недоступен",
    "timeout": "нет ответа вовремя (таймаут)",
    "upstream_error": "ошибка внешнего сервиса",
    "internal_error": "внутренняя ошибка",
    "validation_failed": "данные отклонены проверкой",
    "unknown": "ошибка без описания",
}
WEEKDAYS_PLURAL = ("понедельников", "вторников", "сред", "четвергов", "пятниц", "суббот", "воскресений")


def tool_label(name: str) -> str:
    return TOOLS.get(name, "другой инструмент")


def error_label(code: str, status: int | None = None) -> str:
    text = ERRORS.get(code, "ошибка")
    return f"{text}, код {status}" if status else text


# ---------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class ToolFailure:
    """The calls of a day in which ``tool`` failed with ``error``."""

    tool: str
    error: str  # the error code of the tool's result ("unknown" when it gave none)
    status: int | None  # the HTTP status of the result, if any
    calls: int
    transferred: int  # of those calls, transferred to an operator
    first: time | None = None  # local time of the first and the last failure
    last: time | None = None
    scenarios: Mapping[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()  # call ids
    duration_ms: float | None = None  # mean time the failing calls of the tool took


@dataclass(frozen=True)
class Group:
    """The calls of a day in one scenario, hour or prompt version."""

    calls: int
    transferred: int = 0
    quality: float | None = None
    response_p95_ms: float | None = None


@dataclass(frozen=True)
class DayFacts:
    day: date
    calls: int
    transferred: int
    orders: int
    fittings: int
    quality: float | None
    response_p95_ms: float | None
    cost_per_call: float | None
    cost_per_resolved: float | None
    cost_components: Mapping[str, float] = field(default_factory=dict)  # USD per priced call
    transfer_reasons: Mapping[str, int] = field(default_factory=dict)
    scenarios: Mapping[str, Group] = field(default_factory=dict)
    hours: Mapping[int, Group] = field(default_factory=dict)  # local hour
    prompt_versions: Mapping[str, Group] = field(default_factory=dict)
    tool_failures: Sequence[ToolFailure] = ()

    @property
    def transferred_pct(self) -> float | None:
        return 100.0 * self.transferred / self.calls if self.calls else None

    def figure(self, key: str) -> float | None:
        return self.transferred_pct if key == "transferred_pct" else getattr(self, key)


# ---------------------------------------------------------------------------------------- output
@dataclass(frozen=True)
class Change:
    key: str
    title: str
    unit: str
    value: float
    normal: float
    higher_is_better: bool | None
    score: float  # the change in thresholds: 1 and more counts

    @property
    def delta(self) -> float:
        return self.value - self.normal

    @property
    def relative(self) -> float | None:
        return 100.0 * self.delta / self.normal if self.normal else None

    @property
    def bad(self) -> bool | None:
        return None if self.higher_is_better is None else (self.delta > 0) != self.higher_is_better

    def text(self) -> str:
        """«заказы: 3 вместо обычных 34 (−91 %)»."""
        rel = self.relative
        if self.unit == "pct":
            size = f"{signed(self.delta, 1)} п.п."
        elif self.unit == "score":
            size = signed(self.delta, 2)
        elif rel is not None:
            size = f"{signed(rel, 0)} %"
        else:
            size = "было 0"
        return f"{self.title}: {fmt(self.value, self.unit)} вместо обычных {fmt(self.normal, self.unit)} ({size})"


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Cause:
    kind: str  # tool | scenario | hours | prompt_version | cost_component | reason
    text: str  # Russian: the cause found in the data
    size: str  # Russian: how many calls / how much money
    action: str  # Russian: what to do
    explains: frozenset[str]  # the figures this cause moves
    strength: float = 0.0  # how much of the change it accounts for (0–1), to pick between causes
    links: tuple[Link, ...] = ()
    calls: int = 0  # calls it touched
    filters: Mapping[str, str] = field(default_factory=dict)  # journal filters of those calls
    examples: tuple[str, ...] = ()
    moves: Mapping[str, int] = field(default_factory=dict)  # figure -> the direction it pushes (+1 / −1)

    def fits(self, change: Change) -> bool:
        """It explains ``change``: the figure is one it moves, and in the direction it pushes."""
        way = self.moves.get(change.key)
        return change.key in self.explains and (way is None or (change.delta > 0) == (way > 0))


@dataclass(frozen=True)
class Finding:
    changes: tuple[Change, ...]  # the headline change first
    cause: Cause | None

    @property
    def headline(self) -> Change:
        return self.changes[0]

    @property
    def bad(self) -> bool | None:
        return self.headline.bad

    def text(self, *, changes: int | None = None) -> str:
        """One line: what changed (the first ``changes`` of them; all by default), why, how much, what to do."""
        what = "; ".join(c.text() for c in self.changes[:changes])
        if self.cause is None:
            tail = ": прочитайте звонки дня" if self.bad else ""
            return f"{_cap(what)}. Причина в данных не видна{tail}."
        return f"{_cap(what)}. Причина: {self.cause.text}. {_cap(self.cause.size)}. Что делать: {self.cause.action}."


@dataclass(frozen=True)
class Story:
    day: date
    findings: tuple[Finding, ...]
    reference: str  # Russian: what "normal" was («медиана 4 предыдущих сред»)
    reference_days: int
    changes: tuple[Change, ...] = ()  # every change that counts, largest first

    @property
    def quiet(self) -> bool:
        return not self.findings

    def quiet_line(self) -> str:
        return f"Спокойный день: все показатели в пределах обычного ({self.reference})."

    def lines(self) -> list[str]:
        """The story as plain lines (Telegram, e-mail): one per finding, or the quiet line."""
        if self.reference_days == 0:
            return ["Сравнить не с чем: в предыдущие дни звонков нет."]
        if self.quiet:
            return [self.quiet_line()]
        return [f"{i}. {f.text(changes=MESSAGE_CHANGES)}" for i, f in enumerate(self.findings, 1)]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def fmt(value: float | None, unit: str) -> str:
    if unit == "count":
        return num(value, 0 if value is None or float(value).is_integer() else 1)
    if unit == "pct":
        return pct(value, 1)
    if unit == "score":
        return num(value, 2)
    if unit == "ms":
        return num(value, 0, suffix=" мс")
    if unit == "usd":
        return usd(value, 4)
    return num(value, 1)


def _calls(n: int) -> str:
    return count(n, "звонок", "звонка", "звонков")


def _hm(t: time | None) -> str:
    return t.strftime("%H:%M") if t is not None else "—"


# ---------------------------------------------------------------------------------------- normal
def normal_value(days: Sequence[DayFacts], key: str) -> float | None:
    values = [v for d in days if (v := d.figure(key)) is not None]
    return float(median(values)) if values else None


def describe_reference(day: date, days: Sequence[DayFacts], same_weekday: bool) -> str:
    n = len(days)
    if same_weekday:
        return f"медиана {n} предыдущих {WEEKDAYS_PLURAL[day.weekday()]}" if n > 1 else f"прошлый {weekday(day)}"
    return f"медиана {count(n, 'предыдущего дня', 'предыдущих дней', 'предыдущих дней')}"


# ---------------------------------------------------------------------------------------- changes
def changes(day: DayFacts, normal_days: Sequence[DayFacts]) -> list[Change]:
    """The headline figures that moved more than their threshold, largest (in thresholds) first."""
    out = []
    for key, (title, unit, better, threshold) in FIGURES.items():
        value, normal = day.figure(key), normal_value(normal_days, key)
        if value is None or normal is None:
            continue
        if unit in ("pct", "score"):
            size = abs(value - normal)
        else:
            if unit == "count" and abs(value - normal) < max(MIN_COUNT_CHANGE, COUNT_NOISE * normal**0.5):
                continue  # within the day-to-day scatter of a count of this size
            size = 100.0 * abs(value - normal) / normal if normal else (100.0 if value else 0.0)
        score = size / threshold
        if score >= 1:
            out.append(Change(key, title, unit, float(value), normal, better, round(score, 3)))
    out.sort(key=lambda c: (-c.score, c.key))
    return out


# ---------------------------------------------------------------------------------------- causes
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


def judge_tile(key: str, tone: str, found: Sequence[Change]) -> tuple[str, str | None]:
    """A tile's tone in context: a cost per call that fell while orders or resolution fell, or the
    cost of a resolved call rose, is not good news (the calls were cheaper because less was done)."""
    if key != "avg_cost_per_call_usd" or tone != "good":
        return tone, None
    by = {c.key: c for c in found}
    worse = [by[k] for k in ("orders", "transferred_pct", "cost_per_resolved") if k in by and by[k].bad]
    if not worse:
        return tone, None
    return "bad", "дешевле, потому что меньше сделано: " + "; ".join(c.text() for c in worse)


# ---------------------------------------------------------------------------------------- story
def tell(
    day: DayFacts,
    normal_days: Sequence[DayFacts],
    *,
    same_weekday: bool = True,
    scenario_labels: Mapping[str, str] | None = None,
    reason_labels: Mapping[str, str] | None = None,
    cost_labels: Mapping[str, str] | None = None,
    budget_ms: float = 2000.0,
    limit: int = MAX_FINDINGS,
) -> Story:
    """The story of ``day`` against ``normal_days``: at most ``limit`` findings, largest change first."""
    reference = describe_reference(day.day, normal_days, same_weekday)
    if not normal_days:
        return Story(day.day, (), reference, 0)
    found = changes(day, normal_days)
    scen = dict(scenario_labels or {})
    causes = [
        *tool_incidents(day, normal_days),
        *slow_hours(day, normal_days, budget_ms),
        *prompt_versions(day, normal_days),
        *cost_components(day, normal_days, cost_labels or {}),
        *version_shift(day, normal_days),
        *scenario_transfers(day, normal_days, scen, reason_labels or {}),
        *volume(day, normal_days, scen),
    ]
    findings: list[Finding] = []
    covered: set[str] = set()
    used: set[int] = set()
    for c in found:
        if c.key in covered:
            continue
        if len(findings) >= limit:
            break
        # the first cause (causes are in order of how specific they are) that explains this change
        pick = next((i for i, k in enumerate(causes) if k.fits(c) and i not in used), None)
        cause = causes[pick] if pick is not None else None
        together = [c]
        if cause is not None:
            used.add(pick)  # type: ignore[arg-type]
            together += [o for o in found if o is not c and cause.fits(o) and o.key not in covered]
        covered.update(o.key for o in together)
        findings.append(Finding(tuple(together), cause))
    return Story(day.day, tuple(findings), reference, len(normal_days), tuple(found))
