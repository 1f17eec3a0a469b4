"""Alerts evaluated from the database: every rule fires on crafted calls and stays silent on normal
ones, at a fake clock; state (fire once, quiet in cooldown, repeat, resolve); the outbox delivers to a
real local Telegram Bot API server and a real SMTP server exactly once, through outages."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from factories import make_call, turn, write_as_processor
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, channel_settings

from ccanalytics import quality
from ccanalytics.alerts import engine as alerts
from ccanalytics.alerts import outbox as alert_outbox
from ccanalytics.alerts.emailchannel import EmailChannel
from ccanalytics.alerts.engine import AlertConfig
from ccanalytics.alerts.notify import channels_from_settings
from ccanalytics.alerts.rulemodel import Thresholds, calls_acc, calls_gen, calls_loc
from ccanalytics.alerts.rules import RESOLUTIONS, RULES, RULES_BY_NAME, resolution
from ccanalytics.alerts.telegramchannel import TelegramChannel
from ccanalytics.analytics import metrics
from ccanalytics.core import rutext
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError
from ccanalytics.ingest.load import ingest_records

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 14:00 Kyiv
ADMIN = "https://admin.shop.example"
ONE_SCENARIO = {"scenario_min_calls": 1000}  # tests of the hourly transfer rate: keep the per-scenario rule quiet
SHOP = "сеть «Інтернет-магазин шин»"  # the test database's tenant (factories.TENANT) in alert titles


def make_settings(tg: FakeTelegram | None = None, smtp: SMTPServer | None = None, **extra) -> Settings:
    values = channel_settings(tg, smtp, admin_base_url=ADMIN, timezone="Europe/Kyiv")
    if smtp is not None:
        values["email_to"] = ["ops@shop.example"]
    return Settings(**(values | extra))


def call(start: datetime, *, tools=(), seconds: int = 60, **fields) -> dict:
    """A short call: the customer asks, the bot answers (with ``tools``)."""
    turns = [
        turn("customer", "Потрібні шини 205/55 R16", start + timedelta(seconds=5), duration_ms=1500),
        turn("bot", "Хвилинку, перевіряю.", start + timedelta(seconds=8), tool_calls=list(tools)),
    ]
    return make_call(started_at=start, seconds=seconds, turns=turns, **fields)


def transferred(start: datetime, **fields) -> dict:
    return call(start, transferred_to_operator=True, transfer_reason="cannot_help", **fields)


def rejected(n: int) -> list[dict]:
    return [
        {
            "name": "create_order_draft",
            "args": {"items": []},
            "result": {"error": "validation failed"},
            "success": False,
        }
    ] * n


def firing(engine, rule: str, now: datetime = NOW, settings: Settings | None = None):
    cfg = AlertConfig.from_settings(settings or make_settings())
    return [f for f in alerts.evaluate(engine, cfg, now) if f.rule == rule]


def events(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT rule, key, event, message, channels FROM alert_events ORDER BY id"))
        return [dict(r._mapping) for r in rows]


def outbox(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM alert_outbox ORDER BY id"))
        return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------------------------------ rules
def test_high_transfer_rate(engine):
    ingest_records(engine, [transferred(NOW - timedelta(minutes=50 - i)) for i in range(7)])
    ingest_records(engine, [call(NOW - timedelta(minutes=40 - i)) for i in range(5)])
    [f] = firing(engine, "high_transfer_rate")
    assert f.key == "shop" and f.tenant == "shop" and f.value == pytest.approx(7 / 12) and f.threshold == 0.5
    assert f.text.startswith("Сеть «Інтернет-магазин шин». За 60 мин (20.11 13:00–14:00) оператору переведено")
    assert "переведено 7 из 12 звонков (58,3 %)" in f.text and "бот не смог помочь" in f.text
    assert f.label == "сеть «Інтернет-магазин шин»"
    assert f.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop&transferred=yes"
    # an hour later the calls are out of the window; a stricter threshold from settings is not reached
    assert firing(engine, "high_transfer_rate", NOW + timedelta(hours=1)) == []
    assert firing(engine, "high_transfer_rate", settings=make_settings(alert_thresholds={"transfer_rate": 0.6})) == []


def test_high_transfer_rate_needs_enough_calls(engine):
    ingest_records(engine, [transferred(NOW - timedelta(minutes=30 - i)) for i in range(9)])
    assert firing(engine, "high_transfer_rate") == []
    s = make_settings(alert_thresholds={"transfer_min_calls": 5})
    assert len(firing(engine, "high_transfer_rate", settings=s)) == 1


def test_tool_errors_count_failures_but_not_rejections(engine):
    broken = [
        {"name": "search_tires", "args": {"size": "205/55 R16"}, "result": {"error": "timeout"}, "success": False}
    ]
    ingest_records(engine, [call(NOW - timedelta(minutes=8), tools=broken * 3) for _ in range(2)])
    ingest_records(engine, [call(NOW - timedelta(minutes=7), tools=rejected(3))])
    [f] = firing(engine, "tool_errors")
    assert f.value == 6 and "6 ошибок вызовов инструментов в 2 звонках: search_tires ×6" in f.text
    ingest_records(engine, [call(NOW - timedelta(minutes=30), tools=broken * 9)])  # outside the 10 minutes
    assert firing(engine, "tool_errors")[0].value == 6
    assert firing(engine, "tool_errors", settings=make_settings(alert_thresholds={"tool_errors": 6})) == []


def latency_call(start: datetime, response_s: float) -> dict:
    turns = []
    for i in range(4):
        at = start + timedelta(seconds=12 * i + 1)
        turns.append(turn("customer", "Так", at, duration_ms=1000, stt_latency_ms=300))
        turns.append(
            turn("bot", "Добре", at + timedelta(seconds=1 + response_s), llm_latency_ms=900, tts_latency_ms=200)
        )
    return make_call(started_at=start, seconds=60, turns=turns)


def test_response_latency_p95(engine):
    ingest_records(engine, [latency_call(NOW - timedelta(minutes=10 + i), 1.0) for i in range(5)])
    alerts.derive_recent_metrics(engine, NOW)
    assert firing(engine, "response_latency") == []  # 20 replies at 1 s
    ingest_records(engine, [latency_call(NOW - timedelta(minutes=5 + i), 4.0) for i in range(3)])
    alerts.derive_recent_metrics(engine, NOW)
    [f] = firing(engine, "response_latency")
    assert f.value == pytest.approx(4.0) and "32 ответа в 8 звонках" in f.text and "STT 0,3 с" in f.text
    assert f.key == "shop" and f.label == SHOP and "порог — больше 3 с" in f.text
    assert f.text.startswith("Сеть «Інтернет-магазин шин». p95 задержки ответа бота 4 с за 15 мин")
    assert f.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop"
    assert firing(engine, "response_latency", NOW + timedelta(minutes=30)) == []  # calls ended long ago


def test_prompt_injection_is_one_event_per_call_with_phones_and_names_masked(engine, telegram):
    bad_args = {
        "items": [{"sku": "NOK-1", "quantity": 100, "price": 4150}],
        "phone": "+380 67 765 43 21",
        "customer_name": "Мар'яна Коваль",
    }
    bad = call(
        NOW - timedelta(minutes=20),
        tools=[{"name": "create_order_draft", "args": bad_args, "result": {"order_id": "ORD-1"}}],
        caller_id="+380671234567",
    )
    free = call(
        NOW - timedelta(minutes=15),
        tools=[{"name": "create_order_draft", "args": {"items": [{"sku": "A", "quantity": 1, "price": 0}]}}],
    )
    ingest_records(engine, [bad, free, call(NOW - timedelta(minutes=10))])  # the last one is normal
    found = firing(engine, "prompt_injection")
    assert sorted(f.key for f in found) == sorted([bad["call_id"], free["call_id"]])
    s = make_settings(telegram)
    assert alerts.run_alerts(engine, s, NOW)["fired"] == 2
    assert alerts.run_alerts(engine, s, NOW + timedelta(minutes=1))["fired"] == 0  # once per call
    texts = telegram.texts()
    assert len(texts) == 2
    text = next(t for t in texts if bad["call_id"] in t)
    assert "+38067*****67" in text and "+38067*****21" not in text  # caller masked by the database
    assert "+380671234567" not in text and "765 43 21" not in text and "+380 67 *** ** 21" in text
    assert "Коваль" not in text and '"customer_name": "М***"' in text  # no customer's name leaves the admin
    assert f"Журнал: {ADMIN}/calls/{bad['call_id']}" in text
    # past the look-back the events end silently: no "resolved" message for events
    out = alerts.run_alerts(engine, s, NOW + timedelta(hours=2))
    assert out["resolved"] == 0 and out["fired"] == 0 and len(telegram.texts()) == 2


def test_validation_anomaly_more_than_three_rejections(engine):
    four, three = (
        call(NOW - timedelta(minutes=5), tools=rejected(4)),
        call(NOW - timedelta(minutes=5), tools=rejected(3)),
    )
    ingest_records(engine, [four, three])
    [f] = firing(engine, "validation_anomaly")
    assert f.key == four["call_id"] and f.value == 4 and "отклонил 4 вызова инструментов (create_order_draft)" in f.text
    s = make_settings(alert_thresholds={"rejected_tool_calls_per_call": 2})
    assert len(firing(engine, "validation_anomaly", settings=s)) == 2


def spend_history(engine, *, per_call: float = 0.05, days: int = 8, calls_per_day: int = 10) -> None:
    """``calls_per_day`` calls at 10:00–10:09 Kyiv on each of the ``days`` days before NOW's day."""
    records = []
    for d in range(1, days + 1):
        base = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) - timedelta(days=d)
        records += [call(base + timedelta(minutes=i), cost={"llm": per_call}) for i in range(calls_per_day)]
    ingest_records(engine, records)


