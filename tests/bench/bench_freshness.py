"""Freshness benchmark (issue 22): how long after a call ends is it scored, priced, counted in its
day's figures and visible in /metrics — with the call processor writing calls itself, in real time.

Setup: a week of demo calls (two days with --quick) at three times the peak day (6,000 calls a day:
the tables the processor has at that rate, already processed by the periodic jobs). Then the busiest hour of a day
(the demo's hour weights: 9.4 % of a day's calls) at three times the peak day of 2,000 calls, replayed
in real time for ``MINUTES`` minutes: each call is written the way the processor writes it (INSERT
at its start with its turns, tool calls and LLM requests; UPDATE of the end, scenario and cost at its
end). Meanwhile, as in production, the scheduler's ``fresh`` job runs every 15 s and an exporter is
scraped every 15 s (Prometheus' interval in prometheus/prometheus.yml), deriving as the admin's
/metrics does.

Per call, from the commit of its end: scored (its first call_scores row), priced (its cca_call_costs
row), counted (the end of the first ``fresh`` run that recomputed its day after that) and visible in
/metrics (the first scrape whose watermark passed its call_metrics.final_at). Goal: p95 ≤ 60 s each.
The processor's tables must not be scanned over and over: the rows of calls read during the replay
(pg_stat_user_tables, per partition, statistics flushed) are reported per minute beside what one pass
over the whole table every 15 s would read, and a sequential scan of a partition of more than
``SMALL_PAGES`` pages fails the run (goal: read through indexes).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import check_goals, fresh_server, loadavg, median, p95, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the processor's writes, the reads

MINUTES = 15
PEAK_DAY = 2000
GOAL_S = 60.0
TICK_S = 15.0


def _busiest_hour_share() -> float:
    from ccanalytics.demo.generator import _HOUR_WEIGHTS

    return max(_HOUR_WEIGHTS) / sum(_HOUR_WEIGHTS)


def _shift(call: dict, start: datetime) -> dict:
    """The generated call moved to start at ``start`` (a new id; every stamp moved alike)."""
    old = datetime.fromisoformat(call["started_at"])
    delta = start - old

    def moved(stamp: str) -> str:
        return (datetime.fromisoformat(stamp) + delta).isoformat()

    out = {**call, "call_id": str(uuid.uuid4()), "started_at": start.isoformat(), "ended_at": moved(call["ended_at"])}
    out["turns"] = [{**t, "timestamp": moved(t["timestamp"])} for t in call["turns"]]
    return out


def run(quick: bool = False) -> None:
    import sqlalchemy as sa
    from factories import end_as_processor, write_as_processor
    from tablereads import NONE, SMALL_PAGES, calls_reads, passes, scanned

    from ccanalytics.core import timeutil
    from ccanalytics.core.config import Settings
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo import load_demo_data
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.ops import exporter, jobs

    minutes = 3 if quick else MINUTES
    days = 2 if quick else 7
    per_hour = 3 * PEAK_DAY * _busiest_hour_share()
    gap = 3600.0 / per_hour
    with fresh_server() as make_db:
        url = make_db("bench_freshness")
        engine = create_engine(url, statement_timeout_ms=0, pool_size=6)
        migrate(engine)
        settings = Settings(database_url=url)
        print(f"  setup: {days} days at {3 * PEAK_DAY:,} calls a day", flush=True)
        load_demo_data(engine, days=days, calls_per_day=3 * PEAK_DAY)
        while jobs.score_new_calls(engine, settings, limit=5000).outcome["scored"]:
            pass
        jobs.price_calls(engine, settings)
        jobs.refresh_daily_stats(engine, settings)
        jobs.process_fresh_calls(engine, settings)
        # an exporter that has been running: its first scrape (counting every call since its checkpoint)
        # is a catch-up, not the steady load measured below
        collector = exporter.CallLogCollector(engine)
        collector.refresh()
        with engine.connect() as conn:
            background = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
        read1 = calls_reads(engine)

        # the replay: calls end every `gap` seconds from t0 on
        pool = [c for c in generate_calls(seed=23, days=1, calls_per_day=600, ab_test=None) if c.get("tenant")]
        count = int(minutes * 60 / gap)
        t0 = datetime.now(UTC) + timedelta(seconds=5)
        calls = []
        for i in range(count):
            src = pool[i % len(pool)]
            length = datetime.fromisoformat(src["ended_at"]) - datetime.fromisoformat(src["started_at"])
            end = t0 + timedelta(seconds=(i + 1) * gap)
            calls.append(_shift(src, end - length))
        events = sorted(
            [(max(datetime.fromisoformat(c["started_at"]), t0), 0, i) for i, c in enumerate(calls)]
            + [(datetime.fromisoformat(c["ended_at"]), 1, i) for i, c in enumerate(calls)]
        )
        ended_at: dict[str, datetime] = {}
        runs: list[tuple[datetime, set, float]] = []
        scrapes: list[tuple[datetime, datetime]] = []
        stop = threading.Event()

        def fresh_loop() -> None:
            while not stop.is_set():
                began = time.monotonic()
                run = jobs.process_fresh_calls(engine, settings)
                days = set(run.outcome.get("days", ())) if run.ran else set()
                runs.append((datetime.now(UTC), days, run.seconds))
                stop.wait(max(0.0, TICK_S - (time.monotonic() - began)))

        def scrape_loop() -> None:
            while not stop.is_set():
                began = time.monotonic()
                collector.refresh()
                scrapes.append((datetime.now(UTC), collector._wm_metrics))
                stop.wait(max(0.0, TICK_S - (time.monotonic() - began)))

        threads = [threading.Thread(target=fresh_loop), threading.Thread(target=scrape_loop)]
        print(f"  replay: {count} calls over {minutes} min, one ending every {gap:.1f} s", flush=True)
        for th in threads:
            th.start()
        try:
            for at, kind, i in events:
                wait = (at - datetime.now(UTC)).total_seconds()
                if wait > 0:
                    time.sleep(wait)
                with engine.begin() as conn:
                    if kind == 0:
                        write_as_processor(conn, calls[i], tenant=calls[i]["tenant"], ended=False)
                    else:
                        end_as_processor(conn, calls[i])
                if kind == 1:
                    ended_at[calls[i]["call_id"]] = datetime.now(UTC)
            time.sleep(GOAL_S + TICK_S)  # let the last calls through
        finally:
            stop.set()
            for th in threads:
                th.join()

        read2 = calls_reads(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT c.id::text AS id, c.started_at, "
                    "(SELECT min(s.created_at) FROM call_scores s WHERE s.call_id = c.id) AS scored, "
                    "(SELECT k.priced_at FROM cca_call_costs k WHERE k.call_id = c.id) AS priced, "
                    "(SELECT m.final_at FROM call_metrics m WHERE m.call_id = c.id) AS final "
                    "FROM calls c WHERE c.id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": list(ended_at)},
            ).all()

    tz = timeutil.DEFAULT_TZ
    lags: dict[str, list[float]] = {"scored": [], "priced": [], "counted": [], "metrics": []}
    missing = {k: 0 for k in lags}
    for r in rows:
        end = ended_at[r.id]
        day = timeutil.to_date(r.started_at, tz).isoformat()
        found = {
            "scored": r.scored,
            "priced": r.priced,
            "counted": next((at for at, days, _ in runs if at > end and day in days), None),
            "metrics": next((at for at, wm in scrapes if r.final is not None and wm >= r.final), None),
        }
        for stage, at in found.items():
            if at is None:
                missing[stage] += 1
            else:
                lags[stage].append(max(0.0, (at - end).total_seconds()))
    run_seconds = [s for _, days, s in runs if days]
    labels = {
        "scored": "scored (first score)",
        "priced": "priced (ccanalytics's price)",
        "counted": "counted in its day's figures",
        "metrics": "visible in /metrics (exporter)",
    }
    lines = [
        f"{len(rows)} calls ended at {per_hour:,.0f} calls/hour (three times the busiest hour of a "
        f"{PEAK_DAY:,}-call day) for {minutes} min, written by the processor's statements into a database "
        f"of {background:,} calls; `fresh` every {TICK_S:.0f} s, exporter scraped every {TICK_S:.0f} s.",
        "",
        "| from the end of a call to … | median | p95 | max | not reached | goal |",
        "|---|---|---|---|---|---|",
    ]
    failed = []
    for stage, values in lags.items():
        if values:
            row = f"{median(values):.1f} s | {p95(values):.1f} s | {max(values):.1f} s"
        else:
            row = "— | — | —"
        ok = values and p95(values) <= GOAL_S and not missing[stage]
        if not ok:
            failed.append(stage)
        lines.append(f"| {labels[stage]} | {row} | {missing[stage]} | p95 ≤ {GOAL_S:.0f} s {'✓' if ok else '✗'} |")
    lines += [
        "",
        f"`fresh` runs that found work: {len(run_seconds)}, median {median(run_seconds or [0]):.2f} s, "
        f"p95 {p95(run_seconds or [0]):.2f} s of the {TICK_S:.0f} s tick.",
        "",
        "Rows of the processor's `calls` read during the replay, per partition (every reader: the writes' own "
        "lookups, `fresh`, the exporter; a whole-table pass every 15 s would read "
        f"{4 * (background + len(rows)):,} rows a minute):",
        "",
        "| partition | rows | pages | sequential scans a minute | rows a minute by sequential scans "
        "| rows a minute through indexes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for part, now in read2.items():
        before = read1.get(part, NONE)
        if now[2:] == before[2:]:
            continue
        lines.append(
            f"| {part} | {now.rows:,} | {now.pages:,} | {(now.scans - before.scans) / minutes:,.0f} "
            f"| {(now.seq - before.seq) / minutes:,.0f} | {(now.idx - before.idx) / minutes:,.0f} |"
        )
    passed = passes(read1, read2)
    small = [p for p in scanned(read1, read2) if p not in passed]
    lines += [
        "",
        f"Partitions of more than {SMALL_PAGES} pages read by sequential scans: {', '.join(passed)}."
        if passed
        else "No partition was read by a sequential scan."
        if not small
        else (
            f"Sequential scans read only partitions of at most {SMALL_PAGES} pages ({', '.join(small)}: PostgreSQL "
            "reads a page or two whole rather than descend an index, here once per customer whose calls it looks "
            "up); every larger partition was read through indexes."
        ),
    ]
    body = "\n".join(lines)
    print(body)
    load = loadavg()
    write_section(
        "freshness",
        "make bench BENCH=freshness" + (" (--quick)" if quick else ""),
        "## Freshness: a call's end to scored, priced, counted\n\n" + body,
        load=load,
    )
    goals = [(f"{labels[stage]}: p95 ≤ {GOAL_S:.0f} s, every call reached", stage not in failed) for stage in lags]
    if not quick:  # two days (--quick): a day's query covers half the table, where one pass is the cheaper plan
        goals.append(
            (f"no sequential pass over a partition of more than {SMALL_PAGES} pages ({', '.join(passed)})", not passed)
        )
    check_goals("freshness", goals)
