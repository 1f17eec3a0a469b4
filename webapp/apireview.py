"""The JSON API's review queue: list it, take a call, resolve it with a verdict per criterion; over the
reader's tenants."""

from __future__ import annotations

from dataclasses import asdict

from ccanalytics.core import labels, privacy
from ccanalytics.quality import review

from . import tenancy
from .apibase import actor, bp, reader_role
from .apiparams import TENANT, BodyField, Param, json_body, ok, parse_uuid, query
from .db import get_engine


@bp.get("/review")
@query(
    Param("status", "enum", "Only items in this status.", choices=review.STATUSES),
    Param("limit", "int", "At most this many items.", default=50, minimum=1, maximum=200),
    TENANT,
)
def review_queue(q):
    """The manual review queue (lowest scores first) and its counts per status."""
    engine = get_engine()
    scope = tenancy.scope()
    items = review.list_items(engine, status=q["status"], limit=q["limit"], tenant=scope)
    shown = [privacy.for_reader(asdict(i), reader_role()) for i in items]
    return ok({"items": shown, "counts": review.counts(engine, tenant=scope)})


@bp.post("/review/<call_id>/take")
@query()
@json_body({}, optional=True)
def review_take(q, call_id: str, b):
    """Start reviewing a call (new → in_review, assigned to you). A call of another tenant is a 404."""
    cid = parse_uuid(call_id)
    review.take(get_engine(), cid, actor(), tenant=tenancy.scope())  # audited by the library
    return ok({"call_id": cid, "status": "in_review", "assigned_to": actor()})


@bp.post("/review/<call_id>/resolve")
@query()
@json_body(
    {
        "verdicts": BodyField(
            "object",
            "Your score per criterion: 0–1, or null for not applicable.",
            required=True,
            properties={
                "properties": {
                    name: {"type": ["number", "null"], "minimum": 0, "maximum": 1} for name in labels.CRITERIA
                },
                "additionalProperties": False,
            },
        ),
        "comment": BodyField("string", "What went wrong (or right).", nullable=True, max_length=5000),
    }
)
def review_resolve(q, call_id: str, b):
    """Resolve a review with a verdict per criterion (stored as labels for judge calibration). A call of
    another tenant is a 404."""
    cid = parse_uuid(call_id)
    stored = review.resolve(get_engine(), cid, actor(), b["verdicts"], b["comment"], tenant=tenancy.scope())
    return ok({"call_id": cid, "status": "resolved", "labels_stored": stored})
