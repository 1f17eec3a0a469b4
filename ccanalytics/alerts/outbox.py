"""The alerts' outbox drained: each due notification sent once per channel, in its alert's event order,
a retryable failure retried after a jittered backoff, an unanswered request never re-sent."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.alerts.delivery import Channel, outcome_unknown
from ccanalytics.alerts.messages import duration, local_time
from ccanalytics.alerts.rulemodel import aware
from ccanalytics.core import retry, timeutil
from ccanalytics.core.errors import DeliveryError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 300  # at the capped backoff: about a day of retries before a row is dead
BACKOFF_S, BACKOFF_CAP_S, BACKOFF_JITTER = 30.0, 300.0, 0.2
LATE_AFTER = timedelta(minutes=2)  # a notification sent later than this after its event says so


@dataclass
class DeliverySummary:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    unknown: int = 0  # went out without an answer: not re-sent
    pending: int = 0


# ------------------------------------------------------------------------------------- deliver
# The oldest row of a usable channel that is the first pending one of its alert (rule, key) on that
# channel and is due — or a later row of its alert is (a new event tries the alert's first row again
# at once: it may find the channel back). A row in backoff holds back the later notifications of its
# alert, never those of the others.
_CLAIM = """
SELECT o.id, o.event_id, o.channel, o.payload, o.attempts, e.created_at AS event_at
FROM alert_outbox o JOIN alert_events e ON e.id = o.event_id
WHERE o.status = 'pending' AND o.channel = ANY(:channels)
  AND NOT EXISTS (
    SELECT 1 FROM alert_outbox p JOIN alert_events pe ON pe.id = p.event_id
    WHERE p.channel = o.channel AND p.status = 'pending' AND p.id < o.id AND pe.rule = e.rule AND pe.key = e.key
  )
  AND EXISTS (
    SELECT 1 FROM alert_outbox d JOIN alert_events de ON de.id = d.event_id
    WHERE d.channel = o.channel AND d.status = 'pending' AND d.id >= o.id AND d.next_attempt_at <= :now
      AND de.rule = e.rule AND de.key = e.key
  )
ORDER BY o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED
"""

# The channel answered again: its rows waiting out a backoff are due now (not after the cap).
_CHANNEL_BACK = """
UPDATE alert_outbox SET next_attempt_at = :now
WHERE id IN (SELECT id FROM alert_outbox WHERE channel = :channel AND status = 'pending'
             AND next_attempt_at > :now FOR UPDATE SKIP LOCKED)
"""


def backoff(
    attempts: int,
    *,
    base_s: float = BACKOFF_S,
    cap_s: float = BACKOFF_CAP_S,
    jitter: float = BACKOFF_JITTER,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt ``attempts + 1``: ``base_s`` doubling per attempt up to ``cap_s``, each
    drawn from [(1 − jitter) × that, that] so that retries of many rows (and processes) spread out
    (ccanalytics.core.retry.delay)."""
    return retry.delay(attempts, base=base_s, cap=cap_s, jitter=jitter, rng=(rng or random).random)


def _late_note(event_at: datetime, now: datetime, tz: str) -> str:
    """A line for a notification sent well after its event (a channel outage)."""
    if now - event_at <= LATE_AFTER:
        return ""
    return f"\n⏱ Отправлено с опозданием на {duration(now - event_at)}: событие от {local_time(event_at, tz)}."


def deliver(
    engine: Engine,
    channels: Mapping[str, Channel],
    now: datetime,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    backoff_s: float = BACKOFF_S,
    backoff_cap_s: float = BACKOFF_CAP_S,
    jitter: float = BACKOFF_JITTER,
    rng: random.Random | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    limit: int = 500,
) -> DeliverySummary:
    """Send the due outbox rows of the given channels, oldest first, each in its own transaction that
    holds the row's lock while sending.

    - Order: per alert (rule, key) and channel, a row is sent only when no earlier row of its alert is
      pending there, so messages arrive in event order. A row sent late says so (``⏱ …``).
    - A retryable failure: next attempt after ``backoff`` (or the server's retry_after); the channel
      is not tried again in this call. A success makes the channel's rows in backoff due at once.
    - A permanent failure or the ``max_attempts``-th one: ``dead``.
    - The request went out and no answer came (delivery.outcome_unknown): ``unknown``, not re-sent — it
      may have been delivered; the later rows of its alert go on.
    E-mails of one row carry one Message-ID (``key``) on every attempt."""
    now = aware(now)
    out = DeliverySummary()
    usable = set(channels)
    for _ in range(limit):
        if not usable:
            break
        with engine.begin() as conn:
            row = conn.execute(sa.text(_CLAIM), {"now": now, "channels": sorted(usable)}).one_or_none()
            if row is None:
                break
            attempts = row.attempts + 1
            text = row.payload["text"] + _late_note(row.event_at, now, tz)
            try:
                channels[row.channel].send_text(
                    row.payload.get("subject", ""), text, key=f"ccanalytics-alert-{row.event_id}-{row.channel}"
                )
            except Exception as exc:  # noqa: BLE001 — every failure is recorded on the row, never lost
                retryable = exc.retryable if isinstance(exc, DeliveryError) else True
                error = (exc.message if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}")[:1000]
                if outcome_unknown(exc):
                    log.warning("alert notification %s to %s: %s", row.id, row.channel, error)
                    conn.execute(
                        sa.text(
                            "UPDATE alert_outbox SET status = 'unknown', attempts = :a, last_error = :e, "
                            "sent_at = :now WHERE id = :id"
                        ),
                        {"a": attempts, "e": error, "now": now, "id": row.id},
                    )
                    out.unknown += 1
                    continue
                if not retryable or attempts >= max_attempts:
                    log.error(
                        "alert notification %s to %s is dead after %d attempt(s): %s",
                        row.id,
                        row.channel,
                        attempts,
                        error,
                    )
                    conn.execute(
                        sa.text(
                            "UPDATE alert_outbox SET status = 'dead', attempts = :a, last_error = :e WHERE id = :id"
                        ),
                        {"a": attempts, "e": error, "id": row.id},
                    )
                    out.dead += 1
                    continue
                delay = backoff(attempts, base_s=backoff_s, cap_s=backoff_cap_s, jitter=jitter, rng=rng)
                if isinstance(exc, DeliveryError) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                log.warning(
                    "alert notification %s to %s failed (attempt %d), next in %.0f s: %s",
                    row.id,
                    row.channel,
                    attempts,
                    delay,
                    error,
                )
                conn.execute(
                    sa.text(
                        "UPDATE alert_outbox SET attempts = :a, last_error = :e, next_attempt_at = :next WHERE id = :id"
                    ),
                    {"a": attempts, "e": error, "next": now + timedelta(seconds=delay), "id": row.id},
                )
                out.retried += 1
                usable.discard(row.channel)
                continue
            conn.execute(
                sa.text("UPDATE alert_outbox SET status = 'sent', attempts = :a, sent_at = :now WHERE id = :id"),
                {"a": attempts, "now": now, "id": row.id},
            )
            conn.execute(sa.text(_CHANNEL_BACK), {"now": now, "channel": row.channel})
            out.sent += 1
    with engine.connect() as conn:
        out.pending = conn.execute(sa.text("SELECT count(*) FROM alert_outbox WHERE status = 'pending'")).scalar_one()
    return out
