"""The weekly management summary (issue 20, item 5): the week against the four weeks before it.

The story of a week as a pure function first; then seven weeks of demo data ending on the Sunday before
the (frozen) clock's Monday: the last week holds the demo's staged days (the order service down on the
Monday, a runaway LLM retry loop on the Wednesday), the week two weeks earlier nothing. The figures
reconcile with the daily figures (cca_daily_stats), the outage day is named with its cause, the quiet
week says so, nothing visible is English or a raw key, and the scheduler sends it on Monday morning once.
Screenshots of the rendered summaries go to test-artifacts/reports/ (printed)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import drop_database, new_database
from fakechannels import FakeTelegram, SMTPServer, channel_settings
from mailclients import assert_fits_mail_clients, assert_fits_telegram
from test_daystory import DAY, WEEKS, normal, outage
from test_report_story import _allowed, shots  # noqa: F401  (shots: the screenshot fixture)
from test_russian_crawl import problems, visible

from ccanalytics.cli.root import main
from ccanalytics.core import clock, labels
from ccanalytics.core.config import Settings
from ccanalytics.cost import calls as cost
from ccanalytics.db.engine import create_engine
from ccanalytics.demo.generator import DEMO_AB_TEST, DEMO_TENANT_SLUGS, SPECIAL_DAY_OFFSETS
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ops import jobs
from ccanalytics.reports import daystory, problemcalls, weekfigures, weeklyview, weekstory
from ccanalytics.reports import run as reporting
from ccanalytics.reports import weekly as weeklyreport

pytestmark = pytest.mark.xdist_group("weekly")

KYIV = ZoneInfo("Europe/Kyiv")
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=KYIV)  # the clock: a Monday, when the scheduler sends the summary
BAD = weeklyreport.last_full_week(NOW.date())  # the week before it, with the demo's staged days
QUIET = weeklyreport.week_bounds(BAD[0] - timedelta(days=14))  # four phase-1 weeks before it, nothing staged
OUTAGE = BAD[1] - timedelta(days=SPECIAL_DAY_OFFSETS["order_status_outage"])
DEMO_DAYS = 49  # QUIET and the four weeks before it, then the week the cost levers started, then BAD
BASELINE = f"{QUIET[0] - timedelta(days=28)}:{QUIET[1]}"  # phase 1: the cost review's baseline
DECIDED = datetime.combine(BAD[0] + timedelta(days=5), time(15, 20), tzinfo=KYIV)  # Saturday of the bad week


# ------------------------------------------------------------------------------- the story, pure
def test_a_week_changes_only_outside_the_weeks_before_and_beyond_the_threshold():
    before = [
        normal(DAY - timedelta(days=7 * w), calls=700, transferred=t, orders=o)
        for w, (t, o) in enumerate([(140, 200), (147, 210), (133, 150), (140, 190)], 1)
    ]
    # outside the range of the weeks before (19–21 %) but within the threshold (8 points): no change
    assert weekstory.changes(normal(DAY, calls=700, transferred=150, orders=190), before) == []
    # 30 % of transfers against a mean of 20 %; 110 orders against a mean of 187,5 (the median is 195)
    found = {c.key: c for c in weekstory.changes(normal(DAY, calls=700, transferred=210, orders=110), before)}
    assert set(found) == {"transferred_pct", "orders"}
    assert found["transferred_pct"].normal == pytest.approx(20.0) and found["transferred_pct"].score == 1.25
    assert found["orders"].normal == 187.5
    assert found["orders"].text() == "заказы: 110 вместо обычных 187,5 (−41 %)"
    # a large move inside the range of the weeks before is their usual scatter
    wide = [*before[:3], normal(DAY - timedelta(days=28), calls=700, transferred=140, orders=100)]
    assert "orders" not in {c.key for c in weekstory.changes(normal(DAY, calls=700, transferred=140, orders=110), wide)}


def test_the_story_of_a_week_names_a_bad_day_and_a_quiet_week_is_one_line():
    weeks = [normal(DAY - timedelta(days=7 * w), calls=700, transferred=140, orders=210) for w in range(1, 5)]
    week = normal(DAY, calls=700, transferred=150, orders=200)
    bad = daystory.tell(outage(), WEEKS, scenario_labels=labels.SCENARIO_CODES, reason_labels=labels.TRANSFER_REASONS)
    quiet = daystory.tell(normal(DAY + timedelta(days=1), calls=104, transferred=22, orders=28), WEEKS)
    # a day whose only change is 1,25 thresholds (its story tells it, the week does not name it)
    mild = daystory.tell(normal(DAY + timedelta(days=2), transferred=30), WEEKS)
    assert mild.changes and not weekstory.notable_days({mild.day: mild})
    story = weekstory.tell(week, weeks, {bad.day: bad, quiet.day: quiet, mild.day: mild})
    assert story.reference == "среднее за 4 предыдущие недели" and story.findings == ()
    first, second = story.lines()
    assert first == "Неделя в целом в пределах обычного (среднее за 4 предыдущие недели)."
    assert second.startswith(
        "Выделяется 18.11 (среда): переводы на оператора: 54,5 % вместо обычных 20,0 % (+34,5 п.п.);"
    )
    assert (
        "Причина: инструменты «статус заказа» (30), «проверка наличия» (15) отвечали ошибкой «сервис недоступен, код 503»"
        in second
    )
    assert weekstory.tell(week, weeks, {quiet.day: quiet, mild.day: mild}).lines() == [
        "Спокойная неделя: все показатели в пределах обычного (среднее за 4 предыдущие недели), ни один день не "
        "выделяется."
    ]
    assert weekstory.tell(week, []).lines() == ["Сравнить не с чем: в 4 предыдущие недели звонков не было."]
    assert weekstory.tell(week, []).reference == "сравнить не с чем"
    assert weekstory.tell(normal(DAY, calls=0, transferred=0), weeks).lines() == ["За неделю звонков нет."]
    assert weekstory.tell(week, weeks[:1]).reference == "прошлая неделя"


def test_weeks_are_monday_to_sunday():
    monday = date(2026, 11, 23)
    assert {weeklyreport.week_bounds(monday + timedelta(days=i)) for i in range(7)} == {(monday, date(2026, 11, 29))}
    assert weeklyreport.last_full_week(date(2026, 11, 30)) == (monday, date(2026, 11, 29))  # on the Monday after
    assert weeklyreport.last_full_week(date(2026, 11, 29)) == (date(2026, 11, 16), date(2026, 11, 22))  # not yet over


# ------------------------------------------------------------------------------- seven demo weeks
@pytest.fixture(scope="module")
def weekly_url(pg_server, template_db, tmp_path_factory):
    """Seven weeks of demo data (60 calls a day) up to the Sunday before NOW, priced, scored, with daily
    stats; the demo's A/B test stopped with a decision on the Saturday of the bad week."""
    from ccanalytics.demo import run as demo

    name, url = new_database(pg_server, template_db)
    url = "postgresql+psycopg" + url[len("postgresql") :]
    engine = create_engine(url, pool_size=2)
    with engine.begin() as conn:  # the demo's database has the demo's tenants only
        conn.execute(sa.text("DELETE FROM tenants"))
    settings = Settings(database_url=url, reports_dir=tmp_path_factory.mktemp("weekly-demo"))
    with clock.frozen(NOW):
        ctx = demo.DemoContext(engine, settings, 7, DEMO_DAYS, 60, BAD[1], lambda _line: None)
        for step, fn in demo.DEMO_STEPS:
            if step in ("load demo calls", "price calls", "score quality", "daily stats"):
                fn(ctx)
    experiments.stop_test(
        engine, DEMO_AB_TEST, by="Олена", decision="ship_b", note="Претендент решает больше звонков без оператора"
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE cca_ab_tests SET ended_at = :at WHERE test_name = :t"), {"at": DECIDED, "t": DEMO_AB_TEST}
        )
    engine.dispose()
    yield url
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def weekly_engine(weekly_url):
    engine = create_engine(weekly_url, pool_size=2)
    yield engine
    engine.dispose()


