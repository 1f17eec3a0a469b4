#!/usr/bin/env python3
"""Print the instants (UTC, 'YYYY-MM-DD HH:MM:SS') at which CI re-runs the suite under libfaketime.

- the next 1st of a month at 00:30 Europe/Kyiv (the first minutes of a new month and a new day);
- the next Kyiv spring daylight-saving change day (last Sunday of March), at 04:30 local, just after
  the clocks moved from 03:00 to 04:00.

Both are computed from the real date, so the suite is always tried in the near future of its fixed
test data. Usage: scripts/faketime-instants.py [YYYY-MM-DD]  (default: today).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KYIV = ZoneInfo("Europe/Kyiv")


def first_of_next_month(today: date) -> date:
    return date(today.year + today.month // 12, today.month % 12 + 1, 1)


def spring_dst_day(today: date) -> date:
    for year in (today.year, today.year + 1):
        day = date(year, 3, 31)
        day -= timedelta(days=(day.weekday() + 1) % 7)  # back to Sunday
        if day > today:
            return day
    raise AssertionError("unreachable")


def utc(day: date, at: time) -> str:
    return datetime.combine(day, at, tzinfo=KYIV).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    today = date.fromisoformat(sys.argv[1]) if len(sys.argv) > 1 else datetime.now(KYIV).date()
    dst = spring_dst_day(today)
    before = datetime.combine(dst, time(2, 30), tzinfo=KYIV).utcoffset()
    after = datetime.combine(dst, time(4, 30), tzinfo=KYIV).utcoffset()
    if before == after:
        sys.exit(f"Error: {dst} is not a DST change day in Europe/Kyiv")
    print(f"month-start {utc(first_of_next_month(today), time(0, 30))}")
    print(f"kyiv-dst {utc(dst, time(4, 30))}")


if __name__ == "__main__":
    main()
