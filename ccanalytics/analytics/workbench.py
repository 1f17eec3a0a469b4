"""The analyst's workbench in JupyterLab: ``import ccanalytics as cca`` and

    cca.show_call(call_id)                       # a call, rendered (transcript, tools, quality, cost)
    cca.search("зимові шини", "2026-11-01")      # calls whose transcript matches, with the matching turn
    cca.compare(("2026-11-01", "2026-11-07"), ("2026-11-08", "2026-11-14"))   # two periods side by side
    cca.lake().sql("SELECT … FROM calls WHERE date >= DATE '2026-09-01'")      # long ranges in DuckDB
    cca.plot_calls_by_hour("2026-11-01", "2026-11-24")                         # standard charts
    cca.compare(a, b, tenant="prokoleso"); cca.lake(tenant="prokoleso")        # one tenant's calls

Every function connects with :func:`ccanalytics.connect` the first time (the same database as the
demo, or ``CCA_DATABASE_URL``) unless given a ``store``. Phones are masked unless asked otherwise.
Every list, figure and chart takes ``tenant=`` (a slug or several, see :func:`list_tenants`; default
every tenant); an unknown slug is an InvalidArgument naming the known ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from ccanalytics.analytics import journal, metrics
from ccanalytics.analytics.store import Store, connect
from ccanalytics.core import labels, privacy, timeutil
from ccanalytics.core.config import get_settings
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import tenants
from ccanalytics.quality.report import quality_report
from ccanalytics.reports import callview, charts, costview
from ccanalytics.reports.dailyfacts import LATENCY_BUDGETS, METRICS_OF_TENANTS
from ccanalytics.reports.htmlblocks import Block

DateLike = date | str | None
TenantArg = tenants.TenantArg
_default: Store | None = None


def default_store(new: Store | None = None) -> Store:
    """The workbench's store: ``new`` when given (it becomes the default), else one connection made
    on first use from the settings."""
    global _default
    if new is not None:
        _default = new
    if _default is None:
        _default = connect()
    return _default


def _settings():
    return get_settings()


def list_tenants(*, store: Store | None = None) -> pl.DataFrame:
    """The tenants (retail networks) of the database: the slugs ``tenant=`` takes, their names."""
    s = store or default_store()
    rows = [{"slug": t.slug, "name": t.name, "is_active": t.is_active} for t in tenants.list_tenants(s.engine)]
    return pl.DataFrame(rows, schema={"slug": pl.Utf8, "name": pl.Utf8, "is_active": pl.Boolean})


# ------------------------------------------------------------------------------------------ calls
def show_call(call_id: str, *, mask_phones: bool = True, store: Store | None = None) -> Block:
    """A call rendered for the notebook: transcript with speakers and times, tool calls, quality per
    criterion with reasons, signals and cost; a link to the admin page."""
    s = store or default_store()
    return callview.show_call(s.engine, call_id, tz=s.tz, mask_phones=mask_phones, admin_url=_settings().admin_base_url)


def search(
    text: str,
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    limit: int = 100,
    tenant: TenantArg = None,
    mask_phones: bool = True,
    store: Store | None = None,
    **filters: Any,
) -> pl.DataFrame:
    """Calls of [date_from, date_to] (default: the last 7 days) of ``tenant`` (default every tenant)
    whose transcript matches ``text`` (full-text, Ukrainian/Russian word forms), newest first, with
    the first matching turn in ``snippet``. ``filters``: scenario, transferred, quality_below,
    quality_above, prompt_version. Phone numbers in the snippets are masked unless ``mask_phones=False``
    (the caller's number always is)."""
    if not text or not text.strip():
        raise InvalidArgument("search needs some text")
    s = store or default_store()
    rows: list[dict[str, Any]] = []
    cursor = None
    while len(rows) < limit:
        page = journal.search(
            s.engine,
            date_from=date_from,
            date_to=date_to,
            text=text,
            after=cursor,
            limit=min(200, limit - len(rows)),
            tz=s.tz,
            tenant=tenant,
            **filters,
        )
        rows += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    if mask_phones:
        for r in rows:
            r["snippet"] = privacy.mask_phones_in_text(r["snippet"]) if r.get("snippet") else r.get("snippet")
    columns = [
        "id",
        "started_at",
        "scenario",
        "transferred_to_operator",
        "transfer_reason",
        "quality_score",
        "total_cost_usd",
        "duration_seconds",
        "prompt_version",
        "tenant",
        "caller",
        "snippet",
    ]
    frame = (
        pl.DataFrame(
            [{c: r.get(c) for c in columns} for r in rows],
            schema_overrides={"snippet": pl.Utf8},
            infer_schema_length=None,
        )
        if rows
        else pl.DataFrame(schema={c: pl.Utf8 for c in columns})
    )
    return frame.rename({"id": "call_id"})


# ------------------------------------------------------------------------------------------ periods
COMPARED = (
    ("total_calls", "Звонков"),
    ("resolved_by_bot_pct", "Решено ботом, %"),
    ("transferred_to_operator_pct", "Переведено на оператора, %"),
    ("orders_created_pct", "Заказов, % звонков"),
    ("fittings_booked_pct", "Записей на шиномонтаж, % звонков"),
    ("first_contact_resolution_pct", "Решено с первого звонка, %"),
    ("repeat_calls_7d_pct", "Повторный звонок за 7 дней, %"),
    ("avg_duration_seconds", "Средняя длительность, с"),
    ("response_p50_ms", "Ответ p50, мс"),
    ("response_p95_ms", "Ответ p95, мс"),
    ("avg_quality_score", "Качество (0–1)"),
    ("avg_cost_per_call_usd", "Стоимость звонка, $"),
    ("cost_per_resolved_call_usd", "Стоимость решённого звонка, $"),
    ("stt_reasks", "Переспрашиваний"),
    ("tool_errors", "Ошибок инструментов"),
)


def _two_summaries(
    s: Store, a: tuple[DateLike, DateLike], b: tuple[DateLike, DateLike], tenant: TenantArg
) -> tuple[metrics.Summary, metrics.Summary]:
    scope = tenants.scope(s.engine, tenant)
    return metrics.summary(s.engine, *a, tz=s.tz, tenant=scope), metrics.summary(s.engine, *b, tz=s.tz, tenant=scope)


def compare(
    a: tuple[DateLike, DateLike],
    b: tuple[DateLike, DateLike],
    *,
    tenant: TenantArg = None,
    store: Store | None = None,
) -> pl.DataFrame:
    """Two periods side by side: every summary metric, the change and the relative change (B vs A),
    over the calls of ``tenant`` (default every tenant). Rates are weighted over the calls of each
    period, never averages of daily averages."""
    s = store or default_store()
    sa_, sb = _two_summaries(s, a, b, tenant)
    rows = []
    for key, title in COMPARED:
        va, vb = getattr(sa_, key), getattr(sb, key)
        change = vb - va if va is not None and vb is not None else None
        rel = 100.0 * change / va if change is not None and va else None
        rows.append({"metric": key, "title": title, "a": va, "b": vb, "change": change, "change_pct": rel})
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.Utf8,
            "title": pl.Utf8,
            "a": pl.Float64,
            "b": pl.Float64,
            "change": pl.Float64,
            "change_pct": pl.Float64,
        },
    )


