"""Prompt optimizer: failure patterns from low-scoring calls, suggestions offline and from an LLM,
approval into a new inactive version."""

from __future__ import annotations

import re

import pytest
from fakeopenai import FakeOpenAI
from openai import OpenAI

from ccanalytics.core import timeutil
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.demo import load_demo_data
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import Rubric, RulesJudge, enqueue, score_pending


@pytest.fixture
def scored_demo(engine):
    load_demo_data(engine, days=5, calls_per_day=120, end_date=timeutil.today())
    enqueue(engine)
    # an order or booking placed without a yes fails the call (few demo calls average under 0.5 otherwise)
    score_pending(engine, RulesJudge(), Rubric(auto_fail=("bot_confirmed_before_action",)))
    # the demo's v2 is in an A/B test; make v1 the active version the optimizer improves
    return prompts.active_version(engine, "tire_agent")


def test_patterns_and_offline_suggestion_approved_into_an_inactive_version(engine, scored_demo):
    patterns = optimizer.collect_patterns(engine, "tire_agent", days_ago(5), timeutil.today())
    assert patterns and all(p.calls > 0 and p.avg_score < 0.5 for p in patterns)
    assert [p.calls for p in patterns] == sorted((p.calls for p in patterns), reverse=True)
    assert all(1 <= len(p.example_call_ids) <= 2 for p in patterns)
    s = optimizer.propose(engine, "tire_agent", days_ago(5), timeutil.today())
    assert s.source == "rules" and s.status == "proposed" and s.base_version_id == scored_demo.id
    assert s.summary.startswith("Частые ошибки")
    assert s.proposed_prompt.startswith(scored_demo.system_prompt.rstrip()) and "Додаткові правила" in s.proposed_prompt
    approved = optimizer.decide(engine, s.id, by="manager", approve=True)
    new = prompts.get_version(engine, approved.new_version_id)
    assert approved.status == "approved" and not new.is_active and new.note.endswith(f"#{s.id}")
    assert prompts.active_version(engine, "tire_agent").id == scored_demo.id  # never auto-activated
    with pytest.raises(Conflict):  # already decided
        optimizer.decide(engine, s.id, by="manager", approve=False)


def test_llm_suggestion_and_rejection(engine, scored_demo):
    with FakeOpenAI() as server:
        client = OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        s = optimizer.propose(engine, "tire_agent", days_ago(5), timeutil.today(), llm=client, model="fake-judge-1")
        request = server.requests[-1]
    assert s.source == "llm" and s.proposed_prompt == "Новий промпт: підтверджуй."
    assert s.examples[0]["criterion"] == "bot_confirmed_before_action"
    assert not re.search(r"\+?380\d{9}", str(request))  # examples are masked transcripts (no whole phone)
    rejected = optimizer.decide(engine, s.id, by="manager", approve=False)
    assert rejected.status == "rejected" and rejected.new_version_id is None
    assert [x.id for x in optimizer.list_suggestions(engine, "rejected")] == [s.id]


def test_nothing_to_improve_and_unknown_prompt(engine):
    prompts.create_version(engine, "quiet", "тихий", author="a", activate=True)
    with pytest.raises(InvalidArgument, match="nothing to improve"):
        optimizer.propose(engine, "quiet")
    with pytest.raises(NotFound):
        optimizer.propose(engine, "missing")
    with pytest.raises(NotFound):
        optimizer.decide(engine, 999, by="m", approve=True)


def days_ago(n: int):
    from datetime import timedelta

    return timeutil.today() - timedelta(days=n)
