"""ccanalytics never changes a value the call processor owns (../shared/callcenter-schema.md): checksums
of every table of the processor's (every row, every column) are identical before and after every
scheduled job has run over a day of calls — some delivered through ccanalytics's ingest API, some
written by the processor itself, and old ones of the processor's past every retention cutoff — while
ccanalytics's own tables received its results."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from factories import PROCESSOR_TABLE_KEYS, make_call, running_ab_test, write_as_processor

from ccanalytics.analytics import metrics
from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.db.engine import create_engine, resolve_url
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import jobs

PROCESSOR_TABLES = PROCESSOR_TABLE_KEYS

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
    """Rows and an order-independent hash of every row of the processor's tables, all columns."""
    out = {}
    with engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text("SELECT relname FROM pg_class WHERE relname = ANY(:t) AND relkind IN ('r', 'p')"),
                {"t": list(PROCESSOR_TABLES)},
            ).scalars()
        )
        assert tables == set(PROCESSOR_TABLES)
        for table in PROCESSOR_TABLES:
            out[table] = tuple(
                conn.execute(
                    sa.text(
                        f"SELECT count(*), coalesce(md5(string_agg(h, ',' ORDER BY h)), '') "
                        f"FROM (SELECT md5(t::text) AS h FROM {table} t) x"
                    )
                ).one()
            )
    return out


@pytest.fixture
def processor_day(engine):
    """Yesterday's and today's calls as the processor leaves them: six delivered through ccanalytics's
    ingest API and six it wrote itself (its cost with the usage inside); its quality evaluation on some
    of each; its daily_stats row of yesterday (UTC day); an A/B test of its own with its counters, beside
    ccanalytics's running one; its model prices; and old calls of its own, past every retention cutoff."""
    now = clock.now().replace(microsecond=0)
    calls = [
        make_call(started_at=now - timedelta(minutes=60 + 90 * i), caller_id=f"+3806712345{i % 4:02d}")
        for i in range(12)
    ]
    ingest_records(engine, calls[:6])
    with engine.begin() as conn:
        for i, call in enumerate(calls[6:], start=6):
            quality = (0.85, RECORDED_QUALITY) if i <= 8 else None
            write_as_processor(conn, call, cost_breakdown=RECORDED_COST, quality=quality)
        conn.execute(  # its quality task evaluates the delivered calls too
            sa.text("UPDATE calls SET quality_score = 0.85, quality_details = CAST(:q AS jsonb) WHERE id = ANY(:ids)"),
            {"q": json.dumps(RECORDED_QUALITY), "ids": [c["call_id"] for c in calls[3:6]]},
        )
        # its own calls of long ago: retention deletes none of their rows (only ccanalytics's rows about them)
        for days in (400, 120):
            old = make_call(started_at=now - timedelta(days=days), caller_id="+380501110000")
            write_as_processor(conn, old, cost_breakdown=RECORDED_COST, quality=(0.7, RECORDED_QUALITY))
        conn.execute(
            sa.text(
                "INSERT INTO daily_stats (stat_date, total_calls, resolved_by_bot, transferred, avg_quality_score, "
                "total_cost_usd) VALUES (CAST(:d AS date), 7, 6, 1, 0.85, 0.4)"
            ),
            {"d": (now - timedelta(days=1)).date().isoformat()},
        )
        _, a, b = running_ab_test(conn)  # ccanalytics's, and one of the processor's between the same versions
        conn.execute(
            sa.text(
                "INSERT INTO prompt_ab_tests (test_name, variant_a_id, variant_b_id, calls_a, calls_b, quality_a, "
                "status) VALUES ('greeting', :a, :b, 41, 39, 0.8, 'active')"
            ),
            {"a": a, "b": b},
        )
        conn.execute(
            sa.text(
                "INSERT INTO llm_model_pricing (provider_key, model_name, display_name, input_price_per_1m, "
                "output_price_per_1m) VALUES ('anthropic-sonnet', 'claude-sonnet-4', 'Claude Sonnet 4', 3, 15)"
            )
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
            {"i": processor_day[7]["call_id"]},
        ).one()
    assert (mine.scores, mine.prices, mine.both) == (12, 12, 12) and mine.days >= 1
    with engine.connect() as conn:  # the processor's old calls are all still there, transcripts included
        old = conn.execute(
            sa.text(
                "SELECT count(DISTINCT c.id) AS calls, count(t.id) AS turns FROM calls c "
                "JOIN call_turns t ON t.call_id = c.id WHERE c.started_at < now() - interval '100 days'"
            )
        ).one()
    assert tuple(old) == (2, 10)
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
    call_id = processor_day[7]["call_id"]  # written by the processor itself, with its quality and cost
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

    from ccanalytics.cli.root import main

    res = CliRunner().invoke(main, ["db", "status"], env={"CCA_DATABASE_URL": db_url, "CCA_QUALITY_SOURCE": "both"})
    assert res.exit_code == 1
    assert res.output.startswith(
        "Error: invalid setting CCA_QUALITY_SOURCE: Input should be 'ccanalytics' or 'processor'"
    )
    assert len(res.output.strip().splitlines()) == 1
