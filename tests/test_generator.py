"""The demo generator: valid, deterministic, realistic, with the injected problems findable (no database)."""

from __future__ import annotations

import itertools
import json
import re
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.demo import phrases as P
from ccanalytics.demo.generator import (
    BASE_SCENARIOS,
    DEMO_AB_TEST,
    DEMO_PROMPT_NAME,
    DEMO_PROMPTS,
    DEMO_TENANT_SLUGS,
    LATENCY_SPIKE_WINDOW,
    OUTAGE_TOOLS,
    PRICES,
    SPECIAL_DAY_OFFSETS,
    TOOL_NAMES,
    TRANSFER_REASONS,
    ab_variant,
    compute_cost,
    generate_calls,
    special_days,
)
from ccanalytics.ingest.callog import ValidCall, validate_record

KYIV = ZoneInfo("Europe/Kyiv")
END = date(2026, 11, 23)  # a Monday
SPEC_TOOLS = {
    "get_vehicle_tire_sizes", "search_tires", "check_availability", "transfer_to_operator", "get_order_status",
    "create_order_draft", "update_order_delivery", "confirm_order", "get_pickup_points", "get_fitting_stations",
    "get_fitting_slots", "book_fitting", "cancel_fitting", "get_fitting_price", "get_customer_bookings",
    "search_knowledge_base",
}  # fmt: skip
PHONE_RE = re.compile(r"^\+380(50|63|66|67|68|73|93|95|96|97|98|99)\d{7}$")


def local_day(call: dict) -> date:
    return datetime.fromisoformat(call["started_at"]).astimezone(KYIV).date()


def local_time(call: dict):
    return datetime.fromisoformat(call["started_at"]).astimezone(KYIV).time()


def tool_calls(call: dict):
    for turn in call["turns"]:
        yield from turn.get("tool_calls", [])


def share(items, predicate) -> float:
    items = list(items)
    return sum(1 for x in items if predicate(x)) / len(items)


@pytest.fixture(scope="module")
def week() -> list[dict]:
    return list(generate_calls(seed=42, days=7, calls_per_day=120, end_date=END))


@pytest.fixture(scope="module")
def by_day(week) -> dict[date, list[dict]]:
    out: dict[date, list[dict]] = defaultdict(list)
    for call in week:
        out[local_day(call)].append(call)
    return out


@pytest.fixture(scope="module")
def ab_run() -> list[dict]:
    return list(generate_calls(seed=7, days=21, calls_per_day=150, end_date=END, ab_days=14))


# ------------------------------------------------------------------------------------ contract
def test_every_record_validates_and_is_json(week):
    assert len(week) > 500
    for i, call in enumerate(week):
        checked = validate_record(call, i)
        assert isinstance(checked, ValidCall), checked
        assert json.loads(json.dumps(call, ensure_ascii=False)) == call
        assert call["started_at"].endswith("+00:00") and call["ended_at"].endswith("+00:00")
        assert 30 <= call["duration_seconds"] <= 480


def test_calls_are_chronological_and_cover_the_kyiv_days(week, by_day):
    starts = [datetime.fromisoformat(c["started_at"]) for c in week]
    assert starts == sorted(starts)
    assert sorted(by_day) == [END - timedelta(days=k) for k in range(6, -1, -1)]
    assert len({c["call_id"] for c in week}) == len(week)


