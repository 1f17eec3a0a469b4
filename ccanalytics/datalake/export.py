"""The Parquet lake: a nightly export of calls, turns, tool calls and scores, Hive-partitioned by the
call's local day, read with DuckDB or Polars (:mod:`ccanalytics.datalake.read`).

    <lake>/calls/date=2026-11-23/part-0.parquet      + _SUCCESS.json
    <lake>/turns/date=2026-11-23/part-0.parquet      + _SUCCESS.json
    <lake>/tool_calls/date=…/…   <lake>/scores/date=…/…

Every row belongs to the local day (CCA_TIMEZONE) on which its call started, so one day of one call is
always in one partition of each table. Each table has an explicit Arrow schema (empty days and unions
over years read the same way). A partition is one file, written to ``<lake>/.staging`` and moved in
place with an atomic rename, so a reader sees the old or the new day, never half of one. The file's
footer carries the database fingerprint of what it holds (``cca.fingerprint``); ``_SUCCESS.json``
repeats it for people and tools. ``export_changed`` compares fingerprints and rewrites only the
partitions whose rows changed in the database. Caller numbers are masked (``cca_mask_phone``) and
phone numbers inside transcripts and tool arguments are masked too: no raw number reaches the lake.
Retention: :mod:`ccanalytics.datalake.retention`. See docs/lake-and-retention.md.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import clock, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.privacy import mask_phones_in_text
from ccanalytics.datalake.schema import (  # noqa: F401  (the lake's tables, re-exported for callers of this module)
    CHILD_SLACK,
    EMPTY,
    FORMAT_VERSION,
    MARKER,
    PART_FILE,
    ROW_GROUP_ROWS,
    SPECS,
    STAGING,
    TABLES,
    TRANSCRIPT_TABLES,
    TS,
    Column,
    TableSpec,
    _table,
    schema,
)

if TYPE_CHECKING:
    from ccanalytics.core.config import Settings

# -------------------------------------------------------------------------------- fingerprints
# Per local day and table: the row count and a hash over the content of every row the partition holds
# (there is no change stamp for costs, nor for rows the call processor updates itself, so content is
# hashed). Read in the export's own snapshot, so the fingerprint in a file describes exactly its rows.
# What is hashed: calls — every exported column (the raw caller_id) and call_metrics.computed_at (each
# derivation stamps it); turns (cca_call_turns: with the extras of a delivered call log) and tool calls —
# every exported column; scores — every column but the
# criteria and signals documents (a score is never rewritten: a new score is a new row, and only
# is_current of the old one changes). Row hashes are computed before the join, so it stays narrow.
_FINGERPRINTS = """
WITH c AS MATERIALIZED (
    SELECT c.id, (c.started_at AT TIME ZONE :tz)::date AS d,
           hashtextextended(ROW(c.id, c.tenant, c.caller_id, c.customer_id, c.started_at, c.ended_at,
               c.duration_seconds, c.scenario, c.transferred_to_operator, c.transfer_reason, c.order_id,
               c.fitting_booking_id, c.prompt_version, c.ab_test_id, c.ab_variant, c.quality_score, c.scored_at,
               c.cost_breakdown, c.total_cost_usd, c.usage, c.ingested_at, m.computed_at)::text, 0) AS h
    FROM cca_calls c LEFT JOIN call_metrics m ON m.call_id = c.id
    WHERE c.started_at >= :start AND c.started_at < :end
)
SELECT 'calls' AS tbl, d, count(*) AS n, md5(count(*) || ':' || sum(h::numeric)) AS fp FROM c GROUP BY d
UNION ALL
SELECT 'turns', c.d, count(*), md5(count(*) || ':' || sum(t.h::numeric))
FROM (SELECT call_id, hashtextextended(ROW(id, call_id, turn_number, speaker, content, stt_confidence,
             stt_latency_ms, llm_latency_ms, tts_latency_ms, speech_duration_ms, interrupted, created_at)::text, 0) AS h
      FROM cca_call_turns WHERE created_at >= :cstart AND created_at < :cend) t
JOIN c ON c.id = t.call_id GROUP BY c.d
UNION ALL
SELECT 'tool_calls', c.d, count(*), md5(count(*) || ':' || sum(x.h::numeric))
FROM (SELECT call_id, hashtextextended(ROW(id, call_id, turn_number, tool_name, tool_args, tool_result,
             duration_ms, success, created_at)::text, 0) AS h
      FROM call_tool_calls WHERE created_at >= :cstart AND created_at < :cend) x
JOIN c ON c.id = x.call_id GROUP BY c.d
UNION ALL
SELECT 'scores', c.d, count(*), md5(count(*) || ':' || sum(s.h::numeric))
FROM (SELECT call_id, hashtextextended(ROW(id, call_id, started_at, judge_kind, judge_model, rubric_version,
             overall_score, auto_failed, auto_fail_reasons, prompt_tokens, completion_tokens, cost_usd, latency_ms,
             attempts, is_current, created_at)::text, 0) AS h
      FROM call_scores WHERE started_at >= :start AND started_at < :end) s
