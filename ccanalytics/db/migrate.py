"""Schema migrations: numbered SQL files in ``sql/migrations`` applied in order and recorded.

Each file runs in its own transaction (a file whose first line is ``-- cca:no-transaction`` runs in
autocommit, for ``CREATE INDEX CONCURRENTLY``). A session advisory lock makes concurrent
``db migrate`` runs wait for each other instead of racing. A migration file changed after it was
applied is refused: the database would no longer match the files.

The call processor's tables are never created by a migration file. A database the call processor
created (its tables, no migration history) is attached (:mod:`ccanalytics.db.attach`): our objects are
added without long locks, and the migrations are recorded so that later ones apply normally. An empty
database (the embedded demo, the tests) first gets the processor's tables exactly as the processor
creates them (``sql/processor/schema.sql``), so every database ccanalytics runs on has one shape. A
schema that is current is not written to at all, so read-only roles and replicas can run every reading
command.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import MigrationError, OldSchemaError, WriteRefused
from ccanalytics.db import attach, partitions, sqlfiles
from ccanalytics.db.engine import driver_connection, is_write_refused
from ccanalytics.db.migrations import (
    HISTORY_TABLE,
    NO_TRANSACTION_MARKER,
    AppliedMigration,
    Migration,
    MigrationStatus,
    applied_by_version,
    discover,
    status,
)

# the migration files and their status moved to ccanalytics.db.migrations; code outside this repository
# imports them from here as ccanalytics.migrate (ccanalytics.MOVED)
__all__ = [
    "MIGRATION_LOCK_KEY",
    "NO_TRANSACTION_MARKER",
    "AppliedMigration",
    "Migration",
    "MigrationStatus",
    "discover",
    "migrate",
    "status",
]

log = logging.getLogger(__name__)
MIGRATION_LOCK_KEY = 0x6363_616D  # "ccam"


def migrate(
    engine: Engine,
    *,
    directory: Path | None = None,
    partitions_ahead_months: int = 3,
    on_applied=None,
    on_step=None,
    lock_timeout_ms: int | None = None,
    lock_wait_s: float | None = None,
) -> list[Migration]:
    """Apply pending migrations in order, then make sure partitions exist ahead of time.

    Uses a single connection that holds a session advisory lock for the whole run, so concurrent
    callers queue up instead of racing (and never need a second pooled connection).
    Returns the migrations applied by this call (empty when the schema was current).

    A database holding the call processor's tables without our migration history is attached
    (:func:`ccanalytics.db.attach.attach`; ``on_step`` hears every attach step, ``lock_timeout_ms``
    bounds each wait for a lock and ``lock_wait_s`` how long a busy table is retried). A current
    schema is not written to: read-only roles pass.
    """
    migrations = discover(directory)
    applied_now: list[Migration] = []
    with engine.connect() as conn:
        _lock(conn)
        try:
            applied = applied_by_version(conn)
            if applied:
                _refuse_old_generation(conn)
            attaching = attach.needed(conn, has_history=bool(applied))
            has_table = conn.execute(sa.text("SELECT to_regclass('cca_schema_migrations')")).scalar() is not None
            conn.commit()
            if not applied and not attaching:
                _create_processor_tables(conn)
            pending = [m for m in migrations if m.version not in applied]
            try:
                if attaching:
                    recorded = _attach(
                        conn,
                        migrations,
                        set(applied),
                        on_step=on_step,
                        lock_timeout_ms=lock_timeout_ms,
                        lock_wait_s=lock_wait_s,
                    )
                    for m in recorded:
                        applied_now.append(m)
                        if on_applied:
                            on_applied(m)
                    applied = applied_by_version(conn)
                    conn.commit()
                elif not has_table:
                    with conn.begin():
                        conn.execute(sa.text(HISTORY_TABLE))
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
            except (sa.exc.DBAPIError, psycopg.Error, MigrationError, WriteRefused) as exc:
                cause = exc if not isinstance(exc, MigrationError) else exc.__cause__
                if cause is None or not is_write_refused(cause):
                    raise
                what = "an attach to the call processor's schema" if attaching else f"{len(pending)} migration(s)"
                raise MigrationError(
                    f"the database needs {what} but this connection may not change the schema "
                    f"({_first_line(cause)}); run `ccanalytics db migrate` with the schema owner's role"
                ) from exc
            _ensure_partitions(conn, partitions_ahead_months)
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
    return applied_now


def _attach(
    conn: sa.Connection,
    migrations: list[Migration],
    applied: set[int],
    *,
    on_step,
    lock_timeout_ms: int | None,
    lock_wait_s: float | None,
) -> list[Migration]:
    """Attach mode (:func:`ccanalytics.db.attach.attach`), with the limits the caller set (else attach's own)."""
    options: dict[str, Any] = {}
    if lock_timeout_ms is not None:
        options["lock_timeout_ms"] = lock_timeout_ms
    if lock_wait_s is not None:
        options["lock_wait_s"] = lock_wait_s
    return attach.attach(conn, migrations, applied=applied, on_step=on_step, **options)


def _create_processor_tables(conn: sa.Connection) -> None:
    """On an empty database, the call processor's tables as the processor creates them; ccanalytics then
    stands in for the processor's partition manager (:mod:`ccanalytics.db.partitions`)."""
    exists = conn.execute(sa.text("SELECT to_regclass('calls')")).scalar() is not None
    conn.commit()
    if exists:
        return
    raw = driver_connection(conn)
    try:
        with conn.begin():
            raw.execute(sqlfiles.processor_schema())
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        raise MigrationError(f"cannot create the call processor's tables: {_first_line(exc)}") from exc


def _refuse_old_generation(conn: sa.Connection) -> None:
    """Versions before 0.2 kept their own copy of the call processor's tables (bigint ids, columns of
    ccanalytics inside calls and call_turns). Such a database cannot be brought to the processor's shape
    in place; it is refused with what to do."""
    old = conn.execute(
        sa.text(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'calls' AND column_name = 'payload_sha256'"
        )
    ).scalar()
    if old:
        raise OldSchemaError(
            "this database was created by ccanalytics 0.1 with its own copy of the call processor's tables "
            "(bigint ids); it cannot be converted in place: create a new database and load the calls again "
            "(the embedded demo: `ccanalytics demo --reset`)"
        )


def _lock(conn: sa.Connection) -> None:
    """Take the migration lock, polling: a waiter must not sit in an open transaction, or a concurrent
    ``CREATE INDEX CONCURRENTLY`` of the lock holder (attach mode) would wait for it — a deadlock."""
    while True:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY}).scalar()
        conn.commit()
        if got:
            return
        time.sleep(0.1)


def _ensure_partitions(conn: sa.Connection, months_ahead: int) -> None:
    """Partitions ahead; a connection that may not create them (read-only) leaves them to the owner."""
    try:
        with conn.begin():
            partitions.ensure_ahead(conn, months_ahead=months_ahead)
    except (sa.exc.DBAPIError, WriteRefused) as exc:
        if not is_write_refused(exc):
            raise
        log.warning("partitions ahead not created: %s", _first_line(exc))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(getattr(orig, "message", None) or orig).strip().splitlines() or [type(exc).__name__])[0]


def _apply(conn: sa.Connection, m: Migration) -> None:
    started = time.perf_counter()
    record = sa.text("INSERT INTO cca_schema_migrations (version, name, checksum, duration_ms) VALUES (:v, :n, :c, :d)")
    raw = driver_connection(conn)  # runs SQL text as is, without parameter parsing
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
