"""Retention against a real PostgreSQL: partitions dropped or trimmed by their bounds, dependents,
dry runs, the current month, daily_stats that stay exactly as computed, and calls the call processor
wrote itself, whose rows are never deleted (only ccanalytics's own rows about them)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import make_call, record_scores, write_as_processor
from test_attach import CALLS, build_processor_database

import ccanalytics.datalake.export as lake
import ccanalytics.datalake.read as lakeread
from ccanalytics import quality
from ccanalytics.analytics import callmetrics, metrics
from ccanalytics.cli.root import main
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import retention
from ccanalytics.quality import Rubric, RulesJudge

TZ = "Europe/Kyiv"
TODAY = date(2026, 6, 15)  # transcripts cutoff 2026-03-17, aggregates cutoff 2025-06-15 (Kyiv days)


def kyiv(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timeutil.zone(TZ)).astimezone(UTC)


def put(engine, *calls: dict) -> None:
    ingest_records(engine, list(calls))


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def partition_names(engine, parent: str) -> set[str]:
    with engine.connect() as conn:
        return {p.name for p in retention.list_partitions(conn, parent)}


def turns_of(engine, call: dict) -> int:
    return scalar(engine, "SELECT count(*) FROM call_turns WHERE call_id = :id", id=call["call_id"])


def calls_kept(engine, *calls: dict) -> list[bool]:
    return [bool(scalar(engine, "SELECT count(*) FROM calls WHERE id = :id", id=c["call_id"])) for c in calls]


def stats(engine, first: date, last: date) -> dict[date, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM cca_daily_stats WHERE stat_date BETWEEN :a AND :b ORDER BY stat_date"),
            {"a": first, "b": last},
        )
        return {r.stat_date: dict(r._mapping) for r in rows}


def tenant_stats(engine, first: date, last: date) -> dict[tuple[date, str], dict]:
    """The tenants' rows of daily_stats (cca_daily_stats_tenants) by day and tenant slug."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT * FROM cca_daily_stats_by_tenant WHERE tenant <> '*' AND stat_date BETWEEN :a AND :b "
                "ORDER BY stat_date, tenant"
            ),
            {"a": first, "b": last},
        )
        return {(r.stat_date, r.tenant): dict(r._mapping) for r in rows}


def without(rows: dict, *keys: str) -> dict:
    return {d: {k: v for k, v in r.items() if k not in keys} for d, r in rows.items()}


def counts(engine) -> dict[str, int]:
    tables = ("calls", "call_turns", "call_tool_calls", "call_metrics", "call_scores", "review_items", "daily_stats")
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


@pytest.fixture
def history(engine):
    """Calls over a year, each a different caller (repeat-call figures stay within their own week)."""
    calls = {
        "may25": make_call(started_at=kyiv(date(2025, 5, 20), 10), caller_id="+380670000001"),
        "jun10_25": make_call(started_at=kyiv(date(2025, 6, 10), 10), caller_id="+380670000002"),
        "jun20_25": make_call(started_at=kyiv(date(2025, 6, 20), 10), caller_id="+380670000003"),
        "jan26": make_call(started_at=kyiv(date(2026, 1, 15), 10), caller_id="+380670000004"),
        "mar05": make_call(started_at=kyiv(date(2026, 3, 5), 10), caller_id="+380670000005"),
        "mar25": make_call(started_at=kyiv(date(2026, 3, 25), 10), caller_id="+380670000006"),
        "jun05": make_call(started_at=kyiv(date(2026, 6, 5), 10), caller_id="+380670000007"),
    }
    put(engine, *calls.values())
    metrics.compute_daily_stats(engine, date(2025, 5, 1), TODAY - timedelta(days=1), tz=TZ)
    quality.enqueue(engine, date_from="2025-05-01", date_to=TODAY, tz=TZ)
    quality.score_pending(engine, RulesJudge(), Rubric(), workers=1)
    # scoring moved the fingerprints: bring daily_stats up to date, as the scheduler would
    metrics.compute_daily_stats(engine, date(2025, 5, 1), TODAY - timedelta(days=1), tz=TZ)
    return calls


