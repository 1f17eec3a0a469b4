"""A/B results from the database: per-variant sufficient statistics in SQL, comparisons, SRM and the
recommendation, on the demo's running test and on hand-made calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call

from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.demo import load_demo_data
from ccanalytics.experiments import abresults, abtest
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ingest.load import ingest_records
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import Rubric, RulesJudge, enqueue, score_pending


def test_demo_test_results(engine):
    load_demo_data(engine, days=14, calls_per_day=150, end_date=timeutil.today())
    enqueue(engine)
    score_pending(engine, RulesJudge(), Rubric())
    # the demo generates the whole of today, later hours included: look up to tomorrow
    r = abresults.results(engine, "tire_agent-v1-vs-v2", now=datetime.now(UTC) + timedelta(days=1))
    a, b = r.variants
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.text("SELECT ab_variant, count(*) FROM cca_calls WHERE ab_test_id IS NOT NULL GROUP BY 1")
            ).all()
        )
    assert (a.n + a.excluded, b.n + b.excluded) == (counts["A"], counts["B"])
    assert a.label == "tire_agent@v1" and b.label == "tire_agent@v2"
    # the generator makes B transfer ~5 points less; the comparison says so with a CI
    resolved = r.comparisons["B"]["resolved_without_operator"]
    assert resolved.effect == pytest.approx(b.resolved / b.n - a.resolved / a.n)
    assert resolved.ci[0] < resolved.effect < resolved.ci[1]
    assert not r.srm.mismatch
    rec = r.recommendations["B"]
    assert rec.action in abtest.ACTIONS and rec.reason
    assert set(r.criteria_comparisons["B"]) >= {"bot_greeted_properly", "call_resolved_without_human"}
    d = r.to_dict()
    assert d["variants"][0]["calls"] == a.n and d["recommendations"]["B"]["action"] == rec.action


def test_exclusions_srm_and_sums_match_python(engine):
    v1 = prompts.create_version(engine, "p", "перша", author="a")
    v2 = prompts.create_version(engine, "p", "друга", author="a")
    t = experiments.create_test(engine, "p-ab", [v1.id, v2.id], created_by="a", exclusions={"min_duration_seconds": 20})
    experiments.start_test(engine, t.id, by="a")
    t = experiments.get_test(engine, t.id)
    start = t.started_at.replace(microsecond=0) + timedelta(seconds=1)
    calls = []
    for i in range(300):
        variant = "A" if i % 4 else "B"  # 75 % / 25 %: a sample ratio mismatch against 50/50
        calls.append(
            make_call(
                started_at=start + timedelta(seconds=20 * i),
                seconds=15 if i % 50 == 0 else 60,
                caller_id=None,
                prompt_version=f"p@v{1 if variant == 'A' else 2}",
                transferred_to_operator=i % 3 == 0,
                transfer_reason="cannot_help" if i % 3 == 0 else None,
                cost={"llm": 0.01 + (i % 7) / 1000},
                ab_test={"test_name": "p-ab", "variant": variant},
            )
        )
    ingest_records(engine, calls)
    r = abresults.results(engine, "p-ab", now=start + timedelta(days=1))
    a, b = r.variants
    kept = [c for c in calls if c["duration_seconds"] >= 20]
    for v in (a, b):
        mine = [c for c in kept if c["ab_test"]["variant"] == v.variant]
        assert v.n == len(mine)
        assert v.excluded == len([c for c in calls if c["ab_test"]["variant"] == v.variant]) - len(mine)
        assert v.resolved == sum(not c["transferred_to_operator"] for c in mine)
        costs = [c["cost"]["llm"] for c in mine]
        assert v.cost.n == len(costs)
        assert v.cost.sum == pytest.approx(sum(costs))
        assert v.cost.sum_squares == pytest.approx(sum(x * x for x in costs))
    assert r.srm.mismatch
    assert r.recommendations["B"].action == "investigate_srm"
    draft = experiments.create_test(engine, "p-draft", [v1.id, v2.id], created_by="a")
    with pytest.raises(InvalidArgument):
        abresults.results(engine, draft.id)
