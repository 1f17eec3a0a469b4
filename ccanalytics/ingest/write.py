"""The writer: prepared calls into the processor's tables and ccanalytics's own by COPY, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import psycopg
import sqlalchemy as sa

from ccanalytics.core.errors import FieldProblem, RecordProblem
from ccanalytics.db import partitions
from ccanalytics.db.engine import driver_connection
from ccanalytics.ingest.prepare import (
    CALL_COPY_COLUMNS,
    INGEST_COLUMNS,
    TOOL_COLUMNS,
    TURN_COLUMNS,
    TURN_EXTRA_COLUMNS,
    PreparedCall,
)

OnConflict = Literal["replace", "ignore", "error"]
_LOCK_CLASS = 0x63636169  # "ccai": advisory-lock namespace for call ids
_CUSTOMER_LOCK_CLASS = 0x63636375  # "cccu": advisory-lock namespace for customers (by tenant and phone)


@dataclass
class IngestResult:
    """What one ingest call did."""

    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    ignored: int = 0
    rejected: int = 0
    turns: int = 0
    tool_calls: int = 0
    rejects: list[RecordProblem] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.inserted + self.replaced

    def add(self, other: IngestResult) -> None:
        for name in ("inserted", "replaced", "unchanged", "ignored", "rejected", "turns", "tool_calls"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejects.extend(other.rejects)

    def summary(self) -> dict[str, int]:
        return {
            "inserted": self.inserted,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "ignored": self.ignored,
            "rejected": self.rejected,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
        }


def write_calls(
    conn: sa.Connection, calls: list[PreparedCall], on_conflict: OnConflict
) -> tuple[IngestResult, list[RecordProblem]]:
    """Write prepared calls inside the caller's transaction. Returns (result, reference problems)."""
    result = IngestResult()
    ids = _array(c.call_id for c in calls)
    # serialise concurrent deliveries of the same call_id (ids are unique only with started_at)
    _advisory_locks(conn, _LOCK_CLASS, ids)
    ab_ids, problems = _resolve_ab_tests(conn, calls)
    tenants, tenant_problems = _resolve_tenants(conn, calls)
    problems += tenant_problems
    if problems:
        return result, problems

    # one primary-key probe per id and partition. With id = ANY(...) the planner scans partitions it
    # believes small, and during a load they are: 25 % of a 181k-call load went to this lookup,
    # growing with every batch. OFFSET 0 keeps the subquery a probe per id.
    existing = {
        row.id: row
        for row in conn.execute(
            sa.text(
                "SELECT k.*, i.payload_sha256, i.call_id IS NOT NULL AS delivered "
                "FROM unnest(CAST(:ids AS uuid[])) AS x(id) CROSS JOIN LATERAL ("
                "SELECT id, started_at, ended_at FROM calls WHERE id = x.id OFFSET 0) k "
                "LEFT JOIN cca_call_ingest i ON i.call_id = k.id"
            ),
            {"ids": ids},
        )
    }
    to_write: list[PreparedCall] = []
    replaced = []
    for call in calls:
        old = existing.get(call.call_id)
        if old is None:
            to_write.append(call)
            result.inserted += 1
        elif old.payload_sha256 == call.payload_sha256:
            result.unchanged += 1
        elif on_conflict == "ignore":
            result.ignored += 1
        elif not old.delivered:
            return result, [
                RecordProblem(
                    str(call.call_id),
                    str(call.call_id),
                    (FieldProblem("call_id", "written by the call processor itself; ccanalytics does not replace it"),),
                )
            ]
        elif on_conflict == "error":
            return result, [
                RecordProblem(
                    str(call.call_id),
                    str(call.call_id),
                    (FieldProblem("call_id", "already stored with different content"),),
                )
            ]
        else:
            to_write.append(call)
            replaced.append(old)
            result.replaced += 1
    if not to_write:
        return result, []

    try:
        partitions.ensure_months(conn, {month for call in to_write for month in call.months})
    except partitions.MissingPartition as exc:
        # an attached database: the processor's partition manager has not made that month (yet); a
        # problem of the calls that need it, not of the whole load
        missing = set(exc.months)
        return result, [
            RecordProblem(
                str(call.call_id),
                str(call.call_id),
                (
                    FieldProblem(
                        "started_at",
                        "no partition of the call processor's tables covers "
                        + partitions.missing_text(missing.intersection(call.months)),
                    ),
                ),
            )
            for call in to_write
            if missing.intersection(call.months)
        ]

    # serialise writers of the same customers until commit, so two deliveries for one new caller at
    # once make one customer. Taken after the call-id locks, in key order, by every writer: no deadlock.
    keys = {f"{tenants[c.call_id]}|{c.caller_id}" for c in to_write if c.caller_id and tenants.get(c.call_id)}
    _advisory_locks(conn, _CUSTOMER_LOCK_CLASS, _array(sorted(keys)))
    if replaced:
        _delete_calls(conn, replaced)
    customer_ids = _customers(conn, to_write, tenants)

    call_lines = []
    for call in to_write:
        tenant_id = tenants.get(call.call_id)
        customer_id = customer_ids.get((tenant_id, call.caller_id)) if call.caller_id else None
        call_lines.append(
            b"%s\t%s\t%s\n"
            % (
                call.call_line,
                b"\\N" if customer_id is None else str(customer_id).encode(),
                b"\\N" if tenant_id is None else str(tenant_id).encode(),
            )
        )
    raw = driver_connection(conn)
    with raw.cursor() as cur:
        _copy(cur, "calls", CALL_COPY_COLUMNS, call_lines)
        _copy(cur, "cca_call_ingest", INGEST_COLUMNS, [call.ingest_line for call in to_write])
        _copy(cur, "call_turns", TURN_COLUMNS, [call.turn_lines for call in to_write])
        _copy(cur, "cca_turn_extras", TURN_EXTRA_COLUMNS, [call.extra_lines for call in to_write])
        _copy(cur, "call_tool_calls", TOOL_COLUMNS, [call.tool_lines for call in to_write])
    _recount(conn, {cid for cid in customer_ids.values() if cid is not None})
    assigned = [(c.call_id, ab_ids[c.call_id], c.ab_test[2]) for c in to_write if c.ab_test and c.call_id in ab_ids]
    if assigned:
        conn.execute(
            sa.text(
                "INSERT INTO cca_ab_assignments (call_id, test_id, variant, source) "
                "SELECT *, 'ingest' FROM unnest(CAST(:c AS uuid[]), CAST(:t AS uuid[]), CAST(:v AS text[])) "
                # the prompt resolver recorded the variant at call start: its record stands
                "ON CONFLICT (call_id) DO NOTHING"
            ),
            {
                "c": _array(a[0] for a in assigned),
                "t": _array(a[1] for a in assigned),
                "v": _array(a[2] for a in assigned),
            },
        )
    result.turns = sum(call.turns for call in to_write)
    result.tool_calls = sum(call.tool_calls for call in to_write)
    return result, []


