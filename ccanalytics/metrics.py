"""Aggregate metrics over calls. Rates are weighted: counts over counts for the whole period."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import sqlfiles, timeutil


@dataclass(frozen=True)
class Summary:
    """The spec's summary: the fields of GET /api/v1/analytics/summary."""

    period: dict[str, str]
    total_calls: int
    resolved_by_bot: int
    transferred: int
    avg_duration_seconds: float | None
    resolved_by_bot_pct: float | None
    transferred_to_operator_pct: float | None
    transfer_reasons: dict[str, int]
    scenarios: dict[str, int]
    hourly_distribution: dict[int, int]
    orders_created: int
    fittings_booked: int
    avg_quality_score: float | None
    scored_calls: int
    total_cost_usd: float
    avg_cost_per_call_usd: float | None
    customers: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hourly_distribution"] = {str(h): n for h, n in sorted(self.hourly_distribution.items())}
        return out


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def summary(
    engine: Engine,
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
) -> Summary:
    """Summary of the calls that started in the local days ``date_from`` … ``date_to`` inclusive."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        row = conn.execute(sa.text(sqlfiles.query("summary")), {"start": start, "end": end, "tz": tz}).one()
    notes = []
    if row.total_calls and row.scored_calls < row.total_calls:
        notes.append(f"{row.total_calls - row.scored_calls} calls are not scored yet")
    if row.total_calls and row.costed_calls < row.total_calls:
        notes.append(f"{row.total_calls - row.costed_calls} calls have no cost")
    return Summary(
        period={"date_from": first.isoformat(), "date_to": last.isoformat(), "tz": tz},
        total_calls=row.total_calls,
        resolved_by_bot=row.resolved_by_bot,
        transferred=row.transferred,
        avg_duration_seconds=round(row.avg_duration_seconds, 1) if row.avg_duration_seconds is not None else None,
        resolved_by_bot_pct=_pct(row.resolved_by_bot, row.total_calls),
        transferred_to_operator_pct=_pct(row.transferred, row.total_calls),
        transfer_reasons=dict(sorted(row.transfer_reasons.items(), key=lambda kv: -kv[1])),
        scenarios=dict(sorted(row.scenarios.items(), key=lambda kv: -kv[1])),
        hourly_distribution={int(h): n for h, n in row.hourly_distribution.items()},
        orders_created=row.orders_created,
        fittings_booked=row.fittings_booked,
        avg_quality_score=round(row.avg_quality_score, 4) if row.avg_quality_score is not None else None,
        scored_calls=row.scored_calls,
        total_cost_usd=round(row.total_cost_usd, 6),
        avg_cost_per_call_usd=round(row.total_cost_usd / row.costed_calls, 6) if row.costed_calls else None,
        customers=row.customers,
        notes=notes,
    )
