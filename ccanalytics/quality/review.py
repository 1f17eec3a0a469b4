"""The manual review queue: calls with a low score or an auto-fail, taken by a reviewer, resolved
with a verdict per criterion (stored as human labels for calibration) and a comment.

Every function takes ``tenant`` (a slug, several, or None for every tenant): the queue of those
tenants' calls; taking or resolving a call of another tenant is NotFound, as if it were not queued."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import tenants
from ..errors import InvalidArgument, NotFound
from ..telemetry import CRITERIA

STATUSES = ("new", "in_review", "resolved")
# a review item of the scope's tenants (every item when :tenants is NULL)
_OF_TENANTS = (
    "(CAST(:tenants AS text[]) IS NULL OR EXISTS (SELECT 1 FROM cca_calls c "
    f"WHERE c.id = r.call_id AND c.started_at = r.started_at AND {tenants.SQL}))"
)


@dataclass(frozen=True)
class ReviewItem:
    call_id: str
    started_at: datetime
    status: str
    reasons: tuple[str, ...]
    score: float | None
    assigned_to: str | None
    comment: str | None
    updated_at: datetime


def _uuid(call_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(call_id))
    except ValueError:
        raise InvalidArgument(f"not a call id: {call_id!r}") from None


def list_items(
    engine: Engine, *, status: str | None = None, limit: int = 50, tenant: tenants.TenantArg = None
) -> list[ReviewItem]:
    """The queue (lowest scores first) of ``tenant``'s calls (default: every tenant)."""
    if status is not None and status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}")
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        rows = conn.execute(
            sa.text(
                "SELECT r.call_id::text, r.started_at, r.status, r.reasons, r.score, r.assigned_to, r.comment, "
                "r.updated_at FROM review_items r WHERE (CAST(:status AS text) IS NULL OR r.status = :status) "
                f"AND {_OF_TENANTS} ORDER BY r.score NULLS FIRST, r.started_at DESC LIMIT :limit"
            ),
            {"status": status, "limit": limit, **tenants.params(scope)},
        ).all()
    return [ReviewItem(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6], r[7]) for r in rows]


def counts(engine: Engine, *, tenant: tenants.TenantArg = None) -> dict[str, int]:
    """Items per status of ``tenant``'s calls (default: every tenant)."""
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        rows = conn.execute(
            sa.text(f"SELECT r.status, count(*) FROM review_items r WHERE {_OF_TENANTS} GROUP BY 1"),
            tenants.params(scope),
        ).all()
    return {s: 0 for s in STATUSES} | dict(rows)


def _status_for_update(conn: sa.Connection, call_id: uuid.UUID, tenant: tenants.TenantArg) -> str | None:
    """The item's status, locked; None when the call is not queued or is another tenant's."""
    scope = tenants.scope(conn, tenant)
    return conn.execute(
        sa.text(f"SELECT r.status FROM review_items r WHERE r.call_id = :id AND {_OF_TENANTS} FOR UPDATE OF r"),
        {"id": call_id, **tenants.params(scope)},
    ).scalar()


def take(engine: Engine, call_id: str | uuid.UUID, reviewer: str, *, tenant: tenants.TenantArg = None) -> None:
    """A reviewer starts on a call (new → in_review). A call outside ``tenant`` is NotFound."""
    with engine.begin() as conn:
        status = _status_for_update(conn, _uuid(call_id), tenant)
        if status is None:
            raise NotFound(f"call {call_id} is not in the review queue")
        if status == "resolved":
            raise InvalidArgument(f"call {call_id} is already resolved")
        conn.execute(
            sa.text(
                "UPDATE review_items SET status = 'in_review', assigned_to = :who, updated_at = now() "
                "WHERE call_id = :id"
            ),
            {"id": _uuid(call_id), "who": reviewer},
        )


def resolve(
    engine: Engine,
    call_id: str | uuid.UUID,
    reviewer: str,
    verdicts: Mapping[str, float | None],
    comment: str | None = None,
    *,
    tenant: tenants.TenantArg = None,
) -> int:
    """Resolve a review with the reviewer's score per criterion (0–1, or None: not applicable).
    The verdicts are stored as labels next to the judge's score at this moment. Returns the number
    of labels stored. All or nothing. A call outside ``tenant`` is NotFound."""
    if not reviewer.strip():
        raise InvalidArgument("reviewer is required")
    unknown = set(verdicts) - set(CRITERIA)
    if unknown:
        raise InvalidArgument(f"unknown criteria: {', '.join(sorted(unknown))}")
    for name, value in verdicts.items():
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
        ):
            raise InvalidArgument(f"{name}: the verdict must be a number from 0 to 1, or null for not applicable")
    cid = _uuid(call_id)
    with engine.begin() as conn:
        status = _status_for_update(conn, cid, tenant)
        if status is None:
            raise NotFound(f"call {call_id} is not in the review queue")
        stored = store_labels(conn, cid, reviewer, verdicts)
        conn.execute(
            sa.text(
                "UPDATE review_items SET status = 'resolved', assigned_to = :who, comment = :comment, "
                "resolved_at = now(), updated_at = now() WHERE call_id = :id"
            ),
            {"id": cid, "who": reviewer, "comment": comment},
        )
    return stored


def store_labels(conn: sa.Connection, call_id: uuid.UUID, reviewer: str, verdicts: Mapping[str, float | None]) -> int:
    """Human labels for a call (any call, reviewed or sampled for calibration), with the judge's
    current score per criterion beside them. Re-labelling replaces the reviewer's earlier label."""
    current = conn.execute(
        sa.text("SELECT criteria, judge_model FROM call_scores WHERE call_id = :id AND is_current"), {"id": call_id}
    ).one_or_none()
    criteria = current.criteria if current else {}
    for name, value in verdicts.items():
        judged = criteria.get(name) or {}
        judge_score = judged.get("score") if judged.get("applicable", True) else None
        conn.execute(
            sa.text(
                "INSERT INTO review_labels (call_id, criterion, human_score, judge_score, judge_model, reviewer) "
                "VALUES (:id, :c, :h, :j, :m, :r) ON CONFLICT (call_id, criterion, reviewer) DO UPDATE SET "
                "human_score = EXCLUDED.human_score, judge_score = EXCLUDED.judge_score, "
                "judge_model = EXCLUDED.judge_model, created_at = now()"
            ),
            {
                "id": call_id,
                "c": name,
                "h": value,
                "j": judge_score,
                "m": current.judge_model if current else None,
                "r": reviewer,
            },
        )
    return len(verdicts)