def test_purge_drops_old_partitions_and_trims_the_boundary(engine, history):
    before_turn_parts = partition_names(engine, "call_turns")
    assert {"call_turns_2025_05", "call_turns_2026_01", "call_turns_2026_03"} <= before_turn_parts
    result = retention.purge(engine, TODAY, TZ)
    assert (result.transcripts_cutoff, result.aggregates_cutoff) == (date(2026, 3, 17), date(2025, 6, 15))

    # transcripts: months wholly before 2026-03-17 dropped, March trimmed, later months untouched
    after = partition_names(engine, "call_turns")
    assert before_turn_parts - after == {"call_turns_2025_05", "call_turns_2025_06", "call_turns_2026_01"}
    assert "call_turns_2026_03" in after and "call_tool_calls_2026_01" not in partition_names(engine, "call_tool_calls")
    c = history
    assert [turns_of(engine, c[k]) for k in ("jan26", "mar05", "mar25", "jun05")] == [0, 0, 5, 5]
    steps = {(s.table, s.action, s.target): s.rows for s in result.steps}
    assert steps[("call_turns", "drop", "call_turns_2026_01")] == 5
    assert steps[("call_turns", "delete", "call_turns_2026_03")] == 5
    assert steps[("call_tool_calls", "delete", "call_tool_calls_2026_03")] == 3

    # aggregates: calls of May 2025 (whole partition) and 2025-06-10 (boundary) go with what hangs on them
    assert "calls_2025_05" not in partition_names(engine, "calls") and "calls_2025_06" in partition_names(
        engine, "calls"
    )
    assert calls_kept(engine, c["may25"], c["jun10_25"], c["jun20_25"], c["jan26"]) == [False, False, True, True]
    for table in ("call_metrics", "call_scores", "scoring_queue"):
        gone = scalar(
            engine,
            f"SELECT count(*) FROM {table} WHERE call_id = ANY(CAST(:ids AS uuid[]))",
            ids=[c["may25"]["call_id"], c["jun10_25"]["call_id"]],
        )
        kept = scalar(engine, f"SELECT count(*) FROM {table} WHERE call_id = :id", id=c["jan26"]["call_id"])
        assert (table, gone, kept) == (table, 0, 1)
    assert scalar(engine, "SELECT min(stat_date) FROM cca_daily_stats") == date(2025, 6, 15)
    # the tenants' rows of the days with calls go with them: 2025-05-20 and 2025-06-10
    assert steps[("daily_stats_tenants", "delete", "daily_stats_tenants")] == 2
    assert scalar(engine, "SELECT min(stat_date) FROM cca_daily_stats_tenants") == date(2025, 6, 20)
    # per-call metrics outlive the transcript they were derived from
    assert scalar(engine, "SELECT turns FROM call_metrics WHERE call_id = :id", id=c["jan26"]["call_id"]) == 5

    again = retention.purge(engine, TODAY, TZ)  # idempotent: nothing left to do
    assert again.steps == []


def test_dry_run_reports_and_changes_nothing(engine, history):
    before, parts = counts(engine), partition_names(engine, "call_turns")
    dry = retention.purge(engine, TODAY, TZ, dry_run=True)
    assert counts(engine) == before and partition_names(engine, "call_turns") == parts
    real = retention.purge(engine, TODAY, TZ)
    assert [s.to_dict() for s in dry.steps] == [s.to_dict() for s in real.steps]
    assert dry.rows()["call_turns"] == real.rows()["call_turns"] == 5 * 5  # may, jun10, jun20, jan, mar05
    assert dry.rows()["calls"] == 2 and dry.rows()["daily_stats"] == 45  # 2025-05-01 … 2025-06-14
    assert dry.rows()["daily_stats_tenants"] == 2  # the two days with calls among them


