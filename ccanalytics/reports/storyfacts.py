"""The database reads behind the story of a day (``daystory``): the day and its normal days as
:class:`storymodel.DayFacts`, and the story told from them.

A normal day is one of the same weekday in the ``WEEKS`` weeks before (the days that had calls); with
fewer than ``MIN_SAME_WEEKDAY`` of them (a young installation) the ``FALLBACK_DAYS`` days before stand
in, and the story says which it used. The headline figures come from ``metrics.summary`` (the same
numbers as the report's tiles); the breakdowns — scenarios, hours, prompt versions, transfer reasons,
cost components, failing tools — from the queries here, over the calls of the tenants asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import metrics
from ccanalytics.core import definitions, labels, timeutil
from ccanalytics.db import tenants
from ccanalytics.reports import daystory, storymodel

WEEKS = 4
MIN_SAME_WEEKDAY = 2
FALLBACK_DAYS = 7

_DAYS = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, count(*) AS calls
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
GROUP BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

# per day and head scenario / local hour / prompt version: calls, transfers, quality
_GROUPS = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, :what AS what,
       CASE :what WHEN 'scenario' THEN coalesce(split_part(c.scenario, ' + ', 1), 'unknown')
                  WHEN 'hour' THEN extract(hour FROM c.started_at AT TIME ZONE :tz)::int::text
                  ELSE coalesce(c.prompt_version, '—') END AS key,
       count(*) AS calls, count(*) FILTER (WHERE c.transferred_to_operator) AS transferred,
       avg(c.quality_score)::float8 AS quality
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(:days)
GROUP BY 1, 2, 3
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_REASONS = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, coalesce(c.transfer_reason, 'unknown') AS reason, count(*) AS n
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL} AND c.transferred_to_operator
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(:days)
GROUP BY 1, 2
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_COMPONENTS = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day,
       {", ".join(f"avg((c.cost_breakdown->>'{k}')::float8)::float8 AS {k}" for k in definitions.PRICED_COMPONENTS)}
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL} AND c.total_cost_usd IS NOT NULL
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(:days)
GROUP BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

# failed tool calls by day, tool and error; tool calls are partitioned on their own stamps, within an
# hour before and 7 hours after their call's start
_TOOLS = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, t.tool_name AS tool,
       coalesce(t.tool_result->>'error', 'unknown') AS error,
       CASE WHEN t.tool_result->>'status' ~ '^[0-9]{{3}}$' THEN (t.tool_result->>'status')::int END AS status,
       count(DISTINCT c.id) AS calls,
       count(DISTINCT c.id) FILTER (WHERE c.transferred_to_operator) AS transferred,
       min(t.created_at) AS first_at, max(t.created_at) AS last_at, avg(t.duration_ms)::float8 AS duration_ms,
       (array_agg(DISTINCT c.id::text))[1:3] AS examples
FROM call_tool_calls t JOIN cca_calls c ON c.id = t.call_id
WHERE NOT t.success
  AND t.created_at >= CAST(:start AS timestamptz) - interval '1 hour'
  AND t.created_at < CAST(:end AS timestamptz) + interval '7 hours'
  AND c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
  AND (c.started_at AT TIME ZONE :tz)::date = ANY(:days)
GROUP BY 1, 2, 3, 4
"""  # noqa: S608 — tenants.SQL and column names from definitions.PRICED_COMPONENTS (constants)

_TOOL_SCENARIOS = f"""
SELECT t.tool_name AS tool, coalesce(t.tool_result->>'error', 'unknown') AS error,
       split_part(coalesce(c.scenario, 'unknown'), ' + ', 1) AS scenario, count(DISTINCT c.id) AS calls
FROM call_tool_calls t JOIN cca_calls c ON c.id = t.call_id
WHERE NOT t.success
  AND t.created_at >= CAST(:start AS timestamptz) - interval '1 hour'
  AND t.created_at < CAST(:end AS timestamptz) + interval '7 hours'
  AND c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
GROUP BY 1, 2, 3
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_HOUR_P95 = f"""
SELECT extract(hour FROM c.started_at AT TIME ZONE :tz)::int AS hour,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY v)::float8 AS p95
FROM call_metrics m JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at,
     unnest(m.response_ms) AS v
WHERE m.started_at >= :start AND m.started_at < :end AND {tenants.SQL}
GROUP BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def reference_days(engine: Engine, day: date, *, tz: str, scope: tenants.Scope = None) -> tuple[list[date], bool]:
    """The normal days of ``day`` that had calls: the same weekday in the ``WEEKS`` weeks before, or
    (fewer than ``MIN_SAME_WEEKDAY`` of them) the ``FALLBACK_DAYS`` days before; and whether they
    are of the same weekday."""
    first = day - timedelta(days=7 * WEEKS)
    start, end = timeutil.period_bounds(first, day - timedelta(days=1), tz)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_DAYS), {"start": start, "end": end, "tz": tz, **tenants.params(scope)})
        had_calls = {r.day for r in rows if r.calls}
    same = [day - timedelta(days=7 * w) for w in range(1, WEEKS + 1)]
    same = [d for d in same if d in had_calls]
    if len(same) >= MIN_SAME_WEEKDAY:
        return sorted(same), True
    # a young installation: the working days (or the weekend days) of the last two weeks, else any recent day
    weekend = day.weekday() >= 5
    kind = [
        d for d in (day - timedelta(days=i) for i in range(1, 15)) if d in had_calls and (d.weekday() >= 5) == weekend
    ]
    if len(kind) >= MIN_SAME_WEEKDAY:
        return sorted(kind)[-FALLBACK_DAYS:], False
    recent = [day - timedelta(days=i) for i in range(1, FALLBACK_DAYS + 1)]
    return sorted(d for d in recent if d in had_calls), False


