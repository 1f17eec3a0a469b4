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
from pathlib import Path
from typing import IO, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import FieldProblem, IngestValidationError, InvalidArgument, RecordProblem
from ccanalytics.ingest.callog import DEFAULT_LIMITS, Limits, ValidCall, validate_record
from ccanalytics.ingest.pipeline import OrderedWriter, Outcome, default_workers, prepared_lines
from ccanalytics.ingest.prepare import (
    CALL_COLUMNS,
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
from ccanalytics.ingest.write import IngestResult, OnConflict, write_calls

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

_DB_ERRORS = (sa.exc.DBAPIError, psycopg.Error)
MAX_REJECTS_KEPT = 1000  # rejects kept in memory by ingest_file; the reject file has them all


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
        result, ref_problems = write_calls(conn, valid, on_conflict)
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
    workers = _bulk_workers(batch_size, workers)
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
            _feed(writer, prepared_lines(_lines(source), limits, workers), batch_size, progress)
    finally:
        if reject_file:
            reject_file.close()
    refresh_statistics(engine, total)
    return total


def _bulk_workers(batch_size: int, workers: int | None) -> int:
    """The worker processes of a bulk load (checking its batch size too)."""
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    if workers is None:
        return default_workers()
    if workers < 0:
        raise InvalidArgument("workers must be 0 or more")
    return workers


def _feed(
    writer: OrderedWriter,
    lines: Iterable[tuple[int, bytes, Outcome]],
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Hand the prepared lines of a file to the writer, in file order: the rejects, and the calls in
    batches of up to ``batch_size``."""
    batch: list[PreparedCall] = []
    batch_lines: dict[Any, tuple[int, bytes]] = {}
    for line_no, line, checked in lines:
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
            result, problems = write_calls(conn, batch, on_conflict)
            if not problems:
                return result, []
            conn.rollback()
    except _DB_ERRORS as exc:
        log.warning("batch of %d calls refused (%s); retrying call by call", len(batch), _db_message(exc))
    total, bad = IngestResult(), []
    for call in batch:
        try:
            with engine.begin() as conn:
                result, problems = write_calls(conn, [call], on_conflict)
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
