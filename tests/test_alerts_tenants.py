"""Database alerts per tenant (issue 16, item 4): every aggregate rule is evaluated per retail network,
keyed and titled by it, with its journal link; per-call events name the network; a run can be scoped to
one tenant; alerts kept from before (key "all") are upgraded without a false page or a lost episode."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import add_tenant
from psycopg.types.json import Jsonb
from test_alerts import (
    ADMIN,
    NOW,
    ONE_SCENARIO,
    alerts_cli,
    call,
    events,
    latency_call,
    make_settings,
    reask_call,
    rejected,
    transferred,
)

from ccanalytics.alerts import engine as alerts
from ccanalytics.alerts.engine import PER_TENANT_NOTE, AlertConfig
from ccanalytics.alerts.rulemodel import NO_TENANT
from ccanalytics.analytics import metrics
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.ingest.load import ingest_records

SHOP = "сеть «Інтернет-магазин шин»"
PRO = "сеть «ПроКолесо»"


@pytest.fixture
def two(engine):
    """The test database's tenant "shop" and a second one, "prokoleso" «ПроКолесо»."""
    with engine.begin() as conn:
        add_tenant(conn, "prokoleso", "ПроКолесо")
    return engine


def firing(engine, rule: str, now: datetime = NOW, *, tenant=None, **thresholds):
    cfg = AlertConfig.from_settings(make_settings(alert_thresholds=thresholds or ONE_SCENARIO))
    return [f for f in alerts.evaluate(engine, cfg, now, tenant=tenant) if f.rule == rule]


def spike(
    tenant: str, transferred_n: int, normal_n: int, start: datetime = NOW - timedelta(minutes=50), **fields
) -> list:
    """``transferred_n`` transferred and ``normal_n`` normal calls of ``tenant``, a minute apart from ``start``."""
    return [transferred(start + timedelta(minutes=i), tenant=tenant, **fields) for i in range(transferred_n)] + [
        call(start + timedelta(minutes=i, seconds=30), tenant=tenant, **fields) for i in range(normal_n)
    ]


def states(engine) -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        return {(r.rule, r.key): r.status for r in conn.execute(sa.text("SELECT rule, key, status FROM alert_state"))}


# --------------------------------------------------------------------------------- per tenant
def test_a_spike_at_one_shop_is_not_diluted_by_the_other(two):
    # shop: 7 of 12 transferred (58 %); prokoleso: 2 of 30 — over both 9 of 42 (21 %) would page nobody
    ingest_records(two, spike("shop", 7, 5) + spike("prokoleso", 2, 28))
    [f] = firing(two, "high_transfer_rate")
    assert (f.key, f.tenant, f.label) == ("shop", "shop", SHOP)
    assert f.text.startswith("Сеть «Інтернет-магазин шин». За 60 мин (20.11 13:00–14:00) оператору переведено 7 из 12")
    assert f.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop&transferred=yes"


def test_minimum_volume_is_per_tenant(two):
    # prokoleso: 6 of 8 transferred, under its own 10 calls; shop healthy: over both, 6 of 20 (30 %)
    ingest_records(two, spike("prokoleso", 6, 2) + spike("shop", 0, 12))
    assert firing(two, "high_transfer_rate") == []
    [f] = firing(two, "high_transfer_rate", transfer_min_calls=8, scenario_min_calls=1000)
    assert f.key == "prokoleso" and "6 из 8 звонков (75 %)" in f.text and f.text.startswith("Сеть «ПроКолесо».")


def test_scenario_rule_keys_are_tenant_and_scenario(two):
    start = NOW - timedelta(hours=20)
    shop = [transferred(start + timedelta(minutes=i), tenant="shop", scenario="fitting_booking") for i in range(4)]
    shop += [call(start + timedelta(minutes=10 + i), tenant="shop", scenario="fitting_booking") for i in range(6)]
    pro = [call(start + timedelta(minutes=i), tenant="prokoleso", scenario="fitting_booking") for i in range(10)]
    ingest_records(two, shop + pro)
    [f] = firing(two, "scenario_transfer_rate", scenario_min_calls=10)
    assert f.key == "shop:fitting_booking" and f.value == pytest.approx(0.4)
    assert f.label == f"«запись на шиномонтаж», {SHOP}"
    assert "tenant=shop&scenario=fitting_booking&transferred=yes" in f.link


