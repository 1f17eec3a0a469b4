"""The call log: the JSON object the call processor sends for each finished call, and its validation.

Validation is strict and says exactly what is wrong and where (``turns.3.speaker: …``). A record
either validates completely or nothing of it is written. Limits protect the database from runaway
input (a 10 MB transcript is a bug upstream, not a call).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from ccanalytics.core.errors import FieldProblem, RecordProblem
from ccanalytics.core.privacy import InvalidPhone, normalize_phone


@dataclass(frozen=True)
class Limits:
    """Hard limits for one call log."""

    max_record_bytes: int = 5 * 1024 * 1024
    max_turns: int = 1000
    max_turn_chars: int = 10_000
    max_tool_calls_per_turn: int = 50
    max_tool_json_bytes: int = 256 * 1024
    max_json_depth: int = 20
    max_call_hours: int = 6
    # turn and tool-call timestamps may lie this far outside [started_at, ended_at]
    timestamp_slack: timedelta = timedelta(seconds=60)
    # duration_seconds may exceed ended_at - started_at by this much (clock rounding)
    duration_slack_seconds: float = 5.0


DEFAULT_LIMITS = Limits()

Speaker = Literal["customer", "bot"]
NonNegMs = Annotated[float, Field(ge=0, le=3_600_000, allow_inf_nan=False)]
USD = Annotated[float, Field(ge=0, le=1_000, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ToolCall(_Model):
    name: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    args: dict[str, Any] | None = None
    result: Any = None
    duration_ms: NonNegMs | None = None
    success: StrictBool = True
    timestamp: AwareDatetime | None = None


class Turn(_Model):
    turn_number: int | None = Field(default=None, ge=0, le=1_000_000)
    speaker: Speaker
    text: str
    timestamp: AwareDatetime
    stt_confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    stt_latency_ms: NonNegMs | None = None
    llm_latency_ms: NonNegMs | None = None
    tts_latency_ms: NonNegMs | None = None
    duration_ms: NonNegMs | None = None
    interrupted: StrictBool | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


class Cost(BaseModel):
    """Money spent on the call, USD. Unknown components (telephony, judge…) are kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    stt: USD | None = None
    llm: USD | None = None
    tts: USD | None = None
    total_usd: USD | None = None

    @model_validator(mode="after")
    def _extra_are_money(self) -> Cost:
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"cost.{key} must be a number of USD")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"cost.{key} must be a finite non-negative number")
        return self

    def components(self) -> dict[str, float]:
        parts = {k: v for k, v in (("stt", self.stt), ("llm", self.llm), ("tts", self.tts)) if v is not None}
        parts.update({k: float(v) for k, v in (self.model_extra or {}).items()})
        return parts

    def total(self) -> float | None:
        if self.total_usd is not None:
            return self.total_usd
        parts = self.components()
        return round(sum(parts.values()), 8) if parts else None


class ABAssignment(_Model):
    test_id: uuid.UUID | None = None
    test_name: str | None = Field(default=None, min_length=1, max_length=100)
    variant: str = Field(min_length=1, max_length=20)


class CallLog(_Model):
    call_id: uuid.UUID
    tenant: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    caller_id: str | None = Field(default=None, max_length=40)
    customer_name: str | None = Field(default=None, max_length=200)
    scenario: str | None = Field(default=None, max_length=50)
    transferred_to_operator: StrictBool = False
    transfer_reason: str | None = Field(default=None, min_length=1, max_length=50)
    order_created: StrictBool | str | None = None
    order_id: str | None = Field(default=None, max_length=50)
    fitting_booked: StrictBool | str | None = None
    fitting_booking_id: str | None = Field(default=None, max_length=50)
    prompt_version: str | None = Field(default=None, min_length=1, max_length=50)
    ab_test: ABAssignment | None = None
    turns: list[Turn] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    cost: Cost | None = None

    @field_validator("scenario")
    @classmethod
    def _normalize_scenario(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p.strip() for p in value.split("+")]
        if not all(parts):
            raise ValueError("scenario must be names joined by '+', e.g. 'tire_search + order_creation'")
        normalized = " + ".join(parts)
        if len(normalized) > 50:
            raise ValueError(f"scenario is {len(normalized)} characters once normalised, the limit is 50")
        return normalized

    @model_validator(mode="before")
    @classmethod
    def _usage_with_money_is_cost(cls, data: Any) -> Any:
        # the spec's call log names the block "usage/cost": a usage block carrying total_usd is money
        if isinstance(data, dict) and data.get("cost") is None:
            usage = data.get("usage")
            if isinstance(usage, dict) and "total_usd" in usage:
                data = {**data, "cost": usage, "usage": None}
        return data