def test_abnormal_spend_today_against_the_same_time_of_day(engine):
    spend_history(engine)  # $0.50 a day, all before 14:00
    ingest_records(engine, [call(NOW - timedelta(hours=1, minutes=i), cost={"llm": 0.15}) for i in range(10)])
    [f] = firing(engine, "abnormal_spend")
    assert f.value == pytest.approx(3.0) and f.details["mode"] == "today"
    assert "сегодня к 14:00: 1,50 $ — 300 % от 0,50 $" in f.text
    assert f.key == "shop" and f.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop&sort=cost"
    assert firing(engine, "abnormal_spend", settings=make_settings(alert_thresholds={"spend_ratio": 3.5})) == []


def test_abnormal_spend_is_quiet_early_in_the_morning_and_on_normal_days(engine):
    spend_history(engine)
    early = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 06:00 Kyiv: no baseline spend before 06:00 yet
    ingest_records(engine, [call(early - timedelta(minutes=30 + i), cost={"llm": 0.2}) for i in range(10)])
    assert firing(engine, "abnormal_spend", early) == []  # falls back to yesterday, which was normal
    # yesterday's whole day at 4× the days before it fires at night too
    yesterday = datetime(2026, 11, 19, 8, 30, tzinfo=UTC)
    ingest_records(engine, [call(yesterday + timedelta(minutes=i), cost={"llm": 0.15}) for i in range(10)])
    [f] = firing(engine, "abnormal_spend", early)
    assert f.details["mode"] == "yesterday" and "вчера (19.11) за весь день: 2,00 $" in f.text


