"""Review queue, human labels and calibration (κ against statsmodels), the quality report, and
problem detection."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call, turn
from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

from ccanalytics import quality
from ccanalytics.analytics import metrics
from ccanalytics.core import timeutil
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality import Rubric, RulesJudge, ScoringConfig
from ccanalytics.quality.calibration import agreement, cohens_kappa
from ccanalytics.quality.problems import detect, reasked_words
from ccanalytics.quality.report import quality_report
from ccanalytics.quality.review import counts, list_items, resolve, take

DAY = datetime(2026, 11, 20, 8, tzinfo=UTC)


def bad_call(i: int, **fields):
    t0 = DAY + timedelta(minutes=7 * i)
    return make_call(
        started_at=t0,
        seconds=60,
        caller_id=None,
        transferred_to_operator=True,
        transfer_reason="negative_emotion",
        order_created=None,
        scenario="order_status",
        turns=[
            turn("bot", "Слухаю.", t0 + timedelta(seconds=1)),
            turn("customer", "Де моє замовлення Мішлен", t0 + timedelta(seconds=4), stt_confidence=0.4),
            turn("bot", "Перепрошую, не розчула. Повторіть, будь ласка?", t0 + timedelta(seconds=8)),
            turn("customer", "Мішлен, це жах", t0 + timedelta(seconds=12), stt_confidence=0.5),
        ],
        **fields,
    )


@pytest.fixture
def scored(engine):
    calls = [bad_call(i) for i in range(12)] + [
        make_call(started_at=DAY + timedelta(hours=3, minutes=i), caller_id=None) for i in range(8)
    ]
    ingest_records(engine, calls)
    quality.enqueue(engine)
    quality.score_pending(engine, RulesJudge(), Rubric(), config=ScoringConfig(backoff_base_s=0.01))
    return calls


def test_review_queue_take_and_resolve_with_labels(engine, scored):
    items = list_items(engine, status="new")
    assert len(items) == 12 and all(i.reasons == ("low_score",) for i in items)
    assert counts(engine) == {"new": 12, "in_review": 0, "resolved": 0}
    first = items[0].call_id
    take(engine, first, "olena")
    assert counts(engine)["in_review"] == 1
    n = resolve(
        engine,
        first,
        "olena",
        {"bot_greeted_properly": 0.0, "customer_seemed_satisfied": 0.0, "bot_confirmed_before_action": None},
        "Бот не поздоровался",
    )
    assert n == 3
    with engine.connect() as conn:
        labels = conn.execute(
            sa.text("SELECT criterion, human_score, judge_score, judge_model FROM review_labels ORDER BY criterion")
        ).all()
        item = conn.execute(
            sa.text("SELECT status, comment, resolved_at FROM review_items WHERE call_id = :id"), {"id": first}
        ).one()
    assert labels[0] == ("bot_confirmed_before_action", None, None, "rules-v2")
    assert labels[1] == ("bot_greeted_properly", 0.0, 0.0, "rules-v2")
    assert item.status == "resolved" and item.comment == "Бот не поздоровался" and item.resolved_at
    with pytest.raises(Conflict):  # already resolved
        take(engine, first, "olena")
    with pytest.raises(NotFound):
        take(engine, scored[-1]["call_id"], "olena")  # a good call is not in the queue
    for bad in ({"nonsense": 1}, {"bot_was_concise": 2}, {"bot_was_concise": True}):
        with pytest.raises(InvalidArgument):
            resolve(engine, items[1].call_id, "olena", bad)
    with pytest.raises(InvalidArgument):
        resolve(engine, "not-a-uuid", "olena", {})
    assert counts(engine)["resolved"] == 1  # the refused resolutions changed nothing


def test_cohens_kappa_matches_statsmodels():
    rng = random.Random(5)
    pairs = []
    for _ in range(300):
        truth = rng.random() < 0.6
        pairs.append((truth, truth if rng.random() < 0.85 else not truth))
    kappa, accuracy, confusion = cohens_kappa(pairs)
    reference = sm_kappa([list(r) for r in confusion]).kappa  # statsmodels.stats.inter_rater.cohens_kappa
    assert kappa == pytest.approx(reference, abs=1e-12)
    assert accuracy == pytest.approx(sum(h == j for h, j in pairs) / 300)
    assert cohens_kappa([(True, True)] * 5)[0] is None  # chance agreement 1: undefined, not a crash
    assert cohens_kappa([]) == (None, None, ((0, 0), (0, 0)))


def test_agreement_and_drift(engine, scored):
    ids = [c["call_id"] for c in scored]
    for i, cid in enumerate(ids):
        # the reviewer agrees on greetings, disagrees with the judge on satisfaction half the time
        verdicts = {"bot_greeted_properly": 0.0 if i < 12 else 1.0, "customer_seemed_satisfied": float(i % 2)}
        with engine.begin() as conn:
            quality.review.store_labels(conn, __import__("uuid").UUID(cid), "olena", verdicts)
    found = {a.criterion: a for a in agreement(engine, "2026-11-01", timeutil.today(), min_labels=10)}
    assert found["bot_greeted_properly"].kappa == 1.0 and not found["bot_greeted_properly"].drift
    sat = found["customer_seemed_satisfied"]
    assert sat.n == 20 and sat.kappa is not None and sat.kappa < 0.6 and sat.drift
    assert found["bot_was_concise"].reason == "нет разметки"


def test_quality_report(engine, scored):
    r = quality_report(engine, "2026-11-20", "2026-11-20")
    assert r["total_calls"] == 20 and r["scored_calls"] == 20
    assert r["low_count"] == 12 and r["high_count"] + r["middle_count"] == 8
    assert r["criteria"]["bot_greeted_properly"]["failed"] == 12
    assert r["review_queue"]["new"] == 12
    assert r["scoring_queue"]["done"] == 20
    assert r["judges"][0]["model"] == "rules-v2" and r["judges"][0]["calls"] == 20
    order_status = next(s for s in r["scenarios"] if s["scenario"] == "order_status")
    assert order_status["low"] == 12
    assert [t["date"] for t in r["trend"]] == ["2026-11-20"]


def test_problem_detection(engine, scored):
    # a quiet baseline day before, then the bad day
    base = [make_call(started_at=DAY - timedelta(days=1, minutes=-i * 10), caller_id=None) for i in range(20)]
    ingest_records(engine, base)
    metrics.compute_daily_stats(engine, date(2026, 11, 19), date(2026, 11, 20))
    found = detect(engine, "2026-11-20")
    kinds = {(f.kind, f.key) for f in found}
    assert ("scenario_transfer_rate", "order_status") in kinds
    assert ("stt_reask_rate", "all") in kinds
    words = [f.key for f in reasked_words(engine, date(2026, 11, 20))]
    assert words[:2] == ["замовлення", "мішлен"] or "мішлен" in words
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM quality_findings WHERE day = '2026-11-20'")).scalar_one()
    assert stored == len(found)
    assert detect(engine, "2026-11-20") == found  # re-running replaces, does not duplicate
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM quality_findings")).scalar_one() == len(found)
