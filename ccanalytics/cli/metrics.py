"""``ccanalytics stats …`` and ``ccanalytics exporter``: thin commands over ccanalytics.analytics.metrics and
ccanalytics.ops.exporter (registered on the main group by ccanalytics.cli.root)."""

from __future__ import annotations

import json
import logging
import signal
import time

import click
from waitress import serve

from ccanalytics.cli.root import _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core.errors import DatabaseUnavailable, InvalidArgument
from ccanalytics.ops.logs import setup

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.group()
def stats() -> None:
    """Daily statistics and period summaries."""


@stats.command("daily")
@click.option("--date", "day", type=_DATE, help="One local day (default: today in CCA_TIMEZONE).")
@click.option("--from", "date_from", type=_DATE, help="First day of a range.")
@click.option("--to", "date_to", type=_DATE, help="Last day of a range (default: today).")
@click.option("--full", is_flag=True, help="Recompute every day, not only days whose calls changed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats_daily(day, date_from, date_to, full: bool, as_json: bool) -> None:
    """Compute daily_stats (and per-call metrics) for a day or a range; idempotent and incremental.

    Each day gets its row over every tenant and a row per tenant that had calls that day.

    \b
    Examples:
      ccanalytics stats daily                           # today
      ccanalytics stats daily --date 2026-11-23
      ccanalytics stats daily --from 2026-01-01 --to 2026-11-23 --full
    """
    from ccanalytics.analytics import metrics  # lazy: sqlalchemy

    if day and (date_from or date_to):
        raise InvalidArgument("give either --date or --from/--to, not both")
    first = (day or date_from).date() if (day or date_from) else None
    last = (day or date_to).date() if (day or date_to) else None
    if first is None and last is not None:
        first = last
    engine = _engine()
    _ensure_schema(engine)
    run = metrics.compute_daily_stats(engine, first, last, tz=_settings().timezone, incremental=not full)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
        return
    click.echo(
        f"daily_stats {run.date_from} … {run.date_to}: {len(run.days_computed)} days computed, "
        f"{run.days_skipped} unchanged, {run.calls_derived} calls' metrics derived; {run.tenant_rows} tenant rows"
    )


@stats.command("summary")
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="day", show_default=True)
@click.option("--from", "date_from", type=_DATE, help="First day (default: start of the current period).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: today).")
@tenant_option
def stats_summary(period: str, date_from, date_to, tenant: tuple[str, ...]) -> None:
    """Print the summary (the API's fields) per day, ISO week or month as JSON, of every tenant or of
    the tenants given; "scope" names them.

    \b
    Examples:
      ccanalytics stats summary --period week --from 2026-11-02 --to 2026-11-29
      ccanalytics stats summary --tenant prokoleso --from 2026-11-23 --to 2026-11-23
    """
    from ccanalytics.analytics import metrics  # lazy: sqlalchemy
    from ccanalytics.db import tenants  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    scope = tenants.scope(engine, tenant or None)
    found = metrics.summaries(
        engine,
        period,
        date_from.date() if date_from else None,
        date_to.date() if date_to else None,
        tz=_settings().timezone,
        tenant=scope,
    )
    named = {"tenants": list(scope) if scope is not None else None, "label": tenants.describe(engine, scope)}
    click.echo(json.dumps({"scope": named, "data": [s.to_dict() for s in found]}, indent=2, ensure_ascii=False))


@main.command("exporter")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9108, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--no-derive",
    is_flag=True,
    help="Do not derive per-call metrics on scrape (read-only database role; the scheduler derives them).",
)
@click.option("--lag", default=10.0, show_default=True, type=click.FloatRange(0, 600), help="Seconds.")
def exporter_cmd(host: str, port: int, no_derive: bool, lag: float) -> None:
    """Serve the Prometheus exporter over the database at http://HOST:PORT/metrics.

    \b
    Example:
      ccanalytics exporter --port 9108
    """
    import sqlalchemy as sa  # lazy: sqlalchemy

    from ccanalytics.db.engine import check_connection, engine_from_settings  # lazy: sqlalchemy
    from ccanalytics.ops import exporter  # lazy: sqlalchemy

    setup(logging.INFO)  # JSON lines on stderr
    log = logging.getLogger("ccanalytics.ops.exporter")
    settings = _settings()
    engine = engine_from_settings(settings, application_name="ccanalytics-exporter")
    try:  # a database down at start is not fatal: cca_exporter_up is 0 until it is back
        check_connection(engine)
        if not no_derive:
            _ensure_schema(engine)
    except (DatabaseUnavailable, sa.exc.OperationalError) as exc:
        reason = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
        log.error("database unavailable at start: %s; serving cca_exporter_up 0 until it is back", reason)
    registry = exporter.make_registry(engine, derive=not no_derive, lag_seconds=lag, tz=settings.timezone)
    click.echo(f"exporter: http://{host}:{port}/metrics  (Ctrl-C stops)")
    log.info("exporter listening on %s:%d", host, port, extra={"host": host, "port": port})
    serve(exporter.wsgi_app(registry), host=host, port=port, threads=4, ident="ccanalytics-exporter")


