"""The exporter's gauges, read from the database at most once a minute (``exporter.GAUGES_EVERY``)
per tenant: the scoring backlog (the finished calls the scheduler owes a score, from
``quality.scheduled_since``), the scorings that failed in the last 24 hours, and when the newest call
ended. Each is read through an index — two days of calls by started_at, each tenant's newest calls
by (tenant_id, started_at), the failed queue entries by status — never by a pass over calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ccanalytics import quality

SQL = """
SELECT t AS tenant, sum(backlog) AS backlog, max(last_call) AS last_call, sum(failed) AS scoring_failed
FROM (
    -- the backlog: the finished calls the scheduler owes a score (from :since, quality.scheduled_since),
    -- a range of the index on started_at
    SELECT coalesce(c.tenant, '') AS t, count(*) AS backlog, NULL::numeric AS last_call, 0 AS failed
    FROM cca_calls c
    WHERE c.started_at >= :since AND c.ended_at IS NOT NULL AND NOT c.quality_scored
    GROUP BY 1
    UNION ALL
    -- the newest call of each tenant (and of the calls without one): the latest end (or start, while in
    -- progress) of the calls that started within the hour before the newest start, both read through
    -- the index on (tenant_id, started_at)
    SELECT coalesce(n.slug, ''), 0, extract(epoch FROM n.last_at), 0
    FROM (SELECT t.slug, (SELECT max(coalesce(c.ended_at, c.started_at)) FROM calls c
                          WHERE c.tenant_id = t.id
                            AND c.started_at >= (SELECT max(started_at) FROM calls WHERE tenant_id = t.id)
                                                - interval '1 hour') AS last_at
          FROM tenants t
          UNION ALL
          SELECT NULL, (SELECT max(coalesce(c.ended_at, c.started_at)) FROM calls c
                        WHERE c.tenant_id IS NULL
                          AND c.started_at >= (SELECT max(started_at) FROM calls WHERE tenant_id IS NULL)
                                              - interval '1 hour')) n
    WHERE n.last_at IS NOT NULL
    UNION ALL
    SELECT coalesce(tn.slug, ''), 0, NULL, count(*)
    FROM scoring_queue q
    LEFT JOIN calls c ON c.id = q.call_id AND c.started_at = q.started_at
    LEFT JOIN tenants tn ON tn.id = c.tenant_id
    WHERE q.status = 'failed' AND q.updated_at >= now() - interval '24 hours' GROUP BY 1
) g
GROUP BY 1
"""


def read(conn: sa.Connection, tz: str) -> Sequence[sa.Row]:
    """One row per tenant ('' for calls without one): ``tenant``, ``backlog``, ``scoring_failed`` and
    ``last_call`` (Unix seconds; None when the tenant has no call). ``tz``: the local days of the backlog."""
    now: datetime = conn.execute(sa.text("SELECT now()")).scalar_one()
    return conn.execute(sa.text(SQL), {"since": quality.scheduled_since(now, tz)}).all()
