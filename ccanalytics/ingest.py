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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Literal

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from . import partitions
from .callog import DEFAULT_LIMITS, Limits, ValidCall, validate_json, validate_record
from .errors import FieldProblem, IngestValidationError, InvalidArgument, RecordProblem

log = logging.getLogger(__name__)

OnConflict = Literal["replace", "ignore", "error"]
_LOCK_CLASS = 0x63636169  # "ccai": advisory-lock namespace for call ids
_DB_ERRORS = (sa.exc.DBAPIError, psycopg.Error)
MAX_REJECTS_KEPT = 1000  # rejects kept in memory by ingest_file; the reject file has them all

CALL_COLUMNS = (
    "id",
    "caller_id",
    "customer_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "scenario",
    "transferred_to_operator",
    "transfer_reason",
    "order_id",
    "fitting_booking_id",
    "prompt_version",
    "cost_breakdown",
    "total_cost_usd",
    "ab_test_id",
    "ab_variant",
    "usage",
    "payload_sha256",
)
TURN_COLUMNS = (
    "call_id",
    "turn_number",
    "speaker",
    "content",
    "stt_confidence",
    "stt_latency_ms",
    "llm_latency_ms",
    "tts_latency_ms",
    "created_at",
    "speech_duration_ms",
    "interrupted",
)
TOOL_COLUMNS = (
    "call_id",
    "turn_number",
    "tool_name",
    "tool_args",
    "tool_result",
    "duration_ms",
    "success",
    "created_at",
)


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
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise IngestValidationError([RecordProblem(0, None, (FieldProblem("", "empty batch"),))])
    valid: list[ValidCall] = []
    problems: list[RecordProblem] = []
    seen: dict[Any, int] = {}
    for index, raw in enumerate(records):
        checked = validate_record(raw, index, limits)
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
) -> IngestResult:
    """Bulk-load a JSONL file (one call log per line) with COPY, one transaction per batch.

    Invalid records do not stop the load: they are written to ``reject_path`` (JSONL with the line
    number, call_id, problems and the original line) and counted; good records load. A crash leaves
    whole batches only, and re-running the load is idempotent. ``progress`` receives the number of
    bytes consumed since its previous call.
    """
    _check_on_conflict(on_conflict)
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    total = IngestResult()
    reject_file = open(reject_path, "w", encoding="utf-8") if reject_path else None  # noqa: SIM115
    try:
        batch: list[ValidCall] = []
        batch_lines: dict[Any, tuple[int, bytes]] = {}

        def reject(problem: RecordProblem, line: bytes) -> None:
            total.rejected += 1
            if len(total.rejects) < MAX_REJECTS_KEPT:
                total.rejects.append(problem)
            if reject_file:
                entry = problem.to_dict()
                entry["line"] = entry.pop("record")
                entry["raw"] = line.decode("utf-8", errors="replace").rstrip("\n")
                reject_file.write(json.dumps(entry, ensure_ascii=False) + "\n")

        def flush() -> None:
            if batch:
                done, bad = _write_batch_isolating(engine, batch, on_conflict)
                total.add(done)
                for problem in bad:
                    line_no, line = batch_lines[_uuid_or_none(problem.call_id)]
                    reject(RecordProblem(line_no, problem.call_id, problem.problems), line)
                batch.clear()
                batch_lines.clear()

        for line_no, line in _lines(source, progress):
            if not line.strip():
                continue
            checked = validate_json(line, line_no, limits)
            if isinstance(checked, RecordProblem):
                reject(checked, line)
                continue
            if checked.call_id in batch_lines:
                flush()  # a re-delivery later in the file replaces the earlier one, in order
            batch.append(checked)
            batch_lines[checked.call_id] = (line_no, line)
            if len(batch) >= batch_size:
                flush()
        flush()
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
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE calls, call_turns, call_tool_calls, customers"))
        conn.commit()


# ------------------------------------------------------------------------------------------- writer
def _check_on_conflict(on_conflict: str) -> None:
    if on_conflict not in ("replace", "ignore", "error"):
        raise InvalidArgument(f"on_conflict must be replace, ignore or error, not {on_conflict!r}")


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _lines(source: str | Path | IO[bytes], progress: Callable[[int], None] | None) -> Iterator[tuple[int, bytes]]:
    handle = open(source, "rb") if isinstance(source, str | Path) else source  # noqa: SIM115
    try:
        for line_no, line in enumerate(handle, start=1):
            if progress:
                progress(len(line))
            yield line_no, line
    finally:
        if handle is not source:
            handle.close()


