"""The story of a day: the two or three things that changed most against a normal day of the same
weekday, each with its cause found in the data, its size and what to do.

Pure: :class:`DayFacts` of the day and of the normal days in (``storyfacts.read`` builds them from the
database), a :class:`Story` out. A normal day is the median of the reference days, figure by figure.
The terms (figures, thresholds, facts, changes, causes, findings) are ``storymodel``'s, the causes are
found by ``daycauses``; this module finds the changes and tells the story.

1. **Changes**: every headline figure of the day against the normal day; a change counts when it is
   larger than the figure's threshold (``THRESHOLDS``), and ranks by how many thresholds it is.
2. **Causes** found in the breakdowns: a tool failing with one error far more than usual (which tools,
   the error, the time range), the scenario holding most of the extra transfers, the hours the reply
   was slow, the prompt version whose quality fell, the cost component that grew.
3. **Findings**: the largest change first, with the cause that explains it; the other changes the same
   cause explains join it (an outage raises transfers and cuts orders: one finding). At most three.

The tiles of the report are judged in context (:func:`judge_tile`): a cost per call that fell while
orders or resolution fell too is not good news.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from ccanalytics.core.labels import TOOLS
from ccanalytics.core.rutext import count, weekday
from ccanalytics.reports.daycauses import (
    SLOW_TOOL_MS,
    TOOL_INCIDENT_FACTOR,
    TOOL_INCIDENT_MIN_CALLS,
    VERSION_SHIFT_PCT,
    cost_components,
    prompt_versions,
    scenario_transfers,
    slow_hours,
    tool_incidents,
    version_shift,
    volume,
)
from ccanalytics.reports.storymodel import (
    COUNT_NOISE,
    ERRORS,
    FIGURES,
    MESSAGE_CHANGES,
    MIN_COUNT_CHANGE,
    Cause,
    Change,
    DayFacts,
    Finding,
    Group,
    Link,
    Story,
    ToolFailure,
    error_label,
    fmt,
    normal_value,
    tool_label,
)

# the names this module had before its terms and causes moved out (ccanalytics.daystory imports them)
__all__ = [
    "COUNT_NOISE",
    "ERRORS",
    "FIGURES",
    "MAX_FINDINGS",
    "MESSAGE_CHANGES",
    "MIN_COUNT_CHANGE",
    "SLOW_TOOL_MS",
    "TOOLS",
    "TOOL_INCIDENT_FACTOR",
    "TOOL_INCIDENT_MIN_CALLS",
    "VERSION_SHIFT_PCT",
    "WEEKDAYS_PLURAL",
    "Cause",
    "Change",
    "DayFacts",
    "Finding",
    "Group",
    "Link",
    "Story",
    "ToolFailure",
    "changes",
    "cost_components",
    "describe_reference",
    "error_label",
    "fmt",
    "judge_tile",
    "normal_value",
    "prompt_versions",
    "scenario_transfers",
    "slow_hours",
    "tell",
    "tool_incidents",
    "tool_label",
    "version_shift",
    "volume",
]

MAX_FINDINGS = 3
WEEKDAYS_PLURAL = ("понедельников", "вторников", "сред", "четвергов", "пятниц", "суббот", "воскресений")


def describe_reference(day: date, days: Sequence[DayFacts], same_weekday: bool) -> str:
    n = len(days)
    if same_weekday:
        return f"медиана {n} предыдущих {WEEKDAYS_PLURAL[day.weekday()]}" if n > 1 else f"прошлый {weekday(day)}"
    return f"медиана {count(n, 'предыдущего дня', 'предыдущих дней', 'предыдущих дней')}"


# ---------------------------------------------------------------------------------------- changes
def changes(day: DayFacts, normal_days: Sequence[DayFacts]) -> list[Change]:
    """The headline figures that moved more than their threshold, largest (in thresholds) first."""
    out = []
    for key, (title, unit, better, threshold) in FIGURES.items():
        value, normal = day.figure(key), normal_value(normal_days, key)
        if value is None or normal is None:
            continue
        if unit in ("pct", "score"):
            size = abs(value - normal)
        else:
            if unit == "count" and abs(value - normal) < max(MIN_COUNT_CHANGE, COUNT_NOISE * normal**0.5):
                continue  # within the day-to-day scatter of a count of this size
            size = 100.0 * abs(value - normal) / normal if normal else (100.0 if value else 0.0)
        score = size / threshold
        if score >= 1:
            out.append(Change(key, title, unit, float(value), normal, better, round(score, 3)))
    out.sort(key=lambda c: (-c.score, c.key))
    return out


def judge_tile(key: str, tone: str, found: Sequence[Change]) -> tuple[str, str | None]:
    """A tile's tone in context: a cost per call that fell while orders or resolution fell, or the
    cost of a resolved call rose, is not good news (the calls were cheaper because less was done)."""
    if key != "avg_cost_per_call_usd" or tone != "good":
        return tone, None
    by = {c.key: c for c in found}
    worse = [by[k] for k in ("orders", "transferred_pct", "cost_per_resolved") if k in by and by[k].bad]
    if not worse:
        return tone, None
    return "bad", "дешевле, потому что меньше сделано: " + "; ".join(c.text() for c in worse)


# ---------------------------------------------------------------------------------------- story
def tell(
    day: DayFacts,
    normal_days: Sequence[DayFacts],
    *,
    same_weekday: bool = True,
    scenario_labels: Mapping[str, str] | None = None,
    reason_labels: Mapping[str, str] | None = None,
    cost_labels: Mapping[str, str] | None = None,
    budget_ms: float = 2000.0,
    limit: int = MAX_FINDINGS,
) -> Story:
    """The story of ``day`` against ``normal_days``: at most ``limit`` findings, largest change first."""
    reference = describe_reference(day.day, normal_days, same_weekday)
    if not normal_days:
        return Story(day.day, (), reference, 0)
    found = changes(day, normal_days)
    scen = dict(scenario_labels or {})
    causes = [
        *tool_incidents(day, normal_days),
        *slow_hours(day, normal_days, budget_ms),
        *prompt_versions(day, normal_days),
        *cost_components(day, normal_days, cost_labels or {}),
        *version_shift(day, normal_days),
        *scenario_transfers(day, normal_days, scen, reason_labels or {}),
        *volume(day, normal_days, scen),
    ]
    findings: list[Finding] = []
    covered: set[str] = set()
    used: set[int] = set()
    for c in found:
        if c.key in covered:
            continue
        if len(findings) >= limit:
            break
        # the first cause (causes are in order of how specific they are) that explains this change
        pick = next((i for i, k in enumerate(causes) if k.fits(c) and i not in used), None)
        cause = causes[pick] if pick is not None else None
        together = [c]
        if cause is not None:
            used.add(pick)  # type: ignore[arg-type]
            together += [o for o in found if o is not c and cause.fits(o) and o.key not in covered]
        covered.update(o.key for o in together)
        findings.append(Finding(tuple(together), cause))
    return Story(day.day, tuple(findings), reference, len(normal_days), tuple(found))
