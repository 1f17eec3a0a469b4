"""Queries behind the exploratory notebooks (notebooks/explore_*.ipynb): the scenario funnel, repeat
callers and first-contact resolution, latency per component and prompt version, and the transfer
drill-down. Each returns a Polars DataFrame; the notebooks only display and chart them. Each takes
``tenant=`` (a slug or several; default every tenant): the calls it reads."""

from __future__ import annotations

from datetime import date

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.vocabulary import ACTION_TOOLS, TOOLS
from ccanalytics.db import tenants

DateLike = date | str | None

# tools whose success moves a call forward, by the funnel stage they stand for: the lookups (every tool
# that neither changes an order or a booking nor hands the call over) and the actions
SEARCH_TOOLS = tuple(t for t in TOOLS if t not in ACTION_TOOLS and t != "transfer_to_operator")


def _frame(engine: Engine, sql: str, params: dict) -> pl.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        rows, names = result.fetchall(), list(result.keys())
    return pl.DataFrame([tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None)


def _bounds(engine: Engine, date_from: DateLike, date_to: DateLike, tz: str, tenant: tenants.TenantArg) -> dict:
    """The period's bounds and the tenants' filter parameters (the tenants checked)."""
    start, end = timeutil.period_bounds(date_from, date_to, tz)
    return {"start": start, "end": end, "tz": tz, **tenants.params(tenants.scope(engine, tenant))}


# the call metrics of the tenants' calls (the tenant is the call's)
_METRICS_OF_TENANTS = f"""(CAST(:tenants AS text[]) IS NULL
       OR EXISTS (SELECT 1 FROM cca_calls c
                   WHERE c.id = m.call_id AND c.started_at = m.started_at AND \
{tenants.SQL}))"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


_FUNNEL = f"""
WITH c AS (
    SELECT c.id, coalesce(split_part(c.scenario, ' + ', 1), 'unknown') AS intent, c.scenario,
           c.transferred_to_operator AS transferred, c.order_id IS NOT NULL AS ordered,
           c.fitting_booking_id IS NOT NULL AS booked
    FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
), t AS (
    SELECT x.call_id,
           bool_or(true) AS any_tool,
           bool_or(x.success AND x.tool_name = ANY(:search)) AS found,
           bool_or(x.tool_name = ANY(:action)) AS tried_action,
           bool_or(x.success AND x.tool_name = ANY(:action)) AS action_ok,
           bool_or(NOT x.success) AS tool_failed
    FROM call_tool_calls x
    WHERE x.created_at >= CAST(:start AS timestamptz) - interval '1 hour'
      AND x.created_at < CAST(:end AS timestamptz) + interval '7 hours'
      AND x.call_id IN (SELECT id FROM c)
    GROUP BY 1
)
SELECT c.intent,
       count(*) AS calls,
       count(*) FILTER (WHERE t.any_tool) AS used_tool,
       count(*) FILTER (WHERE t.found) AS found_answer,
       count(*) FILTER (WHERE t.tried_action) AS tried_action,
       count(*) FILTER (WHERE c.ordered OR c.booked OR t.action_ok) AS completed,
       count(*) FILTER (WHERE c.ordered) AS orders,
       count(*) FILTER (WHERE c.booked) AS fittings,
       count(*) FILTER (WHERE c.transferred) AS transferred,
       count(*) FILTER (WHERE c.transferred AND t.tool_failed) AS transferred_after_tool_error
FROM c LEFT JOIN t ON t.call_id = c.id
GROUP BY 1 ORDER BY calls DESC, intent
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def funnel(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """Per first intent (the first part of the scenario): calls → a tool was used → an answer was
    found (a successful lookup) → an action was tried (order, booking) → completed (order created,
    fitting booked or the action succeeded); and the transfers, with those that followed a tool error."""
    frame = _frame(
        engine,
        _FUNNEL,
        {
            **_bounds(engine, date_from, date_to, tz, tenant),
            "search": list(SEARCH_TOOLS),
            "action": list(ACTION_TOOLS),
        },
    )
    if frame.is_empty():
        return frame
    return frame.with_columns(
        (100 * pl.col("completed") / pl.col("calls")).round(1).alias("completed_pct"),
        (100 * pl.col("transferred") / pl.col("calls")).round(1).alias("transferred_pct"),
    )


_REPEATS = f"""
WITH c AS (
    SELECT c.id, c.started_at, c.customer_id, coalesce(c.scenario, 'unknown') AS scenario,
           coalesce(c.prompt_version, '—') AS prompt_version, c.transferred_to_operator AS transferred
    FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
), nb AS (SELECT * FROM cca_customer_neighbours(:start, :end))
SELECT c.{{key}} AS key,
       count(*) AS calls,
       count(*) FILTER (WHERE nb.next_at <= c.started_at + interval '7 days') AS called_again_7d,
       count(*) FILTER (WHERE nb.prev_at >= c.started_at - interval '7 days') AS repeat_7d,
       count(*) FILTER (WHERE NOT c.transferred
                          AND (nb.next_at IS NULL OR nb.next_at > c.started_at + interval '7 days')) AS fcr
FROM c LEFT JOIN nb ON nb.id = c.id AND nb.started_at = c.started_at
GROUP BY 1 ORDER BY calls DESC, key
"""  # noqa: S608 — tenants.SQL (constant); {key} is filled later from ('scenario', 'prompt_version')


def repeat_callers(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    by: str = "scenario",
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """First-contact resolution (resolved by the bot and no call back within 7 days) and repeat
    calls per scenario or prompt version (``by``)."""
    if by not in ("scenario", "prompt_version"):
        raise ValueError("by must be scenario or prompt_version")
    frame = _frame(engine, _REPEATS.format(key=by), _bounds(engine, date_from, date_to, tz, tenant))
    if frame.is_empty():
        return frame
    return frame.with_columns(
        (100 * pl.col("fcr") / pl.col("calls")).round(1).alias("fcr_pct"),
        (100 * pl.col("called_again_7d") / pl.col("calls")).round(1).alias("called_again_pct"),
    )


_CALLS_PER_CUSTOMER = f"""
SELECT n AS calls_in_period, count(*) AS customers FROM (
    SELECT c.customer_id, count(*) AS n FROM cca_calls c
    WHERE c.started_at >= :start AND c.started_at < :end AND c.customer_id IS NOT NULL AND {tenants.SQL} GROUP BY 1
) x GROUP BY 1 ORDER BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def calls_per_customer(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """How many customers called once, twice, … in the period (a customer is one tenant's)."""
    return _frame(engine, _CALLS_PER_CUSTOMER, _bounds(engine, date_from, date_to, tz, tenant))


_LATENCY = f"""
WITH m AS (
    SELECT coalesce(c.prompt_version, '—') AS prompt_version, m.*
    FROM call_metrics m JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE m.started_at >= :start AND m.started_at < :end AND {tenants.SQL}
), v AS (
    SELECT prompt_version, 'stt' AS component, unnest(stt_ms) AS ms FROM m
    UNION ALL SELECT prompt_version, 'llm', unnest(llm_ms) FROM m
    UNION ALL SELECT prompt_version, 'tts', unnest(tts_ms) FROM m
    UNION ALL SELECT prompt_version, 'response', unnest(response_ms) FROM m
)
SELECT prompt_version, component, count(*) AS samples,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::float8 AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::float8 AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::float8 AS p99_ms
FROM v GROUP BY 1, 2 ORDER BY 1, 2
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_LATENCY_BY_HOUR = f"""
SELECT extract(hour FROM m.started_at AT TIME ZONE :tz)::int AS hour, count(*) AS replies,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::float8 AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY x)::float8 AS p95_ms
FROM call_metrics m, unnest(m.response_ms) x
WHERE m.started_at >= :start AND m.started_at < :end AND {_METRICS_OF_TENANTS}
GROUP BY 1 ORDER BY 1
"""  # noqa: S608 — only the constant _METRICS_OF_TENANTS is interpolated; values are bound

_SLOWEST = f"""
SELECT m.call_id::text AS call_id, m.started_at, c.scenario, c.prompt_version, m.response_p95_ms, m.response_max_ms,
       m.stt_p95_ms, m.llm_p95_ms, m.tts_p95_ms
FROM call_metrics m JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at
WHERE m.started_at >= :start AND m.started_at < :end AND m.response_p95_ms IS NOT NULL AND {tenants.SQL}
ORDER BY m.response_p95_ms DESC LIMIT :n
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def latency_by_version(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """p50/p95/p99 of STT, LLM (first token), TTS and the whole reply per prompt version."""
    return _frame(engine, _LATENCY, _bounds(engine, date_from, date_to, tz, tenant))


def latency_by_hour(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """Reply latency p50/p95 per hour of the day (load-related slowdowns show here)."""
    return _frame(engine, _LATENCY_BY_HOUR, _bounds(engine, date_from, date_to, tz, tenant))


def slowest_calls(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    n: int = 10,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    return _frame(engine, _SLOWEST, {**_bounds(engine, date_from, date_to, tz, tenant), "n": n})


_TRANSFERS = f"""
SELECT coalesce(split_part(c.scenario, ' + ', 1), 'unknown') AS intent,
       coalesce(c.transfer_reason, 'unknown') AS reason, count(*) AS transfers
FROM cca_calls c
WHERE c.started_at >= :start AND c.started_at < :end AND c.transferred_to_operator AND {tenants.SQL}
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_LAST_BOT_WORDS = f"""
SELECT coalesce(c.transfer_reason, 'unknown') AS reason, last.content AS last_bot_turn, count(*) AS transfers
FROM cca_calls c
CROSS JOIN LATERAL (
    SELECT t.content FROM call_turns t
    WHERE t.call_id = c.id AND t.speaker = 'bot'
      AND t.created_at >= c.started_at - interval '1 hour' AND t.created_at < c.started_at + interval '7 hours'
    ORDER BY t.turn_number DESC LIMIT 1
) last
WHERE c.started_at >= :start AND c.started_at < :end AND c.transferred_to_operator AND {tenants.SQL}
GROUP BY 1, 2 ORDER BY 3 DESC LIMIT :n
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound

_FAILED_TOOLS = f"""
SELECT x.tool_name, count(DISTINCT c.id) AS transferred_calls
FROM cca_calls c JOIN call_tool_calls x ON x.call_id = c.id AND NOT x.success
     AND x.created_at >= c.started_at - interval '1 hour' AND x.created_at < c.started_at + interval '7 hours'
WHERE c.started_at >= :start AND c.started_at < :end AND c.transferred_to_operator AND {tenants.SQL}
GROUP BY 1 ORDER BY 2 DESC
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def transfers(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """Transfers per first intent and reason."""
    return _frame(engine, _TRANSFERS, _bounds(engine, date_from, date_to, tz, tenant))


def last_bot_turns(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    n: int = 15,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """The bot's last words before a transfer, most frequent first (what the bot says when it gives up)."""
    return _frame(engine, _LAST_BOT_WORDS, {**_bounds(engine, date_from, date_to, tz, tenant), "n": n})


def tools_failed_before_transfer(
    engine: Engine,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> pl.DataFrame:
    """Tools that failed in calls that ended with a transfer (Store API outages turn into transfers)."""
    return _frame(engine, _FAILED_TOOLS, _bounds(engine, date_from, date_to, tz, tenant))
