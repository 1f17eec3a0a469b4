"""Tool calls are placed in the dialogue by time: the call processor's call_tool_calls.turn_number counts
tool calls, not turns (../shared/callcenter-schema.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from factories import make_call

from ccanalytics.analytics import journal
from ccanalytics.ingest.dialogue import place_tools
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality.store import load_calls

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


TURNS = [(1, "bot", at(0)), (2, "customer", at(5)), (3, "bot", at(12)), (4, "customer", at(20)), (5, "bot", at(30))]


def test_a_tool_belongs_to_the_first_bot_turn_at_or_after_it():
    # between the customer's words and the bot's reply; at the same instant as a bot turn; after the
    # last bot turn (the caller hung up); before the first turn
    tools = [at(8), at(12), at(25), at(29.9), at(45), at(-3)]
    assert place_tools(TURNS, tools) == [3, 3, 5, 5, 5, 1]


def test_calls_without_bot_turns_or_without_turns():
    assert place_tools([(1, "customer", at(0)), (2, "customer", at(4))], [at(1), at(9)]) == [2, 2]
    assert place_tools([], [at(1)]) == [None]
    assert place_tools(TURNS, []) == []


def test_the_processors_numbering_places_tools_after_the_right_turns(engine):
    """The processor's rows: turns INSERTed as they happen, tool calls numbered 1, 2, 3 within the call
    and stamped when they ran, between the customer's turn and the bot's reply."""
    call = make_call(caller_id=None)
    ingest_records(engine, [call])
    cid = uuid.UUID(call["call_id"])
    with engine.begin() as conn:  # what the call processor writes instead of the turn of the call log
        conn.execute(
            sa.text(
                "UPDATE call_tool_calls x SET turn_number = n.k, created_at = n.created_at - interval '2 seconds' "
                "FROM (SELECT id, row_number() OVER (ORDER BY created_at, turn_number) AS k, created_at FROM call_tool_calls "
                "WHERE call_id = :c) n WHERE x.id = n.id"
            ),
            {"c": cid},
        )
        numbers = conn.execute(
            sa.text("SELECT turn_number FROM call_tool_calls WHERE call_id = :c ORDER BY created_at, turn_number"),
            {"c": cid},
        ).scalars()
        assert list(numbers) == [1, 2, 3]  # the numbers of the first turns: placing by them would be wrong
        view = load_calls(conn, [cid])[cid]
    expected = {3: ["get_vehicle_tire_sizes", "search_tires"], 5: ["create_order_draft"]}
    assert {t.number: [u.name for u in t.tools] for t in view.turns if t.tools} == expected
    details = journal.call_detail(engine, str(cid))
    assert {t["turn_number"]: [u["tool_name"] for u in t["tools"]] for t in details["turns"] if t["tools"]} == expected