def _daily_stats(engine, first: date, last: date) -> dict[str, float]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT sum(total_calls) AS calls, sum(resolved_by_bot) AS resolved, sum(transferred) AS transferred, "
                "sum(orders_created) AS orders, sum(scored_calls) AS scored, sum(costed_calls) AS costed, "
                "sum(first_contact_resolved) AS fcr, sum(total_cost_usd) AS cost, "
                "sum(avg_quality_score * scored_calls) / nullif(sum(scored_calls), 0) AS quality, count(*) AS days "
                "FROM cca_daily_stats WHERE stat_date BETWEEN :a AND :b"
            ),
            {"a": first, "b": last},
        ).one()
    return dict(row._mapping)


@pytest.mark.parametrize("week", [BAD, QUIET], ids=["bad-week", "quiet-week"])
def test_the_weekly_figures_reconcile_with_the_daily_figures(weekly_engine, week):
    weeks = weekfigures.read_weeks(weekly_engine, week[0], tz="Europe/Kyiv")
    assert [w.first for w in weeks] == [week[0] - timedelta(days=7 * i) for i in range(4, -1, -1)]
    for w in weeks:
        daily = _daily_stats(weekly_engine, w.first, w.last)
        assert daily["days"] == 7 and w.calls == daily["calls"] > 0
        assert (w.resolved, w.transferred, w.orders, w.scored, w.priced) == (
            daily["resolved"],
            daily["transferred"],
            daily["orders"],
            daily["scored"],
            daily["costed"],
        )
        assert w.resolved_pct == pytest.approx(100 * daily["resolved"] / daily["calls"], abs=0.005)
        assert w.fcr_pct == pytest.approx(100 * daily["fcr"] / daily["calls"], abs=0.005)
        assert w.quality == pytest.approx(daily["quality"], abs=1e-4)
        assert w.total_cost == pytest.approx(daily["cost"], abs=1e-4)
        assert w.cost_per_call == pytest.approx(daily["cost"] / daily["costed"], abs=1e-6)
    # the share below the catalogue's threshold, counted again from the calls
    this = weeks[-1]
    with weekly_engine.connect() as conn:
        low = conn.execute(
            sa.text(
                "SELECT count(*) FROM cca_calls WHERE quality_score < 0.5 AND (started_at AT TIME ZONE "
                "'Europe/Kyiv')::date BETWEEN :a AND :b"
            ),
            {"a": week[0], "b": week[1]},
        ).scalar_one()
    assert this.low_quality == low and this.low_quality_pct == pytest.approx(100 * low / this.scored, abs=0.005)
    # each row compares with the mean and the range of the four weeks before
    rows = {r.key: r for r in weekfigures.compare(this, weeks[:-1])}
    before = [w.calls for w in weeks[:-1]]
    assert rows["calls"].mean == sum(before) / 4 and (rows["calls"].low, rows["calls"].high) == (
        min(before),
        max(before),
    )


