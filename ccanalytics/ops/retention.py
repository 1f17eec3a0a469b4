"""Retention: transcripts (turns, tool calls) after 90 days, calls and everything about them after a
year, daily figures and quality findings after a year — in the database, and in the lake.

**Whose rows go.** The call tables are the call processor's (../shared/callcenter-schema.md). Retention
deletes a call's rows in calls, call_turns and call_tool_calls only when ccanalytics wrote the call
itself through its ingest API (the call has a cca_call_ingest row). A call the processor wrote itself
(no cca_call_ingest row) is never deleted, nor are its turns and tool calls: keeping or purging them is
the processor's business. For such a call retention deletes only ccanalytics's own rows about it (its
scores, metrics, price, review items and labels, queue entry, A/B assignment). The processor's
daily_stats, llm_usage_log, customers and prompt tables are never touched; the daily figures purged are
ccanalytics's (cca_daily_stats, and the tenants' rows in cca_daily_stats_tenants).

**Partitions.** They are found through pg_inherits with their bounds from pg_get_expr, never by name,
so partitions another system created (other names, other spans, a DEFAULT partition) are handled too.
A partition whose every row is past the cutoff (by its upper bound) is dropped whole — instant, no
bloat — only on a database ccanalytics created itself (where it stands in for the processor's partition
manager) and only when no row in it belongs to a call the processor wrote itself. Otherwise, and on
every database attached to the call processor (whose partition manager owns its partitions: nothing is
ever dropped there), the rows of ccanalytics's calls are DELETEd and the partition stays. The partition
holding the cutoff is purged with DELETE the same way. Partitions reaching into the current month (of
``today``) or later are never dropped or deleted from. Each step is its own transaction, so a failure
leaves earlier steps done and a re-run finishes the rest.

**Already computed aggregates do not change.** cca_daily_stats read calls and call_metrics, never the
transcript; call_metrics are derived from the transcript and recomputed only when missing or older
than a re-delivery (``computed_at < ingested_at``). So before any transcript row goes, the same
transaction locks the partition against writers and derives the metrics of every call concerned that
lacks current ones; afterwards no call of the purged range is stale, the daily fingerprints
(calls + call_metrics.computed_at) do not move, and ``metrics.compute_daily_stats`` — incremental or
``--full`` — gives the same rows. See docs/lake-and-retention.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.alerts import engine as alerts
from ccanalytics.analytics import callmetrics
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.datalake.retention import purge as purge_lake
from ccanalytics.db import partitions
from ccanalytics.ops import exporter

if TYPE_CHECKING:
    from ccanalytics.core.config import Settings

TRANSCRIPT_TABLES = ("call_turns", "call_tool_calls")
# a row of ``x`` (calls: its own id; turns and tool calls: their call_id) belongs to a call ccanalytics
# wrote itself through its ingest API; every other call is the processor's and its rows are never deleted
_DELIVERED = "EXISTS (SELECT 1 FROM cca_call_ingest i WHERE i.call_id = x.{key})"
CHILD_SLACK = timedelta(hours=7)  # a call's turns are stamped up to this long after it started
LOCK_TIMEOUT = "5s"  # a step waits this long for the locks it needs, then is skipped until the next run

_PARTITIONS = """
SELECT c.oid::regclass::text AS qualified, c.relname AS name, b.bound = 'DEFAULT' AS is_default,
       CAST((regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1] AS timestamptz) AS lo,
       CAST((regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1] AS timestamptz) AS hi,
       b.bound ~ 'FROM \\(MINVALUE\\)' AS from_min
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
WHERE i.inhparent = CAST(:parent AS regclass)
ORDER BY lo NULLS FIRST, c.relname
"""


@dataclass(frozen=True)
class Partition:
    qualified: str  # schema-qualified and quoted as PostgreSQL prints a regclass: safe in DDL
    name: str
    lo: datetime | None  # None: MINVALUE (or DEFAULT)
    hi: datetime | None  # None: MAXVALUE (or DEFAULT)
    is_default: bool


def list_partitions(conn: sa.Connection, parent: str) -> list[Partition]:
    """The partitions of ``parent`` with their bounds, oldest first (the DEFAULT partition, if any, first)."""
    conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))  # the bound texts are printed and read back alike
    out = []
    for r in conn.execute(sa.text(_PARTITIONS), {"parent": parent}):
        lo = r.lo if not r.from_min else None
        if not r.is_default and lo is None and not r.from_min:
            continue  # not a range bound on a timestamp: not ours to judge
        out.append(Partition(r.qualified, r.name, lo, r.hi, r.is_default))
    return out


@dataclass(frozen=True)
class PurgeStep:
    table: str
    action: str  # drop (a whole partition) | delete (rows before the cutoff)
    target: str  # the partition or table
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "action": self.action, "target": self.target, "rows": self.rows}


@dataclass
class PurgeResult:
    today: date
    transcripts_cutoff: date  # transcripts of calls that started before this local day go
    aggregates_cutoff: date  # calls, their scores and metrics, daily_stats and findings before this go
    dry_run: bool
    steps: list[PurgeStep] = field(default_factory=list)
    metrics_derived: int = 0  # calls whose metrics were derived from their transcript before it went
    skipped: list[str] = field(default_factory=list)  # partitions left alone (current month or later)
    # calls past the aggregates cutoff that the call processor wrote itself: their rows are the
    # processor's and stay (only ccanalytics's own rows about them went)
    processor_calls_kept: int = 0

    def rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.steps:
            out[step.table] = out.get(step.table, 0) + step.rows
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "transcripts_cutoff": self.transcripts_cutoff.isoformat(),
            "aggregates_cutoff": self.aggregates_cutoff.isoformat(),
            "dry_run": self.dry_run,
            "rows": self.rows(),
            "metrics_derived": self.metrics_derived,
            "steps": [s.to_dict() for s in self.steps],
            "skipped": self.skipped,
            "processor_calls_kept": self.processor_calls_kept,
        }


def purge(
    engine: Engine,
    today: date | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    transcripts_days: int = 90,
    aggregates_days: int = 365,
    dry_run: bool = False,
) -> PurgeResult:
    """Purge the database past retention, relative to the local day ``today`` (default: today).

    Turns and tool calls of calls that started more than ``transcripts_days`` days before ``today``;
    calls with their metrics, scores, review items and labels and queue entries past
    ``aggregates_days``; cca_daily_stats (with the tenants' rows) and quality_findings of days past
    ``aggregates_days``. Of the
    processor's tables, only the rows of calls ccanalytics wrote itself (through its ingest API) are
    deleted; a call the processor wrote itself keeps its calls, call_turns and call_tool_calls rows.
    ``dry_run`` counts what would go and changes nothing.
    """
    real_today = timeutil.today(tz)
    today = timeutil.to_date(today, tz) if today is not None else real_today
    if today > real_today + timedelta(days=1):
        raise InvalidArgument(f"today ({today}) is in the future: retention runs from the present")
    if transcripts_days < 1 or aggregates_days < transcripts_days:
        raise InvalidArgument("retention needs 1 <= transcripts_days <= aggregates_days")
    # partitions reaching into the month of today (UTC months, as partitions.py makes them) or later are
    # never touched: a cutoff inside that month waits for the month to end
    guard = datetime.combine(partitions.month_start(timeutil.day_start(today, tz)), time.min, UTC)
    last_day = guard.astimezone(timeutil.zone(tz)).date()  # the last local day starting before the guard
    cut_t_day = min(today - timedelta(days=transcripts_days), last_day)
    cut_a_day = min(today - timedelta(days=aggregates_days), last_day)
    cut_t, cut_a = timeutil.day_start(cut_t_day, tz), timeutil.day_start(cut_a_day, tz)
    result = PurgeResult(today, cut_t_day, cut_a_day, dry_run)
    with engine.connect() as conn:
        attached = partitions.processor_makes_partitions(conn)
    if not dry_run:
        # the Prometheus counters already count these calls: checkpoint them before they go, so no
        # exporter process (a restarted one, a read-only one) comes back with lower counters
        exporter.checkpoint(engine)
    p = _Purger(engine, result, guard, dry_run, may_drop=not attached)

    for table in TRANSCRIPT_TABLES:
        p.partitioned(table, cut_t, derive=True)
    p.straddling(cut_t)
    # what hangs on a call goes before it (no foreign keys: each table is cut on its own started_at);
    # these are ccanalytics's own rows, about any call
    p.delete("review_labels", _LABELS, cutoff=cut_a)
    for table in ("review_items", "scoring_queue", "call_scores", "call_metrics", "cca_call_costs"):
        p.delete(table, f"DELETE FROM {table} WHERE started_at < :cutoff", cutoff=cut_a)  # noqa: S608 — constant tables
    p.delete("cca_ab_assignments", _ASSIGNMENTS, cutoff=cut_a)
    p.delete("cca_call_prompts", _SERVED_PROMPTS, cutoff=cut_a)
    p.partitioned("calls", cut_a, derive=False)
    # what ccanalytics received with the calls it deleted (the processor's calls have none)
    p.delete("cca_call_ingest", "DELETE FROM cca_call_ingest WHERE started_at < :cutoff", cutoff=cut_a)
    p.kept_processor_calls(cut_a)
    p.delete("daily_stats", "DELETE FROM cca_daily_stats WHERE stat_date < :day", day=cut_a_day)
    p.delete("daily_stats_tenants", "DELETE FROM cca_daily_stats_tenants WHERE stat_date < :day", day=cut_a_day)
    p.delete("quality_findings", "DELETE FROM quality_findings WHERE day < :day", day=cut_a_day)
    if not dry_run and any(s.action == "drop" for s in result.steps):
        partitions.forget_cache()  # this process must not believe the dropped months still exist
    return result


_LABELS = (
    "DELETE FROM review_labels WHERE call_id IN (SELECT c.id FROM calls c WHERE c.started_at < :cutoff "
    "UNION SELECT r.call_id FROM review_items r WHERE r.started_at < :cutoff)"
)
# an assignment is made at call start (the resolver) or when the call log arrives (ingest), never before;
# the prompt a call was served is recorded at its start
_ASSIGNMENTS = (
    "DELETE FROM cca_ab_assignments WHERE assigned_at < :cutoff "
    "OR call_id IN (SELECT c.id FROM calls c WHERE c.started_at < :cutoff)"
)
_SERVED_PROMPTS = (
    "DELETE FROM cca_call_prompts WHERE recorded_at < :cutoff "
    "OR call_id IN (SELECT c.id FROM calls c WHERE c.started_at < :cutoff)"
)


class _Purger:
    """The steps of one purge; each runs in its own transaction."""

    def __init__(self, engine: Engine, result: PurgeResult, guard: datetime, dry_run: bool, *, may_drop: bool) -> None:
        self.engine, self.result, self.guard, self.dry_run = engine, result, guard, dry_run
        self.may_drop = may_drop  # False on a database attached to the call processor

    def _record(self, table: str, action: str, target: str, rows: int) -> None:
        if rows or action == "drop":
            self.result.steps.append(PurgeStep(table, action, target, rows))

    def _plan(self, part: Partition, cutoff: datetime) -> str | None:
        """drop, delete, or None (nothing before the cutoff, or the partition is protected)."""
        if part.is_default:
            return "delete"  # a catch-all: its old rows go, the partition stays
        if part.lo is not None and part.lo >= cutoff:
            return None
        if part.hi is not None and part.hi <= cutoff and part.hi <= self.guard:
            return "drop"
        if part.hi is None or part.hi > self.guard:
            self.result.skipped.append(part.name)
            return None
        return "delete"

    def partitioned(self, table: str, cutoff: datetime, *, derive: bool) -> None:
        """Purge the rows of ccanalytics's calls in ``table`` before ``cutoff``: drop a partition wholly
        before it when that is allowed and every row in it is ccanalytics's, DELETE them otherwise."""
        column = "started_at" if table == "calls" else "created_at"
        delivered = _DELIVERED.format(key="id" if table == "calls" else "call_id")
        with self.engine.connect() as conn:
            parts = list_partitions(conn, table)
            conn.rollback()
        for part in parts:
            action = self._plan(part, cutoff)
            if action is None:
                continue
            old = f"FROM {part.qualified} x WHERE x.{column} < :cutoff AND {delivered}"
            # part.qualified is a regclass's text (quoted by PostgreSQL); column and delivered are constants
            extras = (
                "DELETE FROM cca_turn_extras e "  # noqa: S608 — quoted regclass; constants (see above)
                f"USING {part.qualified} x WHERE e.turn_id = x.id AND x.{column} < :cutoff AND {delivered}"
            )
            count_all = f"SELECT count(*) FROM {part.qualified}"  # noqa: S608 — regclass text, quoted by PostgreSQL
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                    whole = action == "drop" and self._only_ours(conn, part.qualified, delivered)
                    action = "drop" if whole else "delete"
                    if self.dry_run:
                        rows = conn.execute(sa.text(f"SELECT count(*) {old}"), {"cutoff": cutoff}).scalar_one()
                    else:
                        # no writer may slip a row in between the check, the derivation and the purge
                        mode = "ACCESS EXCLUSIVE" if whole else "SHARE ROW EXCLUSIVE"
                        conn.execute(sa.text(f"LOCK TABLE {part.qualified} IN {mode} MODE"))
                        if whole and not self._only_ours(conn, part.qualified, delivered):
                            whole, action = False, "delete"  # the processor wrote a row before the lock
                        first = conn.execute(sa.text(f"SELECT min(x.{column}) {old}"), {"cutoff": cutoff}).scalar_one()
                        if derive and first is not None:  # derive while the transcript rows are still here
                            upto = part.hi if whole else cutoff
                            assert upto is not None  # _plan drops a partition whole only below a finite bound
                            self._derived(callmetrics.derive(conn, first - CHILD_SLACK, upto))
                        if table == "call_turns" and first is not None:  # ccanalytics's extras of those turns
                            conn.execute(sa.text(extras), {"cutoff": cutoff})
                        if whole:
                            rows = conn.execute(sa.text(count_all)).scalar_one()
                            conn.execute(sa.text(f"DROP TABLE {part.qualified}"))
                        else:
                            rows = conn.execute(sa.text(f"DELETE {old}"), {"cutoff": cutoff}).rowcount
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                self.result.skipped.append(f"{part.name} (busy: lock timeout)")
                continue
            self._record(table, action, part.name, rows)

    def straddling(self, cutoff: datetime) -> None:
        """Turns and tool calls stamped after the cutoff whose call started before it (a call across
        the cutoff's midnight): a transcript of ccanalytics's goes whole, with its call's day."""
        params = {"cutoff": cutoff, "from": cutoff - timedelta(days=1), "to": min(cutoff + CHILD_SLACK, self.guard)}
        if params["to"] <= cutoff:
            return
        for table in TRANSCRIPT_TABLES:
            cond = (
                f"FROM {table} x "  # noqa: S608 — table from TRANSCRIPT_TABLES, _DELIVERED: constants; values bound
                "WHERE x.created_at >= :cutoff AND x.created_at < :to AND x.call_id IN "
                "(SELECT c.id FROM calls c WHERE c.started_at >= :from AND c.started_at < :cutoff) "
                f"AND {_DELIVERED.format(key='call_id')}"
            )
            extras = (
                "DELETE FROM cca_turn_extras e "  # noqa: S608 — cond is built from constants (above)
                f"WHERE e.turn_id IN (SELECT x.id {cond})"
            )
            with self.engine.begin() as conn:
                if self.dry_run:
                    rows = conn.execute(sa.text(f"SELECT count(*) {cond}"), params).scalar_one()
                else:
                    self._derived(callmetrics.derive(conn, params["from"], cutoff))
                    if table == "call_turns":
                        conn.execute(sa.text(extras), params)
                    rows = conn.execute(sa.text(f"DELETE {cond}"), params).rowcount
            self._record(table, "delete", f"{table} (calls started before the cutoff)", rows)

    def _only_ours(self, conn: sa.Connection, partition: str, delivered: str) -> bool:
        """Whether dropping ``partition`` whole is allowed: a database ccanalytics created itself, and no
        row in the partition belongs to a call the processor wrote itself."""
        if not self.may_drop:
            return False
        sql = (
            "SELECT EXISTS (SELECT 1 "  # noqa: S608 — partition: a regclass's text (quoted by PG); delivered: constant
            f"FROM {partition} x WHERE NOT {delivered})"
        )
        return not conn.execute(sa.text(sql)).scalar()

    def kept_processor_calls(self, cutoff: datetime) -> None:
        """Count the calls past the cutoff that stay because the processor wrote them itself."""
        with self.engine.connect() as conn:
            self.result.processor_calls_kept = conn.execute(
                sa.text(
                    "SELECT count(*) FROM calls x "  # noqa: S608 — _DELIVERED is a constant; cutoff bound
                    f"WHERE x.started_at < :cutoff AND NOT {_DELIVERED.format(key='id')}"
                ),
                {"cutoff": cutoff},
            ).scalar_one()

    def delete(self, table: str, statement: str, **params: Any) -> None:
        """One DELETE (or, dry, its count) in its own transaction."""
        with self.engine.begin() as conn:
            if self.dry_run:
                count = "SELECT count(*) FROM" + statement[len("DELETE FROM") :]
                rows = conn.execute(sa.text(count), params).scalar_one()
            else:
                rows = conn.execute(sa.text(statement), params).rowcount
        self._record(table, "delete", table, rows)

    def _derived(self, n: int) -> None:
        self.result.metrics_derived += n


def purge_job(
    engine: Engine, settings: Settings, today: date | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """The nightly retention job: the database, the alert history, then the lake, with the configured
    retention (CCA_RETENTION_TRANSCRIPTS_DAYS, CCA_RETENTION_AGGREGATES_DAYS)."""
    tz = settings.timezone
    today = today or timeutil.today(tz)
    db = purge(
        engine,
        today,
        tz,
        transcripts_days=settings.retention_transcripts_days,
        aggregates_days=settings.retention_aggregates_days,
        dry_run=dry_run,
    )
    # alert history follows the aggregates' retention; ccanalytics.alerts.engine owns its tables
    older = timeutil.day_start(db.aggregates_cutoff, tz)
    if dry_run:
        with engine.connect() as conn:
            events = conn.execute(
                sa.text("SELECT count(*) FROM alert_events WHERE created_at < :t"), {"t": older}
            ).scalar_one()
    else:
        events = alerts.purge(engine, older)
    files = purge_lake(
        settings.resolved_lake_dir(),
        today,
        transcripts_days=settings.retention_transcripts_days,
        aggregates_days=settings.retention_aggregates_days,
        dry_run=dry_run,
    )
    return {"database": db.to_dict(), "alert_events": events, "lake": files.to_dict()}
