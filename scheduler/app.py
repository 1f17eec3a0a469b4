"""The scheduler process: APScheduler 3 in the business time zone (CCA_TIMEZONE) running the jobs of
ccanalytics.ops.jobs.

It survives its database: at start it waits for it with exponential backoff (``wait_for_database``)
instead of exiting and being restarted in a loop; while running, a ``DatabaseGate`` shared by all
jobs pauses them during an outage and probes the database with backoff until it is back.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine

from ccanalytics.core import clock, retry
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import DatabaseUnavailable
from ccanalytics.db.engine import check_connection, safe_url
from ccanalytics.ops import jobs

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
# what a lost or refused database connection looks like from a job
CONNECTION_ERRORS = (DatabaseUnavailable, sa.exc.OperationalError, sa.exc.InterfaceError, psycopg.OperationalError)


def wait_for_database(
    engine: Engine,
    prepare: Callable[[Engine], object] | None = None,
    *,
    first_delay: float = FIRST_DELAY_S,
    max_delay: float = MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> bool:
    """Block until the database answers and ``prepare(engine)`` (e.g. migrations) succeeded,
    retrying with exponential backoff and logging every attempt. False only when ``stop`` is set."""
    delays = retry.delays(first_delay, max_delay, jitter=0.1)  # restarted processes spread out
    attempt = 0
    while stop is None or not stop.is_set():
        attempt += 1
        try:
            check_connection(engine)
            if prepare is not None:
                prepare(engine)
        except CONNECTION_ERRORS as exc:
            delay = next(delays)
            reason = exc.message if isinstance(exc, DatabaseUnavailable) else str(exc).strip().splitlines()[0]
            log.warning(
                "database unavailable (attempt %d): %s; retrying in %.1f s",
                attempt,
                reason,
                delay,
                extra={"attempt": attempt, "retry_in_s": round(delay, 2)},
            )
            if stop is not None:
                stop.wait(delay)
            else:
                sleep(delay)
            continue
        if attempt > 1:
            log.info("database %s is available after %d attempts", safe_url(engine.url), attempt)
        return True
    return False


class DatabaseGate:
    """Pauses every job while the database is unreachable.

    A job that fails is checked with a probe: if the database does not answer either, the gate
    closes and the jobs skip their runs; the first job due after the backoff delay probes again
    (1 s, 2 s, 4 s … at most 60 s), and the gate opens when a probe succeeds. A job failing for any
    other reason is logged and retried at its next run, as before."""

    def __init__(
        self,
        engine: Engine,
        *,
        first_delay: float = FIRST_DELAY_S,
        max_delay: float = MAX_DELAY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.first_delay, self.max_delay = first_delay, max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.failures = 0
        self.retry_at = 0.0

    @property
    def is_open(self) -> bool:
        return self.down_since is None

    def allow(self, job: str) -> bool:
        """May ``job`` run now? While the database is down, only the first job due after the
        backoff delay gets to probe it."""
        with self._lock:
            if self.down_since is None:
                return True
            if self._clock() < self.retry_at:
                log.debug("job %s skipped: database unavailable", job, extra={"job": job, "ran": False})
                return False
            self.retry_at = self._clock() + self._delay()  # claim the probe
        if self._probe():
            self._opened()
            return True
        self._closed(job, "still unavailable")
        return False

    def failed(self, job: str, exc: BaseException) -> bool:
        """After ``job`` raised ``exc``: True when the cause is the database being unreachable
        (the gate closes), False for an ordinary job failure."""
        if not isinstance(exc, CONNECTION_ERRORS):
            return False
        if self.down_since is not None:
            return True  # another job already closed the gate
        if self._probe():
            return False
        self._closed(job, str(getattr(exc, "message", None) or exc).strip().splitlines()[0])
        return True

    def _probe(self) -> bool:
        try:
            check_connection(self.engine)
        except DatabaseUnavailable:
            return False
        return True

    def _delay(self) -> float:
        return retry.delay(self.failures, base=self.first_delay, cap=self.max_delay)

    def _closed(self, job: str, reason: str) -> None:
        with self._lock:
            first = self.down_since is None
            if first:
                self.down_since = self._clock()
            self.failures += 1
            delay = self._delay()
            self.retry_at = self._clock() + delay
            failures = self.failures
        extra = {"job": job, "attempt": failures, "retry_in_s": round(delay, 2)}
        if first:
            log.error("database unavailable (%s): jobs paused; retrying in %.0f s", reason, delay, extra=extra)
        else:
            log.warning("database still unavailable; next attempt in %.0f s", delay, extra=extra)

    def _opened(self) -> None:
        with self._lock:
            since, self.down_since, self.failures = self.down_since, None, 0
        if since is not None:
            seconds = self._clock() - since
            log.warning(
                "database is back after %.0f s: jobs resume", seconds, extra={"down_seconds": round(seconds, 1)}
            )


def build(
    engine: Engine,
    settings: Settings,
    *,
    background: bool = False,
    gate: DatabaseGate | None = None,
    catch_up_missed: bool = True,
):
    """A scheduler with every job of ``jobs.SCHEDULE``; jobs never overlap themselves, a missed
    run (process asleep) is run once when it wakes, within 10 minutes, and a run missed while the
    process was down is caught up after the start (:func:`catch_up`). All jobs share one
    ``DatabaseGate``."""
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(
        timezone=settings.timezone,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    gate = gate or DatabaseGate(engine)
    for name, (fn, trigger, args) in jobs.SCHEDULE.items():
        scheduler.add_job(_run, trigger, id=name, name=name, args=[fn, engine, settings, name, gate], **args)
    if catch_up_missed:
        catch_up(scheduler, engine, settings, gate)
    return scheduler


CATCH_UP_STAGGER_S = 20


def previous_fire(trigger, now: datetime) -> datetime | None:
    """The latest time ``trigger`` fired at or before ``now`` (looked for over the past 8 days)."""
    fire, last = trigger.get_next_fire_time(None, now - timedelta(days=8)), None
    while fire is not None and fire <= now:
        last, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def catch_up(scheduler, engine: Engine, settings: Settings, gate: DatabaseGate | None = None, *, now=None) -> list:
    """The state of the jobs is re-derivable, not stored: after a start, each cron job runs once
    more as of its latest scheduled time (staggered), so a run missed while the process was down
    (a report at 08:00, the nightly export) happens now. Every job is idempotent and skips what is
    done (a delivered report is not sent again). Returns (job, as-of time) pairs."""
    now = now or clock.now().astimezone(ZoneInfo(settings.timezone))
    planned = []
    for i, job in enumerate(j for j in scheduler.get_jobs() if isinstance(j.trigger, CronTrigger)):
        fired = previous_fire(job.trigger, now)
        if fired is None:
            continue
        fn = jobs.SCHEDULE[job.id][0]
        kwargs = {"today": fired.date()} if "today" in inspect.signature(fn).parameters else {}
        scheduler.add_job(
            _run,
            "date",
            id=f"{job.id}:catch-up",
            name=f"{job.id} (catch-up)",
            run_date=now + timedelta(seconds=CATCH_UP_STAGGER_S * (i + 1)),
            args=[fn, engine, settings, job.id, gate],
            kwargs=kwargs,
            replace_existing=True,
        )
        planned.append((job.id, fired))
    return planned


def _run(fn, engine: Engine, settings: Settings, name: str, gate: DatabaseGate | None = None, **kwargs) -> None:
    if gate is not None and not gate.allow(name):
        return
    try:
        fn(engine, settings, **kwargs)
    except Exception as exc:  # a failing job must not stop the scheduler; it is logged and retried next time
        if gate is not None and gate.failed(name, exc):
            return
        log.exception("job %s failed", name, extra={"job": name})
