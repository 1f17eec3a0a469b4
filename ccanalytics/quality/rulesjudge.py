"""The deterministic rule-based judge used when no LLM is configured (labelled judge_kind="rules"): the
8 criteria scored from the rule-based signals of ``ccanalytics.quality.rules``."""

from __future__ import annotations

from ccanalytics.analytics import signals
from ccanalytics.core import labels, rutext
from ccanalytics.quality.rubric import CriterionScore
from ccanalytics.quality.rules import (
    COMMITTING_TOOLS,
    CORRECTED,
    MONEY,
    NEGATIVE,
    SCENARIO_TOOLS,
    THANKS,
    Signals,
    compute_signals,
    unanswered_failures,
    ungrounded_amounts,
    wrong_arguments,
)
from ccanalytics.quality.transcript import CallView

RULES_JUDGE_MODEL = "rules-v2"
CONCISE_CHARS = 200  # a bot turn up to this long is concise for voice
VERBOSE_CHARS = 450  # from this long it is not
MONOLOGUE_CHARS = 600  # one bot turn this long is a monologue, however short the others
_CHARS = ("символ", "символа", "символов")
TOOL_WRONG = 0.3  # the scenario's tools were never called
REJECTED_PENALTY = 0.55  # a call refused for its arguments: the bot's arguments were wrong
SUSPICIOUS_PENALTY = 0.6  # a free item or a bulk order in the arguments
REASK_PENALTY = 0.2  # per re-ask
REPEAT_PENALTY = 0.3  # per question the bot asked again word for word  # per re-ask or repeated question
CORRECTED_PENALTY = 0.6  # the customer had to say the bot misunderstood


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
    understood = max(
        0.0,
        1.0
        - REASK_PENALTY * s.reasks
        - REPEAT_PENALTY * s.repeated_bot_questions
        - CORRECTED_PENALTY * min(1, s.corrections),
    )
    if s.corrections:
        why = f"Клиент поправлял бота ({s.corrections}), переспросов: {s.reasks}"
    elif misunderstand:
        why = f"Переспросов: {s.reasks}, повторных вопросов: {s.repeated_bot_questions}"
    else:
        why = "Запрос понят без переспросов"
    out["bot_understood_intent"] = CriterionScore(
        round(understood, 2),
        s.customer_turns > 0,
        why,
        _evidence(
            call,
            lambda t: (
                (t.speaker == "bot" and signals.is_reask(t.text))
                or (t.speaker == "customer" and bool(CORRECTED.search(t.text)))
            ),
        ),
    )
    expected: set[str] = set()
    for part in (call.scenario or "").split("+"):
        expected.update(SCENARIO_TOOLS.get(part.strip(), ()))
    used = {tool.name for t in call.turns for tool in t.tools} - {"transfer_to_operator"}
    # the scenario's tools were never called, yet the bot named a price: it answered without them
    unfounded = (
        bool(expected) and not used & expected and any(t.speaker == "bot" and MONEY.search(t.text) for t in call.turns)
    )
    tool_applicable = bool(used) or unfounded
    right = TOOL_WRONG if unfounded else 1.0
    wrong_args = wrong_arguments(call)
    tool_score = max(
        0.0,
        right
        - REJECTED_PENALTY * s.rejected_tool_calls
        - SUSPICIOUS_PENALTY * min(1, s.suspicious_tool_calls + len(wrong_args)),
    )
    out["bot_used_correct_tool"] = CriterionScore(
        round(tool_score, 2),
        tool_applicable,
        "Не вызван инструмент, нужный для сценария"
        if right < 1.0
        else f"Аргументы расходятся с разговором (реплики {', '.join(f'T{n}' for n in wrong_args)})"
        if wrong_args
        else f"Отклонённых вызовов: {s.rejected_tool_calls}"
        if s.rejected_tool_calls
        else "Инструменты выбраны верно",
        wrong_args or _evidence(call, lambda t: any(not x.success for x in t.tools)),
    )
    failed_then_spoke = s.tool_errors - s.rejected_tool_calls
    made_up = ungrounded_amounts(call)
    unanswered = unanswered_failures(call)
    if made_up:
        accurate, why = 0.0, f"Бот назвал сумму, которой нет в ответах инструментов (реплик: {len(made_up)})"
    elif unanswered:
        accurate, why = 0.3, "Инструмент не ответил, а бот продолжил без него и без перевода"
        made_up = unanswered
    elif failed_then_spoke > 0:
        accurate, why = 0.5, f"Ошибок инструментов: {failed_then_spoke}, ответ мог быть неточным"
    else:
        accurate, why = 1.0, "Ответы опираются на результаты инструментов"
    out["bot_provided_accurate_info"] = CriterionScore(
        accurate,
        bool(used) or bool(made_up),
        why,
        made_up or _evidence(call, lambda t: any(not x.success for x in t.tools)),
    )
    out["bot_confirmed_before_action"] = CriterionScore(
        1.0 if s.confirmed_before_action in (True, None) else 0.0,
        s.confirmed_before_action is not None,
        {
            True: "Детали подтверждены перед действием",
            False: "Действие без подтверждения клиента",
            None: "Действий не было",
        }[s.confirmed_before_action],
        _evidence(call, lambda t: any(x.name in COMMITTING_TOOLS for x in t.tools)),
    )
    # long on average, or one monologue: both are bad for voice
    concise = min(
        _ramp(s.mean_bot_chars, CONCISE_CHARS, VERBOSE_CHARS),
        _ramp(s.max_bot_chars, 2 * CONCISE_CHARS, MONOLOGUE_CHARS),
    )
    out["bot_was_concise"] = CriterionScore(
        round(concise, 2),
        s.bot_turns > 0,
        f"Средняя реплика бота {rutext.count(round(s.mean_bot_chars), *_CHARS)}, "
        f"самая длинная {rutext.num(s.max_bot_chars)}",
        _evidence(call, lambda t: t.speaker == "bot" and len(t.text) > CONCISE_CHARS),
    )
    out["call_resolved_without_human"] = CriterionScore(
        0.0 if s.transferred else 1.0,
        True,
        f"Переведён на оператора ({labels.reason(call.transfer_reason or 'unknown')})"
        if s.transferred
        else "Решено ботом",
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
