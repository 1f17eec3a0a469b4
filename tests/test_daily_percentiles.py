"""Daily response-latency percentiles: ccanalytics.analytics.percentiles gives exactly PostgreSQL's
percentile_cont (the same doubles), on fixtures and through daily_stats on both of its paths."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from factories import make_call, turn

from ccanalytics.analytics import metrics, percentiles
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.ingest.load import ingest_records

FRACTIONS = [0.0, 0.25, 0.5, 0.95, 0.99, 0.999, 1.0]

_rng = random.Random(20261123)
FIXTURES = {
    "empty": [],
    "single": [1234],
    "two": [800, 1800],
    "two equal": [700, 700],
    "ties": [800, 1800, 800, 800, 1800, 5, 5, 5000],
    "negative and zero": [-3, 0, 0, 7, -3, 12],
    "hand-computed day": [800, 1800, 800],  # test_daily_stats: p50 800, p95 1700
    "many with duplicates": [_rng.randint(200, 2600) for _ in range(10_001)],
    "long tail": [int(_rng.lognormvariate(7, 0.6)) for _ in range(4_321)],
    "large values": [_rng.randint(0, 2_000_000_000) for _ in range(997)],
}


def postgres_percentiles(engine, values: list[int]) -> list[float | None]:
    columns = ", ".join(f"percentile_cont({p}) WITHIN GROUP (ORDER BY x)" for p in FRACTIONS)
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT {columns} FROM unnest(CAST(:v AS int[])) AS x"), {"v": values}).one()
    return list(row)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_same_doubles_as_percentile_cont(engine, name):
    values = FIXTURES[name]
    ours = percentiles.percentile_cont(percentiles.parse_values(",".join(map(str, values))), FRACTIONS)
    assert ours == postgres_percentiles(engine, values)  # exact, not approximately


def test_input_order_does_not_matter():
    values = FIXTURES["many with duplicates"]
    shuffled = values[:]
    random.Random(1).shuffle(shuffled)
    assert percentiles.percentile_cont(np.array(values), FRACTIONS) == percentiles.percentile_cont(
        np.array(shuffled), FRACTIONS
    )


def test_parse_values():
    assert percentiles.parse_values(None).size == 0
    assert percentiles.parse_values("").size == 0
    assert percentiles.parse_values("800,-5,1800").tolist() == [800, -5, 1800]
    with pytest.raises(InvalidArgument):
        percentiles.parse_values("800,x,1800")
    with pytest.raises(InvalidArgument):
        percentiles.percentile_cont(np.array([1, 2]), [1.5])


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def replies(start: datetime, gaps_ms: list[int]) -> list[dict]:
    """A dialogue whose bot replies come ``gaps_ms`` after the customer stops speaking."""
    turns, t = [], start + timedelta(seconds=1)
    for gap in gaps_ms:
        turns.append(turn("customer", "Шини на Шкоду", t, duration_ms=2000, stt_latency_ms=200))
        t += timedelta(seconds=2, milliseconds=gap)
        turns.append(turn("bot", "Зараз підберу варіанти.", t, duration_ms=1500, llm_latency_ms=600))
        t += timedelta(seconds=2)
    return turns


@pytest.mark.parametrize("days", [2, metrics.PARALLEL_FROM_DAYS + 3])  # one connection / three at once
def test_daily_percentiles_equal_percentile_cont_over_call_metrics(engine, days):
    rng = random.Random(days)
    last = date(2026, 11, 23)
    first = last - timedelta(days=days - 1)
    calls = []
    for k, day in enumerate((last - timedelta(days=1), last)):
        for i in range(12):
            # Kyiv is UTC+2 in November: 22:00 UTC the evening before is local midnight of ``day``
            start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=2) + timedelta(hours=2 * i)
            gaps = [rng.choice([400, 800, 800, 1250, 2600, rng.randint(100, 4000)]) for _ in range(rng.randint(0, 6))]
            calls.append(make_call(started_at=start, seconds=120, turns=replies(start, gaps), caller_id=None))
        if k == 0:  # a day whose replies are all the same value
            start = utc(2026, 11, 21, 23)
            calls.append(make_call(started_at=start, seconds=60, turns=replies(start, [900, 900]), caller_id=None))
    result = ingest_records(engine, calls)
    assert result.rejected == 0, result.rejects
    metrics.compute_daily_stats(engine, first, last, incremental=False)
    with engine.connect() as conn:
        expected = {
            r.d: (r.p50, r.p95)
            for r in conn.execute(
                sa.text(
                    "SELECT (m.started_at AT TIME ZONE 'Europe/Kyiv')::date AS d, "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50, "
                    "percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95 "
                    "FROM call_metrics m CROSS JOIN LATERAL unnest(m.response_ms) AS x GROUP BY 1"
                )
            )
        }
        stored = {
            r.stat_date: (r.response_p50_ms, r.response_p95_ms)
            for r in conn.execute(sa.text("SELECT stat_date, response_p50_ms, response_p95_ms FROM cca_daily_stats"))
        }
    assert set(expected) == {last - timedelta(days=1), last}
    assert {d: stored[d] for d in expected} == expected  # exact
    assert all(v == (None, None) for d, v in stored.items() if d not in expected)  # days without replies