def test_cost_per_call_jump(engine):
    spend_history(engine, calls_per_day=30)
    ingest_records(engine, [call(NOW - timedelta(minutes=60 + i), cost={"llm": 0.07}) for i in range(30)])
    [f] = firing(engine, "cost_per_call_jump")
    assert f.value == pytest.approx(0.07) and "0,0700 $ (30 звонков) против 0,0500 $" in f.text and "+40 %" in f.text
    assert (
        firing(engine, "cost_per_call_jump", settings=make_settings(alert_thresholds={"cost_per_call_jump": 0.5})) == []
    )
    # needs more priced calls than today (and yesterday) had
    assert firing(engine, "cost_per_call_jump", settings=make_settings(alert_thresholds={"cost_min_calls": 31})) == []


def test_scenario_transfer_rate(engine):
    start = NOW - timedelta(hours=20)
    fitting = [transferred(start + timedelta(minutes=i), scenario="fitting_booking") for i in range(3)]
    fitting += [call(start + timedelta(minutes=10 + i), scenario="fitting_booking") for i in range(7)]
    search = [transferred(start + timedelta(minutes=i), scenario="tire_search") for i in range(2)]
    search += [call(start + timedelta(minutes=10 + i), scenario="tire_search") for i in range(8)]
    ingest_records(engine, fitting + search)
    [f] = firing(engine, "scenario_transfer_rate")
    assert f.key == "shop:fitting_booking" and f.value == pytest.approx(0.3)
    assert f.label == "«запись на шиномонтаж», сеть «Інтернет-магазин шин»"
    assert "переведено 3 из 10 звонков (30 %)" in f.text
    assert "tenant=shop&scenario=fitting_booking&transferred=yes" in f.link
    assert firing(engine, "high_transfer_rate") == []  # long ago for the hourly rule
    assert (
        firing(engine, "scenario_transfer_rate", settings=make_settings(alert_thresholds={"scenario_min_calls": 11}))
        == []
    )


def reask_call(start: datetime, reasks: int) -> dict:
    turns = [turn("bot", "Добрий день! Чим можу допомогти?", start + timedelta(seconds=1))]
    for i in range(reasks):
        at = start + timedelta(seconds=5 + 6 * i)
        turns.append(turn("customer", "Октавія", at))
        turns.append(turn("bot", "Перепрошую, повторіть, будь ласка.", at + timedelta(seconds=3)))
    return make_call(started_at=start, seconds=60, turns=turns)


def test_stt_reasks_yesterday_once_a_day_from_nine(engine, telegram):
    yesterday = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    ingest_records(engine, [reask_call(yesterday + timedelta(minutes=i), 2) for i in range(10)])
    ingest_records(engine, [reask_call(yesterday - timedelta(days=2, minutes=i), 1) for i in range(10)])
    metrics.compute_daily_stats(engine, "2026-11-05", "2026-11-19", tz="Europe/Kyiv")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO quality_findings (kind, day, key, value) VALUES ('reasked_word', '2026-11-19', 'октавія', 10)"
            )
        )
    assert firing(engine, "stt_reasks", datetime(2026, 11, 20, 6, 0, tzinfo=UTC)) == []  # 08:00 Kyiv: not yet
    [f] = firing(engine, "stt_reasks")
    assert f.key == "shop:2026-11-19" and f.value == 2.0
    assert "Вчера (19.11) бот переспрашивал клиентов 2,00 раза на звонок" in f.text and "октавія" in f.text
    s = make_settings(telegram)
    assert alerts.run_alerts(engine, s, NOW)["fired"] == 1
    assert alerts.run_alerts(engine, s, NOW + timedelta(hours=3))["fired"] == 0
    assert len(telegram.texts()) == 1
    assert firing(engine, "stt_reasks", settings=make_settings(alert_thresholds={"stt_reask_factor": 2.5})) == []


def scored(engine, start: datetime, n: int, score: float) -> None:
    records = [call(start + timedelta(minutes=i)) for i in range(n)]
    ingest_records(engine, records)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET quality_score = :s WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"s": score, "ids": [r["call_id"] for r in records]},
        )


def test_quality_drop(engine):
    scored(engine, NOW - timedelta(days=3), 25, 0.8)
    scored(engine, NOW - timedelta(minutes=90), 20, 0.75)
    assert firing(engine, "quality_drop") == []  # 0.75 vs 0.8 − 0.1
    scored(engine, NOW - timedelta(minutes=60), 20, 0.45)
    [f] = firing(engine, "quality_drop")
    assert f.value == pytest.approx(0.6) and "0,60 (40 оценённых звонков) против 0,80 за 7 дн." in f.text
    assert "sort=quality&order=asc" in f.link
    assert firing(engine, "quality_drop", settings=make_settings(alert_thresholds={"quality_min_scored": 26})) == []


