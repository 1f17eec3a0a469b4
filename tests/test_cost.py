"""Per-call cost from usage at dated prices: hand-computed fixtures (15-second rounding, cached
tokens, TTS cache hits, a price change at a date boundary, a fixed-cost STT shared by a month), and
the baseline-vs-current report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call

from ccanalytics import cost, pricing
from ccanalytics.demo.generator import compute_cost, generate_calls
from ccanalytics.errors import ConfigError, InvalidArgument
from ccanalytics.ingest import ingest_records

USAGE = {
    "stt_provider": "google",
    "stt_seconds": 90.4,
    "llm_model": "claude-sonnet-4",
    "llm_calls": 4,
    "llm_input_tokens": 10_000,
    "llm_cached_input_tokens": 6_000,
    "llm_output_tokens": 1_600,
    "tts_provider": "google",
    "tts_chars": 600,
    "tts_cached_chars": 200,
    "telephony_seconds": 90.4,
}


def stored(engine, call_id):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT cost_breakdown, total_cost_usd FROM calls WHERE id = :i"), {"i": call_id}
        ).one()


def test_hand_computed_cost(engine):
    call = make_call(usage=USAGE, cost={"total_usd": 0.5})
    ingest_records(engine, [call])
    run = cost.compute_costs(engine, "2026-11-20", "2026-11-20")
    assert (run.priced, run.estimated, run.unpriced) == (1, 0, 0)
    breakdown, total = stored(engine, call["call_id"])
    stt = 7 * 0.006  # 90.4 s → 7 started 15-s increments
    llm = (4_000 * 3.0 + 6_000 * 0.30 + 1_600 * 15.0) / 1e6
    tts = 400 * 16.0 / 1e6  # cached characters are free
    assert breakdown["stt"] == pytest.approx(stt) and breakdown["llm"] == pytest.approx(llm)
    assert breakdown["tts"] == pytest.approx(tts) and breakdown["telephony"] == 0
    assert total == pytest.approx(round(stt + llm + tts, 6))
    assert breakdown["reported_total_usd"] == 0.5 and breakdown["estimated"] is False
    again = cost.compute_costs(engine, "2026-11-20", "2026-11-20")  # idempotent: nothing rewritten
    assert (again.priced, again.updated) == (1, 0)
    assert stored(engine, call["call_id"])[0]["reported_total_usd"] == 0.5


def test_price_change_at_a_date_boundary_and_whisper_month(engine, tmp_path):
    f = tmp_path / "prices.yaml"
    f.write_text("""
stt:
  google: [{from: 2024-01-01, usd_per_increment: 0.006, increment_seconds: 15}]
  whisper: [{from: 2024-01-01, fixed_usd_per_month: 150.0}]
llm:
  claude-sonnet-4:
    - {from: 2024-01-01, input_per_1m: 3.0, output_per_1m: 15.0, cached_input_per_1m: 0.30}
    - {from: 2026-11-20, input_per_1m: 2.0, output_per_1m: 10.0, cached_input_per_1m: 0.20}
tts:
  google: [{from: 2024-01-01, usd_per_1m_chars: 16.0}]
