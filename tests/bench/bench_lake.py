"""Lake benchmarks: the nightly export of one 2,000-call day, and DuckDB queries over 90 days of the
lake.

One day is generated and ingested for real (turns, tool calls, per-call metrics, rule-based scores),
then replicated in SQL to 90 days with new ids and shifted stamps, and backfilled into the lake with
``export_range``. Baselines, measured in the same run: the same aggregates over PostgreSQL, and the
turns read through a server-side cursor into Arrow instead of ``COPY … TO STDOUT`` parsed by Arrow.
Peak RSS is the peak of a fresh child process doing only that work.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import (
    check_goals,
    ensure_months,
    fresh_server,
    last_day,
    median,
    replica_statements,
    run_child,
    timed,
    write_section,
)

END_DATE = last_day()  # yesterday by the one clock: the benchmark runs on any day
COMMAND = "make bench BENCH=lake"
TZ = "Europe/Kyiv"

# the same two aggregates, over the lake (DuckDB) and over PostgreSQL
DUCK_CALLS = """
SELECT date_trunc('week', date) AS week, scenario, count(*) AS calls,
       avg(CASE WHEN transferred_to_operator THEN 1.0 ELSE 0.0 END) AS transfer_rate,
       avg(quality_score) AS quality, sum(total_cost_usd) AS cost,
       quantile_cont(response_p95_ms, 0.95) AS response_p95_ms
FROM calls GROUP BY ALL ORDER BY 1, 2
"""
PG_CALLS = """
SELECT date_trunc('week', (c.started_at AT TIME ZONE 'Europe/Kyiv')::date) AS week, c.scenario, count(*) AS calls,
       avg(CASE WHEN c.transferred_to_operator THEN 1.0 ELSE 0.0 END) AS transfer_rate,
       avg(c.quality_score) AS quality, sum(c.total_cost_usd) AS cost,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.response_p95_ms) AS response_p95_ms
FROM cca_calls c LEFT JOIN call_metrics m ON m.call_id = c.id
WHERE c.started_at >= :start AND c.started_at < :end
GROUP BY 1, 2 ORDER BY 1, 2
"""
DUCK_TURNS = """
SELECT c.scenario, t.speaker, count(*) AS turns, avg(length(t.content)) AS chars,
       quantile_cont(t.llm_latency_ms, 0.95) AS llm_p95_ms, quantile_cont(t.stt_latency_ms, 0.95) AS stt_p95_ms
FROM turns t JOIN calls c ON c.id = t.call_id AND c.date = t.date
GROUP BY ALL ORDER BY 1, 2
"""
PG_TURNS = """
SELECT c.scenario, t.speaker, count(*) AS turns, avg(length(t.content)) AS chars,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY t.llm_latency_ms) AS llm_p95_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY t.stt_latency_ms) AS stt_p95_ms
FROM call_turns t JOIN calls c ON c.id = t.call_id
WHERE c.started_at >= :start AND c.started_at < :end
  AND t.created_at >= CAST(:start AS timestamptz) - interval '7 hours'
  AND t.created_at < CAST(:end AS timestamptz) + interval '7 hours'
