"""Which automatic checks ran for which business day (``cca_check_runs``).

A report states what was checked: problem detection for its day and alert evaluation during its day
either ran (and found something or nothing) or never ran — "не проверялось", never "nothing found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

KINDS = ("problems", "alerts")

_RECORD = """
INSERT INTO cca_check_runs (kind, day, first_at, last_at) VALUES (:kind, :day, :at, :at)
ON CONFLICT (kind, day) DO UPDATE SET
    first_at = least(cca_check_runs.first_at, EXCLUDED.first_at),
    last_at = greatest(cca_check_runs.last_at, EXCLUDED.last_at),
    runs = cca_check_runs.runs + 1
"""


@dataclass(frozen=True)
class Coverage:
    """A check's runs for a day: the first and the last, and how many."""

    kind: str
    day: date
    first_at: datetime
    last_at: datetime
    runs: int


def record(conn: sa.Connection, kind: str, day: date, at: datetime) -> None:
    """Note that ``kind`` ran for ``day`` at ``at`` (in the caller's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"unknown check {kind!r}")
    conn.execute(sa.text(_RECORD), {"kind": kind, "day": day, "at": at})


def coverage(conn: sa.Connection, kind: str, day: date) -> Coverage | None:
    """How ``kind`` covered ``day``; None when it never ran for it."""
    row = conn.execute(
        sa.text("SELECT first_at, last_at, runs FROM cca_check_runs WHERE kind = :k AND day = :d"),
        {"k": kind, "d": day},
    ).one_or_none()
    return None if row is None else Coverage(kind, day, row.first_at, row.last_at, row.runs)
