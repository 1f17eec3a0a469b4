"""The scoring pipeline with the real openai SDK against a local OpenAI-compatible server: every call
ends scored or failed with its reason, never scored twice."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call, turn
from fakeopenai import FakeOpenAI

from ccanalytics import quality
from ccanalytics.core import clock
from ccanalytics.db import partitions
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality import LLMJudge, LLMJudgeConfig, Rubric, RulesJudge, ScoringConfig

FAST = ScoringConfig(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05)
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def llm_judge(server: FakeOpenAI, *, key: str = "test-key", timeout: float = 5.0) -> LLMJudge:
    config = LLMJudgeConfig(
        base_url=server.base_url,
        api_key=key,
        model="fake-judge-1",
        timeout_s=timeout,
        price_input_per_1m=0.15,
        price_output_per_1m=0.6,
    )
    return LLMJudge(config, Rubric())


def call_with_mode(mode: str | None, i: int = 0, **fields) -> dict:
    t0 = START + timedelta(minutes=i)
    text = f"Добрий день, мені потрібні шини{f' [[mode:{mode}]]' if mode else ''}, номер 067 123 45 67, я Остап."
    turns = [
        turn("bot", "Добрий день! Магазин шин, чим допомогти?", t0 + timedelta(seconds=1)),
        turn("customer", text, t0 + timedelta(seconds=5)),
        turn(
            "bot",
            "Підберу варіанти, Остапе.",
            t0 + timedelta(seconds=9),
            tool_calls=[
                {
                    "name": "search_tires",
                    "args": {"size": "205/55 R16", "season": "winter"},
                    "result": {"items": [{"brand": "Nokian", "price_uah": 4150}]},
                    "success": True,
                }
            ],
        ),
    ]
    return make_call(started_at=t0, seconds=30, turns=turns, customer_name="Остап Вишня", **fields)


def states(engine) -> dict[str, tuple[str, int, str | None]]:
    with engine.connect() as conn:
        return {
            str(r.call_id): (r.status, r.attempts, r.last_error)
            for r in conn.execute(sa.text("SELECT call_id, status, attempts, last_error FROM scoring_queue"))
        }


def test_valid_answers_are_stored_with_judge_tokens_cost_and_evidence(engine):
    calls = [call_with_mode(None, i) for i in range(3)] + [call_with_mode("low", 5)]
    ingest_records(engine, calls)
    assert quality.enqueue(engine, date_from="2026-11-20", date_to="2026-11-20") == 4
    with FakeOpenAI() as server:
        # the weighted mean as it is (the default auto-fail would set the low call's score to 0)
        run = quality.score_pending(engine, llm_judge(server), Rubric(auto_fail=()), workers=2, config=FAST)
    assert (run.scored, run.failed) == (4, 0)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM call_scores ORDER BY overall_score")).all()
        call = conn.execute(
            sa.text("SELECT quality_score, quality_details, scored_at, quality_scored FROM cca_calls WHERE id = :id"),
            {"id": calls[0]["call_id"]},
        ).one()
        review = conn.execute(sa.text("SELECT call_id::text, status, reasons FROM review_items")).all()
    assert len(rows) == 4 and all(r.is_current for r in rows)
    assert {(r.judge_kind, r.judge_model) for r in rows} == {("llm", "fake-judge-1")}
    assert all(r.prompt_tokens > 50 and r.completion_tokens == 400 and r.cost_usd > 0 for r in rows)
    assert rows[0].overall_score == pytest.approx(0.2) and rows[-1].overall_score == pytest.approx(0.9)
    assert rows[0].rubric_version == Rubric(auto_fail=()).version
    assert call.quality_score == pytest.approx(0.9) and call.scored_at is not None and call.quality_scored
    details = call.quality_details
    assert details["judge"] == {"kind": "llm", "model": "fake-judge-1"}
    # evidence pointing at a turn that does not exist (999) is dropped
    assert details["criteria"]["bot_was_concise"]["evidence"] == [1, 2]
    assert details["criteria"]["bot_confirmed_before_action"]["applicable"] is False
    assert details["signals"]["greeted"] is True
    assert review == [(calls[3]["call_id"], "new", ["low_score"])]
    assert set(s[0] for s in states(engine).values()) == {"done"}


def test_what_leaves_the_system_is_masked_and_compact(engine):
    ingest_records(engine, [call_with_mode(None)])
    quality.enqueue(engine)
    with FakeOpenAI() as server:
        quality.score_pending(engine, llm_judge(server), Rubric(), workers=1, config=FAST)
        sent = json.dumps(server.requests, ensure_ascii=False)
        body = server.requests[0]
    assert "067 123 45 67" not in sent and "+380671234567" not in sent
    assert "Остап" not in sent and "[ИМЯ]" in sent
    user = body["messages"][1]["content"]
    assert "T2 Клиент" in user and "→ search_tires(size=205/55 R16, season=winter) ✓ 1 шт." in user
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["temperature"] == 0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("invalid_json", "answer is not JSON"),
        ("truncated", "answer truncated (finish_reason=length)"),
        ("missing_criteria", "answer lacks criteria"),
        ("500", "server error 500"),
        ("429", "rate limited (429)"),
    ],
)
def test_retryable_failures_end_failed_with_reason_after_the_last_attempt(engine, mode, reason):
    call = call_with_mode(mode)
    ingest_records(engine, [call])
    quality.enqueue(engine)
    with FakeOpenAI() as server:
        run = quality.score_pending(engine, llm_judge(server), Rubric(), workers=2, config=FAST)
        assert len(server.requests) == 3
    assert (run.scored, run.failed, run.retried) == (0, 1, 2)
    status, attempts, error = states(engine)[call["call_id"]]
    assert (status, attempts) == ("failed", 3)
    assert error.startswith(reason) and error.endswith("(after 3 attempts)")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM call_scores")).scalar_one() == 0


@pytest.mark.parametrize(
    "mode", ["429-then-valid", "500-then-valid", "invalid_json-then-valid", "truncated-then-valid"]
)
def test_a_transient_failure_is_retried_and_scored(engine, mode):
    call = call_with_mode(mode)
    ingest_records(engine, [call])
    quality.enqueue(engine)
    with FakeOpenAI() as server:
        run = quality.score_pending(engine, llm_judge(server), Rubric(), workers=1, config=FAST)
    assert (run.scored, run.failed, run.retried) == (1, 0, 1)
    assert states(engine)[call["call_id"]][:2] == ("done", 2)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT attempts FROM call_scores")).scalar_one() == 2


def test_timeout_and_refusal(engine):
    slow, fine = call_with_mode("slow", 0), call_with_mode(None, 1)
    ingest_records(engine, [slow, fine])
    quality.enqueue(engine)
    with FakeOpenAI(slow_seconds=2.0) as server:
        run = quality.score_pending(
            engine,
            llm_judge(server, timeout=0.5),
            Rubric(),
            workers=2,
            config=ScoringConfig(max_attempts=2, backoff_base_s=0.01),
        )
    assert (run.scored, run.failed) == (1, 1)
    assert states(engine)[slow["call_id"]][2] == "timeout after 0.5 s (after 2 attempts)"

    quality.enqueue(engine, reason="rescore", call_ids=[fine["call_id"]])
    with FakeOpenAI() as server:
        run = quality.score_pending(engine, llm_judge(server, key="wrong"), Rubric(), workers=1, config=FAST)
        assert len(server.requests) == 1  # not retried: a refusal does not get better
    status, attempts, error = states(engine)[fine["call_id"]]
    assert (status, attempts) == ("failed", 1)
    assert error == "refused: HTTP 401: Incorrect API key provided"


def test_limit_and_queue_status(engine):
    ingest_records(engine, [call_with_mode(None, i) for i in range(5)])
    quality.enqueue(engine)
    run = quality.score_pending(engine, RulesJudge(), Rubric(), workers=3, limit=2, config=FAST)
    assert run.scored == 2
    assert quality.queue_status(engine) == {"pending": 3, "in_progress": 0, "done": 2, "failed": 0}


def test_abandoned_claim_is_taken_over_and_a_lost_claim_is_not_written(engine):
    a, b = call_with_mode(None, 0), call_with_mode(None, 1)
    ingest_records(engine, [a, b])
    quality.enqueue(engine)
    with engine.begin() as conn:  # a worker claimed a and died long ago
        conn.execute(
            sa.text(
                "UPDATE scoring_queue SET status = 'in_progress', locked_by = 'dead', attempts = 1, "
                "locked_at = now() - interval '1 hour' WHERE call_id = :id"
            ),
            {"id": a["call_id"]},
        )
    run = quality.score_pending(engine, RulesJudge(), Rubric(), workers=1, config=FAST)
    assert run.scored == 2
    assert states(engine)[a["call_id"]][:2] == ("done", 2)

    quality.enqueue(engine, reason="rescore", call_ids=[b["call_id"]])
    with engine.begin() as conn:
        [(cid, attempts)] = quality.claim(conn, "slow-worker", 1, 600)
    with engine.begin() as conn:  # meanwhile another worker took it over
        conn.execute(sa.text("UPDATE scoring_queue SET locked_by = 'other' WHERE call_id = :id"), {"id": cid})
    outcome, _ = quality.score_one(engine, RulesJudge(), Rubric(), cid, attempts, "slow-worker", FAST)
    assert outcome == "lost"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM call_scores WHERE call_id = :id"), {"id": cid}).scalar_one() == 1
        )


def test_enqueue_new_rescore_and_rubric_change(engine):
    a, b = call_with_mode(None, 0), call_with_mode(None, 1)
    ingest_records(engine, [a, b])
    assert quality.enqueue(engine) == 2
    assert quality.enqueue(engine) == 0  # already queued
    quality.score_pending(engine, RulesJudge(), Rubric(), config=FAST)
    assert quality.enqueue(engine) == 0
    # a changed re-delivery clears the score: the call is queued again
    ingest_records(engine, [{**a, "duration_seconds": 29}])
    assert quality.enqueue(engine) == 1
    quality.score_pending(engine, RulesJudge(), Rubric(), config=FAST)
    # a new rubric version: every call scored under the old one
    heavier = Rubric(weights={**quality.DEFAULT_WEIGHTS, "bot_was_concise": 3.0})
    assert heavier.version != Rubric().version
    assert quality.enqueue(engine, reason="rubric_change", rubric=heavier) == 2
    run = quality.score_pending(engine, RulesJudge(), heavier, config=FAST)
    assert run.scored == 2
    # a new judge model: every call scored by another model
    assert quality.enqueue(engine, reason="rubric_change", rubric=heavier, judge_model="rules-v2") == 0
    assert quality.enqueue(engine, reason="rubric_change", rubric=heavier, judge_model="gpt-5-judge") == 2
    quality.score_pending(engine, RulesJudge(), heavier, config=FAST)
    with engine.connect() as conn:
        history = conn.execute(
            sa.text("SELECT call_id, count(*), count(*) FILTER (WHERE is_current) FROM call_scores GROUP BY 1")
        ).all()
    assert sorted(n for _, n, _ in history) == [3, 4] and all(cur == 1 for _, _, cur in history)
    with pytest.raises(quality.JudgeError.__mro__[1]):  # InvalidArgument is an Exception
        quality.enqueue(engine, reason="rescore", call_ids=["not-a-uuid"])


def _bulk_calls(engine, n: int) -> None:
    """n minimal calls written in SQL (fast), each with two turns, two weeks before the clock's now — as the
    call processor writes them (it supplies every id)."""
    start = clock.now().replace(microsecond=0) - timedelta(days=14)
    with engine.begin() as conn:
        partitions.ensure_months(conn, [start, start + timedelta(seconds=n + 60)])
        conn.execute(
            sa.text(
                "INSERT INTO calls (id, started_at, ended_at, duration_seconds, scenario, transferred_to_operator) "
                "SELECT md5('c' || g)::uuid, :t + g * interval '1 second', :t + g * interval '1 second' + interval '30 s', "
                "30, 'tire_search', g % 5 = 0 FROM generate_series(1, :n) g"
            ),
            {"t": start, "n": n},
        )
        conn.execute(
            sa.text(
                "INSERT INTO call_turns (id, call_id, turn_number, speaker, content, created_at) "
                "SELECT gen_random_uuid(), md5('c' || g)::uuid, k, CASE k WHEN 1 THEN 'bot' ELSE 'customer' END, "
                "CASE k WHEN 1 THEN 'Добрий день! Чим допомогти?' ELSE 'Шини на Шкоду ' || g END, "
                ":t + g * interval '1 second' + k * interval '2 s' FROM generate_series(1, :n) g, generate_series(1, 2) k"
            ),
            {"t": start, "n": n},
        )


def test_concurrent_workers_in_two_processes_never_double_score(engine):
    n = 10_000
    _bulk_calls(engine, n)
    assert quality.enqueue(engine) == n
    runs = []
    with FakeOpenAI() as server:
        judge = llm_judge(server)

        def process(prefix):
            runs.append(quality.score_pending(engine, judge, Rubric(), workers=4, config=FAST, worker_prefix=prefix))

        threads = [threading.Thread(target=process, args=(f"proc{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        requests = len(server.requests)
    assert sum(r.scored for r in runs) == n
    assert requests == n  # every call judged exactly once
    with engine.connect() as conn:
        per_call = conn.execute(sa.text("SELECT count(*), count(DISTINCT call_id) FROM call_scores")).one()
        unscored = conn.execute(sa.text("SELECT count(*) FROM cca_calls WHERE NOT quality_scored")).scalar_one()
    assert tuple(per_call) == (n, n) and unscored == 0
    assert quality.queue_status(engine)["done"] == n
    assert all(isinstance(uuid.UUID(c), uuid.UUID) for c in list(states(engine))[:3])
