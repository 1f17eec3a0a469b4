"""The weekly management summary's data: one local Monday–Sunday week against the four weeks before.

``build()`` reads everything notebooks/weekly_summary.ipynb shows; the notebook only formats it
(``weeklyview``), and the Telegram/e-mail message uses the same story and figures:

- **figures**: calls, resolved by the bot, first-contact resolution, quality (the mean score and the
  share of scored calls below the catalogue's ``LOW_QUALITY``), orders, cost per call and per resolved
  call — the week, and the mean and range (lowest to highest) of the weeks before that had calls.
  ``metrics.summary`` of each week (the figures of the daily report and the API) and
  sql/queries/weekly_figures.sql (``weekfigures``); a figure is good or bad news only outside that range.
- **the story** (``weekstory``): what changed most against those weeks, with its cause, and the days
  that stood out, each with the cause its own story (the daily report's) found.
- **the week by day**; **top problems**: the problem-call patterns (``problemcalls``) as shares of the
  week's calls, against their mean share in the weeks before; the rows add up to the problem calls.
- **A/B decisions** taken in the week: ccanalytics's tests stopped with their recorded decision, and
  the call processor's own tests that ended (it records no decision).
- **money saved by each cost lever**: the cost review's figures (``cost.cost_report`` of the baseline
  period against the week) times the week's priced calls; a lever not computed is "не проверялось".

A summary covers some tenants (``tenant=``: a slug or several; default every tenant); the A/B tests are
shared by every tenant, and a scoped summary says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import fmean
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine

from ccanalytics.core import definitions, labels, rutext, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import calls as cost
from ccanalytics.cost import pricing
from ccanalytics.db import tenants
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.experiments import processortests
from ccanalytics.reports import costview, problemcalls, storyfacts, storymodel, weekstory
from ccanalytics.reports.weekfigures import FIGURES, WEEKS, Row, WeekFigures, compare, read_weeks

# the names this module had before the week's figures moved to weekfigures (ccanalytics.weeklyreport imports them)
__all__ = [
    "FIGURES",
    "MESSAGE_FIGURES",
    "NOT_CHECKED",
    "TOP_PROBLEMS",
    "WEEKS",
    "Decision",
    "LeverSaving",
    "Levers",
    "ProblemRow",
    "Row",
    "WeekFigures",
    "WeeklyReport",
    "build",
    "compare",
    "decisions",
    "last_full_week",
    "lever_savings",
    "problem_rows",
    "read_weeks",
    "running_tests",
    "summary_text",
    "week_bounds",
]

TOP_PROBLEMS = 5
NOT_CHECKED = "не проверялось"


def week_bounds(day: date) -> tuple[date, date]:
    """The Monday and the Sunday of the week of ``day``."""
    first = day - timedelta(days=day.weekday())
    return first, first + timedelta(days=6)


def last_full_week(today: date) -> tuple[date, date]:
    """The last Monday–Sunday week that ended before ``today``."""
    return week_bounds(today - timedelta(days=7))


# ---------------------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class ProblemRow:
    title: str
    calls: int
    share_pct: float | None  # of the week's calls
    usual_pct: float | None  # the mean share of the calls in the weeks before that had calls
    cause: str  # the suggested cause in words ("" for the summing rows)


def problem_rows(
    found: Sequence[dict[str, Any]], calls: int, before: Sequence[tuple[Sequence[dict[str, Any]], int]]
) -> tuple[ProblemRow, ...]:
    """The week's ``TOP_PROBLEMS`` largest problem patterns, the rest, and every problem call (last
    row), each as a share of the week's ``calls``, against its mean share of the calls of the weeks
    ``before`` ((problem calls, calls) of each). The rows but the last add up to the last."""
    had = [(problemcalls.patterns(list(f)), n) for f, n in before if n]

    def usual(key: str | None) -> float | None:
        if not had:
            return None
        return fmean(100.0 * sum(p.calls for p in pats if key is None or p.key == key) / n for pats, n in had)

    patterns = problemcalls.patterns(list(found))
    rows = [
        ProblemRow(
            problemcalls.pattern_title(p.key),
            p.calls,
            definitions.rate_pct(p.calls, calls),
            usual(p.key),
            labels.CAUSES.get(p.suggested_cause, labels.OTHER),
        )
        for p in patterns[:TOP_PROBLEMS]
    ]
    rest = sum(p.calls for p in patterns[TOP_PROBLEMS:])
    if rest:
        rows.append(ProblemRow("Остальные проблемы", rest, definitions.rate_pct(rest, calls), None, ""))
    rows.append(
        ProblemRow("Все проблемные звонки", len(found), definitions.rate_pct(len(found), calls), usual(None), "")
    )
    return tuple(rows)


# ---------------------------------------------------------------------------------------- A/B tests
@dataclass(frozen=True)
class Decision:
    test_name: str
    at: datetime  # when the test stopped, in the business time zone
    decision: str  # in words
    note: str | None
    by: str | None


def decisions(engine: Engine, first: date, last: date, *, tz: str) -> tuple[Decision, ...]:
    """The A/B tests that stopped in the days ``first`` … ``last``: ccanalytics's with their recorded
    decision, the call processor's (which records none) with their status."""
    start, end = timeutil.period_bounds(first, last, tz)
    zone = timeutil.zone(tz)
    out = [
        Decision(
            t.test_name,
            t.ended_at.astimezone(zone),
            labels.AB_DECISIONS.get(t.decision or "", "решение не записано"),
            t.decision_note,
            t.stopped_by,
        )
        for t in experiments.list_tests(engine)
        if t.ended_at is not None and start <= t.ended_at < end
    ]
    out += [
        Decision(
            t.test_name, t.ended_at.astimezone(zone), f"{t.status_ru} в процессоре (решение не записано)", None, None
        )
        for t in processortests.processor_tests(engine)
        if t.ended_at is not None and start <= t.ended_at < end
    ]
    return tuple(sorted(out, key=lambda d: (d.at, d.test_name)))


