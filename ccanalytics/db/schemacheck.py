"""The schema attach mode compares: what the migration files expect (run in a scratch schema that is
rolled back, then read back from the catalog: :func:`expected_schema`) against what a live database
has (:func:`introspect`: tables, columns, indexes, routines and views with their definitions), as
findings (:func:`compare`). Used by ``db check`` and attach mode
(ccanalytics.db.attach); changes nothing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ccanalytics.core.errors import MigrationError
from ccanalytics.db import sqlfiles
from ccanalytics.db.migrations import Migration

# the call processor's tables ccanalytics reads (sql/processor/schema.sql); their values are the
# processor's and never written by ccanalytics
SHARED_TABLES = (
    "tenants",
    "calls",
    "call_turns",
    "call_tool_calls",
    "customers",
    "prompt_versions",
    "prompt_ab_tests",
    "daily_stats",
    "llm_usage_log",
)


# ------------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): "character varying(100)", "timestamp with time zone", …
    not_null: bool
    default: str | None
    generated: str  # "s" for a stored generated column
    identity: str  # "a" / "d" for identity columns


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: str | None  # pg_get_partkeydef(): "RANGE (started_at)"; None when not partitioned
    columns: dict[str, Column]


@dataclass(frozen=True)
class Index:
    table: str
    name: str
    unique: bool
    definition: str  # what follows the table in pg_get_indexdef(): "USING btree (scenario, started_at)"
    valid: bool = True
    on_partition: bool = False


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]
    indexes: list[Index]  # indexes of the tables, and (on_partition) of their partitions
    routines: frozenset[str]  # "function cca_x(txt text)", "text search configuration cca_text", …
    views: dict[str, str] = field(default_factory=dict)  # view name -> pg_get_viewdef()

    def index_like(self, wanted: Index) -> Index | None:
        """The index of the wanted table with the same definition, unique when the wanted one is (a
        unique index serves a plain one); a valid one first."""
        found = [
            ix
            for ix in self.indexes
            if not ix.on_partition
            and ix.table == wanted.table
            and ix.definition == wanted.definition
            and (ix.unique or not wanted.unique)
        ]
        found.sort(key=lambda ix: (not ix.valid, ix.unique != wanted.unique, ix.name))
        return found[0] if found else None


INCOMPATIBLE = frozenset(
    {"incompatible_type", "partitioning", "cannot_add", "foreign_table", "processor_missing", "changed_view"}
)
NOTES = frozenset({"compatible_type", "unfilled_column", "invalid_partition_index"})


@dataclass(frozen=True)
class Finding:
    """One difference between the expected and the live schema."""

    kind: str
    target: str  # table, table.column, index or routine
    message: str
    table: str | None = None  # the table it concerns, if any

    @property
    def severity(self) -> str:
        """incompatible (attach refuses), missing (``db migrate`` adds it), or note (accepted)."""
        return "incompatible" if self.kind in INCOMPATIBLE else "note" if self.kind in NOTES else "missing"

    def line(self) -> str:
        return f"{self.severity}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "target": self.target,
            "table": self.table,
            "message": self.message,
        }


@dataclass(frozen=True)
class CheckReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing missing and nothing incompatible (notes are accepted differences)."""
        return all(f.severity == "note" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.to_dict() for f in self.findings]}


# ---------------------------------------------------------------------------------- introspection
_TABLES = """
SELECT c.relname AS name, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key
FROM pg_class c
WHERE c.relnamespace = to_regnamespace(%(ns)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""
_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default",
       a.attgenerated AS generated, a.attidentity AS identity
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = to_regnamespace(%(ns)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_INDEXES = """
SELECT t.relname AS table_name, i.relname AS name, x.indisunique AS "unique", x.indisvalid AS valid,
       pg_get_indexdef(x.indexrelid) AS ddl, t.relispartition AS on_partition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = to_regnamespace(%(ns)s) AND t.relkind IN ('r', 'p')
