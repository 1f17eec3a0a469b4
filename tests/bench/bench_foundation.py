"""Foundation benchmarks: bulk ingest against row-by-row INSERT, and store.calls() over 90 days.

Both loaders validate every record the same way; only the write path differs. The bulk load and the
baseline run in child processes so their peak memory is measured separately; the bulk load's
validation workers are counted with it.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date
from itertools import islice
from pathlib import Path

from common import fresh_server, median, run_child, write_section

END_DATE = date(2026, 11, 23)

BULK = """
import json, resource, sys, time
from ccanalytics.database import create_engine
from ccanalytics.ingest import ingest_file
from ccanalytics.ingest_pipeline import default_workers
engine = create_engine(sys.argv[1], statement_timeout_ms=0)
t0 = time.perf_counter()
result = ingest_file(engine, sys.argv[2], batch_size=1000)
seconds = time.perf_counter() - t0
peak = {"rss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "rss_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, "workers": default_workers()}
print(json.dumps({"seconds": seconds, **result.summary(), **peak}))
"""

# The naive way: validate, then one INSERT statement per row, one transaction per call (or per
# BATCH calls), customer upsert per call.
ROW_BY_ROW = """
import json, sys, time
import sqlalchemy as sa
from ccanalytics.callog import validate_json
from ccanalytics.database import create_engine
from ccanalytics.ingest import CALL_COLUMNS, TURN_COLUMNS, TOOL_COLUMNS, call_row, turn_rows, tool_rows
engine = create_engine(sys.argv[1], statement_timeout_ms=0)
per_tx = int(sys.argv[3])
def insert(table, columns):
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
ins_call, ins_turn, ins_tool = insert("calls", CALL_COLUMNS), insert("call_turns", TURN_COLUMNS), insert("call_tool_calls", TOOL_COLUMNS)
t0 = time.perf_counter()
n = turns = 0
with engine.connect() as conn:
    raw = conn.connection.driver_connection
    raw.autocommit = False
    conn.execute(sa.text("SELECT 1")); conn.commit()
    raw.execute("SELECT cca_ensure_partitions('calls', '2026-08-01', 5), cca_ensure_partitions('call_turns', '2026-08-01', 5), cca_ensure_partitions('call_tool_calls', '2026-08-01', 5)")
    with open(sys.argv[2], "rb") as f:
        for i, line in enumerate(f, 1):
            call = validate_json(line, i)
            cur = raw.cursor()
            ids = {}
            if call.caller_id:
                cur.execute("INSERT INTO customers (phone) VALUES (%s) ON CONFLICT (phone) DO UPDATE SET total_calls = customers.total_calls + 1 RETURNING id", (call.caller_id,))
                ids[call.caller_id] = cur.fetchone()[0]
            cur.execute(ins_call, call_row(call, ids, {}))
            for row in turn_rows(call):
                cur.execute(ins_turn, row); turns += 1
            for row in tool_rows(call):
                cur.execute(ins_tool, row)
            n += 1
            if n % per_tx == 0:
                raw.commit()
    raw.commit()
print(json.dumps({"seconds": time.perf_counter() - t0, "inserted": n, "turns": turns}))
"""

STORE_CALLS = """
import json, sys, time
from ccanalytics.database import create_engine
from ccanalytics.store import Store
store = Store(create_engine(sys.argv[1], statement_timeout_ms=0))
runs = []
for _ in range(6):
    t0 = time.perf_counter()
    frame = store.calls(sys.argv[2], sys.argv[3])
    runs.append(time.perf_counter() - t0)
print(json.dumps({"rows": frame.height, "columns": frame.width, "runs": runs}))
"""


def _validate_ms(path: Path) -> float:
    from ccanalytics.callog import validate_json

    lines = path.read_bytes().splitlines()
    t0 = time.perf_counter()
    for i, line in enumerate(lines):
        validate_json(line, i)
    return (time.perf_counter() - t0) / len(lines) * 1000


def run(*, quick: bool = False) -> None:
    from ccanalytics.database import create_engine
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants
    from ccanalytics.migrate import migrate

    days, per_day, sample = (6, 500, 300) if quick else (90, 2000, 2000)
    work = Path(tempfile.mkdtemp(prefix="cca-bench-data-"))
    source = work / "calls.jsonl"
    calls = turns = tools = 0
    with open(source, "w", encoding="utf-8") as f:
        for call in generate_calls(seed=7, days=days, calls_per_day=per_day, end_date=END_DATE, ab_test=None):
            calls += 1
            turns += len(call["turns"])
            tools += sum(len(t.get("tool_calls", [])) for t in call["turns"])
            f.write(json.dumps(call, ensure_ascii=False) + "\n")
    sample_file = work / "sample.jsonl"
    with open(source, "rb") as f, open(sample_file, "wb") as out:
        out.writelines(islice(f, sample))
    size_mb = source.stat().st_size / 2**20
    print(f"data: {calls} calls, {turns} turns, {tools} tool calls, {size_mb:.0f} MiB JSONL", flush=True)

    with fresh_server() as make_db:
        urls = {}
        for name in ("bulk", "rows_per_call", "rows_per_1000", "bulk_sample"):
            urls[name] = make_db(name)
            engine = create_engine(urls[name])
            migrate(engine)
            with engine.begin() as conn:  # the demo calls name the demo's tenants
                ensure_demo_tenants(conn)
            engine.dispose()

        out, _ = run_child(BULK, urls["bulk"], str(source))
        bulk = json.loads(out)
        print(f"bulk: {bulk}", flush=True)
        out, _ = run_child(BULK, urls["bulk_sample"], str(sample_file))
        bulk_sample = json.loads(out)
        out, _ = run_child(ROW_BY_ROW, urls["rows_per_call"], str(sample_file), "1")
        rows_call = json.loads(out)
        out, _ = run_child(ROW_BY_ROW, urls["rows_per_1000"], str(sample_file), "1000")
        rows_batch = json.loads(out)
        print(f"row-by-row: {rows_call} / {rows_batch}", flush=True)

        first = date.fromordinal(END_DATE.toordinal() - days + 1)
        out, _ = run_child(STORE_CALLS, urls["bulk"], first.isoformat(), END_DATE.isoformat())
        store = json.loads(out)
        print(f"store.calls: {store}", flush=True)

    rate = lambda r: r["inserted"] / r["seconds"]  # noqa: E731
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    validate_ms = _validate_ms(sample_file)
    bulk_rate, sample_rate = rate(bulk), rate(bulk_sample)
    # an upper bound: forked workers share pages with the loading process
    bulk_rss = bulk["rss_self"] + bulk["workers"] * bulk["rss_worker"]
    workers = f"{bulk['workers']} validation worker process" + ("es" if bulk["workers"] != 1 else "")
    body = f"""## Foundation: ingest and the query API

