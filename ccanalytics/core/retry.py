"""The one retry helper: exponential back-off with a cap and a jitter, as a delay function (for loops
that wait their own way: the alert outbox's persisted next attempt, the scheduler's database gate, the
scoring queue) and as ``retry`` (call until it succeeds). Pure: the sleep and the random source are
injectable, so tests run without waiting.

    retry.delay(3, base=2, cap=60)                  # 8.0: 2, 4, 8, … at most 60
    retry.delay(3, base=2, cap=60, jitter=0.25)     # somewhere in [6, 8]
    retry.retry(send, attempts=3, base=2, retry_on=(DeliveryError,))
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_MAX_DOUBLINGS = 60  # 2 ** 60 × any base is past every cap; keeps the float finite


def delay(
    attempt: int,
    *,
    base: float,
    cap: float = math.inf,
    jitter: float = 0.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempt``-th failure (1 for the first): ``base`` doubling per
    attempt up to ``cap``, then drawn from [(1 − jitter) × that, that] (``rng`` gives [0, 1)), so the
    retries of many callers spread out while the cap stays the longest wait."""
    if base < 0 or cap < 0 or not 0 <= jitter <= 1:
        raise ValueError(f"retry delay needs base ≥ 0, cap ≥ 0 and 0 ≤ jitter ≤ 1 (got {base}, {cap}, {jitter})")
    wait = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, _MAX_DOUBLINGS))
    return wait * (1 - jitter * rng()) if jitter else wait


def delays(
    base: float, cap: float = math.inf, *, jitter: float = 0.0, rng: Callable[[], float] = random.random
) -> Iterator[float]:
    """``delay(1)``, ``delay(2)``, … without end (a loop that retries until it is told to stop)."""
    attempt = 0
    while True:
        attempt += 1
        yield delay(attempt, base=base, cap=cap, jitter=jitter, rng=rng)


def retry(
    fn: Callable[[], T],
    *,
    attempts: int,
    base: float,
    cap: float = math.inf,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retryable: Callable[[BaseException], bool] = lambda _exc: True,
    at_least: Callable[[BaseException], float | None] = lambda _exc: None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: float = 0.0,
    rng: Callable[[], float] = random.random,
) -> T:
    """``fn()`` until it returns, at most ``attempts`` calls in all. An exception of ``retry_on`` for
    which ``retryable(exc)`` holds is retried after ``delay(attempt)`` (or ``at_least(exc)`` seconds
    when longer: a server's Retry-After); ``on_retry(exc, next_attempt, wait)`` is told first. Any
    other exception, and the last attempt's, propagates."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == attempts or not retryable(exc):
                raise
            wait = max(delay(attempt, base=base, cap=cap, jitter=jitter, rng=rng), at_least(exc) or 0.0)
            if on_retry is not None:
                on_retry(exc, attempt + 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