def queue_failures(engine, n: int, at: datetime, error: str = "HTTP 401 invalid key") -> None:
    with engine.begin() as conn:
        for i in range(n):
            conn.execute(
                sa.text(
                    "INSERT INTO scoring_queue (call_id, started_at, status, attempts, last_error, updated_at) "
                    "VALUES (gen_random_uuid(), :at, 'failed', 4, :e, :at)"
                ),
                {"at": at - timedelta(minutes=i), "e": error},
            )


def test_judge_failures(engine):
    queue_failures(engine, 10, NOW - timedelta(hours=1), "429 from +380671234567 proxy")
    queue_failures(engine, 5, NOW - timedelta(hours=30))  # older than 24 h
    assert firing(engine, "judge_failures") == []
    queue_failures(engine, 1, NOW - timedelta(hours=2))
    [f] = firing(engine, "judge_failures")
    assert f.value == 11 and "не смог оценить 11 звонков" in f.text
    assert "+38067*****67" in f.text and "+380671234567" not in f.text


def test_scoring_backlog_and_threshold_override(engine):
    """The backlog is the finished calls the scheduler owes a score: from yesterday's local midnight on."""
    since = datetime(2026, 11, 18, 22, 0, tzinfo=UTC)  # 19.11 00:00 Kyiv; NOW is 20.11 14:00
    assert quality.scheduled_since(NOW, "Europe/Kyiv") == since
    ingest_records(engine, [call(since + timedelta(minutes=i)) for i in range(6)])
    ingest_records(engine, [call(since - timedelta(minutes=5 + i)) for i in range(6)])  # the day before: not owed
    with engine.begin() as conn:  # in progress: nothing to score yet
        write_as_processor(conn, call(NOW - timedelta(minutes=2)), ended=False)
    assert firing(engine, "scoring_backlog") == []
    [f] = firing(engine, "scoring_backlog", settings=make_settings(alert_thresholds={"scoring_backlog": 5}))
    assert f.value == 6 and "Не оценено 6 звонков за вчера и сегодня (самый старый — 19.11 00:00)" in f.text


def test_russian_plurals():
    assert [calls_acc(n) for n in (1, 2, 5, 11, 12, 21, 24, 111)] == [
        "1 звонок", "2 звонка", "5 звонков", "11 звонков", "12 звонков", "21 звонок", "24 звонка", "111 звонков",
    ]  # fmt: skip
    assert [calls_gen(1), calls_gen(3), calls_loc(1), calls_loc(7)] == [
        "1 звонка",
        "3 звонков",
        "1 звонке",
        "7 звонках",
    ]


def test_numbers_in_alert_texts_are_russian(engine):
    assert [rutext.share(0.8426), rutext.share(0.5), rutext.share(1 / 3, 0)] == ["84,3 %", "50 %", "33 %"]
    assert [rutext.seconds(4.93), rutext.seconds(3.0), rutext.seconds(0.25, 2)] == ["4,9 с", "3 с", "0,25 с"]
    assert rutext.count(1013, "вызов", "вызова", "вызовов") == "1\u202f013 вызовов"
    assert [rutext.compact(-0.04), rutext.compact(1234.5, 2)] == ["0", "1\u202f234,5"]
    queue_failures(engine, 1013, NOW - timedelta(hours=1))
    [f] = firing(engine, "judge_failures")
    assert "не смог оценить 1\u202f013 звонков после всех попыток, порог — больше 10" in f.text


def test_every_condition_rule_resolves_in_words_of_its_own():
    th = Thresholds()
    texts = {r.name: resolution(r.name, th) for r in RULES if r.kind == "condition"}
    assert set(texts) == set(RESOLUTIONS) and len(set(texts.values())) == len(texts)
    assert (
        texts["high_transfer_rate"]
        == "Доля переводов на оператора за 60 мин снова не выше 50 % (или звонков меньше 10)."
    )
    assert texts["response_latency"] == "Задержка ответа бота в норме: p95 за 15 мин не выше 3 с."
    for text in texts.values():
        assert not re.search(r"\d\.\d|\d%", text), text  # Russian numbers only
    custom = resolution("high_transfer_rate", Thresholds.with_overrides({"transfer_rate": 0.455}))
    assert "не выше 45,5 %" in custom


def test_thresholds_from_settings_are_checked():
    assert Thresholds.with_overrides({"transfer_rate": 0.6, "transfer_min_calls": 20.0}).transfer_min_calls == 20
    with pytest.raises(ConfigError, match="unknown alert threshold transfer_rat, trasnfer"):
        AlertConfig.from_settings(Settings(alert_thresholds={"transfer_rat": 0.6, "trasnfer": 1}))
    with pytest.raises(ConfigError, match="transfer_min_calls must be a whole number"):
        Thresholds.with_overrides({"transfer_min_calls": 2.5})
    with pytest.raises(ConfigError, match="must be a number ≥ 0"):
        Thresholds.with_overrides({"quality_drop": -1})


