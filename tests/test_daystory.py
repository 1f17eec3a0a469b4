"""The story of a day as a pure function: facts of a day and of its normal days in, findings out."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta

from ccanalytics.core import labels
from ccanalytics.reports.daystory import changes, judge_tile, tell
from ccanalytics.reports.storymodel import DayFacts, Group, ToolFailure

DAY = date(2026, 11, 18)  # a Wednesday


def normal(day: date, **extra) -> DayFacts:
    """A normal Wednesday: 100 calls, 20 transferred, 30 orders."""
    values = dict(
        day=day,
        calls=100,
        transferred=20,
        orders=30,
        fittings=15,
        quality=0.85,
        response_p95_ms=2000.0,
        cost_per_call=0.10,
        cost_per_resolved=0.125,
        cost_components={"stt": 0.03, "llm": 0.06, "tts": 0.01},
        transfer_reasons={"customer_request": 10, "cannot_help": 6, "complex_question": 4},
        scenarios={"order_status": Group(20, 4), "tire_search": Group(50, 10), "consultation": Group(30, 6)},
        hours={h: Group(10, 2, 0.85, 1900.0) for h in range(9, 19)},
        prompt_versions={"tire_agent@v1": Group(100, 20, 0.85)},
        tool_failures=(ToolFailure("search_tires", "timeout", None, 1, 1),),
    )
    values.update(extra)
    return DayFacts(**values)


WEEKS = [normal(DAY - timedelta(days=7 * w)) for w in range(1, 5)]


def outage() -> DayFacts:
    """The order service down 08:30–20:30: 45 calls hit it and go to an operator, orders collapse."""
    return normal(
        DAY,
        calls=110,
        transferred=60,
        orders=3,
        quality=0.74,
        cost_per_call=0.088,
        cost_per_resolved=0.19,
        transfer_reasons={"cannot_help": 48, "customer_request": 10, "complex_question": 2},
        scenarios={"order_status": Group(40, 35), "tire_search": Group(45, 15), "consultation": Group(25, 10)},
        tool_failures=(
            ToolFailure(
                "get_order_status", "upstream_unavailable", 503, 30, 30, time(8, 41), time(20, 12),
                {"order_status": 30}, ("c1", "c2"), 2100.0,
            ),
            ToolFailure(
                "check_availability", "upstream_unavailable", 503, 15, 15, time(8, 35), time(19, 57),
                {"tire_search": 15}, ("c3",), 1900.0,
            ),
            ToolFailure("search_tires", "timeout", None, 1, 1),
        ),
    )  # fmt: skip


def test_the_outage_is_one_finding_with_its_cause_size_and_action():
    story = tell(outage(), WEEKS, scenario_labels=labels.SCENARIO_CODES, reason_labels=labels.TRANSFER_REASONS)
    assert story.reference == "медиана 4 предыдущих сред"
    first = story.findings[0]
    assert first.cause is not None and first.cause.kind == "tool"
    # the changes the outage explains are told together: transfers up, orders down, quality down
    keys = [c.key for c in first.changes]
    assert keys[0] == "transferred_pct" and {"orders", "quality", "cost_per_resolved"} <= set(keys)
    text = first.text()
    assert "«статус заказа» (30), «проверка наличия» (15)" in text
    assert "«сервис недоступен, код 503» с 08:35 до 20:12" in text
    assert "45 звонков наткнулись на сбой (41 % звонков дня), 45 из них переведены на оператора" in text
    assert "«бот не смог помочь» — 48" in text
    assert "заказы: 3 вместо обычных 30 (−90 %)" in text
    assert "Что делать: сообщить команде Store API" in text
    assert first.cause.filters == {"transferred": "yes", "scenario": "order_status"}
    assert first.cause.examples == ("c1", "c2", "c3")
    # the usual single timeout is no incident, and nothing else stands out
    assert len(story.findings) == 1


def test_a_normal_day_is_told_in_one_line():
    story = tell(normal(DAY, calls=104, transferred=22, orders=28), WEEKS)
    assert story.quiet and story.findings == ()
    assert story.lines() == ["Спокойный день: все показатели в пределах обычного (медиана 4 предыдущих сред)."]


def test_without_history_the_story_says_there_is_nothing_to_compare_with():
    story = tell(outage(), [])
    assert story.lines() == ["Сравнить не с чем: в предыдущие дни звонков нет."]


def test_a_young_installation_compares_with_the_days_before():
    days = [normal(DAY - timedelta(days=i)) for i in (1, 2, 3)]
    story = tell(outage(), days, same_weekday=False)
    assert story.reference == "медиана 3 предыдущих дней"
    assert story.findings[0].cause.kind == "tool"


def test_cheaper_because_nothing_was_sold_is_not_green():
    found = changes(outage(), WEEKS)
    # the cost per call fell (−12 %: below the threshold, so no finding of its own), yet the tile is not good
    tone, why = judge_tile("avg_cost_per_call_usd", "good", found)
    assert tone == "bad" and why.startswith("дешевле, потому что меньше сделано: ")
    assert "заказы: 3 вместо обычных 30" in why
    # a real saving with orders and resolution as usual stays good
    assert judge_tile("avg_cost_per_call_usd", "good", changes(normal(DAY, cost_per_call=0.07), WEEKS)) == (
        "good",
        None,
    )
    assert judge_tile("orders_created", "bad", found) == ("bad", None)  # other tiles as they are


def test_a_cost_spike_names_the_component():
    day = normal(
        DAY, cost_per_call=0.25, cost_per_resolved=0.31, cost_components={"stt": 0.03, "llm": 0.21, "tts": 0.01}
    )
    story = tell(day, WEEKS, cost_labels=labels.COST_COMPONENTS)
    (f,) = story.findings
    assert [c.key for c in f.changes] == ["cost_per_call", "cost_per_resolved"]
    assert f.cause.kind == "cost_component"
    assert "статья «LLM»: $0,2100 на звонок вместо обычных $0,0600. +$15,00 за день" in f.text()


def test_slow_hours_are_a_range_and_a_slow_day_is_not():
    hours = {h: Group(10, 2, 0.85, 1900.0) for h in range(9, 19)}
    hours[11] = Group(10, 2, 0.8, 6000.0)
    hours[12] = Group(10, 2, 0.8, 5500.0)
    story = tell(normal(DAY, response_p95_ms=3500.0, hours=hours), WEEKS)
    (f,) = story.findings
    assert f.cause.kind == "hours"
    assert "медленные ответы с 11:00 до 13:00 (p95 до 6\u202f000 мс при бюджете 2\u202f000 мс)" in f.text()
    everywhere = {h: Group(10, 2, 0.85, 3500.0 + (h % 2) * 10 if h % 3 else 1500.0) for h in range(9, 19)}
    story = tell(normal(DAY, response_p95_ms=3500.0, hours=everywhere), WEEKS)
    assert story.findings[0].cause is None  # scattered over the day: no hour range to blame
    assert story.findings[0].text().endswith("Причина в данных не видна: прочитайте звонки дня.")


def test_a_new_prompt_version_explains_fewer_transfers():
    day = normal(
        DAY,
        transferred=10,
        prompt_versions={"tire_agent@v1": Group(50, 8, 0.85), "tire_agent@v2": Group(50, 2, 0.88)},
    )
    story = tell(day, WEEKS)
    (f,) = story.findings
    assert f.bad is False and f.cause.kind == "prompt_version"
    assert "версия промпта «tire_agent@v2» ведёт 50 % звонков (обычно 0 %): переводов на ней 4 % против 16 %" in (
        f.text()
    )
    assert f.cause.filters == {"prompt_version": "tire_agent@v2"}


def test_at_most_three_findings_largest_first():
    day = replace(
        outage(),
        response_p95_ms=4000.0,
        cost_per_call=0.3,
        cost_components={"stt": 0.03, "llm": 0.26, "tts": 0.01},
        hours={**normal(DAY).hours, 14: Group(10, 5, 0.7, 9000.0)},
    )
    story = tell(day, WEEKS, cost_labels=labels.COST_COMPONENTS)
    assert 1 < len(story.findings) <= 3
    scores = [f.headline.score for f in story.findings]
    assert scores == sorted(scores, reverse=True)
    told = [c.key for f in story.findings for c in f.changes]
    assert len(told) == len(set(told))  # every change told once
    assert len(story.lines()) == len(story.findings)