def test_spend_baseline_is_each_tenants_own(two):
    """prokoleso spends three times its own usual, which is a tenth of shop's: over both the spend is
    1.2× the usual and pages nobody; per tenant prokoleso pages, shop does not."""
    history = []
    for d in range(1, 9):
        base = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) - timedelta(days=d)
        history += [call(base + timedelta(minutes=i), tenant="shop", cost={"llm": 0.5}) for i in range(10)]
        history += [
            call(base + timedelta(minutes=i, seconds=30), tenant="prokoleso", cost={"llm": 0.05}) for i in range(10)
        ]
    today = [call(NOW - timedelta(hours=1, minutes=i), tenant="shop", cost={"llm": 0.5}) for i in range(10)]
    today += [
        call(NOW - timedelta(hours=1, minutes=i, seconds=30), tenant="prokoleso", cost={"llm": 0.15}) for i in range(10)
    ]
    ingest_records(two, history + today)
    [f] = firing(two, "abnormal_spend")
    assert f.key == "prokoleso" and f.value == pytest.approx(3.0) and f.details["mode"] == "today"
    assert f.text.startswith("Сеть «ПроКолесо». Расходы на API сегодня к 14:00: 1,50 $ — 300 % от 0,50 $")
    assert f.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=prokoleso&sort=cost"
    # the cost per call jumps for prokoleso only (0.15 against 0.05), with its own minimum of priced calls
    [c] = firing(two, "cost_per_call_jump", cost_min_calls=10, scenario_min_calls=1000)
    assert c.key == "prokoleso" and "0,1500 $ (10 звонков) против 0,0500 $" in c.text
    assert firing(two, "cost_per_call_jump", cost_min_calls=11, scenario_min_calls=1000) == []


def scored_calls(engine, tenant: str, start: datetime, n: int, score: float) -> list[dict]:
    """``n`` calls of ``tenant`` that the processor's quality task scored ``score``."""
    records = [call(start + timedelta(minutes=i), tenant=tenant) for i in range(n)]
    ingest_records(engine, records)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET quality_score = :s WHERE id = ANY(CAST(:ids AS uuid[]))"),
            {"s": score, "ids": [r["call_id"] for r in records]},
        )
    return records


def fail_scoring(engine, records: list[dict], error: str) -> None:
    """The judge gave up on these calls (scoring_queue rows 'failed'); a record without a call is a
    failure whose call is gone."""
    with engine.begin() as conn:
        for r in records:
            conn.execute(
                sa.text(
                    "INSERT INTO scoring_queue (call_id, started_at, status, attempts, last_error, updated_at) "
                    "VALUES (:id, :at, 'failed', 4, :e, :now)"
                ),
                {"id": r["call_id"], "at": r["started_at"], "e": error, "now": NOW - timedelta(hours=1)},
            )


