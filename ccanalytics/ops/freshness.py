"""Near-real-time processing: a call that has just ended is scored, priced, counted in its day's
figures and in the exporter's counters within seconds, whoever wrote it (ccanalytics's ingest API or
the call processor directly). The scheduler runs :func:`run` every ``INTERVAL_SECONDS`` (job
``fresh``); the slower periodic jobs stay as the safety net (late re-deliveries, price changes,
the fixed STT share of the day).

What ended is found through an index, never by scanning a table: the calls that started within
``HORIZON`` (a range of the processor's index on calls.started_at) whose end ccanalytics has not seen
yet (no call_metrics row, or one derived before the call ended: call_metrics.call_ended_at), and the
finished calls of that range that are not queued for scoring or not priced yet. Only when there is
such a call (or one waiting in the scoring queue) do the next steps run, each on the same few calls:
enqueue and score them, price the calls that have no price of ccanalytics yet, and recompute the
figures of the day(s) concerned incrementally. The exporter counts a call once its metrics are
final (call_metrics.final_at), so /metrics has it at the next scrape after the lag.

Recomputing a day reads the processor's calls through indexes as well: the day's calls by
started_at, and their customers' calls of the 7 days around (repeat calls, first-contact resolution)
one customer at a time through the index on (customer_id, started_at) — so a run reads rows in
proportion to the day's calls, not to the table (test_freshness counts the rows read by sequential
scans over a run and a scrape).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics import quality
from ccanalytics.analytics import callmetrics, metrics
from ccanalytics.core import clock, timeutil
from ccanalytics.core.config import Settings
from ccanalytics.cost import calls as cost
from ccanalytics.cost import pricing

INTERVAL_SECONDS = 15
# calls longer than this (from start to the moment their end is seen) are left to the periodic jobs
HORIZON = callmetrics.RECENT

# the work of a run: finished calls of the horizon not yet queued for scoring or priced (whoever derived
# their metrics: an exporter's scrape may have been first), and calls waiting in the scoring queue
_WORK = """
SELECT
  (SELECT count(*) FROM calls c
    LEFT JOIN scoring_queue q ON q.call_id = c.id
    LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at
    WHERE c.started_at >= :since AND c.ended_at IS NOT NULL AND (q.call_id IS NULL OR k.call_id IS NULL)) AS new,
  (SELECT count(*) FROM scoring_queue WHERE status = 'pending' AND not_before <= now()) AS pending
"""


@dataclass(frozen=True)
class FreshRun:
    derived: int  # calls whose metrics this run derived (new, or ended since they were derived)
    ended: int  # finished calls of the horizon not yet queued for scoring or priced
    queued: int
    scored: int
    priced: int  # prices written (new calls)
    days: tuple[date, ...]  # the local days whose figures were recomputed
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "derived": self.derived,
            "ended": self.ended,
            "queued": self.queued,
            "scored": self.scored,
            "priced": self.priced,
            "days": [d.isoformat() for d in self.days],
            "seconds": round(self.seconds, 3),
        }


def run(engine: Engine, settings: Settings, now: datetime | None = None) -> FreshRun:
    """See the module's description. ``now`` defaults to the clock's."""
    started = time.perf_counter()
    now = now or clock.now()
    tz = settings.timezone
    with engine.begin() as conn:
        derived = callmetrics.derive(conn, now - HORIZON, now + timedelta(minutes=5))
        work = conn.execute(sa.text(_WORK), {"since": now - HORIZON}).one()
    if not derived and not work.new and not work.pending:
        return FreshRun(0, 0, 0, 0, 0, (), time.perf_counter() - started)
    since, until = now - HORIZON, now + timedelta(minutes=5)
    first, last = timeutil.to_date(since, tz), timeutil.to_date(now, tz)
    # the horizon's calls only (a range of the index on calls.started_at), not whole days
    queued = quality.enqueue(engine, date_from=since, date_to=until, tz=tz) if work.new else 0
    judge, rubric = quality.from_settings(settings)
    scoring = quality.score_pending(
        engine,
        judge,
        rubric,
        workers=settings.judge_workers,
        config=quality.scoring_config_from_settings(settings, wait_for_retries=False),
    )
    priced = 0
    if work.new:
        book = pricing.load(settings.pricing_file)
        priced = cost.compute_costs(engine, first, last, book=book, tz=tz, only_new=True, since=since).updated
    daily = metrics.compute_daily_stats(engine, first, last, tz=tz)
    return FreshRun(
        derived, work.new, queued, scoring.scored, priced, tuple(daily.days_computed), time.perf_counter() - started
    )