Data: `ccanalytics.demo.generator` with seed 7, {days} days × {per_day} calls/day ending {END_DATE}:
{calls:,} calls, {turns:,} turns, {tools:,} tool calls, {size_mb:.0f} MiB of JSONL. Embedded PostgreSQL 16
(pgserver) with default durable settings; every loader validates every record with the same code.

The bulk load (`ingest_file`, default settings) validates lines and formats them as COPY text in
{workers} (one per core but one, over chunks of raw lines), while a writer thread streams the
prepared text of each batch of 1,000 calls to `COPY` in one transaction; the loading process keeps
the order of the file (batches, reject file, progress). The baseline validates a line, then inserts
its rows one statement at a time.

| loader | calls | seconds | calls/s | turns/s | vs row-by-row per call |
|---|---:|---:|---:|---:|---:|
| bulk `ingest_file` (COPY, 1,000 calls per transaction) | {bulk["inserted"]:,} | {bulk["seconds"]:.1f} | {bulk_rate:,.0f} | {bulk["turns"] / bulk["seconds"]:,.0f} | **{bulk_rate / rate(rows_call):.1f}×** |
| bulk `ingest_file`, first {sample:,} calls only | {bulk_sample["inserted"]:,} | {bulk_sample["seconds"]:.2f} | {sample_rate:,.0f} | {bulk_sample["turns"] / bulk_sample["seconds"]:,.0f} | {sample_rate / rate(rows_call):.1f}× |
| baseline: row-by-row INSERT, one transaction per call | {rows_call["inserted"]:,} | {rows_call["seconds"]:.2f} | {rate(rows_call):,.0f} | {rows_call["turns"] / rows_call["seconds"]:,.0f} | 1.0× |
| baseline: row-by-row INSERT, one transaction per 1,000 calls | {rows_batch["inserted"]:,} | {rows_batch["seconds"]:.2f} | {rate(rows_batch):,.0f} | {rows_batch["turns"] / rows_batch["seconds"]:,.0f} | {rate(rows_batch) / rate(rows_call):.1f}× |

Peak memory (RSS) of the bulk load for all {calls:,} calls: **{bulk_rss} MiB** at most (target < 1 GiB): the
loading process peaked at {bulk["rss_self"]} MiB, its {workers} at {bulk["rss_worker"]} MiB or less each.
Target: bulk ≥ 10× row-by-row — {verdict(bulk_rate / rate(rows_call) >= 10)}: {bulk_rate / rate(rows_call):.1f}× against the
per-call baseline and {bulk_rate / rate(rows_batch):.1f}× against row-by-row with batched commits. Both loaders validate
every record with the same code ({validate_ms:.2f} ms per call measured alone).

What bounds the ratio is CPU: 2 cores, shared with the database. Measured while writing the pipeline
(CPU time of every process, the 181k calls, 2026-11-25): the bulk load spends 0.31 ms of
PostgreSQL CPU per call (two thirds of it in the turns' COPY: the generated `tsvector` of each turn,
the GIN index over it, the 15 B-tree indexes of the three tables; 0.03 in the final `ANALYZE`) and
0.30 ms of Python (validation 0.16–0.2, COPY text 0.05, moving lines between processes, the
writer). 0.61 ms on 2 cores caps it near 3,300 calls/s; the one loading backend is busy about 95 %
of the load, so a second connection would find no idle core. Row-by-row spends 3.4 ms of CPU per
call (1.6 in Python, 1.8 in PostgreSQL), one process waiting for the other. The ratio cannot go much
beyond 11× here, and the baseline's own rate moves by about ±7 % between runs (265–306 calls/s on
this machine), so a single run can land on either side of 10×.

`store.calls()` over {days} days ({store["rows"]:,} calls, {store["columns"]} columns, into Polars):
first run {store["runs"][0]:.2f} s, then median {median(store["runs"][1:]):.2f} s (target < 1 s:
{verdict(median(store["runs"][1:]) < 1)}).
"""
    command = "make bench BENCH=foundation" + (" (--quick)" if quick else "")
    write_section("foundation", command, body)
    print(body)
