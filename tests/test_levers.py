"""The cost levers measured from the logs: Whisper break-even (hand-computed on fixture calls), the TTS
phrase-cache replay (hand-computed hit rates, LRU eviction, template mode, TTL), and the routing replay
and prompt length on demo data (the router's own rules: test_router.py, test_router_corpus.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa
from factories import USAGE, make_call

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import calls as cost
from ccanalytics.cost import levers, pricing, router, routing_replay, ttscache
from ccanalytics.demo import load_demo_data
from ccanalytics.ingest.load import ingest_records

DAY1 = datetime(2026, 11, 20, 8, tzinfo=UTC)  # 10:00 Kyiv on the 20th
DAY2 = datetime(2026, 11, 21, 8, tzinfo=UTC)


def usage(**over):
    return {**USAGE, **over}


def book_file(tmp_path, text):
    f = tmp_path / "prices.yaml"
    f.write_text(text)
    return pricing.load(f)


# ------------------------------------------------------------------------------------ Whisper
def whisper_fixture(engine):
    ingest_records(engine, [
        make_call(started_at=DAY1, usage=usage(stt_seconds=90.4)),                           # 7 increments
        make_call(started_at=DAY1 + timedelta(hours=1), usage=usage(stt_seconds=30)),        # 2
        make_call(started_at=DAY2, usage=usage(stt_seconds=15.1)),                           # 2
        make_call(started_at=DAY2 + timedelta(hours=1), usage=usage(stt_provider="whisper", stt_seconds=45)),  # 3
        make_call(started_at=DAY2 + timedelta(hours=2), seconds=61, usage=None, cost=None),  # duration: 5
    ])  # fmt: skip


def test_whisper_break_even_hand_computed(engine):
    whisper_fixture(engine)
    r = levers.whisper_break_even(engine, "2026-11-20", "2026-11-21")
    google = (7 + 2 + 2 + 3 + 5) * 0.006 / 5  # $0.0228 per call at $0.006 per started 15 s
    assert (r.days, r.calls, r.calls_on_whisper) == (2, 5, 1)
    assert r.calls_per_day == 2.5
    assert r.stt_seconds_per_call == pytest.approx((90.4 + 30 + 15.1 + 45 + 61) / 5, abs=0.01)
    assert r.google_usd_per_call == pytest.approx(google)
    assert r.whisper_usd_per_month == 150.0
    assert r.break_even_calls_per_day == pytest.approx(150 / 30 / google, abs=0.05)  # ≈ 219.3
    assert r.monthly_saving_usd == pytest.approx(google * 2.5 * 30 - 150, abs=0.01)  # ≈ −148.29
    assert r.whisper_usd_per_call == pytest.approx(150 / 75)
    assert "не окупается" in r.verdict and "219" in r.verdict
    assert r.to_dict()["date_from"] == "2026-11-20"


def test_whisper_break_even_price_change_and_cheap_gpu(engine, tmp_path):
    whisper_fixture(engine)
    book = book_file(
        tmp_path,
        """
stt:
  google:
    - {from: 2024-01-01, usd_per_increment: 0.006, increment_seconds: 15}
    - {from: 2026-11-21, usd_per_increment: 0.012, increment_seconds: 15}
  whisper: [{from: 2024-01-01, fixed_usd_per_month: 1.0}]