def _recount(conn: sa.Connection, customer_ids: set[Any]) -> None:
    """Counters of the batch's customers that ccanalytics created, from their calls (the customer locks
    are held). Rows whose counters are right already are not written."""
    if not customer_ids:
        return
    conn.execute(
        sa.text(
            "UPDATE customers u SET total_calls = s.n, first_call_at = s.f, last_call_at = s.l "
            "FROM (SELECT c.customer_id, count(*)::int AS n, min(c.started_at) AS f, max(c.started_at) AS l "
            "      FROM calls c WHERE c.customer_id = ANY(CAST(:ids AS uuid[])) GROUP BY 1) s "
            "WHERE u.id = s.customer_id "
            "AND EXISTS (SELECT 1 FROM cca_created_customers k WHERE k.customer_id = u.id) "
            "AND (u.total_calls, u.first_call_at, u.last_call_at) IS DISTINCT FROM (s.n, s.f, s.l)"
        ),
        {"ids": _array(sorted(str(i) for i in customer_ids))},
    )


def _advisory_locks(conn: sa.Connection, lock_class: int, keys: str) -> None:
    """Transaction advisory locks on the hashes of ``keys`` (an array literal), in hash order."""
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(:cls, k) FROM "
            "(SELECT DISTINCT hashtext(x) AS k FROM unnest(CAST(:keys AS text[])) x ORDER BY k) s"
        ),
        {"cls": lock_class, "keys": keys},
    )


