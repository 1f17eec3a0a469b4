"""The quality figures of a period (GET /api/v1/analytics/quality): totals, averages per criterion
and per scenario, low/high counts, the daily trend, the review queue, and who judged."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.db import tenants

LOW, HIGH = 0.5, 0.8  # the journal's colours: red < 0.5, yellow 0.5–0.8, green > 0.8

_TOTALS = """
SELECT count(*) AS calls, count(quality_score) AS scored, avg(quality_score)::float8 AS avg_score,
       count(*) FILTER (WHERE quality_score < :low) AS low, count(*) FILTER (WHERE quality_score > :high) AS high,
       count(*) FILTER (WHERE quality_score BETWEEN :low AND :high) AS middle,
       count(*) FILTER (WHERE (quality_details ->> 'auto_failed')::boolean) AS auto_failed
FROM cca_calls c WHERE started_at >= :start AND started_at < :end AND {tenants}
"""
_CRITERIA = """
SELECT e.key AS criterion, avg((e.value ->> 'score')::float8) AS avg_score, count(*) AS n,
       count(*) FILTER (WHERE (e.value ->> 'score')::float8 < 0.5) AS failed
FROM cca_calls c, jsonb_each(c.quality_details -> 'criteria') e
WHERE c.started_at >= :start AND c.started_at < :end AND c.quality_details IS NOT NULL AND {tenants}
  AND coalesce(e.value ->> 'applicable', 'true') <> 'false'
GROUP BY 1
"""
_SCENARIOS = """
SELECT coalesce(scenario, 'unknown') AS scenario, count(quality_score) AS scored,
       avg(quality_score)::float8 AS avg_score,
       count(*) FILTER (WHERE quality_score < :low) AS low
FROM cca_calls c WHERE started_at >= :start AND started_at < :end AND {tenants} GROUP BY 1 ORDER BY 2 DESC
"""
_TREND = """
SELECT (started_at AT TIME ZONE :tz)::date AS day, count(quality_score) AS scored,
       avg(quality_score)::float8 AS avg_score,
       count(*) FILTER (WHERE quality_score < :low) AS low
FROM cca_calls c WHERE started_at >= :start AND started_at < :end AND {tenants} GROUP BY 1 ORDER BY 1
"""
_JUDGES = """
SELECT s.judge_kind, s.judge_model, s.rubric_version, count(*) AS calls, sum(s.cost_usd)::float8 AS cost_usd
FROM call_scores s JOIN cca_calls c ON c.id = s.call_id AND c.started_at = s.started_at
WHERE s.is_current AND s.started_at >= :start AND s.started_at < :end AND {tenants} GROUP BY 1, 2, 3
"""

# a queue's rows per status, of the tenants' calls (the queue tables are keyed by call id and start)
_QUEUE = """
SELECT q.status, count(*) FROM {table} q
WHERE CAST(:tenants AS text[]) IS NULL
   OR EXISTS (SELECT 1 FROM cca_calls c WHERE c.id = q.call_id AND c.started_at = q.started_at AND {tenants})
GROUP BY 1
"""


def _r(value: float | None, digits: int = 4) -> float | None:
    return round(value, digits) if value is not None else None


def quality_report(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> dict[str, Any]:
    """The quality figures of the calls that started in the local days ``date_from`` … ``date_to``
    (default: the last 7 days) of ``tenant`` (a slug or several; default: every tenant). The review
    and scoring queues are counted over the same tenants (every day)."""
    first, last = timeutil.resolve_days(date_from, date_to, tz, default_days=7)
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        p = {"start": start, "end": end, "tz": tz, "low": LOW, "high": HIGH, **tenants.params(scope)}

        def rows(sql: str):
            return conn.execute(sa.text(sql.format(tenants=tenants.SQL)), p)

        t = rows(_TOTALS).one()
        crit = {r.criterion: r for r in rows(_CRITERIA)}
        scen = rows(_SCENARIOS).all()
        trend = rows(_TREND).all()
        judges = rows(_JUDGES).all()
        review = dict(rows(_QUEUE.format(table="review_items", tenants="{tenants}")).all())
        queue = dict(rows(_QUEUE.format(table="scoring_queue", tenants="{tenants}")).all())
    return {
        "period": {
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "tz": tz,
            "tenants": list(scope) if scope is not None else None,
        },
        "total_calls": t.calls,
        "scored_calls": t.scored,
        "avg_quality_score": _r(t.avg_score),
        "low_count": t.low,
        "middle_count": t.middle,
        "high_count": t.high,
        "auto_failed": t.auto_failed,
        "criteria": {
            c: {
                "avg_score": _r(crit[c].avg_score) if c in crit else None,
                "applicable_calls": crit[c].n if c in crit else 0,
                "failed": crit[c].failed if c in crit else 0,
            }
            for c in CRITERIA
        },
        "scenarios": [
            {"scenario": r.scenario, "scored": r.scored, "avg_score": _r(r.avg_score), "low": r.low} for r in scen
        ],
        "trend": [
            {"date": r.day.isoformat(), "scored": r.scored, "avg_score": _r(r.avg_score), "low": r.low} for r in trend
        ],
        "review_queue": {s: review.get(s, 0) for s in ("new", "in_review", "resolved")},
        "scoring_queue": {s: queue.get(s, 0) for s in ("pending", "in_progress", "done", "failed")},
        "judges": [
            {
                "kind": r.judge_kind,
                "model": r.judge_model,
                "rubric_version": r.rubric_version,
                "calls": r.calls,
                "cost_usd": _r(r.cost_usd, 6),
            }
            for r in judges
        ],
    }
