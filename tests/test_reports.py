"""Notebook reports end to end on demo data: papermill execution of every notebook, HTML without
code, the problem-call procedure recording a decision, delivery by e-mail (aiosmtpd) and Telegram (a
local Bot API server), and a failing notebook leaving its executed copy and a non-zero exit."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import nbformat
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import DEMO_END
from fakechannels import FakeTelegram, SMTPServer, channel_settings
from mailclients import assert_fits_mail_clients, assert_fits_telegram

from ccanalytics.analytics import checkruns
from ccanalytics.cli.root import main
from ccanalytics.core import timeutil
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import DeliveryError
from ccanalytics.experiments import abresults
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.reports import daily as dailyreport
from ccanalytics.reports import dailyview as reportview
from ccanalytics.reports import run as reporting

pytestmark = pytest.mark.xdist_group("reports")

DAY = date.fromisoformat(DEMO_END)
IMAGES = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
PHONE = re.compile(r"\+?380\d{9}")


def _settings(url, tmp_path, **extra) -> Settings:
    return Settings(database_url=url, reports_dir=tmp_path, admin_base_url="https://admin.shop.example", **extra)


def _visible(html: str) -> str:
    """The report's text without images, styles and tags."""
    text = re.sub(r"<style.*?</style>", "", IMAGES.sub("", html), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def _assert_clean(html: str) -> None:
    assert "import ccanalytics" not in html and "display(" not in html  # code cells are not in the report
    assert not PHONE.search(IMAGES.sub("", html))  # no phone number leaves the admin
    assert "Traceback" not in html and "Error" not in _visible(html)


def test_daily_report_has_every_section_charts_and_links(demo_url, demo_engine, tmp_path):
    with demo_engine.begin() as conn:  # an alert of the day, as ccanalytics.alerts.engine records it
        conn.execute(
            sa.text(
                "INSERT INTO alert_events (rule, key, event, severity, title, message, episode_started_at, created_at) "
                "VALUES ('high_transfer_rate', 'all', 'fired', 'critical', 'Много переводов', "
                "'Переводов 62 % за час', '2026-11-24 10:00+02', '2026-11-24 10:00+02')"
            )
        )
        # the alert job evaluated the rules all day (it notes its runs)
        for hour in (0, 23):
            checkruns.record(conn, "alerts", DAY, datetime.combine(DAY, time(hour, 30), tzinfo=ZoneInfo("Europe/Kyiv")))
    run = reporting.run(demo_engine, _settings(demo_url, tmp_path), "daily", day=DAY)
    r = run.rendered
    assert r.html_path == tmp_path / "daily" / f"{DEMO_END}.html"
    assert r.notebook_path == tmp_path / "daily" / f"{DEMO_END}.ipynb" and r.notebook_path.is_file()
    html = r.html_path.read_text(encoding="utf-8")
    _assert_clean(html)
    text = _visible(html)
    for section in (
        "Главное",
        "Звонки по часам",
        "Сценарии",
        "причины переводов",
        "Качество по критериям",
        "Худшие звонки",
        "Задержки против бюджета",
        "Стоимость звонка",
        "A/B-тесты",
        "Найденные проблемы и алерты",
    ):
        assert section in text, section
    assert len(IMAGES.findall(html)) >= 4  # hourly, scenarios, quality, latency
    assert r.html_bytes < 3 * 1024 * 1024
    with demo_engine.connect() as conn:
        calls = conn.execute(
            sa.text("SELECT count(*) FROM calls WHERE (started_at AT TIME ZONE 'Europe/Kyiv')::date = :d"), {"d": DAY}
        ).scalar_one()
        worst = conn.execute(
            sa.text(
                "SELECT id::text FROM cca_calls WHERE (started_at AT TIME ZONE 'Europe/Kyiv')::date = :d "
                "AND quality_score IS NOT NULL ORDER BY quality_score, started_at LIMIT 1"
            ),
            {"d": DAY},
        ).scalar_one()
    assert f"Звонков {calls} " in text  # the headline card
    assert f'href="https://admin.shop.example/calls/{worst}"' in html  # worst call links to the admin
    assert "A/B-тест «" in text  # the demo's running test
    assert "10:00 сработал Переводов 62 % за час" in text  # alerts fired that day
    # the summary sent with the report carries the same headline, alert and finding counts as the report
    assert f"Коротко: звонков: {calls}; решено ботом: " in run.summary and "Алертов за день: " in run.summary
    assert run.summary.startswith("Главное")  # the story of the day comes first
    assert run.summary == dailyreport.build(demo_engine, DAY).summary_text()
    assert "Алерты за день (проверялось с 00:30 до 23:30)" in text


def test_a_dated_report_says_what_was_never_checked_and_runs_problem_detection_first(demo_engine):
    """A day on which the alert job never ran reads "не проверялось", never "алертов не было"; problem
    detection for the day runs before the report is built; the A/B section is as of that day."""
    day = DAY - timedelta(days=6)  # the demo's order-service outage: problems to find
    with demo_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM quality_findings WHERE day = :d"), {"d": day})
        conn.execute(sa.text("DELETE FROM cca_check_runs WHERE day = :d"), {"d": day})
    quiet = dailyreport.build(demo_engine, day, run_checks=False)
    assert quiet.checks.problems is None and quiet.checks.alerts is None
    assert "Алерты: не проверялось" in quiet.summary_text()
    assert "Автоматический поиск проблем: не проверялось" in quiet.summary_text()
    assert "не проверялось: автоматический поиск проблем" in reportview.problems(quiet).html
    assert "не проверялось: алерты в этот день не вычислялись" in reportview.alerts(quiet).html
    checked = dailyreport.build(demo_engine, day)
    assert checked.checks.problems is not None and checked.findings  # detection ran for the day first
    with demo_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM quality_findings WHERE day = :d"), {"d": day}).scalar()
    assert stored == len(checked.findings)
    # the A/B test as of that day: its results count only the calls up to the day's end
    (test,) = experiments.list_tests(demo_engine, status="running")
    as_of_day = sum(v["calls"] for v in checked.ab_tests[0]["variants"])
    as_of_now = sum(v.to_dict()["calls"] for v in abresults.results(demo_engine, test.id).variants)
    end = timeutil.day_start(day + timedelta(days=1))
    with demo_engine.connect() as conn:
        upto = conn.execute(
            sa.text("SELECT count(*) FROM cca_calls WHERE ab_variant IS NOT NULL AND started_at < :e"), {"e": end}
        ).scalar()
    assert 0 < as_of_day <= upto < as_of_now


def test_problem_calls_procedure_finds_groups_and_records_a_decision(demo_url, demo_engine, tmp_path):
    from ccanalytics.reports import problemcalls
    from ccanalytics.reports import render as reports

    settings = _settings(demo_url, tmp_path)
    found = problemcalls.find(demo_engine, "2026-11-18", DEMO_END)
    patterns = problemcalls.patterns(found)
    assert found and patterns
    top = patterns[0]
    params = {
        "date_from": "2026-11-18",
        "date_to": DEMO_END,
        "analyst": "olena",
        "decisions": [
            {
                "pattern": top.key,
                "cause": top.suggested_cause,
                "action": top.suggested_action,
                "note": "перевірено",
                "call_ids": top.examples,
            },
        ],
    }
    env = {"CCA_DATABASE_URL": demo_url}
    r = reports.render("problems", "with-decision", params, settings.resolved_reports_dir(), env=env)
    html = r.html_path.read_text(encoding="utf-8")
    _assert_clean(html)
    text = _visible(html)
    for step in ("Шаг 1", "Шаг 2", "Шаги 3–4", "Шаг 5"):
        assert step in text
    assert f"Проблемных звонков: {len(found)} " in text
    assert "Клиент" in text and "Бот" in text  # representative transcripts are shown
    with demo_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT pattern, cause, action, created_by, call_ids FROM problem_actions")).all()
        audited = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE action = 'problem_action.recorded' AND actor = 'olena'")
        ).scalar_one()
    assert [(p, c, a, b) for p, c, a, b, _ in rows] == [(top.key, top.suggested_cause, top.suggested_action, "olena")]
    assert sorted(str(x) for x in rows[0].call_ids) == sorted(top.examples)
    assert audited == 1
    # the next run shows the pattern as already handled
    again = reporting.run(demo_engine, settings, "problems", date_from=date(2026, 11, 18), date_to=DAY)
    assert "перевірено" in _visible(again.rendered.html_path.read_text(encoding="utf-8"))


