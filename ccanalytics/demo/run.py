"""``ccanalytics demo``: a working installation in one command.

Starts (or attaches to) the database, migrates, loads the demo data, runs the product's jobs over it
and prints what it produced. Each job is a step in ``DEMO_STEPS``; capabilities add their step here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics import quality
from ccanalytics.analytics import callmetrics, metrics
from ccanalytics.auth import users as auth
from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, OldSchemaError
from ccanalytics.cost import calls as cost
from ccanalytics.cost import pricing
from ccanalytics.db import partitions
from ccanalytics.db.engine import check_connection, create_engine, engine_from_settings, resolve_url, safe_url
from ccanalytics.db.migrate import migrate
from ccanalytics.demo.generator import DEMO_AB_DAYS
from ccanalytics.demo.labels import label_demo_calls
from ccanalytics.demo.load import load_demo_data
from ccanalytics.quality import calibration

Echo = Callable[[str], Any]


@dataclass
class DemoContext:
    engine: Engine
    settings: Settings
    seed: int
    days: int
    calls_per_day: int
    end_date: date
    echo: Echo


@dataclass
class DemoReport:
    engine: Engine
    steps: list[tuple[str, str, float]] = field(default_factory=list)  # (step, outcome, seconds)


def _step_load(ctx: DemoContext) -> str:
    result = load_demo_data(
        ctx.engine,
        until=clock.now(),
        seed=ctx.seed,
        days=ctx.days,
        calls_per_day=ctx.calls_per_day,
        end_date=ctx.end_date,
        tz=ctx.settings.timezone,
    )
    return (
        f"{result.inserted} new calls, {result.replaced} replaced, {result.unchanged} already loaded "
        f"({result.turns} turns, {result.tool_calls} tool calls written)"
    )


def phase_one_to_now(engine: Engine, first: date, end: date, tz: str, book: Any = None) -> dict[str, Any] | None:
    """The demo's cost report: its phase-1 days (before the levers) against its current days, over
    complete days only (today's fixed costs are still accruing: ccanalytics.cost.fixed). None when the
    period holds no complete current day."""
    levers_first = end - timedelta(days=DEMO_AB_DAYS - 1)  # phase 1 before, the levers from then on
    last_complete = min(end, timeutil.today(tz) - timedelta(days=1))
    if not first < levers_first <= last_complete:
        return None
    return cost.cost_report(
        engine, (first, levers_first - timedelta(days=1)), (levers_first, last_complete), book=book, tz=tz
    )


def _step_costs(ctx: DemoContext) -> str:
    first = ctx.end_date - timedelta(days=ctx.days - 1)
    book = pricing.load(ctx.settings.pricing_file)
    run = cost.compute_costs(ctx.engine, first, ctx.end_date, book=book, tz=ctx.settings.timezone)
    out = f"{run.priced} calls priced from usage"
    report = phase_one_to_now(ctx.engine, first, ctx.end_date, ctx.settings.timezone, book)
    if report is not None:
        levers = ", ".join(
            f"{lv['lever']} {lv['saving_pct_of_baseline']:+.1f}%" for lv in report["levers"] if lv["lever"] != "other"
        )
        out += (
            f"; phase 1 → now: ${report['baseline']['cost_per_call_usd']:.4f} → "
            f"${report['current']['cost_per_call_usd']:.4f} per call ({cost.change_words(report['reduction_pct'])}; "
            f"{levers})"
        )
    return out


def _step_daily_stats(ctx: DemoContext) -> str:
    run = metrics.compute_daily_stats(
        ctx.engine, ctx.end_date - timedelta(days=ctx.days - 1), ctx.end_date, tz=ctx.settings.timezone
    )
    return (
        f"{len(run.days_computed)} days computed, {run.days_skipped} unchanged, "
        f"{run.calls_derived} calls' latency/re-ask/tool metrics derived"
    )


def _step_score(ctx: DemoContext) -> str:
    judge, rubric = quality.from_settings(ctx.settings)
    # derived metrics (latency, pauses) feed the rule-based signals stored with every score
    callmetrics.derive_days(
        ctx.engine, ctx.end_date - timedelta(days=ctx.days - 1), ctx.end_date, tz=ctx.settings.timezone
    )
    queued = quality.enqueue(
        ctx.engine,
        date_from=ctx.end_date - timedelta(days=ctx.days - 1),
        date_to=ctx.end_date,
        tz=ctx.settings.timezone,
    )
    run = quality.score_pending(
        ctx.engine,
        judge,
        rubric,
        workers=ctx.settings.judge_workers,
        config=quality.scoring_config_from_settings(ctx.settings),
    )
    label = "rule-based judge (offline, no CCA_JUDGE_API_KEY)" if judge.kind == "rules" else f"LLM judge {judge.model}"
    return f"{queued} queued, {run.scored} scored, {run.failed} failed by the {label}"


def _step_labels(ctx: DemoContext) -> str:
    labelled = label_demo_calls(ctx.engine, seed=ctx.seed)
    found = calibration.agreement(ctx.engine, min_labels=30)
    drift = [a.criterion for a in found if a.drift]
    kappas = ", ".join(f"{a.criterion} {a.kappa:.2f}" for a in found if a.kappa is not None)
    # the labels come from a simulated reviewer with set disagreement rates: the κ is not a measurement
    return (
        f"{labelled} calls labelled now by a simulated reviewer (симулированный рецензент: доли расхождений "
        f"заданы, κ не измерена); simulated κ per criterion: {kappas}; drift: {', '.join(drift) or 'none'}. "
        "Measured judge accuracy: make bench BENCH=judge (docs/benchmarks.md)"
    )


def _step_admin_user(ctx: DemoContext) -> str:
    password = auth.ensure_demo_admin(ctx.engine)  # only when the database has no users at all
    if password is None:
        return "users exist (forgot the password? ccanalytics users passwd admin)"
    return f"log in at /login as admin, password {password}  (shown once; change: ccanalytics users passwd admin)"


def _step_reports(ctx: DemoContext) -> str:
    from ccanalytics.reports import run as reporting  # lazy: matplotlib

    day = ctx.end_date - timedelta(days=1) if ctx.days > 1 else ctx.end_date
    first = max(day - timedelta(days=6), ctx.end_date - timedelta(days=ctx.days - 1))
    daily = reporting.run(ctx.engine, ctx.settings, "daily", day=day)
    problems = reporting.run(ctx.engine, ctx.settings, "problems", date_from=first, date_to=day)
    return f"{daily.rendered.html_path}, {problems.rendered.html_path}"


def _step_lake(ctx: DemoContext) -> str:
    from ccanalytics.datalake import export as datalake  # lazy: pyarrow

    lake_dir = ctx.settings.resolved_lake_dir()
    run = datalake.export_changed(
        ctx.engine, lake_dir, ctx.settings.timezone, ctx.days, today=ctx.end_date + timedelta(days=1)
    )
    return f"{len(run.exported)} days exported to {lake_dir} (cca.lake() in notebooks)"


# (name, function) in order; later capabilities append their jobs
DEMO_STEPS: list[tuple[str, Callable[[DemoContext], str]]] = [
    ("load demo calls", _step_load),
    ("price calls", _step_costs),
    ("score quality", _step_score),
    ("simulated reviewer labels and calibration", _step_labels),
    ("daily stats", _step_daily_stats),
    ("Parquet lake", _step_lake),
    ("HTML reports", _step_reports),
    ("admin user", _step_admin_user),
]


def reset_embedded_database(settings: Settings) -> None:
    """Drop the embedded demo database so the demo starts from nothing."""
    if settings.database_url:
        raise ConfigError("--reset only works with the embedded database (CCA_DATABASE_URL is set)")
    url = resolve_url(settings)
    admin = create_engine(url.replace(f"/{settings.embedded_database}?", "/postgres?", 1), pool_size=1)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{settings.embedded_database}" WITH (FORCE)'))
    finally:
        admin.dispose()
    partitions.forget_cache()


def run_demo(
    settings: Settings,
    *,
    seed: int = 42,
    days: int = 30,
    calls_per_day: int = 400,
    end_date: date | None = None,
    reset: bool = False,
    echo: Echo = print,
) -> DemoReport:
    if reset:
        reset_embedded_database(settings)
    engine = engine_from_settings(settings, statement_timeout_ms=0, application_name="ccanalytics-demo")
    check_connection(engine)
    where = settings.resolved_pg_data() if not settings.database_url else "CCA_DATABASE_URL"
    echo(f"database: {safe_url(engine.url)}  ({where})")
    try:
        applied = migrate(engine, partitions_ahead_months=settings.partitions_ahead_months)
    except OldSchemaError:
        if settings.database_url:
            raise
        # the embedded demo database holds demo data only: made by 0.1, it is made again
        echo("the embedded demo database was made by ccanalytics 0.1: recreating it")
        engine.dispose()
        return run_demo(
            settings, seed=seed, days=days, calls_per_day=calls_per_day, end_date=end_date, reset=True, echo=echo
        )
    echo(f"schema: current ({len(applied)} migrations applied now)")
    end = end_date or timeutil.today(settings.timezone)
    ctx = DemoContext(engine, settings, seed, days, calls_per_day, end, echo)
    report = DemoReport(engine)
    for name, step in DEMO_STEPS:
        started = time.perf_counter()
        outcome = step(ctx)
        elapsed = time.perf_counter() - started
        report.steps.append((name, outcome, elapsed))
        echo(f"{name}: {outcome}  [{elapsed:.1f} s]")
    for line in summary_lines(engine, end - timedelta(days=days - 1), end, settings.timezone):
        echo(line)
    return report


def summary_lines(engine: Engine, first: date, last: date, tz: str) -> list[str]:
    """A few headline numbers of the loaded period, so the demo shows what it produced."""
    s = metrics.summary(engine, first, last, tz=tz)
    if not s.total_calls:
        return ["no calls in the demo period"]
    top = ", ".join(f"{name} {n}" for name, n in list(s.scenarios.items())[:5])
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        # the call processor's tenants (retail networks); a number that called both is a customer of each
        tenants = conn.execute(
            sa.text(
                "SELECT coalesce(t.name, '—') AS name, count(*) AS calls, count(DISTINCT c.customer_id) AS customers "
                "FROM calls c LEFT JOIN tenants t ON t.id = c.tenant_id "
                "WHERE c.started_at >= :s AND c.started_at < :e GROUP BY 1 ORDER BY 2 DESC, 1"
            ),
            {"s": start, "e": end},
        ).all()
    networks = ", ".join(f"{r.name} {r.calls} calls / {r.customers} customers" for r in tenants)
    return [
        f"period: {first} … {last} ({tz})",
        f"networks (tenants): {networks}",
        f"calls: {s.total_calls}  resolved by bot: {s.resolved_by_bot_pct}%  "
        f"transferred: {s.transferred_to_operator_pct}%  orders: {s.orders_created}  "
        f"fittings: {s.fittings_booked}  customers: {s.customers}",
        f"average duration: {s.avg_duration_seconds:.0f} s  cost per call: ${s.avg_cost_per_call_usd or 0:.4f}",
        f"top scenarios: {top}",
        f"response latency: p50 {s.response_p50_ms or 0:.0f} ms, p95 {s.response_p95_ms or 0:.0f} ms  "
        f"first-contact resolution: {s.first_contact_resolution_pct}%  STT re-asks: {s.stt_reasks}",
    ]