def _array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of ``values`` (None is NULL), for ``CAST(:param AS type[])``: psycopg
    sends one string much faster than it adapts a list of a thousand values one by one."""
    items = ("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(items) + "}"


def _copy(cur: psycopg.Cursor, table: str, columns: tuple[str, ...], chunks: list[bytes]) -> None:
    """COPY prepared text (UTF-8) into ``table``; nothing when there is no row."""
    data = b"".join(chunks)
    if not data:
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        if cur.connection.info.encoding == "utf-8":
            copy.write(data)
        else:  # psycopg re-encodes text to the connection's client encoding
            copy.write(data.decode("utf-8"))


def _resolve_ab_tests(conn: sa.Connection, calls: list[PreparedCall]) -> tuple[dict[Any, Any], list[RecordProblem]]:
    """Map each call's A/B assignment to one of ccanalytics's tests; an unknown test is a problem of
    that record."""
    wanted = [(c.call_id, c.ab_test) for c in calls if c.ab_test]
    if not wanted:
        return {}, []
    names = sorted({ab[1] for _call_id, ab in wanted if ab[1]})
    ids = sorted({str(ab[0]) for _call_id, ab in wanted if ab[0]})
    rows = conn.execute(
        sa.text(
            "SELECT id, test_name FROM cca_ab_tests WHERE test_name = ANY(:names) OR id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"names": names, "ids": _array(ids)},
    ).all()
    by_name = {r.test_name: r.id for r in rows}
    known_ids = {r.id for r in rows}
    out: dict[Any, Any] = {}
    problems = []
    for call_id, (given_id, name, _variant) in wanted:
        test_id = given_id if given_id is not None else by_name.get(name)
        if given_id is not None and given_id not in known_ids:
            message = f"unknown A/B test id {given_id}"
        elif given_id is None and test_id is None:
            message = f"unknown A/B test {name!r}" if name else "needs test_id or test_name"
        elif given_id is not None and name and by_name.get(name) != given_id:
            message = f"test_id {given_id} and test_name {name!r} name different tests"
        else:
            out[call_id] = test_id
            continue
        problems.append(RecordProblem(str(call_id), str(call_id), (FieldProblem("ab_test", message),)))
    return out, problems


def _resolve_tenants(conn: sa.Connection, calls: list[PreparedCall]) -> tuple[dict[Any, Any], list[RecordProblem]]:
    """The tenant id of each call: the one its slug names, or the database's only tenant."""
    rows = conn.execute(sa.text("SELECT id, slug FROM tenants ORDER BY slug")).all()
    by_slug = {r.slug: r.id for r in rows}
    out: dict[Any, Any] = {}
    problems = []
    for call in calls:
        if call.tenant is not None:
            tenant_id = by_slug.get(call.tenant)
            message = None if tenant_id else f"unknown tenant {call.tenant!r}"
        elif len(rows) == 1:
            tenant_id, message = rows[0].id, None
        elif not rows:
            tenant_id, message = None, "the database has no tenant; the call processor creates them"
        else:
            tenant_id = None
            message = f"is required: the database has {len(rows)} tenants ({', '.join(by_slug)})"
        if message:
            problems.append(RecordProblem(str(call.call_id), str(call.call_id), (FieldProblem("tenant", message),)))
        else:
            out[call.call_id] = tenant_id
    return out, problems