# ------------------------------------------------------------------------------------------ checks
class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldProblem(field, message))


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _check_text(value: str, field: str, problems: _Problems, max_chars: int | None) -> str:
    if max_chars is not None and len(value) > max_chars:
        problems.add(field, f"text is {len(value):,} characters, the limit is {max_chars:,}")
        return value
    if "\x00" in value:
        problems.add(field, "contains a NUL character (\\u0000)")
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.add(field, "contains invalid Unicode (a lone surrogate)")
        return value
    bad = _CONTROL.search(value)
    if bad is not None:
        problems.add(field, f"contains the control character U+{ord(bad.group()):04X}")
        return value
    return value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)


# one encoder for every check: json.dumps with non-default options builds a new encoder per call
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def _nested_deeper(value: Any, max_depth: int) -> bool:
    stack = [(value, 0)]  # containers only (scalars cannot nest)
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def _check_json(value: Any, field: str, problems: _Problems, limits: Limits) -> str | None:
    """JSON for jsonb: bounded depth, no NaN/Infinity, no NUL, no lone surrogates, bounded size.

    Returns the JSON text (the ingest writes it as it is), or None after adding a problem."""
    try:
        text, failure = _JSON_ENCODER.encode(value), None
    except (ValueError, TypeError, RecursionError) as exc:
        text, failure = None, exc
    # depth first: a value nested too deep says so whatever else is wrong with it. Nesting deeper than
    # the limit takes more opening brackets than the limit, so most values need no walk.
    if text is None or text.count("{") + text.count("[") > limits.max_json_depth:
        if _nested_deeper(value, limits.max_json_depth):
            problems.add(field, f"nested deeper than {limits.max_json_depth} levels")
            return None
    if isinstance(failure, ValueError):
        problems.add(field, "contains NaN or Infinity")
        return None
    if failure is not None:
        raise failure
    assert text is not None  # the encoder returned it: it did not fail
    if "\\u0000" in text:
        problems.add(field, "contains a NUL character (\\u0000)")
        return None
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError:
        problems.add(field, "contains invalid Unicode (a lone surrogate)")
        return None
    if size > limits.max_tool_json_bytes:
        problems.add(field, f"is {size:,} bytes of JSON, the limit is {limits.max_tool_json_bytes:,}")
        return None
    return text


@dataclass(frozen=True)
class ValidCall:
    """A validated, normalised call log ready to be written."""

    log: CallLog
    caller_id: str | None  # normalised E.164, None when hidden
    turns: tuple[Turn, ...]  # with turn_number filled in and texts NFC-normalised
    duration_seconds: int
    order_id: str | None
    fitting_booking_id: str | None
    payload_sha256: bytes
    usage_json: str | None  # the JSON text of usage, as checked
    tool_json: tuple[tuple[str | None, str | None], ...]  # (args, result) JSON texts, tool calls in turn order

    @property
    def call_id(self) -> uuid.UUID:
        return self.log.call_id


def _booking_ref(flag: bool | str | None, explicit: str | None, field: str, problems: _Problems) -> str | None:
    """order_created/fitting_booked may be a flag or the id itself; '' marks "created, id unknown"."""
    if explicit is not None:
        if flag is False:
            problems.add(field, "is False but an id was given")
        return explicit.strip() or ""
    if isinstance(flag, str):
        if len(flag) > 50:
            problems.add(field, "an id longer than 50 characters")
        return flag.strip()
    return "" if flag else None


def _check_span(log: CallLog, span: float, limits: Limits, problems: _Problems) -> None:
    """The call's length (``span``: ended_at - started_at, seconds) and its duration_seconds."""
    if span < 0:
        problems.add("ended_at", "is before started_at")
    elif span > limits.max_call_hours * 3600:
        problems.add("ended_at", f"call lasts {span / 3600:.1f} h, the limit is {limits.max_call_hours} h")
    if log.duration_seconds is not None and span >= 0 and log.duration_seconds > span + limits.duration_slack_seconds:
        problems.add(
            "duration_seconds",
            f"{log.duration_seconds:g} s is longer than ended_at - started_at ({span:g} s)",
        )


def _check_tool_calls(
    turn: Turn, where: str, bounds: tuple[datetime, datetime], limits: Limits, problems: _Problems
) -> list[tuple[str | None, str | None]]:
    """A turn's tool calls: their number, JSON and timestamps (within ``bounds``); their (args, result)
    JSON texts."""
    lo, hi = bounds
    tool_json: list[tuple[str | None, str | None]] = []
    if len(turn.tool_calls) > limits.max_tool_calls_per_turn:
        problems.add(
            f"{where}.tool_calls",
            f"{len(turn.tool_calls)} tool calls, the limit is {limits.max_tool_calls_per_turn}",
        )
    for j, tc in enumerate(turn.tool_calls):
        where_tc = f"{where}.tool_calls.{j}"
        args = None if tc.args is None else _check_json(tc.args, f"{where_tc}.args", problems, limits)
        result = None if tc.result is None else _check_json(tc.result, f"{where_tc}.result", problems, limits)
        tool_json.append((args, result))
        if tc.timestamp is not None and not lo <= tc.timestamp.astimezone(UTC) <= hi:
            problems.add(f"{where}.tool_calls.{j}.timestamp", "lies outside the call")
    return tool_json