ORDER BY t.relname, i.relname
"""
_ROUTINES = """
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
FROM pg_proc p WHERE p.pronamespace = to_regnamespace(%(ns)s)
UNION ALL
SELECT 'text search configuration ' || cfgname FROM pg_ts_config WHERE cfgnamespace = to_regnamespace(%(ns)s)
UNION ALL
SELECT 'text search dictionary ' || dictname FROM pg_ts_dict WHERE dictnamespace = to_regnamespace(%(ns)s)
"""
_VIEWS = """
SELECT c.relname AS name, pg_get_viewdef(c.oid, true) AS definition
FROM pg_class c WHERE c.relnamespace = to_regnamespace(%(ns)s) AND c.relkind IN ('v', 'm')
"""
_INDEX_DDL = re.compile(r"^CREATE (UNIQUE )?INDEX (.+?) ON (ONLY )?(.+?) (USING .+)$", re.S)


def introspect(raw: psycopg.Connection, namespace: str | None = None) -> Schema:
    """Tables, columns, indexes and routines of ``namespace`` (default: the current schema)."""
    if namespace:
        ns = namespace
    else:
        row = raw.execute("SELECT current_schema()").fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        ns = row[0]
    with raw.cursor(row_factory=dict_row) as cur:
        tables = {r["name"]: Table(r["name"], r["partition_key"], {}) for r in cur.execute(_TABLES, {"ns": ns})}
        for r in cur.execute(_COLUMNS, {"ns": ns}).fetchall():
            table = r.pop("table_name")
            tables[table].columns[r["name"]] = Column(**r)
        indexes = []
        for r in cur.execute(_INDEXES, {"ns": ns}).fetchall():
            match = _INDEX_DDL.match(r["ddl"])
            if match is None:  # pragma: no cover - pg_get_indexdef always has this shape
                continue
            indexes.append(
                Index(r["table_name"], r["name"], r["unique"], match.group(5), r["valid"], r["on_partition"])
            )
    routines = frozenset(r[0] for r in raw.execute(_ROUTINES, {"ns": ns}))
    views = {name: _normal(definition) for name, definition in raw.execute(_VIEWS, {"ns": ns})}
    return Schema(tables, indexes, routines, views)


def _normal(definition: str) -> str:
    """A view's definition with its layout removed (pg_get_viewdef's indentation is not meaning)."""
    return " ".join(definition.split())


_CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.I)
_NOT_IN_TRANSACTION = re.compile(r"^\s*(VACUUM|CREATE\s+DATABASE|ALTER\s+SYSTEM)\b", re.I)


def expected_schema(raw: psycopg.Connection, migrations: Sequence[Migration]) -> Schema:
    """The schema the migration files produce on the call processor's tables (sql/processor/schema.sql),
    read back from a scratch schema that is rolled back.

    Needs CREATE on the database (for the scratch schema); leaves nothing behind. ``raw`` must be in
    autocommit mode (no transaction open).
    """
    scratch = f"cca_expected_{secrets.token_hex(4)}"
    current = None
    try:
        with raw.transaction(force_rollback=True):
            raw.execute("SET TRANSACTION READ WRITE")  # works in CCA_READ_ONLY sessions too: rolled back
            raw.execute(f'CREATE SCHEMA "{scratch}"')
            raw.execute(f'SET LOCAL search_path = "{scratch}"')
            raw.execute(sqlfiles.processor_schema())
            processor = introspect(raw, scratch)
            for m in migrations:
                current = m
                for statement in sqlfiles.split_statements(m.sql):
                    if not _NOT_IN_TRANSACTION.match(_code(statement)):
                        raw.execute(_CONCURRENTLY.sub("", statement))
            current = None
            return _ours_and_shared(introspect(raw, scratch), processor)
    except psycopg.Error as exc:
        where = f" (migration {current.path.name})" if current else ""
        raise MigrationError(
            f"cannot derive the expected schema{where}: {_first_line(exc)}; it is built in a scratch schema "
            "inside a transaction that is rolled back, which needs CREATE on the database"
        ) from exc


def _ours_and_shared(full: Schema, processor: Schema) -> Schema:
    """What a live database is compared with: the processor's tables ccanalytics reads (their columns)
    and everything the migrations add; not the processor's other tables, indexes or routines, which
    are its own business."""
    theirs = {(ix.table, ix.definition) for ix in processor.indexes}
    return Schema(
        {n: t for n, t in full.tables.items() if n in SHARED_TABLES or n not in processor.tables},
        [ix for ix in full.indexes if (ix.table, ix.definition) not in theirs],
        full.routines - processor.routines,
        {n: d for n, d in full.views.items() if n not in processor.views},
    )


# ------------------------------------------------------------------------------------- comparison
_SIZED = re.compile(r"\(\s*(\d+)(?:\s*,\s*\d+)?\s*\)")
_FAMILY = {
    "smallint": ("int", 2),
    "integer": ("int", 4),
    "bigint": ("int", 8),
    "real": ("float", 4),
    "double precision": ("float", 8),
    "numeric": ("float", 3),
    "character varying": ("text", 0),
    "text": ("text", 0),
    "character": ("text", 0),
}


def type_fit(expected: str, found: str) -> str:
    """``same`` (equal, or wider in the same family), ``compatible`` (narrower, blank-padded or
    numeric for a float: our code still works) or ``incompatible``."""
    if expected == found:
        return "same"
    eb, es = _base(expected)
    fb, fs = _base(found)
    if eb == fb:
        return "same" if fs is None or (es is not None and fs >= es) else "compatible"
    ef, ff = _FAMILY.get(eb), _FAMILY.get(fb)
    if ef is None or ff is None or ef[0] != ff[0]:
        return "incompatible"
    if ef[0] == "text":
        if fb == "character":
            return "compatible"
        if fb == "text" or (fs is None and eb == "character varying"):
            return "same"
        return "compatible"  # varchar(n) for text, or a shorter varchar
    if ef[0] == "float" and fb == "numeric":
        return "compatible"
    return "same" if ff[1] >= ef[1] else "compatible"


def _base(type_: str) -> tuple[str, int | None]:
    size = _SIZED.search(type_)
    return _SIZED.sub("", type_).replace("  ", " ").strip(), int(size.group(1)) if size else None


def compare(expected: Schema, live: Schema) -> list[Finding]:
    """What differs between the expected schema and the live one, one finding per difference."""
    out: list[Finding] = []
    for table in expected.tables.values():
        found = live.tables.get(table.name)
        if found is None and table.name in SHARED_TABLES:
            message = f"the call processor's table {table.name} is missing (ccanalytics needs its schema at head 058)"
            out.append(Finding("processor_missing", table.name, message, table.name))
            continue
        if found is None:
            out.append(Finding("missing_table", table.name, f"table {table.name} is missing", table.name))
            continue
        if table.partition_key != found.partition_key:
            message = f"{table.name} is {_partitioning(found)}, expected {_partitioning(table)}"
            out.append(Finding("partitioning", table.name, message, table.name))
        out.extend(_compare_columns(table, found))
    for ix in expected.indexes:
        if ix.table not in live.tables:
            continue
        have = live.index_like(ix)
        if have is None:
            message = f"{'unique ' if ix.unique else ''}index {ix.name} on {ix.table} {ix.definition} is missing"
            out.append(Finding("missing_index", ix.name, message, ix.table))
        elif not have.valid:
            message = f"index {have.name} on {ix.table} is not valid (its build did not finish)"
            out.append(Finding("invalid_index", have.name, message, ix.table))
    for ix in live.indexes:
        if ix.on_partition and not ix.valid:
            message = f"index {ix.name} on partition {ix.table} is not valid (an interrupted concurrent build)"
            out.append(Finding("invalid_partition_index", ix.name, message, ix.table))
    for routine in sorted(expected.routines - live.routines):
        out.append(Finding("missing_routine", routine, f"{routine} is missing"))
    for name, definition in sorted(expected.views.items()):
        have_view = live.views.get(name)
        if have_view is None:
            out.append(Finding("missing_view", name, f"view {name} is missing"))
        elif have_view != definition:
            message = (
                f"view {name} reads something other than its migration defines (replaced by hand?): "
                "its figures cannot be trusted"
            )
            out.append(Finding("changed_view", name, message))
    return out


def _compare_columns(table: Table, found: Table) -> Iterator[Finding]:
    for col in table.columns.values():
        target = f"{table.name}.{col.name}"
        have = found.columns.get(col.name)
        if have is None:
            if table.name in SHARED_TABLES:
                message = (
                    f"the call processor's column {target} is missing (ccanalytics needs its schema at head 058; "
                    "it never adds columns to the processor's tables)"
                )
                yield Finding("processor_missing", target, message, table.name)
            elif col.generated or col.identity:
                kind = "generated" if col.generated else "identity"
                message = f"{target} ({kind} column) is missing: adding it would rewrite the table"
                yield Finding("cannot_add", target, message, table.name)
            else:
                yield Finding("missing_column", target, f"column {target} {col.type} is missing", table.name)
            continue
        fit = type_fit(col.type, have.type)
        if fit == "incompatible":
            yield Finding("incompatible_type", target, f"{target} is {have.type}, expected {col.type}", table.name)
        elif fit == "compatible":
            message = f"{target} is {have.type}, expected {col.type} (compatible; values must fit)"
            yield Finding("compatible_type", target, message, table.name)
    if table.name in SHARED_TABLES:
        for col in found.columns.values():
            if col.name not in table.columns and col.not_null and col.default is None and not col.identity:
                target = f"{table.name}.{col.name}"
                message = (
                    f"{target} is NOT NULL without a default and unknown to ccanalytics: ccanalytics ingest cannot "
                    "write such rows (the call processor's own inserts are unaffected)"
                )
                yield Finding("unfilled_column", target, message, table.name)


def _partitioning(table: Table) -> str:
    return f"partitioned by {table.partition_key}" if table.partition_key else "not partitioned"


def _code(statement: str) -> str:
    """The statement without its leading comment lines."""
    lines = statement.strip().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines).strip()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
