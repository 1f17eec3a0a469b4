"""Reports a manager acts on, on the demo data (issue 20): the daily story finds the staged outage and
its cause, a quiet day says so in one line, the problem-call shares are of calls and add up, and no
report shows an English word or a raw key. Each report is rendered and photographed in Chromium on the
outage day, a quiet day and a week: the screenshots go to test-artifacts/reports/ (printed)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import DEMO_END
from systools import real_clock_env, require
from test_russian_crawl import WORD, problems, visible

from ccanalytics.core.config import Settings
from ccanalytics.demo.generator import OUTAGE_WINDOW, SPECIAL_DAY_OFFSETS
from ccanalytics.reports import daily as dailyreport
from ccanalytics.reports import dailyview as reportview
from ccanalytics.reports import problemcalls, problemview, storyfacts
from ccanalytics.reports import run as reporting

pytestmark = pytest.mark.xdist_group("reports")

LAST = date.fromisoformat(DEMO_END)
OUTAGE = LAST - timedelta(days=SPECIAL_DAY_OFFSETS["order_status_outage"])
QUIET = OUTAGE + timedelta(days=1)  # the day after the outage: nothing staged
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "reports"


def test_the_story_finds_the_staged_outage_and_its_cause(demo_engine):
    story = storyfacts.story(demo_engine, OUTAGE)
    first = story.findings[0]
    assert first.bad and first.cause is not None and first.cause.kind == "tool"
    changed = {c.key: c for c in first.changes}
    assert changed["transferred_pct"].value > changed["transferred_pct"].normal  # more transfers …
    assert changed["orders"].value < 0.5 * changed["orders"].normal  # … and the orders collapsed
    text = first.text()
    assert "«статус заказа»" in text and "ошибкой «сервис недоступен, код 503»" in text
    # the failing window found in the data lies inside the staged one
    first_at, last_at = re.search(r"с (\d\d:\d\d) до (\d\d:\d\d)", first.cause.text).groups()
    assert OUTAGE_WINDOW[0].strftime("%H:%M") <= first_at < last_at <= "21:00"
    # its size is the calls that really hit the failing service that day (the database says so)
    with demo_engine.connect() as conn:
        hit = conn.execute(
            sa.text(
                "SELECT count(DISTINCT (t.call_id, t.tool_name)) FROM call_tool_calls t JOIN calls c ON c.id = t.call_id "
                "WHERE NOT t.success AND t.tool_result->>'error' = 'upstream_unavailable' "
                "AND (c.started_at AT TIME ZONE 'Europe/Kyiv')::date = :d"
            ),
            {"d": OUTAGE},
        ).scalar_one()
    assert hit and first.cause.calls == hit
    assert f"{hit} звонков наткнулись на сбой" in text or f"{hit} звонка наткнулись на сбой" in text
    # the report and its message tell the same story first, with links to those calls
    rep = dailyreport.build(demo_engine, OUTAGE, admin_url="https://admin.shop.example")
    assert rep.summary_text().splitlines()[1] == story.lines()[0]
    html = reportview.story(rep).html
    assert f"https://admin.shop.example/calls?from={OUTAGE}&amp;to={OUTAGE}&amp;transferred=yes" in html
    assert f'href="https://admin.shop.example/calls/{first.cause.examples[0]}"' in html
    # the cost tile is not green on the worst day: cheaper calls because less was done
    cost_tile = reportview.headline(rep).html
    assert "Стоимость звонка: дешевле, потому что меньше сделано" in visible(cost_tile)[0]


def test_a_quiet_day_says_so_in_one_line(demo_engine):
    story = storyfacts.story(demo_engine, QUIET)
    assert story.quiet, story.lines()
    (line,) = story.lines()
    assert line.startswith("Спокойный день: все показатели в пределах обычного (медиана ")
    rep = dailyreport.build(demo_engine, QUIET)
    assert rep.summary_text().splitlines()[:2] == ["Главное:", line]


def _cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    cells = [[visible(c)[0] for c in re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)] for r in rows]
    return [c for c in cells if c]  # the head row has <th> cells only


def _int(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def _pct(text: str) -> float:
    return float(text.replace("\u202f", "").replace(" %", "").replace(",", ".").replace("\u2212", "-"))


def test_problem_shares_are_of_calls_and_add_up(demo_engine):
    first = LAST - timedelta(days=6)
    found = problemcalls.find(demo_engine, first, LAST)
    per_day = problemcalls.calls_per_day(demo_engine, first, LAST)
    total = sum(per_day.values())
    # the overview: the main problems add up to the problem calls and their shares to 100 %
    table = next(b for b in problemview.overview(found, total) if hasattr(b, "html") and "<table" in b.html)
    rows = _cells(table.html)
    *flags, grand = rows
    assert grand[0] == "Итого" and _int(grand[3]) == len(found) == sum(_int(r[3]) for r in flags)
    assert sum(_pct(r[4]) for r in flags) == pytest.approx(100, abs=0.3)
    for r in flags:  # a sign's share is of every call of the period, not of the flags
        assert _pct(r[2]) == pytest.approx(100 * _int(r[1]) / total, abs=0.05)
    # by day: each row adds up to its problem calls, shares are of the day's calls, the total row sums
    by_day = problemview.by_day(found, per_day)[0].html
    *days, totals = _cells(by_day)
    for r in days:
        assert _int(r[2]) == sum(_int(x) for x in r[4:])
        assert _int(r[1]) == 0 or _pct(r[3]) == pytest.approx(100 * _int(r[2]) / _int(r[1]), abs=0.05)
    assert _int(totals[1]) == total and _int(totals[2]) == len(found)
    assert [_int(x) for x in totals[4:]] == [sum(_int(r[i]) for r in days) for i in range(4, len(totals))]
    # the outage day stands out: most of the week's tool errors are from it
    outage = next(r for r in days if r[0].startswith(f"{OUTAGE:%d.%m}"))
    assert _pct(outage[3]) == max(_pct(r[3]) for r in days)
    # the patterns add up to the problem calls and their shares to 100 %
    patterns = problemcalls.patterns(found)
    *prow, ptotal = _cells(problemview.patterns_table(patterns, total).html)
    assert _int(ptotal[2]) == len(found) == sum(_int(r[2]) for r in prow)
    assert sum(_pct(r[3]) for r in prow) == pytest.approx(100, abs=0.5)


def _allowed(engine) -> set[str]:
    """Names chosen by people that a report shows as they are: prompt, test and tenant names, models,
    and the customers' words quoted in transcripts and TTS phrases."""
    names = {"whisper", "google", "store", "gpu", "a/b"}
    with engine.connect() as conn:
        for sql in (
            "SELECT DISTINCT name FROM prompt_versions",
            "SELECT test_name FROM cca_ab_tests",
            "SELECT DISTINCT name FROM tenants",
            "SELECT DISTINCT content FROM call_turns",
            "SELECT DISTINCT coalesce(prompt_version, '') FROM cca_calls",
            "SELECT DISTINCT coalesce(cost_breakdown->>'llm_model', '') FROM cca_calls",
        ):
            for row in conn.execute(sa.text(sql)).scalars():
                for word in WORD.findall(row or ""):
                    names.add(word.lower())
                    names.update(p.lower() for p in re.split(r"[-_.'’@]", word))
    return names


