"""Quality: automatic scoring of every call by an LLM judge (or the offline rule-based judge), with
evidence, rule-based signals, a durable scoring queue, manual review, calibration against human
labels, and problem detection.

    from ccanalytics import quality
    judge, rubric = quality.from_settings(settings)
    quality.enqueue(engine, date_from="2026-11-01")
    run = quality.score_pending(engine, judge, rubric, workers=8)
"""

from __future__ import annotations

from ccanalytics.core.config import Settings
from ccanalytics.quality import calibration, problems, report, review
from ccanalytics.quality.judge import Judge, JudgeError, JudgeResult, LLMJudge, LLMJudgeConfig, RulesJudge, parse_answer
from ccanalytics.quality.pipeline import (
    SCHEDULED_DAYS,
    ScoringConfig,
    ScoringRun,
    claim,
    enqueue,
    queue_status,
    scheduled_first_day,
    scheduled_since,
    score_one,
    score_pending,
)
from ccanalytics.quality.rubric import (
    DEFAULT_WEIGHTS,
    DESCRIPTIONS,
    CriterionScore,
    Overall,
    Rubric,
    answer_schema,
    overall,
)
from ccanalytics.quality.rules import Signals, compute_signals
from ccanalytics.quality.rulesjudge import rules_judge
from ccanalytics.quality.store import load_calls, write_score
from ccanalytics.quality.transcript import CallView, ToolUse, TurnView, render

__all__ = [
    "DEFAULT_WEIGHTS",
    "DESCRIPTIONS",
    "SCHEDULED_DAYS",
    "CallView",
    "CriterionScore",
    "Judge",
    "JudgeError",
    "JudgeResult",
    "LLMJudge",
    "LLMJudgeConfig",
    "Overall",
    "Rubric",
    "RulesJudge",
    "ScoringConfig",
    "ScoringRun",
    "Signals",
    "ToolUse",
    "TurnView",
    "answer_schema",
    "calibration",
    "claim",
    "compute_signals",
    "enqueue",
    "from_settings",
    "load_calls",
    "overall",
    "parse_answer",
    "problems",
    "queue_status",
    "render",
    "report",
    "review",
    "rubric_from_settings",
    "rules_judge",
    "scheduled_first_day",
    "scheduled_since",
    "score_one",
    "score_pending",
    "scoring_config_from_settings",
    "write_score",
]


def rubric_from_settings(settings: Settings) -> Rubric:
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(settings.quality_weights)
    return Rubric(
        weights=weights, auto_fail=tuple(settings.quality_auto_fail), review_below=settings.quality_review_below
    )


def from_settings(settings: Settings) -> tuple[Judge, Rubric]:
    """The configured judge (LLM when an API key is set, else the rule-based one) and rubric."""
    rubric = rubric_from_settings(settings)
    if settings.judge_api_key is None or not settings.judge_api_key.get_secret_value():
        return RulesJudge(), rubric
    config = LLMJudgeConfig(
        base_url=settings.judge_base_url,
        api_key=settings.judge_api_key.get_secret_value(),
        model=settings.judge_model,
        timeout_s=settings.judge_timeout_s,
        price_input_per_1m=settings.judge_price_input_per_1m,
        price_output_per_1m=settings.judge_price_output_per_1m,
    )
    return LLMJudge(config, rubric), rubric


def scoring_config_from_settings(settings: Settings, *, wait_for_retries: bool = True) -> ScoringConfig:
    return ScoringConfig(max_attempts=settings.judge_max_attempts, wait_for_retries=wait_for_retries)
