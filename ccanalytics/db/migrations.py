"""The migration files and a database's record of them: discovery, the history table, the status (no writes)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import MigrationError
from ccanalytics.db import partitions, sqlfiles

_FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION_MARKER = "-- cca:no-transaction"

HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS cca_schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(NO_TRANSACTION_MARKER)


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[AppliedMigration]
    pending: list[Migration]
    changed: list[int]  # versions whose file differs from what was applied
    partitions: dict[str, list[str]]
    attach_pending: bool = False  # an attach to the call processor's schema did not finish

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.changed and not self.attach_pending


def discover(directory: Path | None = None) -> list[Migration]:
    """Migration files in version order; duplicate versions or stray files are an error."""
    directory = directory or sqlfiles.sql_dir() / "migrations"
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must look like 001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"two migration files share version {version}: {found[version].path.name}, {path.name}"
            )
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def applied_by_version(conn: sa.Connection) -> dict[int, AppliedMigration]:
    exists = conn.execute(sa.text("SELECT to_regclass('cca_schema_migrations')")).scalar()
    if exists is None:
        return {}
    rows = conn.execute(
        sa.text("SELECT version, name, checksum, applied_at, duration_ms FROM cca_schema_migrations ORDER BY version")
    )
    return {r.version: AppliedMigration(*r) for r in rows}


def status(engine: Engine, directory: Path | None = None) -> MigrationStatus:
    migrations = discover(directory)
    with engine.connect() as conn:
        applied = applied_by_version(conn)
        parts = partitions.list_partitions(conn) if applied else {}
        attach_pending = bool(applied) and _attach_unfinished(conn)
    by_version = {m.version: m for m in migrations}
    changed = [v for v, a in applied.items() if v in by_version and by_version[v].checksum != a.checksum]
    pending = [m for m in migrations if m.version not in applied]
    return MigrationStatus(list(applied.values()), pending, changed, parts, attach_pending)


def _attach_unfinished(conn: sa.Connection) -> bool:
    if conn.execute(sa.text("SELECT to_regclass('cca_schema_attach')")).scalar() is None:
        return False
    return not conn.execute(sa.text("SELECT completed_at IS NOT NULL FROM cca_schema_attach")).scalar()