def test_the_week_by_day_and_the_problems_add_up(weekly_engine):
    rep = weeklyreport.build(weekly_engine, BAD[0] + timedelta(days=3), baseline=BASELINE)
    assert (rep.first, rep.last) == BAD
    assert [d.day for d in rep.days] == [BAD[0] + timedelta(days=i) for i in range(7)]
    assert sum(d.calls for d in rep.days) == rep.week.calls and sum(d.orders for d in rep.days) == rep.week.orders
    *parts, total = rep.problems
    found = problemcalls.find(weekly_engine, *BAD)
    assert total.title == "Все проблемные звонки" and total.calls == len(found) == sum(p.calls for p in parts)
    assert total.share_pct == pytest.approx(100 * len(found) / rep.week.calls, abs=0.005)
    for p in parts:  # shares of the week's calls, not of the problem calls
        assert p.share_pct == pytest.approx(100 * p.calls / rep.week.calls, abs=0.005)
    # the view adds them up the same way, and its total row is the week's
    cells = re.findall(r"<td[^>]*>(.*?)</td>", weeklyview.by_day(rep)[0].html)
    assert "Итого за неделю" in cells


def test_the_bad_week_names_the_outage_day_and_its_cause(weekly_engine):
    rep = weeklyreport.build(weekly_engine, BAD[0], baseline=BASELINE, admin_url="https://admin.shop.example")
    story = rep.story
    assert not story.quiet and story.reference == "среднее за 4 предыдущие недели"
    named = {d.day: d for d in story.days}
    assert OUTAGE in named, story.lines()
    outage_day = named[OUTAGE]
    assert outage_day.finding is not None and outage_day.finding.cause.kind == "tool"
    line = next(x for x in story.lines() if x.startswith(f"Выделяется {OUTAGE:%d.%m} (понедельник): "))
    assert "переводы на оператора" in line and "«статус заказа»" in line and "«сервис недоступен, код 503»" in line
    # the week cost more than any of the four before (Whisper's GPU at this volume, the retry loop): red
    rows = {r.key: r for r in rep.rows}
    assert rows["cost_per_call"].value > rows["cost_per_call"].high and rows["cost_per_call"].tone() == "bad"
    assert rows["calls"].tone() == "neutral"  # neither more nor fewer calls is good or bad news
    # the message tells the same story first, plainly and shortly
    message = rep.summary_text()
    assert message.splitlines()[0] == "Главное за неделю (сравнение: среднее за 4 предыдущие недели):"
    assert line in message.splitlines() and len(message.splitlines()) <= 8 and "<" not in message
    assert message == weeklyreport.summary_text(weekly_engine, BAD[1])
    # the report links the outage day's calls in the journal
    html = weeklyview.story(rep).html
    assert f"https://admin.shop.example/calls?from={OUTAGE}&amp;to={OUTAGE}&amp;transferred=yes" in html


