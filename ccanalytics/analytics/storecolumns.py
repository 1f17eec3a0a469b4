"""The store's output columns: the SQL, name and Polars type of every column of calls, turns and tool calls."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Col:
    """One output column: SQL expression, name, and how to type it on the Polars side."""

    sql: str
    name: str
    kind: str  # ts | bool | str | int | float | json

    def select(self) -> str:
        if self.kind == "ts":
            return f"(extract(epoch FROM {self.sql}) * 1000000)::bigint AS {self.name}"
        if self.kind == "bool":
            return f"({self.sql})::int AS {self.name}"
        if self.kind in ("str", "json"):
            return f"({self.sql})::text AS {self.name}"
        return f"{self.sql} AS {self.name}"


POLARS_READ = {
    "ts": pl.Int64,
    "bool": pl.Int8,
    "str": pl.String,
    "json": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
}


def _cost_part(part: str) -> str:
    """One component of cca_calls.cost_breakdown as a number, without building the breakdown: the view
    builds a JSON object per call from the processor's keys (cca_recorded_costs, migration 013), which
    was most of the cost of reading many calls. The same choice as the view (ccanalytics's price unless
    cca.cost_source says 'processor') and the same keys as cca_recorded_costs (``<part>_cost`` when the
    processor's cost keys are there, else a call log's cost block as it is)."""
    recorded = "c.recorded_cost_breakdown"
    return (
        "(CASE WHEN c.cost_priced AND current_setting('cca.cost_source', true) IS DISTINCT FROM 'processor' "
        f"THEN c.computed_cost_breakdown->>'{part}' "
        f"WHEN jsonb_typeof({recorded}) <> 'object' THEN NULL "
        f"WHEN {recorded} ?| ARRAY['stt_cost', 'llm_cost', 'tts_cost', 'telephony_cost'] "
        f"THEN {recorded}->>'{part}_cost' ELSE {recorded}->>'{part}' END)::float8"
    )


CALL_COLUMNS = (
    Col("c.id", "id", "str"),
    Col("c.started_at", "started_at", "ts"),
    Col("c.ended_at", "ended_at", "ts"),
    Col("c.duration_seconds", "duration_seconds", "int"),
    Col("c.tenant", "tenant", "str"),  # the tenant's slug
    Col("{caller}", "caller_id", "str"),
    # a customer is one tenant's (customers are unique per tenant and phone): group by customer_id
    Col("c.customer_id", "customer_id", "str"),  # uuid
    Col("c.scenario", "scenario", "str"),
    Col("c.transferred_to_operator", "transferred_to_operator", "bool"),
    Col("c.transfer_reason", "transfer_reason", "str"),
    Col("c.order_id", "order_id", "str"),
    Col("c.fitting_booking_id", "fitting_booking_id", "str"),
    Col("c.prompt_version", "prompt_version", "str"),
    Col("c.ab_test_id", "ab_test_id", "str"),  # uuid
    Col("c.ab_variant", "ab_variant", "str"),
    Col("c.quality_score", "quality_score", "float"),
    Col(_cost_part("stt"), "cost_stt_usd", "float"),
    Col(_cost_part("llm"), "cost_llm_usd", "float"),
    Col(_cost_part("tts"), "cost_tts_usd", "float"),
    Col("c.total_cost_usd", "total_cost_usd", "float"),
)
# the JSON documents of a call: several KB each (the judge's reasons and signals), so only on request
CALL_DETAIL_COLUMNS = (
    Col("c.quality_details", "quality_details", "json"),
    Col("c.cost_breakdown", "cost_breakdown", "json"),
    Col("c.usage", "usage", "json"),
)

# read from cca_call_turns: the processor's turn with the speech duration and barge-in flag of a
# delivered call log (NULL for a call the processor wrote itself)
TURN_COLUMNS = (
    Col("t.id", "id", "str"),
    Col("t.call_id", "call_id", "str"),
    Col("t.turn_number", "turn_number", "int"),
    Col("t.speaker", "speaker", "str"),
    Col("t.content", "content", "str"),
    Col("t.stt_confidence", "stt_confidence", "float"),
    Col("t.stt_latency_ms", "stt_latency_ms", "int"),
    Col("t.llm_latency_ms", "llm_latency_ms", "int"),
    Col("t.tts_latency_ms", "tts_latency_ms", "int"),
    Col("t.speech_duration_ms", "speech_duration_ms", "int"),
    Col("t.interrupted", "interrupted", "bool"),
    Col("t.created_at", "created_at", "ts"),
)

# turn_number of a tool call counts the tool calls of its call (1, 2, …); created_at places it in the dialogue
TOOL_COLUMNS = (
    Col("x.id", "id", "str"),
    Col("x.call_id", "call_id", "str"),
    Col("x.turn_number", "turn_number", "int"),
    Col("x.tool_name", "tool_name", "str"),
    Col("x.tool_args", "tool_args", "json"),
    Col("x.tool_result", "tool_result", "json"),
    Col("x.duration_ms", "duration_ms", "int"),
    Col("x.success", "success", "bool"),
    Col("x.created_at", "created_at", "ts"),
)
