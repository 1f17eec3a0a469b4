"""Attach mode: adopt a database the call processor already writes, adding only ccanalytics's own objects.

The call processor creates its tables itself (sql/processor/schema.sql restates them: tenants, customers,
calls, call_turns, call_tool_calls and llm_usage_log partitioned by month, prompt_versions,
prompt_ab_tests, daily_stats, its price tables) and makes their monthly partitions. When ``db migrate``
meets such a database (some of those tables, no migration history) it does not run the migration files
as they are; it:

1. derives the expected schema: sql/processor/schema.sql and the migration files run in a scratch schema
   inside a transaction that is rolled back, and the catalog is read back
   (:func:`ccanalytics.db.schemacheck.expected_schema`). Nothing is declared twice, so the comparison
   cannot drift from the migrations;
2. compares it with the live schema (:func:`ccanalytics.db.schemacheck.compare`) and refuses, changing
   nothing, when a processor table or column ccanalytics reads is missing (``processor_missing``: the
   processor's schema is older than the one ccanalytics knows; ccanalytics never adds a column to the
   processor's tables), a column has an incompatible type, a table is partitioned differently, or a
   table with one of our names is not ours;
3. runs the statements of the migration files that do not touch the processor's tables (our own tables,
   views, functions, text search configuration) in one transaction, and records the migrations;
4. builds ccanalytics's indexes on the processor's tables without blocking writers: ``CREATE INDEX
   CONCURRENTLY`` on every partition (an existing equal index of a partition is reused, whatever its
   name), the parent index ``ON ONLY``, then ``ALTER INDEX … ATTACH PARTITION``. None of them is unique.

Every statement runs under ``lock_timeout``: a busy table is retried a few times, then the run stops
with an error that says to re-run. Every step is idempotent, so an interrupted run completes on the
next one; an INVALID index left by an interrupted concurrent build is dropped and built again. The
processor's tables get indexes and nothing else: no column, constraint, trigger or partition, and their
data is never updated, deleted or rewritten. See docs/attach.md.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row

from ccanalytics.core import retry
from ccanalytics.core.errors import MigrationError
from ccanalytics.db import sqlfiles
from ccanalytics.db.engine import driver_connection
from ccanalytics.db.migrate import _CREATE_TABLE as _MIGRATIONS_TABLE
from ccanalytics.db.migrate import Migration, discover
from ccanalytics.db.schemacheck import (
    _CONCURRENTLY,
    _INDEX_DDL,
    _NOT_IN_TRANSACTION,
    SHARED_TABLES,
    CheckReport,
    Finding,
    Index,
    _code,
    _first_line,
    compare,
    expected_schema,
    introspect,
)

# A statement of the call processor that queues behind one of ours waits at most LOCK_TIMEOUT_MS; our
# statement then steps aside and tries again after a jittered pause, for up to LOCK_WAIT_S in all.
LOCK_TIMEOUT_MS = 100
LOCK_WAIT_S = 60.0

_ATTACH_TABLE = """
CREATE TABLE IF NOT EXISTS cca_schema_attach (
    id            integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    shared_tables text[] NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
)
"""


# ------------------------------------------------------------------------------------------ check
def check(engine: sa.Engine, directory=None) -> CheckReport:
    """Compare the live database with what the migration files expect; also pending or changed
    migrations and an unfinished attach. Changes nothing."""
    from ccanalytics.db.migrate import status

    migrations = discover(directory)
    st = status(engine, directory)
    with engine.connect() as conn, _raw_autocommit(conn) as raw:
        findings = compare(expected_schema(raw, migrations), introspect(raw))
    findings += [
        Finding("pending_migration", m.path.name, f"migration {m.path.name} is not applied") for m in st.pending
    ]
    findings += [
        Finding("changed_migration", str(v), f"migration {v:03d} differs from the one applied") for v in st.changed
    ]
    if st.attach_pending:
        findings.append(Finding("attach_incomplete", "cca_schema_attach", "attach did not finish: run db migrate"))
    return CheckReport(findings)


# ------------------------------------------------------------------------------------------ attach
def needed(conn: sa.Connection, *, has_history: bool) -> bool:
    """True when ``migrate`` must go through attach mode: an unfinished attach, or shared tables in the
    current schema with no migration history."""
    row = conn.execute(
        sa.text(
            """
            SELECT to_regclass(quote_ident(current_schema()) || '.cca_schema_attach') IS NOT NULL AS marker,
                   EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace(current_schema())
                           AND relname = ANY(:shared) AND relkind IN ('r', 'p')) AS shared
            """
        ),
        {"shared": list(SHARED_TABLES)},
    ).one()
    if row.marker:
        return not conn.execute(sa.text("SELECT completed_at IS NOT NULL FROM cca_schema_attach")).scalar()
    return row.shared and not has_history


def attach(
    conn: sa.Connection,
    migrations: Sequence[Migration],
    *,
    applied: set[int],
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    lock_wait_s: float = LOCK_WAIT_S,
    on_step: Callable[[str], None] | None = None,
) -> list[Migration]:
    """Bring a database the call processor created up to our schema without taking it over.

    ``applied``: versions already recorded (a resumed attach). Returns the migrations recorded now.
    ``conn`` must hold the migration lock and have no transaction open. ``on_step`` is called with a
    description after every completed step.
    """
    with _raw_autocommit(conn) as raw:
        # a resumed attach compares with the migrations it recorded; later ones apply normally afterwards
        basis = [m for m in migrations if m.version in applied] if applied else list(migrations)
        expected = expected_schema(raw, basis)
        live = introspect(raw)
        shared = {t for t in SHARED_TABLES if t in live.tables}
        findings = compare(expected, live)
        refusals = [f for f in findings if f.severity == "incompatible"]
        if not applied:
            refusals += [
                Finding("foreign_table", t, f"table {t} exists but is not one of the call processor's tables", t)
                for t in expected.tables
                if t in live.tables and t not in SHARED_TABLES
            ]
        if refusals:
            raise MigrationError(
                "cannot attach to this database, nothing was changed: " + "; ".join(f.message for f in refusals),
                details=[f.to_dict() for f in refusals],
            )
        own = [] if applied else _own_statements(basis, shared)  # refuses before any change, too
        schema = _one_row(raw.execute("SELECT quote_ident(current_schema())"))[0]
        ddl = _DDL(raw, lock_timeout_ms=lock_timeout_ms, wait_s=lock_wait_s, on_step=on_step)
        with ddl.session():
            recorded = [] if applied else _create_own_objects(ddl, basis, own, shared)
            live = introspect(raw)
            for ix in expected.indexes:
                have = live.index_like(ix)
                if ix.table in shared and (have is None or not have.valid):
                    _ensure_index(ddl, _relation(raw, schema, ix.table), ix, ix.name)
            remaining = [f for f in compare(expected, introspect(raw)) if f.severity == "missing" and f.table in shared]
            if remaining:  # pragma: no cover - every missing kind on shared tables is handled above
                raise MigrationError("attach did not complete: " + "; ".join(f.message for f in remaining))
            ddl.run("attach complete", ["UPDATE cca_schema_attach SET completed_at = now()"])
    return recorded


_STATEMENT_TARGET = (
    ("create_table", re.compile(r"^CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)),
    (
        "index",
        re.compile(
            r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\s+)?ON\s+(?:ONLY\s+)?(\w+)",
            re.I,
        ),
    ),
    ("alter_table", re.compile(r"^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(\w+)", re.I)),
    (
        "write",
        re.compile(
            r"^(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|"
            r"COMMENT\s+ON\s+(?:TABLE|COLUMN)|CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+\w+\s+.*?\s+ON)\s+(\w+)",
            re.I | re.S,
        ),
    ),
)


def _own_statements(migrations: Sequence[Migration], shared: set[str]) -> list[str]:
    """The statements of the migration files that do not touch the shared tables (the comparison
    covers those): our tables, functions and text search objects. A statement that would write to a
    shared table is refused."""
    statements = []
    for m in migrations:
        for statement in sqlfiles.split_statements(m.sql):
            code = _code(statement)
            if _NOT_IN_TRANSACTION.match(code):
                continue
            for kind, pattern in _STATEMENT_TARGET:
                match = pattern.match(code)
                if match and match.group(1).lower() in shared:
                    if kind == "write":
                        raise MigrationError(
                            f"cannot attach to this database, nothing was changed: migration {m.path.name} runs "
                            f"{' '.join(code.split()[:3])} … on the call processor's table {match.group(1)}"
                        )
                    break
            else:
                statements.append(_CONCURRENTLY.sub("", statement))  # our own, new, empty tables
    return statements


def _create_own_objects(
    ddl: _DDL, migrations: Sequence[Migration], statements: list[str], shared: set[str]
) -> list[Migration]:
    """Our own objects and the migration records, in one transaction."""
    records = [
        "INSERT INTO cca_schema_migrations "  # noqa: S608 — int version; file name and checksum quoted by _literal
        "(version, name, checksum, duration_ms) "
        f"VALUES ({m.version}, {_literal(m.name)}, {_literal(m.checksum)}, 0)"
        for m in migrations
    ]
    marker = (
        "INSERT INTO cca_schema_attach (shared_tables) "  # noqa: S608 — SHARED_TABLES names, quoted by _literal
        f"VALUES (ARRAY[{', '.join(_literal(t) for t in sorted(shared))}]::text[])"
    )
    ddl.run(
        "create ccanalytics tables and functions", [_MIGRATIONS_TABLE, _ATTACH_TABLE, *statements, *records, marker]
    )
    return list(migrations)


# ----------------------------------------------------------------------------------------- indexes
@dataclass(frozen=True)
class _Rel:
    oid: int
    name: str
    qualified: str  # as PostgreSQL prints a regclass: quoted and schema-qualified when needed
    kind: str  # r | p


def _relation(raw: psycopg.Connection, schema: str, table: str) -> _Rel:
    row = _one_row(
        raw.execute(
            "SELECT c.oid, c.relname, c.oid::regclass::text, c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (f"{schema}.{_q(table)}",),
        )
    )
    return _Rel(*row)


def _children(raw: psycopg.Connection, rel: _Rel) -> list[_Rel]:
    rows = raw.execute(
        "SELECT c.oid, c.relname, c.oid::regclass::text, c.relkind FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        (rel.oid,),
    ).fetchall()
    return [_Rel(*r) for r in rows]


def _indexes_of(raw: psycopg.Connection, rel: _Rel) -> list[dict[str, Any]]:
    with raw.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """
            SELECT i.oid, i.relname AS name, i.oid::regclass::text AS qualified, x.indisunique AS "unique",
                   x.indisvalid AS valid, pg_get_indexdef(x.indexrelid) AS ddl,
                   (SELECT inhparent FROM pg_inherits WHERE inhrelid = i.oid) AS parent_index
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s ORDER BY i.relname
            """,
            (rel.oid,),
        ).fetchall()
    for r in rows:
        ddl = r.pop("ddl")
        parsed = _INDEX_DDL.match(ddl)
        if parsed is None:
            raise MigrationError(f"cannot read the index definition {ddl!r}")
        r["definition"] = parsed.group(5)
    return rows


def _ensure_index(ddl: _DDL, rel: _Rel, ix: Index, name: str) -> str:
    """Make sure ``rel`` has an index ``ix`` (recursively for partitioned tables) without blocking
    writers; returns the index (qualified). Idempotent: reuses equal indexes, rebuilds invalid ones."""
    raw = ddl.raw
    existing = _indexes_of(raw, rel)
    same = [e for e in existing if e["definition"] == ix.definition and e["unique"] == ix.unique]
    unique = "UNIQUE " if ix.unique else ""
    if rel.kind == "p":
        if not same:
            name = _free_name(raw, name, ix)
            create = f"CREATE {unique}INDEX IF NOT EXISTS {_q(name)} ON ONLY {rel.qualified} {ix.definition}"
            ddl.run(f"index {name} on {rel.name}", [create])
            same = [e for e in _indexes_of(raw, rel) if e["name"] == name]
        parent = same[0]
        if parent["valid"]:
            return parent["qualified"]
        attached = {
            r[0]
            for r in raw.execute(
                "SELECT x.indrelid FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid "
                "WHERE i.inhparent = %s",
                (parent["oid"],),
            )
        }
        for child in _children(raw, rel):
            if child.oid in attached:
                continue
            child_index = _ensure_index(ddl, child, ix, _child_name(child.name, rel.name, parent["name"]))
            ddl.run(
                f"attach {child_index} to {parent['name']}",
                [f"ALTER INDEX {parent['qualified']} ATTACH PARTITION {child_index}"],
            )
        return parent["qualified"]
    usable = [e for e in same if e["valid"] and e["parent_index"] is None]
    if usable:
        return usable[0]["qualified"]
    for e in existing:
        if e["name"] in _names(name, ix) and not e["valid"]:  # our own build, interrupted
            drop = f"DROP INDEX CONCURRENTLY IF EXISTS {e['qualified']}"
            ddl.run(f"drop invalid index {e['name']}", [drop], atomic=False)
    name = _free_name(raw, name, ix)
    schema = rel.qualified.rsplit(".", 1)[0] + "." if "." in rel.qualified else ""
    index = f"{schema}{_q(name)}"
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {index}"
    try:
        ddl.run(
            f"index {name} on {rel.name}",
            [f"CREATE {unique}INDEX CONCURRENTLY {_q(name)} ON {rel.qualified} {ix.definition}"],
            atomic=False,
            cleanup=[drop],  # a build that timed out leaves an invalid index behind
        )
    except MigrationError as exc:
        if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
            ddl.run(f"drop invalid index {name}", [drop], atomic=False)
            raise MigrationError(
                f"cannot build the unique index {ix.name} on {ix.table} {ix.definition}: "
                f"{_first_line(exc.__cause__)}. The call processor's data has duplicates that ccanalytics's schema "
                "forbids; resolve them and re-run `ccanalytics db migrate`"
            ) from exc
        raise
    return index


def _names(name: str, ix: Index) -> tuple[str, str]:
    """The name attach gives an index, and its deterministic variant for when another relation has it."""
    digest = hashlib.md5(f"{name}|{ix.unique}|{ix.definition}".encode()).hexdigest()[:6]
    return name, f"{name[:56]}_{digest}"


def _free_name(raw: psycopg.Connection, name: str, ix: Index) -> str:
    first, variant = _names(name, ix)
    return first if _one_row(raw.execute("SELECT to_regclass(%s)", (_q(first),)))[0] is None else variant


def _child_name(child: str, parent_table: str, parent_index: str) -> str:
    suffix = parent_index[len(parent_table) + 1 :] if parent_index.startswith(parent_table + "_") else parent_index
    name = f"{child}_{suffix}"
    if len(name) > 63:
        name = f"{name[:54]}_{hashlib.md5(name.encode()).hexdigest()[:8]}"
    return name


# -------------------------------------------------------------------------------------- execution
class _DDL:
    """Runs attach statements with a short ``lock_timeout``, retrying a busy table after jittered
    pauses (so two waiting statements do not retry in step) until ``wait_s`` has passed."""

    def __init__(
        self,
        raw: psycopg.Connection,
        *,
        lock_timeout_ms: int,
        wait_s: float,
        on_step: Callable[[str], None] | None,
    ) -> None:
        self.raw = raw
        self.lock_timeout_ms = max(1, int(lock_timeout_ms))
        self.wait_s = max(0.0, float(wait_s))
        self.on_step = on_step

    @contextmanager
    def session(self) -> Iterator[None]:
        self.raw.execute(f"SET lock_timeout = {self.lock_timeout_ms}")
        self.raw.execute("SET statement_timeout = 0")  # index builds on big partitions take their time
        try:
            yield
        finally:
            if not self.raw.closed:
                self.raw.execute("RESET lock_timeout")
                self.raw.execute("RESET statement_timeout")

    def run(self, what: str, statements: list[str], *, atomic: bool = True, cleanup: Sequence[str] = ()) -> None:
        """Run ``statements`` (in one transaction when ``atomic``); on a lock timeout run ``cleanup`` and
        try again after a pause, until ``wait_s`` has passed."""
        deadline = time.monotonic() + self.wait_s
        attempt = 0
        while True:
            attempt += 1
            try:
                if atomic:
                    with self.raw.transaction():
                        for statement in statements:
                            self.raw.execute(statement)
                else:
                    for statement in statements:
                        self.raw.execute(statement)
                break
            except psycopg.errors.LockNotAvailable as exc:
                pause = _pause(attempt)
                if time.monotonic() + pause > deadline:
                    raise MigrationError(
                        f"attach step '{what}' could not get its lock within {self.lock_timeout_ms} ms "
                        f"({attempt} attempts in {self.wait_s:g} s): the table is busy (a long query or "
                        "transaction holds it). Nothing is half-done; re-run `ccanalytics db migrate`"
                    ) from exc
                time.sleep(pause)
                for statement in cleanup:
                    try:
                        self.raw.execute(statement)
                    except psycopg.Error:  # busy too: the next attempt (or run) finds the leftover
                        pass
            except psycopg.Error as exc:
                raise MigrationError(f"attach step '{what}' failed: {_first_line(exc)}") from exc
        if self.on_step:
            self.on_step(what)


def _pause(attempt: int) -> float:
    """Seconds to step aside after the ``attempt``-th lock timeout: 50 ms, growing to at most 1 s,
    with full jitter."""
    return 0.05 + retry.delay(attempt + 1, base=0.05, cap=0.95, jitter=1.0)


@contextmanager
def _raw_autocommit(conn: sa.Connection) -> Iterator[psycopg.Connection]:
    """The connection's psycopg connection in autocommit mode (SQL text runs as is)."""
    if conn.in_transaction():
        conn.commit()
    raw = driver_connection(conn)
    raw.autocommit = True
    try:
        yield raw
    finally:
        if not raw.closed:
            raw.autocommit = False


def _one_row(cur: psycopg.Cursor) -> tuple[Any, ...]:
    """The row of a query that returns one (catalog lookups of objects known to exist)."""
    row = cur.fetchone()
    if row is None:
        raise MigrationError("a catalog query returned no row (was an object dropped during the attach?)")
    return row


def _q(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
