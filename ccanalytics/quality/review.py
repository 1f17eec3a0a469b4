"""The manual review queue: calls with a low score or an auto-fail, taken by a reviewer, resolved
with a verdict per criterion (stored as human labels for calibration) and a comment.

Every function takes ``tenant`` (a slug, several, or None for every tenant): the queue of those
tenants' calls; taking or resolving a call of another tenant is NotFound, as if it were not queued.

Taking and resolving write the audit log (``review.taken``, ``review.resolved``) in the transaction
that makes the change; ``ccanalytics.quality.reviewhistory`` reads it back: who took and who resolved
which call, when. :func:`queue` is the queue page's list: filters by status, failed criterion, reviewer
and period of the call, with the total and the failed criteria of each call."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.core import rutext, timeutil
from ccanalytics.core.definitions import LOW_QUALITY
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.db import tenants

STATUSES = ("new", "in_review", "resolved")
MAX_COMMENT = 5000  # characters of a review comment
SORTS = ("score", "date", "updated")
EVENTS = ("review.taken", "review.resolved")  # the audit log's actions of the review queue
# a review item of the scope's tenants (every item when :tenants is NULL)
_OF_TENANTS = (
    "(CAST(:tenants AS text[]) IS NULL OR EXISTS (SELECT 1 FROM cca_calls c "  # noqa: S608 — tenants.SQL is a constant
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


def call_uuid(call_id: str | uuid.UUID) -> uuid.UUID:
    """A call's id as a uuid (InvalidArgument when it is not one)."""
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
                "SELECT r.call_id::text, r.started_at, r.status, "  # noqa: S608 — _OF_TENANTS is a constant filter
                "r.reasons, r.score, r.assigned_to, r.comment, "
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
            sa.text(
                "SELECT r.status, count(*) FROM review_items r "  # noqa: S608 — _OF_TENANTS is a constant filter
                f"WHERE {_OF_TENANTS} GROUP BY 1"
            ),
            tenants.params(scope),
        ).all()
    return {s: 0 for s in STATUSES} | dict(rows)


def _item_for_update(conn: sa.Connection, call_id: uuid.UUID, tenant: tenants.TenantArg) -> Any:
    """The item's status and reviewer, locked; None when the call is not queued or is another tenant's."""
    scope = tenants.scope(conn, tenant)
    return conn.execute(
        sa.text(
            "SELECT r.status, r.assigned_to FROM review_items r "  # noqa: S608 — _OF_TENANTS is a constant filter
            f"WHERE r.call_id = :id AND {_OF_TENANTS} "
            "FOR UPDATE OF r"
        ),
        {"id": call_id, **tenants.params(scope)},
    ).one_or_none()


def _check_reviewer(reviewer: str) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InvalidArgument("reviewer is required")
    return reviewer.strip()


def _check_comment(comment: Any) -> str | None:
    """The review comment: stripped, None when empty; at most MAX_COMMENT characters, no NUL."""
    if comment is None:
        return None
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\x00" in comment:
        raise InvalidArgument(
            f"the comment must be a text of at most {MAX_COMMENT} characters without NUL",
            ru=f"комментарий: не больше {rutext.count(MAX_COMMENT, 'символа', 'символов', 'символов')}, "
            "без недопустимых символов",
        )
    return comment.strip() or None


