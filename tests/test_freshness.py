"""Near-real-time processing (ccanalytics.ops.freshness, the scheduler's job ``fresh``): a call that has
just ended is scored, priced, counted in its day's figures and by the exporter after one run, whether
it came through the ingest API or the call processor wrote it itself; a run with nothing new does
nothing. (How fast, at what rate: the benchmark group ``freshness``.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from factories import TENANT, make_call, write_as_processor
from tablereads import SMALL_PAGES, calls_reads, passes

from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import exporter, freshness, jobs


def state(engine, call_id) -> dict:
    """What ccanalytics knows of the call: its score, its price, and whether the figures of its day
    count it (calls of the day in cca_daily_stats against the calls of that day, in progress or not)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT c.quality_scored, c.cost_priced, c.started_at FROM cca_calls c WHERE c.id = :id"),
            {"id": call_id},
        ).one()
        day = timeutil.to_date(row.started_at, timeutil.DEFAULT_TZ)
        counted = conn.execute(
            sa.text("SELECT coalesce(sum(total_calls), 0) FROM cca_daily_stats WHERE stat_date = :d"), {"d": day}
        ).scalar_one()
        calls = conn.execute(
            sa.text("SELECT count(*) FROM calls WHERE started_at >= :a AND started_at < :b"),
            {"a": timeutil.day_start(day), "b": timeutil.day_start(day + timedelta(days=1))},
        ).scalar_one()
    return {"scored": row.quality_scored, "priced": row.cost_priced, "day_counts_all": counted == calls}


def value_of(collector, name: str) -> float:
    """The sum of a metric's samples over every label set, as the collector serves it (a scrape)."""
    return sum(s.value for fam in collector.collect() for s in fam.samples if s.name == name)


def exported_calls(engine) -> float:
    return value_of(exporter.CallLogCollector(engine, derive=False, lag_seconds=0), "cca_calls_total")


def test_a_call_the_processor_ends_is_scored_priced_and_counted_by_the_next_run(engine, db_url):
    settings = Settings(database_url=db_url)
    start = clock.now().replace(microsecond=0) - timedelta(minutes=3)
    call = make_call(started_at=start, caller_id=None, seconds=60)
    with engine.begin() as conn:
        call_id = write_as_processor(conn, call, ended=False)  # the call is in progress
    freshness.run(engine, settings)
    assert state(engine, call_id) == {"scored": False, "priced": False, "day_counts_all": True}
    assert exported_calls(engine) == 0

    with engine.begin() as conn:  # the processor's UPDATE at the end of the call
        conn.execute(
            sa.text(
                "UPDATE calls SET ended_at = started_at + interval '60 seconds', duration_seconds = 60, "
                "scenario = 'tire_search', transferred_to_operator = false WHERE id = :id"
            ),
            {"id": call_id},
        )
    run = freshness.run(engine, settings)
    assert (run.derived, run.ended, run.queued, run.scored, run.priced) == (1, 1, 1, 1, 1)
    assert state(engine, call_id) == {"scored": True, "priced": True, "day_counts_all": True}
    assert exported_calls(engine) == 1

    idle = freshness.run(engine, settings)  # nothing new: nothing is done
    assert (idle.derived, idle.ended, idle.queued, idle.scored, idle.priced, idle.days) == (0, 0, 0, 0, 0, ())


def test_a_call_an_exporter_derived_first_is_still_processed(engine, db_url):
    """An exporter's scrape may derive a call's metrics before the job runs: the job still finds it
    (not queued, not priced) and processes it."""
    settings = Settings(database_url=db_url)
    call = make_call(started_at=clock.now().replace(microsecond=0) - timedelta(minutes=2), caller_id=None)
    ingest_records(engine, [call])
    exporter.CallLogCollector(engine, lag_seconds=0).refresh()  # derives the call's metrics
    run = freshness.run(engine, settings)
    assert (run.derived, run.ended, run.scored, run.priced) == (0, 1, 1, 1)
    assert state(engine, call["call_id"]) == {"scored": True, "priced": True, "day_counts_all": True}


