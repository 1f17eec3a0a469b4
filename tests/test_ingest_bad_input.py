"""Bad input: every case gets a clear error naming the record and field, and nothing is written."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from conftest import count_rows
from factories import DEFAULT_START, make_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccanalytics.core.errors import IngestValidationError
from ccanalytics.ingest.callog import validate_record
from ccanalytics.ingest.load import ingest

EMPTY = {"calls": 0, "call_turns": 0, "call_tool_calls": 0, "customers": 0}


def mutate(path: str, value, base=None):
    """A valid call with the field at dotted ``path`` set to ``value`` (``...`` deletes it)."""
    call = copy.deepcopy(base or make_call())
    *parents, last = path.split(".")
    node = call
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return call


BAD_CASES = [
    # (description, payload, field named in the error, words in the message)
    ("missing call_id", mutate("call_id", ...), "call_id", "Field required"),
    ("call_id not a uuid", mutate("call_id", "abc"), "call_id", "UUID"),
    ("started_at not a date", mutate("started_at", "yesterday"), "started_at", "datetime"),
    ("naive timestamp", mutate("started_at", "2026-11-20T08:00:00"), "started_at", "timezone"),
    (
        "ended before started",
        mutate("ended_at", (DEFAULT_START - timedelta(seconds=1)).isoformat()),
        "ended_at",
        "before started_at",
    ),
    ("negative duration", mutate("duration_seconds", -5), "duration_seconds", "greater than or equal to 0"),
    ("duration longer than the call", mutate("duration_seconds", 5000), "duration_seconds", "longer than"),
    ("duration as text", mutate("duration_seconds", "ninety"), "duration_seconds", "number"),
    ("transferred as string", mutate("transferred_to_operator", "yes"), "transferred_to_operator", "boolean"),
    (
        "reason without transfer",
        mutate("transfer_reason", "cannot_help"),
        "transfer_reason",
        "transferred_to_operator is false",
    ),
    ("unknown speaker", mutate("turns.1.speaker", "agent"), "turns.1.speaker", "'customer' or 'bot'"),
    ("missing text", mutate("turns.0.text", ...), "turns.0.text", "Field required"),
    ("text is a number", mutate("turns.0.text", 42), "turns.0.text", "string"),
    ("negative latency", mutate("turns.2.llm_latency_ms", -1), "turns.2.llm_latency_ms", "greater than or equal to 0"),
    (
        "confidence above one",
        mutate("turns.1.stt_confidence", 1.5),
        "turns.1.stt_confidence",
        "less than or equal to 1",
    ),
    ("NaN confidence", mutate("turns.1.stt_confidence", float("nan")), "turns.1.stt_confidence", "finite"),
    (
        "turn outside the call",
        mutate("turns.4.timestamp", (DEFAULT_START + timedelta(hours=3)).isoformat()),
        "turns.4.timestamp",
        "outside the call",
    ),
    (
        "duplicate turn numbers",
        mutate("turns.1.turn_number", 7, mutate("turns.0.turn_number", 7)),
        "turns.1.turn_number",
        "duplicates turn_number 7",
    ),
    ("10 MB transcript", mutate("turns.1.text", "шина " * 2_000_000), "turns.1.text", "the limit is 10,000"),
    ("NUL in text", mutate("turns.1.text", "шини\x00"), "turns.1.text", "NUL"),
    ("lone surrogate", mutate("turns.1.text", "шини \ud800"), "turns.1.text", "lone surrogate"),
    ("control character", mutate("turns.1.text", "шини\x1b[31m"), "turns.1.text", "U+001B"),
    (
        "NUL in tool args",
        mutate("turns.2.tool_calls.0.args", {"make": "Skoda\x00"}),
        "turns.2.tool_calls.0.args",
        "NUL",
    ),
    ("tool args not an object", mutate("turns.2.tool_calls.0.args", [1, 2]), "turns.2.tool_calls.0.args", "dictionary"),
    (
        "tool name with spaces",
        mutate("turns.2.tool_calls.0.name", "drop table"),
        "turns.2.tool_calls.0.name",
        "pattern",
    ),
    (
        "tool success as string",
        mutate("turns.2.tool_calls.0.success", "false"),
        "turns.2.tool_calls.0.success",
        "boolean",
    ),
    (
        "huge tool result",
        mutate("turns.2.tool_calls.1.result", {"x": "y" * 300_000}),
        "turns.2.tool_calls.1.result",
        "the limit is 262,144",
    ),
    (
        "deep tool result",
        mutate("turns.2.tool_calls.1.result", json.loads("[" * 40 + "]" * 40)),
        "turns.2.tool_calls.1.result",
        "nested deeper",
    ),
    ("unknown field", mutate("colour", "red"), "colour", "unknown field"),
    ("caller is not a phone", mutate("caller_id", "DROP TABLE calls"), "caller_id", "not a phone number"),
    ("scenario too long", mutate("scenario", "x" * 60), "scenario", "at most 50"),
    ("empty scenario part", mutate("scenario", "tire_search + "), "scenario", "joined by '+'"),
    ("negative cost", mutate("cost", {"stt": -0.01}), "cost.stt", "greater than or equal to 0"),
    ("cost extra not money", mutate("cost", {"telephony": "cheap"}), "cost", "USD"),
    (
        "order flag false with id",
        mutate("order_id", "ORD-1", mutate("order_created", False)),
        "order_created",
        "False but an id",
    ),
    ("too many turns", mutate("turns", [make_call()["turns"][0]] * 1001), "turns", "the limit is 1,000"),
]


@pytest.mark.parametrize(("description", "payload", "field", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_call_is_refused_with_a_clear_error_and_nothing_written(engine, description, payload, field, words):
    with pytest.raises(IngestValidationError) as info:
        ingest(engine, payload)
    problems = info.value.details[0]["problems"]
    assert any(p["field"] == field and words.lower() in p["message"].lower() for p in problems), problems
    assert f"record 0 (call_id {payload.get('call_id')})" in str(info.value) or "call_id" not in payload
    assert count_rows(engine) == EMPTY


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b"[]", "empty batch"),
        (b"42", "must be a JSON object"),
        (b'["a"]', "must be a JSON object"),
    ],
)
def test_malformed_json_is_refused(engine, raw, words):
    with pytest.raises(IngestValidationError, match=words):
        ingest(engine, raw)
    assert count_rows(engine) == EMPTY


def test_every_problem_of_a_record_is_reported_at_once():
    call = mutate("turns.1.speaker", "agent", mutate("duration_seconds", -1))
    problem = validate_record(call, 3)
    fields = {p.field for p in problem.problems}
    assert {"duration_seconds", "turns.1.speaker"} <= fields
    assert problem.describe().startswith(f"record 3 (call_id {call['call_id']}): ")


def test_unicode_that_is_fine_is_kept():
    text = "Ґанок, їжак, «лапки», emoji 🚗, RTL שלום, zero-width\u200bjoiner"
    valid = validate_record(mutate("turns.1.text", text), 0)
    assert valid.turns[1].text == text


# ------------------------------------------------------------------------------- property test
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PATHS = [
    "call_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "caller_id",
    "scenario",
    "transferred_to_operator",
    "transfer_reason",
    "order_created",
    "prompt_version",
    "turns",
    "turns.0",
    "turns.1.speaker",
    "turns.1.text",
    "turns.1.timestamp",
    "turns.1.stt_confidence",
    "turns.2.llm_latency_ms",
    "turns.2.tool_calls",
    "turns.2.tool_calls.0.name",
    "turns.2.tool_calls.0.args",
    "turns.2.tool_calls.0.duration_ms",
    "turns.2.tool_calls.0.success",
    "usage",
    "cost",
    "ab_test",
    "cost.stt",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.just(...), JSON_VALUES)), min_size=1, max_size=3)
)
def test_generated_bad_payloads_never_crash_or_half_write(engine, mutations):
    """Random corruptions of a valid call: either a clean IngestValidationError with nothing
    written, or (when the corruption happens to be valid) a complete write."""
    call = make_call(call_id="5b1f0e8e-8f0b-4c3e-9a56-3d2f1c0b9a77")
    for path, value in mutations:
        try:
            call = mutate(path, value, call)
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # the path no longer exists after an earlier mutation
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE calls, call_turns, call_tool_calls, customers, cca_call_ingest, cca_turn_extras, cca_ab_assignments"
        )
    try:
        result = ingest(engine, call)
    except IngestValidationError as exc:  # either outcome is fine here: refused whole, or stored whole
        assert exc.details and exc.details[0]["problems"], exc.details  # noqa: PT017
        assert count_rows(engine) == EMPTY
        assert _received(engine) == 0
    else:
        counts = count_rows(engine)
        assert counts["calls"] == 1 and counts["call_turns"] == result.turns
        assert counts["call_tool_calls"] == result.tool_calls
        assert _received(engine) == 1


def _received(engine) -> int:
    """Calls ccanalytics recorded as delivered (cca_call_ingest): written with the call or not at all."""
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM cca_call_ingest").scalar()
