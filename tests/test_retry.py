"""The one retry helper (ccanalytics.core.retry) and the call sites that compute their waits through it,
with an injected sleep and random source: nothing waits."""

from __future__ import annotations

import itertools

import pytest

from ccanalytics.alerts import outbox
from ccanalytics.alerts.notify import send_with_retries
from ccanalytics.core import retry
from ccanalytics.core.errors import DeliveryError
from ccanalytics.db import attachddl
from ccanalytics.quality.pipeline import ScoringConfig, backoff
from scheduler.app import DatabaseGate


def test_delay_doubles_up_to_the_cap_and_jitter_only_shortens():
    assert [retry.delay(n, base=2, cap=60) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert retry.delay(0, base=2) == 2 and retry.delay(10_000, base=1, cap=5) == 5  # no overflow
    assert retry.delay(3, base=2, cap=60, jitter=0.25, rng=lambda: 0.0) == 8
    assert retry.delay(3, base=2, cap=60, jitter=0.25, rng=lambda: 0.999999) == pytest.approx(6, abs=1e-4)
    assert retry.delay(9, base=2, cap=60, jitter=1.0, rng=lambda: 0.5) == 30
    for bad in ({"base": -1}, {"base": 1, "cap": -1}, {"base": 1, "jitter": 1.5}):
        with pytest.raises(ValueError, match="retry delay needs"):
            retry.delay(1, **bad)
    assert list(itertools.islice(retry.delays(1, 5), 5)) == [1, 2, 4, 5, 5]


class Flaky(Exception):
    pass


def _failing(times: int, exc: Exception):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return len(calls)

    return fn, calls


def test_retry_waits_between_attempts_and_gives_up_after_the_last():
    waits, told = [], []
    fn, calls = _failing(2, Flaky("busy"))
    on_retry = lambda e, n, w: told.append((n, w))
    assert retry.retry(fn, attempts=3, base=0.5, retry_on=Flaky, sleep=waits.append, on_retry=on_retry) == 3
    assert waits == [0.5, 1.0] and told == [(2, 0.5), (3, 1.0)]

    waits.clear()
    fn, calls = _failing(5, Flaky("down"))
    with pytest.raises(Flaky):
        retry.retry(fn, attempts=3, base=1, cap=1.5, retry_on=Flaky, sleep=waits.append)
    assert len(calls) == 3 and waits == [1, 1.5]


def test_retry_stops_at_once_on_other_errors_and_honours_a_longer_server_wait():
    waits = []
    fn, calls = _failing(1, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        retry.retry(fn, attempts=5, base=1, retry_on=Flaky, sleep=waits.append)
    fn, calls = _failing(1, Flaky("permanent"))
    with pytest.raises(Flaky):
        retry.retry(fn, attempts=5, base=1, retry_on=Flaky, retryable=lambda e: False, sleep=waits.append)
    assert waits == [] and len(calls) == 1
    fn, _ = _failing(2, Flaky("slow down"))
    retry.retry(fn, attempts=3, base=1, retry_on=Flaky, at_least=lambda e: 3.0, sleep=waits.append)
    assert waits == [3.0, 3.0]
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        retry.retry(fn, attempts=0, base=1)


def test_the_call_sites_keep_their_limits():
    # the alert outbox's persisted schedule: 30 s doubling to 5 minutes, jitter shortens only
    assert [outbox.backoff(n, jitter=0) for n in (1, 2, 3, 6, 50)] == [30, 60, 120, 300, 300]
    assert all(0.75 * 300 <= outbox.backoff(9) <= 300 for _ in range(50))
    # the scoring queue: 2 s doubling to 120 s, a server's Retry-After within the cap
    config = ScoringConfig()
    assert all(0.75 * 2 <= backoff(1, config, None) <= 2 for _ in range(50))
    assert all(90 <= backoff(12, config, None) <= 120 for _ in range(50)) and backoff(1, config, 500) == 120
    # attach's lock waits: 50 ms plus at most 0.1 s, …, never more than 1 s
    assert all(0.05 <= attachddl._pause(1) <= 0.15 for _ in range(50))
    assert all(0.05 <= attachddl._pause(30) <= 1.0 for _ in range(50))
    # the scheduler's database gate: 1 s, 2 s, 4 s … at most 60 s
    gate = DatabaseGate(engine=None)
    for failures, expected in ((1, 1), (2, 2), (3, 4), (10, 60)):
        gate.failures = failures
        assert gate._delay() == expected


def test_direct_delivery_retries_through_the_helper():
    waits = []
    fn, calls = _failing(2, DeliveryError("telegram is busy", channel="telegram", retryable=True, retry_after=5))
    assert send_with_retries(fn, attempts=3, backoff_s=2, sleep=waits.append) == 3
    assert waits == [5, 5]  # Retry-After is longer than 2 s and 4 s
    fn, calls = _failing(3, DeliveryError("chat not found", channel="telegram", retryable=False))
    with pytest.raises(DeliveryError):
        send_with_retries(fn, attempts=3, sleep=waits.append)
    assert len(calls) == 1