def test_a_call_delivered_through_the_api_is_processed_by_the_next_run(engine, db_url):
    settings = Settings(database_url=db_url)
    call = make_call(started_at=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2), caller_id=None)
    ingest_records(engine, [call])
    run = jobs.process_fresh_calls(engine, settings)
    assert run.ran and run.outcome["ended"] == 1 and run.outcome["scored"] == 1 and run.outcome["priced"] == 1
    assert state(engine, call["call_id"]) == {"scored": True, "priced": True, "day_counts_all": True}
    assert exported_calls(engine) == 1


def test_calls_that_started_before_the_horizon_are_left_to_the_periodic_jobs(engine, db_url):
    settings = Settings(database_url=db_url)
    old = make_call(
        started_at=datetime.now(UTC).replace(microsecond=0) - freshness.HORIZON - timedelta(minutes=5),
        caller_id=None,
    )
    ingest_records(engine, [old])
    assert freshness.run(engine, settings).ended == 0
    assert jobs.score_new_calls(engine, settings).outcome["scored"] == 1


def test_a_run_and_a_scrape_read_the_processor_calls_through_indexes(engine, db_url, monkeypatch):
    """Over a run that found a new call and a scrape (with its gauges), the processor's calls are read
    through indexes — the day's calls, their customers' other calls, the newest call of each tenant —
    not by passes over the table: no partition of more than a few pages is read by a sequential scan
    (the week of calls below, one every two minutes, fills one or two partitions; a partition of a
    page or two is read whole rather than through an index, PostgreSQL's choice)."""
    from ccanalytics.db import partitions

    settings = Settings(database_url=db_url)
    now = clock.now().replace(microsecond=0)
    n = 6000
    with engine.begin() as conn:
        partitions.ensure_months(conn, [now - timedelta(minutes=2 * n), now])
        tenant = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = :s"), {"s": TENANT}).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO customers (id, tenant_id, phone, total_calls) "
                "SELECT gen_random_uuid(), :t, '+38067' || lpad(g::text, 7, '0'), 0 FROM generate_series(1, 1500) g"
            ),
            {"t": tenant},
        )
        conn.execute(
            sa.text(
                "INSERT INTO calls (id, caller_id, customer_id, started_at, ended_at, duration_seconds, scenario, "
                "transferred_to_operator, prompt_version, tenant_id) "
                "SELECT gen_random_uuid(), k.phone, k.id, :now - g * interval '2 minutes', "
                "       :now - g * interval '2 minutes' + interval '80 seconds', 80, 'tire_search', g % 5 = 0, "
                "       'default', :t "
                "FROM generate_series(1, :n) g "
                "JOIN (SELECT id, phone, row_number() OVER (ORDER BY phone) - 1 AS i FROM customers) k "
                "  ON k.i = (g * 7) % 1500"
            ),
            {"now": now, "n": n, "t": tenant},
        )
        conn.execute(sa.text("ANALYZE calls"))
    collector = exporter.CallLogCollector(engine, lag_seconds=0)
    collector.refresh()  # what a running exporter has counted already
    freshness.run(engine, settings)  # and the job: the background's recent calls are processed
    monkeypatch.setattr(exporter, "GAUGES_EVERY", timedelta(0))  # the gauges at the next scrape

    call = make_call(started_at=now - timedelta(minutes=1), caller_id="+380670000700", seconds=50)
    with engine.begin() as conn:
        write_as_processor(conn, call)
    before = calls_reads(engine)
    run = freshness.run(engine, settings)
    collector.refresh()
    after = calls_reads(engine)
    assert (run.ended, run.scored, run.priced) == (1, 1, 1)
    # the gauges were read again: the newest call is the one that just ended
    assert (
        value_of(collector, "cca_last_call_timestamp_seconds") == datetime.fromisoformat(call["ended_at"]).timestamp()
    )
    assert max(r.pages for r in after.values()) > SMALL_PAGES  # a pass would show
    assert passes(before, after) == [], {p: r for p, r in after.items() if r != before.get(p)}
