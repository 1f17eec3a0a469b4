"""The story of a week: what changed most in a Monday–Sunday week against the weeks before it, and
the days that stood out — told in the words of the story of a day (``daystory``).

Pure: :class:`storymodel.DayFacts` of the week (its totals; ``day`` is its Monday) and of the weeks
before it in, a :class:`WeekStory` out; the days that stood out come from their own stories
(``storyfacts.story``, the same as the daily report's).

1. **Changes**: the figures of the story of a day, for the week against the mean of the weeks before;
   a change counts when the week lies outside their range (lowest to highest) and moved more than the
   figure's threshold in the story of a day (``storymodel.FIGURES``; a count also beyond its scatter).
2. **Causes**: those of a day that hold over a week (a prompt version whose quality fell, a cost
   component, a version taking over the calls, the scenario of the extra transfers, the scenario that
   moved the volume); findings grouped as in the story of a day, at most ``MAX_FINDINGS``.
3. **Days that stood out**: a day whose own story has a bad change of at least ``NOTABLE_SCORE`` times
   its threshold (against the same weekday of the weeks before): named with that change and its cause,
   at most ``MAX_DAYS``, the largest first. A day's story counts a change from one threshold; a week
   names only the days that stand out at twice that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from statistics import fmean

from ccanalytics.core import labels, rutext
from ccanalytics.reports import daycauses, storymodel

WEEKS = 4  # the weeks a week is compared with
NOTABLE_SCORE = 2.0
MAX_FINDINGS = 2
MAX_DAYS = 2


def describe_reference(weeks: int) -> str:
    """«среднее за 4 предыдущие недели»; «прошлая неделя» for one."""
    if weeks == 0:
        return "сравнить не с чем"
    if weeks == 1:
        return "прошлая неделя"
    return "среднее за " + rutext.count(weeks, "предыдущую неделю", "предыдущие недели", "предыдущих недель")


def changes(week: storymodel.DayFacts, previous: Sequence[storymodel.DayFacts]) -> list[storymodel.Change]:
    """The figures of ``week`` outside the range of ``previous`` and further than their threshold from
    its mean, largest (in thresholds) first; ``Change.normal`` is the mean."""
    out = []
    for key, (title, unit, better, threshold) in storymodel.FIGURES.items():
        value = week.figure(key)
        before = [v for p in previous if (v := p.figure(key)) is not None]
        if value is None or not before or min(before) <= value <= max(before):
            continue
        normal = fmean(before)
        delta = abs(value - normal)
        if unit in ("pct", "score"):
            size = delta
        elif unit == "count" and delta < max(storymodel.MIN_COUNT_CHANGE, storymodel.COUNT_NOISE * normal**0.5):
            continue  # within the week-to-week scatter of a count of this size
        else:
            size = 100.0 * delta / normal if normal else 100.0
        if size >= threshold:
            out.append(storymodel.Change(key, title, unit, float(value), normal, better, round(size / threshold, 3)))
    out.sort(key=lambda c: (-c.score, c.key))
    return out


def causes(week: storymodel.DayFacts, previous: Sequence[storymodel.DayFacts]) -> list[storymodel.Cause]:
    """The causes of the story of a day that hold over a week, the most specific first."""
    return [
        *daycauses.prompt_versions(week, previous),
        *daycauses.cost_components(week, previous, labels.COST_COMPONENTS),
        *daycauses.version_shift(week, previous),
        *daycauses.scenario_transfers(week, previous, labels.SCENARIO_CODES, labels.TRANSFER_REASONS),
        *daycauses.volume(week, previous, labels.SCENARIO_CODES),
    ]


def findings(
    found: Sequence[storymodel.Change], candidates: Sequence[storymodel.Cause], *, limit: int = MAX_FINDINGS
) -> tuple[storymodel.Finding, ...]:
    """The largest change with the first cause that explains it, and the other changes that cause
    explains with it; then the next change not told yet. At most ``limit`` findings."""
    out: list[storymodel.Finding] = []
    unused = list(candidates)
    for change in found:
        told = {c.key for f in out for c in f.changes}
        if change.key in told:
            continue
        if len(out) == limit:
            break
        cause = next((k for k in unused if k.fits(change)), None)
        together = [change]
        if cause is not None:
            unused.remove(cause)
            together += [o for o in found if o is not change and o.key not in told and cause.fits(o)]
        out.append(storymodel.Finding(tuple(together), cause))
    return tuple(out)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _told(finding: storymodel.Finding, *, changes: int = storymodel.MESSAGE_CHANGES, cap: bool = True) -> str:
    """«Стоимость звонка: … (+38 %); …. Причина: …» — what changed and the cause, without the action."""
    what = "; ".join(c.text() for c in finding.changes[:changes]) + "."
    what = _cap(what) if cap else what
    return what if finding.cause is None else f"{what} Причина: {finding.cause.text}."


@dataclass(frozen=True)
class NotableDay:
    """A day of the week whose own story has a large bad change."""

    day: date
    change: storymodel.Change  # its largest bad change
    finding: storymodel.Finding | None  # the finding of the day's story that holds it

    @property
    def label(self) -> str:
        """«23.11 (понедельник)»."""
        return f"{self.day:%d.%m} ({rutext.weekday(self.day)})"

    def text(self) -> str:
        """«23.11 (понедельник): переводы …; заказы …. Причина: …»."""
        told = _told(self.finding, changes=2, cap=False) if self.finding is not None else self.change.text() + "."
        return f"{self.label}: {told}"


def notable_days(stories: Mapping[date, storymodel.Story], *, limit: int = MAX_DAYS) -> tuple[NotableDay, ...]:
    """The days whose story has a bad change of at least ``NOTABLE_SCORE`` thresholds, largest first."""
    found = []
    for day, story in stories.items():
        bad = [c for c in story.changes if c.bad and c.score >= NOTABLE_SCORE]
        if not bad:
            continue
        top = max(bad, key=lambda c: (c.score, c.key))
        finding = next((f for f in story.findings if any(c.key == top.key for c in f.changes)), None)
        found.append(NotableDay(day, top, finding))
    found.sort(key=lambda d: (-d.change.score, d.day))
    return tuple(found[:limit])


@dataclass(frozen=True)
class WeekStory:
    first: date  # the Monday
    calls: int
    reference: str  # «среднее за 4 предыдущие недели»
    reference_weeks: int  # the weeks before that had calls
    findings: tuple[storymodel.Finding, ...] = ()
    days: tuple[NotableDay, ...] = ()
    changes: tuple[storymodel.Change, ...] = ()  # every change of the week that counts, largest first

    @property
    def quiet(self) -> bool:
        return not self.findings and not self.days

    def lines(self) -> list[str]:
        """The story as plain sentences (Telegram, e-mail): the week's changes, then the days that stood
        out; a quiet week in one line."""
        if not self.calls:
            return ["За неделю звонков нет."]
        if self.reference_weeks == 0:
            return [f"Сравнить не с чем: в {WEEKS} предыдущие недели звонков не было."]
        if self.quiet:
            return [
                f"Спокойная неделя: все показатели в пределах обычного ({self.reference}), ни один день не выделяется."
            ]
        week = " ".join(_told(f) for f in self.findings) or f"Неделя в целом в пределах обычного ({self.reference})."
        return [week, *(f"Выделяется {d.text()}" for d in self.days)]


def tell(
    week: storymodel.DayFacts,
    previous: Sequence[storymodel.DayFacts],
    stories: Mapping[date, storymodel.Story] | None = None,
) -> WeekStory:
    """The story of ``week`` against the ``previous`` weeks that had calls, with the days of ``stories``
    (each day's own story) that stood out."""
    before = [p for p in previous if p.calls]
    if not week.calls or not before:
        return WeekStory(week.day, week.calls, describe_reference(len(before)), len(before))
    found = changes(week, before)
    return WeekStory(
        week.day,
        week.calls,
        describe_reference(len(before)),
        len(before),
        findings(found, causes(week, before)),
        notable_days(stories or {}),
        tuple(found),
    )