""")
    book = pricing.load(f)
    # 23:30 Kyiv on the 19th is before the change; 00:30 Kyiv on the 20th is after it
    before = make_call(started_at=datetime(2026, 11, 19, 21, 30, tzinfo=UTC), usage=USAGE, caller_id=None)
    after = make_call(started_at=datetime(2026, 11, 19, 22, 30, tzinfo=UTC), usage=USAGE, caller_id=None)
    whisper = [
        make_call(
            started_at=datetime(2026, 11, 3 + i, 10, tzinfo=UTC),
            caller_id=None,
            usage={**USAGE, "stt_provider": "whisper"},
        )
        for i in range(3)
    ]
    ingest_records(engine, [before, after, *whisper])
    assert cost.compute_costs(engine, "2026-11-01", "2026-11-20", book=book).priced == 5
    assert stored(engine, before["call_id"])[0]["llm"] == pytest.approx((4_000 * 3 + 6_000 * 0.3 + 1_600 * 15) / 1e6)
    assert stored(engine, after["call_id"])[0]["llm"] == pytest.approx((4_000 * 2 + 6_000 * 0.2 + 1_600 * 10) / 1e6)
    assert stored(engine, whisper[0]["call_id"])[0]["stt"] == pytest.approx(50.0)  # $150 / 3 calls that month


def test_missing_usage_is_estimated_and_unknown_models_are_left_alone(engine):
    plain = make_call(usage=None, cost=None)
    odd = make_call(started_at=datetime(2026, 11, 20, 9, tzinfo=UTC), usage={**USAGE, "llm_model": "mystery-9"})
    ingest_records(engine, [plain, odd])
    run = cost.compute_costs(engine, "2026-11-20", "2026-11-20")
    assert (run.priced, run.estimated, run.unpriced) == (1, 1, 1)
    breakdown, total = stored(engine, plain["call_id"])
    assert breakdown["estimated"] is True
    # the default dialogue has 3 bot turns: 3 × 2,500 input and 3 × 400 output tokens at Sonnet prices
    assert breakdown["llm"] == pytest.approx((3 * 2500 * 3.0 + 3 * 400 * 15.0) / 1e6)
    left = stored(engine, odd["call_id"])  # no price for its model: what the call processor reported stays
    assert "priced_by" not in left.cost_breakdown and left.total_cost_usd == pytest.approx(0.04884)


def test_demo_costs_match_the_generator_and_the_report(engine):
    end = datetime(2026, 11, 23).date()
    calls = list(generate_calls(days=6, calls_per_day=60, end_date=end, ab_test=None, levers_days=0))  # Google STT
    ingest_records(engine, calls)
    cost.compute_costs(engine, end - timedelta(days=5), end)
    with engine.connect() as conn:
        totals = dict(conn.execute(sa.text("SELECT id::text, total_cost_usd FROM calls")).all())
    for c in calls[:50]:
        assert totals[c["call_id"]] == pytest.approx(compute_cost(c["usage"])["total_usd"], abs=2e-6)
    report = cost.cost_report(
        engine, f"{end - timedelta(days=5)}:{end - timedelta(days=3)}", (end - timedelta(days=2), end)
    )
    assert {lv["lever"] for lv in report["levers"]} == {
        "tts_cache",
        "model_routing",
        "stt_provider",
        "prompt_length",
        "other",
    }
    total_saving = sum(lv["saving_per_call_usd"] for lv in report["levers"])
    expected = report["baseline"]["cost_per_call_usd"] - report["current"]["cost_per_call_usd"]
    assert total_saving == pytest.approx(expected, abs=1e-5)
    assert report["reduction_pct"] == pytest.approx(100 * expected / report["baseline"]["cost_per_call_usd"], abs=0.01)
    with pytest.raises(InvalidArgument):
        cost.cost_report(engine, "2026-01-01", "2026-11-20:2026-11-23")


def test_bad_pricing_files(tmp_path):
    for text, message in (
        ("stt: [", "not valid YAML"),
        ("gpu: {}", "unknown component"),
        ("llm: {x: [{input_per_1m: 1}]}", "needs 'from"),
        ("tts: {g: [{from: 2024-01-01, usd_per_1m_chars: -1}]}", "non-negative"),
        ("tts: {g: [{from: 2024-01-01, usd: 1}]}", "unknown fields"),
    ):
        f = tmp_path / "p.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=message):
            pricing.load(f)
    with pytest.raises(ConfigError):
        pricing.load(tmp_path / "missing.yaml")


def test_cost_commands(db_url, engine):
    import json

    from click.testing import CliRunner

    from ccanalytics.cli import main

    env = {"CCA_DATABASE_URL": db_url}
    assert CliRunner().invoke(main, ["generate", "--days", "6", "--calls-per-day", "40"], env=env).exit_code == 0
    res = CliRunner().invoke(main, ["cost", "compute", "--from", "2026-01-01"], env=env)
    assert res.exit_code == 0 and res.output.startswith("priced ")
    res = CliRunner().invoke(main, ["cost", "report", "--current", _last_days(3), "--json"], env=env)
    data = json.loads(res.output)["data"]
    assert "reduction_pct" in data and [lv["lever"] for lv in data["levers"]][-1] == "other"
    bad = CliRunner().invoke(main, ["cost", "report", "--baseline", "yesterday", "--current", _last_days(3)], env=env)
    assert bad.exit_code == 1 and bad.output.startswith("Error: a period is FROM:TO")


def _last_days(n):
    from ccanalytics import timeutil

    today = timeutil.today()
    return f"{today - timedelta(days=n - 1)}:{today}"


def test_lever_commands(db_url, engine):
    import json

    from click.testing import CliRunner

    from ccanalytics.cli import main

    env = {"CCA_DATABASE_URL": db_url}
    assert CliRunner().invoke(main, ["generate", "--days", "3", "--calls-per-day", "40"], env=env).exit_code == 0
    for command in ("whisper", "tts-cache", "routing", "prompts"):
        res = CliRunner().invoke(main, ["cost", command, "--from", "2026-01-01", "--json"], env=env)
        assert res.exit_code == 0, (command, res.output)
        assert json.loads(res.output)["data"]
        plain = CliRunner().invoke(main, ["cost", command, "--from", "2026-01-01"], env=env)
        assert plain.exit_code == 0 and plain.output.strip()


@pytest.mark.slow
def test_demo_data_shows_the_phase_one_to_now_reduction_and_its_levers(engine):
    """Criterion 7 from data: the demo's phase-1 days against its current days, at the demo volume."""
    from ccanalytics.demo.generator import DEMO_AB_DAYS
    from ccanalytics.demo.load import load_demo_data

    end = date(2026, 11, 24)
    load_demo_data(engine, seed=42, days=DEMO_AB_DAYS + 7, calls_per_day=400, end_date=end)
    first, levers_first = end - timedelta(days=DEMO_AB_DAYS + 6), end - timedelta(days=DEMO_AB_DAYS - 1)
    cost.compute_costs(engine, first, end)
    report = cost.cost_report(engine, (first, levers_first - timedelta(days=1)), (levers_first, end))
    assert report["reduction_pct"] >= 20, report["reduction_pct"]
    savings = {lv["lever"]: lv["saving_per_call_usd"] for lv in report["levers"]}
    assert all(savings[k] > 0 for k in ("tts_cache", "model_routing", "stt_provider", "prompt_length")), savings
    assert report["baseline"]["tts_cache_hit_rate"] == 0 and report["current"]["tts_cache_hit_rate"] > 0.2
