"""How the processor's calls were read: per partition, the scans and rows read so far (the statistics
of pg_stat_user_tables, flushed first), and which partitions were passed over by sequential scans.
Shared by the freshness test and the freshness benchmark."""

from __future__ import annotations

import time
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# a partition this small is read whole rather than through an index (PostgreSQL's choice: a page or two
# cost less than an index descent); a larger one read by a sequential scan is a pass over the
# processor's table
SMALL_PAGES = 10

_READS = """
SELECT s.relname AS partition, s.n_live_tup AS live, c.relpages AS pages, s.seq_scan AS scans,
       s.seq_tup_read AS seq, coalesce(s.idx_tup_fetch, 0) AS idx
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.relname LIKE 'calls\\_2%' ORDER BY s.relname
"""


class Reads(NamedTuple):
    rows: int  # live rows of the partition
    pages: int
    scans: int  # sequential scans so far
    seq: int  # rows read by them
    idx: int  # rows fetched through indexes


def calls_reads(engine: Engine) -> dict[str, Reads]:
    """Partition of calls → its reads so far, with every backend's statistics flushed: the pool's
    connections are closed (a backend keeps its statistics up to 10 s, and flushes them at exit) and
    their backends waited for."""
    engine.dispose()
    with engine.connect() as conn:
        others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        for _ in range(100):
            if not conn.execute(sa.text(others)).scalar_one():
                break
            time.sleep(0.1)
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return {r.partition: Reads(r.live, r.pages, r.scans, r.seq, r.idx) for r in conn.execute(sa.text(_READS))}


NONE = Reads(0, 0, 0, 0, 0)  # a partition not there before


def scanned(before: dict[str, Reads], after: dict[str, Reads]) -> list[str]:
    """The partitions read by a sequential scan in between."""
    return [part for part, now in after.items() if now.seq > before.get(part, NONE).seq]


def passes(before: dict[str, Reads], after: dict[str, Reads]) -> list[str]:
    """The partitions of more than ``SMALL_PAGES`` pages read by a sequential scan in between."""
    return [part for part in scanned(before, after) if after[part].pages > SMALL_PAGES]