def test_quality_backlog_and_judge_failures_per_tenant(two):
    for tenant, recent in (("shop", 0.45), ("prokoleso", 0.8)):
        scored_calls(two, tenant, NOW - timedelta(days=3), 25, 0.8)
        scored_calls(two, tenant, NOW - timedelta(minutes=60), 20, recent)
    [q] = firing(two, "quality_drop")
    assert q.key == "shop" and q.value == pytest.approx(0.45)
    assert q.text.startswith("Сеть «Інтернет-магазин шин». Средняя оценка качества за 2 ч")
    assert "tenant=shop&sort=quality&order=asc" in q.link
    # the backlog: every call is unscored by ccanalytics, those of 3 days ago are not the scheduler's;
    # prokoleso has 5 more than shop's 20
    ingest_records(two, [call(NOW - timedelta(hours=5, minutes=i), tenant="prokoleso") for i in range(5)])
    [b] = firing(two, "scoring_backlog", scoring_backlog=21)
    assert b.key == "prokoleso" and b.value == 25 and b.text.startswith("Сеть «ПроКолесо». Не оценено 25 звонков")
    assert b.label == PRO
    # judge failures: 11 of prokoleso's calls, and 11 whose calls are gone (no tenant)
    pro = scored_calls(two, "prokoleso", NOW - timedelta(hours=3), 11, 0.8)
    fail_scoring(two, pro, "HTTP 429 rate limit")
    gone = [{"call_id": str(uuid.uuid4()), "started_at": NOW - timedelta(hours=2)} for _ in range(11)]
    fail_scoring(two, gone, "HTTP 401 invalid key")
    found = {f.key: f for f in firing(two, "judge_failures")}
    assert set(found) == {"prokoleso", NO_TENANT}
    assert "Частая причина: HTTP 429 rate limit." in found["prokoleso"].text
    assert found[NO_TENANT].text.startswith("Звонки без сети (сеть удалена или не указана). За 24 часа")
    assert firing(two, "judge_failures", tenant="shop") == []


def test_stt_reasks_per_tenant(two):
    yesterday = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    records = [dict(reask_call(yesterday + timedelta(minutes=i), 2), tenant="shop") for i in range(10)]
    records += [
        dict(reask_call(yesterday + timedelta(minutes=i, seconds=30), 1), tenant="prokoleso") for i in range(10)
    ]
    for t in ("shop", "prokoleso"):
        records += [dict(reask_call(yesterday - timedelta(days=2, minutes=i), 1), tenant=t) for i in range(10)]
    ingest_records(two, records)
    metrics.compute_daily_stats(two, "2026-11-05", "2026-11-19", tz="Europe/Kyiv")
    [f] = firing(two, "stt_reasks")
    assert f.key == "shop:2026-11-19" and f.value == 2.0 and f.label == f"19.11, {SHOP}"
    assert f.text.startswith("Сеть «Інтернет-магазин шин». Вчера (19.11) бот переспрашивал клиентов 2,00 раза")
    assert f.link == f"{ADMIN}/calls?from=2026-11-19&to=2026-11-19&tenant=shop"
    assert firing(two, "stt_reasks", tenant="prokoleso") == []


def test_response_latency_and_tool_errors_per_tenant(two):
    # prokoleso: 12 slow replies of 3 calls (under the 20 a p95 needs alone); shop: 20 fast ones —
    # over both 32 replies with a p95 of 4 s would page
    ingest_records(two, [dict(latency_call(NOW - timedelta(minutes=5 + i), 4.0), tenant="prokoleso") for i in range(3)])
    ingest_records(two, [dict(latency_call(NOW - timedelta(minutes=10 + i), 1.0), tenant="shop") for i in range(5)])
    alerts.derive_recent_metrics(two, NOW)
    assert firing(two, "response_latency") == []
    [f] = firing(two, "response_latency", latency_min_replies=12, scenario_min_calls=1000)
    assert f.key == "prokoleso" and "12 ответов в 3 звонках" in f.text and f.text.startswith("Сеть «ПроКолесо». p95")
    broken = [{"name": "search_tires", "args": {}, "result": {"error": "timeout"}, "success": False}]
    ingest_records(two, [call(NOW - timedelta(minutes=5), tenant="shop", tools=broken * 6)])
    ingest_records(two, [call(NOW - timedelta(minutes=5), tenant="prokoleso", tools=broken * 3)])
    [t] = firing(two, "tool_errors")
    assert t.key == "shop" and t.value == 6 and "6 ошибок вызовов инструментов в 1 звонке: search_tires ×6" in t.text
    assert t.link == f"{ADMIN}/calls?from=2026-11-20&to=2026-11-20&tenant=shop"