GROUP BY 1, 2 ORDER BY 1, 2
"""

EXPORT_CHILD = """
import sys, time
import ccanalytics.datalake.export as lake
from ccanalytics.db.engine import create_engine
engine = create_engine(sys.argv[1], statement_timeout_ms=0)
t0 = time.perf_counter()
r = lake.export_day(engine, sys.argv[2], sys.argv[3], "Europe/Kyiv")
print(time.perf_counter() - t0, sum(r.rows().values()), _peak_rss_mib())
"""
QUERY_CHILD = """
import sys, time
import ccanalytics.datalake.read as lake
t0 = time.perf_counter()
frame = lake.query(sys.argv[1], sys.argv[2])
print(time.perf_counter() - t0, frame.height, _peak_rss_mib())
"""

# issue 10: 90 days of calls into a DataFrame in a notebook, from the lake and from PostgreSQL
WORKBENCH_LAKE_CHILD = """
import sys, time
import ccanalytics as cca
t0 = time.perf_counter()
frame = cca.lake(sys.argv[1]).load("calls", sys.argv[2], sys.argv[3])
print(time.perf_counter() - t0, frame.height, _peak_rss_mib())
"""
WORKBENCH_PG_CHILD = """
import sys, time
from ccanalytics.db.engine import create_engine
from ccanalytics.analytics.store import Store
store = Store(create_engine(sys.argv[1], statement_timeout_ms=0))
t0 = time.perf_counter()
frame = store.calls(sys.argv[2], sys.argv[3])
print(time.perf_counter() - t0, frame.height, _peak_rss_mib())
"""


def _turns_params(start, end):
    import ccanalytics.datalake.export as lake

    return {"start": start, "end": end, "cstart": start - lake.CHILD_SLACK, "cend": end + lake.CHILD_SLACK}


def copy_turns(engine, start, end) -> int:
    """The export's read path: the turns of a day as ``COPY … TO STDOUT`` (CSV) parsed by Arrow in
    blocks, converted to the lake schema, phones masked."""
    import ccanalytics.datalake.export as lake

    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        n = sum(b.num_rows for b in lake._stream(raw, lake.SPECS["turns"], _turns_params(start, end)))
        conn.rollback()
    return n


def cursor_turns(engine, start, end) -> int:
    """Baseline read path: the same rows through a server-side cursor (psycopg's C row parsing) into
    Arrow arrays of the lake schema, phones masked the same way."""
    import uuid

    import pyarrow as pa

    import ccanalytics.datalake.export as lake

    spec = lake.SPECS["turns"]
    sql = f"SELECT {', '.join(c.select() for c in spec.columns)} {spec.source}"
    n = 0
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor(name="lake_turns") as cur:
            cur.itersize = 20_000
            cur.execute(sql, _turns_params(start, end))
            while rows := cur.fetchmany(20_000):
                arrays = []
                for c, col in zip(spec.columns, zip(*rows, strict=True), strict=True):
                    values = [str(v) if isinstance(v, uuid.UUID) else v for v in col]
                    arr = pa.array(values, c.read_type)
                    arrays.append(arr.cast(c.type) if c.read_type != c.type else lake.mask_text(arr) if c.mask else arr)
                n += pa.RecordBatch.from_arrays(arrays, schema=spec.schema).num_rows
        conn.rollback()
    return n


def run(quick: bool = False) -> None:
    import sqlalchemy as sa

    import ccanalytics.datalake.export as lake
    import ccanalytics.datalake.read as lakeread
    from ccanalytics import quality
    from ccanalytics.analytics import metrics
    from ccanalytics.core import timeutil
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants
    from ccanalytics.ingest.load import ingest_records

    per_day = 400 if quick else 2000
    days = 10 if quick else 90
    lake_dir = Path(tempfile.mkdtemp(prefix="cca-lake-"))
    try:
        with fresh_server() as make_db:
            url = make_db("bench_lake")
            engine = create_engine(url, statement_timeout_ms=0)
            migrate(engine)
            with engine.begin() as conn:  # the demo calls name the demo's tenants
                ensure_demo_tenants(conn)
            ingest_records(
                engine, generate_calls(seed=5, days=1, calls_per_day=per_day, end_date=END_DATE, ab_test=None)
            )
            metrics.compute_daily_stats(engine, END_DATE, END_DATE, tz=TZ)
            quality.enqueue(engine, date_from=END_DATE, date_to=END_DATE, tz=TZ)
            quality.score_pending(engine, quality.RulesJudge(), quality.Rubric(), workers=2)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))

            # 1. the nightly export of one day (re-exports replace the partition), and its peak RSS
            day_result, export_s = timed(lambda: lake.export_day(engine, END_DATE, lake_dir, TZ), 5)
            child_dir = Path(tempfile.mkdtemp(prefix="cca-lake-child-"))
            out = run_child(EXPORT_CHILD, url, END_DATE.isoformat(), str(child_dir))
            child_export_s, _, export_rss = out.split()
            shutil.rmtree(child_dir, ignore_errors=True)
            start, end = timeutil.day_start(END_DATE, TZ), timeutil.day_start(END_DATE + timedelta(days=1), TZ)
            cursored, cursor_s = timed(lambda: cursor_turns(engine, start, end), 3)
            copied, copy_s = timed(lambda: copy_turns(engine, start, end), 3)
            assert copied == cursored == day_result.rows()["turns"]
            parquet_bytes = sum(t.bytes for t in day_result.tables)

            # 2. 90 days: replicate in SQL, backfill the lake
            first = END_DATE - timedelta(days=days - 1)
            ensure_months(engine, first, END_DATE + timedelta(days=1))
            with engine.begin() as conn:  # each statement reads its own table before writing it: the day only
                for statement in replica_statements(conn, 1):
                    conn.execute(sa.text(statement), {"k0": 1, "k1": days - 1})
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
                n_calls = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
                n_turns = conn.execute(sa.text("SELECT count(*) FROM call_turns")).scalar_one()
            t0 = time.perf_counter()
            lake.export_range(engine, first, END_DATE - timedelta(days=1), lake_dir, TZ)
            backfill_s = time.perf_counter() - t0
            _, changed_s = timed(
                lambda: lake.export_changed(engine, lake_dir, TZ, 7, today=END_DATE + timedelta(days=1)), 3
            )
            lake_bytes = sum(p.stat().st_size for p in lake_dir.rglob("*.parquet"))

            # the nightly job as it runs: yesterday not in the lake yet, the 6 days before unchanged
            def nightly() -> int:
                for table in lake.TABLES:
                    shutil.rmtree(lake.partition_path(lake_dir, table, END_DATE))
                run = lake.export_changed(engine, lake_dir, TZ, 7, today=END_DATE + timedelta(days=1))
                assert [e.day for e in run.exported] == [END_DATE] and run.partitions_written == 4
                return run.rows

            _, nightly_s = timed(nightly, 3)

            # 3. queries: DuckDB over the lake (a new connection each time, as a notebook cell) vs PostgreSQL
            check = lakeread.query(lake_dir, "SELECT count(*) AS n FROM calls")["n"][0]
            assert check == n_calls, (check, n_calls)
            duck_calls, duck_calls_s = timed(lambda: lakeread.query(lake_dir, DUCK_CALLS), 5)
            duck_turns, duck_turns_s = timed(lambda: lakeread.query(lake_dir, DUCK_TURNS), 5)
            out = run_child(QUERY_CHILD, str(lake_dir), DUCK_TURNS)
            _, _, query_rss = out.split()
            pstart, pend = timeutil.day_start(first, TZ), timeutil.day_start(END_DATE + timedelta(days=1), TZ)

            def pg(sql: str) -> int:
                with engine.connect() as conn:
                    return len(conn.execute(sa.text(sql), {"start": pstart, "end": pend}).fetchall())

            # 4. the analyst's DataFrame of 90 days of calls (fresh processes, as a notebook kernel)
            span = (first.isoformat(), END_DATE.isoformat())
            wb_lake = [run_child(WORKBENCH_LAKE_CHILD, str(lake_dir), *span).split() for _ in range(3)]
            wb_pg = [run_child(WORKBENCH_PG_CHILD, url, *span).split() for _ in range(3)]
            assert int(wb_lake[0][1]) == int(wb_pg[0][1]) == n_calls

            pg_calls_rows, pg_calls_s = timed(lambda: pg(PG_CALLS), 3)
            pg_turns_rows, pg_turns_s = timed(lambda: pg(PG_TURNS), 3)
            assert pg_calls_rows == duck_calls.height and pg_turns_rows == duck_turns.height
            engine.dispose()
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)

    rows = day_result.rows()
    body = f"""## Lake

Data: one day of {per_day:,} generated calls ingested for real ({rows["turns"]:,} turns, {rows["tool_calls"]:,}
tool calls, per-call metrics, rule-based scores), replicated in SQL to {days} days with new ids
({n_calls:,} calls, {n_turns:,} turns) and backfilled into the lake. Targets: nightly export of one
day < 5 s; a DuckDB query over 90 days of the lake < 1 s. Query times include opening a new DuckDB
connection and creating the views (what `lake.query` does for every call).

| Measurement | Result |
|---|---|
| `export_day`, one day, 4 tables ({sum(rows.values()):,} rows, {parquet_bytes / 2**20:.1f} MiB Parquet), median of 5 | **{median(export_s):.2f} s** |
| The same export in a fresh process: time / peak RSS | {float(child_export_s):.2f} s / {export_rss} MiB |
| Read path, turns of the day: `COPY … TO STDOUT` (CSV) parsed by Arrow, masked, median of 3 | {median(copy_s) * 1000:.0f} ms |
| Baseline read path: a server-side cursor into Arrow arrays, masked, median of 3 | {median(cursor_s) * 1000:.0f} ms |
| Backfill, `export_range` of {days - 1} days | {backfill_s:.1f} s ({backfill_s / max(days - 1, 1):.2f} s/day) |
| The nightly job, `export_changed` over 7 days: yesterday new, 6 days unchanged, median of 3 | **{median(nightly_s):.2f} s** |
| `export_changed` over 7 days with nothing changed (fingerprints only), median of 3 | {median(changed_s) * 1000:.0f} ms |
| Lake size, {days} days | {lake_bytes / 2**20:.0f} MiB |
| DuckDB: calls per week × scenario (transfer rate, quality, cost, p95), {days} days, median of 5 | **{median(duck_calls_s) * 1000:.0f} ms** |
| Baseline: the same over PostgreSQL (calls ⋈ call_metrics), median of 3 | {median(pg_calls_s) * 1000:.0f} ms |
| DuckDB: turns ⋈ calls per scenario × speaker (count, length, LLM/STT p95), {days} days, median of 5 | **{median(duck_turns_s) * 1000:.0f} ms** |
| Baseline: the same over PostgreSQL (call_turns ⋈ calls), median of 3 | {median(pg_turns_s) * 1000:.0f} ms |
| Peak RSS of a fresh process running the turns query | {query_rss} MiB |
| Notebook: {days} days of calls ({n_calls:,} rows, every column) into a DataFrame from the lake, `cca.lake().load("calls", …)`, median of 3 fresh processes / peak RSS | **{median([float(r[0]) for r in wb_lake]):.2f} s** / {max(int(r[2]) for r in wb_lake)} MiB (target < 2 s) |
| Notebook: the same from PostgreSQL, `store.calls(first, last)`, median of 3 fresh processes / peak RSS | **{median([float(r[0]) for r in wb_pg]):.2f} s** / {max(int(r[2]) for r in wb_pg)} MiB (target < 5 s) |
"""
    write_section("lake", COMMAND + (" (--quick)" if quick else ""), body)
    print(body)
    if not quick:  # the goals are stated for 90 days × 2,000 calls/day
        lake_load = median([float(r[0]) for r in wb_lake])
        pg_load = median([float(r[0]) for r in wb_pg])
        check_goals(
            "lake",
            [
                (f"nightly export of one day < 5 s (measured {median(export_s):.2f} s)", median(export_s) < 5),
                (f"DuckDB query over 90 days < 1 s (measured {median(duck_turns_s):.2f} s)", median(duck_turns_s) < 1),
                (f"notebook load from the lake < 2 s (measured {lake_load:.2f} s)", lake_load < 2),
                (f"notebook load from PostgreSQL < 5 s (measured {pg_load:.2f} s)", pg_load < 5),
            ],
        )