def test_the_quiet_week_says_so(weekly_engine):
    rep = weeklyreport.build(weekly_engine, QUIET[1])
    assert rep.story.quiet, rep.story.lines()
    assert rep.story.lines() == [
        "Спокойная неделя: все показатели в пределах обычного (среднее за 4 предыдущие недели), ни один день не "
        "выделяется."
    ]
    assert all(r.tone() == "neutral" for r in rep.rows)  # nothing outside the range of the weeks before
    assert rep.decisions == () and rep.summary_text().splitlines()[1] == rep.story.lines()[0]


def test_ab_decisions_and_the_money_each_lever_saved(weekly_engine):
    rep = weeklyreport.build(weekly_engine, BAD[0], baseline=BASELINE)
    (decision,) = rep.decisions
    assert (decision.test_name, decision.decision, decision.by) == (DEMO_AB_TEST, "внедрить претендента", "Олена")
    assert decision.at == DECIDED and decision.at.utcoffset() == timedelta(hours=2)  # Kyiv time, not UTC
    assert "Решения по A/B-тестам: «tire_agent-v1-vs-v2» — внедрить претендента." in rep.summary_text()
    # the cost review's figures: its saving per call times the week's priced calls
    review = cost.cost_report(weekly_engine, BASELINE, BAD)
    priced = review["current"]["priced_calls"]
    assert priced == rep.week.priced
    by = {lv.lever: lv for lv in rep.levers.rows}
    assert list(by) == list(labels.LEVERS)
    for lv in review["levers"]:
        assert by[lv["lever"]].checked
        assert by[lv["lever"]].week_usd == pytest.approx(lv["saving_per_call_usd"] * priced)
    assert by["stt_provider"].week_usd < 0  # Whisper's fixed cost at this volume costs more than it saves
    # without a baseline no lever was checked: «не проверялось», never a zero
    bare = weeklyreport.lever_savings(weekly_engine, *BAD, baseline=None)
    assert not any(lv.checked for lv in bare.rows)
    text = visible("".join(b.html for b in weeklyview.levers(replace(rep, levers=bare))))[0]
    assert text.count("не проверялось") == 3 * len(labels.LEVERS) and "$0" not in text


def test_a_tenant_s_week_is_its_calls(weekly_engine):
    weeks = {
        slug: weekfigures.read_weeks(weekly_engine, BAD[0], tz="Europe/Kyiv", scope=(slug,))[-1]
        for slug in DEMO_TENANT_SLUGS
    }
    every = weekfigures.read_weeks(weekly_engine, BAD[0], tz="Europe/Kyiv")[-1]
    assert all(0 < w.calls < every.calls for w in weeks.values())
    assert sum(w.calls for w in weeks.values()) == every.calls
    assert sum(w.orders for w in weeks.values()) == every.orders