def _write_batch_isolating(
    engine: Engine, batch: list[ValidCall], on_conflict: OnConflict
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
    conn: sa.Connection, calls: list[ValidCall], on_conflict: OnConflict
) -> tuple[IngestResult, list[RecordProblem]]:
    """Write validated calls inside the caller's transaction. Returns (result, reference problems)."""
    result = IngestResult()
    ids = [c.call_id for c in calls]
    # serialise concurrent deliveries of the same call_id (ids are unique only with started_at)
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(:cls, k) FROM "
            "(SELECT DISTINCT hashtext(x::text) AS k FROM unnest(CAST(:ids AS uuid[])) x ORDER BY k) s"
        ),
        {"cls": _LOCK_CLASS, "ids": ids},
    )
    ab_ids, problems = _resolve_ab_tests(conn, calls)
    if problems:
        return result, problems

    existing = {
        row.id: row
        for row in conn.execute(
            sa.text("SELECT id, started_at, ended_at, customer_id, payload_sha256 FROM calls WHERE id = ANY(:ids)"),
            {"ids": ids},
        )
    }
    to_write: list[ValidCall] = []
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

    months = set()
    for call in to_write:
        months.add(partitions.month_start(call.log.started_at))
        months.add(partitions.month_start(call.log.ended_at))
        for turn in call.turns:
            months.add(partitions.month_start(turn.timestamp))
    partitions.ensure_months(conn, months)

    affected_customers: set[int] = set()
    if replaced:
        _delete_calls(conn, replaced)
        affected_customers.update(r.customer_id for r in replaced if r.customer_id is not None)
    customer_ids = _upsert_customers(conn, to_write)
    affected_customers.update(customer_ids.values())

    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(f"COPY calls ({', '.join(CALL_COLUMNS)}) FROM STDIN") as copy:
            for call in to_write:
                copy.write_row(call_row(call, customer_ids, ab_ids))
        with cur.copy(f"COPY call_turns ({', '.join(TURN_COLUMNS)}) FROM STDIN") as copy:
            for call in to_write:
                for row in turn_rows(call):
                    copy.write_row(row)
                    result.turns += 1
        tools = [row for call in to_write for row in tool_rows(call)]
        if tools:
            with cur.copy(f"COPY call_tool_calls ({', '.join(TOOL_COLUMNS)}) FROM STDIN") as copy:
                for row in tools:
                    copy.write_row(row)
        result.tool_calls = len(tools)
    _refresh_customer_totals(conn, affected_customers)
    return result, []


