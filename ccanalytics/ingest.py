"""Ingestion of call logs: one call, a batch, or a JSONL file in bulk.

Every call is written with its turns, tool calls and customer in one transaction, through the same
COPY-based writer whatever the entry point. Re-delivery of a call_id is idempotent: an identical
payload (same canonical SHA-256) is left as is, a changed one replaces the stored call entirely
(its quality score is cleared so it is scored again). ``on_conflict="ignore"`` keeps the stored
version instead; ``on_conflict="error"`` refuses.
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

from . import partitions
from .callog import DEFAULT_LIMITS, Limits, ValidCall, validate_record
from .errors import FieldProblem, IngestValidationError, InvalidArgument, RecordProblem
from .ingest_pipeline import OrderedWriter, default_workers, prepared_lines
from .ingest_prepare import (
    CALL_COLUMNS,
    CALL_COPY_COLUMNS,
    TOOL_COLUMNS,
    TURN_COLUMNS,
    PreparedCall,
    call_row,
    prepare,
    tool_rows,
    turn_rows,
)

__all__ = [
    "CALL_COLUMNS",
    "TOOL_COLUMNS",
    "TURN_COLUMNS",
    "IngestResult",
    "call_row",
    "ingest",
    "ingest_file",
    "ingest_records",
    "refresh_statistics",
    "tool_rows",
    "turn_rows",
]

log = logging.getLogger(__name__)

OnConflict = Literal["replace", "ignore", "error"]
_LOCK_CLASS = 0x63636169  # "ccai": advisory-lock namespace for call ids
_CUSTOMER_LOCK_CLASS = 0x63636375  # "cccu": advisory-lock namespace for customers (by phone)
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
        checked = validate_record(raw, index, limits)
        if isinstance(checked, ValidCall):
            checked = prepare(checked, index)
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
    order (:mod:`ccanalytics.ingest_pipeline`). The result, the rows written, the reject file and the
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
    reject_file = open(reject_path, "w", encoding="utf-8") if reject_path else None  # noqa: SIM115

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


_ANALYZE_GROUPS = ("call_turns", "calls, call_tool_calls, customers")


# ------------------------------------------------------------------------------------------- writer
def _check_on_conflict(on_conflict: str) -> None:
    if on_conflict not in ("replace", "ignore", "error"):
        raise InvalidArgument(f"on_conflict must be replace, ignore or error, not {on_conflict!r}")


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _lines(source: str | Path | IO[bytes]) -> Iterator[tuple[int, bytes]]:
    handle = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115
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
    if problems:
        return result, problems

    # one primary-key probe per id and partition. With id = ANY(...) the planner scans partitions it
    # believes small, and during a load they are: 25 % of a 181k-call load went to this lookup,
    # growing with every batch. OFFSET 0 keeps the subquery a probe per id.
    existing = {
        row.id: row
        for row in conn.execute(
            sa.text(
                "SELECT k.*, (SELECT phone FROM customers c WHERE c.id = k.customer_id) AS customer_phone "
                "FROM unnest(CAST(:ids AS uuid[])) AS x(id) CROSS JOIN LATERAL ("
                "SELECT id, started_at, ended_at, customer_id, payload_sha256 FROM calls WHERE id = x.id OFFSET 0) k"
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

    partitions.ensure_months(conn, {month for call in to_write for month in call.months})

    # serialise writers of the same customers until commit: their counters are recomputed from the
    # calls, and a concurrent transaction's recount would not see this one's calls (two deliveries
    # for one caller at once used to leave total_calls one short). Taken after the call-id locks,
    # in key order, by every writer: no deadlock.
    phones = {c.caller_id for c in to_write if c.caller_id} | {r.customer_phone for r in replaced if r.customer_phone}
    _advisory_locks(conn, _CUSTOMER_LOCK_CLASS, _array(sorted(phones)))
    affected_customers: set[int] = set()
    if replaced:
        _delete_calls(conn, replaced)
        affected_customers.update(r.customer_id for r in replaced if r.customer_id is not None)
    customer_ids, new_customers = _upsert_customers(conn, to_write)
    affected_customers.update(cid for cid in customer_ids.values() if cid not in new_customers)

    call_lines = []
    for call in to_write:
        customer_id = customer_ids.get(call.caller_id) if call.caller_id else None
        ab_id = ab_ids.get(call.call_id)
        call_lines.append(
            b"%s\t%s\t%s\n"
            % (
                call.call_line,
                b"\\N" if customer_id is None else b"%d" % customer_id,
                b"\\N" if ab_id is None else b"%d" % ab_id,
            )
        )
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        _copy(cur, "calls", CALL_COPY_COLUMNS, call_lines)
        _copy(cur, "call_turns", TURN_COLUMNS, [call.turn_lines for call in to_write])
        _copy(cur, "call_tool_calls", TOOL_COLUMNS, [call.tool_lines for call in to_write])
    result.turns = sum(call.turns for call in to_write)
    result.tool_calls = sum(call.tool_calls for call in to_write)
    _refresh_customer_totals(conn, affected_customers)
    return result, []


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


def _resolve_ab_tests(
    conn: sa.Connection, calls: list[PreparedCall]
) -> tuple[dict[Any, int | None], list[RecordProblem]]:
    """Map each call's A/B assignment to a test id; an unknown test is a problem of that record."""
    wanted = [c for c in calls if c.ab_test]
    if not wanted:
        return {}, []
    names = sorted({c.ab_test[1] for c in wanted if c.ab_test[1]})
    ids = sorted({c.ab_test[0] for c in wanted if c.ab_test[0]})
    rows = conn.execute(
        sa.text("SELECT id, test_name FROM prompt_ab_tests WHERE test_name = ANY(:names) OR id = ANY(:ids)"),
        {"names": names, "ids": ids},
    ).all()
    by_name = {r.test_name: r.id for r in rows}
    known_ids = {r.id for r in rows}
    out: dict[Any, int | None] = {}
    problems = []
    for call in wanted:
        given_id, name, _variant = call.ab_test
        test_id = given_id if given_id is not None else by_name.get(name)
        if given_id is not None and given_id not in known_ids:
            message = f"unknown A/B test id {given_id}"
        elif given_id is None and test_id is None:
            message = f"unknown A/B test {name!r}" if name else "needs test_id or test_name"
        elif given_id is not None and name and by_name.get(name) != given_id:
            message = f"test_id {given_id} and test_name {name!r} name different tests"
        else:
            out[call.call_id] = test_id
            continue
        problems.append(RecordProblem(str(call.call_id), str(call.call_id), (FieldProblem("ab_test", message),)))
    return out, problems