@pytest.fixture
def shots():
    from playwright.sync_api import sync_playwright

    chromium = require("chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots: {SHOTS}")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"], env=real_clock_env()
        )
        page = browser.new_page(locale="ru-RU", viewport={"width": 1100, "height": 900})

        def shoot(path: Path, name: str) -> None:
            page.goto(path.as_uri())
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

        yield shoot
        browser.close()


def test_every_report_reads_in_russian_on_the_outage_day_a_quiet_day_and_a_week(demo_url, demo_engine, tmp_path, shots):
    settings = Settings(database_url=demo_url, reports_dir=tmp_path, admin_base_url="https://admin.shop.example")
    week = (LAST - timedelta(days=6), LAST)
    runs = {
        "daily-outage": reporting.run(demo_engine, settings, "daily", day=OUTAGE),
        "daily-quiet": reporting.run(demo_engine, settings, "daily", day=QUIET),
        "problems-week": reporting.run(demo_engine, settings, "problems", date_from=week[0], date_to=week[1]),
        "problems-outage-day": reporting.run(demo_engine, settings, "problems", date_from=OUTAGE, date_to=OUTAGE),
        "ab": reporting.run(demo_engine, settings, "ab"),
        "cost-week": reporting.run(
            demo_engine,
            settings,
            "cost",
            date_from=week[0],
            date_to=week[1],
            baseline=f"{LAST - timedelta(days=9)}:{week[0] - timedelta(days=1)}",
        ),
    }
    allowed = _allowed(demo_engine)
    found = {}
    for name, run in runs.items():
        html = run.rendered.html_path.read_text(encoding="utf-8")
        text, _links = visible(html)
        found[name] = problems(text, allowed) + problems(run.summary, allowed)
        shots(run.rendered.html_path, name)
        assert "(время — Киев)" in text  # the footer's time is Kyiv's
    assert found == {name: [] for name in runs}
    outage = visible(runs["daily-outage"].rendered.html_path.read_text(encoding="utf-8"))[0]
    assert "Что изменилось против обычного дня" in outage and "сервис недоступен" in outage
    quiet = visible(runs["daily-quiet"].rendered.html_path.read_text(encoding="utf-8"))[0]
    assert "Спокойный день" in quiet
    problems_text = visible(runs["problems-week"].rendered.html_path.read_text(encoding="utf-8"))[0]
    assert "Проблемные звонки по дням" in problems_text
    assert "параметр" not in problems_text and "problem_actions" not in problems_text
    ab = visible(runs["ab"].rendered.html_path.read_text(encoding="utf-8"))[0]
    assert "(Киев)" in ab and "Обычный 95-процентный интервал" in ab
    # the message is plain and short: the story, one line of figures, the checks
    message = runs["daily-outage"].summary
    assert len(message.splitlines()) <= 8 and "<" not in message