def test_daily_stats_identical_after_purge_and_recompute(engine, history):
    kept_first = date(2025, 6, 15)
    computed = stats(engine, kept_first, TODAY - timedelta(days=1))
    by_tenant = tenant_stats(engine, kept_first, TODAY - timedelta(days=1))
    assert len(by_tenant) == 5  # the shop's days with calls
    # a call whose metrics nobody derived yet: they must be derived from the transcript before the
    # transcript goes, or a later daily_stats run would see 0 turns
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM call_metrics WHERE call_id = :id"), {"id": history["jan26"]["call_id"]})

    result = retention.purge(engine, TODAY, TZ)
    assert result.metrics_derived == 1
    assert scalar(engine, "SELECT turns FROM call_metrics WHERE call_id = :id", id=history["jan26"]["call_id"]) == 5
    assert stats(engine, kept_first, TODAY - timedelta(days=1)) == computed  # the purge itself changes none
    assert tenant_stats(engine, kept_first, TODAY - timedelta(days=1)) == by_tenant

    run = metrics.compute_daily_stats(engine, kept_first, TODAY - timedelta(days=1), tz=TZ)
    # only the day whose metrics row was re-derived is recomputed — to the very same figures
    assert run.days_computed == [date(2026, 1, 15)]
    ignore = ("computed_at", "source_fingerprint")
    assert without(stats(engine, kept_first, TODAY - timedelta(days=1)), *ignore) == without(computed, *ignore)
    assert without(tenant_stats(engine, kept_first, TODAY - timedelta(days=1)), *ignore) == without(by_tenant, *ignore)
    assert metrics.compute_daily_stats(engine, kept_first, TODAY - timedelta(days=1), tz=TZ).days_computed == []

    full = metrics.compute_daily_stats(engine, kept_first, TODAY - timedelta(days=1), tz=TZ, incremental=False)
    assert len(full.days_computed) == (TODAY - kept_first).days
    assert without(stats(engine, kept_first, TODAY - timedelta(days=1)), *ignore) == without(computed, *ignore)
    assert without(tenant_stats(engine, kept_first, TODAY - timedelta(days=1)), *ignore) == without(by_tenant, *ignore)
    jan = stats(engine, date(2026, 1, 15), date(2026, 1, 15))[date(2026, 1, 15)]
    assert jan["total_calls"] == 1 and jan["response_p95_ms"] is not None and jan["stt_reasks"] == 0


def test_without_the_derivation_the_day_would_change(engine, history, monkeypatch):
    """The counter-test: purging a transcript whose metrics were never derived, without deriving
    them first, changes that day's statistics on the next run."""
    monkeypatch.setattr(retention.callmetrics, "derive", lambda *args, **kwargs: 0)
    day = date(2026, 1, 15)
    computed = stats(engine, day, day)[day]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM call_metrics WHERE call_id = :id"), {"id": history["jan26"]["call_id"]})
    retention.purge(engine, TODAY, TZ)
    metrics.compute_daily_stats(engine, day, day, tz=TZ)
    after = stats(engine, day, day)[day]
    assert computed["response_p95_ms"] is not None and after["response_p95_ms"] is None
    assert (computed["long_pauses"], after["long_pauses"]) == (4, 0)


def test_current_month_is_never_touched(engine):
    today = TODAY
    in_month = make_call(started_at=kyiv(date(2026, 6, 2), 10))
    before = make_call(started_at=kyiv(date(2026, 5, 31), 23, 30))
    put(engine, in_month, before)
    result = retention.purge(engine, today, TZ, transcripts_days=7)
    # the cutoff (2026-06-08) lies in the current month: it waits at the month's start
    assert result.transcripts_cutoff == date(2026, 6, 1)
    assert turns_of(engine, in_month) == 5 and turns_of(engine, before) == 0
    assert "call_turns_2026_06" in partition_names(engine, "call_turns")
    assert {s.target for s in result.steps} == {"call_turns_2026_05", "call_tool_calls_2026_05"}
    with pytest.raises(InvalidArgument, match="future"):
        retention.purge(engine, timeutil.today(TZ) + timedelta(days=40), TZ)
    with pytest.raises(InvalidArgument, match="transcripts_days"):
        retention.purge(engine, today, TZ, transcripts_days=400, aggregates_days=365)