def read(
    engine: Engine, days: Sequence[date], *, tz: str, scope: tenants.Scope = None
) -> dict[date, storymodel.DayFacts]:
    """The facts of each of ``days`` (local days of ``tz``) over the calls of the tenants ``scope``."""
    if not days:
        return {}
    days = sorted(set(days))
    start, end = timeutil.period_bounds(days[0], days[-1], tz)
    p: dict[str, Any] = {"start": start, "end": end, "tz": tz, "days": days, **tenants.params(scope)}
    groups: dict[tuple[date, str], dict[str, storymodel.Group]] = {}
    reasons: dict[date, dict[str, int]] = {}
    components: dict[date, dict[str, float]] = {}
    fails: dict[date, list[dict[str, Any]]] = {}
    zone = timeutil.zone(tz)
    with engine.connect() as conn:
        for what in ("scenario", "hour", "prompt_version"):
            for r in conn.execute(sa.text(_GROUPS), {**p, "what": what}):
                groups.setdefault((r.day, what), {})[r.key] = storymodel.Group(r.calls, r.transferred, r.quality)
        for r in conn.execute(sa.text(_REASONS), p):
            reasons.setdefault(r.day, {})[r.reason] = r.n
        for r in conn.execute(sa.text(_COMPONENTS), p):
            components[r.day] = {k: getattr(r, k) for k in definitions.PRICED_COMPONENTS if getattr(r, k) is not None}
        for r in conn.execute(sa.text(_TOOLS), p):
            fails.setdefault(r.day, []).append(dict(r._mapping))
    out = {}
    for d in days:
        s = metrics.summary(engine, d, d, tz=tz, tenant=scope)
        out[d] = storymodel.DayFacts(
            day=d,
            calls=s.total_calls,
            transferred=s.transferred,
            orders=s.orders_created,
            fittings=s.fittings_booked,
            quality=s.avg_quality_score,
            response_p95_ms=s.response_p95_ms,
            cost_per_call=s.avg_cost_per_call_usd,
            cost_per_resolved=s.cost_per_resolved_call_usd,
            cost_components=components.get(d, {}),
            transfer_reasons=reasons.get(d, {}),
            scenarios=groups.get((d, "scenario"), {}),
            hours={int(k): g for k, g in groups.get((d, "hour"), {}).items()},
            prompt_versions=groups.get((d, "prompt_version"), {}),
            tool_failures=tuple(
                storymodel.ToolFailure(
                    tool=f["tool"],
                    error=f["error"],
                    status=f["status"],
                    calls=f["calls"],
                    transferred=f["transferred"],
                    first=f["first_at"].astimezone(zone).time().replace(second=0, microsecond=0),
                    last=f["last_at"].astimezone(zone).time().replace(second=0, microsecond=0),
                    examples=tuple(f["examples"] or ()),
                    duration_ms=f["duration_ms"],
                )
                for f in fails.get(d, [])
            ),
        )
    return out


def _with_details(engine: Engine, facts: storymodel.DayFacts, *, tz: str, scope: tenants.Scope) -> storymodel.DayFacts:
    """The report's day with what only it needs: the reply p95 per hour, the scenarios of failing tools."""
    start, end = timeutil.period_bounds(facts.day, facts.day, tz)
    p = {"start": start, "end": end, "tz": tz, **tenants.params(scope)}
    with engine.connect() as conn:
        p95 = {r.hour: r.p95 for r in conn.execute(sa.text(_HOUR_P95), p)}
        by_tool: dict[tuple[str, str], dict[str, int]] = {}
        for r in conn.execute(sa.text(_TOOL_SCENARIOS), p):
            by_tool.setdefault((r.tool, r.error), {})[r.scenario] = r.calls
    hours = {h: replace(g, response_p95_ms=p95.get(h)) for h, g in facts.hours.items()}
    failures = tuple(replace(f, scenarios=by_tool.get((f.tool, f.error), {})) for f in facts.tool_failures)
    return replace(facts, hours=hours, tool_failures=failures)


def story(
    engine: Engine, day: date, *, tz: str = timeutil.DEFAULT_TZ, tenant: tenants.TenantArg = None
) -> storymodel.Story:
    """The story of the local day ``day`` for ``tenant`` (a slug or several; default every tenant)."""
    scope = tenants.scope(engine, tenant)
    normal, same_weekday = reference_days(engine, day, tz=tz, scope=scope)
    facts = read(engine, [day, *normal], tz=tz, scope=scope)
    return daystory.tell(
        _with_details(engine, facts[day], tz=tz, scope=scope),
        [facts[d] for d in normal],
        same_weekday=same_weekday,
        scenario_labels=labels.SCENARIO_CODES,
        reason_labels=labels.TRANSFER_REASONS,
        cost_labels=labels.COST_COMPONENTS,
        budget_ms=definitions.RESPONSE_BUDGET_MS,
    )