def _delete_calls(conn: sa.Connection, old_rows: list[Any]) -> None:
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
    # ccanalytics's price of the old delivery goes with it; the next pricing run prices the new one
    conn.execute(sa.text("DELETE FROM cca_call_costs WHERE call_id = ANY(:ids)"), params)
    # and so does its score (kept as history): the new delivery is scored again
    conn.execute(sa.text("UPDATE call_scores SET is_current = false WHERE call_id = ANY(:ids) AND is_current"), params)


def _upsert_customers(conn: sa.Connection, calls: list[PreparedCall]) -> tuple[dict[str, int], set[int]]:
    """Customer ids by phone, and the ids of the customers inserted now. A new customer's calls are
    exactly this batch's calls of that phone (the phone lock keeps other writers out), so it is
    inserted with its counters; existing customers are recounted from their calls afterwards."""
    names: dict[str, str | None] = {}
    counts: dict[str, list] = {}  # phone -> [calls, first started_at, last started_at] (UTC text)
    for call in calls:
        if call.caller_id:
            name = call.customer_name
            if name or call.caller_id not in names:
                names[call.caller_id] = name or names.get(call.caller_id)
            stats = counts.get(call.caller_id)
            if stats is None:
                counts[call.caller_id] = [1, call.started_utc, call.started_utc]
            else:
                stats[0] += 1
                stats[1] = min(stats[1], call.started_utc)
                stats[2] = max(stats[2], call.started_utc)
    if not names:
        return {}, set()
    params = {"phones": _array(names), "names": _array(names.values())}
    new_customers = set(
        conn.execute(
            sa.text(
                "INSERT INTO customers (phone, name, total_calls, first_call_at, last_call_at) "
                "SELECT * FROM unnest(CAST(:phones AS varchar[]), CAST(:names AS varchar[]), "
                "CAST(:counts AS integer[]), CAST(:firsts AS timestamptz[]), CAST(:lasts AS timestamptz[])) "
                "ON CONFLICT (phone) DO NOTHING RETURNING id"
            ),
            {
                **params,
                "counts": _array(counts[p][0] for p in names),
                "firsts": _array(counts[p][1] for p in names),
                "lasts": _array(counts[p][2] for p in names),
            },
        ).scalars()
    )
    conn.execute(
        sa.text(
            "UPDATE customers c SET name = t.n "
            "FROM unnest(CAST(:phones AS varchar[]), CAST(:names AS varchar[])) AS t(p, n) "
            "WHERE c.phone = t.p AND t.n IS NOT NULL AND c.name IS DISTINCT FROM t.n"
        ),
        params,
    )
    # one index probe per phone (OFFSET 0 keeps the subquery per phone: with = ANY or as a join the
    # planner reads every customer, 15-60 ms a batch at 120k customers against 5 ms this way)
    rows = conn.execute(
        sa.text(
            "SELECT c.phone, c.id FROM unnest(CAST(:phones AS varchar[])) AS t(p) "
            "CROSS JOIN LATERAL (SELECT phone, id FROM customers WHERE phone = t.p OFFSET 0) c"
        ),
        params,
    )
    return {phone: cid for phone, cid in rows}, new_customers


def _refresh_customer_totals(conn: sa.Connection, customer_ids: set[int]) -> None:
    """Recompute call counts and first/last call times from calls: exact under re-delivery.

    One aggregate per customer (LATERAL) reads only that customer's calls through calls_customer_idx;
    a join of all the batch's customers with calls was planned as a scan of every call (210 ms per
    batch at 181k calls, 17 ms this way)."""
    if not customer_ids:
        return
    conn.execute(
        sa.text(
            """
            UPDATE customers c
            SET total_calls = s.n, first_call_at = s.first_at, last_call_at = s.last_at
            FROM unnest(CAST(:ids AS bigint[])) AS cid
            CROSS JOIN LATERAL (
                SELECT count(*) AS n, min(k.started_at) AS first_at, max(k.started_at) AS last_at
                FROM calls k WHERE k.customer_id = cid
            ) s
            WHERE c.id = cid
              AND (c.total_calls, c.first_call_at, c.last_call_at)
                  IS DISTINCT FROM (s.n, s.first_at, s.last_at)
            """
        ),
        {"ids": _array(sorted(customer_ids))},
    )