def test_per_call_events_name_the_tenant(two):
    bad = call(
        NOW - timedelta(minutes=20),
        tenant="prokoleso",
        tools=[{"name": "create_order_draft", "args": {"items": [{"sku": "A", "quantity": 100, "price": 10}]}}],
    )
    anomaly = call(NOW - timedelta(minutes=10), tenant="shop", tools=rejected(4))
    ingest_records(two, [bad, anomaly])
    [p] = firing(two, "prompt_injection")
    assert p.key == bad["call_id"] and p.tenant == "prokoleso"
    assert p.text.startswith(f"Сеть «ПроКолесо». Звонок {bad['call_id']} (клиент")
    assert p.label == f"звонок {bad['call_id'][:8]}, {PRO}"
    [v] = firing(two, "validation_anomaly")
    assert v.key == anomaly["call_id"] and v.text.startswith(
        f"Сеть «Інтернет-магазин шин». Звонок {anomaly['call_id']}"
    )
    assert firing(two, "validation_anomaly", tenant="prokoleso") == []


def test_calls_of_a_deleted_tenant_are_their_own_group(two):
    with two.begin() as conn:
        add_tenant(conn, "gone", "Закрытая сеть")
    ingest_records(two, spike("gone", 8, 4, caller_id=None))  # no customers: the processor keeps those
    with two.begin() as conn:  # the processor deletes the tenant: its calls' tenant_id becomes NULL
        conn.execute(sa.text("DELETE FROM tenants WHERE slug = 'gone'"))
    [f] = firing(two, "high_transfer_rate")
    assert f.key == NO_TENANT and f.tenant is None and f.label == "звонки без сети"
    assert f.text.startswith("Звонки без сети (сеть удалена или не указана). За 60 мин")
    assert "tenant=" not in f.link
    assert firing(two, "high_transfer_rate", tenant="shop") == []  # a scope never covers them


def test_each_tenant_fires_and_resolves_on_its_own(two, telegram):
    s = make_settings(telegram, alert_thresholds=ONE_SCENARIO)
    ingest_records(two, spike("shop", 10, 2, NOW - timedelta(minutes=30)))
    out = alerts.run_alerts(two, s, NOW)
    assert out["fired"] == 1 and states(two) == {("high_transfer_rate", "shop"): "firing"}
    # 20 minutes later prokoleso has its own burst; shop's goes on
    ingest_records(two, spike("prokoleso", 10, 1, NOW + timedelta(minutes=5)))
    out = alerts.run_alerts(two, s, NOW + timedelta(minutes=20))
    assert (out["fired"], out["resolved"], out["firing"]) == (1, 0, 2)
    # shop's calls leave the hour, prokoleso's are still in it
    out = alerts.run_alerts(two, s, NOW + timedelta(minutes=35))
    assert (out["fired"], out["resolved"], out["firing"]) == (0, 1, 1)
    assert states(two) == {("high_transfer_rate", "shop"): "resolved", ("high_transfer_rate", "prokoleso"): "firing"}
    heads = [t.split("\n")[0] for t in telegram.texts()]
    assert heads == [
        f"🔴 Критично: Высокая доля переводов на оператора: {SHOP}",
        f"🔴 Критично: Высокая доля переводов на оператора: {PRO}",
        f"✅ Решено: Высокая доля переводов на оператора: {SHOP}",
    ]
    assert "tenant=prokoleso&transferred=yes" in telegram.texts()[1]
    assert [(e["key"], e["event"]) for e in events(two)] == [
        ("shop", "fired"),
        ("prokoleso", "fired"),
        ("shop", "resolved"),
    ]


def test_a_scoped_run_touches_only_its_tenants_alerts(two):
    s = make_settings(alert_thresholds=ONE_SCENARIO)
    ingest_records(two, spike("shop", 10, 2, NOW - timedelta(minutes=30)))
    ingest_records(two, [call(NOW - timedelta(minutes=5), tenant="shop", tools=rejected(4))])
    assert alerts.run(two, s, NOW).fired == 2  # shop's transfer rate and its call's validation anomaly
    ingest_records(two, spike("prokoleso", 10, 1, NOW + timedelta(minutes=1)))
    scoped = alerts.run(two, s, NOW + timedelta(minutes=15), tenant="prokoleso")
    assert (scoped.fired, scoped.resolved) == (1, 0) and {f.tenant for f in scoped.firings} == {"prokoleso"}
    # shop's alerts were neither resolved nor re-fired by a run that did not look at shop
    assert set(states(two).values()) == {"firing"} and len(states(two)) == 3
    again = alerts.run(two, s, NOW + timedelta(minutes=16))
    assert (again.fired, again.resolved, again.repeated) == (0, 0, 0)
    with pytest.raises(InvalidArgument, match="unknown tenant 'nope': the database has prokoleso, shop"):
        alerts.run(two, s, NOW, tenant="nope")
    assert [r["tenant"] for r in alerts.history(two, tenant="prokoleso")] == ["prokoleso"]
    assert {r["tenant"] for r in alerts.history(two)} == {"shop", "prokoleso"}


