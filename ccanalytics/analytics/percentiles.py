"""Exact continuous percentiles of integer values, the same numbers as PostgreSQL's percentile_cont.

daily_stats needs each day's p50/p95 over every bot reply of the day. Sorting a year of replies row
by row in SQL costs seconds; the day's values arrive instead as one comma-separated text of integers
(sql/queries/daily_latency.sql) and are selected here in linear time. The interpolation repeats
PostgreSQL's float8 arithmetic step by step (orderedsetaggs.c: the rows at floor and ceil of
p·(N−1), then lo + (p·(N−1) − floor) · (hi − lo)), so the results are the same doubles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ccanalytics.core.errors import InvalidArgument


def parse_values(text: str | None) -> np.ndarray:
    """The integers of a comma-separated text (``None`` or empty: none)."""
    if not text:
        return np.empty(0, dtype=np.int64)
    try:
        values = np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:  # newer numpy refuses a bad item; older versions stop there (caught below)
        values = None
    if values is None or values.size != text.count(",") + 1:
        raise InvalidArgument(f"not a comma-separated list of integers: {text[:80]!r}")
    return values


def percentile_cont(values: np.ndarray, fractions: Sequence[float]) -> list[float | None]:
    """percentile_cont(fraction) WITHIN GROUP (ORDER BY value) for each fraction; None without values."""
    for p in fractions:
        if not 0 <= p <= 1:
            raise InvalidArgument(f"percentile value {p} is not between 0 and 1")
    n = int(values.size)
    if n == 0:
        return [None for _ in fractions]
    rows = [(math.floor(p * (n - 1)), math.ceil(p * (n - 1))) for p in fractions]
    ordered = np.partition(values, sorted({k for pair in rows for k in pair}))
    out: list[float | None] = []
    for p, (first, second) in zip(fractions, rows, strict=True):
        lo = float(ordered[first])
        if first == second:
            out.append(lo)
            continue
        hi = float(ordered[second])
        proportion = p * (n - 1) - first
        out.append(lo + proportion * (hi - lo))
    return out