def take(engine: Engine, call_id: str | uuid.UUID, reviewer: str, *, tenant: tenants.TenantArg = None) -> None:
    """A reviewer starts on a call (new → in_review; an item in review is reassigned to them). A call
    outside ``tenant`` is NotFound. Audited (``review.taken``, with the previous reviewer when reassigned)."""
    reviewer = _check_reviewer(reviewer)
    cid = call_uuid(call_id)
    with engine.begin() as conn:
        item = _item_for_update(conn, cid, tenant)
        if item is None:
            raise NotFound(f"call {call_id} is not in the review queue")
        if item.status == "resolved":
            raise Conflict(f"call {call_id} is already resolved", ru="Этот звонок уже проверен: взять его нельзя.")
        conn.execute(
            sa.text(
                "UPDATE review_items SET status = 'in_review', assigned_to = :who, updated_at = now() "
                "WHERE call_id = :id"
            ),
            {"id": cid, "who": reviewer},
        )
        previous = item.assigned_to if item.status == "in_review" and item.assigned_to != reviewer else None
        audit(conn, reviewer, "review.taken", "call", str(cid), {"from": previous} if previous else None)


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
    of labels stored. All or nothing, audited in the same transaction (``review.resolved`` with the
    verdicts and the comment). A call outside ``tenant`` is NotFound."""
    reviewer = _check_reviewer(reviewer)
    comment = _check_comment(comment)
    unknown = set(verdicts) - set(CRITERIA)
    if unknown:
        raise InvalidArgument(f"unknown criteria: {', '.join(sorted(unknown))}")
    for name, value in verdicts.items():
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
        ):
            raise InvalidArgument(f"{name}: the verdict must be a number from 0 to 1, or null for not applicable")
    cid = call_uuid(call_id)
    with engine.begin() as conn:
        if _item_for_update(conn, cid, tenant) is None:
            raise NotFound(f"call {call_id} is not in the review queue")
        if not verdicts and comment is None:
            raise InvalidArgument(
                "give a verdict for at least one criterion or a comment",
                ru="поставьте вердикт хотя бы по одному критерию или напишите комментарий",
            )
        stored = store_labels(conn, cid, reviewer, verdicts)
        conn.execute(
            sa.text(
                "UPDATE review_items SET status = 'resolved', assigned_to = :who, comment = :comment, "
                "resolved_at = now(), updated_at = now() WHERE call_id = :id"
            ),
            {"id": cid, "who": reviewer, "comment": comment},
        )
        audit(conn, reviewer, "review.resolved", "call", str(cid), {"verdicts": dict(verdicts), "comment": comment})
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


# ------------------------------------------------------------------------------------ the queue page
@dataclass(frozen=True)
class QueueRow:
    """One call of the queue as the queue page shows it."""

    call_id: str
    started_at: datetime
    tenant: str | None
    scenario: str | None
    status: str
    reasons: tuple[str, ...]
    score: float | None
    assigned_to: str | None
    comment: str | None
    updated_at: datetime
    resolved_at: datetime | None
    failed: tuple[str, ...] = ()  # criteria the judge failed (applicable, score under LOW_QUALITY)


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int  # items matching the filters (every page)
    offset: int
    limit: int
    counts: dict[str, int] = field(default_factory=dict)  # per status, with every filter but the status

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total


def _check_days(date_from: date | None, date_to: date | None) -> None:
    if date_from is not None and date_to is not None and date_to < date_from:
        raise InvalidArgument(f"date_to ({date_to}) is before date_from ({date_from})")


def day_bounds(date_from: date | None, date_to: date | None, tz: str) -> dict[str, datetime | None]:
    """[start, end) of the local days given (either end may be open), as the queries' parameters."""
    _check_days(date_from, date_to)
    return {
        "start": timeutil.day_start(date_from, tz) if date_from is not None else None,
        "end": timeutil.day_start(date_to + timedelta(days=1), tz) if date_to is not None else None,
    }


# the queue's filters over review_items r, the call c (cca_calls) and its current score s
_QUEUE_FROM = f"""
FROM review_items r
LEFT JOIN cca_calls c ON c.id = r.call_id AND c.started_at = r.started_at
LEFT JOIN call_scores s ON s.current_call_id = r.call_id
WHERE {tenants.SQL}
  AND (CAST(:criterion AS text) IS NULL OR (
       coalesce((s.criteria -> CAST(:criterion AS text) ->> 'applicable')::boolean, true)
       AND (s.criteria -> CAST(:criterion AS text) ->> 'score')::float8 < :low))
  AND (CAST(:reviewer AS text) IS NULL OR r.assigned_to = :reviewer)
  AND (CAST(:start AS timestamptz) IS NULL OR r.started_at >= :start)
  AND (CAST(:end AS timestamptz) IS NULL OR r.started_at < :end)
"""
_ORDER = {
    "score": "r.score ASC NULLS FIRST, r.started_at DESC, r.call_id",
    "date": "r.started_at DESC, r.call_id",
    "updated": "r.updated_at DESC, r.call_id",
}


