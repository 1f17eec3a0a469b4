"""Validated call logs as COPY text.

:func:`prepare` turns a :class:`~ccanalytics.ingest.callog.ValidCall` into the exact text ``COPY … FROM
STDIN`` reads (PostgreSQL's text format), reusing the JSON text validation already produced, plus
what the writer needs to know about the call. Every entry point writes through it, so a call is
stored the same way whichever path it took. It runs in the worker processes of a bulk load
(:mod:`ccanalytics.ingest.pipeline`), so it imports little: the validator and psycopg's Jsonb.

:func:`call_row`, :func:`turn_rows` and :func:`tool_rows` give the same rows as Python values, for
parameter binding (the benchmark's row-by-row baseline; a test holds the two forms equal).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb

from ccanalytics.core.errors import FieldProblem, RecordProblem
from ccanalytics.ingest.callog import DEFAULT_LIMITS, Limits, ValidCall, validate_json

# the call processor's columns, as its call logger fills them (../shared/callcenter-schema.md)
CALL_COLUMNS = (
    "id",
    "caller_id",
    "customer_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "scenario",
    "transferred_to_operator",
    "transfer_reason",
    "order_id",
    "fitting_booking_id",
    "prompt_version",
    "cost_breakdown",
    "total_cost_usd",
    "tenant_id",
)
# what only ccanalytics keeps about a delivered call (cca_call_ingest)
INGEST_COLUMNS = ("call_id", "started_at", "usage", "payload_sha256", "order_ref", "booking_ref")
TURN_COLUMNS = (
    "id",
    "call_id",
    "turn_number",
    "speaker",
    "content",
    "stt_confidence",
    "stt_latency_ms",
    "llm_latency_ms",
    "tts_latency_ms",
    "created_at",
)
TURN_EXTRA_COLUMNS = ("turn_id", "call_id", "speech_duration_ms", "interrupted")
# turn_number of a tool call counts the tool calls of the call (1, 2, …), as the call processor's does;
# its place in the dialogue is its created_at (ccanalytics.ingest.dialogue)
TOOL_COLUMNS = (
    "id",
    "call_id",
    "turn_number",
    "tool_name",
    "tool_args",
    "tool_result",
    "duration_ms",
    "success",
    "created_at",
)
# the two columns only the database can resolve go last: the writer appends them to a prepared line
_RESOLVED = ("customer_id", "tenant_id")
CALL_COPY_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in _RESOLVED) + _RESOLVED

NULL = "\\N"
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_BOOL = {True: "t", False: "f", None: NULL}


class PreparedCall(NamedTuple):
    """A validated call as COPY text plus what the writer needs to know about it."""

    call_id: uuid.UUID
    started_utc: str  # started_at in UTC, ISO 8601 with microseconds: compares as text
    months: tuple[date, ...]  # UTC months of the call, its turns and tool calls (partitions needed)
    caller_id: str | None
    customer_name: str | None  # stripped; None when absent or blank
    tenant: str | None  # the tenant's slug as delivered
    ab_test: tuple[uuid.UUID | None, str | None, str] | None  # (test_id, test_name, variant)
    payload_sha256: bytes
    call_line: bytes  # calls row in CALL_COPY_COLUMNS order without the last two columns, no newline
    ingest_line: bytes  # cca_call_ingest row, INGEST_COLUMNS order, newline-terminated
    turn_lines: bytes  # call_turns rows, TURN_COLUMNS order, newline-terminated
    extra_lines: bytes  # cca_turn_extras rows, TURN_EXTRA_COLUMNS order, newline-terminated
    tool_lines: bytes  # call_tool_calls rows, TOOL_COLUMNS order, newline-terminated
    turns: int
    tool_calls: int


def _text(value: str | None) -> str:
    """A text field in COPY text format: backslash, newline, carriage return and tab escaped."""
    if value is None:
        return NULL
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def _num(value: float | None) -> str:
    return NULL if value is None else repr(value)


def _ms(value: float | None) -> str:
    return NULL if value is None else str(round(value))


def _month(moment: datetime) -> date:
    """The UTC month of ``moment`` (its partition); as partitions.month_start, without SQLAlchemy."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def _month_bounds(moment: datetime) -> tuple[date, datetime, datetime]:
    """The UTC month of ``moment``, and the instants it starts and ends at."""
    month = _month(moment)
    lo = datetime(month.year, month.month, 1, tzinfo=UTC)
    return month, lo, datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def turn_id(call_id: uuid.UUID, index: int) -> uuid.UUID:
    """The id of the ``index``-th turn of a delivered call: the same on every delivery of the call."""
    return uuid.uuid5(call_id, f"turn/{index}")


