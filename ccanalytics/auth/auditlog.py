"""The audit log: ``audit`` records a change (inside the transaction that makes it), ``audit_entries``
reads the newest entries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection, Engine

from ccanalytics.core.errors import InvalidArgument


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def _audit_json(details: Any) -> str:
    """Details as JSON: ids (uuids) and other values JSON lacks written as their text."""
    return json.dumps(details, ensure_ascii=False, default=str)


def audit(
    target: Engine | Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a change. Pass a Connection to write inside the transaction that made the change."""
    if not actor or not action or not object_type:
        raise InvalidArgument("audit entries need an actor, an action and an object type")
    params = {
        "actor": str(actor)[:200],
        "action": action[:100],
        "type": object_type[:50],
        "id": None if object_id is None else str(object_id)[:200],
        "details": Jsonb(details or {}, dumps=_audit_json),
    }
    statement = sa.text(
        "INSERT INTO audit_log (actor, action, object_type, object_id, details) "
        "VALUES (:actor, :action, :type, :id, :details)"
    )
    if isinstance(target, Connection):
        target.execute(statement, params)
    else:
        with target.begin() as conn:
            conn.execute(statement, params)


def audit_entries(
    engine: Engine,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest audit entries first, optionally filtered."""
    if not 1 <= int(limit) <= 10_000:
        raise InvalidArgument("limit must be between 1 and 10000")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, at, actor, action, object_type, object_id, details FROM audit_log "
                "WHERE (CAST(:action AS text) IS NULL OR action = :action) "
                "AND (CAST(:type AS text) IS NULL OR object_type = :type) "
                "AND (CAST(:oid AS text) IS NULL OR object_id = :oid) "
                "AND (CAST(:actor AS text) IS NULL OR actor = :actor) "
                "ORDER BY at DESC, id DESC LIMIT :limit"
            ),
            {"action": action, "type": object_type, "oid": object_id, "actor": actor, "limit": int(limit)},
        ).all()
    return [AuditEntry(*r) for r in rows]
