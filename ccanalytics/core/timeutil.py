"""Business time: days and hours are local to the business time zone
(``CCA_TIMEZONE``, default ``DEFAULT_TZ``; passed in as ``tz`` by every edge); storage is UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ccanalytics.core import clock
from ccanalytics.core.errors import InvalidArgument

DEFAULT_TZ = "Europe/Kyiv"


def zone(name: str = DEFAULT_TZ) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown time zone {name!r}") from exc


def today(tz: str = DEFAULT_TZ) -> date:
    return clock.now().astimezone(zone(tz)).date()


def to_date(value: date | datetime | str, tz: str = DEFAULT_TZ) -> date:
    """A calendar date from a date, an aware datetime (its local date in ``tz``) or an ISO string.

    Strings may also be ``today`` or ``yesterday``.
    """
    if isinstance(value, datetime):
        return value.astimezone(zone(tz)).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "today":
            return today(tz)
        if text == "yesterday":
            return today(tz) - timedelta(days=1)
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise InvalidArgument(f"not a date (YYYY-MM-DD): {value!r}") from None
    raise InvalidArgument(f"not a date: {value!r}")


def day_start(day: date, tz: str = DEFAULT_TZ) -> datetime:
    """The UTC instant at which ``day`` begins in ``tz`` (DST-aware: days may be 23 or 25 hours)."""
    return datetime.combine(day, time.min, tzinfo=zone(tz)).astimezone(UTC)


def resolve_days(
    date_from: date | datetime | str | None,
    date_to: date | datetime | str | None,
    tz: str = DEFAULT_TZ,
    *,
    default_days: int = 30,
) -> tuple[date, date]:
    """The first and last local day of a period; missing ends give the ``default_days`` up to today."""
    last = to_date(date_to, tz) if date_to is not None else today(tz)
    first = to_date(date_from, tz) if date_from is not None else last - timedelta(days=default_days - 1)
    if last < first:
        raise InvalidArgument(f"date_to ({date_to}) is before date_from ({date_from})")
    return first, last


def period_bounds(
    date_from: date | datetime | str | None,
    date_to: date | datetime | str | None,
    tz: str = DEFAULT_TZ,
    *,
    default_days: int = 30,
) -> tuple[datetime, datetime]:
    """[start, end) in UTC covering the local days ``date_from`` … ``date_to`` inclusive.

    Missing ends default to the ``default_days`` days up to today. Aware datetimes are used as exact
    instants.
    """
    first, last = resolve_days(date_from, date_to, tz, default_days=default_days)
    start = date_from if isinstance(date_from, datetime) and date_from.tzinfo else day_start(first, tz)
    end = date_to if isinstance(date_to, datetime) and date_to.tzinfo else day_start(last + timedelta(days=1), tz)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise InvalidArgument(f"date_to ({date_to}) is before date_from ({date_from})")
    return start, end