def test_ab_and_cost_reports_render(demo_url, demo_engine, tmp_path):
    settings = _settings(demo_url, tmp_path)
    ab = reporting.run(demo_engine, settings, "ab")
    ab_html = ab.rendered.html_path.read_text(encoding="utf-8")
    text = _visible(ab_html)
    assert "Распределение трафика" in text and "Рекомендация" in text
    # the interval charts are inline SVG, as on the admin's A/B page (nbconvert reorders the attributes)
    svg_tags = re.findall(r"<svg\b[^>]*>", ab_html)
    assert [re.search(r'aria-label="([^"]+)"', t).group(1) for t in svg_tags] == [
        "Оценка качества: среднее и 95 % ДИ",
        "Решено без оператора, %: доля и 95 % ДИ",
    ]
    assert not IMAGES.search(ab_html)
    assert "Где, скорее всего, настоящая разница (95 %)" in text  # one interval, explained in a footnote
    cost = reporting.run(
        demo_engine, settings, "cost", date_from=date(2026, 11, 20), date_to=DAY, baseline="2026-11-15:2026-11-19"
    )
    html = cost.rendered.html_path.read_text(encoding="utf-8")
    _assert_clean(html)
    text = _visible(html)
    assert "База 15.11.2026 — 19.11.2026" in text and "кэш фраз TTS" in text and "Что предзаписать в кэш TTS" in text
    assert cost.rendered.name == "2026-11-20_2026-11-24"


