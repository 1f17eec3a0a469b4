"""Per-call derived metrics (table call_metrics): response latency per bot reply and its p50/p95,
STT re-asks, low-confidence turns, long pauses, barge-ins, tool errors, rejected and suspicious tool
calls, greeting. Derived in SQL from call_turns and call_tool_calls (sql/queries/call_metrics.sql),
so calls the call processor wrote itself get them too.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import signals
from ccanalytics.core import timeutil
from ccanalytics.db import sqlfiles

# how far back the near-real-time readers (the fresh job, the exporter, the alerts) look for calls that
# have just ended: calls longer than this are left to the periodic jobs (daily figures, scoring)
RECENT = timedelta(hours=3)


# calls derived per statement: bounds the arrays sent and keeps each batch's start times close together
# (they are ordered by start), so its turns are read from one or two monthly partitions
DERIVE_BATCH = 5000


def derive(
    conn: sa.Connection,
    start: datetime,
    end: datetime,
    *,
    only_stale: bool = True,
    ingested_after: datetime | None = None,
) -> int:
    """Derive metrics for the calls that started in [start, end). Returns the number of calls done.

    With ``only_stale`` (the default), calls whose metrics are current are skipped; with
    ``ingested_after``, only calls ingested (or re-delivered) after it are looked at. The calls are found
    first and derived in batches given by id, so that each statement is planned for the number of calls
    it derives: a tick with nothing new reads only indexes, and a handful of calls reads only their turns.
    """
    params = {"start": start, "end": end, "only_stale": only_stale, "ingested_after": ingested_after}
    targets = conn.execute(sa.text(sqlfiles.query("call_metrics_targets")), params).all()
    signal_params = signals.sql_params()
    done = 0
    for first in range(0, len(targets), DERIVE_BATCH):
        batch = targets[first : first + DERIVE_BATCH]
        ids, starts, ends, tenants = (list(column) for column in zip(*batch, strict=True))
        done += conn.execute(
            sa.text(sqlfiles.query("call_metrics")),
            {
                "ids": ids,
                "starts": starts,
                "ends": ends,
                "tenants": tenants,
                "start": starts[0],
                "end": starts[-1],
                **signal_params,
            },
        ).rowcount
    return done


def derive_days(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    only_stale: bool = True,
) -> int:
    """Derive metrics for the calls of the local days ``date_from`` … ``date_to`` (one transaction)."""
    start, end = timeutil.period_bounds(date_from, date_to, tz)
    with engine.begin() as conn:
        return derive(conn, start, end, only_stale=only_stale)


def reply_latency_ms(customer: dict, bot: dict) -> tuple[float | None, bool]:
    """Python twin of the SQL's response latency for a bot turn that follows a customer turn (call-log
    dicts): (milliseconds, estimated). Measured from timestamps when the customer's speech duration is
    known and the gap is plausible, else estimated from STT + LLM + TTS latencies."""
    duration = customer.get("duration_ms")
    if duration is not None:
        gap = (
            datetime.fromisoformat(bot["timestamp"]) - datetime.fromisoformat(customer["timestamp"])
        ).total_seconds() * 1000 - duration
        if 0 <= gap <= signals.MAX_PLAUSIBLE_GAP_MS:
            return gap, False
    parts = (customer.get("stt_latency_ms"), bot.get("llm_latency_ms"), bot.get("tts_latency_ms"))
    if all(p is None for p in parts):
        return None, False
    return float(sum(p or 0 for p in parts)), True