def compare_scenarios(
    a: tuple[DateLike, DateLike],
    b: tuple[DateLike, DateLike],
    *,
    tenant: TenantArg = None,
    store: Store | None = None,
) -> pl.DataFrame:
    """Scenario mix of two periods: calls and share of each scenario, and the change of share (points),
    over the calls of ``tenant`` (default every tenant)."""
    s = store or default_store()
    sa_, sb = _two_summaries(s, a, b, tenant)
    keys = sorted(set(sa_.scenarios) | set(sb.scenarios), key=lambda k: -(sb.scenarios.get(k, 0)))
    rows = []
    for k in keys:
        share_a = 100 * sa_.scenarios.get(k, 0) / sa_.total_calls if sa_.total_calls else None
        share_b = 100 * sb.scenarios.get(k, 0) / sb.total_calls if sb.total_calls else None
        rows.append(
            {
                "scenario": k,
                "title": labels.scenario(k),
                "calls_a": sa_.scenarios.get(k, 0),
                "calls_b": sb.scenarios.get(k, 0),
                "share_a": share_a,
                "share_b": share_b,
                "change_pts": share_b - share_a if share_a is not None and share_b is not None else None,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


# ------------------------------------------------------------------------------------------ lake
@dataclass
class Lake:
    """The Parquet lake (long ranges without touching PostgreSQL): DuckDB views calls, turns,
    tool_calls and scores, Hive-partitioned by ``date``. With ``tenants`` (slugs) the views hold those
    tenants' calls only (the calls' ``tenant`` column) and the turns, tool calls and scores of them."""

    path: Path
    tz: str
    tenants: tenants.Scope = None

    def sql(self, query: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        from ccanalytics.datalake import read as datalake  # lazy: duckdb, pyarrow

        if self.tenants is None:
            return datalake.query(self.path, query, params, tz=self.tz)
        import duckdb  # lazy: duckdb

        con = self.duckdb()
        try:
            rel = con.sql(query, params=params)
            return rel.pl() if rel is not None else pl.DataFrame()
        except duckdb.Error as exc:
            raise InvalidArgument(f"lake query failed: {str(exc).strip().splitlines()[0]}") from None
        finally:
            con.close()

    def load(
        self, table: str, date_from: DateLike = None, date_to: DateLike = None, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        from ccanalytics.datalake import read as datalake  # lazy: duckdb, pyarrow

        if self.tenants is None:
            return datalake.load(self.path, table, date_from, date_to, columns, tz=self.tz)
        # a call's rows are all in the partition of its day: the tenants' calls of the same days pick them
        calls = datalake.load(self.path, "calls", date_from, date_to, ["id", "tenant"], tz=self.tz)
        ids = calls.filter(pl.col("tenant").is_in(list(self.tenants)))["id"].to_list()
        key = "id" if table == "calls" else "call_id"
        wanted = list(columns) if columns is not None else None
        read = list(dict.fromkeys([*wanted, key])) if wanted else wanted  # the key filters, then may go
        frame = datalake.load(self.path, table, date_from, date_to, read, tz=self.tz).filter(pl.col(key).is_in(ids))
        return frame.select(wanted) if wanted is not None else frame

    def duckdb(self):
        """A DuckDB connection with the views, for queries that want DuckDB's own API."""
        from ccanalytics.datalake import read as datalake  # lazy: duckdb, pyarrow

        con = datalake.connect(self.path, tz=self.tz)
        if self.tenants is not None:
            slugs = ", ".join("'" + slug.replace("'", "''") + "'" for slug in self.tenants)
            for name in datalake.TABLES:
                con.execute(f"ALTER VIEW {name} RENAME TO _every_tenant_{name}")
            # a view holds no bound parameter: the slugs (checked against the tenants table by lake()) go in as
            # DuckDB string literals, each quote doubled, which is all DuckDB's literal syntax escapes
            scoped = f"CREATE VIEW calls AS SELECT * FROM _every_tenant_calls WHERE tenant IN ({slugs})"  # noqa: S608
            con.execute(scoped)
            for name in datalake.TABLES:
                if name != "calls":
                    every = f"_every_tenant_{name}"
                    con.execute(
                        f"CREATE VIEW {name} AS SELECT * FROM {every} "  # noqa: S608 — name from datalake.TABLES
                        "WHERE call_id IN (SELECT id FROM calls)"
                    )
        return con

    def days(self, table: str = "calls") -> list[date]:
        from ccanalytics.datalake import read as datalake  # lazy: duckdb, pyarrow

        return [d for d, _ in datalake.partitions(self.path, table)]


def lake(path: str | Path | None = None, *, tenant: TenantArg = None, store: Store | None = None) -> Lake:
    """The Parquet lake of the settings (``CCA_LAKE_DIR``) or at ``path``. Fill it with
    ``ccanalytics lake export`` (the scheduler exports every night). With ``tenant`` (a slug or several,
    checked against the database) it reads those tenants' rows only; without, every tenant's."""
    settings = _settings()
    scope = tenants.scope((store or default_store()).engine, tenant) if tenant else None
    return Lake(Path(path) if path else settings.resolved_lake_dir(), settings.timezone, scope)


# ------------------------------------------------------------------------------------------ charts
def plot_calls_by_hour(
    date_from: DateLike = None, date_to: DateLike = None, *, tenant: TenantArg = None, store: Store | None = None
):
    """Calls per hour of the day over the period (mean per day), of ``tenant`` (default every tenant)."""
    s = store or default_store()
    summary = metrics.summary(s.engine, date_from, date_to, tz=s.tz, tenant=tenant)
    first, last = timeutil.resolve_days(date_from, date_to, s.tz)
    days = (last - first).days + 1
    return charts.calls_by_hour({h: n / days for h, n in summary.hourly_distribution.items()})


_DAILY_MIX = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, c.scenario, count(*) AS calls
FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL} GROUP BY 1, 2 ORDER BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def plot_scenario_mix(
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tenant: TenantArg = None,
    store: Store | None = None,
    top: int = 6,
):
    """Scenario mix over time: stacked calls per day, the ``top`` scenarios and the rest, of ``tenant``."""
    s = store or default_store()
    start, end = timeutil.period_bounds(date_from, date_to, s.tz)
    with s.engine.connect() as conn:
        p = {"start": start, "end": end, "tz": s.tz, **tenants.params(tenants.scope(conn, tenant))}
        rows = conn.execute(sa.text(_DAILY_MIX), p).all()
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.scenario or "—"] = totals.get(r.scenario or "—", 0) + r.calls
    keep = sorted(totals, key=lambda k: -totals[k])[:top]
    days = sorted({r.day for r in rows})
    parts: dict[str, list[float]] = {k: [0.0] * len(days) for k in [*keep, "другое"]}
    index = {d: i for i, d in enumerate(days)}
    for r in rows:
        key = r.scenario if r.scenario in keep else "другое"
        parts[key][index[r.day]] += r.calls
    if not any(parts["другое"]):
        parts.pop("другое")
    return charts.stacked_days(days, parts, title="Сценарии по дням", ylabel="звонков", names=labels.SCENARIOS)


_LATENCIES = {"stt": "stt_ms", "llm": "llm_ms", "tts": "tts_ms", "response": "response_ms"}


def latencies(
    component: str = "response",
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tenant: TenantArg = None,
    store: Store | None = None,
) -> list[float]:
    """Every measured latency of a component (stt, llm, tts, response) in the period, milliseconds, in
    the calls of ``tenant`` (default every tenant)."""
    if component not in _LATENCIES:
        raise InvalidArgument(f"component must be one of {', '.join(_LATENCIES)}")
    s = store or default_store()
    start, end = timeutil.period_bounds(date_from, date_to, s.tz)
    with s.engine.connect() as conn:
        p = {"start": start, "end": end, **tenants.params(tenants.scope(conn, tenant))}
        return [
            float(v)
            for (v,) in conn.execute(
                sa.text(
                    f"SELECT unnest(m.{_LATENCIES[component]}) "  # noqa: S608 — column from _LATENCIES (whitelist)
                    f"FROM ({METRICS_OF_TENANTS}) m"
                ),
                p,
            )
        ]


def plot_latency(
    component: str = "response",
    date_from: DateLike = None,
    date_to: DateLike = None,
    *,
    tenant: TenantArg = None,
    store: Store | None = None,
):
    """The distribution of a component's latency against its p95 budget, in the calls of ``tenant``."""
    values = latencies(component, date_from, date_to, tenant=tenant, store=store)
    return charts.latency_distribution(
        values, budget_ms=LATENCY_BUDGETS[component][0], title=labels.COMPONENTS[component]
    )


def plot_quality(
    date_from: DateLike = None, date_to: DateLike = None, *, tenant: TenantArg = None, store: Store | None = None
):
    """Average score per quality criterion over the period, of ``tenant`` (default every tenant)."""
    s = store or default_store()
    report = quality_report(s.engine, date_from, date_to, tz=s.tz, tenant=tenant)
    return charts.quality_per_criterion({k: v["avg_score"] for k, v in report["criteria"].items()})


def plot_cost_trend(
    date_from: DateLike = None, date_to: DateLike = None, *, tenant: TenantArg = None, store: Store | None = None
):
    """Cost per call per day, and its components, of ``tenant`` (default every tenant)."""
    s = store or default_store()
    first, last = timeutil.resolve_days(date_from, date_to, s.tz)
    days = costview.daily(s.engine, first, last, s.tz, tenant=tenant)
    if not days:
        raise InvalidArgument("no priced calls in the period (run: ccanalytics cost compute)")
    return charts.stacked_days(
        [d["day"] for d in days],
        {k: [d[k] for d in days] for k in ("stt", "llm", "tts", "telephony")},
        title="Стоимость звонка по дням и статьям",
        ylabel="USD",
        names=labels.COST_COMPONENTS,
    )