def test_demo_prompts_contract():
    assert DEMO_PROMPT_NAME == "tire_agent" and DEMO_AB_TEST == "tire_agent-v1-vs-v2"
    assert [(p["name"], p["version"], p["label"]) for p in DEMO_PROMPTS] == [
        ("tire_agent", 1, "tire_agent@v1"),
        ("tire_agent", 2, "tire_agent@v2"),
    ]
    for p in DEMO_PROMPTS:
        assert "Олена" in p["system_prompt"] and len(p["system_prompt"]) > 500
        json.dumps(p["tools_config"]), json.dumps(p["metadata"])
        assert {t["name"] for t in p["tools_config"]["tools"]} == SPEC_TOOLS
        assert p["metadata"]["model"] == "claude-sonnet-4"
        assert p["note"] and re.search("[ыэъё]", p["note"])  # Russian
        assert p.get("created_at") is None or p["created_at"].tzinfo is not None
    assert "Уточню" in DEMO_PROMPTS[1]["system_prompt"]  # v2 confirms sizes
    assert set(TOOL_NAMES) == SPEC_TOOLS
    assert set(TRANSFER_REASONS) == {"customer_request", "cannot_help", "complex_question", "negative_emotion"}


def test_invalid_arguments_are_refused():
    with pytest.raises(InvalidArgument):
        generate_calls(days=0)
    with pytest.raises(InvalidArgument):
        generate_calls(calls_per_day=0)


def test_end_date_defaults_to_today_in_kyiv():
    before = datetime.now(KYIV).date()
    calls = list(generate_calls(days=1, calls_per_day=5))
    after = datetime.now(KYIV).date()
    assert calls and {local_day(c) for c in calls} <= {before, after}


# ------------------------------------------------------------------------------------ determinism
def test_same_arguments_same_calls():
    first = list(generate_calls(seed=5, days=2, calls_per_day=60, end_date=END))
    second = list(generate_calls(seed=5, days=2, calls_per_day=60, end_date=END))
    assert first == second
    other = list(generate_calls(seed=6, days=2, calls_per_day=60, end_date=END))
    assert {c["call_id"] for c in first}.isdisjoint(c["call_id"] for c in other)


def test_a_dates_calls_do_not_depend_on_the_range():
    three = list(generate_calls(seed=3, days=3, calls_per_day=80, end_date=END))
    five = list(generate_calls(seed=3, days=5, calls_per_day=80, end_date=END))
    for day in (END - timedelta(days=2), END - timedelta(days=1), END):
        a = [c for c in three if local_day(c) == day]
        b = [c for c in five if local_day(c) == day]
        assert a and a == b


# ------------------------------------------------------------------------------------ realism
def test_transfers_and_scenarios(week):
    assert 0.12 <= share(week, lambda c: c["transferred_to_operator"]) <= 0.30
    parts = Counter(p for c in week for p in c["scenario"].split(" + "))
    assert set(parts) == set(BASE_SCENARIOS)
    assert any(c["scenario"] == "tire_search + order_creation" for c in week)
    assert any(c["scenario"] == "tire_search + fitting_booking" for c in week)
    for call in week:
        transfers = [tc for tc in tool_calls(call) if tc["name"] == "transfer_to_operator"]
        assert {tc["name"] for tc in tool_calls(call)} <= SPEC_TOOLS
        if call["transferred_to_operator"]:
            assert call["transfer_reason"] in TRANSFER_REASONS
            last = call["turns"][-1]
            assert last["speaker"] == "bot"
            assert last["tool_calls"][-1]["name"] == "transfer_to_operator"
            assert last["tool_calls"][-1]["args"]["reason"] == call["transfer_reason"]
            assert len(transfers) == 1
        else:
            assert "transfer_reason" not in call and not transfers
    assert set(TRANSFER_REASONS) == {c["transfer_reason"] for c in week if c["transferred_to_operator"]}


