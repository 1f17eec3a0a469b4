"""The recurring jobs (what the scheduler runs, and what `ccanalytics demo` and the CLI can run
once): score new calls, price them, keep daily_stats current, detect problems, keep partitions ahead.

Each job takes a PostgreSQL advisory lock for its duration, so several scheduler processes (or a
scheduler and a manual run) never run the same job at once: the second one skips and says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics import quality
from ccanalytics.alerts import engine as alerts
from ccanalytics.alerts import notify
from ccanalytics.analytics import metrics
from ccanalytics.core import timeutil
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import CCAError, DatabaseUnavailable
from ccanalytics.cost import calls as cost
from ccanalytics.cost import pricing
from ccanalytics.db import partitions
from ccanalytics.ops import freshness
from ccanalytics.reports import send as reportsend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    job: str
    ran: bool  # False: another process holds the job's lock
    seconds: float
    outcome: dict[str, Any]


def _locked(engine: Engine, name: str, fn: Callable[[], dict[str, Any]]) -> JobRun:
    started = time.perf_counter()
    with engine.connect() as lock_conn:
        got = lock_conn.execute(
            sa.text("SELECT pg_try_advisory_lock(hashtextextended('cca-job:' || :n, 0))"), {"n": name}
        ).scalar_one()
        lock_conn.commit()
        if not got:
            log.info("job %s is running elsewhere; skipped", name, extra={"job": name, "ran": False})
            return JobRun(name, False, 0.0, {})
        try:
            outcome = fn()
        finally:
            lock_conn.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended('cca-job:' || :n, 0))"), {"n": name})
            lock_conn.commit()
    run = JobRun(name, True, time.perf_counter() - started, outcome)
    log.info(
        "job %s done in %.2f s",
        name,
        run.seconds,
        extra={"job": name, "ran": True, "seconds": round(run.seconds, 3), "outcome": outcome},
    )
    return run


def score_new_calls(engine: Engine, settings: Settings, *, limit: int = 2000) -> JobRun:
    """Queue the finished calls of today and yesterday (``quality.SCHEDULED_DAYS``) that have no score,
    and score up to ``limit``."""

    def work() -> dict[str, Any]:
        judge, rubric = quality.from_settings(settings)
        today = timeutil.today(settings.timezone)
        first = quality.scheduled_first_day(today)
        queued = quality.enqueue(engine, date_from=first, date_to=today, tz=settings.timezone)
        run = quality.score_pending(
            engine,
            judge,
            rubric,
            limit=limit,
            workers=settings.judge_workers,
            config=quality.scoring_config_from_settings(settings, wait_for_retries=False),
        )
        return {"queued": queued, "scored": run.scored, "failed": run.failed, "retried": run.retried}

    return _locked(engine, "score", work)


def process_fresh_calls(engine: Engine, settings: Settings) -> JobRun:
    """Calls that have just ended: scored, priced and counted within seconds (ccanalytics.ops.freshness)."""
    return _locked(engine, "fresh", lambda: freshness.run(engine, settings).as_dict())


def refresh_daily_stats(engine: Engine, settings: Settings, *, days: int = 2) -> JobRun:
    """Incremental daily_stats for the last ``days`` days (changed days only)."""

    def work() -> dict[str, Any]:
        today = timeutil.today(settings.timezone)
        run = metrics.compute_daily_stats(engine, today - timedelta(days=days - 1), today, tz=settings.timezone)
        return {"days_computed": [d.isoformat() for d in run.days_computed], "calls_derived": run.calls_derived}

    return _locked(engine, "daily_stats", work)


def price_calls(engine: Engine, settings: Settings, *, nightly: bool = False) -> JobRun:
    """Price the calls of the last two days at the configured prices (new calls, and the running
    month's share of a fixed-cost STT); nightly, the whole current and previous month (late price
    corrections, and the previous month's final fixed-cost share). Only changed prices are written."""

    def work() -> dict[str, Any]:
        today = timeutil.today(settings.timezone)
        if nightly:
            first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        else:
            first = today - timedelta(days=1)
        book = pricing.load(settings.pricing_file)
        run = cost.compute_costs(engine, first, today, book=book, tz=settings.timezone)
        return {"from": first.isoformat(), "priced": run.priced, "updated": run.updated, "unpriced": run.unpriced}

    return _locked(engine, "pricing_nightly" if nightly else "pricing", work)


def detect_problems(engine: Engine, settings: Settings) -> JobRun:
    """Yesterday's problem findings (transfer rate per scenario, re-asks, re-asked words)."""

    def work() -> dict[str, Any]:
        day = timeutil.today(settings.timezone) - timedelta(days=1)
        found = quality.problems.detect(engine, day, tz=settings.timezone)
        return {"day": day.isoformat(), "findings": len(found)}

    return _locked(engine, "problems", work)


def maintain_partitions(engine: Engine, settings: Settings) -> JobRun:
    def work() -> dict[str, Any]:
        with engine.begin() as conn:
            created = partitions.ensure_ahead(conn, months_ahead=settings.partitions_ahead_months)
        return {"partitions_created": created}

    return _locked(engine, "partitions", work)


def _deliver_once(
    engine: Engine, settings: Settings, kind: str, name: str, folder: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Render one report and deliver it to every channel configured in ``settings``, once: a report
    already delivered everywhere (or, with no channel configured, already rendered) is not rendered
    again, and channels that have it are skipped."""
    from ccanalytics.reports import run as reporting  # lazy: matplotlib, polars

    channels = sorted(notify.channels_from_settings(settings))
    html = settings.resolved_reports_dir() / kind / (folder or "") / f"{name}.html"
    if html.is_file():
        if set(channels) <= reportsend.delivered_channels(html):  # nothing configured: nothing to send
            return {"report": str(html), "skipped": "already delivered" if channels else "already rendered"}
    run = reporting.run(engine, settings, kind, send=channels, skip_delivered=True, folder=folder, **kwargs)
    return {"report": str(run.rendered.html_path), "seconds": round(run.rendered.seconds, 1), "delivery": run.delivery}


def _send_report(engine: Engine, settings: Settings, kind: str, **kwargs: Any) -> dict[str, Any]:
    """The ``kind`` report of every tenant to the global channels, and the report of each tenant that
    asked for ``kind`` in CCA_TENANT_REPORTS, scoped to it, to its own recipients
    (``<reports_dir>/<kind>/<slug>/<name>.html``), each delivered once per channel. Every report is
    made on its own: one failing (an unknown slug, a channel down) is logged and listed, and the others
    still go out. The outcome is the report of every tenant's, with ``tenants`` (slug → outcome) and
    ``failed`` (``"all"`` and the slugs) when there are any."""

    name = kwargs.pop("name")

    def attempt(slug: str | None, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return make()
        except DatabaseUnavailable:
            raise
        except CCAError as exc:
            log.error("report %s/%s for %s failed: %s", kind, name, slug or "every tenant", exc.message)
            details = exc.details if isinstance(exc.details, dict) else {}
            return {"error": exc.message, **({"delivery": details["outcome"]} if "outcome" in details else {})}

    def for_tenant(slug: str) -> Callable[[], dict[str, Any]]:
        return lambda: _deliver_once(
            engine, notify.tenant_settings(settings, slug), kind, name, folder=slug, tenant=slug, **kwargs
        )

    outcome = attempt(None, lambda: _deliver_once(engine, settings, kind, name, **kwargs))
    failed = ["all"] if "error" in outcome else []
    mine = [slug for slug, target in settings.tenant_reports.items() if kind in target.kinds]
    if mine:
        outcome["tenants"] = {slug: attempt(slug, for_tenant(slug)) for slug in mine}
        failed += [slug for slug, o in outcome["tenants"].items() if "error" in o]
    if failed:
        outcome["failed"] = failed
    return outcome


def daily_report(engine: Engine, settings: Settings, *, today: date | None = None) -> JobRun:
    """Yesterday's daily report at 08:00, to e-mail and Telegram when configured."""
    day = (today or timeutil.today(settings.timezone)) - timedelta(days=1)
    return _locked(
        engine, "report_daily", lambda: _send_report(engine, settings, "daily", name=day.isoformat(), day=day)
    )


def weekly_problems_report(engine: Engine, settings: Settings, *, today: date | None = None) -> JobRun:
    """The problem-call report of the last 7 days, Monday mornings."""
    last = (today or timeutil.today(settings.timezone)) - timedelta(days=1)
    first = last - timedelta(days=6)
    return _locked(
        engine,
        "report_problems",
        lambda: _send_report(engine, settings, "problems", name=f"{first}_{last}", date_from=first, date_to=last),
    )


def weekly_report(engine: Engine, settings: Settings, *, today: date | None = None) -> JobRun:
    """The weekly management summary of the last full Monday–Sunday week, Monday mornings at 09:00."""
    from ccanalytics.reports.weekly import last_full_week  # lazy: matplotlib, polars

    first, last = last_full_week(today or timeutil.today(settings.timezone))
    return _locked(
        engine,
        "report_weekly",
        lambda: _send_report(engine, settings, "weekly", name=f"{first}_{last}", week=first),
    )


def export_lake(engine: Engine, settings: Settings) -> JobRun:
    """Nightly Parquet lake export: the last 7 days, only the partitions whose data changed."""
    from ccanalytics.datalake import export as datalake  # lazy: duckdb, polars, pyarrow

    return _locked(engine, "lake_export", lambda: datalake.export_job(engine, settings))


def purge_retention(engine: Engine, settings: Settings) -> JobRun:
    """Retention: transcripts after CCA_RETENTION_TRANSCRIPTS_DAYS, aggregates after a year (database
    and lake)."""
    from ccanalytics.ops import retention  # lazy: duckdb, polars, pyarrow

    return _locked(engine, "retention", lambda: retention.purge_job(engine, settings))


def evaluate_alerts(engine: Engine, settings: Settings) -> JobRun:
    """Evaluate the database alerts and drain the notification outbox (every minute)."""
    return _locked(engine, "alerts", lambda: alerts.run_alerts(engine, settings))


# name -> (function, trigger description for APScheduler: ("interval", {...}) or ("cron", {...}))
SCHEDULE: dict[str, tuple[Callable[[Engine, Settings], JobRun], str, dict[str, Any]]] = {
    "fresh": (process_fresh_calls, "interval", {"seconds": 15}),
    "score": (score_new_calls, "interval", {"minutes": 2}),
    "pricing": (price_calls, "interval", {"minutes": 5}),
    "pricing_nightly": (lambda e, s: price_calls(e, s, nightly=True), "cron", {"hour": 0, "minute": 45}),
    "daily_stats": (refresh_daily_stats, "interval", {"minutes": 5}),
    "daily_stats_nightly": (lambda e, s: refresh_daily_stats(e, s, days=9), "cron", {"hour": 1, "minute": 0}),
    "problems": (detect_problems, "cron", {"hour": 1, "minute": 15}),
    "lake_export": (export_lake, "cron", {"hour": 1, "minute": 30}),
    "partitions": (maintain_partitions, "cron", {"hour": 3, "minute": 0}),
    "retention": (purge_retention, "cron", {"hour": 3, "minute": 30}),
    "alerts": (evaluate_alerts, "interval", {"minutes": 1}),
    "report_daily": (daily_report, "cron", {"hour": 8, "minute": 0}),
    "report_problems": (weekly_problems_report, "cron", {"day_of_week": "mon", "hour": 8, "minute": 30}),
    "report_weekly": (weekly_report, "cron", {"day_of_week": "mon", "hour": 9, "minute": 0}),
}
