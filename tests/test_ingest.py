"""Ingestion into the real PostgreSQL: what lands where, idempotency, replacement, customers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import count_rows
from factories import DEFAULT_START, TENANT, add_tenant, make_call, record_scores, running_ab_test, turn

from ccanalytics.core.errors import IngestValidationError, InvalidArgument
from ccanalytics.db import partitions
from ccanalytics.ingest import write as ingest_writer
from ccanalytics.ingest.callog import validate_record
from ccanalytics.ingest.load import ingest, ingest_records
from ccanalytics.ingest.prepare import prepare, tool_call_id, turn_id


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
    # the processor's calls row, as its call logger writes it: no order reference that is not a uuid
    raw = one(engine, "SELECT * FROM calls WHERE id = :id", id=call["call_id"])
    assert raw.order_id is None and raw.quality_score is None and raw.quality_details is None
    tenant_id = one(engine, "SELECT id FROM tenants WHERE slug = :s", s=TENANT).id
    assert raw.tenant_id == tenant_id  # without a "tenant" the call belongs to the only tenant
    # … and the call as ccanalytics reads it (cca_calls): the order reference and the usage it received
    row = one(engine, "SELECT * FROM cca_calls WHERE id = :id", id=call["call_id"])
    assert row.caller_id == "+380671234567"
    assert row.scenario == "tire_search + order_creation"
    assert row.order_id == "ORD-204518"
    assert row.duration_seconds == 90
    assert row.started_at == DEFAULT_START
    assert row.total_cost_usd == pytest.approx(0.018 + 0.027 + 0.00384)
    assert row.cost_breakdown == {"stt": 0.018, "llm": 0.027, "tts": 0.00384}
    assert row.usage["llm_input_tokens"] == 5000
    assert row.quality_score is None
    assert row.tenant == TENANT and row.ingested_at is not None and row.payload_sha256 is not None
    received = one(
        engine, "SELECT order_ref, booking_ref, usage FROM cca_call_ingest WHERE call_id = :id", id=call["call_id"]
    )
    assert (received.order_ref, received.booking_ref) == ("ORD-204518", None)

    cid = uuid.UUID(call["call_id"])
    turns = _fetch(
        engine,
        "SELECT id, turn_number, speaker, content, stt_confidence, llm_latency_ms, speech_duration_ms, created_at "
        "FROM cca_call_turns WHERE call_id = :id ORDER BY turn_number",
        id=call["call_id"],
    )
    assert [t.turn_number for t in turns] == [1, 2, 3, 4, 5]
    assert [t.id for t in turns] == [turn_id(cid, i) for i in range(5)]  # the same on every delivery
    assert [t.speaker for t in turns] == ["bot", "customer", "bot", "customer", "bot"]
    assert turns[1].stt_confidence == pytest.approx(0.93)
    assert turns[2].llm_latency_ms == 720
    assert {t.speech_duration_ms for t in turns} == {2500}  # ccanalytics's extras (cca_turn_extras)
    # turn_number of a tool call counts the call's tool calls, as the call processor's does; its place
    # in the dialogue is its created_at
    tools = _fetch(
        engine,
        "SELECT id, turn_number, tool_name, tool_args, tool_result, success, created_at "
        "FROM call_tool_calls WHERE call_id = :id ORDER BY turn_number",
        id=call["call_id"],
    )
    assert [(t.turn_number, t.tool_name) for t in tools] == [
        (1, "get_vehicle_tire_sizes"),
        (2, "search_tires"),
        (3, "create_order_draft"),
    ]
    assert [t.id for t in tools] == [tool_call_id(cid, n) for n in (1, 2, 3)]
    assert [t.created_at for t in tools] == [turns[i].created_at for i in (2, 2, 4)]  # no timestamp: the turn's
    assert tools[0].tool_args == {"make": "Skoda", "model": "Octavia", "year": 2017}
    assert tools[2].tool_result["order_id"] == "ORD-204518"

    customer = one(engine, "SELECT * FROM customers WHERE phone = '+380671234567'")
    assert (customer.name, customer.total_calls) == ("Олег Петренко", 1)
    assert customer.first_call_at == customer.last_call_at == DEFAULT_START
    assert customer.tenant_id == tenant_id
    assert raw.customer_id == customer.id


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
    with engine.begin() as conn:  # ccanalytics scored the first delivery
        assert record_scores(conn, "true", "0.9", {"criteria": {}}) == 1
    assert one(engine, "SELECT quality_score FROM cca_calls").quality_score == pytest.approx(0.9)
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
    row = one(engine, "SELECT transferred_to_operator, quality_score, quality_scored, started_at FROM cca_calls")
    assert row.transferred_to_operator is True and row.quality_score is None and not row.quality_scored
    assert row.started_at == DEFAULT_START - timedelta(seconds=5)
    # the old score stays as history, no longer current: the new delivery is scored again
    assert one(engine, "SELECT count(*) AS n, count(*) FILTER (WHERE is_current) AS current FROM call_scores") == (1, 0)
    assert one(engine, "SELECT count(*) FROM cca_call_ingest")[0] == 1
    assert one(engine, "SELECT count(*) FROM cca_turn_extras")[0] == 3
    assert one(engine, "SELECT total_calls FROM customers").total_calls == 1


def test_a_call_the_processor_wrote_itself_is_never_replaced(engine):
    """A call in the processor's tables without a delivery of ccanalytics (no cca_call_ingest row):
    delivering the same call_id is a problem of that record, whatever on_conflict says; nothing of the
    processor's call changes."""
    call = make_call()
    with engine.begin() as conn:
        partitions.ensure_months(conn, [DEFAULT_START.date()])  # the processor's partition manager
        conn.execute(
            sa.text(
                "INSERT INTO calls (id, caller_id, started_at, prompt_version, tenant_id) "
                "SELECT :id, '+380671234567', :at, 'default', id FROM tenants"
            ),
            {"id": call["call_id"], "at": DEFAULT_START},
        )
    for mode in ("replace", "error"):
        with pytest.raises(IngestValidationError, match="written by the call processor itself"):
            ingest(engine, call, on_conflict=mode)
    assert ingest(engine, call, on_conflict="ignore").ignored == 1
    row = one(engine, "SELECT ended_at, scenario, prompt_version FROM calls")
    assert tuple(row) == (None, None, "default")
    assert count_rows(engine) == {"calls": 1, "call_turns": 0, "call_tool_calls": 0, "customers": 0}
    assert one(engine, "SELECT count(*) FROM cca_call_ingest")[0] == 0


