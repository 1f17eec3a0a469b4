"""The scheduler process: APScheduler 3 in Europe/Kyiv running the jobs of ccanalytics.jobs."""

from __future__ import annotations

import logging

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import Engine

from ccanalytics import jobs
from ccanalytics.config import Settings

log = logging.getLogger(__name__)


def build(engine: Engine, settings: Settings, *, background: bool = False):
    """A scheduler with every job of ``jobs.SCHEDULE``; jobs never overlap themselves and a missed
    run (process asleep) is run once when it wakes, within 10 minutes."""
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(
        timezone=settings.timezone,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    for name, (fn, trigger, args) in jobs.SCHEDULE.items():
        scheduler.add_job(_run, trigger, id=name, name=name, args=[fn, engine, settings, name], **args)
    return scheduler


def _run(fn, engine: Engine, settings: Settings, name: str) -> None:
    try:
        fn(engine, settings)
    except Exception:  # a failing job must not stop the scheduler; it is logged and retried next time
        log.exception("job %s failed", name)