def tool_call_id(call_id: uuid.UUID, index: int) -> uuid.UUID:
    """The id of the ``index``-th tool call of a delivered call."""
    return uuid.uuid5(call_id, f"tool/{index}")


def split_ref(ref: str | None) -> tuple[str | None, str | None]:
    """An order or booking reference as (the processor's uuid column, ccanalytics's text reference): a
    uuid goes to the processor's column; any other id, or '' for "created, id unknown", is kept by
    ccanalytics (cca_call_ingest), since the processor's column holds only uuids."""
    if ref is None:
        return None, None
    try:
        return str(uuid.UUID(ref)), None
    except ValueError:
        return None, ref


def prepare(valid: ValidCall, record: int | str = 0) -> PreparedCall | RecordProblem:
    """The COPY text of a validated call. A call whose text cannot be encoded as UTF-8 (a lone
    surrogate in a field validation does not inspect) is a problem of the record, not a crash."""
    log = valid.log
    cid = str(log.call_id)
    cost = log.cost
    ab = log.ab_test
    order_id, order_ref = split_ref(valid.order_id)
    booking_id, booking_ref = split_ref(valid.fitting_booking_id)
    call_line = "\t".join(
        (
            cid,
            _text(valid.caller_id),
            log.started_at.isoformat(),
            log.ended_at.isoformat(),
            str(valid.duration_seconds),
            _text(log.scenario),
            _BOOL[log.transferred_to_operator],
            _text(log.transfer_reason),
            _text(order_id),
            _text(booking_id),
            _text(log.prompt_version),
            _text(_JSON.encode(cost.components())) if cost else NULL,
            _num(cost.total()) if cost else NULL,
        )
    )
    ingest_line = (
        "\t".join(
            (
                cid,
                log.started_at.isoformat(),
                _text(valid.usage_json),
                "\\\\x" + valid.payload_sha256.hex(),
                _text(order_ref),
                _text(booking_ref),
            )
        )
        + "\n"
    )
    # partitions the rows need: the call's month, and any other month a timestamp falls in
    month, month_lo, month_hi = _month_bounds(log.started_at)
    months = {month, _month(log.ended_at)}
    turn_lines: list[str] = []
    extra_lines: list[str] = []
    tool_lines: list[str] = []
    tool_json = iter(valid.tool_json)
    for index, turn in enumerate(valid.turns):
        stamp = turn.timestamp
        if not month_lo <= stamp < month_hi:
            months.add(_month(stamp))
        created = stamp.isoformat()
        tid = str(turn_id(log.call_id, index))
        turn_lines.append(
            f"{tid}\t{cid}\t{turn.turn_number}\t{turn.speaker}\t{_text(turn.text)}\t{_num(turn.stt_confidence)}\t"
            f"{_ms(turn.stt_latency_ms)}\t{_ms(turn.llm_latency_ms)}\t{_ms(turn.tts_latency_ms)}\t{created}\n"
        )
        if turn.duration_ms is not None or turn.interrupted is not None:
            extra_lines.append(f"{tid}\t{cid}\t{_ms(turn.duration_ms)}\t{_BOOL[turn.interrupted]}\n")
        for tc in turn.tool_calls:
            args, result = next(tool_json)
            tool_stamp = tc.timestamp
            if tool_stamp is None:
                tool_created = created
            else:
                if not month_lo <= tool_stamp < month_hi:
                    months.add(_month(tool_stamp))
                tool_created = tool_stamp.isoformat()
            number = len(tool_lines) + 1
            tool_lines.append(
                f"{tool_call_id(log.call_id, number)}\t{cid}\t{number}\t{_text(tc.name)}\t{_text(args)}\t"
                f"{_text(result)}\t{_ms(tc.duration_ms)}\t{_BOOL[tc.success]}\t{tool_created}\n"
            )
    try:
        encoded = (
            call_line.encode(),
            ingest_line.encode(),
            "".join(turn_lines).encode(),
            "".join(extra_lines).encode(),
            "".join(tool_lines).encode(),
        )
    except UnicodeEncodeError:
        return RecordProblem(record, cid, (FieldProblem("", "contains invalid Unicode (a lone surrogate)"),))
    name = log.customer_name.strip() if log.customer_name else None
    return PreparedCall(
        call_id=log.call_id,
        started_utc=log.started_at.astimezone(UTC).isoformat(timespec="microseconds"),
        months=tuple(sorted(months)),
        caller_id=valid.caller_id,
        customer_name=name or None,
        tenant=log.tenant,
        ab_test=(ab.test_id, ab.test_name, ab.variant) if ab else None,
        payload_sha256=valid.payload_sha256,
        call_line=encoded[0],
        ingest_line=encoded[1],
        turn_lines=encoded[2],
        extra_lines=encoded[3],
        tool_lines=encoded[4],
        turns=len(turn_lines),
        tool_calls=len(tool_lines),
    )