def _ms(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def call_row(call: ValidCall, customer_ids: dict[str, int], ab_ids: dict[Any, int | None]) -> tuple:
    """The calls row of a validated call, in CALL_COLUMNS order."""
    log_ = call.log
    cost = log_.cost
    return (
        call.call_id,
        call.caller_id,
        customer_ids.get(call.caller_id) if call.caller_id else None,
        log_.started_at,
        log_.ended_at,
        call.duration_seconds,
        log_.scenario,
        log_.transferred_to_operator,
        log_.transfer_reason,
        call.order_id,
        call.fitting_booking_id,
        log_.prompt_version,
        Jsonb(cost.components()) if cost else None,
        cost.total() if cost else None,
        ab_ids.get(call.call_id),
        log_.ab_test.variant if log_.ab_test else None,
        _json(log_.usage),
        call.payload_sha256,
    )


def turn_rows(call: ValidCall) -> Iterator[tuple]:
    """call_turns rows in TURN_COLUMNS order."""
    for turn in call.turns:
        yield (
            call.call_id,
            turn.turn_number,
            turn.speaker,
            turn.text,
            turn.stt_confidence,
            _ms(turn.stt_latency_ms),
            _ms(turn.llm_latency_ms),
            _ms(turn.tts_latency_ms),
            turn.timestamp,
            _ms(turn.duration_ms),
            turn.interrupted,
        )


def tool_rows(call: ValidCall) -> Iterator[tuple]:
    """call_tool_calls rows in TOOL_COLUMNS order."""
    for turn in call.turns:
        for tc in turn.tool_calls:
            yield (
                call.call_id,
                turn.turn_number,
                tc.name,
                _json(tc.args),
                _json(tc.result),
                _ms(tc.duration_ms),
                tc.success,
                tc.timestamp or turn.timestamp,
            )


def _resolve_ab_tests(conn: sa.Connection, calls: list[ValidCall]) -> tuple[dict[Any, int | None], list[RecordProblem]]:
    """Map each call's A/B assignment to a test id; an unknown test is a problem of that record."""
    wanted = [c for c in calls if c.log.ab_test]
    if not wanted:
        return {}, []
    names = sorted({c.log.ab_test.test_name for c in wanted if c.log.ab_test.test_name})
    ids = sorted({c.log.ab_test.test_id for c in wanted if c.log.ab_test.test_id})
    rows = conn.execute(
        sa.text("SELECT id, test_name FROM prompt_ab_tests WHERE test_name = ANY(:names) OR id = ANY(:ids)"),
        {"names": names, "ids": ids},
    ).all()
    by_name = {r.test_name: r.id for r in rows}
    known_ids = {r.id for r in rows}
    out: dict[Any, int | None] = {}
    problems = []
    for call in wanted:
        ab = call.log.ab_test
        test_id = ab.test_id if ab.test_id is not None else by_name.get(ab.test_name)
        if ab.test_id is not None and ab.test_id not in known_ids:
            message = f"unknown A/B test id {ab.test_id}"
        elif ab.test_id is None and test_id is None:
            message = f"unknown A/B test {ab.test_name!r}" if ab.test_name else "needs test_id or test_name"
        elif ab.test_id is not None and ab.test_name and by_name.get(ab.test_name) != ab.test_id:
            message = f"test_id {ab.test_id} and test_name {ab.test_name!r} name different tests"
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


def _upsert_customers(conn: sa.Connection, calls: list[ValidCall]) -> dict[str, int]:
    names: dict[str, str | None] = {}
    for call in calls:
        if call.caller_id:
            name = call.log.customer_name.strip() if call.log.customer_name else None
            if name or call.caller_id not in names:
                names[call.caller_id] = name or names.get(call.caller_id)
    if not names:
        return {}
    params = {"phones": list(names), "names": list(names.values())}
    conn.execute(
        sa.text(
            "INSERT INTO customers (phone, name) "
            "SELECT p, n FROM unnest(CAST(:phones AS varchar[]), CAST(:names AS varchar[])) AS t(p, n) "
            "ON CONFLICT (phone) DO NOTHING"
        ),
        params,
    )
    conn.execute(
        sa.text(
            "UPDATE customers c SET name = t.n "
            "FROM unnest(CAST(:phones AS varchar[]), CAST(:names AS varchar[])) AS t(p, n) "
            "WHERE c.phone = t.p AND t.n IS NOT NULL AND c.name IS DISTINCT FROM t.n"
        ),
        params,
    )
    rows = conn.execute(sa.text("SELECT phone, id FROM customers WHERE phone = ANY(:phones)"), params)
    return {phone: cid for phone, cid in rows}


def _refresh_customer_totals(conn: sa.Connection, customer_ids: set[int]) -> None:
    """Recompute call counts and first/last call times from calls: exact under re-delivery."""
    if not customer_ids:
        return
    conn.execute(
        sa.text(
            """
            UPDATE customers c
            SET total_calls = s.n, first_call_at = s.first_at, last_call_at = s.last_at
            FROM (
                SELECT cid, count(k.id) AS n, min(k.started_at) AS first_at, max(k.started_at) AS last_at
                FROM unnest(CAST(:ids AS bigint[])) AS cid
                LEFT JOIN calls k ON k.customer_id = cid
                GROUP BY cid
            ) s
            WHERE c.id = s.cid
              AND (c.total_calls, c.first_call_at, c.last_call_at)
                  IS DISTINCT FROM (s.n, s.first_at, s.last_at)
            """
        ),
        {"ids": sorted(customer_ids)},
    )
