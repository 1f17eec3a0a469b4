"""The terms of the story of a day: its figures and thresholds, a day's facts, changes, causes, findings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from statistics import median

from ccanalytics.core.labels import TOOLS  # the agent's tools in words a manager reads
from ccanalytics.core.rutext import num, pct, signed, usd

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


# ---------------------------------------------------------------------------------------- normal
def normal_value(days: Sequence[DayFacts], key: str) -> float | None:
    values = [v for d in days if (v := d.figure(key)) is not None]
    return float(median(values)) if values else None
