"""Near-real-time processing (ccanalytics.ops.freshness, the scheduler's job ``fresh``): a call that has
just ended is scored, priced, counted in its day's figures and by the exporter after one run, whether
it came through the ingest API or the call processor wrote it itself; a run with nothing new does
nothing. (How fast, at what rate: the benchmark group ``freshness``.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from factories import make_call, write_as_processor
from prometheus_client.parser import text_string_to_metric_families

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


def exported_calls(engine) -> float:
    text = exporter.render(exporter.make_registry(engine, derive=False, lag_seconds=0)).decode()
    return sum(
        s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == "cca_calls_total"
    )


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
