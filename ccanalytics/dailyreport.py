"""The daily report's data: one Kyiv day against the previous day and the 7 days before it.

``build()`` reads everything the daily report notebook shows (headline numbers, calls by hour,
scenario mix, transfers, quality per criterion, worst calls, latency against budget, cost, A/B
status, problems found and alerts fired); the notebook only formats it, and the Telegram/e-mail
summary uses the same headline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import cost, experiments, labels, metrics, privacy, timeutil
from .quality.report import quality_report
from .rutext import num, signed

# p95 budgets and alert thresholds of the NFR (spec: latency budget), milliseconds
LATENCY_BUDGETS: dict[str, tuple[float, float]] = {
    "stt": (500.0, 700.0),
    "llm": (1000.0, 1500.0),
    "tts": (400.0, 600.0),
    "response": (2000.0, 2500.0),
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


# (Summary attribute, Russian title, kind, higher is better)
HEADLINE = (
    ("total_calls", "Звонков", "count", None),
    ("resolved_by_bot_pct", "Решено ботом", "pct", True),
    ("transferred_to_operator_pct", "Переведено на оператора", "pct", False),
    ("avg_quality_score", "Качество (0–1)", "score", True),
    ("orders_created", "Заказов оформлено", "count", True),
    ("fittings_booked", "Записей на шиномонтаж", "count", True),
    ("response_p95_ms", "Задержка ответа p95", "ms", False),
    ("avg_cost_per_call_usd", "Стоимость звонка", "usd", False),
    ("avg_duration_seconds", "Средняя длительность", "sec", None),
    ("first_contact_resolution_pct", "Решено с первого звонка", "pct", True),
)
WEEK_DAYS = 7


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

    @property
    def hourly_week_mean(self) -> dict[int, float]:
        return {h: n / WEEK_DAYS for h, n in self.week.hourly_distribution.items()}

    def call_url(self, call_id: str) -> str:
        return f"{self.admin_url.rstrip('/')}/calls/{call_id}"

    def journal_url(self, **filters: Any) -> str:
        from urllib.parse import urlencode

        query = {"date_from": self.day.isoformat(), "date_to": self.day.isoformat(), **filters}
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(query)}"

    def summary_text(self) -> str:
        """The headline as plain Russian text (Telegram message, e-mail body), without a title."""
        return _summary_text(self.headline, len(self.alerts), len(self.findings))


def _summary_text(headline: tuple[Headline, ...], alerts: int, findings: int) -> str:
    lines = [f"• {h.title}: {h.formatted()} ({h.delta_text(h.prev, 'к вчера')})" for h in headline]
    if alerts:
        lines.append(f"Алертов за день: {alerts}")
    if findings:
        lines.append(f"Найдено проблем: {findings}")
    return "\n".join(lines)


def _headline(day: metrics.Summary, prev: metrics.Summary, week: metrics.Summary) -> tuple[Headline, ...]:
    out = []
    for key, title, kind, better in HEADLINE:
        week_value = getattr(week, key)
        if kind == "count" and week_value is not None:
            week_value = week_value / WEEK_DAYS
        out.append(Headline(key, title, kind, getattr(day, key), getattr(prev, key), week_value, better))
    return tuple(out)


_LATENCY = """
SELECT component,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY v)::float8 AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY v)::float8 AS p95_ms,
       count(*) AS n
FROM (
    SELECT 'stt' AS component, unnest(stt_ms) AS v FROM call_metrics WHERE started_at >= :start AND started_at < :end
    UNION ALL
    SELECT 'llm', unnest(llm_ms) FROM call_metrics WHERE started_at >= :start AND started_at < :end
    UNION ALL
    SELECT 'tts', unnest(tts_ms) FROM call_metrics WHERE started_at >= :start AND started_at < :end
    UNION ALL
    SELECT 'response', unnest(response_ms) FROM call_metrics WHERE started_at >= :start AND started_at < :end
) x
GROUP BY component
"""

_WORST = """
SELECT c.id::text AS call_id, c.started_at, c.scenario, c.transferred_to_operator, c.transfer_reason,
       c.duration_seconds, c.quality_score,
       coalesce((c.quality_details->>'auto_failed')::boolean, false) AS auto_failed,
       (SELECT string_agg(k.key, ',' ORDER BY (k.value->>'score')::float8, k.key)
          FROM jsonb_each(coalesce(c.quality_details->'criteria', '{}'::jsonb)) k
         WHERE jsonb_typeof(k.value->'score') = 'number' AND (k.value->>'score')::float8 < 0.5) AS failed,
       (SELECT k.value->>'reason'
          FROM jsonb_each(coalesce(c.quality_details->'criteria', '{}'::jsonb)) k
         WHERE jsonb_typeof(k.value->'score') = 'number'
         ORDER BY (k.value->>'score')::float8, k.key LIMIT 1) AS worst_reason
