"""Rows of the call processor that break ccanalytics's expectations, counted.

ccanalytics reads such rows as they are (a call still in progress is not scored until it ends, an
unknown speaker is shown as written, tool arguments that are not an object are shown raw, a cost
without usage is priced as estimated) and never "fixes" them in the processor's tables; this module
tells how many there are, so an operator can take them to the call processor's team
(`ccanalytics doctor`, check "data").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import clock, timeutil

STALE_AFTER = timedelta(hours=6)  # a call with no end this long after its start is not in progress any more

# kind → what it means, for people reading the counts (English: doctor output)
KINDS = {
    "unfinished": "calls with no end recorded 6 hours after their start",
    "negative_duration": "calls with a negative duration or an end before their start",
    "no_scenario": "finished calls with no scenario",
    "unknown_speaker": "turns whose speaker is neither customer nor bot",
    "tool_args_not_object": "tool calls whose arguments are not a JSON object",
    "cost_without_usage": "calls whose recorded cost carries no usage (priced as estimated)",
}

# usage: what a delivered call log carried, else what the processor recorded inside cost_breakdown
# (cca_calls); recorded_cost_breakdown is the processor's own column. A NULL speaker is neither
# customer nor bot.
_COUNTS = """
WITH c AS MATERIALIZED (
    SELECT started_at, ended_at, duration_seconds, scenario, usage, recorded_cost_breakdown AS cost_breakdown
    FROM cca_calls WHERE started_at >= :start AND started_at < :end
)
SELECT
  (SELECT count(*) FROM c WHERE ended_at IS NULL AND started_at < :stale) AS unfinished,
  (SELECT count(*) FROM c WHERE duration_seconds < 0 OR ended_at < started_at) AS negative_duration,
  (SELECT count(*) FROM c WHERE ended_at IS NOT NULL AND scenario IS NULL) AS no_scenario,
  (SELECT count(*) FROM call_turns
    WHERE created_at >= :start AND created_at < :turns_end AND coalesce(speaker, '') NOT IN ('customer', 'bot'))
    AS unknown_speaker,
  (SELECT count(*) FROM call_tool_calls
    WHERE created_at >= :start AND created_at < :turns_end
      AND tool_args IS NOT NULL AND jsonb_typeof(tool_args) <> 'object') AS tool_args_not_object,
  (SELECT count(*) FROM c WHERE usage IS NULL AND cost_breakdown IS NOT NULL) AS cost_without_usage
"""


@dataclass(frozen=True)
class DataProblems:
    first: date
    last: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """One line: the non-zero counts with their meaning."""
        found = [f"{n} {KINDS[k]}" for k, n in self.counts.items() if n]
        return "; ".join(found) if found else "none"


def count(
    engine: Engine,
    first: date | str,
    last: date | str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    now: datetime | None = None,
) -> DataProblems:
    """How many of the processor's rows of the local days ``first`` … ``last`` break expectations
    (``now``: the instant that decides whether a call without an end is still in progress)."""
    start, end = timeutil.period_bounds(first, last, tz)
    stale = (now or clock.now()) - STALE_AFTER
    params = {"start": start, "end": end, "turns_end": end + timedelta(hours=7), "stale": stale}
    with engine.connect() as conn:
        row = conn.execute(sa.text(_COUNTS), params).one()
    days = timeutil.resolve_days(first, last, tz)
    return DataProblems(days[0], days[1], {k: int(getattr(row, k)) for k in KINDS})
