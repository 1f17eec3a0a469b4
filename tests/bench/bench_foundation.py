"""Foundation benchmarks: bulk ingest against row-by-row INSERT, and store.calls() over 90 days.

Both loaders validate every record the same way; only the write path differs. The bulk load and the
baseline run in child processes so their peak memory is measured separately; the bulk load's
validation workers are counted with it.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, timedelta
from itertools import islice
from pathlib import Path

from common import check_goals, ensure_months, fresh_server, last_day, median, run_child, write_section

END_DATE = last_day()  # yesterday by the one clock: the benchmark runs on any day

BULK = """
import json, resource, sys, time
from ccanalytics.db.engine import create_engine
from ccanalytics.ingest.load import ingest_file
from ccanalytics.ingest.pipeline import default_workers
engine = create_engine(sys.argv[1], statement_timeout_ms=0)
t0 = time.perf_counter()
result = ingest_file(engine, sys.argv[2], batch_size=1000)
seconds = time.perf_counter() - t0
peak = {"rss_self": _peak_rss_mib(),
        "rss_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, "workers": default_workers()}
print(json.dumps({"seconds": seconds, **result.summary(), **peak}))
"""

# The naive way: validate, then one INSERT statement per row, one transaction per call (or per
# BATCH calls), customer upsert per call (per tenant and phone, as the processor's customers are), the
# rows from the same validated call as the bulk load's (ccanalytics.ingest.prepare's row functions).
ROW_BY_ROW = """
import json, sys, time
from ccanalytics.ingest.callog import validate_json
from ccanalytics.db.engine import create_engine
from ccanalytics.ingest.prepare import (CALL_COLUMNS, INGEST_COLUMNS, TOOL_COLUMNS, TURN_COLUMNS, TURN_EXTRA_COLUMNS,
    call_row, ingest_row, tool_rows, turn_extra_rows, turn_rows)
engine = create_engine(sys.argv[1], statement_timeout_ms=0)
per_tx = int(sys.argv[3])
def insert(table, columns):
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
ins_call, ins_ingest = insert("calls", CALL_COLUMNS), insert("cca_call_ingest", INGEST_COLUMNS)
ins_turn, ins_extra = insert("call_turns", TURN_COLUMNS), insert("cca_turn_extras", TURN_EXTRA_COLUMNS)
ins_tool = insert("call_tool_calls", TOOL_COLUMNS)
upsert_customer = ("INSERT INTO customers (id, tenant_id, phone, total_calls, first_call_at, last_call_at) "
                   "VALUES (gen_random_uuid(), %s, %s, 1, %s, %s) ON CONFLICT (tenant_id, phone) DO UPDATE "
                   "SET total_calls = customers.total_calls + 1, last_call_at = EXCLUDED.last_call_at RETURNING id")
t0 = time.perf_counter()
n = turns = 0
with engine.connect() as conn:
    raw = conn.connection.driver_connection
    raw.autocommit = False
    tenants = dict(raw.execute("SELECT slug, id FROM tenants").fetchall())
    raw.commit()
    with open(sys.argv[2], "rb") as f:
        for i, line in enumerate(f, 1):
            call = validate_json(line, i)
            tenant_id = tenants.get(call.log.tenant)
            cur = raw.cursor()
            ids = {}
            if call.caller_id and tenant_id:
                cur.execute(upsert_customer, (tenant_id, call.caller_id, call.log.started_at, call.log.started_at))
                ids[call.caller_id] = cur.fetchone()[0]
            cur.execute(ins_call, call_row(call, ids, tenant_id))
            cur.execute(ins_ingest, ingest_row(call))
            for row in turn_rows(call):
                cur.execute(ins_turn, row); turns += 1
            for row in turn_extra_rows(call):
                cur.execute(ins_extra, row)
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
from ccanalytics.db.engine import create_engine
from ccanalytics.analytics.store import Store
store = Store(create_engine(sys.argv[1], statement_timeout_ms=0))
runs = []
for _ in range(6):
    t0 = time.perf_counter()
    frame = store.calls(sys.argv[2], sys.argv[3])
    runs.append(time.perf_counter() - t0)
print(json.dumps({"rows": frame.height, "columns": frame.width, "runs": runs}))
"""


def _validate_ms(path: Path) -> float:
    from ccanalytics.ingest.callog import validate_json

    lines = path.read_bytes().splitlines()
    t0 = time.perf_counter()
    for i, line in enumerate(lines):
        validate_json(line, i)
    return (time.perf_counter() - t0) / len(lines) * 1000


def run(*, quick: bool = False) -> None:
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants

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
            # the months of the data (the row-by-row baseline writes into partitions that exist)
            ensure_months(engine, END_DATE - timedelta(days=days), END_DATE + timedelta(days=1))
            engine.dispose()

        out = run_child(BULK, urls["bulk"], str(source))
        bulk = json.loads(out)
        print(f"bulk: {bulk}", flush=True)
        out = run_child(BULK, urls["bulk_sample"], str(sample_file))
        bulk_sample = json.loads(out)
        out = run_child(ROW_BY_ROW, urls["rows_per_call"], str(sample_file), "1")
        rows_call = json.loads(out)
        out = run_child(ROW_BY_ROW, urls["rows_per_1000"], str(sample_file), "1000")
        rows_batch = json.loads(out)
        print(f"row-by-row: {rows_call} / {rows_batch}", flush=True)

        first = date.fromordinal(END_DATE.toordinal() - days + 1)
        out = run_child(STORE_CALLS, urls["bulk"], first.isoformat(), END_DATE.isoformat())
        store = json.loads(out)
        print(f"store.calls: {store}", flush=True)

    rate = lambda r: r["inserted"] / r["seconds"]
    verdict = lambda ok: "met" if ok else "NOT met"
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

What bounds the ratio is CPU: 2 cores, shared by the database backend that receives the COPY and the
validation worker (the load average is in the line below). On the call processor's schema every call
writes calls (13 indexes of the processor's), cca_call_ingest, call_turns with two GIN indexes (the
processor's `to_tsvector('simple', …)` and ccanalytics's `cca_search_vector`, Russian snowball stemming of
every word), cca_turn_extras, call_tool_calls and customers per tenant and phone. Measured on 2026-12-06
with 20,000 calls (CPU time per call): the backend 0.59 ms, of which the two GIN indexes take about 0.35 ms
(0.20 ms ccanalytics's search index, 0.15 ms the processor's; dropping them in a test load made the backend
0.27 ms), and the validation worker 0.43 ms (reading, validating and formatting the COPY text; validation alone is the smaller figure above). The row-by-row baseline pays the same 0.59 ms in the backend
plus a round trip per statement. 10× the baseline is 0.44 ms per call, less than the backend's own
0.59 ms on one connection; even split over two connections, the two cores must do 0.59 + 0.43 ms of work
per call, at best about 1,900 calls/s (8–9×). So on 2 cores the goal is out of reach unless the search
index goes (which the journal's search goals need) or the machine has more cores. A larger GIN pending
list (`gin_pending_list_limit` 64 MB on every partition) did not change it.

`store.calls()` over {days} days ({store["rows"]:,} calls, {store["columns"]} columns, into Polars):
first run {store["runs"][0]:.2f} s, then median {median(store["runs"][1:]):.2f} s (target < 1 s:
{verdict(median(store["runs"][1:]) < 1)}).
"""
    command = "make bench BENCH=foundation" + (" (--quick)" if quick else "")
    write_section("foundation", command, body)
    print(body)
    if not quick:  # the goals are stated for 90 days × 2,000 calls/day
        store_s = median(store["runs"][1:])
        check_goals(
            "foundation",
            [
                (
                    f"bulk ingest ≥ 10× row-by-row (measured {bulk_rate / rate(rows_call):.1f}×)",
                    bulk_rate / rate(rows_call) >= 10,
                ),
                (f"bulk ingest peak RSS < 1 GiB (measured {bulk_rss} MiB)", bulk_rss < 1024),
                (f"store.calls() over 90 days < 1 s (measured {store_s:.2f} s)", store_s < 1),
            ],
        )
