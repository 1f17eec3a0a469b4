"""ccanalytics never changes a value the call processor owns (../shared/callcenter-schema.md): checksums
of the processor's tables and columns are identical before and after every scheduled job has run over
a day of calls, while ccanalytics's own tables received its results."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from factories import make_call, running_ab_test

from ccanalytics import clock, jobs, metrics, timeutil
from ccanalytics.config import Settings
from ccanalytics.database import create_engine, resolve_url
from ccanalytics.ingest import ingest_records

# the columns the call processor writes, per table (ccanalytics's own added columns left out)
PROCESSOR_COLUMNS = {
    "calls": (
        "id, caller_id, customer_id, started_at, ended_at, duration_seconds, scenario, transferred_to_operator, "
        "transfer_reason, order_id, fitting_booking_id, prompt_version, quality_score, quality_details, "
        "cost_breakdown, total_cost_usd"
    ),
    "call_turns": (
        "id, call_id, turn_number, speaker, content, stt_confidence, stt_latency_ms, llm_latency_ms, "
        "tts_latency_ms, created_at"
    ),
    "call_tool_calls": "id, call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, success, created_at",
    "customers": "id, phone, name",
    "prompt_versions": "id, name, system_prompt, tools_config, is_active, metadata, created_at",
    "prompt_ab_tests": (
        "id, test_name, variant_a_id, variant_b_id, calls_a, calls_b, quality_a, quality_b, status, started_at, ended_at"
    ),
    "daily_stats": (
        "stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds, avg_quality_score, "
        "total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution"
    ),
}

# what the processor's quality task and its end-of-call update write (its own shapes)
RECORDED_QUALITY = {
    "bot_greeted_properly": 1.0,
    "bot_understood_intent": 0.8,
    "bot_used_correct_tool": 1.0,
    "bot_provided_accurate_info": 0.9,
    "bot_confirmed_before_action": 0.6,
    "bot_was_concise": 0.7,
    "call_resolved_without_human": 1.0,
    "customer_seemed_satisfied": 0.8,
}
RECORDED_COST = {
    "stt_cost": 0.02, "llm_cost": 0.03, "tts_cost": 0.005, "total_cost": 0.055, "stt_provider": "google",
    "llm_model": "claude-sonnet-4", "llm_input_tokens": 9000, "llm_output_tokens": 700,
    "llm_cached_input_tokens": 3000, "stt_seconds": 80.0, "tts_characters": 500, "tts_cached_characters": 0,
}  # fmt: skip


def checksums(engine: sa.Engine) -> dict[str, tuple[int, str]]:
    """Rows and an order-independent hash of the processor's columns, per table."""
    out = {}
    with engine.connect() as conn:
        for table, columns in PROCESSOR_COLUMNS.items():
            out[table] = tuple(
                conn.execute(
                    sa.text(
                        f"SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '') "
                        f"FROM (SELECT md5(ROW({columns})::text) AS h FROM {table}) t"
                    )
                ).one()
            )
    return out


