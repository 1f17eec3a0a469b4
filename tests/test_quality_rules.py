"""Rule-based signals, the offline judge, the rubric and the judge's input, on fixture transcripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.ops.telemetry import CRITERIA
from ccanalytics.quality import (
    CallView,
    CriterionScore,
    JudgeError,
    Rubric,
    ToolUse,
    TurnView,
    compute_signals,
    overall,
    parse_answer,
    render,
    rules_judge,
)

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def view(turns, *, scenario="tire_search + order_creation", transferred=False, reason=None, name=None, metrics=None):
    numbered = tuple(
        TurnView(i + 1, speaker, text, T0, conf, interrupted, tuple(tools))
        for i, (speaker, text, tools, conf, interrupted) in enumerate(
            (t + ((),) * (3 - len(t)) + (None, None))[:5] if len(t) < 5 else t for t in turns
        )
    )
    return CallView(
        "00000000-0000-4000-8000-000000000001",
        T0,
        scenario,
        transferred,
        reason,
        None,
        None,
        name,
        numbered,
        metrics or {},
    )


ORDER = ToolUse(
    "create_order_draft", {"items": [{"sku": "N1", "quantity": 4, "price": 4150}]}, {"order_id": "ORD-1"}, True
)
CONFIRM = ToolUse("confirm_order", {"order_id": "ORD-1"}, {"order_id": "ORD-1", "status": "confirmed"}, True)
SEARCH = ToolUse("search_tires", {"size": "205/55 R16"}, {"items": [{"brand": "Nokian", "price_uah": 4150}] * 5}, True)
REJECT = ToolUse("create_order_draft", {"items": [{"quantity": 99, "price": 0}]}, {"error": "validation_failed"}, False)

GOOD = [
    ("bot", "Добрий день! Інтернет-магазин шин, чим можу допомогти?"),
    ("customer", "Потрібні зимові шини 205/55 R16", (), 0.95),
    ("bot", "Є Nokian за 4150 гривень. Оформити чотири штуки, все вірно?", (SEARCH,)),
    ("customer", "Так, оформлюйте", (), 0.93),
    ("bot", "Замовлення оформлено.", (ORDER, CONFIRM)),
    ("customer", "Дякую!", (), 0.97),
]
BAD = [
    ("bot", "Слухаю."),
    ("customer", "Шини на Шкоду", (), 0.41),
    ("bot", "Перепрошую, не розчула. Повторіть, будь ласка?"),
    ("customer", "ШКОДА ОКТАВІЯ", (), 0.52),
    ("bot", "Перепрошую, не розчула. Повторіть, будь ласка?"),
    ("customer", "Це жах, скільки можна, дайте оператора", (), 0.9),
    ("bot", "Оформлюю. " + "Дуже довге пояснення про шини. " * 20, (REJECT, REJECT, CONFIRM)),
]


def test_signals_of_a_good_and_a_bad_call():
    good = compute_signals(view(GOOD, metrics={"response_p95_ms": 1400.0, "long_pauses": 0}))
    assert good.greeted and good.confirmed_before_action is True and good.thanked_at_end
    assert (good.reasks, good.tool_errors, good.negative_turns) == (0, 0, 0)
    assert good.latency_over_budget is False
    bad = compute_signals(
        view(BAD, transferred=True, reason="negative_emotion", metrics={"response_p95_ms": 2600.0, "long_pauses": 2})
    )
    assert not bad.greeted
    assert (bad.reasks, bad.repeated_bot_questions, bad.low_confidence_turns) == (2, 1, 2)
    assert (bad.tool_errors, bad.rejected_tool_calls, bad.suspicious_tool_calls) == (2, 2, 2)
    assert bad.confirmed_before_action is False
    assert bad.negative_turns == 1 and bad.latency_over_budget and bad.long_pauses == 2
    assert bad.max_bot_chars > 450


def test_rules_judge_scores_every_criterion_with_reasons_and_evidence():
    good = rules_judge(view(GOOD))
    bad = rules_judge(view(BAD, transferred=True, reason="negative_emotion"))
    assert set(good) == set(CRITERIA) == set(bad)
    assert all(c.score == 1.0 for c in good.values())
    assert bad["bot_greeted_properly"].score == 0 and bad["bot_greeted_properly"].evidence == (1,)
    assert bad["bot_understood_intent"].score == pytest.approx(0.3)  # 2 re-asks, 1 question asked again
    assert bad["bot_understood_intent"].evidence == (3, 5)
    assert bad["bot_confirmed_before_action"].score == 0 and bad["bot_confirmed_before_action"].applicable
    assert bad["call_resolved_without_human"].score == 0
    assert bad["customer_seemed_satisfied"].score == 0
    assert bad["bot_was_concise"].score < 1
    assert bad["bot_used_correct_tool"].score < 0.5
    assert all(c.reason for c in bad.values())
    no_action = rules_judge(view(GOOD[:2]))
    assert not no_action["bot_confirmed_before_action"].applicable


def test_overall_is_a_weighted_mean_over_applicable_criteria_with_auto_fail():
    crit = {c: CriterionScore(1.0, True, "") for c in CRITERIA}
    crit["bot_was_concise"] = CriterionScore(0.0, True, "")
    crit["bot_confirmed_before_action"] = CriterionScore(0.0, False, "")  # not applicable: ignored
    rubric = Rubric()
    total = sum(w for c, w in rubric.weights.items() if c != "bot_confirmed_before_action")
    expected = (total - rubric.weights["bot_was_concise"]) / total
    result = overall(crit, rubric)
    assert result.score == pytest.approx(round(expected, 4))
    assert not result.needs_review
    strict = Rubric(auto_fail=("bot_was_concise",))
    failed = overall(crit, strict)
    assert (failed.score, failed.auto_failed, failed.auto_fail_reasons) == (0.0, True, ("bot_was_concise",))
    assert failed.review_reasons == ("auto_fail", "low_score")
    assert overall({}, rubric).score == 1.0


def test_rubric_validation_and_version():
    assert Rubric().version == Rubric().version and Rubric().version.startswith("r1-")
    assert Rubric(auto_fail=("bot_was_concise",)).version != Rubric().version
    for bad in (
        {"weights": {"nonsense": 1}},
        {"weights": {c: 0 for c in CRITERIA}},
        {"auto_fail": ("x",)},
        {"review_below": 2},
    ):
        with pytest.raises(InvalidArgument):
            Rubric(**bad)


def test_parse_answer_is_strict():
    good = {"criteria": {c: {"score": 0.5, "applicable": True, "reason": "ok", "evidence": [1, 7]} for c in CRITERIA}}
    parsed = parse_answer(json.dumps(good), {1, 2})
    assert parsed["bot_was_concise"].evidence == (1,)
    for content, message in (
        ("", "empty answer"),
        ("{", "answer is not JSON"),
        ("[]", "answer has no 'criteria' object"),
        (json.dumps({"criteria": {}}), "answer lacks criteria"),
    ):
        with pytest.raises(JudgeError, match=message):
            parse_answer(content, {1})
    for field, value in (("score", 1.5), ("score", True), ("applicable", "yes"), ("reason", 3), ("evidence", "1")):
        broken = json.loads(json.dumps(good))
        broken["criteria"]["bot_was_concise"][field] = value
        with pytest.raises(JudgeError, match="bot_was_concise"):
            parse_answer(json.dumps(broken), {1})


def test_transcript_is_compact_faithful_and_masked():
    call = view(
        [
            ("bot", "Добрий день!"),
            ("customer", "Я Тарас Шевченко, мій номер +380671234567, передзвоніть на 067-123-45-67", (), 0.4, None),
            ("bot", "Тарасе, знайшла варіанти.", (SEARCH, REJECT), None, True),
        ],
        name="Тарас Шевченко",
        transferred=True,
        reason="cannot_help",
    )
    text = render(call)
    assert "Тарас" not in text and "Шевченко" not in text and "[ИМЯ]" in text
    assert "671234567" not in text and "123-45-67" not in text
    assert "T2 Клиент [STT 0.40]:" in text and "T3 Бот [перебит]:" in text
    assert "→ search_tires(size=205/55 R16) ✓ 5 шт.:" in text
    assert "→ create_order_draft(items=[{quantity: 99, price: 0}]) ✗ ошибка: validation_failed" in text
    assert text.splitlines()[0] == "Сценарий: tire_search + order_creation; Перевод на оператора: да (cannot_help)"
    naive = json.dumps({"turns": [t.__dict__ for t in call.turns]}, default=str, ensure_ascii=False)
    assert len(text) < 0.6 * len(naive)