def running_tests(engine: Engine, last: date, *, tz: str) -> tuple[str, ...]:
    """ccanalytics's A/B tests still running at the end of the day ``last``."""
    _start, end = timeutil.period_bounds(last, last, tz)
    return tuple(
        t.test_name
        for t in experiments.list_tests(engine)
        if t.started_at is not None and t.started_at < end and (t.ended_at is None or t.ended_at >= end)
    )


# ---------------------------------------------------------------------------------------- levers
@dataclass(frozen=True)
class LeverSaving:
    lever: str
    title: str
    per_call_usd: float | None  # None: not computed («не проверялось»), never 0
    week_usd: float | None
    pct_of_baseline: float | None
    detail: str  # how it was computed, in Russian

    @property
    def checked(self) -> bool:
        return self.per_call_usd is not None


@dataclass(frozen=True)
class Levers:
    rows: tuple[LeverSaving, ...]
    note: str  # the baseline and the week compared, or why nothing was computed
    checked: bool = False


def _unchecked(why: str) -> Levers:
    return Levers(tuple(LeverSaving(k, t, None, None, None, "—") for k, t in labels.LEVERS.items()), why)


def lever_savings(
    engine: Engine,
    first: date,
    last: date,
    *,
    baseline: str | tuple[date, date] | None,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    scope: tenants.Scope = None,
) -> Levers:
    """What each cost lever saved in the week: the cost review's saving per call (``cost.cost_report``
    of ``baseline`` against the week) times the week's priced calls. A lever the review did not compute
    (no price for it, no baseline) is not checked."""
    if not baseline:
        return _unchecked("Базовый период для рычагов не задан в настройках: экономию не с чем сравнить.")
    try:
        report = cost.cost_report(engine, baseline, (first, last), book=book, tz=tz, tenant=scope)
    except InvalidArgument:
        return _unchecked("Экономию рычагов посчитать нельзя: в базовом периоде или за неделю нет звонков с ценой.")
    priced = report["current"]["priced_calls"]
    by = {lv["lever"]: lv for lv in report["levers"]}
    rows = []
    for key, title in labels.LEVERS.items():
        lv = by.get(key)
        if lv is None:
            rows.append(LeverSaving(key, title, None, None, None, "—"))
            continue
        per_call = lv["saving_per_call_usd"]
        rows.append(
            LeverSaving(
                key,
                title,
                per_call,
                per_call * priced,
                lv["saving_pct_of_baseline"],
                costview.lever_detail(lv["detail"]),
            )
        )
    b, c = report["baseline"], report["current"]
    note = (
        f"База {rutext.period(b['period']['date_from'], b['period']['date_to'])}: "
        f"{rutext.usd(b['cost_per_call_usd'])} на звонок; неделя: {rutext.usd(c['cost_per_call_usd'])}. "
        f"Экономия за неделю — экономия на звонок, умноженная на {rutext.calls_acc(priced)} недели с ценой; "
        "минус — рычаг удорожает звонок."
    )
    return Levers(tuple(rows), note, True)