@pytest.fixture
def processor_day(engine):
    """Yesterday's and today's calls as the processor leaves them: some with its quality evaluation,
    some with its cost (usage inside cost_breakdown), its daily_stats row of yesterday (UTC day) and
    an A/B test with its counters."""
    now = clock.now().replace(microsecond=0)
    calls = [
        make_call(started_at=now - timedelta(minutes=60 + 90 * i), caller_id=f"+3806712345{i % 4:02d}")
        for i in range(12)
    ]
    ingest_records(engine, calls)
    with engine.begin() as conn:
        ids = [c["call_id"] for c in calls]
        conn.execute(
            sa.text("UPDATE calls SET quality_score = 0.85, quality_details = CAST(:q AS jsonb) WHERE id = ANY(:ids)"),
            {"q": json.dumps(RECORDED_QUALITY), "ids": ids[:6]},
        )
        conn.execute(
            sa.text(
                "UPDATE calls SET usage = NULL, cost_breakdown = CAST(:c AS jsonb), total_cost_usd = 0.055 "
                "WHERE id = ANY(:ids)"
            ),
            {"c": json.dumps(RECORDED_COST), "ids": ids[3:9]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO daily_stats (stat_date, total_calls, resolved_by_bot, transferred, avg_quality_score, "
                "total_cost_usd) VALUES (CAST(:d AS date), 7, 6, 1, 0.85, 0.4)"
            ),
            {"d": (now - timedelta(days=1)).date().isoformat()},
        )
        test_id, _, _ = running_ab_test(conn)
        conn.execute(
            sa.text("UPDATE prompt_ab_tests SET calls_a = 41, calls_b = 39, quality_a = 0.8 WHERE id = :i"),
            {"i": test_id},
        )
    return calls


def test_a_day_of_every_job_leaves_the_processors_values_as_they_were(engine, db_url, tmp_path, processor_day):
    settings = Settings(database_url=db_url, lake_dir=tmp_path / "lake")
    before = checksums(engine)
    ran = {}
    for name, (fn, _trigger, _args) in jobs.SCHEDULE.items():
        ran[name] = fn(engine, settings).ran
    assert all(ran.values()), ran
    assert checksums(engine) == before
    with engine.connect() as conn:  # the results are ccanalytics's own rows
        mine = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM call_scores WHERE is_current) AS scores, "
                "(SELECT count(*) FROM cca_call_costs) AS prices, (SELECT count(*) FROM cca_daily_stats) AS days, "
                "(SELECT count(*) FROM cca_calls WHERE quality_scored AND cost_priced) AS both"
            )
        ).one()
        recorded = conn.execute(
            sa.text(
                "SELECT recorded_quality_score, recorded_total_cost_usd, quality_score, total_cost_usd "
                "FROM cca_calls WHERE id = :i"
            ),
            {"i": processor_day[4]["call_id"]},
        ).one()
    assert (mine.scores, mine.prices, mine.both) == (12, 12, 12) and mine.days >= 1
    # the processor's values stay readable beside ccanalytics's own
    assert recorded.recorded_quality_score == 0.85 and recorded.recorded_total_cost_usd == 0.055
    assert recorded.quality_score is not None and recorded.total_cost_usd is not None


def test_the_configuration_chooses_whose_figures_are_used(engine, db_url, processor_day):
    """CCA_QUALITY_SOURCE / CCA_COST_SOURCE = processor: every figure uses what the call processor
    recorded (its score 0.85 and cost 0.055 here), although ccanalytics has computed its own."""
    settings = Settings(database_url=db_url)
    for job in ("score", "pricing"):
        assert jobs.SCHEDULE[job][0](engine, settings).ran
    theirs = create_engine(
        resolve_url(Settings(database_url=db_url, quality_source="processor", cost_source="processor"))
    )
    call_id = processor_day[4]["call_id"]  # both recorded by the processor
    sql = sa.text(
        "SELECT quality_score, quality_source, total_cost_usd, cost_source, computed_quality_score, "
        "computed_total_cost_usd FROM cca_calls WHERE id = :i"
    )
    try:
        with engine.connect() as conn:
            ours = conn.execute(sql, {"i": call_id}).one()
        with theirs.connect() as conn:
            recorded = conn.execute(sql, {"i": call_id}).one()
        assert (ours.quality_source, ours.cost_source) == ("ccanalytics", "ccanalytics")
        assert (ours.quality_score, ours.total_cost_usd) == (ours.computed_quality_score, ours.computed_total_cost_usd)
        assert (recorded.quality_source, recorded.cost_source) == ("processor", "processor")
        assert (recorded.quality_score, recorded.total_cost_usd) == (0.85, 0.055)
        assert recorded.computed_quality_score == ours.computed_quality_score  # still there, beside
        today = timeutil.today()
        metrics.compute_daily_stats(theirs, today - timedelta(days=1), today)
        with theirs.connect() as conn:
            averages = (
                conn.execute(
                    sa.text("SELECT avg_quality_score FROM cca_daily_stats WHERE avg_quality_score IS NOT NULL")
                )
                .scalars()
                .all()
            )
        assert averages and all(a == pytest.approx(0.85) for a in averages)
    finally:
        theirs.dispose()


def test_an_unknown_figures_source_is_a_one_line_error(db_url):
    from click.testing import CliRunner

    from ccanalytics.cli import main

    res = CliRunner().invoke(main, ["db", "status"], env={"CCA_DATABASE_URL": db_url, "CCA_QUALITY_SOURCE": "both"})
    assert res.exit_code == 1
    assert res.output.startswith(
        "Error: invalid setting CCA_QUALITY_SOURCE: Input should be 'ccanalytics' or 'processor'"
    )
    assert len(res.output.strip().splitlines()) == 1
