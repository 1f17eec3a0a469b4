"""The Parquet lake: export from a real PostgreSQL into real files, read back with DuckDB and Polars."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import make_call

import ccanalytics.datalake.export as lake
import ccanalytics.datalake.read as lakeread
import ccanalytics.datalake.retention as lakeretention
from ccanalytics import quality
from ccanalytics.analytics import callmetrics
from ccanalytics.cli.root import main
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.privacy import mask_phone, mask_phones_in_text
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality import Rubric, RulesJudge, ScoringConfig

TZ = "Europe/Kyiv"
DAY = date(2026, 11, 20)
RAW_PHONE = re.compile(r"\+?380\d{9}")  # a whole Ukrainian number: must never appear in the lake


def kyiv(day: date, hour: int, minute: int = 0) -> datetime:
    """An instant given in Kyiv local time (UTC+2 in winter)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=2)


def call_with_phone_in_transcript(started: datetime, caller: str, **fields) -> dict:
    call = make_call(started_at=started, caller_id=caller, **fields)
    call["turns"][1]["text"] = (
        f"Мій номер {caller[:4]} {caller[4:6]} {caller[6:9]} {caller[9:11]} {caller[11:]}, запишіть."
    )
    call["turns"][4]["tool_calls"][0]["args"]["phone"] = caller
    return call


@pytest.fixture
def loaded(engine):
    """Calls on three days (one just after Kyiv midnight, one just before), metrics and scores."""
    calls = [
        call_with_phone_in_transcript(kyiv(DAY, 0, 5), "+380671234567"),  # 22:05 UTC the day before
        call_with_phone_in_transcript(kyiv(DAY, 12), "+380501112233"),
        call_with_phone_in_transcript(kyiv(DAY, 23, 50), "+380931112244"),  # ends after midnight
        make_call(started_at=kyiv(DAY - timedelta(days=1), 15), caller_id=None),
        make_call(started_at=kyiv(DAY + timedelta(days=1), 9), caller_id="+380671234567"),
    ]
    calls[2]["turns"][-1]["timestamp"] = kyiv(DAY + timedelta(days=1), 0, 1).isoformat()
    calls[2]["ended_at"] = kyiv(DAY + timedelta(days=1), 0, 2).isoformat()
    calls[2]["duration_seconds"] = 720
    ingest_records(engine, calls)
    callmetrics.derive_days(engine, DAY - timedelta(days=1), DAY + timedelta(days=1), tz=TZ)
    quality.enqueue(engine, date_from=DAY - timedelta(days=1), date_to=DAY + timedelta(days=1), tz=TZ)
    quality.score_pending(engine, RulesJudge(), Rubric(), workers=1, config=ScoringConfig(rules_batch=10))
    return calls


def db_rows(engine, sql: str, **params) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).fetchall()