def prepare_line(line: bytes, line_no: int, limits: Limits = DEFAULT_LIMITS) -> PreparedCall | RecordProblem | None:
    """Validate and prepare one JSONL line; None for a blank line."""
    if not line.strip():
        return None
    checked = validate_json(line, line_no, limits)
    if isinstance(checked, RecordProblem):
        return checked
    return prepare(checked, line_no)


# ------------------------------------------------------------------------ the same rows as values
def _ms_value(value: float | None) -> int | None:
    return None if value is None else round(value)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def call_row(call: ValidCall, customer_ids: dict[str, Any], tenant_id: Any = None) -> tuple:
    """The calls row of a validated call as values, in CALL_COLUMNS order (for parameter binding:
    the row-by-row path; :func:`prepare` writes the same values as COPY text)."""
    log_ = call.log
    cost = log_.cost
    return (
        call.call_id,
        call.caller_id,
        customer_ids.get(call.caller_id) if call.caller_id else None,
        log_.started_at,
        log_.ended_at,
        call.duration_seconds,
        log_.scenario,
        log_.transferred_to_operator,
        log_.transfer_reason,
        _uuid(split_ref(call.order_id)[0]),
        _uuid(split_ref(call.fitting_booking_id)[0]),
        log_.prompt_version,
        Jsonb(cost.components()) if cost else None,
        cost.total() if cost else None,
        tenant_id,
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def ingest_row(call: ValidCall) -> tuple:
    """The cca_call_ingest row of a validated call, in INGEST_COLUMNS order."""
    return (
        call.call_id,
        call.log.started_at,
        _json(call.log.usage),
        call.payload_sha256,
        split_ref(call.order_id)[1],
        split_ref(call.fitting_booking_id)[1],
    )


def turn_rows(call: ValidCall) -> Iterator[tuple]:
    """call_turns rows in TURN_COLUMNS order."""
    for index, turn in enumerate(call.turns):
        yield (
            turn_id(call.call_id, index),
            call.call_id,
            turn.turn_number,
            turn.speaker,
            turn.text,
            turn.stt_confidence,
            _ms_value(turn.stt_latency_ms),
            _ms_value(turn.llm_latency_ms),
            _ms_value(turn.tts_latency_ms),
            turn.timestamp,
        )


def turn_extra_rows(call: ValidCall) -> Iterator[tuple]:
    """cca_turn_extras rows in TURN_EXTRA_COLUMNS order (turns with a speech duration or barge-in flag)."""
    for index, turn in enumerate(call.turns):
        if turn.duration_ms is not None or turn.interrupted is not None:
            yield (turn_id(call.call_id, index), call.call_id, _ms_value(turn.duration_ms), turn.interrupted)


def tool_rows(call: ValidCall) -> Iterator[tuple]:
    """call_tool_calls rows in TOOL_COLUMNS order."""
    number = 0
    for turn in call.turns:
        for tc in turn.tool_calls:
            number += 1
            yield (
                tool_call_id(call.call_id, number),
                call.call_id,
                number,
                tc.name,
                _json(tc.args),
                _json(tc.result),
                _ms_value(tc.duration_ms),
                tc.success,
                tc.timestamp or turn.timestamp,
            )