@pytest.mark.parametrize(("mode", "expected"), [("ignore", "ignored"), ("error", None)])
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
    assert one(engine, "SELECT count(*) FROM cca_call_ingest")[0] == 1


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


def test_new_customers_get_their_calls_and_existing_ones_are_never_changed(engine):
    """A caller new to its tenant becomes a customer with the counters of the calls that brought it; a
    customer ccanalytics created keeps counters equal to its calls through later deliveries (a corrected
    caller moves a call to the right customer), but its name stays the first one. A customer the
    processor created is never changed at all."""
    a = make_call(started_at=DEFAULT_START, customer_name="Олег")
    b = make_call(started_at=DEFAULT_START + timedelta(days=2), caller_id="0671234567")  # same phone, national form
    c = make_call(started_at=DEFAULT_START + timedelta(days=1), caller_id="+380501112233")
    ingest(engine, [a, b, c])
    rows = {r.phone: r for r in _fetch(engine, "SELECT * FROM customers")}
    assert rows["+380671234567"].total_calls == 2 and rows["+380671234567"].name == "Олег"
    assert rows["+380671234567"].first_call_at == DEFAULT_START
    assert rows["+380671234567"].last_call_at == DEFAULT_START + timedelta(days=2)
    assert rows["+380501112233"].total_calls == 1

    def counters():
        return {
            r.phone: (r.name, r.total_calls, r.first_call_at, r.last_call_at)
            for r in _fetch(engine, "SELECT * FROM customers")
        }

    # the caller of b was wrong and is corrected by re-delivery: the call moves to the other customer
    ingest(engine, dict(b, caller_id="+380501112233", customer_name="Інше ім'я"))
    owner = one(
        engine, "SELECT c.phone FROM calls k JOIN customers c ON c.id = k.customer_id WHERE k.id = :id", id=b["call_id"]
    )
    assert owner.phone == "+380501112233"
    # a further call of a known customer links to it
    d = make_call(started_at=DEFAULT_START + timedelta(days=3), customer_name="Хтось")
    ingest(engine, d)
    assert (
        one(engine, "SELECT customer_id FROM calls WHERE id = :id", id=d["call_id"]).customer_id
        == rows["+380671234567"].id
    )
    # … the counters follow the calls, the names stay
    assert counters() == {
        "+380671234567": ("Олег", 2, DEFAULT_START, DEFAULT_START + timedelta(days=3)),
        "+380501112233": (None, 2, DEFAULT_START + timedelta(days=1), DEFAULT_START + timedelta(days=2)),
    }

    # a customer the processor made is its own: a delivered call links to it and changes nothing
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO customers (id, tenant_id, phone, name, total_calls, first_call_at, last_call_at) "
                "SELECT gen_random_uuid(), id, '+380939998877', 'Марія', 7, :at, :at FROM tenants"
            ),
            {"at": DEFAULT_START - timedelta(days=30)},
        )
    before = _fetch(engine, "SELECT * FROM customers WHERE phone = '+380939998877'")
    e = make_call(started_at=DEFAULT_START + timedelta(days=4), caller_id="+380939998877", customer_name="Інна")
    ingest(engine, e)
    assert _fetch(engine, "SELECT * FROM customers WHERE phone = '+380939998877'") == before
    assert one(engine, "SELECT customer_id FROM calls WHERE id = :id", id=e["call_id"]).customer_id == before[0].id


