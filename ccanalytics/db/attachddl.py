"""Attach's DDL: statements under a short lock_timeout, retried on a busy table; indexes built without blocking."""

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
from ccanalytics.db.engine import driver_connection
from ccanalytics.db.schemacheck import _INDEX_DDL, Index, _first_line


# ----------------------------------------------------------------------------------------- indexes
@dataclass(frozen=True)
class _Rel:
    oid: int
    name: str
    qualified: str  # as PostgreSQL prints a regclass: quoted and schema-qualified when needed
    kind: str  # r | p


def relation(raw: psycopg.Connection, schema: str, table: str) -> _Rel:
    row = one_row(
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


def ensure_index(ddl: DDL, rel: _Rel, ix: Index, name: str) -> str:
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
            child_index = ensure_index(ddl, child, ix, _child_name(child.name, rel.name, parent["name"]))
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
    return first if one_row(raw.execute("SELECT to_regclass(%s)", (_q(first),)))[0] is None else variant


def _child_name(child: str, parent_table: str, parent_index: str) -> str:
    suffix = parent_index[len(parent_table) + 1 :] if parent_index.startswith(parent_table + "_") else parent_index
    name = f"{child}_{suffix}"
    if len(name) > 63:
        name = f"{name[:54]}_{hashlib.md5(name.encode()).hexdigest()[:8]}"
    return name


# -------------------------------------------------------------------------------------- execution
class DDL:
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
def raw_autocommit(conn: sa.Connection) -> Iterator[psycopg.Connection]:
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


def one_row(cur: psycopg.Cursor) -> tuple[Any, ...]:
    """The row of a query that returns one (catalog lookups of objects known to exist)."""
    row = cur.fetchone()
    if row is None:
        raise MigrationError("a catalog query returned no row (was an object dropped during the attach?)")
    return row


def _q(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