""",
    )
    r = levers.whisper_break_even(engine, "2026-11-20", "2026-11-21", book=book)
    google = ((7 + 2) * 0.006 + (2 + 3 + 5) * 0.012) / 5  # the 21st at the new price
    assert r.google_usd_per_call == pytest.approx(google)
    assert r.break_even_calls_per_day == pytest.approx(1 / 30 / google, abs=0.05)
    assert r.monthly_saving_usd == pytest.approx(google * 2.5 * 30 - 1.0, abs=0.01)
    assert r.monthly_saving_usd > 0 and "выгоден" in r.verdict


def test_whisper_break_even_without_calls_or_prices(engine, tmp_path):
    r = levers.whisper_break_even(engine, "2026-11-20", "2026-11-21")
    assert r.calls == 0 and r.break_even_calls_per_day is None and "Нет звонков" in r.verdict
    no_whisper = book_file(
        tmp_path, "stt:\n  google: [{from: 2024-01-01, usd_per_increment: 0.006, increment_seconds: 15}]\n"
    )
    with pytest.raises(InvalidArgument, match="whisper"):
        levers.whisper_break_even(engine, "2026-11-20", "2026-11-21", book=no_whisper)
    with pytest.raises(InvalidArgument):
        levers.whisper_break_even(engine, "2026-11-21", "2026-11-20")


# ------------------------------------------------------------------------------------ TTS cache
TEXTS = [
    "Добрий день!",            # A  12 chars, miss
    "добрий   день",           # A  13, hit
    "Замовлення 123 готове.",  # B  22, miss
    "Замовлення 456 готове.",  # C  22, miss (template mode: B, hit, 19 chars without digits)
    "Добрий день.",            # A  12, hit
    "До побачення!",           # D  13, miss
]  # fmt: skip
TOTAL = 12 + 13 + 22 + 22 + 12 + 13  # 94


def test_phrase_key_matches_the_vectorised_key():
    assert ttscache.phrase_key("  Добрий   ДЕНЬ!  ") == "добрий день"
    assert ttscache.phrase_key("«Замовлення ORD-204518 оформлено.»", template=True) == "замовлення ord-# оформлено"
    keys = pl.DataFrame({"t": TEXTS}).select(k=ttscache._phrase_keys(pl.col("t"), True)).get_column("k").to_list()
    assert keys == [ttscache.phrase_key(t, template=True) for t in TEXTS]


def test_tts_replay_hand_computed():
    r = ttscache.tts_cache_replay(TEXTS, usd_per_1m_chars=16.0)
    assert (r.utterances, r.chars, r.unique_phrases, r.hits) == (6, TOTAL, 4, 2)
    assert r.chars_saved == 13 + 12 and r.hit_rate_chars == round(25 / 94, 4)
    assert r.hit_rate_utterances == round(2 / 6, 4)
    assert r.usd_saved == pytest.approx(25 * 16.0 / 1e6)
    assert r.unbounded_hit_rate_chars == round(25 / 94, 4)
    [top] = r.phrases_to_precache  # only "добрий день" is said twice or more
    assert (top.phrase, top.count, top.chars, top.total_chars) == ("добрий день", 3, 12, 37)
    assert top.example == "Добрий день!" and r.precache_share_of_chars == round(37 / 94, 4)
    # a Polars Series gives the same answer
    assert ttscache.tts_cache_replay(pl.Series(TEXTS), usd_per_1m_chars=16.0) == r


def test_tts_replay_lru_eviction_with_a_tiny_cache():
    # keys A B A C A B, 2 entries: A miss, B miss, A hit (A most recent), C miss evicts B (not A: LRU),
    # A hit, B miss. A FIFO cache would have evicted A and hit only once.
    texts = ["так", "ні", "Так.", "добре", "так!", "ні"]
    r = ttscache.tts_cache_replay(texts, max_entries=2, usd_per_1m_chars=16.0)
    assert r.hits == 2 and r.chars_saved == 4 + 4
    assert ttscache.tts_cache_replay(texts, max_entries=1, usd_per_1m_chars=16.0).hits == 0
    assert ttscache.tts_cache_replay(texts, max_entries=3, usd_per_1m_chars=16.0).hits == 3
    r = ttscache.tts_cache_replay(TEXTS, max_entries=1, usd_per_1m_chars=16.0)  # A A B C A D: only the 2nd A
    assert r.hits == 1 and r.chars_saved == 13


def test_tts_replay_template_mode():
    r = ttscache.tts_cache_replay(TEXTS, template=True, usd_per_1m_chars=16.0)
    # hits: the 2nd A (13 chars), C on B's template (22 − 3 digits still synthesised = 19), the 3rd A (12)
    assert r.hits == 3 and r.unique_phrases == 3
    assert r.chars_saved == 13 + 19 + 12 and r.hit_rate_chars == round(44 / 94, 4)
    assert r.hit_rate_utterances == 0.5
    assert r.phrases_to_precache[0].phrase == "замовлення # готове"  # 2 × 19 = 38 > 37
    assert r.phrases_to_precache[0].total_chars == 38


def test_tts_replay_ttl_and_validation():
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
    times = [t0, t0 + timedelta(hours=1), t0 + timedelta(days=3), t0 + timedelta(days=3, hours=1)]
    texts = ["Добрий день!"] * 4
    assert ttscache.tts_cache_replay(texts, usd_per_1m_chars=16.0).hits == 3
    r = ttscache.tts_cache_replay(texts, ttl_days=1, timestamps=times, usd_per_1m_chars=16.0)
    assert r.hits == 2  # the third is 3 days after synthesis: expired, synthesised again
    # timestamps order the replay: out of order input gives the same answer
    shuffled = ttscache.tts_cache_replay(
        texts, ttl_days=1, timestamps=[times[i] for i in (2, 0, 3, 1)], usd_per_1m_chars=16.0
    )
    assert shuffled.hits == 2
    empty = ttscache.tts_cache_replay([], usd_per_1m_chars=16.0)
    assert empty.utterances == 0 and empty.hit_rate_chars is None and empty.phrases_to_precache == ()
    assert ttscache.tts_cache_replay(["Так"]).usd_per_1m_chars == 16.0  # from the bundled price book
    for kwargs in (
        {"max_entries": 0},
        {"max_entries": 1.5},
        {"ttl_days": 1},
        {"ttl_days": -1, "timestamps": times},
        {"ttl_days": 1, "timestamps": times[:2]},
        {"top_n": -1},
    ):
        with pytest.raises(InvalidArgument):
            ttscache.tts_cache_replay(texts, usd_per_1m_chars=16.0, **kwargs)


def test_tts_cache_from_logs(engine):
    # the factory's dialogue has three bot turns: the second call repeats all three
    calls = [
        make_call(started_at=DAY1 + timedelta(hours=h), usage=usage(tts_chars=100, tts_cached_chars=25)) for h in (0, 1)
    ]
    ingest_records(engine, calls)
    r = ttscache.tts_cache_from_logs(engine, "2026-11-20", "2026-11-20")
    assert (r.utterances, r.hits, r.unique_phrases) == (6, 3, 3)
    assert r.hit_rate_chars == 0.5 and r.hit_rate_utterances == 0.5
    assert r.usd_per_1m_chars == 16.0 and r.logged_hit_rate_chars == 0.25
    assert ttscache.tts_cache_from_logs(engine, "2026-11-20", "2026-11-20", ttl_days=30).hits == 3
    assert ttscache.tts_cache_from_logs(engine, "2026-11-01", "2026-11-02").utterances == 0


# ------------------------------------------------------------------------------------ demo data
@pytest.fixture
def demo(engine):
    end = date(2026, 11, 23)
    load_demo_data(engine, days=3, calls_per_day=60, end_date=end)
    cost.compute_costs(engine, end - timedelta(days=2), end)  # ccanalytics's prices
    with engine.begin() as conn:  # a stand-in for the judge: transferred calls score lower
        conn.execute(
            sa.text(
                "UPDATE calls SET quality_score = CASE WHEN transferred_to_operator THEN 0.55 "
                "ELSE 0.8 + 0.15 * (get_byte(decode(md5(id::text), 'hex'), 0) / 255.0) END"
            )
        )
    return end - timedelta(days=2), end


def test_replay_routing_on_demo_data(engine, demo):
    first, last = demo
    book = pricing.load()
    r = routing_replay.replay_routing(engine, first, last, book=book)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
        rows = conn.execute(
            sa.text("""
            SELECT c.id::text, c.scenario, c.usage, (c.started_at AT TIME ZONE 'Europe/Kyiv')::date AS day,
                   (SELECT t.content FROM call_turns t WHERE t.call_id = c.id AND t.speaker = 'customer'
                    ORDER BY t.turn_number LIMIT 1) AS first
            FROM cca_calls c""")
        ).all()
    assert r.calls == n and sum(r.by_reason.values()) == n
    assert r.routed.calls + r.rest.calls == n and r.routed.calls == r.routed_cheap
    assert 0 < r.share_cheap < 1 and r.unpriced_calls == 0
    assert r.routed.scored == r.routed.calls and r.rest.scored == r.rest.calls
    assert 0 <= r.routed.mean_quality <= 1 and 0 <= r.rest.mean_quality <= 1
    assert 0 <= r.routed.transfer_rate <= 1
    assert r.llm_saving_usd >= 0 and 0 <= r.saving_share_of_llm < 1
    assert r.net_saving_usd == pytest.approx(r.llm_saving_usd - r.llm_extra_usd, abs=1e-5)
    assert "A/B" in r.recommendation and r.ab_calls_per_arm > 0

    # the same numbers call by call, through route() and the price book in Python
    def llm(model, u, day):
        p = book.at("llm", model, day).params
        cached = min(u.get("llm_cached_input_tokens", 0), u["llm_input_tokens"])
        return (
            (u["llm_input_tokens"] - cached) * p["input_per_1m"]
            + cached * p["cached_input_per_1m"]
            + u["llm_output_tokens"] * p["output_per_1m"]
        ) / 1e6

    routed = saving = 0
    for _id, scenario, u, day, first_text in rows:
        d = router.route(first_text, routing_replay.ivr_choice(scenario))
        if d.tier == "cheap":
            routed += 1
            saving += llm(u["llm_model"], u, day) - llm(d.model, u, day)
    assert routed == r.routed_cheap
    assert saving == pytest.approx(r.llm_saving_usd, abs=1e-5)
    assert r.to_dict()["routed"]["calls"] == routed


def test_replay_routing_empty_period(engine):
    r = routing_replay.replay_routing(engine, "2026-01-01", "2026-01-02")
    assert r.calls == 0 and r.share_cheap is None and "Нет звонков" in r.recommendation


def test_prompt_length_by_version_on_demo_data(engine, demo):
    rows = {r.prompt_version: r for r in levers.prompt_length_by_version(engine, *demo)}
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
    assert set(rows) == {"tire_agent@v1", "tire_agent@v2"}
    assert sum(r.calls for r in rows.values()) == n
    v1, v2 = rows["tire_agent@v1"], rows["tire_agent@v2"]
    for r in (v1, v2):
        assert r.calls_with_usage == r.calls and r.llm_calls >= r.calls
        assert 0 <= r.cached_share <= 1 and r.cost_per_call_usd > 0 and r.llm_cost_per_call_usd > 0
    assert v2.input_tokens_per_llm_call < v1.input_tokens_per_llm_call  # v2's prompt is shorter
    assert v1.cached_share == 0 < v2.cached_share  # only v2 uses prompt caching in the demo


def test_prompt_length_hand_computed(engine):
    ingest_records(engine, [
        make_call(started_at=DAY1, usage=usage(), cost={"stt": 0.04, "llm": 0.03, "tts": 0.01}),
        make_call(started_at=DAY1 + timedelta(hours=1), cost={"stt": 0.02, "llm": 0.01, "tts": 0.01},
                  usage=usage(llm_calls=2, llm_input_tokens=3_000, llm_cached_input_tokens=0, llm_output_tokens=400)),
        make_call(started_at=DAY1 + timedelta(hours=2), usage=None, cost=None),
        make_call(started_at=DAY1 + timedelta(hours=3), prompt_version="tire_agent@v9", usage=usage()),
    ])  # fmt: skip
    rows = {r.prompt_version: r for r in levers.prompt_length_by_version(engine, "2026-11-20", "2026-11-20")}
    v1 = rows["tire_agent@v1"]
    assert (v1.calls, v1.calls_with_usage, v1.llm_calls) == (3, 2, 6)
    assert v1.llm_calls_per_call == 3.0
    assert v1.input_tokens_per_llm_call == round(13_000 / 6, 1)
    assert v1.output_tokens_per_llm_call == round(2_000 / 6, 1)
    assert v1.cached_share == round(6_000 / 13_000, 4)
    # before pricing, the cost the call processor recorded (of the two calls that carry one)
    assert v1.cost_per_call_usd == pytest.approx((0.08 + 0.04) / 2)
    assert v1.llm_cost_per_call_usd == pytest.approx((0.03 + 0.01) / 2)
    cost.compute_costs(engine, "2026-11-20", "2026-11-20")
    v1 = {r.prompt_version: r for r in levers.prompt_length_by_version(engine, "2026-11-20", "2026-11-20")}[
        "tire_agent@v1"
    ]
    with engine.connect() as conn:
        priced = conn.execute(
            sa.text(
                "SELECT total_cost_usd AS total, (cost_breakdown ->> 'llm')::float8 AS llm FROM cca_calls "
                "WHERE prompt_version = 'tire_agent@v1'"
            )
        ).all()
    assert len(priced) == 3 and all(r.total is not None for r in priced)
    assert v1.cost_per_call_usd == pytest.approx(sum(r.total for r in priced) / 3)
    assert v1.llm_cost_per_call_usd == pytest.approx(sum(r.llm for r in priced) / 3)
    assert rows["tire_agent@v9"].input_tokens_per_llm_call == 2500.0