def test_export_day_round_trip_matches_the_database(engine, loaded, tmp_path):
    result = lake.export_day(engine, DAY, tmp_path, TZ)
    assert result.rows() == {"calls": 3, "turns": 15, "tool_calls": 9, "scores": 3}

    calls = pq.read_table(tmp_path / "calls" / "date=2026-11-20" / "part-0.parquet")
    assert calls.schema.remove_metadata() == lake.schema("calls")
    db = db_rows(
        engine,
        "SELECT c.id::text AS id, c.started_at, c.duration_seconds, c.customer_id::text AS customer_id, c.tenant, "
        "c.total_cost_usd, c.quality_score, "
        "m.turns, m.response_p95_ms FROM cca_calls c JOIN call_metrics m ON m.call_id = c.id "
        "WHERE c.started_at >= :a AND c.started_at < :b ORDER BY c.started_at",
        a=kyiv(DAY, 0),
        b=kyiv(DAY + timedelta(days=1), 0),
    )
    got = calls.to_pylist()
    assert [r["id"] for r in got] == [r.id for r in db]
    for row, ref in zip(got, db, strict=True):
        assert row["started_at"] == ref.started_at
        assert row["duration_seconds"] == ref.duration_seconds
        assert row["customer_id"] == ref.customer_id  # uuid text (the processor's ids)
        assert row["tenant"] == ref.tenant == "shop"
        assert row["total_cost_usd"] == pytest.approx(ref.total_cost_usd)
        assert row["quality_score"] == pytest.approx(ref.quality_score)
        assert row["turns"] == ref.turns == 5
        assert row["response_p95_ms"] == pytest.approx(ref.response_p95_ms)
        assert row["cost_stt_usd"] == pytest.approx(0.018)

    turns = pq.read_table(tmp_path / "turns" / "date=2026-11-20" / "part-0.parquet").to_pylist()
    # the late call's last turn (after Kyiv midnight) stays with its call's day
    assert {t["call_id"] for t in turns} == {r.id for r in db}
    assert max(t["created_at"] for t in turns) > kyiv(DAY + timedelta(days=1), 0)
    ref_turns = db_rows(
        engine,
        "SELECT id::text AS id, turn_number, content, stt_confidence, created_at, speech_duration_ms "
        "FROM cca_call_turns WHERE call_id = :id ORDER BY turn_number",
        id=db[1].id,
    )
    ref_turn = ref_turns[1]  # the customer's first words, with the phone number dictated
    lake_turn = next(t for t in turns if t["id"] == ref_turn.id)
    assert lake_turn["content"] == mask_phones_in_text(ref_turn.content) != ref_turn.content
    assert lake_turn["turn_number"] == ref_turn.turn_number
    assert lake_turn["stt_confidence"] == pytest.approx(ref_turn.stt_confidence, rel=1e-6)  # real: float32
    greeting = next(t for t in turns if t["id"] == ref_turns[0].id)
    assert greeting["content"] == ref_turns[0].content  # text without a number is exported as is
    assert lake_turn["created_at"] == ref_turn.created_at
    assert lake_turn["speech_duration_ms"] == ref_turn.speech_duration_ms

    scores = pq.read_table(tmp_path / "scores" / "date=2026-11-20" / "part-0.parquet").to_pylist()
    ref_score = db_rows(engine, "SELECT * FROM call_scores WHERE call_id = :id", id=db[1].id)[0]
    lake_score = next(s for s in scores if s["call_id"] == db[1].id)
    assert lake_score["overall_score"] == pytest.approx(ref_score.overall_score)
    for name, crit in ref_score.criteria.items():
        expected = crit["score"] if crit["applicable"] else None
        assert lake_score[name] == (pytest.approx(expected) if expected is not None else None)


def test_no_raw_phone_number_reaches_the_lake(engine, loaded, tmp_path):
    lake.export_range(engine, DAY - timedelta(days=1), DAY + timedelta(days=1), tmp_path, TZ)
    calls = lakeread.load(tmp_path, "calls", DAY - timedelta(days=1), DAY + timedelta(days=1))
    assert sorted(calls["caller_id"].drop_nulls().to_list()) == sorted(
        mask_phone(p) for p in ("+380671234567", "+380501112233", "+380931112244", "+380671234567")
    )
    # customer_id keeps the linkage between the two calls of the same caller
    same = calls.filter(pl.col("caller_id") == mask_phone("+380671234567"))["customer_id"].unique()
    assert same.len() == 1 and same[0] is not None
    for path in tmp_path.rglob("*.parquet"):
        for column in pq.read_table(path).columns:
            if column.type == "string":
                for value in column.to_pylist():
                    assert value is None or not RAW_PHONE.search(value.replace(" ", "")), (path, value)
    turns = lakeread.load(tmp_path, "turns", DAY, DAY)
    assert turns.filter(pl.col("content").str.contains("Мій номер"))["content"].str.contains(r"\*\*").all()
    tools = lakeread.load(tmp_path, "tool_calls", DAY, DAY)
    args = [json.loads(a) for a in tools.filter(pl.col("tool_name") == "create_order_draft")["tool_args"]]
    assert {a["phone"] for a in args} == {mask_phone(p) for p in ("+380671234567", "+380501112233", "+380931112244")}


def test_reexport_is_idempotent_and_atomic(engine, loaded, tmp_path):
    first = lake.export_day(engine, DAY, tmp_path, TZ)
    part = tmp_path / "turns" / "date=2026-11-20" / "part-0.parquet"
    before = pq.read_table(part)
    second = lake.export_day(engine, DAY, tmp_path, TZ)
    assert second.rows() == first.rows()
    assert pq.read_table(part).equals(before)
    assert sorted(p.name for p in part.parent.iterdir()) == ["_SUCCESS.json", "part-0.parquet"]
    assert list((tmp_path / ".staging").iterdir()) == []  # nothing left behind
    marker = json.loads((part.parent / "_SUCCESS.json").read_text())
    assert marker["rows"] == 15 and marker["fingerprint"] == lake.partition_state(tmp_path, "turns", DAY)[1]


