"""Rule-based signals of a call, computed without an LLM and stored beside every score, and the
deterministic rule-based judge used when no LLM is configured (labelled judge_kind="rules").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from .. import signals
from .rubric import CriterionScore
from .transcript import CallView

RULES_JUDGE_MODEL = "rules-v1"
CONCISE_CHARS = 200  # a bot turn up to this long is concise for voice
VERBOSE_CHARS = 450  # from this long it is not
RESPONSE_BUDGET_MS = 2000.0

NEGATIVE = re.compile(
    r"жах|погано|дурн|ідіот|ідиот|знущ|набрид|скільки можна|безглузд|кошмар|обман|ненормальн|тупий|бред|маячня"
    r"|покличте оператора|дайте оператора|з людиною|живу людину|с человеком",
    re.IGNORECASE,
)
THANKS = re.compile(r"дякую|спасибі|спасибо|чудово|супер|відмінно|дуже допомогли", re.IGNORECASE)
CONFIRM = re.compile(
    r"підтвердж|підтверд|все вірно|усе вірно|правильно\?|оформ\w*\?|записати вас|записую вас\?|оформлюю\?|так\?$"
    r"|згодні|погоджуєте",
    re.IGNORECASE,
)
ACTION_TOOLS = ("create_order_draft", "confirm_order", "book_fitting", "update_order_delivery", "cancel_fitting")
SCENARIO_TOOLS: dict[str, tuple[str, ...]] = {
    "tire_search": ("search_tires", "get_vehicle_tire_sizes"),
    "availability_check": ("check_availability", "search_tires"),
    "order_status": ("get_order_status",),
    "order_creation": ("create_order_draft", "confirm_order"),
    "fitting_booking": ("get_fitting_slots", "book_fitting", "get_fitting_stations"),
    "consultation": ("search_knowledge_base",),
}


@dataclass(frozen=True)
class Signals:
    greeted: bool
    bot_turns: int
    customer_turns: int
    mean_bot_chars: float
    max_bot_chars: int
    reasks: int
    repeated_bot_questions: int
    low_confidence_turns: int
    tool_calls: int
    tool_errors: int
    rejected_tool_calls: int
    suspicious_tool_calls: int
    transferred: bool
    long_pauses: int
    response_p95_ms: float | None
    latency_over_budget: bool
    negative_turns: int
    thanked_at_end: bool
    confirmed_before_action: bool | None  # None: no action taken

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def compute_signals(call: CallView) -> Signals:
    bot = [t for t in call.turns if t.speaker == "bot"]
    customer = [t for t in call.turns if t.speaker == "customer"]
    lengths = [len(t.text) for t in bot]
    questions = [_norm(t.text) for t in bot if t.text.rstrip().endswith("?")]
    tools = [tool for t in call.turns for tool in t.tools]
    # confirmation: the bot turn before the first action asks to confirm, or the action's turn does
    confirmed: bool | None = None
    for i, t in enumerate(call.turns):
        if any(tool.name in ACTION_TOOLS for tool in t.tools):
            earlier = [x for x in call.turns[:i] if x.speaker == "bot"][-2:]
            confirmed = any(CONFIRM.search(x.text) for x in earlier)
            break
    last_customer = customer[-2:] if customer else []
    m = call.metrics or {}
    p95 = m.get("response_p95_ms")
    return Signals(
        greeted=bool(bot) and signals.is_greeting(bot[0].text),
        bot_turns=len(bot),
        customer_turns=len(customer),
        mean_bot_chars=round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        max_bot_chars=max(lengths, default=0),
        reasks=sum(signals.is_reask(t.text) for t in bot),
        repeated_bot_questions=len(questions) - len(set(questions)),
        low_confidence_turns=sum(
            1 for t in customer if t.stt_confidence is not None and t.stt_confidence < signals.LOW_CONFIDENCE
        ),
        tool_calls=len(tools),
        tool_errors=sum(not tool.success for tool in tools),
        rejected_tool_calls=sum(signals.is_rejected(tool.success, tool.result) for tool in tools),
        suspicious_tool_calls=sum(signals.suspicious_args(tool.args) for tool in tools),
        transferred=call.transferred,
        long_pauses=int(m.get("long_pauses") or 0),
        response_p95_ms=p95,
        latency_over_budget=p95 is not None and p95 > RESPONSE_BUDGET_MS,
        negative_turns=sum(bool(NEGATIVE.search(t.text)) for t in customer),
        thanked_at_end=any(THANKS.search(t.text) for t in last_customer),
        confirmed_before_action=confirmed,
    )


def _ramp(value: float, good: float, bad: float) -> float:
    """1 up to ``good``, 0 from ``bad``, linear between."""
    return 1.0 - min(1.0, max(0.0, (value - good) / (bad - good)))


def _evidence(call: CallView, predicate) -> tuple[int, ...]:
    return tuple(t.number for t in call.turns if predicate(t))[:5]


def rules_judge(call: CallView, s: Signals | None = None) -> dict[str, CriterionScore]:
    """Deterministic scores for the 8 criteria from the signals (the offline judge)."""
    s = s or compute_signals(call)
    first_bot = next((t.number for t in call.turns if t.speaker == "bot"), None)
    out: dict[str, CriterionScore] = {}
    out["bot_greeted_properly"] = CriterionScore(
        1.0 if s.greeted else 0.0,
        s.bot_turns > 0,
        "Бот поздоровался" if s.greeted else "В первой реплике бота нет приветствия",
        (first_bot,) if first_bot else (),
    )
    misunderstand = s.reasks + s.repeated_bot_questions
    understood = max(0.0, 1.0 - 0.25 * misunderstand - (0.25 if call.transfer_reason == "cannot_help" else 0.0))
    out["bot_understood_intent"] = CriterionScore(
        round(understood, 2),
        s.customer_turns > 0,
        f"Переспросов: {s.reasks}, повторных вопросов: {s.repeated_bot_questions}"
        if misunderstand
        else "Запрос понят без переспросов",
        _evidence(call, lambda t: t.speaker == "bot" and signals.is_reask(t.text)),
    )
    expected = set()
    for part in (call.scenario or "").split("+"):
        expected.update(SCENARIO_TOOLS.get(part.strip(), ()))
    used = {tool.name for t in call.turns for tool in t.tools}
    tool_applicable = bool(expected) or bool(used)
    right = 1.0 if not expected or used & expected else 0.3
    tool_score = max(0.0, right - 0.2 * s.rejected_tool_calls - 0.5 * min(1, s.suspicious_tool_calls))
    out["bot_used_correct_tool"] = CriterionScore(
        round(tool_score, 2),
        tool_applicable,
        (f"Отклонённых вызовов: {s.rejected_tool_calls}" if s.rejected_tool_calls else "Инструменты выбраны верно")
        if right == 1.0
        else "Не вызван инструмент, нужный для сценария",
        _evidence(call, lambda t: any(not x.success for x in t.tools)),
    )
    failed_then_spoke = s.tool_errors - s.rejected_tool_calls
    out["bot_provided_accurate_info"] = CriterionScore(
        1.0 if failed_then_spoke <= 0 else 0.5,
        bool(used),
        "Ответы опираются на результаты инструментов"
        if failed_then_spoke <= 0
        else f"Ошибок инструментов: {failed_then_spoke}, ответ мог быть неточным",
        _evidence(call, lambda t: any(not x.success for x in t.tools)),
    )
    out["bot_confirmed_before_action"] = CriterionScore(
        1.0 if s.confirmed_before_action in (True, None) else 0.0,
        s.confirmed_before_action is not None,
        {True: "Детали подтверждены перед действием", False: "Действие без подтверждения клиента"}.get(
            s.confirmed_before_action, "Действий не было"
        ),
        _evidence(call, lambda t: any(x.name in ACTION_TOOLS for x in t.tools)),
    )
    # long on average, or one monologue: both are bad for voice
    concise = min(
        _ramp(s.mean_bot_chars, CONCISE_CHARS, VERBOSE_CHARS),
        _ramp(s.max_bot_chars, 2 * CONCISE_CHARS, 2 * VERBOSE_CHARS),
    )
    out["bot_was_concise"] = CriterionScore(
        round(concise, 2),
        s.bot_turns > 0,
        f"Средняя реплика бота {s.mean_bot_chars:.0f} символов, самая длинная {s.max_bot_chars}",
        _evidence(call, lambda t: t.speaker == "bot" and len(t.text) > CONCISE_CHARS),
    )
    out["call_resolved_without_human"] = CriterionScore(
        0.0 if s.transferred else 1.0,
        True,
        f"Переведён на оператора ({call.transfer_reason or 'причина не указана'})" if s.transferred else "Решено ботом",
        _evidence(call, lambda t: any(x.name == "transfer_to_operator" for x in t.tools)),
    )
    if s.negative_turns or call.transfer_reason == "negative_emotion":
        satisfied, why = 0.0, "Клиент раздражён или жалуется"
    elif s.thanked_at_end:
        satisfied, why = 1.0, "Клиент поблагодарил в конце"
    else:
        satisfied, why = 0.7, "Явных признаков недовольства нет"
    out["customer_seemed_satisfied"] = CriterionScore(
        satisfied,
        s.customer_turns > 0,
        why,
        _evidence(call, lambda t: t.speaker == "customer" and bool(NEGATIVE.search(t.text) or THANKS.search(t.text))),
    )
    return out
