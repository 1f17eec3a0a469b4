"""The daily report's data: one local day against the previous day and the 7 days before it.

``build()`` reads everything the daily report notebook shows (headline numbers, calls by hour,
scenario mix, transfers, quality per criterion, worst calls, latency against budget, cost, A/B
status, problems found and alerts fired); the notebook only formats it, and the Telegram/e-mail
summary uses the same headline.

A report covers some tenants (``tenant=``: a slug or several; default every tenant): the call figures,
quality, worst calls, latency and cost are those tenants' calls. A/B tests and prompts are shared by
all tenants, and the automatic problem findings and the alerts are evaluated over every tenant's calls:
those sections are the same in every scope, and a scoped report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import checkruns, metrics
from ccanalytics.core import definitions, labels, privacy, timeutil
from ccanalytics.core.errors import WriteRefused
from ccanalytics.core.rutext import num, signed
from ccanalytics.cost import calls as cost
from ccanalytics.db import tenants
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.quality import problems
from ccanalytics.quality.report import quality_report
from ccanalytics.reports import daystory, storyfacts

# p95 budgets and alert thresholds of the NFR (spec: latency budget), milliseconds: the catalogue's
LATENCY_BUDGETS: dict[str, tuple[float, float]] = {
    k: (definitions.LATENCY_BUDGET_MS[k], definitions.LATENCY_ALERT_MS[k]) for k in definitions.LATENCY_BUDGET_MS
}


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
class Checks:
    """What the automatic checks covered for the report's day (None: never ran — "не проверялось")."""

    problems: checkruns.Coverage | None
    alerts: checkruns.Coverage | None

    def problems_text(self) -> str:
        return "не проверялось" if self.problems is None else "проверено"

    def alerts_text(self, tz: str) -> str:
        if self.alerts is None:
            return "не проверялось"
        zone = timeutil.zone(tz)
        first, last = (t.astimezone(zone).strftime("%H:%M") for t in (self.alerts.first_at, self.alerts.last_at))
        return f"проверялось с {first} до {last}"


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
    story: daystory.Story | None = None  # what changed most against a normal day of the weekday, and why

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
        from urllib.parse import urlencode

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
    story: daystory.Story | None = None,
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
METRICS_OF_TENANTS = f"""
SELECT m.* FROM call_metrics m
WHERE m.started_at >= :start AND m.started_at < :end
  AND (CAST(:tenants AS text[]) IS NULL
       OR EXISTS (SELECT 1 FROM cca_calls c WHERE c.id = m.call_id AND c.started_at = m.started_at AND {tenants.SQL}))
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound
_LATENCY = f"""
WITH m AS ({METRICS_OF_TENANTS})
SELECT component,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v)::float8 AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY v)::float8 AS p95_ms,
       count(*) AS n
FROM (
    SELECT 'stt' AS component, unnest(stt_ms) AS v FROM m
    UNION ALL
    SELECT 'llm', unnest(llm_ms) FROM m
    UNION ALL
    SELECT 'tts', unnest(tts_ms) FROM m
    UNION ALL
    SELECT 'response', unnest(response_ms) FROM m
) x
GROUP BY component
"""  # noqa: S608 — only the constant METRICS_OF_TENANTS is interpolated; values are bound

_WORST = f"""
SELECT c.id::text AS call_id, c.started_at, c.scenario, c.transferred_to_operator, c.transfer_reason,
       c.duration_seconds, c.quality_score,
       coalesce((c.quality_details->>'auto_failed')::boolean, false) AS auto_failed,
       (SELECT string_agg(k.key, ',' ORDER BY (k.value->>'score')::float8, k.key)
          FROM jsonb_each(coalesce(c.quality_details->'criteria', '{{}}'::jsonb)) k
         WHERE jsonb_typeof(k.value->'score') = 'number' AND (k.value->>'score')::float8 < :low_quality) AS failed,
       (SELECT k.value->>'reason'
          FROM jsonb_each(coalesce(c.quality_details->'criteria', '{{}}'::jsonb)) k
         WHERE jsonb_typeof(k.value->'score') = 'number'
         ORDER BY (k.value->>'score')::float8, k.key LIMIT 1) AS worst_reason
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND c.quality_score IS NOT NULL AND {tenants.SQL}
ORDER BY c.quality_score, c.started_at
LIMIT :n
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_FINDINGS = """
SELECT kind, key, value, baseline, details FROM quality_findings WHERE day = :day ORDER BY kind, value DESC
"""


