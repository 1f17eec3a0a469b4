"""Judges: the LLM judge (any OpenAI-compatible endpoint, structured output) and the deterministic
rule-based judge used offline. Both return a ``JudgeResult``; the LLM judge raises ``JudgeError``
saying whether trying again may help (rate limit, timeout, server error, malformed answer) or not
(bad request, authentication).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.quality import rulesjudge
from ccanalytics.quality.rubric import DESCRIPTIONS, JUDGE_INSTRUCTIONS, CriterionScore, Rubric, answer_schema
from ccanalytics.quality.transcript import CallView, render

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


class JudgeError(Exception):
    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class JudgeResult:
    criteria: dict[str, CriterionScore]
    kind: str  # llm | rules
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: int | None = None


class Judge(Protocol):
    kind: str
    model: str

    def judge(self, call: CallView) -> JudgeResult: ...


class RulesJudge:
    """Deterministic scores from rule-based signals. Labelled judge_kind="rules", model "rules-v2"."""

    kind = "rules"
    model = rulesjudge.RULES_JUDGE_MODEL

    def judge(self, call: CallView) -> JudgeResult:
        return JudgeResult(rulesjudge.rules_judge(call), self.kind, self.model, latency_ms=0)


@dataclass(frozen=True)
class LLMJudgeConfig:
    base_url: str | None
    api_key: str
    model: str
    timeout_s: float = 60.0
    price_input_per_1m: float = 0.0  # USD, for the judge's own cost per call
    price_output_per_1m: float = 0.0
    max_output_tokens: int = 1500


class LLMJudge:
    kind = "llm"

    def __init__(self, config: LLMJudgeConfig, rubric: Rubric) -> None:
        from openai import OpenAI  # lazy: openai

        self.config = config
        self.model = config.model
        self.rubric = rubric
        # retries are ours (the pipeline backs off and records attempts), not the SDK's
        self.client = OpenAI(base_url=config.base_url, api_key=config.api_key, timeout=config.timeout_s, max_retries=0)

    def messages(self, call: CallView) -> list[ChatCompletionMessageParam]:
        criteria = "\n".join(f"- {name}: {text}" for name, text in DESCRIPTIONS.items())
        return [
            {"role": "system", "content": f"{JUDGE_INSTRUCTIONS}\n\nКритерии:\n{criteria}"},
            {"role": "user", "content": render(call)},
        ]

    def judge(self, call: CallView) -> JudgeResult:
        import openai  # lazy: openai

        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=self.messages(call),
                temperature=0,
                max_tokens=self.config.max_output_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "call_quality", "strict": True, "schema": answer_schema()},
                },
            )
        except openai.RateLimitError as exc:
            raise JudgeError("rate limited (429)", retryable=True, retry_after=_retry_after(exc)) from exc
        except openai.APITimeoutError as exc:
            raise JudgeError(f"timeout after {self.config.timeout_s:g} s", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise JudgeError(f"connection failed: {exc}", retryable=True) from exc
        except openai.InternalServerError as exc:
            raise JudgeError(f"server error {exc.status_code}", retryable=True, retry_after=_retry_after(exc)) from exc
        except openai.APIStatusError as exc:
            raise JudgeError(f"refused: HTTP {exc.status_code}: {_message(exc)}", retryable=False) from exc
        except openai.APIResponseValidationError as exc:
            raise JudgeError(f"malformed response: {exc}", retryable=True) from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        if not response.choices:
            raise JudgeError("answer has no choices", retryable=True)
        choice = response.choices[0]
        if choice.finish_reason == "length":
            raise JudgeError("answer truncated (finish_reason=length)", retryable=True)
        criteria = parse_answer(choice.message.content, {t.number for t in call.turns})
        usage = response.usage
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        cost = None
        if prompt is not None and completion is not None:
            cost = round(
                prompt * self.config.price_input_per_1m / 1e6 + completion * self.config.price_output_per_1m / 1e6, 8
            )
        return JudgeResult(criteria, self.kind, response.model or self.model, prompt, completion, cost, latency_ms)


def _retry_after(exc: Any) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])[:200]
    return str(exc)[:200]


def parse_answer(content: str | None, turn_numbers: set[int]) -> dict[str, CriterionScore]:
    """Validate the judge's JSON strictly; evidence pointing at turns that do not exist is dropped."""
    if not content:
        raise JudgeError("empty answer", retryable=True)
    try:
        data = json.loads(content)
    except ValueError as exc:  # JSONDecodeError, or an integer longer than Python converts
        where = f"{exc.msg} at {exc.pos}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise JudgeError(f"answer is not JSON ({where})", retryable=True) from None
    crit = data.get("criteria") if isinstance(data, dict) else None
    if not isinstance(crit, dict):
        raise JudgeError("answer has no 'criteria' object", retryable=True)
    missing = [c for c in CRITERIA if c not in crit]
    if missing:
        raise JudgeError(f"answer lacks criteria: {', '.join(missing)}", retryable=True)
    out = {}
    for name in CRITERIA:
        item = crit[name]
        if not isinstance(item, dict):
            raise JudgeError(f"criterion {name} is not an object", retryable=True)
        score, applicable, reason = item.get("score"), item.get("applicable"), item.get("reason")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise JudgeError(f"criterion {name}: score {score!r} is not in [0, 1]", retryable=True)
        if not isinstance(applicable, bool):
            raise JudgeError(f"criterion {name}: applicable must be true or false", retryable=True)
        if not isinstance(reason, str):
            raise JudgeError(f"criterion {name}: reason must be a string", retryable=True)
        evidence = item.get("evidence") or []
        if not isinstance(evidence, list):
            raise JudgeError(f"criterion {name}: evidence must be a list of turn numbers", retryable=True)
        turns = tuple(e for e in evidence if isinstance(e, int) and not isinstance(e, bool) and e in turn_numbers)
        out[name] = CriterionScore(float(score), applicable, reason.strip()[:300], turns)
    return out
