"""The scoring pipeline: a durable queue in PostgreSQL, several workers claiming calls with
FOR UPDATE SKIP LOCKED, bounded concurrency, retries with backoff (honouring Retry-After), and a
final 'failed' state with the reason — a call is never lost and never scored twice by two workers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import retry, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.quality import rules, store
from ccanalytics.quality.judge import Judge, JudgeError, JudgeResult
from ccanalytics.quality.rubric import Rubric, overall
from ccanalytics.quality.transcript import CallView

REASONS = ("new", "rescore", "rubric_change")
# the scheduler queues the finished calls of today and yesterday (local days); older ones only by
# `ccanalytics score --since`
SCHEDULED_DAYS = 2


def scheduled_first_day(today: date) -> date:
    """The first local day whose calls the scheduler scores (``SCHEDULED_DAYS`` days up to ``today``)."""
    return today - timedelta(days=SCHEDULED_DAYS - 1)


def scheduled_since(now: datetime, tz: str = timeutil.DEFAULT_TZ) -> datetime:
    """The start of the calls the scheduler scores at ``now``: local midnight of
    :func:`scheduled_first_day`. The scoring backlog (the exporter's gauge, its alert's database twin)
    counts the finished calls since then without a score: the calls the scheduler owes, none it will
    never reach."""
    return timeutil.day_start(scheduled_first_day(timeutil.to_date(now, tz)), tz)


@dataclass(frozen=True)
class ScoringConfig:
    max_attempts: int = 4
    claim_timeout_s: float = 600.0  # an in-progress claim older than this was abandoned by its worker
    backoff_base_s: float = 2.0
    backoff_max_s: float = 120.0
    wait_for_retries: bool = True  # wait for backed-off calls before returning (the CLI); the scheduler does not
    rules_batch: int = 100  # calls per claim for the rule-based judge


@dataclass
class ScoringRun:
    scored: int = 0
    failed: int = 0
    retried: int = 0
    lost_claims: int = 0  # results discarded because another worker re-claimed the call
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (call_id, reason), first 20

    def to_dict(self) -> dict:
        return {
            "scored": self.scored,
            "failed": self.failed,
            "retried": self.retried,
            "lost_claims": self.lost_claims,
            "seconds": round(self.seconds, 2),
            "failures": [{"call_id": c, "reason": r} for c, r in self.failures],
        }


# ------------------------------------------------------------------------------------- enqueue
def enqueue(
    engine: Engine,
    *,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    reason: str = "new",
    call_ids: Sequence[str | uuid.UUID] | None = None,
    rubric: Rubric | None = None,
    judge_model: str | None = None,
    tz: str = timeutil.DEFAULT_TZ,
) -> int:
    """Put calls in the scoring queue; returns how many were (re)queued.

    - ``new``: finished calls of the period with no queue entry (or whose score was cleared by a
      changed re-delivery).
    - ``rescore``: the given ``call_ids`` (or every call of the period), whatever their state.
    - ``rubric_change``: calls whose current score was given under another rubric version — or, with
      ``judge_model``, by another judge model.
    """
    if reason not in REASONS:
        raise InvalidArgument(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
    start, end = timeutil.period_bounds(date_from, date_to, tz, default_days=3650)
    params: dict = {"start": start, "end": end, "reason": reason}
    if reason == "new":
        where = "(q.call_id IS NULL OR (q.status = 'done' AND NOT c.quality_scored))"
    elif reason == "rescore":
        where = "true"
        if call_ids is not None:
            try:
                params["ids"] = [uuid.UUID(str(i)) for i in call_ids]
            except ValueError as exc:
                raise InvalidArgument(f"not a call id: {exc}") from None
            where = "c.id = ANY(:ids)"
    else:
        if rubric is None:
            raise InvalidArgument("rubric_change needs the current rubric")
        where = (
            "c.quality_scored AND (coalesce(c.computed_quality_details ->> 'rubric_version', '') <> :version "
            "OR (CAST(:model AS text) IS NOT NULL "
            "AND coalesce(c.computed_quality_details -> 'judge' ->> 'model', '') <> :model))"
        )
        params["version"] = rubric.version
        params["model"] = judge_model
    period = (
        "" if reason == "rescore" and call_ids is not None else "AND c.started_at >= :start AND c.started_at < :end"
    )
    sql = f"""
        INSERT INTO scoring_queue AS q (call_id, started_at, status, reason, attempts, not_before, enqueued_at)
        SELECT c.id, c.started_at, 'pending', :reason, 0, now(), now()
        FROM cca_calls c LEFT JOIN scoring_queue q ON q.call_id = c.id
        WHERE c.ended_at IS NOT NULL {period} AND {where}
        ON CONFLICT (call_id) DO UPDATE SET status = 'pending', reason = EXCLUDED.reason, attempts = 0,
            not_before = now(), last_error = NULL, locked_by = NULL, locked_at = NULL, updated_at = now()
        WHERE q.status <> 'in_progress'
    """  # noqa: S608 — period and where are constant fragments chosen by reason; values are bound
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params).rowcount


# --------------------------------------------------------------------------------------- claim
_CLAIM = """
UPDATE scoring_queue q SET status = 'in_progress', locked_by = :worker, locked_at = clock_timestamp(),
       attempts = q.attempts + 1, updated_at = now()