def _latency(conn: sa.Connection, start, end, scope: tenants.Scope = None) -> list[dict[str, Any]]:
    rows = {
        r.component: r for r in conn.execute(sa.text(_LATENCY), {"start": start, "end": end, **tenants.params(scope)})
    }
    out = []
    for component, (budget, alert) in LATENCY_BUDGETS.items():
        r = rows.get(component)
        out.append(
            {
                "component": component,
                "title": labels.COMPONENTS[component],
                "p50_ms": r.p50_ms if r else None,
                "p95_ms": r.p95_ms if r else None,
                "samples": r.n if r else 0,
                "budget_ms": budget,
                "alert_ms": alert,
                "status": None if not r else "alert" if r.p95_ms > alert else "over" if r.p95_ms > budget else "ok",
            }
        )
    return out


def _worst(conn: sa.Connection, start, end, tz: str, n: int, scope: tenants.Scope = None) -> list[dict[str, Any]]:
    out = []
    params = {"start": start, "end": end, "n": n, "low_quality": definitions.LOW_QUALITY, **tenants.params(scope)}
    for r in conn.execute(sa.text(_WORST), params):
        out.append(
            {
                "call_id": r.call_id,
                "time": r.started_at.astimezone(timeutil.zone(tz)).strftime("%H:%M"),
                "scenario": labels.scenario(r.scenario),
                "transfer": labels.reason(r.transfer_reason or "unknown") if r.transferred_to_operator else "нет",
                "duration_seconds": r.duration_seconds,
                "quality_score": r.quality_score,
                "auto_failed": r.auto_failed,
                "failed": ", ".join(labels.criterion(k) for k in (r.failed or "").split(",") if k),
                "reason": privacy.mask_phones_in_text(r.worst_reason or ""),
            }
        )
    return out


def _ab_tests(engine: Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The tests that were running during [start, end), with their results as of ``end``."""
    out = []
    for test in experiments.list_tests(engine):
        if test.started_at is None or test.started_at >= end or (test.ended_at and test.ended_at <= start):
            continue
        res = experiments.results(engine, test.id, now=end)
        recs = {ch: r.to_dict() for ch, r in res.recommendations.items()}
        out.append(
            {
                "test_name": test.test_name,
                "days_running": round(res.days_running, 1),
                "variants": [v.to_dict() for v in res.variants],
                "srm_mismatch": res.srm.mismatch,
                "recommendations": recs,
            }
        )
    return out


def _alerts(conn: sa.Connection, start, end) -> list[dict[str, Any]]:
    """Alerts fired during the day: the database-evaluated alert history (migration 006)."""
    if conn.execute(sa.text("SELECT to_regclass('alert_events')")).scalar_one() is None:
        return []
    rows = conn.execute(
        sa.text(
            "SELECT rule, key, event, created_at, message FROM alert_events "
            "WHERE created_at >= :start AND created_at < :end AND event IN ('fired', 'resolved') ORDER BY created_at"
        ),
        {"start": start, "end": end},
    )
    return [dict(r._mapping) for r in rows]


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


def _checks(conn: sa.Connection, day: date) -> Checks:
    if conn.execute(sa.text("SELECT to_regclass('cca_check_runs')")).scalar_one() is None:
        return Checks(None, None)
    return Checks(checkruns.coverage(conn, "problems", day), checkruns.coverage(conn, "alerts", day))


def ensure_problems_checked(engine: Engine, day: date, *, tz: str = timeutil.DEFAULT_TZ) -> bool:
    """Run problem detection for ``day`` if it never ran (its daily figures first); True when it ran
    now. A read-only database cannot: the report then says "не проверялось"."""
    with engine.connect() as conn:
        if _checks(conn, day).problems is not None:
            return False
    try:
        metrics.compute_daily_stats(engine, day, day, tz=tz)
        problems.detect(engine, day, tz=tz)
    except WriteRefused:
        return False
    return True


def summary_text(
    engine: Engine, day: date | str, *, tz: str = timeutil.DEFAULT_TZ, tenant: tenants.TenantArg = None
) -> str:
    """``build(...).summary_text()`` without building the rest of the report (the message that goes
    with a delivered report), of ``tenant`` (a slug or several; default every tenant)."""
    day = timeutil.to_date(day, tz)
    start, end = timeutil.period_bounds(day, day, tz)
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        alerts = len(_alerts(conn, start, end))
        findings = conn.execute(
            sa.text("SELECT count(*) FROM quality_findings WHERE day = :day"), {"day": day}
        ).scalar_one()
        checks = _checks(conn, day)
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
        latency = _latency(conn, start, end, scope)
        worst_calls = _worst(conn, start, end, tz, worst, scope)
        findings = [dict(r._mapping) for r in conn.execute(sa.text(_FINDINGS), {"day": day})]
        alerts = _alerts(conn, start, end)
        checks = _checks(conn, day)
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
        ab_tests=_ab_tests(engine, start, end),
        findings=findings,
        alerts=alerts,
        checks=checks,
        tenants=scope,
        scope_label=tenants.describe(engine, scope),
        story=storyfacts.story(engine, day, tz=tz, tenant=scope),
    )