def test_a_caller_is_a_customer_of_each_tenant_it_called(engine):
    with engine.begin() as conn:
        add_tenant(conn, "wheels", "Диски")
    one_call, other = make_call(tenant=TENANT), make_call(tenant="wheels")
    ingest(engine, [one_call, other])
    rows = _fetch(
        engine,
        "SELECT t.slug, c.phone, c.total_calls FROM customers c JOIN tenants t ON t.id = c.tenant_id ORDER BY t.slug",
    )
    assert rows == [(TENANT, "+380671234567", 1), ("wheels", "+380671234567", 1)]
    linked = _fetch(
        engine,
        "SELECT k.tenant_id = c.tenant_id FROM calls k JOIN customers c ON c.id = k.customer_id",
    )
    assert linked == [(True,), (True,)]
    # with two tenants a call log must say whose it is; an unknown slug is refused too
    for bad, message in (
        (make_call(), "tenant: is required: the database has 2 tenants"),
        (make_call(tenant="nope"), "unknown tenant 'nope'"),
    ):
        with pytest.raises(IngestValidationError, match=message):
            ingest(engine, bad)
    assert count_rows(engine)["calls"] == 2


def test_hidden_caller_has_no_customer(engine):
    ingest(engine, make_call(caller_id="anonymous"))
    row = one(engine, "SELECT caller_id, customer_id FROM calls")
    assert row.caller_id is None and row.customer_id is None
    assert count_rows(engine)["customers"] == 0


ORDER_UUID = "7d0f9a2e-52a4-4b8e-9d0c-1f2e3a4b5c6d"


@pytest.mark.parametrize(
    ("fields", "order_id", "booking_id"),
    [
        ({"order_created": True}, "", None),
        ({"order_created": False}, None, None),
        ({"order_created": None, "order_id": "ORD-1"}, "ORD-1", None),
        ({"order_created": "ORD-77", "fitting_booked": "FIT-5"}, "ORD-77", "FIT-5"),
        ({"order_created": None, "fitting_booked": True, "fitting_booking_id": "FIT-9"}, None, "FIT-9"),
        ({"order_created": ORDER_UUID}, ORDER_UUID, None),
    ],
)
def test_order_and_fitting_flags_or_ids(engine, fields, order_id, booking_id):
    ingest(engine, make_call(**fields))
    row = one(engine, "SELECT order_id, fitting_booking_id FROM cca_calls")
    assert (row.order_id, row.fitting_booking_id) == (order_id, booking_id)
    # the processor's columns hold only uuids; any other reference is ccanalytics's (cca_call_ingest)
    raw = one(engine, "SELECT order_id::text, fitting_booking_id::text FROM calls")
    assert raw.order_id == (order_id if order_id == ORDER_UUID else None) and raw.fitting_booking_id is None