WHERE q.call_id IN (
    SELECT call_id FROM scoring_queue
    WHERE (status = 'pending' AND not_before <= now())
       OR (status = 'in_progress' AND locked_at < now() - make_interval(secs => :timeout))
    ORDER BY priority DESC, started_at
    LIMIT :n
    FOR UPDATE SKIP LOCKED)
RETURNING q.call_id, q.attempts
"""


def claim(conn: sa.Connection, worker: str, n: int, claim_timeout_s: float) -> list[tuple[uuid.UUID, int]]:
    rows = conn.execute(sa.text(_CLAIM), {"worker": worker, "n": n, "timeout": claim_timeout_s}).all()
    return [(r.call_id, r.attempts) for r in rows]


def _release(
    conn: sa.Connection, call_id: uuid.UUID, worker: str, status: str, error: str | None, delay: float
) -> bool:
    return (
        conn.execute(
            sa.text(
                "UPDATE scoring_queue SET status = :status, last_error = :error, locked_by = NULL, locked_at = NULL, "
                "not_before = now() + make_interval(secs => :delay), updated_at = now() "
                "WHERE call_id = :id AND locked_by = :worker AND status = 'in_progress'"
            ),
            {"status": status, "error": error, "delay": delay, "id": call_id, "worker": worker},
        ).rowcount
        == 1
    )


def backoff(attempts: int, config: ScoringConfig, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(config.backoff_max_s, retry_after)
    return retry.delay(attempts, base=config.backoff_base_s, cap=config.backoff_max_s, jitter=0.25)


# ------------------------------------------------------------------------------------- workers
def score_batch(
    engine: Engine,
    judge: Judge,
    rubric: Rubric,
    claimed: Sequence[tuple[uuid.UUID, int]],
    worker: str,
    config: ScoringConfig,
) -> list[tuple[uuid.UUID, str, str | None]]:
    """Score claimed calls. Returns (call_id, outcome, reason) with outcome scored | retry | failed |
    lost (another worker re-claimed it: the result is discarded) | missing (the call was deleted).

    The judge runs outside any transaction; all results are then written in one transaction, each
    only if this worker still holds the call's claim — so a call is never scored twice."""
    with engine.connect() as conn:
        views = store.load_calls(conn, [cid for cid, _ in claimed])
    # (call_id, attempts, call, result): call and result are None for a call no longer there
    judged: list[tuple[uuid.UUID, int, CallView | None, JudgeResult | JudgeError | None]] = []
    for call_id, attempts in claimed:
        call = views.get(call_id)
        if call is None:
            judged.append((call_id, attempts, None, None))
            continue
        try:
            judged.append((call_id, attempts, call, judge.judge(call)))
        except JudgeError as exc:
            judged.append((call_id, attempts, call, exc))
    out: list[tuple[uuid.UUID, str, str | None]] = []
    with engine.begin() as conn:
        for call_id, attempts, call, result in judged:
            if call is None or result is None:  # both or neither
                conn.execute(
                    sa.text("DELETE FROM scoring_queue WHERE call_id = :id AND locked_by = :w"),
                    {"id": call_id, "w": worker},
                )
                out.append((call_id, "missing", None))
            elif isinstance(result, JudgeError):
                final = not result.retryable or attempts >= config.max_attempts
                reason = (
                    result.reason
                    if not (final and result.retryable)
                    else f"{result.reason} (after {attempts} attempts)"
                )
                delay = 0.0 if final else backoff(attempts, config, result.retry_after)
                ok = _release(conn, call_id, worker, "failed" if final else "pending", reason, delay)
                out.append((call_id, ("failed" if final else "retry") if ok else "lost", reason))
            else:
                owned = conn.execute(
                    sa.text(
                        "UPDATE scoring_queue SET status = 'done', last_error = NULL, locked_by = NULL, "
                        "locked_at = NULL, updated_at = now() "
                        "WHERE call_id = :id AND locked_by = :worker AND status = 'in_progress'"
                    ),
                    {"id": call_id, "worker": worker},
                ).rowcount
                if not owned:
                    out.append((call_id, "lost", None))
                    continue
                total = overall(result.criteria, rubric)
                store.write_score(conn, call, result, rubric, total, rules.compute_signals(call), attempts)
                out.append((call_id, "scored", None))
    return out