def test_partitions_made_by_another_system(engine):
    """Bounds, not names: a two-month partition under a foreign name, one spanning the cutoff, and a
    DEFAULT partition holding stray old rows."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE legacy_turns_a PARTITION OF call_turns FOR VALUES FROM ('2025-12-01') TO ('2026-02-01')"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE legacy_turns_b PARTITION OF call_turns FOR VALUES FROM ('2026-02-01') TO ('2026-04-15')"
            )
        )
        conn.execute(sa.text("CREATE TABLE legacy_tools_default PARTITION OF call_tool_calls DEFAULT"))
    jan, mar05, mar25 = (
        make_call(started_at=kyiv(d, 10)) for d in (date(2026, 1, 10), date(2026, 3, 5), date(2026, 3, 25))
    )
    put(engine, jan, mar05, mar25)
    with engine.begin() as conn:  # rows in a month without a partition land in the DEFAULT partition
        conn.execute(
            sa.text(
                "INSERT INTO call_tool_calls (id, call_id, turn_number, tool_name, created_at) "
                "VALUES (gen_random_uuid(), :id, 1, 'x', :at)"
            ),
            [
                {"id": jan["call_id"], "at": datetime(2025, 9, 10, tzinfo=UTC)},
                {"id": mar25["call_id"], "at": datetime(2026, 6, 20, tzinfo=UTC)},
            ],
        )
    result = retention.purge(engine, TODAY, TZ)
    names = partition_names(engine, "call_turns")
    assert "legacy_turns_a" not in names and "legacy_turns_b" in names
    assert [turns_of(engine, c) for c in (jan, mar05, mar25)] == [0, 0, 5]
    steps = {(s.target, s.action): s.rows for s in result.steps}
    assert steps[("legacy_turns_a", "drop")] == 5 and steps[("legacy_turns_b", "delete")] == 5
    assert steps[("legacy_tools_default", "delete")] == 1
    assert "legacy_tools_default" in partition_names(engine, "call_tool_calls")  # a DEFAULT is never dropped
    assert scalar(engine, "SELECT count(*) FROM legacy_tools_default") == 1  # the June row stays


def test_a_call_across_the_cutoff_midnight_loses_its_whole_transcript(engine):
    cutoff = date(2026, 3, 17)
    late = make_call(started_at=kyiv(cutoff - timedelta(days=1), 23, 58), seconds=300)  # turns after midnight
    put(engine, late)
    with engine.connect() as conn:
        after = conn.execute(
            sa.text("SELECT count(*) FROM call_turns WHERE call_id = :id AND created_at >= :c"),
            {"id": late["call_id"], "c": timeutil.day_start(cutoff, TZ)},
        ).scalar_one()
    assert after > 0
    retention.purge(engine, TODAY, TZ)
    assert turns_of(engine, late) == 0
    assert scalar(engine, "SELECT count(*) FROM call_tool_calls WHERE call_id = :id", id=late["call_id"]) == 0


def test_purge_job_and_cli(db_url, engine, tmp_path):
    today = timeutil.today(TZ)
    old = make_call(started_at=kyiv(today - timedelta(days=120), 10))
    recent = make_call(started_at=kyiv(today - timedelta(days=10), 10))
    put(engine, old, recent)
    for day in (today - timedelta(days=120), today - timedelta(days=10)):
        lake.export_day(engine, day, tmp_path, TZ)
    env = {"CCA_DATABASE_URL": db_url, "CCA_LAKE_DIR": str(tmp_path)}
    res = CliRunner().invoke(main, ["retention", "purge", "--dry-run", "--json"], env=env)
    assert res.exit_code == 0, res.output
    dry = json.loads(res.output)
    assert dry["database"]["dry_run"] and dry["database"]["rows"]["call_turns"] == 5
    assert dry["lake"]["removed"]["turns"] == [(today - timedelta(days=120)).isoformat()]
    assert dry["alert_events"] == 0
    assert turns_of(engine, old) == 5 and len(lakeread.partitions(tmp_path, "turns")) == 2

    res = CliRunner().invoke(main, ["retention", "purge"], env=env)
    assert res.exit_code == 0, res.output
    assert "lake: removed 2 partitions" in res.output and "alert history: removed 0 events" in res.output
    assert turns_of(engine, old) == 0 and turns_of(engine, recent) == 5
    assert [d for d, _ in lakeread.partitions(tmp_path, "turns")] == [today - timedelta(days=10)]
    assert len(lakeread.partitions(tmp_path, "calls")) == 2  # calls stay a year


# --------------------------------------------------------------------------- the processor's own calls
def processor_rows(engine, ids: list) -> dict[str, tuple]:
    """Row counts and checksums (all columns) of the calls, turns and tool calls of ``ids``."""
    out = {}
    with engine.connect() as conn:
        for table, key, order in (
            ("calls", "id", "id"),
            ("call_turns", "call_id", "id"),
            ("call_tool_calls", "call_id", "id"),
        ):
            out[table] = tuple(
                conn.execute(
                    sa.text(
                        f"SELECT count(*), md5(string_agg(x::text, '|' ORDER BY {order})) FROM {table} x "
                        f"WHERE x.{key} = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": [str(i) for i in ids]},
                ).one()
            )
    return out


def test_calls_the_processor_wrote_itself_are_never_deleted(engine, history):
    """A call the processor wrote into its tables itself (no cca_call_ingest row) keeps its calls,
    call_turns and call_tool_calls rows past every cutoff, and a partition holding such rows is not
    dropped: only the delivered calls' rows in it go. ccanalytics's own rows about the processor's old
    call (scores, metrics, review item, A/B assignment) go like any other's."""
    with engine.begin() as conn:
        old = write_as_processor(conn, make_call(started_at=kyiv(date(2025, 5, 21), 10), caller_id="+380679990001"))
        jan = write_as_processor(conn, make_call(started_at=kyiv(date(2026, 1, 16), 10), caller_id="+380679990002"))
        # what ccanalytics keeps about them
        callmetrics.derive(conn, kyiv(date(2025, 5, 1), 0), kyiv(date(2026, 2, 1), 0))
        record_scores(conn, "c.id = ANY(CAST(:ids AS uuid[]))", "0.7", {"criteria": {}}, ids=[str(old), str(jan)])
        conn.execute(
            sa.text("INSERT INTO review_items (call_id, started_at, reasons) VALUES (:id, :at, '{low_score}')"),
            {"id": old, "at": kyiv(date(2025, 5, 21), 10)},
        )
        test_id = conn.execute(
            sa.text(
                "INSERT INTO cca_ab_tests (test_name, variant_a_id, variant_b_id) "
                "VALUES ('t', gen_random_uuid(), gen_random_uuid()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO cca_ab_assignments (call_id, test_id, variant, source, assigned_at) "
                "VALUES (:id, :t, 'A', 'resolver', :at)"
            ),
            {"id": old, "t": test_id, "at": kyiv(date(2025, 5, 21), 10)},
        )
    theirs = processor_rows(engine, [old, jan])
    assert theirs["call_turns"][0] == 10 and theirs["call_tool_calls"][0] == 6

    dry = retention.purge(engine, TODAY, TZ, dry_run=True)
    result = retention.purge(engine, TODAY, TZ)
    assert [s.to_dict() for s in dry.steps] == [s.to_dict() for s in result.steps]
    assert result.processor_calls_kept == dry.processor_calls_kept == 1  # past the aggregates cutoff

    assert processor_rows(engine, [old, jan]) == theirs  # every row of theirs, as it was
    # the months holding their rows stay; only the delivered calls' rows in them went
    for table in ("call_turns", "call_tool_calls"):
        assert {f"{table}_2025_05", f"{table}_2026_01"} <= partition_names(engine, table)
    assert "calls_2025_05" in partition_names(engine, "calls")
    assert "call_turns_2025_06" not in partition_names(engine, "call_turns")  # only delivered calls: dropped
    steps = {(s.table, s.action, s.target): s.rows for s in result.steps}
    assert steps[("call_turns", "delete", "call_turns_2025_05")] == 5  # may25's, not theirs
    assert steps[("call_turns", "delete", "call_turns_2026_01")] == 5  # jan26's, not theirs
    assert steps[("calls", "delete", "calls_2025_05")] == 1
    assert ("call_turns", "drop", "call_turns_2025_05") not in steps
    c = history
    assert calls_kept(engine, c["may25"], c["jan26"]) == [False, True]
    assert [turns_of(engine, c[k]) for k in ("may25", "jan26")] == [0, 0]
    # what ccanalytics received with the delivered calls it deleted went with them
    assert scalar(engine, "SELECT count(*) FROM cca_call_ingest WHERE call_id = :i", i=c["may25"]["call_id"]) == 0
    extras = "SELECT count(*) FROM cca_turn_extras WHERE call_id = :i"
    assert scalar(engine, extras, i=c["may25"]["call_id"]) == scalar(engine, extras, i=c["jan26"]["call_id"]) == 0
    assert scalar(engine, extras, i=c["mar25"]["call_id"]) == 5
    # ccanalytics's own rows about the processor's old call went; about the newer one they stay
    for table in ("call_metrics", "call_scores", "review_items", "cca_ab_assignments"):
        assert scalar(engine, f"SELECT count(*) FROM {table} WHERE call_id = :i", i=old) == 0, table
    assert scalar(engine, "SELECT count(*) FROM call_metrics WHERE call_id = :i", i=jan) == 1
    assert scalar(engine, "SELECT count(*) FROM call_scores WHERE call_id = :i", i=jan) == 1

    again = retention.purge(engine, TODAY, TZ)  # idempotent: nothing left to do
    assert again.steps == [] and processor_rows(engine, [old, jan]) == theirs


