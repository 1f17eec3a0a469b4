"""The one clock of ccanalytics: every "now" and "today" of the library comes from here.

Production reads the system clock. Tests, the demo and benchmarks may inject an instant (``frozen``)
or a function (``use``), so nothing depends on the day the code happens to run; the whole process,
PostgreSQL included, can also be moved in time with libfaketime (see .ci/run).

    from ccanalytics.core import clock
    clock.now()                         # aware UTC datetime
    with clock.frozen(datetime(2027, 3, 28, 1, 30, tzinfo=UTC)):
        ...                             # every clock.now() answers that instant
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Now = Callable[[], datetime]


def _system() -> datetime:
    return datetime.now(UTC)


_source: Now = _system


def now() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    value = _source()
    if value.tzinfo is None:
        raise ValueError("the injected clock must return timezone-aware datetimes")
    return value.astimezone(UTC)


def use(source: Now | None) -> None:
    """Replace the clock for the whole process (``None``: back to the system clock)."""
    global _source
    _source = source or _system


@contextmanager
def frozen(instant: datetime) -> Iterator[None]:
    """Within the block, ``now()`` answers ``instant`` (aware) — for tests of date logic."""
    if instant.tzinfo is None:
        raise ValueError("frozen() needs a timezone-aware instant")
    previous = _source
    use(lambda: instant)
    try:
        yield
    finally:
        use(previous)