JOIN c ON c.id = s.call_id GROUP BY c.d
"""


def _bounds(first: date, last: date, tz: str) -> dict[str, Any]:
    start, end = timeutil.day_start(first, tz), timeutil.day_start(last + timedelta(days=1), tz)
    return {"start": start, "end": end, "cstart": start - CHILD_SLACK, "cend": end + CHILD_SLACK, "tz": tz}


def fingerprints(conn: sa.Connection, first: date, last: date, tz: str) -> dict[date, dict[str, tuple[int, str]]]:
    """{day: {table: (rows, fingerprint)}} for every day of first … last (days without rows included)."""
    out = {first + timedelta(days=i): {t: (0, EMPTY) for t in TABLES} for i in range((last - first).days + 1)}
    for row in conn.execute(sa.text(_FINGERPRINTS), _bounds(first, last, tz)):
        if row.d in out:
            out[row.d][row.tbl] = (row.n, row.fp)
    return out


# ------------------------------------------------------------------------------------- export
@dataclass(frozen=True)
class TableExport:
    table: str
    rows: int
    bytes: int
    fingerprint: str


@dataclass(frozen=True)
class ExportResult:
    """One day written: the partitions of ``tables``."""

    day: date
    tables: tuple[TableExport, ...]
    seconds: float

    def rows(self) -> dict[str, int]:
        return {t.table: t.rows for t in self.tables}

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "rows": self.rows(), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class ExportRun:
    """Several days: the days looked at and what was written."""

    days_checked: list[date]
    exported: list[ExportResult] = field(default_factory=list)

    @property
    def partitions_written(self) -> int:
        return sum(len(e.tables) for e in self.exported)

    @property
    def rows(self) -> int:
        return sum(t.rows for e in self.exported for t in e.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days_checked": len(self.days_checked),
            "days_exported": [e.day.isoformat() for e in self.exported],
            "partitions_written": self.partitions_written,
            "rows": self.rows,
            "exported": [e.to_dict() for e in self.exported],
        }


def export_day(
    engine: Engine,
    day: date | str,
    lake_dir: str | Path,
    tz: str = timeutil.DEFAULT_TZ,
    *,
    tables: Sequence[str] = TABLES,
) -> ExportResult:
    """Write the partitions of ``tables`` for the local day ``day`` (replacing them atomically).

    All tables are read in one REPEATABLE READ snapshot and streamed (``COPY … TO STDOUT``, parsed by
    Arrow in blocks, written in row groups), so memory stays bounded by a block, not by the day.
    """
    day = timeutil.to_date(day, tz)
    tables = _tables(tables)
    lake = Path(lake_dir)
    started = time.perf_counter()
    params = _bounds(day, day, tz)
    with _snapshot(engine) as conn:
        prints = fingerprints(conn, day, day, tz)[day]
        raw = conn.connection.driver_connection
        done = [_export_table(raw, SPECS[t], day, params, lake, prints[t]) for t in tables]
    return ExportResult(day, tuple(done), time.perf_counter() - started)


def export_range(
    engine: Engine,
    date_from: date | str,
    date_to: date | str,
    lake_dir: str | Path,
    tz: str = timeutil.DEFAULT_TZ,
    *,
    tables: Sequence[str] = TABLES,
    progress: Callable[[date], None] | None = None,
) -> ExportRun:
    """Backfill: export every day of date_from … date_to (each day in its own snapshot)."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    run = ExportRun(days)
    for day in days:
        run.exported.append(export_day(engine, day, lake_dir, tz, tables=tables))
        if progress:
            progress(day)
    return run


def export_changed(
    engine: Engine,
    lake_dir: str | Path,
    tz: str = timeutil.DEFAULT_TZ,
    days_back: int = 7,
    *,
    today: date | None = None,
    tables: Sequence[str] = TABLES,
) -> ExportRun:
    """The nightly export: the ``days_back`` days before ``today`` (yesterday and late changes),
    rewriting only partitions that are missing, of an older format, or whose database fingerprint
    differs from the one in the file."""
    if days_back < 1:
        raise InvalidArgument("days_back must be at least 1")
    tables = _tables(tables)
    today = today or timeutil.today(tz)
    first, last = today - timedelta(days=days_back), today - timedelta(days=1)
    lake = Path(lake_dir)
    with _snapshot(engine) as conn:
        prints = fingerprints(conn, first, last, tz)
    run = ExportRun(sorted(prints))
    for day, by_table in sorted(prints.items()):
        stale = [t for t in tables if partition_state(lake, t, day) != (by_table[t][0], by_table[t][1])]
        if stale:
            run.exported.append(export_day(engine, day, lake, tz, tables=stale))
    return run


def partition_state(lake_dir: str | Path, table: str, day: date) -> tuple[int, str] | None:
    """(rows, fingerprint) of a written partition read from its file's footer; None when the partition
    is missing, unreadable, or of another format version."""
    path = partition_path(lake_dir, table, day) / PART_FILE
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return None
    kv = meta.metadata or {}
    if kv.get(b"cca.format") != FORMAT_VERSION.encode():
        return None
    return meta.num_rows, kv.get(b"cca.fingerprint", b"").decode()


