"""The database reads behind the daily report's sections: latency, worst calls, A/B tests, alerts, checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import checkruns, metrics
from ccanalytics.core import definitions, labels, privacy, timeutil
from ccanalytics.core.errors import WriteRefused
from ccanalytics.db import tenants
from ccanalytics.experiments import abresults
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.quality import problems

# p95 budgets and alert thresholds of the NFR (spec: latency budget), milliseconds: the catalogue's
LATENCY_BUDGETS: dict[str, tuple[float, float]] = {
    k: (definitions.LATENCY_BUDGET_MS[k], definitions.LATENCY_ALERT_MS[k]) for k in definitions.LATENCY_BUDGET_MS
}


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


def findings(conn: sa.Connection, day: date) -> list[dict[str, Any]]:
    """The problems automatic detection found on ``day`` (shared by every tenant)."""
    return [dict(r._mapping) for r in conn.execute(sa.text(_FINDINGS), {"day": day})]


def latency(conn: sa.Connection, start, end, scope: tenants.Scope = None) -> list[dict[str, Any]]:
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


def worst(conn: sa.Connection, start, end, tz: str, n: int, scope: tenants.Scope = None) -> list[dict[str, Any]]:
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


def ab_tests(engine: Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The tests that were running during [start, end), with their results as of ``end``."""
    out = []
    for test in experiments.list_tests(engine):
        if test.started_at is None or test.started_at >= end or (test.ended_at and test.ended_at <= start):
            continue
        res = abresults.results(engine, test.id, now=end)
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


def alerts(conn: sa.Connection, start, end) -> list[dict[str, Any]]:
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


def checks(conn: sa.Connection, day: date) -> Checks:
    if conn.execute(sa.text("SELECT to_regclass('cca_check_runs')")).scalar_one() is None:
        return Checks(None, None)
    return Checks(checkruns.coverage(conn, "problems", day), checkruns.coverage(conn, "alerts", day))


def ensure_problems_checked(engine: Engine, day: date, *, tz: str = timeutil.DEFAULT_TZ) -> bool:
    """Run problem detection for ``day`` if it never ran (its daily figures first); True when it ran
    now. A read-only database cannot: the report then says "не проверялось"."""
    with engine.connect() as conn:
        if checks(conn, day).problems is not None:
            return False
    try:
        metrics.compute_daily_stats(engine, day, day, tz=tz)
        problems.detect(engine, day, tz=tz)
    except WriteRefused:
        return False
    return True
