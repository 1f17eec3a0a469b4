"""A week's figures, read from the database, against the range of the weeks before it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import fmean

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import metrics
from ccanalytics.core import definitions, rutext, timeutil
from ccanalytics.db import sqlfiles, tenants
from ccanalytics.reports import storymodel, weekstory

WEEKS = weekstory.WEEKS


@dataclass(frozen=True)
class WeekFigures:
    """The calls of one Monday–Sunday week (of the tenants asked for)."""

    first: date  # the Monday
    calls: int
    resolved: int
    transferred: int
    orders: int
    fittings: int
    fcr_pct: float | None
    quality: float | None
    scored: int
    low_quality: int  # scored below definitions.LOW_QUALITY
    response_p95_ms: float | None
    cost_per_call: float | None
    cost_per_resolved: float | None
    total_cost: float
    priced: int
    transfer_reasons: Mapping[str, int] = field(default_factory=dict)
    cost_components: Mapping[str, float] = field(default_factory=dict)  # USD per priced call
    scenarios: Mapping[str, storymodel.Group] = field(default_factory=dict)
    prompt_versions: Mapping[str, storymodel.Group] = field(default_factory=dict)

    @property
    def last(self) -> date:
        return self.first + timedelta(days=6)

    @property
    def resolved_pct(self) -> float | None:
        return definitions.rate_pct(self.resolved, self.calls)

    @property
    def low_quality_pct(self) -> float | None:
        """Of the scored calls."""
        return definitions.rate_pct(self.low_quality, self.scored)

    def facts(self) -> storymodel.DayFacts:
        """The week as the story of a day reads a day (``day``: the Monday)."""
        return storymodel.DayFacts(
            day=self.first,
            calls=self.calls,
            transferred=self.transferred,
            orders=self.orders,
            fittings=self.fittings,
            quality=self.quality,
            response_p95_ms=self.response_p95_ms,
            cost_per_call=self.cost_per_call,
            cost_per_resolved=self.cost_per_resolved,
            cost_components=self.cost_components,
            transfer_reasons=self.transfer_reasons,
            scenarios=self.scenarios,
            prompt_versions=self.prompt_versions,
        )


def _label(key: str) -> str:
    return definitions.FIGURES_BY_KEY[key].label


# (WeekFigures attribute, Russian title, unit, higher is better): the catalogue's figures and threshold
FIGURES: tuple[tuple[str, str, str, bool | None], ...] = (
    ("calls", _label("total_calls"), "count", None),
    ("resolved_pct", _label("resolved_by_bot_pct"), "pct", True),
    ("fcr_pct", _label("first_contact_resolution_pct"), "pct", True),
    ("quality", _label("avg_quality_score"), "score", True),
    ("low_quality_pct", f"Оценок ниже {rutext.num(definitions.LOW_QUALITY, 1)}", "pct", False),
    ("orders", _label("orders_created"), "count", True),
    ("cost_per_call", _label("avg_cost_per_call_usd"), "usd", False),
    ("cost_per_resolved", _label("cost_per_resolved_call_usd"), "usd", False),
)


@dataclass(frozen=True)
class Row:
    """One figure of the week against the weeks before that had calls."""

    key: str
    title: str
    unit: str
    higher_is_better: bool | None
    value: float | None
    before: tuple[float, ...]  # the weeks before, oldest first

    @property
    def mean(self) -> float | None:
        return fmean(self.before) if self.before else None

    @property
    def low(self) -> float | None:
        return min(self.before) if self.before else None

    @property
    def high(self) -> float | None:
        return max(self.before) if self.before else None

    def change(self) -> float | None:
        """Points for percentages and scores, percent for the rest."""
        if self.value is None or self.mean is None:
            return None
        if self.unit in ("pct", "score"):
            return self.value - self.mean
        return 100.0 * (self.value - self.mean) / self.mean if self.mean else None

    def tone(self) -> str:
        """Good or bad news only outside the range of the weeks before: inside it, the usual scatter."""
        value, mean = self.value, self.mean
        if self.higher_is_better is None or value is None or mean is None:
            return "neutral"
        if min(self.before) <= value <= max(self.before):
            return "neutral"
        return "good" if (value > mean) == self.higher_is_better else "bad"

    def formatted(self) -> str:
        return self.show(self.value)

    def show(self, value: float | None) -> str:
        """``value`` in the figure's unit: «75,5 %», «$0,1506», «0,87»."""
        return storymodel.fmt(value, self.unit)

    def change_text(self) -> str:
        delta = self.change()
        if delta is None:
            return "нет данных"
        if self.unit == "pct":
            return f"{rutext.signed(delta, 1)} п.п."
        if self.unit == "score":
            return rutext.signed(delta, 2)
        return f"{rutext.signed(delta, 0)} %"

    def range_text(self) -> str:
        if not self.before:
            return "—"
        low, high = self.show(self.low), self.show(self.high)
        return low if low == high else f"{low} … {high}"


def compare(week: WeekFigures, before: Sequence[WeekFigures]) -> tuple[Row, ...]:
    """The figures of ``week`` against the weeks of ``before`` that had calls."""
    had = [w for w in before if w.calls]
    return tuple(
        Row(key, title, unit, better, getattr(week, key), tuple(v for w in had if (v := getattr(w, key)) is not None))
        for key, title, unit, better in FIGURES
    )


def read_weeks(engine: Engine, first: date, *, tz: str, scope: tenants.Scope = None) -> list[WeekFigures]:
    """The week beginning on the Monday ``first`` and the ``WEEKS`` weeks before it, oldest first."""
    firsts = [first - timedelta(days=7 * i) for i in range(WEEKS, -1, -1)]
    start, end = timeutil.period_bounds(firsts[0], first + timedelta(days=6), tz)
    p = {"start": start, "end": end, "tz": tz, "low_quality": definitions.LOW_QUALITY, **tenants.params(scope)}
    groups: dict[tuple[date, str], dict[str, storymodel.Group]] = {}
    with engine.connect() as conn:
        extra = {r.week: r for r in conn.execute(sa.text(sqlfiles.query("weekly_figures")), p)}
        for r in conn.execute(sa.text(sqlfiles.query("weekly_groups")), p):
            groups.setdefault((r.week, r.what), {})[r.key] = storymodel.Group(r.calls, r.transferred, r.quality)
    out = []
    for monday in firsts:
        s = metrics.summary(engine, monday, monday + timedelta(days=6), tz=tz, tenant=scope)
        x = extra.get(monday)
        components = {k: v for k in definitions.PRICED_COMPONENTS if x is not None and (v := getattr(x, k)) is not None}
        out.append(
            WeekFigures(
                first=monday,
                calls=s.total_calls,
                resolved=s.resolved_by_bot,
                transferred=s.transferred,
                orders=s.orders_created,
                fittings=s.fittings_booked,
                fcr_pct=s.first_contact_resolution_pct,
                quality=s.avg_quality_score,
                scored=s.scored_calls,
                low_quality=x.low_quality if x is not None else 0,
                response_p95_ms=s.response_p95_ms,
                cost_per_call=s.avg_cost_per_call_usd,
                cost_per_resolved=s.cost_per_resolved_call_usd,
                total_cost=s.total_cost_usd,
                priced=s.costed_calls,
                transfer_reasons=s.transfer_reasons,
                cost_components=components,
                scenarios=groups.get((monday, "scenario"), {}),
                prompt_versions=groups.get((monday, "prompt_version"), {}),
            )
        )
    return out