def test_orders_fittings_and_names(week):
    orders = [c for c in week if c["order_created"]]
    fittings = [c for c in week if c["fitting_booked"]]
    assert len(orders) > 30 and len(fittings) > 30
    for call in week:
        # the call records the order's and the booking's uuid (the processor's columns hold uuids); the
        # tools answer with the human numbers
        if call["order_created"]:
            assert call["order_id"] == str(uuid.uuid5(uuid.UUID(call["call_id"]), "order"))
            confirmed = [tc for tc in tool_calls(call) if tc["name"] == "confirm_order" and tc["success"]]
            assert confirmed and re.fullmatch(r"ORD-\d{6}", confirmed[-1]["result"]["order_id"])
        else:
            assert "order_id" not in call
        if call["fitting_booked"]:
            assert call["fitting_booking_id"] == str(uuid.uuid5(uuid.UUID(call["call_id"]), "fitting_booking"))
            booked = [tc for tc in tool_calls(call) if tc["name"] == "book_fitting" and tc["success"]]
            assert booked and re.fullmatch(r"FIT-\d{5}", booked[-1]["result"]["booking_id"])
        else:
            assert "fitting_booking_id" not in call
        if call["order_created"] or call["fitting_booked"]:
            first, _last = call["customer_name"].split(" ")
            assert first in P.MALE_NAMES + P.FEMALE_NAMES
        else:
            assert "customer_name" not in call


def test_callers_repeat_and_some_are_hidden(week):
    ids = Counter(c["caller_id"] for c in week)
    for caller in ids:
        assert caller == "anonymous" or PHONE_RE.match(caller), caller
    repeat = share(week, lambda c: c["caller_id"] != "anonymous" and ids[c["caller_id"]] > 1)
    assert 0.15 <= repeat <= 0.45
    assert 0.005 <= ids["anonymous"] / len(week) <= 0.04
    # the regular customers are the same people whatever the day
    month = list(generate_calls(seed=42, days=30, calls_per_day=40, end_date=END, ab_test=None))
    days_per_caller = defaultdict(set)
    for c in month:
        days_per_caller[c["caller_id"]].add(local_day(c))
    assert sum(1 for c, d in days_per_caller.items() if c != "anonymous" and len(d) >= 3) > 10


def test_calls_are_split_between_the_demo_tenants(week):
    # the call processor serves two networks; a customer is a customer of one tenant (tenant, phone)
    assert DEMO_TENANT_SLUGS == ("shinservice", "prokoleso")
    tenants = Counter(c["tenant"] for c in week)
    assert set(tenants) == set(DEMO_TENANT_SLUGS)
    assert 0.5 <= tenants["shinservice"] / len(week) <= 0.7
    per_phone = defaultdict(set)
    for c in week:
        if c["caller_id"] != "anonymous":
            per_phone[c["caller_id"]].add(c["tenant"])
    both = [phone for phone, seen in per_phone.items() if len(seen) == 2]
    assert both  # numbers that are customers of both networks
    assert len(both) < 0.2 * len(per_phone)  # most callers stay with one network
    # any two days have a number calling both (the first regular customer, the tenants taking turns)
    two = list(generate_calls(seed=11, days=2, calls_per_day=20, end_date=END, ab_test=None))
    seen = defaultdict(set)
    for c in two:
        seen[c["caller_id"]].add(c["tenant"])
    assert any(len(v) == 2 for phone, v in seen.items() if phone != "anonymous")


def test_without_tenants_only_the_key_is_left_out():
    with_tenants = list(generate_calls(seed=4, days=2, calls_per_day=50, end_date=END))
    without = list(generate_calls(seed=4, days=2, calls_per_day=50, end_date=END, tenants=None))
    assert without and all("tenant" not in c for c in without)
    assert [{k: v for k, v in c.items() if k != "tenant"} for c in with_tenants] == without
    one = list(generate_calls(seed=4, days=1, calls_per_day=30, end_date=END, tenants=("shop",)))
    assert {c["tenant"] for c in one} == {"shop"}
    with pytest.raises(InvalidArgument):
        generate_calls(tenants=("shop", "shop"))


def test_volume_by_hour_and_weekday(week, by_day):
    hours = Counter(local_time(c).hour for c in week)
    assert max(hours, key=hours.get) in range(9, 20)
    assert sum(hours[h] for h in range(0, 6)) / len(week) < 0.02
    assert sum(hours[h] for h in (10, 11, 12, 17, 18)) > sum(hours[h] for h in (7, 8, 14, 15, 20))
    weekday = statistics.mean(len(v) for d, v in by_day.items() if d.weekday() < 5)
    weekend = statistics.mean(len(v) for d, v in by_day.items() if d.weekday() >= 5)
    assert 0.55 <= weekend / weekday <= 0.85
    assert 0.85 * 120 <= len(week) / 7 <= 1.15 * 120