def test_the_summary_reads_in_russian_on_a_bad_and_a_quiet_week(weekly_url, weekly_engine, tmp_path, shots):  # noqa: F811
    settings = Settings(
        database_url=weekly_url,
        reports_dir=tmp_path,
        admin_base_url="https://admin.shop.example",
        cost_baseline=BASELINE,
    )
    bad = reporting.run(weekly_engine, settings, "weekly", week=OUTAGE)
    assert bad.rendered.html_path == tmp_path / "weekly" / f"{BAD[0]}_{BAD[1]}.html"
    assert bad.subject == f"Недельная сводка колл-центра за {BAD[0]:%d.%m} — {BAD[1]:%d.%m.%Y}"
    # the quiet week from the command line, without a cost baseline
    res = CliRunner().invoke(
        main,
        ["report", "weekly", "--week", str(QUIET[0]), "--json"],
        env={"CCA_DATABASE_URL": weekly_url, "CCA_REPORTS_DIR": str(tmp_path), "CCA_COST_BASELINE": ""},
    )
    assert res.exit_code == 0, res.output
    quiet_html = tmp_path / "weekly" / f"{QUIET[0]}_{QUIET[1]}.html"
    assert json.loads(res.output)["data"]["html"] == str(quiet_html)
    allowed = _allowed(weekly_engine)
    found = {}
    for name, path, message in (
        ("weekly-bad-week", bad.rendered.html_path, bad.summary),
        ("weekly-quiet-week", quiet_html, ""),
    ):
        text, _links = visible(path.read_text(encoding="utf-8"))
        found[name] = problems(text, allowed) + problems(message, allowed)
        assert "(время — Киев)" in text and "Недельная сводка колл-центра" in text
        shots(path, name)
    assert found == {"weekly-bad-week": [], "weekly-quiet-week": []}
    bad_text = visible(bad.rendered.html_path.read_text(encoding="utf-8"))[0]
    assert f"Выделяется {OUTAGE:%d.%m} (понедельник)" in bad_text and "сервис недоступен" in bad_text
    assert "внедрить претендента" in bad_text and "Сэкономлено за неделю" in bad_text
    quiet_text = visible(quiet_html.read_text(encoding="utf-8"))[0]
    assert "Спокойная неделя" in quiet_text and "не проверялось" in quiet_text


def test_the_cli_refuses_bad_input_before_running(weekly_url, tmp_path):
    env = {"CCA_DATABASE_URL": weekly_url, "CCA_REPORTS_DIR": str(tmp_path)}
    res = CliRunner().invoke(main, ["report", "weekly", "--week", "30.11.2026"], env=env)
    assert res.exit_code == 2 and "Invalid value for '--week'" in res.output
    res = CliRunner().invoke(main, ["report", "weekly", "--tenant", "nope"], env=env)
    assert res.exit_code == 1 and res.output.startswith("Error: unknown tenant 'nope'")
    assert not any(tmp_path.iterdir())


def test_the_scheduler_sends_it_on_monday_morning_once(weekly_url, weekly_engine, tmp_path):
    from apscheduler.triggers.cron import CronTrigger

    from scheduler.app import build, catch_up

    fn, trigger, args = jobs.SCHEDULE["report_weekly"]
    assert fn is jobs.weekly_report and trigger == "cron"
    fire = CronTrigger(timezone=KYIV, **args).get_next_fire_time(None, NOW - timedelta(days=4))
    assert fire == NOW  # from the Thursday before: the next run is Monday 09:00 Kyiv
    with SMTPServer() as smtp, FakeTelegram() as tg:
        settings = Settings(
            database_url=weekly_url,
            reports_dir=tmp_path,
            cost_baseline=BASELINE,
            **channel_settings(tg, smtp, email_to=["manager@shop.example"]),
        )
        # a scheduler started later that Monday catches the run up, as of that Monday
        scheduler = build(weekly_engine, settings, background=True, catch_up_missed=False)
        scheduler.start(paused=True)
        try:
            planned = dict(catch_up(scheduler, weekly_engine, settings, now=NOW + timedelta(hours=2)))
            assert planned["report_weekly"] == NOW
            assert scheduler.get_job("report_weekly:catch-up").kwargs == {"today": NOW.date()}
        finally:
            scheduler.shutdown(wait=False)
        run = jobs.weekly_report(weekly_engine, settings, today=NOW.date())
        assert run.ran and run.outcome["delivery"] == {"email": "sent", "telegram": "sent"}
        assert run.outcome["report"] == str(tmp_path / "weekly" / f"{BAD[0]}_{BAD[1]}.html")
        [mail] = smtp.messages
        assert mail["Subject"] == f"Недельная сводка колл-центра за {BAD[0]:%d.%m} — {BAD[1]:%d.%m.%Y}"
        (text,) = tg.texts()
        assert f"Выделяется {OUTAGE:%d.%m} (понедельник)" in text and len(tg.sent("sendDocument")) == 1
        assert_fits_mail_clients(mail)
        assert_fits_telegram(tg)
        again = jobs.weekly_report(weekly_engine, settings, today=NOW.date() + timedelta(days=2))  # same week
        assert again.outcome["skipped"] == "already delivered"
        assert len(smtp.messages) == 1 and len(tg.sent("sendMessage")) == 1