FROM calls c
WHERE c.started_at >= :start AND c.started_at < :end AND c.quality_score IS NOT NULL
ORDER BY c.quality_score, c.started_at
LIMIT :n
"""

_FINDINGS = """
SELECT kind, key, value, baseline, details FROM quality_findings WHERE day = :day ORDER BY kind, value DESC
"""


def _latency(conn: sa.Connection, start, end) -> list[dict[str, Any]]:
    rows = {r.component: r for r in conn.execute(sa.text(_LATENCY), {"start": start, "end": end})}
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


def _worst(conn: sa.Connection, start, end, tz: str, n: int) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute(sa.text(_WORST), {"start": start, "end": end, "n": n}):
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


def _ab_tests(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for test in experiments.list_tests(engine, status="running"):
        res = experiments.results(engine, test.id)
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


def _summaries(engine: Engine, day: date, tz: str) -> tuple[metrics.Summary, metrics.Summary, metrics.Summary]:
    """The day, the day before, and the 7 days before the day."""
    prev_day = day - timedelta(days=1)
    return (
        metrics.summary(engine, day, day, tz=tz),
        metrics.summary(engine, prev_day, prev_day, tz=tz),
        metrics.summary(engine, day - timedelta(days=WEEK_DAYS), prev_day, tz=tz),
    )


def summary_text(engine: Engine, day: date | str, *, tz: str = timeutil.DEFAULT_TZ) -> str:
    """``build(...).summary_text()`` without building the rest of the report (the message that goes
    with a delivered report)."""
    day = timeutil.to_date(day, tz)
    start, end = timeutil.period_bounds(day, day, tz)
    with engine.connect() as conn:
        alerts = len(_alerts(conn, start, end))
        findings = conn.execute(
            sa.text("SELECT count(*) FROM quality_findings WHERE day = :day"), {"day": day}
        ).scalar()
    return _summary_text(_headline(*_summaries(engine, day, tz)), alerts, findings)


def build(
    engine: Engine,
    day: date | str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    admin_url: str = "http://127.0.0.1:8050",
    worst: int = 10,
) -> DailyReport:
    """Everything the daily report shows for the Kyiv day ``day``."""
    day = timeutil.to_date(day, tz)
    week_first, week_last = day - timedelta(days=WEEK_DAYS), day - timedelta(days=1)
    summary, prev, week = _summaries(engine, day, tz)
    start, end = timeutil.period_bounds(day, day, tz)
    with engine.connect() as conn:
        latency = _latency(conn, start, end)
        worst_calls = _worst(conn, start, end, tz, worst)
        findings = [dict(r._mapping) for r in conn.execute(sa.text(_FINDINGS), {"day": day})]
        alerts = _alerts(conn, start, end)
    return DailyReport(
        day=day,
        tz=tz,
        admin_url=admin_url,
        summary=summary,
        prev=prev,
        week=week,
        headline=_headline(summary, prev, week),
        quality=quality_report(engine, day, day, tz=tz),
        quality_week=quality_report(engine, week_first, week_last, tz=tz),
        worst_calls=worst_calls,
        latency=latency,
        cost=cost.cost_summary(engine, day, day, tz=tz),
        cost_week=cost.cost_summary(engine, week_first, week_last, tz=tz),
        ab_tests=_ab_tests(engine),
        findings=findings,
        alerts=alerts,
    )
