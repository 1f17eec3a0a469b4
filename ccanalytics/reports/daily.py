"""The daily report's data: one local day against the previous day and the 7 days before it.

``build()`` reads everything the daily report notebook shows (headline numbers, calls by hour,
scenario mix, transfers, quality per criterion, worst calls, latency against budget, cost, A/B
status, problems found and alerts fired); the notebook only formats it, and the Telegram/e-mail
summary uses the same headline. The sections' database reads are ``dailyfacts``'.

A report covers some tenants (``tenant=``: a slug or several; default every tenant): the call figures,
quality, worst calls, latency and cost are those tenants' calls. A/B tests and prompts are shared by
all tenants, and the automatic problem findings and the alerts are evaluated over every tenant's calls:
those sections are the same in every scope, and a scoped report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import metrics
from ccanalytics.core import definitions, timeutil
from ccanalytics.core.rutext import num, signed
from ccanalytics.cost import calls as cost
from ccanalytics.db import tenants
from ccanalytics.quality.report import quality_report
from ccanalytics.reports import dailyfacts, storyfacts, storymodel
from ccanalytics.reports.dailyfacts import LATENCY_BUDGETS, METRICS_OF_TENANTS, Checks, ensure_problems_checked

# the names this module had before its sections' reads moved to dailyfacts (ccanalytics.dailyreport imports them)
__all__ = [
    "HEADLINE",
    "LATENCY_BUDGETS",
    "MESSAGE_FIGURES",
    "METRICS_OF_TENANTS",
    "SHARED_NOTE",
    "WEEK_DAYS",
    "Checks",
    "DailyReport",
    "Headline",
    "build",
    "day_against_normal",
    "ensure_problems_checked",
    "summary_text",
]


@dataclass(frozen=True)
class Headline:
    key: str
    title: str
    kind: str  # count | pct | score | ms | sec | usd
    value: float | None
    prev: float | None  # the previous day
    week: float | None  # the 7 days before: mean per day for counts, the pooled value otherwise
    higher_is_better: bool | None  # None: neither direction is good or bad

    def change(self, reference: float | None) -> float | None:
        """Absolute change for percentages and scores (points), relative (%) for the rest."""
        if self.value is None or reference is None:
            return None
        if self.kind in ("pct", "score"):
            return self.value - reference
        return 100.0 * (self.value - reference) / reference if reference else None

    def tone(self, reference: float | None) -> str:
        delta = self.change(reference)
        if delta is None or self.higher_is_better is None or abs(delta) < 1e-9:
            return "neutral"
        return "good" if (delta > 0) == self.higher_is_better else "bad"

    def formatted(self, value: float | None = None) -> str:
        value = self.value if value is None else value
        if value is None:
            return "—"
        if self.kind == "count":
            return num(value, 0 if float(value).is_integer() else 1)
        if self.kind == "pct":
            return num(value, 1) + " %"
        if self.kind == "score":
            return num(value, 2)
        if self.kind == "ms":
            return num(value, 0) + " мс"
        if self.kind == "sec":
            return num(value, 0) + " с"
        return "$" + num(value, 4)

    def delta_text(self, reference: float | None, against: str) -> str:
        delta = self.change(reference)
        if delta is None:
            return f"{against}: нет данных"
        if self.kind == "pct":
            return f"{against}: {signed(delta, 1)} п.п."
        if self.kind == "score":
            return f"{against}: {signed(delta, 2)}"
        return f"{against}: {signed(delta, 0)} %"


# (Summary attribute, Russian title, kind, higher is better): the catalogue's figures
HEADLINE = tuple((f.key, f.label, f.unit, f.higher_is_better) for f in definitions.FIGURES)
WEEK_DAYS = definitions.COMPARISON_DAYS


@dataclass(frozen=True)
class DailyReport:
    day: date
    tz: str
    admin_url: str
    summary: metrics.Summary
    prev: metrics.Summary
    week: metrics.Summary  # the 7 days before ``day``
    headline: tuple[Headline, ...]
    quality: dict[str, Any]
    quality_week: dict[str, Any]
    worst_calls: list[dict[str, Any]]
    latency: list[dict[str, Any]]
    cost: dict[str, Any]
    cost_week: dict[str, Any]
    ab_tests: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    checks: Checks = field(default_factory=lambda: Checks(None, None))
    scope_label: str = tenants.ALL_LABEL  # the tenants covered in words: «все сети», «ПроКолесо»
    tenants: tenants.Scope = None  # the slugs (None: every tenant); after scope_label, whose default reads the module
    story: storymodel.Story | None = None  # what changed most against a normal day of the weekday, and why

    @property
    def scoped(self) -> bool:
        """True when the report covers some tenants only (the shared sections then say so)."""
        return self.tenants is not None

    @property
    def hourly_week_mean(self) -> dict[int, float]:
        return {h: n / WEEK_DAYS for h, n in self.week.hourly_distribution.items()}

    def call_url(self, call_id: str) -> str:
        return f"{self.admin_url.rstrip('/')}/calls/{call_id}"

    def journal_url(self, **filters: Any) -> str:
        query: dict[str, Any] = {"from": self.day.isoformat(), "to": self.day.isoformat(), **filters}
        if self.tenants is not None and len(self.tenants) == 1:
            query["tenant"] = self.tenants[0]
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(query)}"

    def summary_text(self) -> str:
        """The story and the key figures as plain Russian text (Telegram message, e-mail body), without a title."""
        return _summary_text(
            self.headline, len(self.alerts), len(self.findings), self.checks, scoped=self.scoped, story=self.story
        )


SHARED_NOTE = "по всем сетям"  # what a scoped report says of its sections that are the same for every tenant


# the figures the message names after the story (the report has them all)
MESSAGE_FIGURES = ("total_calls", "resolved_by_bot_pct", "orders_created", "avg_quality_score", "avg_cost_per_call_usd")


def _summary_text(
    headline: tuple[Headline, ...],
    alerts: int,
    findings: int,
    checks: Checks,
    *,
    scoped: bool = False,
    story: storymodel.Story | None = None,
) -> str:
    """The message: the story (what changed and what to do), one line of key figures, the checks."""
    lines = []
    if story is not None:
        lines.append(f"Главное (сравнение: {story.reference}):" if not story.quiet else "Главное:")
        lines += story.lines()
        lines.append("")
    by = {h.key: h for h in headline}
    figures = [by[k] for k in MESSAGE_FIGURES if k in by]
    lines.append("Коротко: " + "; ".join(f"{h.title.lower()}: {h.formatted()}" for h in figures) + ".")
    shared = f" ({SHARED_NOTE})" if scoped else ""
    if checks.alerts is None:
        lines.append("Алерты: не проверялось.")
    elif alerts:
        lines.append(f"Алертов за день{shared}: {num(alerts)}.")
    if checks.problems is None:
        lines.append("Автоматический поиск проблем: не проверялось.")
    elif findings:
        lines.append(f"Найдено проблем{shared}: {num(findings)}.")
    return "\n".join(lines)


def _headline(day: metrics.Summary, prev: metrics.Summary, week: metrics.Summary) -> tuple[Headline, ...]:
    return tuple(
        Headline(
            key,
            title,
            kind,
            getattr(day, key),
            getattr(prev, key),
            definitions.reference_value(kind, getattr(week, key)),
            better,
        )
        for key, title, kind, better in HEADLINE
    )


def day_against_normal(
    engine: Engine,
    day: date,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    partial: bool = False,
    tenant: tenants.TenantArg = None,
) -> list[dict[str, Any]]:
    """The headline figures of ``day`` against a normal day — the catalogue's comparison window (the
    days before it): the day, the window's value, the change and its tone, over the calls of ``tenant``
    (a slug or several; default every tenant). Counts of a day still running (``partial``) are not
    compared. The dashboard shows these rows; the report the same."""
    summary, _prev, week = _summaries(engine, day, tz, tenants.scope(engine, tenant))
    rows = []
    for h in _headline(summary, _prev, week):
        if partial and h.kind == "count":
            delta, tone = "день ещё идёт", "neutral"
        else:
            delta, tone = h.delta_text(h.week, "к обычному дню"), h.tone(h.week)
        rows.append(
            {
                "key": h.key,
                "title": h.title,
                "day": h.formatted(),
                "week": h.formatted(h.week) if h.week is not None else "—",
                "delta": delta,
                "tone": tone,
                "value": h.value,
                "reference": h.week,
            }
        )
    return rows


# the derived metrics of the calls of the tenants :tenants (NULL: every call)
def _summaries(
    engine: Engine, day: date, tz: str, scope: tenants.Scope = None
) -> tuple[metrics.Summary, metrics.Summary, metrics.Summary]:
    """The day, the day before, and the catalogue's comparison window (the days before the day), of
    the tenants ``scope``."""
    prev_day = day - timedelta(days=1)
    return (
        metrics.summary(engine, day, day, tz=tz, tenant=scope),
        metrics.summary(engine, prev_day, prev_day, tz=tz, tenant=scope),
        metrics.summary(engine, *definitions.comparison_window(day), tz=tz, tenant=scope),
    )


def summary_text(
    engine: Engine, day: date | str, *, tz: str = timeutil.DEFAULT_TZ, tenant: tenants.TenantArg = None
) -> str:
    """``build(...).summary_text()`` without building the rest of the report (the message that goes
    with a delivered report), of ``tenant`` (a slug or several; default every tenant)."""
    day = timeutil.to_date(day, tz)
    start, end = timeutil.period_bounds(day, day, tz)
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        alerts = len(dailyfacts.alerts(conn, start, end))
        findings = conn.execute(
            sa.text("SELECT count(*) FROM quality_findings WHERE day = :day"), {"day": day}
        ).scalar_one()
        checks = dailyfacts.checks(conn, day)
    headline = _headline(*_summaries(engine, day, tz, scope))
    story = storyfacts.story(engine, day, tz=tz, tenant=scope)
    return _summary_text(headline, alerts, findings, checks, scoped=scope is not None, story=story)


def build(
    engine: Engine,
    day: date | str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    admin_url: str = "http://127.0.0.1:8050",
    worst: int = 10,
    run_checks: bool = True,
    tenant: tenants.TenantArg = None,
) -> DailyReport:
    """Everything the daily report shows for the local day ``day``, as of that day, for ``tenant`` (a
    slug or several; default every tenant): problem detection for the day runs first if it never ran
    (``run_checks``), the A/B tests are those running that day with their results at its end, and the
    checks' coverage says what was never checked. The A/B tests, the problem findings and the alerts
    are shared by every tenant: a scoped report shows them as they are (``DailyReport.scoped``)."""
    day = timeutil.to_date(day, tz)
    scope = tenants.scope(engine, tenant)
    if run_checks:
        ensure_problems_checked(engine, day, tz=tz)
    week_first, week_last = definitions.comparison_window(day)
    summary, prev, week = _summaries(engine, day, tz, scope)
    start, end = timeutil.period_bounds(day, day, tz)
    with engine.connect() as conn:
        latency = dailyfacts.latency(conn, start, end, scope)
        worst_calls = dailyfacts.worst(conn, start, end, tz, worst, scope)
        findings = dailyfacts.findings(conn, day)
        alerts = dailyfacts.alerts(conn, start, end)
        checks = dailyfacts.checks(conn, day)
    return DailyReport(
        day=day,
        tz=tz,
        admin_url=admin_url,
        summary=summary,
        prev=prev,
        week=week,
        headline=_headline(summary, prev, week),
        quality=quality_report(engine, day, day, tz=tz, tenant=scope),
        quality_week=quality_report(engine, week_first, week_last, tz=tz, tenant=scope),
        worst_calls=worst_calls,
        latency=latency,
        cost=cost.cost_summary(engine, day, day, tz=tz, tenant=scope),
        cost_week=cost.cost_summary(engine, week_first, week_last, tz=tz, tenant=scope),
        ab_tests=dailyfacts.ab_tests(engine, start, end),
        findings=findings,
        alerts=alerts,
        checks=checks,
        tenants=scope,
        scope_label=tenants.describe(engine, scope),
        story=storyfacts.story(engine, day, tz=tz, tenant=scope),
    )