def partition_path(lake_dir: str | Path, table: str, day: date) -> Path:
    return Path(lake_dir) / _table(table) / f"date={day.isoformat()}"


@contextmanager
def _snapshot(engine: Engine) -> Iterator[sa.Connection]:
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))  # row texts (fingerprints) must not depend on it
        conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))  # the fingerprints' joins hash in memory
        try:
            yield conn
        finally:
            conn.rollback()


def _export_table(
    raw: Any, spec: TableSpec, day: date, params: dict, lake: Path, print_: tuple[int, str]
) -> TableExport:
    rows, fp = print_
    staging = staging_dir(lake)
    tmp = staging / f"{spec.name}-{day.isoformat()}-{uuid.uuid4().hex}.parquet"
    meta = {
        "cca.table": spec.name,
        "cca.date": day.isoformat(),
        "cca.format": FORMAT_VERSION,
        "cca.fingerprint": fp,
    }
    written = 0
    try:
        with pq.ParquetWriter(tmp, spec.schema.with_metadata(meta), compression="zstd") as writer:
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in _stream(raw, spec, params):
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, spec.schema))
                    written += pending_rows
                    pending, pending_rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, spec.schema))
                written += pending_rows
        if written != rows:  # one snapshot makes them equal; anything else is a bug worth a loud failure
            raise RuntimeError(f"{spec.name} {day}: read {written} rows, the fingerprint counted {rows}")
        with open(tmp, "rb") as done:  # on disk before it is renamed in: a crash leaves old or new, never empty
            os.fsync(done.fileno())
        target = partition_path(lake, spec.name, day)
        target.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target / PART_FILE)  # atomic: readers see the old day or the new one
    finally:
        tmp.unlink(missing_ok=True)
    size = (target / PART_FILE).stat().st_size
    marker = {
        "table": spec.name,
        "date": day.isoformat(),
        "rows": rows,
        "fingerprint": fp,
        "format": FORMAT_VERSION,
        "bytes": size,
        "exported_at": clock.now().isoformat(timespec="seconds"),
    }
    _write_atomic(target / MARKER, json.dumps(marker, indent=2).encode(), staging)
    return TableExport(spec.name, rows, size, fp)


class _CopyReader(io.RawIOBase):
    """A read-only file over the chunks of a psycopg COPY … TO STDOUT."""

    def __init__(self, copy: Any) -> None:
        self._chunks = iter(copy)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _stream(raw: Any, spec: TableSpec, params: dict) -> Iterator[pa.RecordBatch]:
    """The rows of ``spec`` for the day as record batches of the table's schema."""
    names = [c.name for c in spec.columns]
    read = pacsv.ReadOptions(column_names=names, block_size=4 << 20, use_threads=False)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={c.name: c.read_type for c in spec.columns},
        strings_can_be_null=True,  # COPY writes NULL as an unquoted empty field …
        quoted_strings_can_be_null=False,  # … and an empty string as ""
        null_values=[""],
        true_values=["t"],
        false_values=["f"],
    )
    with raw.cursor() as cur, cur.copy(spec.copy_sql(), params) as copy:
        stream = io.BufferedReader(_CopyReader(copy), buffer_size=1 << 20)
        if not stream.peek(1):
            return
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield _conform(batch, spec)


def _conform(batch: pa.RecordBatch, spec: TableSpec) -> pa.RecordBatch:
    arrays = []
    for i, col in enumerate(spec.columns):
        arr = batch.column(i)
        if col.type == TS:
            arr = arr.cast(TS)
        elif col.mask:
            arr = mask_text(arr)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=spec.schema)


def mask_text(arr: pa.Array) -> pa.Array:
    """privacy.mask_phones_in_text over a string array. A phone needs at least ten ASCII digits, so a
    vectorised digit count picks the few values that go through the Python regex."""
    candidates = pc.fill_null(pc.greater_equal(pc.count_substring_regex(arr, "[0-9]"), 10), False)
    if not pc.any(candidates).as_py():
        return arr
    values = arr.to_pylist()
    for i, hit in enumerate(candidates.to_pylist()):
        if hit:
            values[i] = mask_phones_in_text(values[i])
    return pa.array(values, pa.string())


def staging_dir(lake: Path) -> Path:
    staging = lake / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - 6 * 3600  # leftovers of an export that died
    for old in staging.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        except FileNotFoundError:
            pass
    return staging


def _write_atomic(path: Path, data: bytes, staging: Path) -> None:
    tmp = staging / f"{path.name}-{uuid.uuid4().hex}"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _tables(names: Iterable[str]) -> list[str]:
    out = [_table(n) for n in names]
    if not out:
        raise InvalidArgument("no lake table given")
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------- job
def export_job(engine: Engine, settings: Settings, today: date | None = None) -> dict[str, Any]:
    """The nightly export (scheduler): the last 7 days, changed partitions only."""
    run = export_changed(engine, settings.resolved_lake_dir(), settings.timezone, 7, today=today)
    out = run.to_dict()
    out.pop("exported")
    out["lake_dir"] = str(settings.resolved_lake_dir())
    return out
