"""Fixed monthly costs shared fairly: pro rata per day, divided among that day's calls.

A provider billed per month (a self-hosted STT on a rented GPU) costs ``monthly / days_in_month`` per
business day. That daily share is divided among the day's calls on the provider, so a call's price
does not depend on how far the month has run, and a busy day does not pay for a quiet one:

- **while the day runs**, the share accrues with the elapsed part of the day (a call at 00:30 does not
  carry the whole day's GPU): ``share × elapsed / day length ÷ calls so far`` — provisional;
- **once the day is over** (plus ``GRACE`` for late deliveries) the day's allocation is final:
  ``share ÷ the day's calls``, stored in ``cca_fixed_cost_days`` and never rewritten, so a past call's
  price never changes afterwards (a call delivered later still gets the stored per-call share);
- **a day without calls** on the provider allocates nothing: its share is idle capacity, not charged
  to the calls of other days; cost summaries report it as ``fixed_cost_unallocated_usd``.

The day length honours daylight saving (23 or 25 hours). See docs/cost.md.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ccanalytics.core import timeutil

GRACE = timedelta(hours=2)  # calls of a day may still arrive this long after it ends


@dataclass(frozen=True)
class DayShare:
    """The allocation of one provider's fixed cost on one business day."""

    provider: str
    day: date
    daily_share_usd: float
    calls: int
    per_call_usd: float | None
    final: bool


def daily_share(monthly_usd: float, day: date) -> float:
    """The part of a monthly cost that falls on ``day``: the month's cost over its number of days."""
    return monthly_usd / calendar.monthrange(day.year, day.month)[1]


def allocate(provider: str, day: date, monthly_usd: float, calls: int, now: datetime, tz: str) -> DayShare:
    """The per-call share of ``day`` with ``calls`` calls on the provider, as of ``now``."""
    start, end = timeutil.day_start(day, tz), timeutil.day_start(day + timedelta(days=1), tz)
    share = daily_share(monthly_usd, day)
    final = now >= end + GRACE
    if calls <= 0:
        return DayShare(provider, day, share, 0, None, final)
    elapsed = 1.0 if now >= end else max((now - start) / (end - start), 0.0)
    return DayShare(provider, day, share, calls, share * elapsed / calls, final)


_STORED = """
SELECT provider, day, daily_share_usd, calls, per_call_usd, final FROM cca_fixed_cost_days
WHERE final AND day = ANY(:days) AND provider = ANY(:providers)
"""
_UPSERT = """
INSERT INTO cca_fixed_cost_days (provider, day, daily_share_usd, calls, per_call_usd, final, computed_at)
SELECT *, now() FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    provider text, day date, daily_share_usd float8, calls int, per_call_usd float8, final boolean)
ON CONFLICT (provider, day) DO UPDATE SET
    daily_share_usd = EXCLUDED.daily_share_usd, calls = EXCLUDED.calls, per_call_usd = EXCLUDED.per_call_usd,
    final = EXCLUDED.final, computed_at = EXCLUDED.computed_at
WHERE NOT cca_fixed_cost_days.final
"""


def shares(
    conn: sa.Connection,
    volume: list[tuple[date, str, int]],
    monthly: dict[tuple[str, date], float],
    now: datetime,
    tz: str,
) -> list[DayShare]:
    """The allocations of the (day, provider, calls) in ``volume`` whose provider has a fixed monthly
    price on that day (``monthly[(provider, day)]``): final rows as stored, the others computed and
    stored (a final row is never rewritten). Runs in the caller's transaction."""
    wanted = [(d, p, n) for d, p, n in volume if (p, d) in monthly]
    if not wanted:
        return []
    stored = {
        (r.provider, r.day): DayShare(r.provider, r.day, r.daily_share_usd, r.calls, r.per_call_usd, r.final)
        for r in conn.execute(
            sa.text(_STORED),
            {"days": sorted({d for d, _, _ in wanted}), "providers": sorted({p for _, p, _ in wanted})},
        )
    }
    out, fresh = [], []
    for d, p, n in wanted:
        if (p, d) in stored:
            out.append(stored[(p, d)])
            continue
        s = allocate(p, d, monthly[(p, d)], n, now, tz)
        out.append(s)
        fresh.append(s)
    if fresh:
        conn.execute(sa.text(_UPSERT), {"rows": _json(fresh)})
    return out


def _json(rows: list[DayShare]) -> str:
    return json.dumps([{**r.__dict__, "day": r.day.isoformat()} for r in rows])


def as_params(rows: list[DayShare]) -> list[dict[str, Any]]:
    """The per-call shares as the rows ``call_costs.sql`` joins on (day, provider)."""
    return [{"d": r.day.isoformat(), "provider": r.provider, "per_call": r.per_call_usd} for r in rows]