def test_prometheus_owner_evaluates_only_database_only_rules(engine):
    start = NOW - timedelta(minutes=50)
    ingest_records(engine, [transferred(start + timedelta(minutes=i), scenario="tire_search") for i in range(12)])
    both = {f.rule for f in alerts.evaluate(engine, make_settings(), NOW)}
    assert {"high_transfer_rate", "scenario_transfer_rate"} <= both
    ev = alerts.evaluate_all(engine, make_settings(alerts_owner="prometheus"), NOW)
    assert {f.rule for f in ev.firings} == {"scenario_transfer_rate"}
    assert set(ev.skipped) == {r.name for r in RULES if r.prometheus_twin}
    assert "high_transfer_rate" in ev.skipped and "cost_per_call_jump" in ev.evaluated


# ------------------------------------------------------------------------------------ lifecycle
def test_condition_fires_once_quiet_in_cooldown_repeats_and_resolves(engine, telegram, smtp):
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    ingest_records(engine, [call(NOW - timedelta(minutes=15 - i)) for i in range(2)])
    s = make_settings(telegram, smtp, alert_cooldown_minutes=15, alert_thresholds=ONE_SCENARIO)

    out = alerts.run_alerts(engine, s, NOW)
    assert (out["fired"], out["delivered"], out["pending"]) == (1, 2, 0)
    [tg_text] = telegram.texts()
    assert tg_text.startswith("🔴 Критично: Высокая доля переводов на оператора: сеть «Інтернет-магазин шин»\n")
    assert "оператору переведено 10 из 12 звонков (83,3 %), порог — больше 50 %" in tg_text
    assert tg_text.endswith(f"Журнал: {ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop&transferred=yes")
    [mail] = smtp.messages
    assert mail["Subject"] == "[ccanalytics] Критично: Высокая доля переводов на оператора: сеть «Інтернет-магазин шин»"
    assert mail.get_body(("plain",)).get_content().strip() == tg_text

    for minutes in (1, 5, 14):  # cooldown: quiet
        out = alerts.run_alerts(engine, s, NOW + timedelta(minutes=minutes))
        assert (out["fired"], out["repeated"], out["delivered"], out["firing"]) == (0, 0, 0, 1)
    out = alerts.run_alerts(engine, s, NOW + timedelta(minutes=15))
    assert out["repeated"] == 1 and out["delivered"] == 2
    assert telegram.texts()[1].startswith("🔴 Продолжается с 20.11 14:00 (15 мин): Высокая доля переводов")

    assert alerts.run_alerts(engine, s, NOW + timedelta(minutes=20))["delivered"] == 0  # cooldown again

    out = alerts.run_alerts(engine, s, NOW + timedelta(minutes=61))  # every call left the hour
    assert (out["resolved"], out["firing"], out["delivered"]) == (1, 0, 2)
    resolved = telegram.texts()[2]
    assert resolved.split("\n")[:3] == [
        "✅ Решено: Высокая доля переводов на оператора: сеть «Інтернет-магазин шин»",
        "Доля переводов на оператора за 60 мин снова не выше 50 % (или звонков меньше 10).",
        "Длилось 1 ч 1 мин: 20.11 14:00 — 15:01.",
    ]
    assert "переведено" not in resolved  # a resolution, not the firing sentence again
    assert smtp.messages[-1]["Subject"] == "[ccanalytics] Решено: Высокая доля переводов на оператора: " + SHOP
    assert alerts.run_alerts(engine, s, NOW + timedelta(minutes=70))["delivered"] == 0

    assert [(e["event"], e["channels"]) for e in events(engine) if e["rule"] == "high_transfer_rate"] == [
        ("fired", ["telegram", "email"]),
        ("repeated", ["telegram", "email"]),
        ("resolved", ["telegram", "email"]),
    ]
    assert len(telegram.texts()) == 3 and len(smtp.messages) == 3
    history = alerts.history(engine, limit=10)
    assert history[0]["event"] == "resolved" and history[0]["delivery"] == {"email": "sent", "telegram": "sent"}
    # retention: old events go with their outbox rows
    assert alerts.purge(engine, NOW + timedelta(days=1)) == 3
    assert events(engine) == [] and outbox(engine) == []


def test_a_broken_rule_neither_stops_the_others_nor_resolves(engine, monkeypatch):
    broken = [{"name": "search_tires", "args": {}, "result": {"error": "timeout"}, "success": False}] * 6
    ingest_records(engine, [call(NOW - timedelta(minutes=5), tools=broken)])
    assert alerts.run(engine, make_settings(), NOW).fired == 1  # tool_errors
    failing = dataclasses.replace(
        RULES_BY_NAME["tool_errors"], check=lambda conn, ctx: conn.execute(sa.text("SELECT * FROM no_such_table"))
    )
    monkeypatch.setattr(alerts, "RULES", tuple(failing if r.name == "tool_errors" else r for r in RULES))
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    summary = alerts.run(engine, make_settings(alert_thresholds=ONE_SCENARIO), NOW + timedelta(minutes=30))
    assert "no_such_table" in summary.errors["tool_errors"]
    assert summary.fired == 1 and summary.resolved == 0 and summary.firing == 2  # tool_errors still firing


