"""Ingestion into the real PostgreSQL: what lands where, idempotency, replacement, customers."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import count_rows
from factories import DEFAULT_START, make_call, running_ab_test, turn

from ccanalytics import ingest as ingest_module
from ccanalytics.callog import validate_record
from ccanalytics.errors import IngestValidationError, InvalidArgument
from ccanalytics.ingest import _write, ingest, ingest_records
from ccanalytics.ingest_prepare import prepare


def one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def test_single_call_lands_with_turns_tool_calls_and_customer(engine):
    call = make_call(customer_name="Олег Петренко")
    result = ingest(engine, call)
    assert result.summary() == {
        "inserted": 1,
        "replaced": 0,
        "unchanged": 0,
        "ignored": 0,
        "rejected": 0,
        "turns": 5,
        "tool_calls": 3,
    }
    row = one(engine, "SELECT * FROM calls WHERE id = :id", id=call["call_id"])
    assert row.caller_id == "+380671234567"
    assert row.scenario == "tire_search + order_creation"
    assert row.order_id == "ORD-204518"
    assert row.duration_seconds == 90
    assert row.started_at == DEFAULT_START
    assert row.total_cost_usd == pytest.approx(0.018 + 0.027 + 0.00384)
    assert row.cost_breakdown == {"stt": 0.018, "llm": 0.027, "tts": 0.00384}
    assert row.usage["llm_input_tokens"] == 5000
    assert row.quality_score is None

    turns = _fetch(
        engine,
        "SELECT turn_number, speaker, content, stt_confidence, llm_latency_ms "
        "FROM call_turns WHERE call_id = :id ORDER BY turn_number",
        id=call["call_id"],
    )
    assert [t.turn_number for t in turns] == [1, 2, 3, 4, 5]
    assert [t.speaker for t in turns] == ["bot", "customer", "bot", "customer", "bot"]
    assert turns[1].stt_confidence == pytest.approx(0.93)
    assert turns[2].llm_latency_ms == 720
    tools = _fetch(
        engine,
        "SELECT turn_number, tool_name, tool_args, tool_result, success "
        "FROM call_tool_calls WHERE call_id = :id ORDER BY id",
        id=call["call_id"],
    )
    assert [(t.turn_number, t.tool_name) for t in tools] == [
        (3, "get_vehicle_tire_sizes"),
        (3, "search_tires"),
        (5, "create_order_draft"),
    ]
    assert tools[0].tool_args == {"make": "Skoda", "model": "Octavia", "year": 2017}
    assert tools[2].tool_result["order_id"] == "ORD-204518"

    customer = one(engine, "SELECT * FROM customers WHERE phone = '+380671234567'")
    assert (customer.name, customer.total_calls) == ("Олег Петренко", 1)
    assert customer.first_call_at == customer.last_call_at == DEFAULT_START
    assert row.customer_id == customer.id


def test_redelivery_of_the_same_call_is_a_no_op(engine):
    call = make_call()
    ingest(engine, call)
    before = count_rows(engine)
    again = ingest(engine, json.dumps(call))  # same content, as JSON text, keys in another order
    assert (again.inserted, again.unchanged, again.turns) == (0, 1, 0)
    assert count_rows(engine) == before
    assert one(engine, "SELECT total_calls FROM customers").total_calls == 1


def test_changed_redelivery_replaces_the_call_and_clears_its_score(engine):
    call = make_call()
    ingest(engine, call)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.9"))
    changed = dict(
        call,
        turns=call["turns"][:3],
        transferred_to_operator=True,
        transfer_reason="cannot_help",
        started_at=(DEFAULT_START - timedelta(seconds=5)).isoformat(),
    )
    result = ingest(engine, changed)
    assert (result.replaced, result.inserted, result.turns, result.tool_calls) == (1, 0, 3, 2)
    assert count_rows(engine) == {"calls": 1, "call_turns": 3, "call_tool_calls": 2, "customers": 1}
    row = one(engine, "SELECT transferred_to_operator, quality_score, started_at FROM calls")
    assert row.transferred_to_operator is True and row.quality_score is None
    assert row.started_at == DEFAULT_START - timedelta(seconds=5)
    assert one(engine, "SELECT total_calls FROM customers").total_calls == 1


@pytest.mark.parametrize("mode,expected", [("ignore", "ignored"), ("error", None)])
def test_on_conflict_ignore_and_error_keep_the_stored_call(engine, mode, expected):
    call = make_call()
    ingest(engine, call)
    changed = dict(call, scenario="consultation")
    if expected:
        assert getattr(ingest(engine, changed, on_conflict=mode), expected) == 1
    else:
        with pytest.raises(IngestValidationError, match="already stored with different content"):
            ingest(engine, changed, on_conflict=mode)
    assert one(engine, "SELECT scenario FROM calls").scenario == "tire_search + order_creation"


def test_unknown_on_conflict_mode_is_refused(engine):
    with pytest.raises(InvalidArgument):
        ingest(engine, make_call(), on_conflict="merge")


def test_batch_is_all_or_nothing(engine):
    good = [make_call(), make_call()]
    bad = make_call()
    bad["turns"][1]["speaker"] = "agent"
    with pytest.raises(IngestValidationError) as info:
        ingest(engine, [*good, bad])
    assert "record 2" in str(info.value) and "turns.1.speaker" in str(info.value)
    assert info.value.details[0]["record"] == 2
    assert count_rows(engine) == {"calls": 0, "call_turns": 0, "call_tool_calls": 0, "customers": 0}
    assert ingest(engine, good).inserted == 2


def test_same_call_twice_in_one_batch_is_refused(engine):
    call = make_call()
    with pytest.raises(IngestValidationError, match="appears twice"):
        ingest(engine, [call, dict(call)])
    assert count_rows(engine)["calls"] == 0


def test_customer_totals_follow_calls_and_caller_changes(engine):
    a = make_call(started_at=DEFAULT_START)
    b = make_call(started_at=DEFAULT_START + timedelta(days=2), caller_id="0671234567")  # same phone, national form
    c = make_call(started_at=DEFAULT_START + timedelta(days=1), caller_id="+380501112233")
    ingest(engine, [a, b, c])
    rows = {r.phone: r for r in _fetch(engine, "SELECT * FROM customers")}
    assert rows["+380671234567"].total_calls == 2
    assert rows["+380671234567"].last_call_at == DEFAULT_START + timedelta(days=2)
    assert rows["+380501112233"].total_calls == 1
    # the caller of b was wrong and is corrected by re-delivery: counts move with it
    ingest(engine, dict(b, caller_id="+380501112233"))
    rows = {r.phone: r for r in _fetch(engine, "SELECT * FROM customers")}
    assert rows["+380671234567"].total_calls == 1
    assert rows["+380671234567"].last_call_at == DEFAULT_START
    assert rows["+380501112233"].total_calls == 2


def test_hidden_caller_has_no_customer(engine):
    ingest(engine, make_call(caller_id="anonymous"))
    row = one(engine, "SELECT caller_id, customer_id FROM calls")
    assert row.caller_id is None and row.customer_id is None
    assert count_rows(engine)["customers"] == 0


@pytest.mark.parametrize(
    "fields,order_id,booking_id",
    [
        ({"order_created": True}, "", None),
        ({"order_created": False}, None, None),
        ({"order_created": None, "order_id": "ORD-1"}, "ORD-1", None),
        ({"order_created": "ORD-77", "fitting_booked": "FIT-5"}, "ORD-77", "FIT-5"),
        ({"order_created": None, "fitting_booked": True, "fitting_booking_id": "FIT-9"}, None, "FIT-9"),
    ],
)
def test_order_and_fitting_flags_or_ids(engine, fields, order_id, booking_id):
    ingest(engine, make_call(**fields))
    row = one(engine, "SELECT order_id, fitting_booking_id FROM calls")
    assert (row.order_id, row.fitting_booking_id) == (order_id, booking_id)


def test_usage_block_with_money_is_read_as_cost(engine):
    # the spec names the block "usage/cost": {stt, llm, tts, total_usd}
    call = make_call(usage={"stt": 0.042, "llm": 0.054, "tts": 0.0096, "total_usd": 0.1056})
    del call["cost"]
    ingest(engine, call)
    row = one(engine, "SELECT total_cost_usd, cost_breakdown, usage FROM calls")
    assert row.total_cost_usd == pytest.approx(0.1056)
    assert row.cost_breakdown == {"stt": 0.042, "llm": 0.054, "tts": 0.0096}
    assert row.usage is None


def test_partitions_are_created_for_old_months_on_the_fly(engine):
    old = datetime(2024, 2, 29, 23, 59, 0, tzinfo=UTC)
    ingest(engine, make_call(started_at=old, seconds=120))  # turns cross into March
    with engine.connect() as conn:
        parts = (
            conn.execute(sa.text("SELECT tableoid::regclass::text FROM call_turns ORDER BY created_at")).scalars().all()
        )
    assert parts[0] == "call_turns_2024_02" and parts[-1] == "call_turns_2024_03"


def test_ab_assignment_is_resolved_by_name_or_id(engine):
    with engine.begin() as conn:
        test_id, _, _ = running_ab_test(conn)
    ingest(
        engine,
        [
            make_call(ab_test={"test_name": "greeting", "variant": "B"}),
            make_call(ab_test={"test_id": test_id, "variant": "A"}),
        ],
    )
    assert sorted(_fetch(engine, "SELECT ab_test_id, ab_variant FROM calls")) == [(test_id, "A"), (test_id, "B")]
    for bad, message in (
        ({"test_name": "nope", "variant": "A"}, "unknown A/B test 'nope'"),
        ({"test_id": test_id + 100, "variant": "A"}, "unknown A/B test id"),
        ({"variant": "A"}, "needs test_id or test_name"),
    ):
        with pytest.raises(IngestValidationError, match=message):
            ingest(engine, make_call(ab_test=bad))
    assert count_rows(engine)["calls"] == 2


def test_concurrent_deliveries_of_the_same_call_store_it_once(engine):
    call = make_call()
    errors = []

    def deliver():
        try:
            ingest(engine, call)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count_rows(engine) == {"calls": 1, "call_turns": 5, "call_tool_calls": 3, "customers": 1}


def test_concurrent_deliveries_for_one_caller_keep_the_customer_counters_exact(engine, monkeypatch):
    """Two calls of a known caller written at once. Each transaction recounts the customer's calls; a
    recount that starts before the other transaction commits misses its call, and when that other
    transaction has already updated the counters, the late recount keeps them as they are: one short.
    Here A pauses before its recount while B writes everything and holds its transaction open."""
    phone = "+380675550001"
    ingest(engine, make_call(caller_id=phone, started_at=DEFAULT_START - timedelta(hours=1)))
    call_a = make_call(caller_id=phone, started_at=DEFAULT_START)
    call_b = prepare(validate_record(make_call(caller_id=phone, started_at=DEFAULT_START + timedelta(minutes=5)), 0))
    a_paused, go_a, b_written, commit_b = (threading.Event() for _ in range(4))
    errors = []
    refresh = ingest_module._refresh_customer_totals

    def paused_refresh(conn, customer_ids):
        if threading.current_thread().name == "A":
            a_paused.set()
            go_a.wait()
        refresh(conn, customer_ids)

    monkeypatch.setattr(ingest_module, "_refresh_customer_totals", paused_refresh)

    def deliver_a():
        try:
            ingest(engine, call_a)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def deliver_b():
        with engine.connect() as conn:
            _write(conn, [call_b], "replace")
            b_written.set()
            commit_b.wait()
            conn.commit()

    def waiting_on_a_lock():
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar()

    thread_a = threading.Thread(target=deliver_a, name="A")
    thread_b = threading.Thread(target=deliver_b, name="B")
    thread_a.start()
    assert a_paused.wait(30)
    thread_b.start()
    while not b_written.is_set() and not waiting_on_a_lock():  # B written, or B waits for A
        b_written.wait(0.01)
    go_a.set()
    while not (b_written.is_set() and (not thread_a.is_alive() or waiting_on_a_lock())):
        thread_a.join(0.01)  # A committed, or A's recount waits for B's transaction
    commit_b.set()
    thread_a.join()
    thread_b.join()
    assert errors == []
    total, first_at, last_at = one(
        engine, "SELECT total_calls, first_call_at, last_call_at FROM customers WHERE phone = :p", p=phone
    )
    assert (total, first_at, last_at) == (3, DEFAULT_START - timedelta(hours=1), DEFAULT_START + timedelta(minutes=5))


def test_text_is_stored_nfc_normalised_and_searchable(engine):
    decomposed = "Ви\u0306 ми\u0306ду"  # й written as и + combining breve
    t0 = DEFAULT_START + timedelta(seconds=1)
    ingest(engine, make_call(turns=[turn("customer", f"Зимові шини, {decomposed}, п’ять штук", t0)]))
    content = one(engine, "SELECT content FROM call_turns").content
    assert "Вй мйду" in content
    # inflected Ukrainian forms and apostrophe variants find the turn
    for query in ("зимова шина", "шинами", "п'ять", "пʼять"):
        found = one(engine, "SELECT count(*) AS n FROM call_turns WHERE search_tsv @@ cca_search_query(:q)", q=query)
        assert found.n == 1, query


def test_ingest_records_loads_in_batches(engine):
    calls = [make_call(started_at=DEFAULT_START + timedelta(minutes=i)) for i in range(25)]
    result = ingest_records(engine, calls, batch_size=10)
    assert (result.inserted, result.turns) == (25, 125)


def _fetch(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_call_id_must_be_a_uuid(engine):
    with pytest.raises(IngestValidationError, match="call_id"):
        ingest(engine, make_call(call_id="1700000000.123"))
    assert uuid.UUID(make_call()["call_id"])
