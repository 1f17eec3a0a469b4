"""The quality rubric: the spec's 8 criteria, what each means, their weights, auto-fail rules, the
JSON schema of a judge's answer, and the overall score.

The rubric version is a digest of everything that changes a score (criterion texts, weights,
auto-fail rules, judge instructions): when it changes, calls can be re-scored
(``ccanalytics score --rescore rubric_change``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccanalytics.core.definitions import AUTO_FAIL_CRITERIA, LOW_QUALITY
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.vocabulary import CRITERIA

# What each criterion means, for the judge (Russian: the rubric is read by staff too).
DESCRIPTIONS: dict[str, str] = {
    "bot_greeted_properly": "Бот поздоровался, назвал магазин и предложил помощь в первой реплике.",
    "bot_understood_intent": "Бот правильно понял, что нужно клиенту, без лишних переспросов и ухода в сторону.",
    "bot_used_correct_tool": "Бот вызвал подходящие инструменты с правильными аргументами "
    "(размер, сезон, заказ, слот).",
    "bot_provided_accurate_info": "Цены, наличие, размеры и сроки в ответах совпадают с результатами инструментов; "
    "бот ничего не выдумал.",
    "bot_confirmed_before_action": "Перед созданием заказа или записи бот повторил детали и получил согласие клиента. "
    "Неприменимо, если действий не было.",
    "bot_was_concise": "Реплики короткие и по делу, подходят для голоса (без длинных списков и повторов).",
    "call_resolved_without_human": "Вопрос клиента решён без перевода на оператора.",
    "customer_seemed_satisfied": "Клиент в конце звонка доволен или нейтрален; нет раздражения, жалоб, грубости.",
}
assert tuple(DESCRIPTIONS) == CRITERIA

DEFAULT_WEIGHTS: dict[str, float] = {
    "bot_greeted_properly": 0.5,
    "bot_understood_intent": 1.5,
    "bot_used_correct_tool": 1.0,
    "bot_provided_accurate_info": 1.5,
    "bot_confirmed_before_action": 1.0,
    "bot_was_concise": 0.5,
    "call_resolved_without_human": 1.5,
    "customer_seemed_satisfied": 1.0,
}

JUDGE_INSTRUCTIONS = """Ты — контролёр качества голосового бота интернет-магазина шин. Бот говорит с клиентами
по-украински. Оцени звонок по каждому критерию: score от 0 до 1 (1 — безупречно, 0 — провал),
applicable — применим ли критерий к этому звонку, reason — одна строка по-русски, почему такая оценка,
evidence — номера реплик (T…), на которых основана оценка. Оценивай только то, что есть в расшифровке.
Неприменимый критерий: applicable=false, score=1, evidence=[]."""


@dataclass(frozen=True)
class Rubric:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    auto_fail: tuple[str, ...] = AUTO_FAIL_CRITERIA  # a failed (score < auto_fail_below) one fails the call
    auto_fail_below: float = LOW_QUALITY
    review_below: float = LOW_QUALITY  # overall score under this enters the review queue

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(CRITERIA)
        if unknown:
            raise InvalidArgument(f"unknown quality criteria in weights: {', '.join(sorted(unknown))}")
        if any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise InvalidArgument("quality weights must be non-negative and not all zero")
        bad = set(self.auto_fail) - set(CRITERIA)
        if bad:
            raise InvalidArgument(f"unknown auto-fail criteria: {', '.join(sorted(bad))}")
        for name, value in (("auto_fail_below", self.auto_fail_below), ("review_below", self.review_below)):
            if not 0 <= value <= 1:
                raise InvalidArgument(f"{name} must be in [0, 1]")

    @property
    def version(self) -> str:
        """A short digest of everything that changes a score."""
        spec = {
            "criteria": DESCRIPTIONS,
            "weights": {k: self.weights.get(k, 0.0) for k in CRITERIA},
            "auto_fail": sorted(self.auto_fail),
            "auto_fail_below": self.auto_fail_below,
            "instructions": JUDGE_INSTRUCTIONS,
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return f"r1-{digest[:10]}"


@dataclass(frozen=True)
class CriterionScore:
    score: float
    applicable: bool
    reason: str
    evidence: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "applicable": self.applicable,
            "reason": self.reason,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Overall:
    score: float
    auto_failed: bool
    auto_fail_reasons: tuple[str, ...]
    needs_review: bool
    review_reasons: tuple[str, ...]


def overall(criteria: Mapping[str, CriterionScore], rubric: Rubric) -> Overall:
    """Weighted mean over applicable criteria; an auto-fail sets it to 0. No applicable criterion: 1."""
    total = weight = 0.0
    for name in CRITERIA:
        c = criteria.get(name)
        w = rubric.weights.get(name, 0.0)
        if c is not None and c.applicable and w > 0:
            total += w * c.score
            weight += w
    score = round(total / weight, 4) if weight else 1.0
    failed = tuple(
        name
        for name in rubric.auto_fail
        if (c := criteria.get(name)) is not None and c.applicable and c.score < rubric.auto_fail_below
    )
    if failed:
        score = 0.0
    reasons = []
    if failed:
        reasons.append("auto_fail")
    if score < rubric.review_below:
        reasons.append("low_score")
    return Overall(score, bool(failed), failed, bool(reasons), tuple(reasons))


def answer_schema() -> dict[str, Any]:
    """JSON schema of a judge's answer (OpenAI structured outputs, strict mode)."""
    item = {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "applicable": {"type": "boolean"},
            "reason": {"type": "string"},
            "evidence": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["score", "applicable", "reason", "evidence"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "criteria": {
                "type": "object",
                "properties": {c: item for c in CRITERIA},
                "required": list(CRITERIA),
                "additionalProperties": False,
            }
        },
        "required": ["criteria"],
        "additionalProperties": False,
    }