def test_state_changes_without_channels_are_recorded(engine):
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    out = alerts.run_alerts(engine, make_settings(alert_thresholds=ONE_SCENARIO), NOW)
    assert out["fired"] == 1 and out["delivered"] == 0 and out["pending"] == 0
    [e] = [e for e in events(engine) if e["rule"] == "high_transfer_rate"]
    assert e["channels"] == [] and outbox(engine) == []


# --------------------------------------------------------------------------------------- outbox
def fire_one(engine, settings) -> str:
    ingest_records(engine, [call(NOW - timedelta(minutes=5), tools=rejected(4))])
    summary = alerts.run(engine, settings, NOW)
    assert summary.fired == 1
    [row] = outbox(engine)
    return row["payload"]["text"]


@pytest.mark.parametrize("outage", ["http_502", "connection_refused"])
def test_channel_down_then_up_delivers_exactly_once(engine, telegram, outage):
    s = make_settings(telegram)
    text = fire_one(engine, s)
    channels = channels_from_settings(s)
    if outage == "http_502":
        telegram.status = 502
    else:
        telegram.down()
    deliver = functools.partial(alert_outbox.deliver, jitter=0)  # exact times; the jitter: test_backoff_…
    first = deliver(engine, channels, NOW)
    assert (first.sent, first.retried, first.pending) == (0, 1, 1)
    [row] = outbox(engine)
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]
    assert row["next_attempt_at"] == NOW + timedelta(seconds=30)
    # not due yet: nothing is attempted
    assert deliver(engine, channels, NOW + timedelta(seconds=10)).retried == 0
    second = deliver(engine, channels, NOW + timedelta(seconds=30))  # still down: backoff doubles
    assert second.retried == 1 and outbox(engine)[0]["next_attempt_at"] == NOW + timedelta(seconds=90)
    telegram.status = 200
    if outage == "connection_refused":
        telegram.up()
    third = deliver(engine, channels, NOW + timedelta(seconds=90))
    assert (third.sent, third.pending) == (1, 0)
    assert deliver(engine, channels, NOW + timedelta(hours=1)).sent == 0
    assert telegram.texts() == [text]
    [row] = outbox(engine)
    assert row["status"] == "sent" and row["attempts"] == 3 and row["sent_at"] == NOW + timedelta(seconds=90)


def test_backoff_is_capped_at_minutes_jittered_and_respects_retry_after(engine, telegram):
    s = make_settings(telegram)
    fire_one(engine, s)
    channels = channels_from_settings(s)
    telegram.status, telegram.retry_after = 429, 120
    alert_outbox.deliver(engine, channels, NOW)
    assert outbox(engine)[0]["next_attempt_at"] == NOW + timedelta(seconds=120)  # 30 s backoff < retry_after
    telegram.status = 502
    waits = []
    for _ in range(12):
        at = outbox(engine)[0]["next_attempt_at"]
        alert_outbox.deliver(engine, channels, at)
        waits.append((outbox(engine)[0]["next_attempt_at"] - at).total_seconds())
    row = outbox(engine)[0]
    assert row["attempts"] == 13 and row["status"] == "pending"
    print("waits between attempts, s:", [round(w) for w in waits])
    # 30 s doubling, each drawn from [80 %, 100 %] of it; never more than the 5-minute cap
    for attempt, wait in enumerate(waits, start=2):
        nominal = min(300, 30 * 2 ** (attempt - 1))
        assert 0.8 * nominal <= wait <= nominal, (attempt, wait)
    assert max(waits) <= 300 and len({round(w) for w in waits[-6:]}) > 1  # jittered, not in lockstep
    # the whole schedule: 12 failed attempts over an outage of well under an hour (was 30-min steps)
    assert sum(waits) < 55 * 60
    assert [alert_outbox.backoff(n, jitter=0) for n in (1, 2, 3, 4, 5, 6, 50)] == [30, 60, 120, 240, 300, 300, 300]


def test_outage_then_recovery_sends_every_alert_in_event_order_and_nothing_twice(engine, telegram):
    """Telegram is away for over an hour: the transfer alert fires and resolves meanwhile, a call event
    comes in. Back, every message goes out once; the "resolved" never before its "fired", even though
    the "resolved" row is due and the "fired" row is still in its backoff when the channel returns."""
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    ingest_records(engine, [call(NOW + timedelta(minutes=5), tools=rejected(4))])  # an event of another alert
    s = make_settings(telegram, alert_thresholds=ONE_SCENARIO)
    telegram.down()
    at = NOW
    while at <= NOW + timedelta(minutes=62):  # the scheduler's minute job through the outage
        out = alerts.run_alerts(engine, s, at)
        assert out["delivered"] == 0
        at += timedelta(minutes=1)
    rows = {(e["rule"], e["event"]): e for e in events(engine)}
    assert set(rows) == {
        ("high_transfer_rate", "fired"),
        ("validation_anomaly", "fired"),
        ("high_transfer_rate", "resolved"),
    }
    head = outbox(engine)[0]
    assert head["status"] == "pending" and head["attempts"] > 10
    assert head["next_attempt_at"] > at - timedelta(minutes=1)  # in its backoff
    assert all(r["status"] == "pending" for r in outbox(engine))

    telegram.up()
    back = head["next_attempt_at"] - timedelta(seconds=5)  # the channel is back before the head's next attempt
    out = alert_outbox.deliver(engine, channels_from_settings(s), back, tz="Europe/Kyiv")
    assert (out.sent, out.pending, out.retried) == (3, 0, 0)  # at once, not after the backoff
    texts = telegram.texts()
    assert len(texts) == 3 and len(set(texts)) == 3
    heads = [t.split("\n")[0] for t in texts]
    fired = heads.index("🔴 Критично: Высокая доля переводов на оператора: " + SHOP)
    resolved = heads.index("✅ Решено: Высокая доля переводов на оператора: " + SHOP)
    assert fired < resolved
    assert any(h.startswith("🟠 Предупреждение: Аномалия валидации") for h in heads)
    late = texts[fired].splitlines()[-1]
    assert late.startswith("⏱ Отправлено с опозданием на 1 ч") and late.endswith("событие от 20.11 14:00.")
    # nothing more later: every row sent once
    assert alert_outbox.deliver(engine, channels_from_settings(s), back + timedelta(hours=1)).sent == 0
    assert {r["status"] for r in outbox(engine)} == {"sent"} and len(telegram.texts()) == 3