# ------------------------------------------------------------------------------------ upgrade
def legacy_state(engine, rule: str, key: str, *, since: datetime, text: str = "", label: str = "") -> None:
    """An alert as the version before the per-tenant keys left it: firing under ``key`` ("all", a bare
    scenario or day), its details without a tenant, and its "fired" event."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO alert_state (rule, key, status, severity, first_fired_at, last_seen_at, "
                "last_notified_at, notifications, last_value, details, updated_at) VALUES (:rule, :key, 'firing', "
                "'critical', :since, :seen, :since, 1, 0.8, :details, :seen)"
            ),
            {
                "rule": rule,
                "key": key,
                "since": since,
                "seen": NOW - timedelta(minutes=1),
                "details": Jsonb({"text": text, "link": f"{ADMIN}/calls", "label": label}),
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO alert_events (rule, key, event, severity, title, message, channels, "
                "episode_started_at, created_at) VALUES (:rule, :key, 'fired', 'critical', 'Высокая доля', "
                "'🔴 Критично: Высокая доля', '{}', :since, :since)"
            ),
            {"rule": rule, "key": key, "since": since},
        )


def test_upgrade_with_one_tenant_keeps_the_episode_under_the_tenants_key(engine, telegram):
    since = NOW - timedelta(minutes=20)
    legacy_state(engine, "high_transfer_rate", "all", since=since)
    legacy_state(engine, "scenario_transfer_rate", "fitting_booking", since=since, label="«запись на шиномонтаж»")
    ingest_records(engine, spike("shop", 10, 2, NOW - timedelta(minutes=15)))  # still in the hour at +41 min
    s = make_settings(telegram, alert_thresholds=ONE_SCENARIO)
    summary = alerts.run(engine, s, NOW)
    # no new page: the same episode goes on under "shop" (still in its cooldown); the scenario alert,
    # no longer over its threshold, is resolved under its new key, its title naming the tenant
    assert (summary.upgraded, summary.fired, summary.repeated, summary.resolved) == (2, 0, 0, 1)
    assert states(engine) == {
        ("high_transfer_rate", "shop"): "firing",
        ("scenario_transfer_rate", "shop:fitting_booking"): "resolved",
    }
    with engine.connect() as conn:
        first = conn.execute(
            sa.text("SELECT first_fired_at, details->>'tenant' FROM alert_state WHERE key = 'shop'")
        ).one()
    assert first == (since, "shop")
    assert [(e["rule"], e["key"], e["event"]) for e in events(engine)] == [
        ("high_transfer_rate", "shop", "fired"),
        ("scenario_transfer_rate", "shop:fitting_booking", "fired"),
        ("scenario_transfer_rate", "shop:fitting_booking", "resolved"),
    ]
    resolved = events(engine)[-1]["message"]
    assert resolved.startswith(f"✅ Решено: Сценарий с высокой долей переводов: «запись на шиномонтаж», {SHOP}")
    # an hour after the first page the reminder comes under the new key, with the episode's start
    later = alerts.run(engine, s, since + timedelta(minutes=61))
    assert later.repeated == 1 and later.upgraded == 0
    assert events(engine)[-1]["message"].startswith(
        f"🔴 Продолжается с 20.11 13:40 (1 ч 1 мин): Высокая доля переводов на оператора: {SHOP}"
    )


def test_upgrade_with_several_tenants_resolves_the_old_alert_with_a_note(two, telegram):
    since = NOW - timedelta(minutes=20)
    legacy_state(two, "high_transfer_rate", "all", since=since, text="переведено 30 из 50")
    legacy_state(two, "stt_reasks", "2026-11-19", since=since)  # an event: ends silently
    ingest_records(two, spike("shop", 10, 2, NOW - timedelta(minutes=30)) + spike("prokoleso", 0, 12))
    s = make_settings(telegram, alert_thresholds=ONE_SCENARIO)
    out = alerts.run_alerts(two, s, NOW)
    assert (out["resolved"], out["fired"]) == (1, 1)
    assert states(two) == {
        ("high_transfer_rate", "all"): "resolved",
        ("stt_reasks", "2026-11-19"): "resolved",
        ("high_transfer_rate", "shop"): "firing",
    }
    resolved, fired = telegram.texts()  # in this order: the old alert ends before the tenant's fires
    assert resolved.split("\n")[:3] == [
        "✅ Решено: Высокая доля переводов на оператора",
        PER_TENANT_NOTE,
        "Длилось 20 мин: 20.11 13:40 — 14:00.",
    ]
    assert "сети" in PER_TENANT_NOTE and "отдельно по каждой сети" in PER_TENANT_NOTE
    assert fired.startswith(f"🔴 Критично: Высокая доля переводов на оператора: {SHOP}\n")
    # once is enough: nothing is left to upgrade
    assert alerts.run(two, s, NOW + timedelta(minutes=1)).resolved == 0 and len(telegram.texts()) == 2


def test_a_scoped_run_leaves_old_alerts_for_the_run_over_every_tenant(two):
    legacy_state(two, "high_transfer_rate", "all", since=NOW - timedelta(minutes=20))
    s = make_settings(alert_thresholds=ONE_SCENARIO)
    summary = alerts.run(two, s, NOW, tenant="shop")
    assert (summary.resolved, summary.upgraded) == (0, 0)
    assert states(two) == {("high_transfer_rate", "all"): "firing"}
    assert alerts.run(two, s, NOW + timedelta(minutes=1)).resolved == 1


# ---------------------------------------------------------------------------------------- CLI
def test_cli_check_scoped_to_a_tenant(db_url, two, telegram):
    from ccanalytics.cli import alerts as cli_alerts  # noqa: F401  (registers the group on main)

    ingest_records(two, spike("shop", 10, 2, NOW - timedelta(minutes=30)))
    ingest_records(two, spike("prokoleso", 9, 2, NOW - timedelta(minutes=30)))
    run = alerts_cli(db_url, telegram)
    every = run("check", "--dry-run", "--at", "2026-11-20T14:00")
    assert every.exit_code == 0, every.output
    assert "high_transfer_rate     shop" in every.output and "high_transfer_rate     prokoleso" in every.output
    one = run("check", "--dry-run", "--at", "2026-11-20T14:00", "--tenant", "prokoleso")
    assert one.exit_code == 0, one.output
    assert "prokoleso" in one.output and " shop " not in one.output and "1 firing (dry run" in one.output
    assert "Сеть «ПроКолесо». За 60 мин" in one.output

    res = run("check", "--at", "2026-11-20T14:00", "--tenant", "prokoleso")
    assert res.exit_code == 0 and "fired 1" in res.output
    assert states(two) == {("high_transfer_rate", "prokoleso"): "firing"}
    assert len(telegram.texts()) == 1 and PRO in telegram.texts()[0]
    hist = run("history", "--tenant", "shop")
    assert hist.exit_code == 0 and hist.output == ""

    for args in (
        ("check", "--dry-run", "--tenant", "nope"),
        ("check", "--tenant", "nope"),
        ("history", "--tenant", "nope"),
    ):
        bad = run(*args)
        assert bad.exit_code == 1
        assert bad.output.strip() == "Error: unknown tenant 'nope': the database has prokoleso, shop", args
    assert states(two) == {("high_transfer_rate", "prokoleso"): "firing"}  # the bad run changed nothing