def queue(
    engine: Engine,
    *,
    status: str | None = None,
    criterion: str | None = None,
    reviewer: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    tenant: tenants.TenantArg = None,
    sort: str = "score",
    offset: int = 0,
    limit: int = 50,
    tz: str = timeutil.DEFAULT_TZ,
) -> QueuePage:
    """The queue of ``tenant``'s calls (default: every tenant) filtered by status, a criterion the judge
    failed (applicable and scored under LOW_QUALITY), the reviewer it is assigned to and the local days
    of the call (``date_from`` … ``date_to`` inclusive, in ``tz``); sorted by score (lowest first), call
    date or last change (newest first). ``counts`` has every filter but the status."""
    if status is not None and status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}")
    if criterion is not None and criterion not in CRITERIA:
        raise InvalidArgument(f"unknown criterion: {criterion!r}")
    if sort not in SORTS:
        raise InvalidArgument(f"sort must be one of {', '.join(SORTS)}")
    if not 1 <= int(limit) <= 500 or not 0 <= int(offset) <= 1_000_000:
        raise InvalidArgument("limit must be 1–500 and offset 0–1000000")
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        params: dict[str, Any] = {
            "criterion": criterion,
            "low": LOW_QUALITY,
            "reviewer": reviewer,
            **day_bounds(date_from, date_to, tz),
            **tenants.params(scope),
        }
        per_status: dict[str, int] = dict(
            conn.execute(sa.text(f"SELECT r.status, count(*) {_QUEUE_FROM} GROUP BY 1"), params).all()
        )
        counts = {s: per_status.get(s, 0) for s in STATUSES}
        total = counts[status] if status is not None else sum(counts.values())
        rows = conn.execute(
            sa.text(
                "SELECT r.call_id::text AS call_id, r.started_at, c.tenant, c.scenario, r.status, r.reasons, r.score, "
                f"r.assigned_to, r.comment, r.updated_at, r.resolved_at, s.criteria {_QUEUE_FROM} "
                f"AND (CAST(:status AS text) IS NULL OR r.status = :status) ORDER BY {_ORDER[sort]} "
                "LIMIT :limit OFFSET :offset"
            ),
            {**params, "status": status, "limit": int(limit), "offset": int(offset)},
        ).all()
    return QueuePage(
        [
            QueueRow(
                r.call_id,
                r.started_at,
                r.tenant,
                r.scenario,
                r.status,
                tuple(r.reasons),
                r.score,
                r.assigned_to,
                r.comment,
                r.updated_at,
                r.resolved_at,
                _failed(r.criteria),
            )
            for r in rows
        ],
        total,
        int(offset),
        int(limit),
        counts,
    )


def _failed(criteria: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The criteria a judge failed (applicable and scored under LOW_QUALITY), in the rubric's order."""
    out = []
    for name in CRITERIA:
        c = (criteria or {}).get(name)
        if isinstance(c, Mapping) and c.get("applicable", True) and isinstance(c.get("score"), int | float):
            if c["score"] < LOW_QUALITY:
                out.append(name)
    return tuple(out)


def reviewers(engine: Engine) -> list[str]:
    """Everyone who was assigned a review or took or resolved one (for the reviewer filter)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT assigned_to FROM review_items WHERE assigned_to IS NOT NULL "
                    "UNION SELECT actor FROM audit_log WHERE object_type = 'call' AND action = ANY(:events) "
                    "ORDER BY 1"
                ),
                {"events": list(EVENTS)},
            ).scalars()
        )