def test_a_pending_notification_holds_back_only_its_own_alert(engine, telegram):
    s = make_settings(telegram)
    ingest_records(engine, [call(NOW - timedelta(minutes=5, seconds=i), tools=rejected(4)) for i in range(2)])
    assert alerts.run(engine, s, NOW).fired == 2  # two calls: two alerts (keys) of one rule
    channels = channels_from_settings(s)
    telegram.status = 502
    assert alert_outbox.deliver(engine, channels, NOW).retried == 1  # the first one fails; the channel rests
    telegram.status = 200
    first_text = outbox(engine)[0]["payload"]["text"]
    # a second later the second call's row is due (the first one is in backoff): it goes out, and its
    # success says the channel is back, so the first one follows at once instead of after its backoff
    out = alert_outbox.deliver(engine, channels, NOW + timedelta(seconds=1))
    assert out.sent == 2 and telegram.texts()[1] == first_text and len(set(telegram.texts())) == 2


def slow_telegram(telegram, *, timeout: float, answer_timeout: float) -> dict:
    return {
        "telegram": TelegramChannel(
            TOKEN, str(CHAT), api_url=telegram.url, timeout=timeout, answer_timeout=answer_timeout
        )
    }


def test_slow_telegram_answer_is_waited_for_not_retried(engine, telegram):
    text = fire_one(engine, make_settings(telegram))
    telegram.delay = 1.2  # slower than the 0.5 s connect timeout, within the answer timeout
    out = alert_outbox.deliver(engine, slow_telegram(telegram, timeout=0.5, answer_timeout=5), NOW)
    assert (out.sent, out.retried, out.unknown) == (1, 0, 0)
    assert telegram.texts() == [text] and outbox(engine)[0]["status"] == "sent"


def test_telegram_answering_slower_than_the_client_waits_gets_each_message_once(engine, telegram, caplog):
    """The Bot API posts the message but answers after the client stopped waiting: the outcome is
    unknown, the row says so, and it is not sent again (before: retried, delivered twice)."""
    s = make_settings(telegram, alert_thresholds=ONE_SCENARIO)
    text = fire_one(engine, s)
    telegram.delay = 1.5
    channels = slow_telegram(telegram, timeout=0.3, answer_timeout=0.5)
    out = alert_outbox.deliver(engine, channels, NOW)
    assert (out.sent, out.retried, out.unknown, out.pending) == (0, 0, 1, 0)
    [row] = outbox(engine)
    assert row["status"] == "unknown" and row["sent_at"] == NOW and "delivery unknown" in row["last_error"]
    assert "delivery unknown, not re-sent" in caplog.text
    telegram.delay = 0
    for minutes in (1, 5, 30):
        assert alert_outbox.deliver(engine, channels, NOW + timedelta(minutes=minutes)).sent == 0
    assert telegram.texts() == [text]  # once
    assert alerts.history(engine)[0]["delivery"] == {"telegram": "unknown"}
    # the next notification of the same kind is not held back by the unknown one
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    alerts.run(engine, s, NOW + timedelta(minutes=31))
    assert alert_outbox.deliver(engine, channels, NOW + timedelta(minutes=31)).sent == 1 and len(telegram.texts()) == 2


def test_slow_smtp_server_gets_each_e_mail_once_with_a_stable_message_id(engine, smtp):
    s = make_settings(smtp=smtp, alert_thresholds=ONE_SCENARIO)
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    alerts.run(engine, s, NOW)
    smtp.mailbox.delay = 1.5  # keeps the message, answers after the client stopped waiting
    email = EmailChannel.from_settings(s)
    email.timeout, email.answer_timeout = 0.5, 0.5
    out = alert_outbox.deliver(engine, {"email": email}, NOW)
    assert out.unknown == 1 and len(smtp.messages) == 1
    assert alert_outbox.deliver(engine, {"email": email}, NOW + timedelta(minutes=10)).sent == 0
    assert len(smtp.messages) == 1
    # an operator re-queues it (docs/alerts.md): the copy carries the same Message-ID, so mail clients
    # show one message
    smtp.mailbox.delay = 0
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alert_outbox SET status = 'pending', sent_at = NULL WHERE status = 'unknown'"))
    assert alert_outbox.deliver(engine, {"email": email}, NOW + timedelta(minutes=11)).sent == 1
    first, second = smtp.messages
    assert first["Message-ID"] == second["Message-ID"] and first["Message-ID"].startswith("<ccanalytics-alert-")