def test_turn_metrics(week, by_day):
    spike_day = special_days(END, 7)["latency_spike"]
    llm, stt, tts, conf, interrupted = [], [], [], [], []
    for call in week:
        turns = call["turns"]
        assert [t["turn_number"] for t in turns] == list(range(1, len(turns) + 1))
        stamps = [datetime.fromisoformat(t["timestamp"]) for t in turns]
        assert stamps == sorted(stamps)
        start, end = datetime.fromisoformat(call["started_at"]), datetime.fromisoformat(call["ended_at"])
        assert start <= stamps[0] and stamps[-1] < end
        for turn, at, nxt in zip(turns, stamps, [*stamps[1:], end], strict=True):
            assert turn["duration_ms"] > 0
            assert at + timedelta(milliseconds=turn["duration_ms"]) <= nxt + timedelta(milliseconds=1)
            if turn["speaker"] == "customer":
                conf.append(turn["stt_confidence"])
                stt.append(turn["stt_latency_ms"])
                assert "llm_latency_ms" not in turn
            else:
                if local_day(call) != spike_day:
                    llm.append(turn["llm_latency_ms"])
                tts.append(turn["tts_latency_ms"])
                interrupted.append(turn["interrupted"])
                for tc in turn.get("tool_calls", []):
                    assert datetime.fromisoformat(tc["timestamp"]) <= at
                    assert tc["duration_ms"] >= 0 and isinstance(tc["success"], bool)
    assert 200 <= statistics.median(stt) <= 300
    assert 600 <= statistics.median(llm) <= 800
    assert 160 <= statistics.median(tts) <= 240
    assert max(llm) > 1500  # occasional spikes
    assert share(conf, lambda x: 0.85 <= x <= 0.98) > 0.8
    assert 0.02 <= share(interrupted, bool) <= 0.1


def test_phase_one_baseline_then_the_levers(ab_run):
    first_lever_day = END - timedelta(days=13)
    before = [c for c in ab_run if local_day(c) < first_lever_day]
    after = [c for c in ab_run if local_day(c) >= first_lever_day]
    assert before and after
    assert {c["usage"]["stt_provider"] for c in before} == {"google"}
    assert all(c["usage"]["tts_cached_chars"] == 0 for c in before)  # phase 1 had no phrase cache
    assert {c["usage"]["stt_provider"] for c in after} == {"whisper"}
    assert all(c["cost"]["stt"] == 0.0 for c in after)  # self-hosted: the month's GPU cost is shared later
    cached = sum(c["usage"]["tts_cached_chars"] for c in after) / sum(c["usage"]["tts_chars"] for c in after)
    assert 0.2 < cached < 0.6


def test_usage_and_cost(week):
    for call in week:
        usage, cost = call["usage"], call["cost"]
        assert usage["stt_provider"] == "whisper" and usage["tts_provider"] == "google"  # levers in production
        assert usage["llm_model"] in PRICES["llm"]
        assert usage["llm_input_tokens"] >= usage["llm_cached_input_tokens"] >= 0
        assert usage["tts_chars"] >= usage["tts_cached_chars"] >= 0
        assert usage["llm_calls"] >= sum(1 for t in call["turns"] if t["speaker"] == "bot")
        assert abs(cost["total_usd"] - (cost["stt"] + cost["llm"] + cost["tts"])) < 1e-6
        assert cost == compute_cost(usage)
        assert all(round(v, 6) == v for v in cost.values())
    mean = statistics.mean(c["cost"]["total_usd"] for c in week)
    assert 0.03 <= mean <= 0.2  # the spec's phase-1 baseline is ≈ $0.098 per call


