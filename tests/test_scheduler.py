"""The recurring jobs and the scheduler that runs them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import make_call

from ccanalytics.cli.root import main
from ccanalytics.core.config import Settings
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import jobs
from scheduler.app import build


def recent_calls(n: int) -> list[dict]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [make_call(started_at=now - timedelta(minutes=30 + i), caller_id=None) for i in range(n)]


def test_jobs_score_compute_and_skip_when_locked(engine, db_url):
    settings = Settings(database_url=db_url)
    ingest_records(engine, recent_calls(5))
    run = jobs.score_new_calls(engine, settings)
    assert run.ran and run.outcome["queued"] == 5 and run.outcome["scored"] == 5
    assert jobs.score_new_calls(engine, settings).outcome["queued"] == 0
    stats = jobs.refresh_daily_stats(engine, settings)
    assert stats.ran and stats.outcome["days_computed"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(total_calls) FROM cca_daily_stats")).scalar() == 5
    assert jobs.detect_problems(engine, settings).ran
    assert jobs.maintain_partitions(engine, settings).ran
    # another process holds the job: this one skips instead of running twice
    with engine.connect() as other:
        other.execute(sa.text("SELECT pg_advisory_lock(hashtextextended('cca-job:score', 0))"))
        skipped = jobs.score_new_calls(engine, settings)
        other.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended('cca-job:score', 0))"))
    assert not skipped.ran


def test_pricing_jobs_price_new_calls_and_the_months_behind_them(engine, db_url):
    settings = Settings(database_url=db_url)
    usage = {
        "stt_provider": "google",
        "stt_seconds": 30,
        "llm_model": "claude-haiku-4-5",
        "llm_input_tokens": 1000,
        "llm_output_tokens": 100,
        "tts_provider": "google",
        "tts_chars": 500,
    }
    now = datetime.now(UTC).replace(microsecond=0)
    fresh = [make_call(started_at=now - timedelta(minutes=30 + i), caller_id=None, usage=usage) for i in range(3)]
    old = make_call(started_at=now - timedelta(days=20), caller_id=None, usage=usage)
    ingest_records(engine, [*fresh, old])
    run = jobs.price_calls(engine, settings)
    assert run.ran and run.outcome["priced"] == 3 and run.outcome["updated"] == 3
    assert jobs.price_calls(engine, settings).outcome["updated"] == 0  # nothing changed since
    nightly = jobs.price_calls(engine, settings, nightly=True)  # reaches back into the previous month
    assert nightly.outcome["priced"] == 4 and nightly.outcome["updated"] == 1
    expected = round(2 * 0.006 + (1000 * 1.0 + 100 * 5.0) / 1e6 + 500 * 16.0 / 1e6, 6)  # two 15-s increments
    with engine.connect() as conn:
        totals = conn.execute(sa.text("SELECT DISTINCT total_cost_usd FROM cca_calls")).scalars().all()
    assert totals == [pytest.approx(expected)]


def test_scheduler_has_every_job_in_kyiv_time(engine, db_url):
    scheduler = build(engine, Settings(database_url=db_url), background=True)
    scheduler.start(paused=True)
    try:
        found = {j.id: j for j in scheduler.get_jobs() if not j.id.endswith(":catch-up")}
        assert set(found) == set(jobs.SCHEDULE)
        cron = {name for name, (_, trigger, _) in jobs.SCHEDULE.items() if trigger == "cron"}
        assert {j.id for j in scheduler.get_jobs() if j.id.endswith(":catch-up")} == {f"{n}:catch-up" for n in cron}
        nightly = found["daily_stats_nightly"].next_run_time
        assert (nightly.hour, nightly.minute, str(nightly.tzinfo)) == (1, 0, "Europe/Kyiv")
        assert found["score"].trigger.interval == timedelta(minutes=2)
        assert all(j.max_instances == 1 and j.coalesce for j in found.values())
    finally:
        scheduler.shutdown(wait=False)


def test_scheduler_once_from_the_cli(engine, db_url):
    ingest_records(engine, recent_calls(3))
    res = CliRunner().invoke(
        main, ["scheduler", "--once", "score", "--once", "daily_stats"], env={"CCA_DATABASE_URL": db_url}
    )
    assert res.exit_code == 0, res.output
    assert "score:" in res.output and "'scored': 3" in res.output and "daily_stats:" in res.output
    bad = CliRunner().invoke(main, ["scheduler", "--once", "nope"], env={"CCA_DATABASE_URL": db_url})
    assert bad.exit_code == 1 and bad.output.startswith("Error: unknown job 'nope'")


def test_lake_export_retention_and_alert_jobs_run_under_their_locks(engine, db_url, tmp_path):
    settings = Settings(database_url=db_url, lake_dir=tmp_path / "lake")
    yesterday = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1, hours=1)
    ingest_records(engine, [*recent_calls(3), make_call(started_at=yesterday, caller_id=None)])
    jobs.refresh_daily_stats(engine, settings)
    export = jobs.export_lake(engine, settings)
    assert export.ran and export.outcome["lake_dir"] == str(tmp_path / "lake")
    assert export.outcome["partitions_written"] >= 4  # yesterday's calls, turns, tool calls, scores
    assert jobs.export_lake(engine, settings).outcome["partitions_written"] == 0  # nothing changed since
    purge = jobs.purge_retention(engine, settings)
    assert purge.ran
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one() == 4  # recent calls stay
    alerts = jobs.evaluate_alerts(engine, settings)
    assert alerts.ran and {"fired", "resolved", "delivered", "pending"} <= set(alerts.outcome)


def test_a_restart_catches_up_the_runs_missed_while_down(engine, db_url):
    from zoneinfo import ZoneInfo

    from scheduler.app import catch_up

    kyiv = ZoneInfo("Europe/Kyiv")
    settings = Settings(database_url=db_url)
    for now, report_day in (
        (datetime(2026, 11, 25, 9, 30, tzinfo=kyiv), date(2026, 11, 25)),  # down at 08:00: today's run
        (datetime(2026, 11, 25, 7, 0, tzinfo=kyiv), date(2026, 11, 24)),  # before 08:00: yesterday's run
    ):
        scheduler = build(engine, settings, background=True, catch_up_missed=False)
        scheduler.start(paused=True)
        try:
            planned = dict(catch_up(scheduler, engine, settings, now=now))
            jobs_ = {j.id: j for j in scheduler.get_jobs()}
            assert planned["report_daily"] == datetime.combine(report_day, datetime.min.time(), kyiv).replace(hour=8)
            assert jobs_["report_daily:catch-up"].kwargs == {"today": report_day}
            assert "score" not in planned  # interval jobs just run on their interval
            nightly_and_weekly = {"daily_stats_nightly", "lake_export", "retention", "report_problems", "report_weekly"}
            assert nightly_and_weekly <= set(planned)
            # the weekly summary as of its Monday 09:00: the last full week before that Monday
            assert planned["report_weekly"] == datetime(2026, 11, 23, 9, 0, tzinfo=kyiv)
            assert jobs_["report_weekly:catch-up"].kwargs == {"today": date(2026, 11, 23)}
            assert all(j.next_run_time > now for j in jobs_.values() if j.id.endswith(":catch-up"))
        finally:
            scheduler.shutdown(wait=False)