def test_a_failing_notebook_keeps_the_executed_notebook_and_exits_non_zero(demo_url, tmp_path):
    res = CliRunner().invoke(
        main,
        ["report", "cost", "--from", "2026-11-20", "--to", DEMO_END, "--baseline", "2020-01-01:2020-01-31"],
        env={"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)},
    )
    assert res.exit_code == 1
    assert "Error: cost report failed: InvalidArgument: both periods need calls" in res.output
    nb_path = tmp_path / "cost" / "2026-11-20_2026-11-24.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "InvalidArgument"
    assert not (tmp_path / "cost" / "2026-11-20_2026-11-24.html").exists()  # a broken report is never written


def test_report_goes_by_email_and_telegram_once(demo_url, demo_engine, tmp_path):
    with SMTPServer() as smtp, FakeTelegram() as tg:
        settings = _settings(demo_url, tmp_path, **channel_settings(tg, smtp, email_to=["manager@shop.example"]))
        run = reporting.run(demo_engine, settings, "daily", day=DAY, send=["email", "telegram"])
        assert run.delivery == {"email": "sent", "telegram": "sent"}
        [mail] = smtp.messages
        assert mail["Subject"] == "Ежедневный отчёт колл-центра за 24.11.2026"
        assert mail["To"] == "manager@shop.example"
        body = mail.get_body(("html",)).get_content()
        assert "Коротко: звонков:" in body and "во вложении" in body
        [attachment] = list(mail.iter_attachments())
        assert attachment.get_filename() == f"daily-{DEMO_END}.html"
        assert attachment.get_payload(decode=True) == run.rendered.html_path.read_bytes()  # <meta charset=utf-8>
        [message] = tg.sent("sendMessage")
        assert message.payload["text"].startswith("Ежедневный отчёт колл-центра за 24.11.2026")
        assert "решено ботом: " in message.payload["text"] and "Главное" in message.payload["text"]
        [doc] = tg.sent("sendDocument")
        filename, data, _ = doc.files["document"]
        assert filename == f"daily-{DEMO_END}.html" and data == run.rendered.html_path.read_bytes()
        assert_fits_mail_clients(mail)  # Gmail's and Outlook's limits; the attached report opens offline
        assert_fits_telegram(tg)
        marker = json.loads(run.rendered.html_path.with_suffix(".sent.json").read_text())
        assert set(marker["channels"]) == {"email", "telegram"}
        # a scheduled re-run does not send the same report twice
        again = reporting.run(demo_engine, settings, "daily", day=DAY, send=["email", "telegram"], skip_delivered=True)
        assert again.delivery == {"email": "already sent", "telegram": "already sent"}
        assert len(smtp.messages) == 1 and len(tg.sent("sendMessage")) == 1


def test_a_channel_down_fails_the_delivery_but_not_the_other_channel(demo_url, demo_engine, tmp_path, monkeypatch):
    monkeypatch.setattr("ccanalytics.alerts.notify.time.sleep", lambda _s: None)  # retries without waiting
    with SMTPServer() as smtp, FakeTelegram() as tg:
        tg.status = 502
        settings = _settings(demo_url, tmp_path, **channel_settings(tg, smtp))
        with pytest.raises(DeliveryError, match="telegram: Telegram"):
            reporting.run(demo_engine, settings, "daily", day=DAY, send=["email", "telegram"])
        assert len(smtp.messages) == 1
        assert len([r for r in tg.requests if r.method == "sendMessage"]) == 3  # three attempts
        # the outage ends: only Telegram is sent now
        tg.status = 200
        run = reporting.run(demo_engine, settings, "daily", day=DAY, send=["email", "telegram"], skip_delivered=True)
        assert run.delivery == {"email": "already sent", "telegram": "sent"}
        assert len(smtp.messages) == 1 and len(tg.sent("sendDocument")) == 1


def test_cli_report_refuses_an_unconfigured_channel_before_running(demo_url, tmp_path):
    res = CliRunner().invoke(
        main,
        ["report", "daily", "--date", DEMO_END, "--send", "telegram"],
        env={"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)},
    )
    assert res.exit_code == 1
    assert res.output.strip() == (
        "Error: channel not configured: telegram (set CCA_TELEGRAM_BOT_TOKEN and CCA_TELEGRAM_CHAT_ID)"
    )
    assert not (tmp_path / "daily").exists()
    res = CliRunner().invoke(
        main,
        ["report", "daily", "--date", DEMO_END, "--json"],
        env={"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)},
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)["data"]
    assert data["html"] == str(tmp_path / "daily" / f"{DEMO_END}.html") and data["html_bytes"] > 10_000


def test_the_daily_report_job_delivers_once(demo_url, demo_engine, tmp_path):
    from ccanalytics.ops import jobs

    with SMTPServer() as smtp:
        settings = _settings(demo_url, tmp_path, **channel_settings(smtp=smtp))
        first = jobs.daily_report(demo_engine, settings, today=date(2026, 11, 25))
        assert first.ran and first.outcome["delivery"] == {"email": "sent"}
        assert first.outcome["report"] == str(tmp_path / "daily" / f"{DEMO_END}.html")
        again = jobs.daily_report(demo_engine, settings, today=date(2026, 11, 25))
        assert again.outcome["skipped"] == "already delivered"
        assert len(smtp.messages) == 1


def test_report_commands_refuse_bad_periods_before_running(demo_url, tmp_path):
    env = {"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)}
    res = CliRunner().invoke(main, ["report", "problems", "--from", "2026-11-24", "--to", "2026-11-18"], env=env)
    assert res.exit_code == 1 and res.output.strip() == "Error: --from is after --to"
    res = CliRunner().invoke(main, ["report", "cost", "--from", "24.11.2026"], env=env)
    assert res.exit_code == 2 and "Invalid value for '--from'" in res.output
    res = CliRunner().invoke(main, ["report", "problems", "--quality-below", "1.5"], env=env)
    assert res.exit_code == 2 and "--quality-below" in res.output
    assert not any(tmp_path.iterdir())  # nothing rendered, nothing half-written


def test_a_manual_send_run_again_says_when_it_was_sent_and_force_sends_again(demo_url, tmp_path):
    with FakeTelegram() as tg:
        values = channel_settings(tg)
        env = {
            "CCA_DATABASE_URL": demo_url,
            "CCA_REPORTS_DIR": str(tmp_path),
            "CCA_TELEGRAM_BOT_TOKEN": values["telegram_bot_token"],
            "CCA_TELEGRAM_CHAT_ID": values["telegram_chat_id"],
            "CCA_TELEGRAM_API_URL": values["telegram_api_url"],
        }
        args = ["report", "daily", "--date", DEMO_END, "--send", "telegram"]
        first = CliRunner().invoke(main, args, env=env)
        assert first.exit_code == 0, first.output
        assert "telegram: sent" in first.output and len(tg.sent("sendMessage")) == 1
        marker = tmp_path / "daily" / f"{DEMO_END}.sent.json"
        sent_at = json.loads(marker.read_text())["channels"]["telegram"]
        again = CliRunner().invoke(main, args, env=env)
        assert again.exit_code == 0, again.output
        when = datetime.fromisoformat(sent_at).astimezone(ZoneInfo("Europe/Kyiv"))
        assert f"telegram: already sent on {when:%Y-%m-%d %H:%M} — use --force to send again" in again.output
        assert len(tg.sent("sendMessage")) == 1  # nothing sent twice
        forced = CliRunner().invoke(main, [*args, "--force"], env=env)
        assert forced.exit_code == 0 and "telegram: sent" in forced.output
        assert len(tg.sent("sendMessage")) == 2
        record = json.loads(marker.read_text())
        assert record["channels"]["telegram"] == sent_at  # the first delivery is kept
        assert [s["channel"] for s in record["sends"]] == ["telegram", "telegram"]