def test_cost_at_the_spec_prices():
    usage = {
        "stt_provider": "google", "stt_seconds": 90.4, "llm_model": "claude-sonnet-4", "llm_calls": 4,
        "llm_input_tokens": 10_000, "llm_output_tokens": 1_600, "llm_cached_input_tokens": 0,
        "tts_provider": "google", "tts_chars": 600, "tts_cached_chars": 0,
    }  # fmt: skip
    cost = compute_cost(usage)
    assert cost["stt"] == pytest.approx(7 * 0.006)  # $0.006 per started 15 s
    assert cost["llm"] == pytest.approx(0.054)  # the spec's 4 turns of 2,500 in + 400 out
    assert cost["tts"] == pytest.approx(600 * 16 / 1e6)
    cached = compute_cost({**usage, "llm_cached_input_tokens": 10_000})
    assert cached["llm"] == pytest.approx(0.003 + 0.024)


# ------------------------------------------------------------------------------------ A/B
def test_ab_window_and_sticky_variants(ab_run):
    first_ab = END - timedelta(days=13)
    inside = [c for c in ab_run if local_day(c) >= first_ab]
    outside = [c for c in ab_run if local_day(c) < first_ab]
    assert inside and outside
    for call in outside:
        assert "ab_test" not in call and call["prompt_version"] == "tire_agent@v1"
    variants = defaultdict(set)
    for call in inside:
        ab = call["ab_test"]
        assert ab["test_name"] == DEMO_AB_TEST and ab["variant"] in ("A", "B")
        assert call["prompt_version"] == {"A": "tire_agent@v1", "B": "tire_agent@v2"}[ab["variant"]]
        if call["caller_id"] != "anonymous":
            variants[call["caller_id"]].add(ab["variant"])
            assert ab["variant"] == ab_variant(call["caller_id"], DEMO_AB_TEST)
    assert all(len(v) == 1 for v in variants.values())
    assert sum(1 for c in inside if c["caller_id"] != "anonymous" and len(variants[c["caller_id"]]) == 1) > 100
    b_share = share(inside, lambda c: c["ab_test"]["variant"] == "B")
    assert 0.4 <= b_share <= 0.6


def test_variant_b_transfers_less_and_costs_less(ab_run):
    inside = [c for c in ab_run if "ab_test" in c]
    a = [c for c in inside if c["ab_test"]["variant"] == "A"]
    b = [c for c in inside if c["ab_test"]["variant"] == "B"]
    transfer_a = share(a, lambda c: c["transferred_to_operator"])
    transfer_b = share(b, lambda c: c["transferred_to_operator"])
    assert transfer_b < transfer_a - 0.02
    cost_a = statistics.mean(c["cost"]["total_usd"] for c in a)
    cost_b = statistics.mean(c["cost"]["total_usd"] for c in b)
    assert cost_b < 0.8 * cost_a  # the seed's goal: cost per call down 20 %+
    confirms = share(b, lambda c: any(t["text"].startswith(("Уточню:", "Перевірю:")) for t in c["turns"]))
    assert confirms > 0.1 and not any(t["text"].startswith("Уточню:") for c in a for t in c["turns"])


def test_no_ab_test_means_no_key_anywhere():
    calls = list(generate_calls(seed=1, days=3, calls_per_day=60, end_date=END, ab_test=None))
    assert calls and all("ab_test" not in c and c["prompt_version"] == "tire_agent@v1" for c in calls)


def test_ab_variant_is_a_stable_hash():
    assert ab_variant("+380671234567", "t") == ab_variant("+380671234567", "t")
    assert Counter(ab_variant(f"+38067{i:07d}", "t") for i in range(2000))["B"] in range(900, 1101)


# ------------------------------------------------------------------------------------ injected problems
def test_stt_reasks_follow_low_confidence_turns(week):
    reasks = 0
    for call in week:
        turns = call["turns"]
        for prev, turn in itertools.pairwise(turns):
            low = prev["speaker"] == "customer" and prev["stt_confidence"] < 0.6
            reask = turn["speaker"] == "bot" and turn["text"].startswith(P.REASK_MARKER)
            assert low == reask, (prev, turn)
            reasks += reask
    assert reasks >= 10