def test_empty_day_has_the_schema(engine, tmp_path):
    result = lake.export_day(engine, DAY, tmp_path, TZ)
    assert result.rows() == {t: 0 for t in lake.TABLES}
    for table in lake.TABLES:
        written = pq.read_table(tmp_path / table / "date=2026-11-20" / "part-0.parquet")
        assert written.num_rows == 0 and written.schema.remove_metadata() == lake.schema(table)
    assert lakeread.query(tmp_path, "SELECT count(*) AS n FROM turns")["n"].to_list() == [0]


def test_export_changed_rewrites_only_changed_partitions(engine, loaded, tmp_path):
    today = DAY + timedelta(days=2)
    run = lake.export_changed(engine, tmp_path, TZ, days_back=3, today=today)
    assert [d.isoformat() for d in run.days_checked] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert run.partitions_written == 12
    assert lake.export_changed(engine, tmp_path, TZ, days_back=3, today=today).exported == []

    # a late change: one call of DAY re-priced (no change stamp exists for costs) → only calls of DAY
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE calls SET total_cost_usd = 0.5 WHERE started_at >= :a AND started_at < :b AND caller_id = :p"
            ),
            {"a": kyiv(DAY, 0), "b": kyiv(DAY + timedelta(days=1), 0), "p": "+380501112233"},
        )
    run = lake.export_changed(engine, tmp_path, TZ, days_back=3, today=today)
    assert [(e.day, list(e.rows())) for e in run.exported] == [(DAY, ["calls"])]
    assert 0.5 in lakeread.load(tmp_path, "calls", DAY, DAY)["total_cost_usd"].to_list()

    # a re-scored call changes its day's scores (and calls, which mirror the score)
    quality.enqueue(engine, reason="rescore", call_ids=[loaded[4]["call_id"]])
    quality.score_pending(engine, RulesJudge(), Rubric(), workers=1)
    run = lake.export_changed(engine, tmp_path, TZ, days_back=3, today=today)
    assert [(e.day, sorted(e.rows())) for e in run.exported] == [(DAY + timedelta(days=1), ["calls", "scores"])]
    assert lakeread.load(tmp_path, "scores", DAY + timedelta(days=1), DAY + timedelta(days=1)).height == 2

    # a lost or corrupted file is noticed and rewritten
    (tmp_path / "turns" / "date=2026-11-19" / "part-0.parquet").write_bytes(b"not parquet")
    run = lake.export_changed(engine, tmp_path, TZ, days_back=3, today=today)
    assert [(e.day, list(e.rows())) for e in run.exported] == [(DAY - timedelta(days=1), ["turns"])]


def test_duckdb_views_and_pruned_load(engine, loaded, tmp_path):
    lake.export_range(engine, DAY - timedelta(days=1), DAY + timedelta(days=1), tmp_path, TZ)
    con = lakeread.connect(tmp_path)
    rows = con.sql("SELECT date, count(*) AS n, sum(turns) AS turns FROM calls GROUP BY date ORDER BY date").fetchall()
    assert rows == [(DAY - timedelta(days=1), 1, 5), (DAY, 3, 15), (DAY + timedelta(days=1), 1, 5)]
    joined = con.sql(
        "SELECT count(*) FROM turns t JOIN calls c ON c.id = t.call_id AND c.date = t.date "
        "WHERE t.date = DATE '2026-11-20' AND t.speaker = 'bot'"
    ).fetchall()
    assert joined == [(9,)]
    con.close()

    frame = lakeread.load(tmp_path, "calls", DAY, DAY, columns=["id", "started_at", "date"])
    assert frame.columns == ["id", "started_at", "date"] and frame.height == 3
    assert str(frame.schema["started_at"]) == "Datetime(time_unit='us', time_zone='Europe/Kyiv')"
    assert frame["started_at"].dt.date().to_list() == [DAY] * 3  # Kyiv days, not UTC

    # a filter on date scans only that day's file
    plan = lakeread.query(tmp_path, "EXPLAIN ANALYZE SELECT count(*) FROM turns WHERE date = DATE '2026-11-20'")
    assert re.search(r"Total Files Read: 1\b", "\n".join(plan[:, -1].to_list()))

    # load() opens only the files of its days: a broken file of another day does not matter to it
    (tmp_path / "calls" / "date=2026-11-19" / "part-0.parquet").write_bytes(b"garbage")
    assert lakeread.load(tmp_path, "calls", DAY, DAY + timedelta(days=1)).height == 4
    with pytest.raises(InvalidArgument, match="lake query failed"):  # the views read every file's footer
        lakeread.query(tmp_path, "SELECT count(*) FROM calls")


