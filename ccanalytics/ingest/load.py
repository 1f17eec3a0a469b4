"""Ingestion of call logs: one call, a batch, or a JSONL file in bulk.

ccanalytics's ingest API is a call logger for the call processor: a delivered call is written into the
processor's tables in the processor's shape (calls, call_turns, call_tool_calls, and a new customer of
its tenant), with what only ccanalytics keeps in its own tables (cca_call_ingest: usage, payload hash,
arrival; cca_turn_extras; cca_ab_assignments). Every call is written in one transaction, through the
same COPY-based writer whatever the entry point.

Re-delivery of a call_id is idempotent: an identical payload (same canonical SHA-256) is left as is, a
changed one replaces the call delivered before (its ccanalytics score and price are cleared so it is
scored and priced again). ``on_conflict="ignore"`` keeps the stored version instead;
``on_conflict="error"`` refuses. A call the processor wrote into its tables itself (no delivery of
ours) is never replaced: re-delivering it is a problem of that record. An existing customer is never
changed (its name and counters are the processor's).

A call names its tenant by slug (``tenant``); without one it belongs to the database's only tenant, and
a database with several tenants refuses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import FieldProblem, IngestValidationError, InvalidArgument, RecordProblem
from ccanalytics.db import partitions
from ccanalytics.db.engine import driver_connection
from ccanalytics.ingest.callog import DEFAULT_LIMITS, Limits, ValidCall, validate_record
from ccanalytics.ingest.pipeline import OrderedWriter, default_workers, prepared_lines
from ccanalytics.ingest.prepare import (
    CALL_COLUMNS,
    CALL_COPY_COLUMNS,
    INGEST_COLUMNS,
    TOOL_COLUMNS,
    TURN_COLUMNS,
    TURN_EXTRA_COLUMNS,
    PreparedCall,
    call_row,
    ingest_row,
    prepare,
    tool_rows,
    turn_extra_rows,
    turn_rows,
)

__all__ = [
    "CALL_COLUMNS",
    "INGEST_COLUMNS",
    "TOOL_COLUMNS",
    "TURN_COLUMNS",
    "TURN_EXTRA_COLUMNS",
    "IngestResult",
    "call_row",
    "ingest",
    "ingest_file",
    "ingest_records",
    "ingest_row",
    "refresh_statistics",
    "tool_rows",
    "turn_extra_rows",
    "turn_rows",
]

log = logging.getLogger(__name__)

OnConflict = Literal["replace", "ignore", "error"]
_LOCK_CLASS = 0x63636169  # "ccai": advisory-lock namespace for call ids
_CUSTOMER_LOCK_CLASS = 0x63636375  # "cccu": advisory-lock namespace for customers (by tenant and phone)
_DB_ERRORS = (sa.exc.DBAPIError, psycopg.Error)
MAX_REJECTS_KEPT = 1000  # rejects kept in memory by ingest_file; the reject file has them all


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


# ------------------------------------------------------------------------------------ entry points
def ingest(
    engine: Engine,
    payload: dict[str, Any] | list[Any] | str | bytes,
    *,
    on_conflict: OnConflict = "replace",
    limits: Limits = DEFAULT_LIMITS,
) -> IngestResult:
    """Validate and write one call log or a batch (a JSON array) atomically.

    Any invalid record rejects the whole batch with IngestValidationError naming every bad record
    and field; nothing is written then.
    """
    _check_on_conflict(on_conflict)
    if isinstance(payload, str | bytes):
        if len(payload) > limits.max_record_bytes * 20:
            raise IngestValidationError(
                [RecordProblem(0, None, (FieldProblem("", f"payload is {len(payload):,} bytes, too large"),))]
            )
        try:
            payload = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IngestValidationError(
                [RecordProblem(0, None, (FieldProblem("", f"malformed JSON: {exc}"),))]
            ) from None
        except RecursionError:
            raise IngestValidationError(
                [RecordProblem(0, None, (FieldProblem("", "malformed JSON: nested too deeply"),))]
            ) from None
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise IngestValidationError([RecordProblem(0, None, (FieldProblem("", "empty batch"),))])
    valid: list[PreparedCall] = []
    problems: list[RecordProblem] = []
    seen: dict[Any, int] = {}
    for index, raw in enumerate(records):
        validated = validate_record(raw, index, limits)
        checked = prepare(validated, index) if isinstance(validated, ValidCall) else validated
        if isinstance(checked, RecordProblem):
            problems.append(checked)
            continue
        if checked.call_id in seen:
            problems.append(
                RecordProblem(
                    index,
                    str(checked.call_id),
                    (FieldProblem("call_id", f"appears twice in the batch (also record {seen[checked.call_id]})"),),
                )
            )
            continue
        seen[checked.call_id] = index
        valid.append(checked)
    if problems:
        raise IngestValidationError(problems)
    with engine.begin() as conn:
        result, ref_problems = _write(conn, valid, on_conflict)
        if ref_problems:
            conn.rollback()
            raise IngestValidationError(ref_problems)
    return result


def ingest_file(
    engine: Engine,
    source: str | Path | IO[bytes],
    *,
    reject_path: str | Path | None = None,
    batch_size: int = 1000,
    on_conflict: OnConflict = "replace",
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> IngestResult:
    """Bulk-load a JSONL file (one call log per line) with COPY, one transaction per batch.

    Invalid records do not stop the load: they are written to ``reject_path`` (JSONL with the line
    number, call_id, problems and the original line) and counted; good records load. A crash leaves
    whole batches only, and re-running the load is idempotent. ``progress`` receives the number of
    bytes consumed since its previous call, in file order, as lines are dealt with.

    Lines are validated and formatted as COPY text by ``workers`` processes (default: one per core
    but one; 0 validates in this process) while a thread of this process writes the batches, in file
    order (:mod:`ccanalytics.ingest.pipeline`). The result, the rows written, the reject file and the
    progress calls do not depend on ``workers``.
    """
    _check_on_conflict(on_conflict)
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    if workers is None:
        workers = default_workers()
    elif workers < 0:
        raise InvalidArgument("workers must be 0 or more")
    total = IngestResult()
    reject_file = open(reject_path, "w", encoding="utf-8") if reject_path else None

    # reject() and write() run in the writer thread, in the order of the file
    def reject(problem: RecordProblem, line: bytes) -> None:
        total.rejected += 1
        if len(total.rejects) < MAX_REJECTS_KEPT:
            total.rejects.append(problem)
        if reject_file:
            entry = problem.to_dict()
            entry["line"] = entry.pop("record")
            entry["raw"] = line.decode("utf-8", errors="replace").rstrip("\n")
            reject_file.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def write(batch: list[PreparedCall], batch_lines: dict[Any, tuple[int, bytes]]) -> None:
        done, bad = _write_batch_isolating(engine, batch, on_conflict)
        total.add(done)
        for problem in bad:
            line_no, line = batch_lines[_uuid_or_none(problem.call_id)]
            reject(RecordProblem(line_no, problem.call_id, problem.problems), line)

    try:
        with OrderedWriter(write, reject) as writer:
            batch: list[PreparedCall] = []
            batch_lines: dict[Any, tuple[int, bytes]] = {}
            for line_no, line, checked in prepared_lines(_lines(source), limits, workers):
                if progress:
                    progress(len(line))
                if checked is None:  # a blank line
                    continue
                if isinstance(checked, RecordProblem):
                    writer.reject(checked, line)
                    continue
                if checked.call_id in batch_lines:
                    # a re-delivery later in the file replaces the earlier one, in order
                    writer.batch(batch, batch_lines)
                    batch, batch_lines = [], {}
                batch.append(checked)
                batch_lines[checked.call_id] = (line_no, line)
                if len(batch) >= batch_size:
                    writer.batch(batch, batch_lines)
                    batch, batch_lines = [], {}
            if batch:
                writer.batch(batch, batch_lines)
    finally:
        if reject_file:
            reject_file.close()
    refresh_statistics(engine, total)
    return total


def ingest_records(
    engine: Engine,
    records: Iterable[dict[str, Any]],
    *,
    batch_size: int = 1000,
    on_conflict: OnConflict = "replace",
    limits: Limits = DEFAULT_LIMITS,
) -> IngestResult:
    """Bulk-load call logs already in memory (the demo generator uses this). Invalid records raise."""
    total = IngestResult()
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= batch_size:
            total.add(ingest(engine, batch, on_conflict=on_conflict, limits=limits))
            batch = []
    if batch:
        total.add(ingest(engine, batch, on_conflict=on_conflict, limits=limits))
    refresh_statistics(engine, total)
    return total


ANALYZE_AFTER_CALLS = 5_000


def refresh_statistics(engine: Engine, result: IngestResult) -> None:
    """After a bulk load, refresh the planner's statistics of the call tables. Autovacuum gets there
    eventually, but a query planned on an empty table's statistics right after a large load can be
    slower by orders of magnitude (measured: 42 s instead of 1.3 s for the per-call metrics)."""
    if result.written < ANALYZE_AFTER_CALLS:
        return

    def analyze(tables: str) -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f"ANALYZE {tables}"))
            conn.commit()

    # two sessions at once: the turns take about as long as the three other tables together
    with ThreadPoolExecutor(max_workers=len(_ANALYZE_GROUPS)) as pool:
        list(pool.map(analyze, _ANALYZE_GROUPS))


_ANALYZE_GROUPS = ("call_turns", "calls, call_tool_calls, customers, cca_call_ingest, cca_turn_extras")


# ------------------------------------------------------------------------------------------- writer
def _check_on_conflict(on_conflict: str) -> None:
    if on_conflict not in ("replace", "ignore", "error"):
        raise InvalidArgument(f"on_conflict must be replace, ignore or error, not {on_conflict!r}")


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _lines(source: str | Path | IO[bytes]) -> Iterator[tuple[int, bytes]]:
    handle = open(source, "rb") if isinstance(source, str | Path) else source
    try:
        yield from enumerate(handle, start=1)
    finally:
        if handle is not source:
            handle.close()


def _write_batch_isolating(
    engine: Engine, batch: list[PreparedCall], on_conflict: OnConflict
) -> tuple[IngestResult, list[RecordProblem]]:
    """Write a batch in one transaction; if the database refuses it, find the culprit call by call."""
    try:
        with engine.begin() as conn:
            result, problems = _write(conn, batch, on_conflict)
            if not problems:
                return result, []
            conn.rollback()
    except _DB_ERRORS as exc:
        log.warning("batch of %d calls refused (%s); retrying call by call", len(batch), _db_message(exc))
    total, bad = IngestResult(), []
    for call in batch:
        try:
            with engine.begin() as conn:
                result, problems = _write(conn, [call], on_conflict)
                if problems:
                    conn.rollback()
                    bad.extend(problems)
                    continue
            total.add(result)
        except _DB_ERRORS as exc:
            bad.append(
                RecordProblem(
                    str(call.call_id),
                    str(call.call_id),
                    (FieldProblem("", f"database refused the call: {_db_message(exc)}"),),
                )
            )
    return total, bad


def _db_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps driver errors; COPY raises them bare
    return str(orig).strip().splitlines()[0]


def _write(
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
