"""The judge corpora for the accuracy test and the judge benchmark: the LLM judge replaying recorded
answers from a local OpenAI-compatible server.

No answers of a real model are recorded in the repository yet (no model is reachable here), so the
replay uses *oracle* answers made from the truth itself: it measures that the LLM judge's prompt,
transport and parsing lose nothing between an answer and the scores — not a model's judgement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from fakeopenai import FakeOpenAI, transcript_key

from ccanalytics.ops.telemetry import CRITERIA
from ccanalytics.quality import LLMJudge, LLMJudgeConfig, Rubric
from ccanalytics.quality.accuracy import CriterionAccuracy, judge_corpus
from ccanalytics.quality.transcript import CallView, render


def oracle_answer(truth: Mapping[str, bool | None]) -> str:
    """A judge answer (the rubric's JSON schema) that says exactly what the truth says."""
    criteria = {}
    for c in CRITERIA:
        value = truth.get(c, True)
        criteria[c] = {
            "score": 0.0 if value is False else 1.0,
            "applicable": value is not None,
            "reason": "по разметке",
            "evidence": [],
        }
    return json.dumps({"criteria": criteria}, ensure_ascii=False)


def replay_llm_judge(
    items: Iterable[tuple[CallView, Mapping[str, bool | None]]], answers: Mapping[str, str] | None = None
) -> dict[str, CriterionAccuracy]:
    """Judge the calls with the LLM judge against a local server replaying recorded answers (by
    transcript); without ``answers``, the oracle answers of the truth."""
    items = list(items)
    recorded = dict(answers or {transcript_key(render(call)): oracle_answer(truth) for call, truth in items})
    with FakeOpenAI(recorded=recorded) as server:
        judge = LLMJudge(LLMJudgeConfig(server.base_url, "test-key", "recorded-judge", timeout_s=10), Rubric())
        return judge_corpus(judge, items)