def score_one(
    engine: Engine, judge: Judge, rubric: Rubric, call_id: uuid.UUID, attempts: int, worker: str, config: ScoringConfig
) -> tuple[str, str | None]:
    """Score one claimed call: (outcome, reason)."""
    [(_, outcome, reason)] = score_batch(engine, judge, rubric, [(call_id, attempts)], worker, config)
    return outcome, reason


def score_pending(
    engine: Engine,
    judge: Judge,
    rubric: Rubric,
    *,
    limit: int | None = None,
    workers: int = 4,
    config: ScoringConfig | None = None,
    progress: Callable[[int], None] | None = None,
    worker_prefix: str | None = None,
) -> ScoringRun:
    """Score queued calls with ``workers`` threads until the queue is empty (or ``limit`` calls have
    been finished). Several processes may run this at once. The LLM judge takes one call per claim;
    the rule-based judge, which answers at once, takes ``config.rules_batch`` calls per claim."""
    if workers < 1:
        raise InvalidArgument("workers must be at least 1")
    if limit is not None and limit < 0:
        raise InvalidArgument("limit must not be negative")
    config = config or ScoringConfig()
    batch = config.rules_batch if judge.kind == "rules" else 1
    prefix = worker_prefix or f"{socket.gethostname()}:{os.getpid()}"
    run = ScoringRun()
    lock = threading.Lock()
    crashed = threading.Event()  # a worker raised: the others stop instead of waiting on its claims
    budget = _Budget(limit)
    started = time.perf_counter()

    def worker(index: int) -> None:
        name = f"{prefix}:{index}:{uuid.uuid4().hex[:6]}"
        while not crashed.is_set():
            want = budget.take(batch)
            if not want:
                return
            with engine.begin() as conn:
                claimed = claim(conn, name, want, config.claim_timeout_s)
            budget.give_back(want - len(claimed))
            if not claimed:
                wait = _next_retry_in(engine) if config.wait_for_retries else None
                if wait is None:
                    return
                time.sleep(min(max(wait, 0.05), 1.0))
                continue
            try:
                outcomes = score_batch(engine, judge, rubric, claimed, name, config)
            except BaseException:
                crashed.set()
                _unclaim(engine, name)
                raise
            finished, unfinished = _tally(run, lock, outcomes)
            budget.give_back(unfinished)
            if progress is not None and finished:
                progress(finished)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cca-score") as pool:
        for f in [pool.submit(worker, i) for i in range(workers)]:
            f.result()
    run.seconds = time.perf_counter() - started
    return run


class _Budget:
    """The calls a run may still finish (None: no limit), shared by its workers."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, n: int) -> int:
        with self._lock:
            if self._left is None:
                return n
            got = min(n, self._left)
            self._left -= got
            return got

    def give_back(self, n: int) -> None:
        if n:
            with self._lock:
                if self._left is not None:
                    self._left += n


def _tally(run: ScoringRun, lock: threading.Lock, outcomes: list[tuple[uuid.UUID, str, str | None]]) -> tuple[int, int]:
    """Count a batch's outcomes into the run: (finished, unfinished)."""
    finished = unfinished = 0
    for call_id, outcome, reason in outcomes:
        with lock:
            if outcome == "scored":
                run.scored += 1
            elif outcome == "failed":
                run.failed += 1
                if len(run.failures) < 20:
                    run.failures.append((str(call_id), reason or ""))
            elif outcome == "retry":
                run.retried += 1
            elif outcome == "lost":
                run.lost_claims += 1
        if outcome in ("retry", "lost", "missing"):
            unfinished += 1  # not finished: does not count against the limit
        else:
            finished += 1
    return finished, unfinished


def _unclaim(engine: Engine, worker: str) -> None:
    """Hand back the claims of a worker that raised (a database or programming error, not a judge's
    refusal), so that the next run takes its calls at once instead of after the claim timeout."""
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE scoring_queue SET status = 'pending', locked_by = NULL, locked_at = NULL, "
                    "attempts = greatest(attempts - 1, 0), updated_at = now() "
                    "WHERE locked_by = :worker AND status = 'in_progress'"
                ),
                {"worker": worker},
            )
    except sa.exc.SQLAlchemyError:
        pass  # the claims then expire after the claim timeout, as a dead worker's do


def _next_retry_in(engine: Engine) -> float | None:
    """Seconds until the earliest backed-off call may be tried again; None when none is waiting."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT extract(epoch FROM min(not_before) - now()) AS wait, "
                "count(*) FILTER (WHERE status = 'in_progress') AS busy "
                "FROM scoring_queue WHERE status = 'pending' OR status = 'in_progress'"
            )
        ).one()
    if row.wait is None and not row.busy:
        return None
    return float(row.wait) if row.wait is not None else 0.2


def queue_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM scoring_queue GROUP BY 1")).all()
    out = {s: 0 for s in ("pending", "in_progress", "done", "failed")}
    out.update(dict(rows))
    return out