def test_usage_block_with_money_is_read_as_cost(engine):
    # the spec names the block "usage/cost": {stt, llm, tts, total_usd}
    call = make_call(usage={"stt": 0.042, "llm": 0.054, "tts": 0.0096, "total_usd": 0.1056})
    del call["cost"]
    ingest(engine, call)
    row = one(engine, "SELECT total_cost_usd, cost_breakdown FROM calls")
    assert row.total_cost_usd == pytest.approx(0.1056)
    assert row.cost_breakdown == {"stt": 0.042, "llm": 0.054, "tts": 0.0096}
    assert one(engine, "SELECT usage FROM cca_call_ingest").usage is None
    assert one(engine, "SELECT usage FROM cca_calls").usage is None


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
            make_call(ab_test={"test_id": str(test_id), "variant": "A"}),
        ],
    )
    assert sorted(_fetch(engine, "SELECT ab_test_id, ab_variant FROM cca_calls")) == [(test_id, "A"), (test_id, "B")]
    assert {r.source for r in _fetch(engine, "SELECT source FROM cca_ab_assignments")} == {"ingest"}
    # the processor's call records no variant (its prompt_version is what the log said)
    assert {r.prompt_version for r in _fetch(engine, "SELECT prompt_version FROM calls")} == {"tire_agent@v1"}
    for bad, message in (
        ({"test_name": "nope", "variant": "A"}, "unknown A/B test 'nope'"),
        ({"test_id": str(uuid.uuid4()), "variant": "A"}, "unknown A/B test id"),
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
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count_rows(engine) == {"calls": 1, "call_turns": 5, "call_tool_calls": 3, "customers": 1}


def test_concurrent_first_deliveries_of_one_new_caller_make_one_customer(engine, monkeypatch):
    """Two calls of a caller new to the tenant, written at once. The customer lock serialises the two
    writers: exactly one customer is made, with the name of the first writer's call, both calls link to
    it, and the second writer brings its counters up to both calls (it is ccanalytics's customer).
    Here A pauses while making the customer, holding its lock, and B has to wait for A."""
    phone = "+380675550001"
    call_a = make_call(caller_id=phone, started_at=DEFAULT_START, customer_name="Анна")
    call_b = prepare(
        validate_record(
            make_call(caller_id=phone, started_at=DEFAULT_START + timedelta(minutes=5), customer_name="Інна"), 0
        )
    )
    a_paused, go_a, b_done = (threading.Event() for _ in range(3))
    errors = []
    customers = ingest_writer._customers

    def paused_customers(conn, calls, tenants):
        if threading.current_thread().name == "A":
            a_paused.set()
            go_a.wait()
        return customers(conn, calls, tenants)

    monkeypatch.setattr(ingest_writer, "_customers", paused_customers)

    def deliver_a():
        try:
            ingest(engine, call_a)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    def deliver_b():
        try:
            with engine.connect() as conn:
                ingest_writer.write_calls(conn, [call_b], "replace")
                conn.commit()
            b_done.set()
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    def waiting_on_a_lock():
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar()

    thread_a = threading.Thread(target=deliver_a, name="A")
    thread_b = threading.Thread(target=deliver_b, name="B")
    thread_a.start()
    try:
        assert a_paused.wait(30)
        thread_b.start()
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waiting_on_a_lock() and not b_done.is_set()  # B waits for A's customer lock
    finally:
        go_a.set()
        thread_a.join()
        if thread_b.is_alive() or b_done.is_set():
            thread_b.join()
    assert errors == []
    rows = _fetch(
        engine, "SELECT id, name, total_calls, first_call_at, last_call_at FROM customers WHERE phone = :p", p=phone
    )
    assert len(rows) == 1
    assert tuple(rows[0])[1:] == ("Анна", 2, DEFAULT_START, DEFAULT_START + timedelta(minutes=5))
    linked = _fetch(engine, "SELECT customer_id FROM calls WHERE caller_id = :p", p=phone)
    assert [r.customer_id for r in linked] == [rows[0].id] * 2


def test_text_is_stored_nfc_normalised_and_searchable(engine):
    decomposed = "Ви\u0306 ми\u0306ду"  # й written as и + combining breve
    t0 = DEFAULT_START + timedelta(seconds=1)
    ingest(engine, make_call(turns=[turn("customer", f"Зимові шини, {decomposed}, п’ять штук", t0)]))
    content = one(engine, "SELECT content FROM call_turns").content
    assert "Вй мйду" in content
    # inflected Ukrainian forms and apostrophe variants find the turn
    for query in ("зимова шина", "шинами", "п'ять", "пʼять"):
        found = one(
            engine,
            "SELECT count(*) AS n FROM call_turns WHERE cca_search_vector(content) @@ cca_search_query(:q)",
            q=query,
        )
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
