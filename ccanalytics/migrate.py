"""Schema migrations: numbered SQL files in ``sql/migrations`` applied in order and recorded.

Each file runs in its own transaction (a file whose first line is ``-- cca:no-transaction`` runs in
autocommit, for ``CREATE INDEX CONCURRENTLY``). A session advisory lock makes concurrent
``db migrate`` runs wait for each other instead of racing. A migration file changed after it was
applied is refused: the database would no longer match the files.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import partitions, sqlfiles
from .errors import MigrationError

MIGRATION_LOCK_KEY = 0x6363_616D  # "ccam"
_FILE_RE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION_MARKER = "-- cca:no-transaction"

_CREATE_TABLE = """
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

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.changed


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


def _applied(conn: sa.Connection) -> dict[int, AppliedMigration]:
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
        applied = _applied(conn)
        parts = partitions.list_partitions(conn) if applied else {}
    by_version = {m.version: m for m in migrations}
    changed = [v for v, a in applied.items() if v in by_version and by_version[v].checksum != a.checksum]
    pending = [m for m in migrations if m.version not in applied]
    return MigrationStatus(list(applied.values()), pending, changed, parts)


def migrate(
    engine: Engine,
    *,
    directory: Path | None = None,
    partitions_ahead_months: int = 3,
    on_applied=None,
) -> list[Migration]:
    """Apply pending migrations in order, then make sure partitions exist ahead of time.

    Uses a single connection that holds a session advisory lock for the whole run, so concurrent
    callers queue up instead of racing (and never need a second pooled connection).
    Returns the migrations applied by this call (empty when the schema was current).
    """
    migrations = discover(directory)
    applied_now: list[Migration] = []
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                conn.execute(sa.text(_CREATE_TABLE))
            applied = _applied(conn)
            conn.commit()
            for m in migrations:
                if m.version in applied:
                    if applied[m.version].checksum != m.checksum:
                        raise MigrationError(
                            f"migration {m.path.name} was changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                _apply(conn, m)
                applied_now.append(m)
                if on_applied:
                    on_applied(m)
            with conn.begin():
                partitions.ensure_ahead(conn, months_ahead=partitions_ahead_months)
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
    return applied_now


def _apply(conn: sa.Connection, m: Migration) -> None:
    started = time.perf_counter()
    record = sa.text("INSERT INTO cca_schema_migrations (version, name, checksum, duration_ms) VALUES (:v, :n, :c, :d)")
    raw = conn.connection.driver_connection  # runs SQL text as is, without parameter parsing
    try:
        if m.transactional:
            with conn.begin():
                raw.execute(m.sql)
                conn.execute(record, _record_params(m, started))
        else:
            raw.autocommit = True
            try:
                for statement in sqlfiles.split_statements(m.sql):
                    raw.execute(statement)
            finally:
                raw.autocommit = False
            with conn.begin():
                conn.execute(record, _record_params(m, started))
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        orig = getattr(exc, "orig", None) or exc
        message = str(orig).strip().splitlines()[0]
        raise MigrationError(f"migration {m.path.name} failed: {message}") from exc


def _record_params(m: Migration, started: float) -> dict:
    return {
        "v": m.version,
        "n": m.name,
        "c": m.checksum,
        "d": int((time.perf_counter() - started) * 1000),
    }
