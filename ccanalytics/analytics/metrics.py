"""Aggregate metrics over calls. Rates are weighted: counts over counts for the whole period."""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import callmetrics, percentiles
from ccanalytics.core import definitions, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import sqlfiles, tenants


class SummaryPeriod(TypedDict):
    """The period a summary covers: local dates, their time zone, and the tenants (None: every tenant)."""

    date_from: str
    date_to: str
    tz: str
    tenants: list[str] | None


@dataclass(frozen=True)
class Summary:
    """The spec's summary: the fields of GET /api/v1/analytics/summary."""

    period: SummaryPeriod
    total_calls: int
    resolved_by_bot: int
    transferred: int
    avg_duration_seconds: float | None
    resolved_by_bot_pct: float | None
    transferred_to_operator_pct: float | None
    transfer_reasons: dict[str, int]
    transfer_reasons_pct: dict[str, float | None]
    scenarios: dict[str, int]
    hourly_distribution: dict[int, int]
    orders_created: int
    fittings_booked: int
    orders_created_pct: float | None
    fittings_booked_pct: float | None
    first_contact_resolution_pct: float | None
    repeat_calls_7d_pct: float | None
    response_p50_ms: float | None
    response_p95_ms: float | None
    stt_reasks: int
    tool_errors: int
    avg_quality_score: float | None
    scored_calls: int
    total_cost_usd: float
    avg_cost_per_call_usd: float | None
    cost_per_resolved_call_usd: float | None
    costed_calls: int
    customers: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hourly_distribution"] = {str(h): n for h, n in sorted(self.hourly_distribution.items())}
        return out


