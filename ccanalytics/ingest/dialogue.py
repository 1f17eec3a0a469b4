"""Where a tool call belongs in the dialogue: placed by time, not by ``turn_number``.

The call processor numbers its tool calls within the call (``call_tool_calls.turn_number`` is 1, 2, 3…
over the tool calls, not the dialogue turn, ../shared/callcenter-schema.md); a call log received by
ccanalytics nests tool calls in the bot turn that made them. Both agree on time: a tool runs after the
customer's words and before the bot's reply that uses its result. So a tool call belongs to the first
bot turn that starts at or after it; one made after the last bot turn (the caller hung up), to the last
bot turn; a call with no bot turn, to its last turn. Pure: no database, no Polars.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime


def place_tools(turns: Sequence[tuple[int, str, datetime]], tools: Sequence[datetime]) -> list[int | None]:
    """For each tool call (its ``created_at``), the ``turn_number`` of the turn it belongs to.

    ``turns``: (turn_number, speaker, created_at) in dialogue order. None for every tool of a call
    without turns."""
    if not turns:
        return [None] * len(tools)
    bots = sorted((at, number) for number, speaker, at in turns if speaker == "bot")
    if not bots:
        return [turns[-1][0]] * len(tools)
    stamps = [at for at, _ in bots]
    out: list[int | None] = []
    for at in tools:
        i = bisect_left(stamps, at)
        out.append(bots[min(i, len(bots) - 1)][1])
    return out
