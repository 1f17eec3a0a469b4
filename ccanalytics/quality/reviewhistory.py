"""Who reviewed what, read back from the audit log: every taking and resolving of a review (with the
verdicts and the comment), filtered and paged, and a summary per reviewer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import tenants
from ccanalytics.quality.review import EVENTS, call_uuid, day_bounds


@dataclass(frozen=True)
class HistoryEntry:
    """One taking or resolving of a review, from the audit log."""

    at: datetime
    reviewer: str
    action: str  # review.taken | review.resolved
    call_id: str
    started_at: datetime | None  # the call's start (None: the call is no longer in the queue)
    tenant: str | None
    verdicts: dict[str, float | None]  # review.resolved: the reviewer's score per criterion
    comment: str | None
    previous: str | None  # review.taken: the reviewer it was taken from


@dataclass(frozen=True)
class ReviewerSummary:
    reviewer: str
    taken: int
    resolved: int
    last_at: datetime


@dataclass(frozen=True)
class History:
    entries: list[HistoryEntry]
    total: int
    offset: int
    limit: int
    reviewers: list[ReviewerSummary]  # per reviewer over every entry matching the filters

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.entries) < self.total


_HISTORY_FROM = f"""
FROM audit_log a
LEFT JOIN review_items r ON r.call_id = CASE
       WHEN a.object_id ~ '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'
       THEN CAST(a.object_id AS uuid) END
LEFT JOIN cca_calls c ON c.id = r.call_id AND c.started_at = r.started_at
WHERE a.object_type = 'call' AND a.action = ANY(:events) AND {tenants.SQL}
  AND (CAST(:reviewer AS text) IS NULL OR a.actor = :reviewer)
  AND (CAST(:call AS text) IS NULL OR a.object_id = :call)
  AND (CAST(:start AS timestamptz) IS NULL OR a.at >= :start)
  AND (CAST(:end AS timestamptz) IS NULL OR a.at < :end)
"""


def history(
    engine: Engine,
    *,
    reviewer: str | None = None,
    call_id: str | uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    tenant: tenants.TenantArg = None,
    offset: int = 0,
    limit: int = 50,
    tz: str = timeutil.DEFAULT_TZ,
) -> History:
    """Who reviewed what: every taking and resolving of ``tenant``'s calls (default: every tenant;
    limited to tenants, the calls no longer queued are left out) by ``reviewer``, of one call, within
    the local days ``date_from`` … ``date_to`` of the action, newest first; and a summary per reviewer."""
    if not 1 <= int(limit) <= 500 or not 0 <= int(offset) <= 1_000_000:
        raise InvalidArgument("limit must be 1–500 and offset 0–1000000")
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        params: dict[str, Any] = {
            "events": list(EVENTS),
            "reviewer": reviewer,
            "call": str(call_uuid(call_id)) if call_id is not None else None,
            **day_bounds(date_from, date_to, tz),
            **tenants.params(scope),
        }
        summary = [
            ReviewerSummary(r.actor, r.taken, r.resolved, r.last_at)
            for r in conn.execute(
                sa.text(
                    "SELECT a.actor, count(*) FILTER (WHERE a.action = 'review.taken') AS taken, "
                    "count(*) FILTER (WHERE a.action = 'review.resolved') AS resolved, max(a.at) AS last_at "
                    f"{_HISTORY_FROM} GROUP BY a.actor ORDER BY resolved DESC, taken DESC, a.actor"
                ),
                params,
            )
        ]
        rows = conn.execute(
            sa.text(
                "SELECT a.at, a.actor, a.action, a.object_id, a.details, r.started_at, c.tenant "
                f"{_HISTORY_FROM} ORDER BY a.at DESC, a.id DESC LIMIT :limit OFFSET :offset"
            ),
            {**params, "limit": int(limit), "offset": int(offset)},
        ).all()
    entries = []
    for r in rows:
        details = r.details if isinstance(r.details, dict) else {}
        given = details.get("verdicts")
        verdicts: dict[str, float | None] = given if isinstance(given, dict) else {}
        entries.append(
            HistoryEntry(
                r.at,
                r.actor,
                r.action,
                r.object_id,
                r.started_at,
                r.tenant,
                verdicts,
                details.get("comment") if isinstance(details.get("comment"), str) else None,
                details.get("from") if isinstance(details.get("from"), str) else None,
            )
        )
    total = sum(s.taken + s.resolved for s in summary)
    return History(entries, total, int(offset), int(limit), summary)
