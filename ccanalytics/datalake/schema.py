"""The Parquet lake's tables: their columns (SQL source, Arrow type, masking), the SQL each day's
partition is read with, and the layout constants shared by the export and the readers
(ccanalytics.datalake.export). Bump FORMAT_VERSION when a schema or the masking changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.core.vocabulary import CRITERIA

# bump when a schema or the masking changes: export_changed then rewrites the window. 2: uuid ids (the call
# processor's) as text, the call's tenant
FORMAT_VERSION = "2"
TABLES = ("calls", "turns", "tool_calls", "scores")
TRANSCRIPT_TABLES = ("turns", "tool_calls")
PART_FILE = "part-0.parquet"
MARKER = "_SUCCESS.json"
STAGING = ".staging"
EMPTY = "empty"  # the fingerprint of a partition without rows
CHILD_SLACK = timedelta(hours=7)  # turns and tool calls are partitioned on their own stamps (as store.py)
ROW_GROUP_ROWS = 128_000
TS = pa.timestamp("us", tz="UTC")


# ------------------------------------------------------------------------------------ schemas
@dataclass(frozen=True)
class Column:
    name: str
    sql: str
    type: pa.DataType
    mask: bool = False  # free text: phone numbers inside are masked

    def select(self) -> str:
        if self.type == TS:  # epoch microseconds: exact, and the fastest thing to parse
            return f"(extract(epoch FROM {self.sql}) * 1000000)::bigint"
        return self.sql

    @property
    def read_type(self) -> pa.DataType:
        return pa.int64() if self.type == TS else self.type


def _num(doc: str, key: str) -> str:
    """A number inside a JSON document, NULL when absent or not a number (never a cast error)."""
    return f"CASE WHEN jsonb_typeof({doc} -> '{key}') = 'number' THEN ({doc} ->> '{key}')::float8 END"


def _criterion(name: str) -> str:
    node = f"s.criteria -> '{name}'"
    return f"CASE WHEN {node} ->> 'applicable' = 'false' THEN NULL ELSE {_num(node, 'score')} END"


I32, I64, F64, STR, BOOL = pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.bool_()

CALL_COLUMNS = (
    Column("id", "c.id", STR),
    Column("started_at", "c.started_at", TS),
    Column("ended_at", "c.ended_at", TS),
    Column("duration_seconds", "c.duration_seconds", I32),
    Column("tenant", "c.tenant", STR),  # the tenant's slug
    Column("caller_id", "cca_mask_phone(c.caller_id)", STR),  # masked in the database: raw numbers never leave it
    # a customer is one tenant's (customers are unique per tenant and phone): count customers by customer_id
    Column("customer_id", "c.customer_id", STR),
    Column("scenario", "c.scenario", STR),
    Column("transferred_to_operator", "c.transferred_to_operator", BOOL),
    Column("transfer_reason", "c.transfer_reason", STR),
    Column("order_id", "c.order_id", STR),
    Column("fitting_booking_id", "c.fitting_booking_id", STR),
    Column("prompt_version", "c.prompt_version", STR),
    Column("ab_test_id", "c.ab_test_id", STR),
    Column("ab_variant", "c.ab_variant", STR),
    Column("quality_score", "c.quality_score", F64),
    Column("scored_at", "c.scored_at", TS),
    Column("cost_stt_usd", _num("c.cost_breakdown", "stt"), F64),
    Column("cost_llm_usd", _num("c.cost_breakdown", "llm"), F64),
    Column("cost_tts_usd", _num("c.cost_breakdown", "tts"), F64),
    Column("cost_telephony_usd", _num("c.cost_breakdown", "telephony"), F64),
    Column("total_cost_usd", "c.total_cost_usd", F64),
    Column("cost_breakdown", "c.cost_breakdown", STR),
    Column("usage", "c.usage", STR),
    Column("ingested_at", "c.ingested_at", TS),
    # per-call metrics derived from the transcript: they outlive it (kept as long as the call)
    Column("turns", "m.turns", I32),
    Column("customer_turns", "m.customer_turns", I32),
    Column("bot_turns", "m.bot_turns", I32),
    Column("response_p50_ms", "m.response_p50_ms", F64),
    Column("response_p95_ms", "m.response_p95_ms", F64),
    Column("response_max_ms", "m.response_max_ms", F64),
    Column("response_estimated", "m.response_estimated", BOOL),
    Column("stt_p95_ms", "m.stt_p95_ms", F64),
    Column("llm_p95_ms", "m.llm_p95_ms", F64),
    Column("tts_p95_ms", "m.tts_p95_ms", F64),
    Column("stt_reasks", "m.stt_reasks", I32),
    Column("low_confidence_turns", "m.low_confidence_turns", I32),
    Column("min_stt_confidence", "m.min_stt_confidence", pa.float32()),
    Column("long_pauses", "m.long_pauses", I32),
    Column("barge_ins", "m.barge_ins", I32),
    Column("tool_call_count", "m.tool_calls", I32),
    Column("tool_errors", "m.tool_errors", I32),
    Column("rejected_tool_calls", "m.rejected_tool_calls", I32),
    Column("suspicious_tool_calls", "m.suspicious_tool_calls", I32),
    Column("greeted", "m.greeted", BOOL),
    Column("metrics_computed_at", "m.computed_at", TS),
)
# from cca_call_turns: speech_duration_ms / interrupted come with a delivered call log (NULL for a call the
# call processor wrote itself)
TURN_COLUMNS = (
    Column("id", "t.id", STR),
    Column("call_id", "t.call_id", STR),
    Column("turn_number", "t.turn_number", I32),
    Column("speaker", "t.speaker", STR),
    Column("content", "t.content", STR, mask=True),
    Column("stt_confidence", "t.stt_confidence", pa.float32()),
    Column("stt_latency_ms", "t.stt_latency_ms", I32),
    Column("llm_latency_ms", "t.llm_latency_ms", I32),
    Column("tts_latency_ms", "t.tts_latency_ms", I32),
    Column("speech_duration_ms", "t.speech_duration_ms", I32),
    Column("interrupted", "t.interrupted", BOOL),
    Column("created_at", "t.created_at", TS),
)
# turn_number counts the tool calls of the call (1, 2, …); created_at places a tool call in the dialogue
TOOL_COLUMNS = (
    Column("id", "x.id", STR),
    Column("call_id", "x.call_id", STR),
    Column("turn_number", "x.turn_number", I32),
    Column("tool_name", "x.tool_name", STR),
    Column("tool_args", "x.tool_args", STR, mask=True),  # JSON text
    Column("tool_result", "x.tool_result", STR, mask=True),  # JSON text
    Column("duration_ms", "x.duration_ms", I32),
    Column("success", "x.success", BOOL),
    Column("created_at", "x.created_at", TS),
)
SCORE_COLUMNS = (
    Column("id", "s.id", I64),
    Column("call_id", "s.call_id", STR),
    Column("started_at", "s.started_at", TS),
    Column("judge_kind", "s.judge_kind", STR),
    Column("judge_model", "s.judge_model", STR),
    Column("rubric_version", "s.rubric_version", STR),
    Column("overall_score", "s.overall_score", F64),
    Column("auto_failed", "s.auto_failed", BOOL),
    Column("auto_fail_reasons", "array_to_json(s.auto_fail_reasons)", STR),  # JSON list
    Column("prompt_tokens", "s.prompt_tokens", I32),
    Column("completion_tokens", "s.completion_tokens", I32),
    Column("cost_usd", "s.cost_usd", F64),
    Column("latency_ms", "s.latency_ms", I32),
    Column("attempts", "s.attempts", I32),
    Column("is_current", "s.is_current", BOOL),
    Column("created_at", "s.created_at", TS),
    # one column per criterion: its score, NULL when the judge found it not applicable
    *(Column(name, _criterion(name), F64) for name in CRITERIA),
)

_DAY_CALLS = "SELECT c.id FROM cca_calls c WHERE c.started_at >= %(start)s AND c.started_at < %(end)s"
_CHILD_WHERE = "{a}.created_at >= %(cstart)s AND {a}.created_at < %(cend)s AND {a}.call_id IN (" + _DAY_CALLS + ")"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    source: str  # FROM … WHERE … ORDER BY, with %(start)s %(end)s %(cstart)s %(cend)s

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])

    def copy_sql(self) -> str:
        return f"COPY (SELECT {', '.join(c.select() for c in self.columns)} {self.source}) TO STDOUT (FORMAT csv)"


SPECS = {
    "calls": TableSpec(
        "calls",
        CALL_COLUMNS,
        "FROM cca_calls c LEFT JOIN call_metrics m ON m.call_id = c.id "
        "WHERE c.started_at >= %(start)s AND c.started_at < %(end)s ORDER BY c.started_at, c.id",
    ),
    "turns": TableSpec(
        "turns",
        TURN_COLUMNS,
        f"FROM cca_call_turns t WHERE {_CHILD_WHERE.format(a='t')} "
        "ORDER BY t.call_id, t.turn_number, t.created_at, t.id",
    ),
    "tool_calls": TableSpec(
        "tool_calls",
        TOOL_COLUMNS,
        f"FROM call_tool_calls x WHERE {_CHILD_WHERE.format(a='x')} "
        "ORDER BY x.call_id, x.created_at, x.turn_number, x.id",
    ),
    "scores": TableSpec(
        "scores",
        SCORE_COLUMNS,
        f"FROM call_scores s WHERE s.call_id IN ({_DAY_CALLS}) "
        "AND s.started_at >= %(start)s AND s.started_at < %(end)s ORDER BY s.call_id, s.id",
    ),
}


def schema(table: str, *, with_date: bool = False) -> pa.Schema:
    """The Arrow schema of a lake table (``with_date``: plus the Hive partition column)."""
    out = SPECS[_table(table)].schema
    return out.append(pa.field("date", pa.date32())) if with_date else out


def _table(name: str) -> str:
    if name not in SPECS:
        raise InvalidArgument(f"unknown lake table {name!r} (tables: {', '.join(TABLES)})")
    return name
