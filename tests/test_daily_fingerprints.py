"""The day fingerprints stored with daily_stats: a full run (one connection or three) stores what the
incremental check computes, and the fingerprint moves with every change that daily_stats follows —
and only then."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call

from ccanalytics.analytics import callmetrics, metrics
from ccanalytics.core import timeutil
from ccanalytics.ingest.load import ingest_records

DAY = date(2026, 11, 20)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def put(engine, *calls) -> None:
    result = ingest_records(engine, list(calls))
    assert result.rejected == 0, result.rejects


def prints(engine, days: list[date]) -> dict[date, str | None]:
    with engine.connect() as conn:
        return metrics._fingerprints(conn, days, timeutil.DEFAULT_TZ)


def stored(engine) -> dict[date, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT stat_date, source_fingerprint FROM cca_daily_stats")).all())


@pytest.mark.parametrize("days", [4, metrics.PARALLEL_FROM_DAYS + 1])  # one connection / three at once
def test_full_run_stores_what_the_incremental_check_computes(engine, days):
    last = DAY
    first = last - timedelta(days=days - 1)
    put(
        engine,
        make_call(started_at=utc(2026, 11, 19, 22, 0), caller_id="+380671110001"),  # local midnight of DAY
        make_call(started_at=utc(2026, 11, 20, 9, 30), transferred_to_operator=True, transfer_reason="cannot_help"),
        make_call(started_at=utc(2026, 11, 18, 12), caller_id=None),
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET quality_score = 0.8 WHERE started_at = :t"), {"t": utc(2026, 11, 18, 12)}
        )
    # a call that has no derived metrics yet still gives its day a fingerprint
    put(engine, make_call(started_at=utc(2026, 11, 17, 10), caller_id=None))
    run = metrics.compute_daily_stats(engine, first, last, incremental=False)
    assert len(run.days_computed) == days
    all_days = [first + timedelta(days=i) for i in range(days)]
    saved = stored(engine)
    checked = prints(engine, all_days)  # what the incremental run compares with (days with rows only)
    assert saved == {d: checked.get(d) for d in all_days}
    assert all(saved[d] for d in (date(2026, 11, 17), date(2026, 11, 18), DAY))
    assert saved[date(2026, 11, 19)] is None  # no calls
    assert len({saved[d] for d in (date(2026, 11, 17), date(2026, 11, 18), DAY)}) == 3
    # unchanged data: the same fingerprints, nothing recomputed
    assert metrics.compute_daily_stats(engine, first, last).days_computed == []
    assert prints(engine, all_days) == checked


def test_fingerprint_moves_with_each_change_and_only_then(engine):
    a = make_call(started_at=utc(2026, 11, 20, 9), caller_id=None)
    b = make_call(started_at=utc(2026, 11, 20, 11), caller_id=None)
    put(engine, a, b)
    metrics.compute_daily_stats(engine, DAY, DAY)
    seen = [prints(engine, [DAY])[DAY]]

    def changed() -> bool:
        seen.append(prints(engine, [DAY])[DAY])
        return seen[-1] != seen[-2]

    start, end = timeutil.period_bounds(DAY, DAY)
    assert not changed()  # nothing happened
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.9 WHERE id = :id"), {"id": a["call_id"]})
    assert changed()  # scored
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.4 WHERE id = :id"), {"id": a["call_id"]})
    assert changed()  # scored again
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET total_cost_usd = 0.5 WHERE id = :id"), {"id": b["call_id"]})
    assert changed()  # costed
    with engine.begin() as conn:
        callmetrics.derive(conn, start, end, only_stale=False)
    assert changed()  # metrics derived again
    c = make_call(started_at=utc(2026, 11, 20, 15), caller_id=None)
    put(engine, c)
    assert changed()  # a new call
    with engine.begin() as conn:
        callmetrics.derive(conn, start, end)
    assert changed()  # its metrics derived
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM calls WHERE id = :id"), {"id": c["call_id"]})
    assert changed()  # a call removed (its metrics stay)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM call_metrics WHERE call_id = :id"), {"id": c["call_id"]})
    assert changed()  # and its metrics
    assert not changed()
    assert seen[-1] == seen[5]  # back to the same calls and metrics as before c: the same fingerprint
    put(engine, {**a, "duration_seconds": 91, "ended_at": (utc(2026, 11, 20, 9) + timedelta(seconds=91)).isoformat()})
    assert changed()  # re-delivered with a change
    # a day's fingerprint does not depend on the other days asked for at once
    assert prints(engine, [DAY - timedelta(days=3), DAY, DAY + timedelta(days=2)])[DAY] == seen[-1]
