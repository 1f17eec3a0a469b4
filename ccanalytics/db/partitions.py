"""Monthly partitions of the call processor's calls, call_turns, call_tool_calls and llm_usage_log.

Partitions cover UTC months and are named ``<table>_YYYY_MM``. The call processor's partition manager
creates them three months ahead. On a database attached to the call processor (docs/attach.md)
ccanalytics never creates one: a month no partition covers is an error naming the processor's partition
manager. On a database ccanalytics created itself (the embedded demo, the tests: the processor's tables
from ``sql/processor/schema.sql``) ccanalytics stands in for that manager: ``ensure_ahead`` runs at
migrate time and from the scheduler, and ingestion calls ``ensure_months`` for the months its records
touch, skipping the database round trip for months this process already knows to exist.

Months are looked up by partition bounds, not names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime

import sqlalchemy as sa

from ccanalytics.core import clock
from ccanalytics.core.errors import InvalidArgument

PARTITIONED_TABLES = ("calls", "call_turns", "call_tool_calls", "llm_usage_log")
# what ingestion writes: a month must be covered on these (llm_usage_log is written by the processor only;
# its partition manager may not make that table's months, and a delivered call does not need them)
INGEST_TABLES = ("calls", "call_turns", "call_tool_calls")

_known: set[tuple[str, date]] = set()  # (database identity, month) already ensured by this process
_lock = threading.Lock()


def month_start(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
        return date(moment.year, moment.month, 1)
    return date(moment.year, moment.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


class MissingPartition(InvalidArgument):
    """Months no partition of the call processor's tables covers, on a database attached to the call
    processor (whose partition manager makes them; ccanalytics never does there)."""

    def __init__(self, months: list[date]) -> None:
        self.months = months
        super().__init__(f"no partition of the call processor's tables covers {missing_text(months)}")


def missing_text(months: Iterable[date]) -> str:
    """What a month no partition covers means, for a message: whose job the partition is."""
    listed = ", ".join(m.strftime("%Y-%m") for m in sorted(months))
    return f"{listed}: its partition manager creates them (ccanalytics never does on an attached database)"


def ensure_months(conn: sa.Connection, months: Iterable[date]) -> int:
    """Make sure every month in ``months`` has its partition on the tables ingestion writes (on a
    database ccanalytics created, the stand-in for the processor's partition manager makes the month of
    all four partitioned tables).

    Returns the number of partitions created. Must run inside the caller's transaction. On a database
    attached to the call processor nothing is created: months without a partition raise
    MissingPartition (an InvalidArgument) naming them.
    """
    key = _db_key(conn)
    wanted = sorted({month_start(m) for m in months})
    with _lock:
        missing = [m for m in wanted if (key, m) not in _known]
    created = 0
    uncovered = sorted({m for table in INGEST_TABLES for m in _uncovered(conn, table, missing)})
    if uncovered and processor_makes_partitions(conn):
        raise MissingPartition(uncovered)
    for m in uncovered:
        created += conn.execute(sa.text("SELECT cc_processor_ensure_partitions(:m, 1)"), {"m": m}).scalar_one()
    if missing:
        # remember only after the transaction commits; a rollback would undo the partitions
        def remember(*_args: object) -> None:
            with _lock:
                _known.update((key, m) for m in missing)

        sa.event.listen(conn, "commit", remember, once=True)
    return created


def processor_makes_partitions(conn: sa.Connection) -> bool:
    """True on a database attached to the call processor's schema (docs/attach.md): its partition
    manager makes the partitions, ccanalytics never does."""
    return conn.execute(sa.text("SELECT to_regclass('cca_schema_attach')")).scalar() is not None


def ensure_ahead(conn: sa.Connection, *, months_ahead: int = 3, today: date | None = None) -> int:
    """Partitions for the current month and ``months_ahead`` months after it; none on a database
    attached to the call processor's schema, whose partitions the call processor makes."""
    if processor_makes_partitions(conn):
        return 0
    first = month_start(today or clock.now().date())
    return ensure_months(conn, (add_months(first, i) for i in range(months_ahead + 1)))


# months of ``:months`` that no single partition of ``:t`` covers (bounds read back as UTC instants)
_UNCOVERED = """
SELECT m FROM unnest(CAST(:months AS date[])) AS m
WHERE NOT EXISTS (
    SELECT 1
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = CAST(:t AS regclass)
      AND CAST((regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1] AS timestamptz) <= m::timestamp AT TIME ZONE 'UTC'
      AND CAST((regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1] AS timestamptz)
          >= (m + interval '1 month')::timestamp AT TIME ZONE 'UTC'
)
ORDER BY m
"""


def _uncovered(conn: sa.Connection, table: str, months: list[date]) -> list[date]:
    if not months:
        return []
    return list(conn.execute(sa.text(_UNCOVERED), {"t": table, "months": months}).scalars())


def list_partitions(conn: sa.Connection) -> dict[str, list[str]]:
    """Partition names per partitioned table, in bound order."""
    rows = conn.execute(
        sa.text(
            """
            SELECT p.relname AS parent, c.relname AS part
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = ANY(:tables) AND p.relnamespace = to_regnamespace(current_schema())
            ORDER BY p.relname, pg_get_expr(c.relpartbound, c.oid)
            """
        ),
        {"tables": list(PARTITIONED_TABLES)},
    )
    result: dict[str, list[str]] = {t: [] for t in PARTITIONED_TABLES}
    for parent, part in rows:
        result[parent].append(part)
    return result


def forget_cache() -> None:
    """Forget what this process knows about existing partitions (tests, after a restore)."""
    with _lock:
        _known.clear()


def _db_key(conn: sa.Connection) -> str:
    url = conn.engine.url
    return f"{url.host}|{url.port}|{url.database}|{url.query.get('host', '')}"
