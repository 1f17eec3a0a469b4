"""The problem-call procedure's library: finding and flagging problem calls, grouping them into
patterns with a suggested cause, recording decisions; and the escaped HTML the reports are made of."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call, turn

from ccanalytics.analytics import metrics
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops.logs import JsonFormatter
from ccanalytics.reports import callview, problemcalls
from ccanalytics.reports.daily import Headline
from ccanalytics.reports.htmlblocks import link, table, usd

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv


def _quick(t0: datetime) -> list[dict]:
    """A short dialogue whose replies come 1 s after the customer stops speaking."""
    return [
        turn("customer", "Потрібні шини 205/55 R16", t0 + timedelta(seconds=2), duration_ms=2000, stt_confidence=0.95),
        turn(
            "bot",
            "Зараз підберу варіанти.",
            t0 + timedelta(seconds=5),
            duration_ms=2000,
            llm_latency_ms=600,
            tts_latency_ms=200,
        ),
        turn("customer", "Дякую", t0 + timedelta(seconds=8), duration_ms=1000, stt_confidence=0.97),
        turn(
            "bot", "Гарного дня!", t0 + timedelta(seconds=10), duration_ms=1500, llm_latency_ms=500, tts_latency_ms=150
        ),
    ]


def _tool_error_call() -> dict:
    t0 = DAY + timedelta(minutes=5)
    return make_call(
        started_at=t0,
        scenario="order_status",
        order_created=None,
        turns=[
            turn("customer", "Де моє замовлення 204518?", t0 + timedelta(seconds=3), stt_confidence=0.95),
            turn(
                "bot",
                "Зараз перевірю.",
                t0 + timedelta(seconds=6),
                tool_calls=[
                    {
                        "name": "get_order_status",
                        "args": {"order_id": "ORD-204518"},
                        "result": {"error": "timeout"},
                        "duration_ms": 5000,
                        "success": False,
                    }
                ],
            ),
            turn("bot", "Вибачте, сервіс недоступний.", t0 + timedelta(seconds=12)),
        ],
    )


@pytest.fixture
def problem_day(engine):
    calls = {
        "fine": make_call(started_at=DAY, turns=_quick(DAY)),
        "tool": _tool_error_call(),
        "transfer": make_call(
            started_at=DAY + timedelta(minutes=10),
            turns=_quick(DAY + timedelta(minutes=10)),
            scenario="consultation",
            transferred_to_operator=True,
            transfer_reason="complex_question",
            order_created=None,
        ),
        "asked": make_call(
            started_at=DAY + timedelta(minutes=15),
            turns=_quick(DAY + timedelta(minutes=15)),
            transferred_to_operator=True,
            transfer_reason="customer_request",
        ),
        "low": make_call(
            started_at=DAY + timedelta(minutes=20),
            turns=_quick(DAY + timedelta(minutes=20)),
            scenario="fitting_booking",
        ),
    }
    ingest_records(engine, list(calls.values()))
    metrics.compute_daily_stats(engine, DAY.date(), DAY.date())
    details = {
        "overall": 0.3,
        "auto_failed": False,
        "criteria": {
            "bot_confirmed_before_action": {
                "score": 0.0,
                "applicable": True,
                "reason": "не підтвердив",
                "evidence": [3],
            },
            "bot_greeted_properly": {"score": 1.0, "applicable": True, "reason": "ok", "evidence": [1]},
        },
    }
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET quality_score = 0.3, quality_details = CAST(:d AS jsonb) WHERE id = :id"),
            {"d": json.dumps(details), "id": calls["low"]["call_id"]},
        )
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.95 WHERE id <> :id"), {"id": calls["low"]["call_id"]})
    return {k: v["call_id"] for k, v in calls.items()}


def test_find_flags_each_problem_and_skips_normal_calls(engine, problem_day):
    found = {p["call_id"]: p for p in problemcalls.find(engine, "2026-11-20", "2026-11-20")}
    assert set(found) == {problem_day["tool"], problem_day["transfer"], problem_day["low"]}
    assert found[problem_day["tool"]]["flags"] == ["tool_errors"]
    assert found[problem_day["transfer"]]["flags"] == ["transfer"]
    assert found[problem_day["low"]]["main"] == "low_score"
    assert found[problem_day["low"]]["failed_criteria"] == ["bot_confirmed_before_action"]
    # a customer who asked for an operator is not a problem; without transfers only two are left
    fewer = problemcalls.find(
        engine, "2026-11-20", "2026-11-20", thresholds=problemcalls.Thresholds(include_transfers=False)
    )
    assert {p["call_id"] for p in fewer} == {problem_day["tool"], problem_day["low"]}


def test_patterns_suggest_a_cause_from_the_signals(engine, problem_day):
    found = problemcalls.find(engine, "2026-11-20", "2026-11-20")
    by_key = {p.key: p for p in problemcalls.patterns(found)}
    assert set(by_key) == {"tool_errors · order_status", "transfer · consultation", "low_score · fitting_booking"}
    tool = by_key["tool_errors · order_status"]
    assert (tool.suggested_cause, tool.suggested_action) == ("tool", "escalation")
    assert tool.examples == [problem_day["tool"]] and tool.share == pytest.approx(1 / 3, abs=1e-4)
    assert by_key["transfer · consultation"].suggested_cause == "knowledge"  # complex questions go to operators
    low = by_key["low_score · fitting_booking"]
    assert (low.suggested_cause, low.suggested_action) == ("prompt", "prompt_edit")
    assert "Подтверждение перед действием" in low.why


def test_record_a_decision_then_it_shows_in_history(engine, problem_day):
    found = problemcalls.patterns(problemcalls.find(engine, "2026-11-20", "2026-11-20"))
    action_id = problemcalls.record(
        engine,
        period_from="2026-11-20",
        period_to="2026-11-20",
        pattern="tool_errors · order_status",
        cause="tool",
        action="escalation",
        call_ids=[problem_day["tool"]],
        note="Store API 504",
        by="olena",
    )
    problemcalls.set_status(engine, action_id, "done", by="olena")
    history = {p.key: p.previous_actions for p in problemcalls.with_history(engine, found)}
    [done] = history["tool_errors · order_status"]
    assert (done["action"], done["status"], done["created_by"]) == ("escalation", "done", "olena")
    assert history["transfer · consultation"] == []
    with pytest.raises(InvalidArgument, match="cause must be one of"):
        problemcalls.record(
            engine,
            period_from="2026-11-20",
            period_to="2026-11-20",
            pattern="x",
            cause="weather",
            action="none",
            by="olena",
        )
    with pytest.raises(InvalidArgument, match="call ids"):
        problemcalls.record(
            engine,
            period_from="2026-11-20",
            period_to="2026-11-20",
            pattern="x",
            cause="other",
            action="none",
            call_ids=["not-a-uuid"],
            by="olena",
        )
    with pytest.raises(InvalidArgument, match="before"):
        problemcalls.record(
            engine,
            period_from="2026-11-21",
            period_to="2026-11-20",
            pattern="x",
            cause="other",
            action="none",
            by="olena",
        )
    with pytest.raises(NotFound):
        problemcalls.set_status(engine, 999_999, "done", by="olena")
    assert len(problemcalls.actions(engine)) == 1  # the refused decisions wrote nothing


def test_call_view_escapes_the_transcript_and_masks_phones(engine):
    t0 = DAY
    call = make_call(
        started_at=t0,
        turns=[
            turn("customer", "<script>alert(1)</script> мій номер +380 67 123 45 67", t0 + timedelta(seconds=2)),
            turn(
                "bot",
                "Дякую & до побачення",
                t0 + timedelta(seconds=5),
                tool_calls=[
                    {
                        "name": "create_order_draft",
                        "args": {"items": [{"sku": "NOK-1", "quantity": 4}], "customer_name": "Мар'яна Коваль"},
                        "result": {"order_id": "ORD-1", "recipient": "Мар'яна Коваль", "phone": "+380671112233"},
                        "duration_ms": 300,
                        "success": True,
                    }
                ],
            ),
        ],
    )
    ingest_records(engine, [call])
    html = callview.show_call(engine, call["call_id"], admin_url="https://admin.example")._repr_html_()
    # reports leave the admin: no customer's name or phone in tool arguments and results either
    assert "Коваль" not in html and "112233" not in html and "М***" in html and "NOK-1" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "123 45 67" not in html and "+380671234567" not in html
    assert "Дякую &amp; до побачення" in html
    assert f'href="https://admin.example/calls/{call["call_id"]}"' in html
    unmasked = callview.show_call(engine, call["call_id"], mask_phones=False)._repr_html_()
    assert "+380 67 123 45 67" in unmasked and "Коваль" in unmasked  # inside the admin perimeter only


def test_html_table_escapes_values_but_keeps_links():
    html = table(
        [{"a": "<b>x</b>", "b": link("https://x.example/?a=1&b=2", "<открыть>"), "c": -0.5}],
        [("a", "A"), ("b", "B"), ("c", "C", usd)],
    ).html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'href="https://x.example/?a=1&amp;b=2"' in html and "&lt;открыть&gt;" in html
    assert "−$0,5000" in html


def test_headline_changes_and_tones():
    quality = Headline("avg_quality_score", "Качество", "score", 0.82, 0.80, 0.85, True)
    assert quality.change(quality.prev) == pytest.approx(0.02)
    assert quality.tone(quality.prev) == "good" and quality.tone(quality.week) == "bad"
    assert quality.delta_text(quality.week, "к 7 дн.") == "к 7 дн.: −0,03"
    cost = Headline("avg_cost_per_call_usd", "Стоимость", "usd", 0.09, 0.10, None, False)
    assert cost.change(cost.prev) == pytest.approx(-10.0)
    assert cost.tone(cost.prev) == "good" and cost.delta_text(cost.week, "к 7 дн.") == "к 7 дн.: нет данных"
    calls = Headline("total_calls", "Звонков", "count", 2000, 1900, 1950.5, None)
    assert calls.formatted() == "2\u202f000" and calls.tone(calls.prev) == "neutral"


def test_json_log_lines_carry_the_context():
    record = logging.LogRecord("ccanalytics.ops.jobs", logging.INFO, __file__, 1, "job %s done", ("score",), None)
    record.job, record.outcome = "score", {"scored": 3}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job score done" and line["level"] == "info"
    assert line["job"] == "score" and line["outcome"] == {"scored": 3} and line["ts"].endswith("+00:00")
