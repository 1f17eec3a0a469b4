"""Reading calls for the judges and writing their scores (the database side of scoring)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb

from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.ingest.dialogue import place_tools
from ccanalytics.quality.judge import JudgeResult
from ccanalytics.quality.rubric import Overall, Rubric
from ccanalytics.quality.rules import Signals
from ccanalytics.quality.transcript import CallView, ToolUse, TurnView

# through cca_calls: order_id / fitting_booking_id are the processor's uuid or the reference a delivered call
# log gave, and an unknown transfer flag reads as not transferred. The customer is the call's tenant's.
_CALLS = """
SELECT c.id, c.started_at, c.scenario, c.transferred_to_operator, c.transfer_reason, c.order_id,
       c.fitting_booking_id, cu.name AS customer_name, to_jsonb(m) AS metrics
FROM cca_calls c
LEFT JOIN customers cu ON cu.id = c.customer_id
LEFT JOIN call_metrics m ON m.call_id = c.id
WHERE c.id = ANY(:ids)
"""
# the barge-in flag comes with a delivered call log (cca_call_turns); NULL for a call the processor wrote
_TURNS = """
SELECT call_id, turn_number, speaker, content, created_at, stt_confidence, interrupted
FROM cca_call_turns WHERE call_id = ANY(:ids) ORDER BY call_id, turn_number, created_at, id
"""
_TOOLS = """
SELECT call_id, tool_name, tool_args, tool_result, success, duration_ms, created_at
FROM call_tool_calls WHERE call_id = ANY(:ids) ORDER BY call_id, created_at, turn_number, id
"""


def load_calls(conn: sa.Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CallView]:
    """CallViews for the given call ids (missing ids are absent from the result). Tool calls are
    placed in the dialogue by time (:func:`ccanalytics.ingest.dialogue.place_tools`)."""
    ids = list(ids)
    if not ids:
        return {}
    turn_rows: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for r in conn.execute(sa.text(_TURNS), {"ids": ids}):
        turn_rows[r.call_id].append(r)
    tool_rows: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for r in conn.execute(sa.text(_TOOLS), {"ids": ids}):
        tool_rows[r.call_id].append(r)
    turns: dict[uuid.UUID, list[TurnView]] = {}
    for call_id, rows in turn_rows.items():
        calls_tools = tool_rows.get(call_id, [])
        places = place_tools(
            [(r.turn_number, r.speaker, r.created_at) for r in rows], [x.created_at for x in calls_tools]
        )
        placed: dict[int | None, list[ToolUse]] = defaultdict(list)
        for x, number in zip(calls_tools, places, strict=True):
            placed[number].append(ToolUse(x.tool_name, x.tool_args, x.tool_result, x.success, x.duration_ms))
        turns[call_id] = [
            TurnView(
                r.turn_number,
                r.speaker,
                r.content or "",  # the processor's content is nullable
                r.created_at,
                r.stt_confidence,
                r.interrupted,
                tuple(placed.get(r.turn_number, ())),
            )
            for r in rows
        ]
    out = {}
    for r in conn.execute(sa.text(_CALLS), {"ids": ids}):
        out[r.id] = CallView(
            call_id=str(r.id),
            started_at=r.started_at,
            scenario=r.scenario,
            transferred=r.transferred_to_operator,
            transfer_reason=r.transfer_reason,
            order_id=r.order_id,
            fitting_booking_id=r.fitting_booking_id,
            customer_name=r.customer_name,
            turns=tuple(turns.get(r.id, ())),
            metrics=r.metrics or {},
        )
    return out


def quality_details(result: JudgeResult, rubric: Rubric, total: Overall, signals: Signals) -> dict[str, Any]:
    """What call_scores.details holds (cca_calls.quality_details): every criterion with reason and
    evidence, who judged, and the rubric's weights and auto-fail rule the score was computed with (so
    the call page reconciles the score after the configured rubric changes: quality/composition.py)."""
    return {
        "overall": total.score,
        "criteria": {name: c.to_dict() for name, c in result.criteria.items()},
        "judge": {"kind": result.kind, "model": result.model},
        "rubric_version": rubric.version,
        "weights": {name: float(rubric.weights.get(name, 0.0)) for name in CRITERIA},
        "auto_fail": list(rubric.auto_fail),
        "auto_fail_below": rubric.auto_fail_below,
        "auto_failed": total.auto_failed,
        "auto_fail_reasons": list(total.auto_fail_reasons),
        "review_reasons": list(total.review_reasons),
        "signals": signals.to_dict(),
    }


def write_score(
    conn: sa.Connection,
    call: CallView,
    result: JudgeResult,
    rubric: Rubric,
    total: Overall,
    signals: Signals,
    attempts: int,
) -> None:
    """Store a score as the call's current one (history kept; cca_calls shows it) and open or close its
    review item. calls.quality_score / quality_details are the call processor's and are never written.
    Runs inside the caller's transaction."""
    call_id = uuid.UUID(call.call_id)
    conn.execute(
        sa.text("UPDATE call_scores SET is_current = false WHERE call_id = :id AND is_current"), {"id": call_id}
    )
    conn.execute(
        sa.text(
            "INSERT INTO call_scores (call_id, started_at, judge_kind, judge_model, rubric_version, overall_score, "
            "criteria, signals, auto_failed, auto_fail_reasons, prompt_tokens, completion_tokens, cost_usd, "
            "latency_ms, attempts, details, created_at) VALUES (:id, :started, :kind, :model, :rubric, :score, "
            ":criteria, :signals, :auto_failed, :auto_fail_reasons, :pt, :ct, :cost, :latency, :attempts, :details, "
            "clock_timestamp())"
        ),
        {
            "id": call_id,
            "started": call.started_at,
            "kind": result.kind,
            "model": result.model,
            "rubric": rubric.version,
            "score": total.score,
            "criteria": Jsonb({n: c.to_dict() for n, c in result.criteria.items()}),
            "signals": Jsonb(signals.to_dict()),
            "auto_failed": total.auto_failed,
            "auto_fail_reasons": list(total.auto_fail_reasons),
            "pt": result.prompt_tokens,
            "ct": result.completion_tokens,
            "cost": result.cost_usd,
            "latency": result.latency_ms,
            "attempts": attempts,
            "details": Jsonb(quality_details(result, rubric, total, signals)),
        },
    )
    if total.needs_review:
        conn.execute(
            sa.text(
                "INSERT INTO review_items (call_id, started_at, reasons, score) "
                "VALUES (:id, :started, :reasons, :score) "
                "ON CONFLICT (call_id) DO UPDATE SET reasons = EXCLUDED.reasons, score = EXCLUDED.score, "
                "updated_at = now()"
            ),
            {"id": call_id, "started": call.started_at, "reasons": list(total.review_reasons), "score": total.score},
        )
    else:  # a re-score that no longer needs review closes an untouched item
        conn.execute(sa.text("DELETE FROM review_items WHERE call_id = :id AND status = 'new'"), {"id": call_id})