def check_call(log: CallLog, limits: Limits = DEFAULT_LIMITS) -> ValidCall | list[FieldProblem]:
    """Cross-field checks and normalisation after schema validation."""
    problems = _Problems()
    started = log.started_at.astimezone(UTC)
    ended = log.ended_at.astimezone(UTC)
    span = (ended - started).total_seconds()
    _check_span(log, span, limits, problems)
    caller = None
    try:
        caller = normalize_phone(log.caller_id)
    except InvalidPhone as exc:
        problems.add("caller_id", str(exc))
    if log.customer_name is not None:
        _check_text(log.customer_name, "customer_name", problems, 200)
    if log.transfer_reason and not log.transferred_to_operator:
        problems.add("transfer_reason", "is set but transferred_to_operator is false")
    order_id = _booking_ref(log.order_created, log.order_id, "order_created", problems)
    booking_id = _booking_ref(log.fitting_booked, log.fitting_booking_id, "fitting_booked", problems)
    if len(log.turns) > limits.max_turns:
        problems.add("turns", f"{len(log.turns):,} turns, the limit is {limits.max_turns:,}")
        return problems.items
    usage_json = _check_json(log.usage, "usage", problems, limits) if log.usage is not None else None
    tool_json: list[tuple[str | None, str | None]] = []

    lo, hi = started - limits.timestamp_slack, ended + limits.timestamp_slack
    seen: dict[int, int] = {}
    turns: list[Turn] = []
    for i, turn in enumerate(log.turns):
        where = f"turns.{i}"
        number = turn.turn_number if turn.turn_number is not None else i + 1
        if number in seen:
            problems.add(f"{where}.turn_number", f"duplicates turn_number {number} of turns.{seen[number]}")
        seen[number] = i
        text = _check_text(turn.text, f"{where}.text", problems, limits.max_turn_chars)
        ts = turn.timestamp.astimezone(UTC)
        if not lo <= ts <= hi:
            problems.add(
                f"{where}.timestamp",
                f"{ts.isoformat()} lies outside the call ({started.isoformat()} – {ended.isoformat()})",
            )
        tool_json += _check_tool_calls(turn, where, (lo, hi), limits, problems)
        changes: dict[str, Any] = {}
        if turn.turn_number is None:
            changes["turn_number"] = number
        if text is not turn.text:
            changes["text"] = text
        turns.append(turn.model_copy(update=changes) if changes else turn)
    if problems.items:
        return problems.items
    duration = log.duration_seconds if log.duration_seconds is not None else span
    digest = hashlib.sha256(log.model_dump_json().encode()).digest()
    return ValidCall(
        log=log,
        caller_id=caller,
        turns=tuple(turns),
        duration_seconds=round(duration),
        order_id=order_id,
        fitting_booking_id=booking_id,
        payload_sha256=digest,
        usage_json=usage_json,
        tool_json=tuple(tool_json),
    )


# -------------------------------------------------------------------------------------- parsing
def _pydantic_problems(exc: ValidationError) -> list[FieldProblem]:
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict | list):
            shown = repr(err["input"])
            message += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
        out.append(FieldProblem(field, message))
    return out


def _call_id_of(raw: Any) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("call_id")
        return str(value)[:64] if value is not None else None
    return None


def validate_record(raw: Any, record: int | str, limits: Limits = DEFAULT_LIMITS) -> ValidCall | RecordProblem:
    """Validate one decoded call log (a dict; anything else is a problem of the record)."""
    if not isinstance(raw, dict):
        return RecordProblem(
            record, None, (FieldProblem("", f"a call log must be a JSON object, got {_json_type(raw)}"),)
        )
    try:
        log = CallLog.model_validate(raw)
    except ValidationError as exc:
        return RecordProblem(record, _call_id_of(raw), tuple(_pydantic_problems(exc)))
    checked = check_call(log, limits)
    if isinstance(checked, list):
        return RecordProblem(record, str(log.call_id), tuple(checked))
    return checked


def validate_json(text: str | bytes, record: int | str, limits: Limits = DEFAULT_LIMITS) -> ValidCall | RecordProblem:
    """Validate one call log given as JSON text (a line of a JSONL file)."""
    if len(text) > limits.max_record_bytes:
        return RecordProblem(
            record,
            None,
            (FieldProblem("", f"record is {len(text):,} bytes, the limit is {limits.max_record_bytes:,}"),),
        )
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return RecordProblem(record, None, (FieldProblem("", f"malformed JSON: {exc}"),))
    except RecursionError:
        return RecordProblem(record, None, (FieldProblem("", "malformed JSON: nested too deeply"),))
    return validate_record(raw, record, limits)


def _json_type(value: Any) -> str:
    names = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)