def test_empty_lake_views_and_load(tmp_path):
    frame = lakeread.query(tmp_path, "SELECT * FROM calls")
    assert frame.height == 0 and frame.columns == lake.schema("calls", with_date=True).names
    assert lakeread.load(tmp_path, "turns", DAY, DAY, columns=["content"]).schema == pl.Schema({"content": pl.String})
    with pytest.raises(InvalidArgument, match="unknown lake table"):
        lakeread.load(tmp_path, "customers", DAY, DAY)
    with pytest.raises(InvalidArgument, match="unknown column"):
        lakeread.load(tmp_path, "calls", DAY, DAY, columns=["phone"])


def test_lake_purge_by_retention(engine, tmp_path):
    today = date(2026, 11, 20)
    for day in (today - timedelta(days=400), today - timedelta(days=100), today - timedelta(days=10)):
        lake.export_day(engine, day, tmp_path, TZ)
    dry = lakeretention.purge(tmp_path, today, dry_run=True)
    assert dry.removed["turns"] == [today - timedelta(days=400), today - timedelta(days=100)]
    assert dry.removed["calls"] == [today - timedelta(days=400)]
    assert len(lakeread.partitions(tmp_path, "turns")) == 3  # dry run removed nothing
    done = lakeretention.purge(tmp_path, today)
    assert done.to_dict()["removed"] == dry.to_dict()["removed"]
    assert [d for d, _ in lakeread.partitions(tmp_path, "turns")] == [today - timedelta(days=10)]
    assert [d for d, _ in lakeread.partitions(tmp_path, "calls")] == [
        today - timedelta(days=100),
        today - timedelta(days=10),
    ]
    assert lakeretention.purge(tmp_path, today).removed == {t: [] for t in lake.TABLES}


def test_export_job_uses_settings(engine, loaded, tmp_path):
    settings = Settings(lake_dir=tmp_path / "lk", timezone=TZ)
    out = lake.export_job(engine, settings, today=DAY + timedelta(days=1))
    assert out["days_checked"] == 7 and out["days_exported"][-1] == "2026-11-20"
    assert lakeread.load(tmp_path / "lk", "calls", DAY, DAY).height == 3
    assert lake.export_job(engine, settings, today=DAY + timedelta(days=1))["partitions_written"] == 0


def test_cli_lake_export_and_query(db_url, engine, loaded, tmp_path):
    env = {"CCA_DATABASE_URL": db_url, "CCA_LAKE_DIR": str(tmp_path)}
    runner = CliRunner()
    res = runner.invoke(main, ["lake", "export", "--from", "2026-11-19", "--to", "2026-11-21"], env=env)
    assert res.exit_code == 0, res.output
    assert "3 days" in res.output
    res = runner.invoke(
        main, ["lake", "query", "SELECT date, count(*) AS n FROM calls GROUP BY 1 ORDER BY 1", "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [
        {"date": "2026-11-19", "n": 1},
        {"date": "2026-11-20", "n": 3},
        {"date": "2026-11-21", "n": 1},
    ]
    res = runner.invoke(main, ["lake", "query", "SELECT scenario, count(*) AS n FROM calls GROUP BY 1"], env=env)
    assert res.exit_code == 0 and "tire_search + order_creation" in res.output and "5" in res.output
    res = runner.invoke(main, ["lake", "query", "SELEC nonsense"], env=env)
    assert res.exit_code == 1 and res.output.startswith("Error: lake query failed")
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, ["lake", "export", "--date", "2026-11-20", "--changed"], env=env)
    assert res.exit_code == 1 and res.output.startswith("Error: ")
    res = runner.invoke(main, ["lake", "export", "--from", "2026-11-21", "--to", "2026-11-19"], env=env)
    assert res.exit_code == 1 and "before" in res.output
    res = runner.invoke(main, ["lake", "export", "--date", "2026-11-20", "--json"], env=env)
    assert res.exit_code == 0 and json.loads(res.output)["rows"] == 3 + 15 + 9 + 3