_pct = definitions.rate_pct


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def summary(
    engine: Engine,
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> Summary:
    """Summary of the calls that started in the local days ``date_from`` … ``date_to`` inclusive, of
    ``tenant`` (a slug or several; default: every tenant)."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        row = conn.execute(
            sa.text(sqlfiles.query("summary")),
            {"start": start, "end": end, "tz": tz, "fcr_days": definitions.FCR_WINDOW_DAYS, **tenants.params(scope)},
        ).one()
    reasons = sorted(row.transfer_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    notes = []
    if row.total_calls and row.scored_calls < row.total_calls:
        notes.append(f"{row.total_calls - row.scored_calls} calls are not scored yet")
    if row.total_calls and row.derived_calls < row.total_calls:
        notes.append(f"{row.total_calls - row.derived_calls} calls have no derived metrics yet (stats daily)")
    if row.total_calls and row.costed_calls < row.total_calls:
        notes.append(f"{row.total_calls - row.costed_calls} calls have no cost")
    return Summary(
        period={
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "tz": tz,
            "tenants": list(scope) if scope is not None else None,
        },
        total_calls=row.total_calls,
        resolved_by_bot=row.resolved_by_bot,
        transferred=row.transferred,
        avg_duration_seconds=round(row.avg_duration_seconds, 1) if row.avg_duration_seconds is not None else None,
        resolved_by_bot_pct=_pct(row.resolved_by_bot, row.total_calls),
        transferred_to_operator_pct=_pct(row.transferred, row.total_calls),
        transfer_reasons=dict(reasons),
        transfer_reasons_pct={k: _pct(v, row.total_calls) for k, v in reasons},
        scenarios=dict(sorted(row.scenarios.items(), key=lambda kv: -kv[1])),
        hourly_distribution={int(h): n for h, n in row.hourly_distribution.items()},
        orders_created=row.orders_created,
        fittings_booked=row.fittings_booked,
        orders_created_pct=_pct(row.orders_created, row.total_calls),
        fittings_booked_pct=_pct(row.fittings_booked, row.total_calls),
        first_contact_resolution_pct=_pct(row.first_contact_resolved, row.total_calls),
        repeat_calls_7d_pct=_pct(row.repeat_calls_7d, row.total_calls),
        response_p50_ms=_round(row.response_p50_ms, 1),
        response_p95_ms=_round(row.response_p95_ms, 1),
        stt_reasks=row.stt_reasks,
        tool_errors=row.tool_errors,
        avg_quality_score=round(row.avg_quality_score, 4) if row.avg_quality_score is not None else None,
        scored_calls=row.scored_calls,
        total_cost_usd=round(row.total_cost_usd, 6),
        avg_cost_per_call_usd=definitions.cost_per_call(row.total_cost_usd, row.costed_calls),
        cost_per_resolved_call_usd=definitions.cost_per_resolved_call(row.total_cost_usd, row.costed_resolved_calls),
        costed_calls=row.costed_calls,
        customers=row.customers,
        notes=notes,
    )


# ------------------------------------------------------------------------------------ daily_stats
RESPONSE_BUDGET_MS = definitions.RESPONSE_BUDGET_MS  # NFR: end-to-end response p95 ≤ 2 s
FCR_WINDOW_DAYS = definitions.FCR_WINDOW_DAYS  # a call's first-contact resolution depends on the next days' calls
# rows committed by transactions that started before a day was computed may carry older stamps:
# changes are looked for this far before the day's computed_at
CHANGE_LAG = timedelta(minutes=10)
SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")
# cca_daily_stats_by_tenant.tenant of the row over every tenant (cca_daily_stats); the other rows carry
# their tenant's slug (cca_daily_stats_tenants). Grafana's tenant variable «Все сети» has this value.
ALL_TENANTS = "*"
# how a stored fingerprint begins when its day was computed with its tenants' rows (migration 016): a
# day whose fingerprint lacks it was computed before, and the next run over it recomputes it
PRINT_FORMAT = "2:"


@dataclass(frozen=True)
class DailyStatsRun:
    """What a daily_stats run did."""

    date_from: date
    date_to: date
    days_in_range: int
    days_computed: list[date]
    calls_derived: int  # calls whose per-call metrics were (re)derived first
    tenant_rows: int = 0  # rows of the tenants that had calls on the days computed (cca_daily_stats_tenants)

    @property
    def days_skipped(self) -> int:
        return self.days_in_range - len([d for d in self.days_computed if self.date_from <= d <= self.date_to])

    def to_dict(self) -> dict[str, Any]:
        return {
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "days_in_range": self.days_in_range,
            "days_computed": [d.isoformat() for d in self.days_computed],
            "days_skipped": self.days_skipped,
            "calls_derived": self.calls_derived,
            "tenant_rows": self.tenant_rows,
        }


def compute_daily_stats(
    engine: Engine,
    date_from: date | datetime | str | None = None,
    date_to: date | datetime | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    incremental: bool = True,
    response_budget_ms: float = RESPONSE_BUDGET_MS,
) -> DailyStatsRun:
    """Compute daily_stats for the local days ``date_from`` … ``date_to`` (default: today).

    A day has a row over every tenant (cca_daily_stats) and a row per tenant that had calls that day
    (cca_daily_stats_tenants), computed together from one snapshot and written in one transaction
    (idempotent: a recomputed day's tenant rows replace the old ones). Per-call metrics of new or
    re-delivered calls are derived first. With ``incremental``, only days never computed (or computed
    before the tenant rows existed), or with calls ingested, scored or derived since the day was
    computed, are recomputed — together with the days of the same customers' calls in the 7 days before
    a new call (their first-contact resolution changes; a customer is one tenant's). A change of any
    tenant's calls recomputes all the rows of its day. The check reads the change indexes, so its cost
    follows the changes, not the table size. ``incremental=False`` recomputes every day of the range.
    """
    first, last = timeutil.resolve_days(date_from, date_to, tz, default_days=1)
    start, end = timeutil.day_start(first, tz), timeutil.day_start(last + timedelta(days=1), tz)
    in_range = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    with engine.begin() as conn:
        stored = {
            row.stat_date: (row.computed_at, row.source_fingerprint)
            for row in conn.execute(
                sa.text(
                    "SELECT stat_date, computed_at, source_fingerprint FROM cca_daily_stats "
                    "WHERE stat_date BETWEEN :a AND :b"
                ),
                {"a": first - timedelta(days=FCR_WINDOW_DAYS), "b": last},
            )
        }
        computed = [stored[d][0] for d in in_range if d in stored]
        complete = len(computed) == len(in_range)
        last_run = min(computed) - CHANGE_LAG if computed else None
        since = last_run if incremental else None
        # new and re-delivered calls get their per-call metrics first (committed: the statistics
        # below may read them from a second connection). Every run leaves the calls of its range
        # derived, so when all days were computed before, only calls ingested since need a look.
        derived = callmetrics.derive(conn, start, end, ingested_after=last_run if complete else None)
    with engine.begin() as conn:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        if not incremental:
            todo = set(in_range)
        else:
            candidates = {d for d in in_range if d not in stored or not _current_print(stored[d][1])}
            if since is not None:
                window = {"since": since, "start": start, "end": end, "tz": tz}
                for row in conn.execute(sa.text(sqlfiles.query("daily_changes")), window):
                    if row.d not in stored or row.changed_at > stored[row.d][0] - CHANGE_LAG:
                        candidates.add(row.d)
            prints = _fingerprints(conn, sorted(candidates), tz)
            todo = {d for d in candidates if d not in stored or stored[d][1] != prints.get(d)}
            if since is not None and todo:
                lookback = conn.execute(
                    sa.text(sqlfiles.query("daily_lookback")),
                    {"since": since, "tz": tz, "changed": sorted(todo), "fcr_days": FCR_WINDOW_DAYS},
                )
                todo.update(row.d for row in lookback if row.d in stored or first <= row.d <= last)
            todo = {d for d in todo if d <= last}
        days = sorted(todo)
        tenant_rows: list[dict] = []
        if days:
            rows, tenant_rows = _day_rows(engine, conn, days, tz, response_budget_ms)
            conn.execute(
                sa.text(sqlfiles.query("daily_upsert")),
                {"days": days, "rows": json.dumps(rows, default=str)},
            )
            conn.execute(sa.text("DELETE FROM cca_daily_stats_tenants WHERE stat_date = ANY(:days)"), {"days": days})
            if tenant_rows:
                conn.execute(
                    sa.text(sqlfiles.query("daily_upsert_tenants")), {"rows": json.dumps(tenant_rows, default=str)}
                )
    return DailyStatsRun(first, last, len(in_range), days, derived, len(tenant_rows))


def _current_print(stored: str | None) -> bool:
    """Whether a stored fingerprint was made with the tenants' rows of its day (or the day had no calls,
    so it has no tenant rows to make)."""
    return stored is None or stored.startswith(PRINT_FORMAT)


def _fingerprints(conn: sa.Connection, days: list[date], tz: str) -> dict[date, str | None]:
    if not days:
        return {}
    params = {
        "days": days,
        "start": timeutil.day_start(days[0], tz),
        "end": timeutil.day_start(days[-1] + timedelta(days=1), tz),
        "tz": tz,
    }
    rows = conn.execute(sa.text(sqlfiles.query("daily_fingerprints")), params)
    return {r.d: fingerprint(r.calls_print, r.metrics_print) for r in rows}


def fingerprint(calls_print: str | None, metrics_print: str | None) -> str | None:
    """The stored fingerprint of a day (or of a tenant's day) from its calls' and its call_metrics' parts
    (None: no rows), prefixed with :data:`PRINT_FORMAT`."""
    if calls_print is None and metrics_print is None:
        return None
    digest = hashlib.md5(f"{calls_print or ''}|{metrics_print or ''}".encode(), usedforsecurity=False).hexdigest()
    return PRINT_FORMAT + digest


PARALLEL_FROM_DAYS = 32  # from this many days, the three queries run at once on their own connections
WORK_MEM = "256MB"  # hash tables and the customers' window sort in memory instead of spilling (a year: ~100 MB each)
# (query, planner settings) in the order they run on one connection. The call-side and latency
# aggregates only group, and with no statistics on the local-day expressions the planner expects a
# group per row and would sort every row: hashing is what they need (a few hundred groups a day).
# The customers' window needs its sort.
HASHED = {"enable_sort": "off"}
QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("daily_calls", HASHED),
    ("daily_latency", HASHED),
    ("daily_customers", {}),
)
PERCENTILES = {"response_p50_ms": 0.5, "response_p95_ms": 0.95}


def _day_rows(
    engine: Engine, conn: sa.Connection, days: list[date], tz: str, budget: float
) -> tuple[list[dict], list[dict]]:
    """The rows of ``days``: over every tenant, and of each tenant that had calls that day. The call-side,
    the call_metrics-side and the customers' queries each give both kinds (grouped by day and by day
    and tenant in one pass), merged per day and tenant here. For long ranges the three run at once on
    their own connections sharing one snapshot (they cost about the same; two cores are kept busy)."""
    lo = timeutil.day_start(days[0], tz)
    hi = timeutil.day_start(days[-1] + timedelta(days=1), tz)
    params = {
        "days": days,
        "start": lo,
        "end": hi,
        "tz": tz,
        "bin": utc_bin(tz, lo, hi),
        "response_budget_ms": budget,
        "fcr_days": FCR_WINDOW_DAYS,
        "narrow": len(days) < PARALLEL_FROM_DAYS,
    }
    conn.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    if len(days) >= PARALLEL_FROM_DAYS:
        snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        with ThreadPoolExecutor(max_workers=len(QUERIES) - 1) as pool:
            futures = [pool.submit(_in_snapshot, engine, snapshot, query, params) for query in QUERIES[1:]]
            parts = _run(conn, QUERIES[0], params)
            for future in futures:
                parts += future.result()
    else:
        parts = [r for query in QUERIES for r in _run(conn, query, params)]
    merged: dict[tuple[date, Any], dict] = {}
    for r in parts:  # tenant_id None: the row over every tenant
        merged.setdefault((r["d"], r["tenant_id"]), {}).update(r)
    for row in merged.values():
        row["source_fingerprint"] = fingerprint(row.pop("calls_print", None), row.pop("metrics_print", None))
        replies = percentiles.parse_values(row.pop("response_ms", None))
        row.update(zip(PERCENTILES, percentiles.percentile_cont(replies, list(PERCENTILES.values())), strict=True))
        # callers we cannot follow up (hidden number) count as resolved when not transferred
        row["first_contact_resolved"] = (row.pop("fcr_known", 0) or 0) + (row.pop("fcr_anonymous", 0) or 0)
        row["d"] = row["d"].isoformat()
    ordered = [merged[k] for k in sorted(merged, key=lambda k: (k[0], str(k[1] or "")))]
    every = [{k: v for k, v in row.items() if k != "tenant_id"} for row in ordered if row["tenant_id"] is None]
    # a tenant's row exists when it had calls that day (the call side has it)
    tenant = [row for row in ordered if row["tenant_id"] is not None and "total_calls" in row]
    return every, tenant


def utc_bin(tz: str, start: datetime, end: datetime) -> str:
    """The width of the UTC bins the day queries group calls by before converting each bin to local
    time once (daily_calls.sql, daily_latency.sql): an hour when every offset of ``tz`` from ``start``
    to ``end`` is a whole number of hours (Kyiv's +2 and +3), else a quarter of an hour (every offset
    in use is a whole number of quarter hours, and changes on one). A bin never straddles a local hour."""
    zone = ZoneInfo(tz)
    moment = start
    while True:
        offset = moment.astimezone(zone).utcoffset() or timedelta()
        if offset % timedelta(hours=1):
            return "15 minutes"
        if moment >= end:
            return "1 hour"
        moment = min(moment + timedelta(hours=12), end)


def _run(conn: sa.Connection, query: tuple[str, dict[str, str]], params: dict) -> list[dict]:
    """Run a named query on ``conn`` with its planner settings (constants of this module)."""
    name, settings = query
    for key, value in settings.items():
        conn.execute(sa.text(f"SET LOCAL {key} = '{value}'"))
    rows = [dict(r) for r in conn.execute(sa.text(sqlfiles.query(name)), params).mappings()]
    for key in settings:
        conn.execute(sa.text(f"SET LOCAL {key} = DEFAULT"))
    return rows


def _in_snapshot(engine: Engine, snapshot: str, query: tuple[str, dict[str, str]], params: dict) -> list[dict]:
    """Run ``query`` on another connection that sees exactly what the first one sees."""
    if not SNAPSHOT_ID.fullmatch(snapshot):  # SET TRANSACTION SNAPSHOT takes no bind parameter
        raise InvalidArgument(f"unexpected snapshot id {snapshot!r}")
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as other:
        other.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        other.execute(sa.text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        rows = _run(other, query, params)
        other.rollback()
    return rows


# ----------------------------------------------------------------------------- period summaries
Period = str  # "day" | "week" | "month"
PERIODS = ("day", "week", "month")


def period_buckets(period: Period, first: date, last: date) -> list[tuple[date, date]]:
    """Consecutive calendar buckets (day, ISO week Mon–Sun, or month) covering first … last, each
    clipped to the range."""
    if period not in PERIODS:
        raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    out = []
    cur = first
    while cur <= last:
        if period == "day":
            stop = cur
        elif period == "week":
            stop = cur + timedelta(days=6 - cur.weekday())
        else:
            nxt = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
            stop = nxt - timedelta(days=1)
        stop = min(stop, last)
        out.append((cur, stop))
        cur = stop + timedelta(days=1)
    return out


def current_period(period: Period, today: date) -> tuple[date, date]:
    """The calendar day, week (from Monday) or month containing ``today``, up to ``today``."""
    if period == "day":
        return today, today
    if period == "week":
        return today - timedelta(days=today.weekday()), today
    if period == "month":
        return today.replace(day=1), today
    raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def summaries(
    engine: Engine,
    period: Period = "day",
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> list[Summary]:
    """One Summary per calendar ``period`` in the range (default: the current period up to today), of
    ``tenant`` (default: every tenant)."""
    if date_from is None and date_to is None:
        first, last = current_period(period, timeutil.today(tz))
    else:
        first, last = timeutil.resolve_days(date_from, date_to, tz)
    scope = tenants.scope(engine, tenant)
    return [summary(engine, a, b, tz=tz, tenant=scope) for a, b in period_buckets(period, first, last)]