def test_on_a_database_attached_to_the_processor_no_partition_is_dropped(empty_db_url):
    """On the processor's database its partition manager owns the partitions: retention drops none,
    not even a month whose every row is past the cutoff, and deletes only the delivered calls' rows."""
    build_processor_database(empty_db_url)
    engine = create_engine(empty_db_url, pool_size=2)
    try:
        migrate(engine)
        september = make_call(started_at=datetime(2026, 9, 10, 8, tzinfo=UTC), tenant="shop")
        put(engine, september)
        with engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.text(
                        "SELECT id FROM calls x WHERE NOT EXISTS (SELECT 1 FROM cca_call_ingest i WHERE i.call_id = x.id)"
                    )
                )
                .scalars()
                .all()
            )
        assert len(ids) == CALLS
        theirs = processor_rows(engine, ids)
        tables = ("calls", "call_turns", "call_tool_calls", "llm_usage_log")
        before = {t: partition_names(engine, t) for t in tables}

        result = retention.purge(engine, date(2026, 12, 5), TZ, transcripts_days=30, aggregates_days=60)

        assert result.aggregates_cutoff == date(2026, 10, 6)
        assert {t: partition_names(engine, t) for t in tables} == before
        assert not [s for s in result.steps if s.action == "drop"]
        assert calls_kept(engine, september) == [False] and turns_of(engine, september) == 0
        assert processor_rows(engine, ids) == theirs
        old = scalar(
            engine, "SELECT count(*) FROM calls WHERE started_at < :c", c=timeutil.day_start(date(2026, 10, 6), TZ)
        )
        assert result.processor_calls_kept == old > 0
        assert scalar(engine, "SELECT count(*) FROM calls") == CALLS
    finally:
        engine.dispose()