def test_permanent_failure_and_too_many_attempts_make_dead_rows(engine, telegram, caplog):
    s = make_settings(telegram, telegram_chat_id="-42")  # the bot is not in this chat: HTTP 400
    fire_one(engine, s)
    out = alert_outbox.deliver(engine, channels_from_settings(s), NOW)
    assert (out.dead, out.pending) == (1, 0)
    [row] = outbox(engine)
    assert row["status"] == "dead" and row["attempts"] == 1 and "chat not found" in row["last_error"]
    assert "is dead after 1 attempt" in caplog.text
    assert alert_outbox.deliver(engine, channels_from_settings(s), NOW + timedelta(hours=1)).dead == 0

    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alert_outbox SET status = 'pending', attempts = 0, last_error = NULL"))
    telegram.status = 502
    good = channels_from_settings(make_settings(telegram))
    assert alert_outbox.deliver(engine, good, NOW, max_attempts=2).retried == 1
    assert alert_outbox.deliver(engine, good, NOW + timedelta(minutes=5), max_attempts=2).dead == 1
    assert telegram.texts() == []


def test_two_deliverers_send_each_notification_once(engine, telegram):
    s = make_settings(telegram)
    ingest_records(engine, [call(NOW - timedelta(minutes=5, seconds=i), tools=rejected(4)) for i in range(20)])
    assert alerts.run(engine, s, NOW).fired == 20
    telegram.delay = 0.02
    results = []

    def worker():
        results.append(alert_outbox.deliver(engine, channels_from_settings(s), NOW))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.sent for r in results) == 20 and all(r.sent > 0 for r in results)
    texts = telegram.texts()
    assert len(texts) == 20 and len(set(texts)) == 20
    assert {r["status"] for r in outbox(engine)} == {"sent"}


def test_concurrent_runs_fire_once(engine):
    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    s = make_settings(alert_thresholds=ONE_SCENARIO)
    threads = [threading.Thread(target=alerts.run, args=(engine, s, NOW)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e["event"] for e in events(engine) if e["rule"] == "high_transfer_rate"] == ["fired"]


# ------------------------------------------------------------------------------------------ CLI
def alerts_cli(db_url: str, telegram):
    """``ccanalytics alerts …`` against the database, Telegram at the fake server, one-scenario thresholds."""
    from ccanalytics.cli.root import main

    env = {
        "CCA_DATABASE_URL": db_url,
        "CCA_TELEGRAM_BOT_TOKEN": TOKEN,
        "CCA_TELEGRAM_CHAT_ID": str(CHAT),
        "CCA_TELEGRAM_API_URL": telegram.url,
        "CCA_SMTP_HOST": "",
        "CCA_ADMIN_BASE_URL": ADMIN,
        "CCA_ALERT_THRESHOLDS": json.dumps(ONE_SCENARIO),
    }
    return lambda *args: CliRunner().invoke(main, ["alerts", *args], env=env)


def test_cli_commands(db_url, engine, telegram):

    ingest_records(engine, [transferred(NOW - timedelta(minutes=20 - i)) for i in range(10)])
    run = alerts_cli(db_url, telegram)
    res = run("check", "--dry-run", "--at", "2026-11-20T14:00")
    assert res.exit_code == 0, res.output
    assert "critical high_transfer_rate" in res.output and "переведено 10 из 10" in res.output
    assert "1 firing (dry run" in res.output
    assert events(engine) == [] and telegram.requests == []

    res = run("check", "--at", "2026-11-20T12:00:00+00:00")
    assert res.exit_code == 0, res.output
    assert "fired 1" in res.output and "delivered 1" in res.output
    assert len(telegram.texts()) == 1

    res = run("history", "--json")
    [row] = json.loads(res.output)["data"]
    assert row["rule"] == "high_transfer_rate" and row["event"] == "fired" and row["delivery"] == {"telegram": "sent"}
    assert "Высокая доля переводов" in row["message"]
    res = run("history")
    assert "fired    high_transfer_rate" in res.output and "[telegram:sent]" in res.output

    res = run("deliver")
    assert res.exit_code == 0 and res.output.startswith("sent 0,")

    res = run("test", "--channel", "telegram")
    assert res.exit_code == 0 and "test message sent by telegram" in res.output
    assert telegram.texts()[-1].startswith("Тестовое сообщение ccanalytics")
    res = run("test", "--channel", "email")
    assert res.exit_code == 1 and res.output.startswith("Error: channel not configured: email")

    bad = run("check", "--at", "yesterday-ish")
    assert bad.exit_code == 1 and "Error: --at must be an ISO date-time" in bad.output


# ----------------------------------------------------------------------------------------- docs
def test_docs_list_every_rule_and_twins_exist():
    doc = (ROOT / "docs/alerts.md").read_text()
    prom = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())
    prom_alerts = {r["alert"] for g in prom["groups"] for r in g["rules"] if "alert" in r}
    for rule in RULES:
        assert f"| `{rule.name}` |" in doc, rule.name
        assert rule.prometheus_twin is None or rule.prometheus_twin in prom_alerts
        for key in rule.thresholds:
            assert hasattr(Thresholds(), key)
            assert f"`{key}`" in doc, key