def test_tool_errors(week):
    failed = [
        c
        for c in week
        if any(not tc["success"] and tc["result"]["error"] in ("timeout", "upstream_error", "internal_error")
               for tc in tool_calls(c))
    ]  # fmt: skip
    assert 0.01 <= len(failed) / len(week) <= 0.07


def test_validation_storms_injection_and_missing_greeting_every_day(by_day):
    for day, calls in by_day.items():
        storms = [
            c
            for c in calls
            if sum(1 for tc in tool_calls(c) if isinstance(tc["result"], dict)
                   and tc["result"].get("error") == "validation_failed") > 3
        ]  # fmt: skip
        assert storms, day
        assert all(c["transferred_to_operator"] for c in storms)

        def suspicious(call: dict) -> bool:
            for tc in tool_calls(call):
                if tc["name"] == "create_order_draft":
                    for item in tc["args"].get("items", []):
                        qty = item.get("quantity")
                        if item.get("price") == 0 or (isinstance(qty, int) and qty > 50):
                            return True
            return False

        assert any(suspicious(c) for c in calls), day
        assert any(not c["turns"][0]["text"].startswith(P.GREETING_MARKERS) for c in calls), day


def test_angry_and_confused_customers(week):
    angry = [c for c in week if c.get("transfer_reason") == "negative_emotion"]
    assert 0.005 <= len(angry) / len(week) <= 0.06
    for call in angry:
        assert any(t["speaker"] == "customer" and "!" in t["text"] for t in call["turns"])
    confused = [c for c in week if any(t["text"].startswith("Повторюю:") or "не розбираюся" in t["text"]
                                       or "що таке R16" in t["text"] for t in c["turns"])]  # fmt: skip
    assert confused


def test_special_days_relative_to_end_date():
    days = special_days(END, 30)
    assert days == {name: END - timedelta(days=off) for name, off in SPECIAL_DAY_OFFSETS.items()}
    assert special_days(END, 3) == {"latency_spike": END - timedelta(days=2)}
    assert special_days(END, 1) == {}


def test_latency_spike_window(week):
    day = special_days(END, 7)["latency_spike"]
    lo, hi = LATENCY_SPIKE_WINDOW
    spiked, normal = [], []
    for call in week:
        values = [t["llm_latency_ms"] for t in call["turns"] if t["speaker"] == "bot"]
        if local_day(call) == day and lo <= local_time(call) < hi:
            spiked += values
        else:
            normal += values
    assert len(spiked) >= 10
    assert statistics.median(spiked) > 3 * statistics.median(normal)


def test_cost_spike_day(by_day):
    day = special_days(END, 7)["cost_spike"]
    tokens = {d: statistics.mean(c["usage"]["llm_input_tokens"] for c in calls) for d, calls in by_day.items()}
    spend = {d: sum(c["cost"]["total_usd"] for c in calls) for d, calls in by_day.items()}
    others = [d for d in by_day if d != day]
    assert tokens[day] > 2.5 * statistics.mean(tokens[d] for d in others)
    assert spend[day] > 2 * statistics.mean(spend[d] for d in others)


def test_order_service_outage_day(by_day):
    day = special_days(END, 7)["order_status_outage"]
    calls = by_day[day]
    assert share(calls, lambda c: c["transferred_to_operator"]) >= 0.4
    failures = [tc for c in calls for tc in tool_calls(c) if not tc["success"] and tc["name"] in OUTAGE_TOOLS]
    assert any(tc["name"] == "get_order_status" for tc in failures)
    assert share(calls, lambda c: c.get("transfer_reason") == "cannot_help") >= 0.3
    for other, others in by_day.items():
        if other != day:
            assert share(others, lambda c: c["transferred_to_operator"]) < 0.35