@main.command("demo-traffic")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9109, show_default=True, type=click.IntRange(1, 65535))
@click.option("--calls-per-minute", default=120.0, show_default=True, type=click.FloatRange(1, 6000))
@click.option("--speedup", default=20.0, show_default=True, type=click.FloatRange(1, 1000))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--incident",
    # ccanalytics.demo.livesim.INCIDENTS (not imported here: the demo package is slow to import for every
    # command); tests/test_livesim.py keeps the two equal
    type=click.Choice(["component_errors", "transfers", "latency", "operators", "spend"]),
    default=None,
    help="Stage one problem (the default traffic is healthy: no alert fires on it). "
    "spend pages only once Prometheus holds 24 hours of this traffic.",
)
def demo_traffic_cmd(
    host: str, port: int, calls_per_minute: float, speedup: float, seed: int, incident: str | None
) -> None:
    """Simulate the call processor's live metrics (source="live") from generated calls.

    Stands in for the call processor so the real-time dashboard and the live alert rules have data.
    Healthy by default; --incident stages one problem to try the alerts.

    \b
    Example:
      ccanalytics demo-traffic --port 9109 --calls-per-minute 300
      ccanalytics demo-traffic --incident transfers
    """
    from ccanalytics.demo.livesim import serve_traffic  # lazy: sqlalchemy

    sim = serve_traffic(host, port, calls_per_minute=calls_per_minute, speedup=speedup, seed=seed, incident=incident)
    click.echo(f"demo traffic: http://{host}:{port}/metrics  (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    finally:
        sim.stop()


@main.command("scheduler")
@click.option("--once", "once", multiple=True, help="Run these jobs once now and exit (score, daily_stats, …).")
def scheduler_cmd(once: tuple[str, ...]) -> None:
    """Run the recurring jobs (in CCA_TIMEZONE): scoring every 2 minutes, daily stats every 5 minutes and
    nightly, problem detection and partition maintenance at night.

    \b
    Examples:
      ccanalytics scheduler                      # runs until stopped
      ccanalytics scheduler --once score --once daily_stats
    """
    from ccanalytics.ops import jobs  # lazy: sqlalchemy

    settings = _settings()
    if once:
        engine = _engine()
        _ensure_schema(engine)
        unknown = [j for j in once if j not in jobs.SCHEDULE]
        if unknown:
            raise InvalidArgument(f"unknown job {unknown[0]!r} (jobs: {', '.join(jobs.SCHEDULE)})")
        for name in once:
            run = jobs.SCHEDULE[name][0](engine, settings)
            state = f"{run.seconds:.1f} s: {run.outcome}" if run.ran else "skipped: running elsewhere"
            click.echo(f"{name}: {state}")
        return
    from ccanalytics.db.engine import engine_from_settings  # lazy: sqlalchemy
    from scheduler.app import build, wait_for_database  # lazy: sqlalchemy

    setup(logging.INFO)  # JSON lines on stderr
    engine = engine_from_settings(settings, application_name="ccanalytics-scheduler")
    wait_for_database(engine, _ensure_schema)  # a database down at start: retry with backoff, never exit
    scheduler = build(engine, settings)
    click.echo("scheduler: " + ", ".join(f"{j.id} ({j.trigger})" for j in scheduler.get_jobs()) + "  (Ctrl-C stops)")
    # a stop signal stops the scheduler's loop, which then returns here: raised inside the loop, SystemExit
    # could land where APScheduler catches every exception (submitting a job) and be lost
    stopped_by: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        scheduler.shutdown(wait=False)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    scheduler.start()
    if stopped_by:
        raise SystemExit(128 + stopped_by[0])