# ---------------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class WeeklyReport:
    first: date
    last: date
    tz: str
    admin_url: str
    weeks: tuple[WeekFigures, ...]  # the weeks before, oldest first, then the week
    rows: tuple[Row, ...]
    story: weekstory.WeekStory
    days: tuple[storymodel.DayFacts, ...] = ()
    problems: tuple[ProblemRow, ...] = ()
    decisions: tuple[Decision, ...] = ()
    running: tuple[str, ...] = ()
    levers: Levers = field(default_factory=lambda: _unchecked(""))
    scope_label: str = tenants.ALL_LABEL
    tenants: tenants.Scope = None  # after scope_label, whose default reads the module

    @property
    def week(self) -> WeekFigures:
        return self.weeks[-1]

    @property
    def scoped(self) -> bool:
        return self.tenants is not None

    def journal_url(self, first: date | None = None, last: date | None = None, **filters: Any) -> str:
        """The admin's journal of the week (or of ``first`` … ``last``) filtered by ``filters``."""
        query: dict[str, Any] = {
            "from": (first or self.first).isoformat(),
            "to": (last or first or self.last).isoformat(),
            **filters,
        }
        if self.tenants is not None and len(self.tenants) == 1:
            query["tenant"] = self.tenants[0]
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(query)}"

    def call_url(self, call_id: str) -> str:
        return f"{self.admin_url.rstrip('/')}/calls/{call_id}"

    def summary_text(self) -> str:
        """The story and the key figures as plain Russian text (Telegram message, e-mail body)."""
        return _summary_text(self.story, self.rows, self.decisions)


# the figures the message names after the story (the report has them all)
MESSAGE_FIGURES = ("calls", "resolved_pct", "quality", "cost_per_call")


def _summary_text(story: weekstory.WeekStory, rows: Sequence[Row], decided: Sequence[Decision]) -> str:
    compared = story.calls and story.reference_weeks
    lines = [f"Главное за неделю (сравнение: {story.reference}):" if compared else "Главное за неделю:"]
    lines += story.lines()
    lines.append("")
    by = {r.key: r for r in rows}
    figures = [
        f"{r.title.lower()}: {r.formatted()}" + (f" (обычно {r.show(r.mean)})" if r.mean is not None else "")
        for r in (by[k] for k in MESSAGE_FIGURES)
    ]
    lines.append("Коротко: " + "; ".join(figures) + ".")
    if decided:
        lines.append("Решения по A/B-тестам: " + "; ".join(f"«{d.test_name}» — {d.decision}" for d in decided) + ".")
    return "\n".join(lines)


def _story(
    engine: Engine, first: date, *, tz: str, scope: tenants.Scope
) -> tuple[list[WeekFigures], tuple[Row, ...], weekstory.WeekStory]:
    """The weeks, the figures against the weeks before, and the story of the week."""
    weeks = read_weeks(engine, first, tz=tz, scope=scope)
    *before, week = weeks
    days = [first + timedelta(days=i) for i in range(7)]
    stories = {d: storyfacts.story(engine, d, tz=tz, tenant=scope) for d in days}
    story = weekstory.tell(week.facts(), [w.facts() for w in before], stories)
    return weeks, compare(week, before), story


def summary_text(
    engine: Engine, week: date | str, *, tz: str = timeutil.DEFAULT_TZ, tenant: tenants.TenantArg = None
) -> str:
    """``build(...).summary_text()`` without building the rest of the summary (the message that goes
    with a delivered summary), of the week of the day ``week``."""
    first, last = week_bounds(timeutil.to_date(week, tz))
    scope = tenants.scope(engine, tenant)
    _weeks, rows, story = _story(engine, first, tz=tz, scope=scope)
    return _summary_text(story, rows, decisions(engine, first, last, tz=tz))


def build(
    engine: Engine,
    week: date | str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    admin_url: str = "http://127.0.0.1:8050",
    baseline: str | tuple[date, date] | None = None,
    book: pricing.PriceBook | None = None,
    tenant: tenants.TenantArg = None,
) -> WeeklyReport:
    """Everything the weekly summary shows for the Monday–Sunday week of the local day ``week``, for
    ``tenant`` (a slug or several; default every tenant); ``baseline`` ("FROM:TO" or two dates): the
    cost review's baseline the levers' savings are measured against (None: not checked)."""
    first, last = week_bounds(timeutil.to_date(week, tz))
    scope = tenants.scope(engine, tenant)
    weeks, rows, story = _story(engine, first, tz=tz, scope=scope)
    days = storyfacts.read(engine, [first + timedelta(days=i) for i in range(7)], tz=tz, scope=scope)
    before = [(problemcalls.find(engine, w.first, w.last, tz=tz, tenant=scope), w.calls) for w in weeks[:-1] if w.calls]
    return WeeklyReport(
        first=first,
        last=last,
        tz=tz,
        admin_url=admin_url,
        weeks=tuple(weeks),
        rows=rows,
        story=story,
        days=tuple(days[d] for d in sorted(days)),
        problems=problem_rows(problemcalls.find(engine, first, last, tz=tz, tenant=scope), weeks[-1].calls, before),
        decisions=decisions(engine, first, last, tz=tz),
        running=running_tests(engine, last, tz=tz),
        levers=lever_savings(engine, first, last, baseline=baseline, book=book, tz=tz, scope=scope),
        scope_label=tenants.describe(engine, scope),
        tenants=scope,
    )
