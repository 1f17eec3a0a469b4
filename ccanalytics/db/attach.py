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

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from ccanalytics.core.errors import MigrationError
from ccanalytics.db import sqlfiles
from ccanalytics.db.attachddl import DDL, ensure_index, literal, one_row, raw_autocommit, relation
from ccanalytics.db.migrations import HISTORY_TABLE, Migration, discover, status
from ccanalytics.db.schemacheck import (
    _CONCURRENTLY,
    _NOT_IN_TRANSACTION,
    SHARED_TABLES,
    CheckReport,
    Finding,
    _code,
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
    migrations = discover(directory)
    st = status(engine, directory)
    with engine.connect() as conn, raw_autocommit(conn) as raw:
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
    with raw_autocommit(conn) as raw:
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
        schema = one_row(raw.execute("SELECT quote_ident(current_schema())"))[0]
        ddl = DDL(raw, lock_timeout_ms=lock_timeout_ms, wait_s=lock_wait_s, on_step=on_step)
        with ddl.session():
            recorded = [] if applied else _create_own_objects(ddl, basis, own, shared)
            live = introspect(raw)
            for ix in expected.indexes:
                have = live.index_like(ix)
                if ix.table in shared and (have is None or not have.valid):
                    ensure_index(ddl, relation(raw, schema, ix.table), ix, ix.name)
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
    ddl: DDL, migrations: Sequence[Migration], statements: list[str], shared: set[str]
) -> list[Migration]:
    """Our own objects and the migration records, in one transaction."""
    records = [
        "INSERT INTO cca_schema_migrations "  # noqa: S608 — int version; file name and checksum quoted by literal
        "(version, name, checksum, duration_ms) "
        f"VALUES ({m.version}, {literal(m.name)}, {literal(m.checksum)}, 0)"
        for m in migrations
    ]
    marker = (
        "INSERT INTO cca_schema_attach (shared_tables) "  # noqa: S608 — SHARED_TABLES names, quoted by literal
        f"VALUES (ARRAY[{', '.join(literal(t) for t in sorted(shared))}]::text[])"
    )
    ddl.run("create ccanalytics tables and functions", [HISTORY_TABLE, _ATTACH_TABLE, *statements, *records, marker])
    return list(migrations)