def _delete_calls(conn: sa.Connection, old_rows: list[Any]) -> None:
    """Remove calls delivered before (only ever ones ccanalytics wrote) with everything of theirs."""
    ids = [r.id for r in old_rows]
    # bound the partition key so only the partitions of those calls are searched
    lo = min(r.started_at for r in old_rows) - timedelta(days=1)
    hi = max((r.ended_at or r.started_at) for r in old_rows) + timedelta(days=1)
    params = {"ids": ids, "lo": lo, "hi": hi}
    conn.execute(
        sa.text("DELETE FROM call_tool_calls WHERE call_id = ANY(:ids) AND created_at >= :lo AND created_at < :hi"),
        params,
    )
    conn.execute(
        sa.text("DELETE FROM call_turns WHERE call_id = ANY(:ids) AND created_at >= :lo AND created_at < :hi"), params
    )
    conn.execute(sa.text("DELETE FROM calls WHERE id = ANY(:ids)"), params)
    for table in ("cca_call_ingest", "cca_turn_extras", "cca_call_costs"):
        sql = f"DELETE FROM {table} WHERE call_id = ANY(:ids)"  # noqa: S608 — table from the fixed tuple; ids bound
        conn.execute(sa.text(sql), params)
    # the variant the call log carried goes with it; one the prompt resolver recorded stays
    conn.execute(sa.text("DELETE FROM cca_ab_assignments WHERE call_id = ANY(:ids) AND source = 'ingest'"), params)
    # its score is kept as history: the new delivery is scored again
    conn.execute(sa.text("UPDATE call_scores SET is_current = false WHERE call_id = ANY(:ids) AND is_current"), params)


def _customers(conn: sa.Connection, calls: list[PreparedCall], tenants: dict[Any, Any]) -> dict[tuple[Any, str], Any]:
    """Customer ids by (tenant id, phone). A customer new to its tenant is inserted with its name and the
    counters of this batch's calls (the customer lock keeps other writers out) and remembered as
    ccanalytics's (cca_created_customers: later batches keep its counters current, _recount); an existing
    customer the processor created is its own and is never changed."""
    names: dict[tuple[Any, str], str | None] = {}
    counts: dict[tuple[Any, str], list] = {}  # -> [calls, first started_at, last started_at] (UTC text)
    for call in calls:
        tenant_id = tenants.get(call.call_id)
        if not call.caller_id or tenant_id is None:
            continue
        key = (tenant_id, call.caller_id)
        if call.customer_name or key not in names:
            names[key] = call.customer_name or names.get(key)
        stats = counts.get(key)
        if stats is None:
            counts[key] = [1, call.started_utc, call.started_utc]
        else:
            stats[0] += 1
            stats[1] = min(stats[1], call.started_utc)
            stats[2] = max(stats[2], call.started_utc)
    if not names:
        return {}
    keys = list(names)
    params = {"tenants": _array(k[0] for k in keys), "phones": _array(k[1] for k in keys)}
    conn.execute(
        sa.text(
            "WITH made AS (INSERT INTO customers "
            "(id, tenant_id, phone, name, total_calls, first_call_at, last_call_at, created_at) "
            "SELECT gen_random_uuid(), t, p, n, c, f, l, now() FROM unnest(CAST(:tenants AS uuid[]), "
            "CAST(:phones AS varchar[]), CAST(:names AS varchar[]), CAST(:counts AS integer[]), "
            "CAST(:firsts AS timestamptz[]), CAST(:lasts AS timestamptz[])) AS x(t, p, n, c, f, l) "
            "WHERE NOT EXISTS (SELECT 1 FROM customers e WHERE e.tenant_id = x.t AND e.phone = x.p) "
            "ON CONFLICT DO NOTHING RETURNING id) "
            "INSERT INTO cca_created_customers (customer_id) SELECT id FROM made"
        ),
        {
            **params,
            "names": _array(names.values()),
            "counts": _array(counts[k][0] for k in keys),
            "firsts": _array(counts[k][1] for k in keys),
            "lasts": _array(counts[k][2] for k in keys),
        },
    )
    # one index probe per (tenant, phone); OFFSET 0 keeps the subquery a probe (with = ANY or as a join
    # the planner read every customer: 15-60 ms a batch at 120k customers against 5 ms this way)
    rows = conn.execute(
        sa.text(
            "SELECT x.t, x.p, c.id FROM unnest(CAST(:tenants AS uuid[]), CAST(:phones AS varchar[])) AS x(t, p) "
            "CROSS JOIN LATERAL (SELECT id FROM customers WHERE tenant_id = x.t AND phone = x.p "
            "ORDER BY deleted_at IS NOT NULL, created_at LIMIT 1 OFFSET 0) c"
        ),
        params,
    )
    return {(t, p): cid for t, p, cid in rows}
