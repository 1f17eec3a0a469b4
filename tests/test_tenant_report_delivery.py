"""Each tenant's own scheduled reports (CCA_TENANT_REPORTS) on the demo's two tenants (prokoleso
«ПроКолесо», shinservice «Шинсервіс»): the report jobs send every tenant the report of its own calls to
its own recipients (a real SMTP server, a local Telegram Bot API) and head office the report of every
tenant, once per channel; one tenant failing does not stop the others; the doctor names an unknown
tenant; a bad setting is a one-line error. The clock stands at 08:00 Kyiv the day after the demo's
last day, and the jobs pick "yesterday" from it."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import DEMO_END
from fakechannels import CHAT, FakeTelegram, SMTPServer, channel_settings
from pydantic import ValidationError

from ccanalytics.analytics import metrics
from ccanalytics.cli.root import main
from ccanalytics.core import clock
from ccanalytics.core.config import Settings
from ccanalytics.ops import doctor, jobs

pytestmark = pytest.mark.xdist_group("reports")

KYIV = ZoneInfo("Europe/Kyiv")
REPORT_DAY = date.fromisoformat(DEMO_END)
MORNING_AFTER = datetime.combine(REPORT_DAY + timedelta(days=1), time(8), KYIV)  # the daily job's time
HEAD_OFFICE = ["ops@shop.example", "boss@shop.example"]  # channel_settings' global recipients
PROKOLESO_CHAT = "-1002220000001"


def _settings(url, tmp_path, tenant_reports, **channels) -> Settings:
    return Settings(
        database_url=url,
        reports_dir=tmp_path,
        admin_base_url="https://admin.shop.example",
        tenant_reports=tenant_reports,
        **channel_settings(**channels),
    )


def _plain(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_each_tenant_gets_its_own_report_and_head_office_gets_every_tenants(demo_url, demo_engine, tmp_path):
    day = REPORT_DAY.isoformat()
    calls = {
        t: metrics.summary(demo_engine, REPORT_DAY, REPORT_DAY, tenant=t).total_calls
        for t in (None, "prokoleso", "shinservice")
    }
    assert len(set(calls.values())) == 3  # the figure tells the three reports apart
    with FakeTelegram() as tg, SMTPServer() as smtp, clock.frozen(MORNING_AFTER):
        tg.other_chats.add(PROKOLESO_CHAT)
        settings = _settings(
            demo_url,
            tmp_path,
            {
                "prokoleso": {"emails": ["manager@prokoleso.example"], "telegram_chat_id": PROKOLESO_CHAT},
                "shinservice": {"emails": ["manager@shinservice.example"], "kinds": ["daily", "problems"]},
            },
            tg=tg,
            smtp=smtp,
        )
        run = jobs.daily_report(demo_engine, settings)
        assert run.ran and "failed" not in run.outcome, run.outcome
        assert run.outcome["report"] == str(tmp_path / "daily" / f"{day}.html")
        assert run.outcome["delivery"] == {"email": "sent", "telegram": "sent"}
        mine = run.outcome["tenants"]
        assert list(mine) == ["prokoleso", "shinservice"]
        assert mine["prokoleso"]["delivery"] == {"email": "sent", "telegram": "sent"}
        assert mine["shinservice"]["delivery"] == {"email": "sent"}  # no chat of its own: e-mail only
        for tenant in ("prokoleso", "shinservice"):
            assert mine[tenant]["report"] == str(tmp_path / "daily" / tenant / f"{day}.html")
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.html")) == [
            f"daily/{day}.html",
            f"daily/prokoleso/{day}.html",
            f"daily/shinservice/{day}.html",
        ]

        # e-mail: each recipient list got one message, with its own figures
        by_rcpt = {tuple(r): m for r, m in zip(smtp.mailbox.recipients, smtp.messages, strict=True)}
        assert set(by_rcpt) == {tuple(HEAD_OFFICE), ("manager@prokoleso.example",), ("manager@shinservice.example",)}
        expected = {
            tuple(HEAD_OFFICE): (None, f"Ежедневный отчёт колл-центра за {REPORT_DAY:%d.%m.%Y}"),
            ("manager@prokoleso.example",): ("prokoleso", " — «ПроКолесо»"),
            ("manager@shinservice.example",): ("shinservice", " — «Шинсервіс»"),
        }
        for rcpt, (tenant, subject_end) in expected.items():
            msg = by_rcpt[rcpt]
            assert msg["Subject"].endswith(subject_end)
            assert f"Коротко: звонков: {calls[tenant]};" in _plain(msg)
            attached = [part.get_filename() for part in msg.iter_attachments()]
            assert attached == [f"daily-{day}.html"]
        # Telegram: head office's chat and prokoleso's chat, each its own report
        texts = {str(r.payload["chat_id"]): r.payload["text"] for r in tg.sent("sendMessage")}
        assert set(texts) == {str(CHAT), PROKOLESO_CHAT} and len(tg.sent("sendMessage")) == 2
        assert f"Коротко: звонков: {calls[None]};" in texts[str(CHAT)]
        assert texts[PROKOLESO_CHAT].splitlines()[0].endswith("— «ПроКолесо»")
        assert f"Коротко: звонков: {calls['prokoleso']};" in texts[PROKOLESO_CHAT]
        assert sorted(str(r.payload["chat_id"]) for r in tg.sent("sendDocument")) == sorted([str(CHAT), PROKOLESO_CHAT])
        # the attached page of a tenant is its report: its name in the heading
        html = (tmp_path / "daily" / "shinservice" / f"{day}.html").read_text(encoding="utf-8")
        assert "Сети: «Шинсервіс»." in html

        # the job again (a second scheduler, a catch-up): nothing is rendered or sent again
        again = jobs.daily_report(demo_engine, settings)
        assert again.outcome["skipped"] == "already delivered"
        assert {t: o.get("skipped") for t, o in again.outcome["tenants"].items()} == {
            "prokoleso": "already delivered",
            "shinservice": "already delivered",
        }
        assert len(smtp.messages) == 3 and len(tg.sent("sendMessage")) == 2 and len(tg.sent("sendDocument")) == 2
        marker = json.loads((tmp_path / "daily" / "prokoleso" / f"{day}.sent.json").read_text())
        assert sorted(marker["channels"]) == ["email", "telegram"]


def test_one_tenant_failing_does_not_stop_the_others(demo_url, demo_engine, tmp_path):
    day = REPORT_DAY.isoformat()
    tenant_reports = {
        "prokoleso": {"emails": ["manager@prokoleso.example"], "telegram_chat_id": PROKOLESO_CHAT},
        "ghost": {"emails": ["nobody@ghost.example"], "kinds": ["daily"]},  # no such tenant in the database
        "shinservice": {"emails": ["manager@shinservice.example"], "kinds": ["daily"]},
        "elsewhere": {"emails": ["x@elsewhere.example"], "kinds": ["problems"]},  # not a daily recipient
    }
    with FakeTelegram() as tg, SMTPServer() as smtp, clock.frozen(MORNING_AFTER):
        settings = _settings(demo_url, tmp_path, tenant_reports, tg=tg, smtp=smtp)
        # prokoleso's chat is unknown to the bot (Telegram: 400 chat not found)
        run = jobs.daily_report(demo_engine, settings)
        assert run.ran and run.outcome["failed"] == ["prokoleso", "ghost"]
        assert run.outcome["delivery"] == {"email": "sent", "telegram": "sent"}  # head office: delivered
        mine = run.outcome["tenants"]
        assert list(mine) == ["prokoleso", "ghost", "shinservice"]  # "elsewhere" asked for problems only
        assert mine["prokoleso"]["delivery"]["email"] == "sent"
        assert "chat not found" in mine["prokoleso"]["delivery"]["telegram"]
        assert mine["prokoleso"]["error"].startswith("report not delivered: telegram:")
        assert mine["ghost"] == {"error": "unknown tenant 'ghost': the database has prokoleso, shinservice"}
        assert mine["shinservice"]["delivery"] == {"email": "sent"}
        assert not (tmp_path / "daily" / "ghost").exists() and not (tmp_path / "daily" / "elsewhere").exists()
        assert sorted(tuple(r) for r in smtp.mailbox.recipients) == sorted(
            [tuple(HEAD_OFFICE), ("manager@prokoleso.example",), ("manager@shinservice.example",)]
        )
        # the bot is added to the chat: the next run sends prokoleso only what it missed
        tg.other_chats.add(PROKOLESO_CHAT)
        again = jobs.daily_report(demo_engine, settings)
        assert again.outcome["tenants"]["prokoleso"]["delivery"] == {"email": "already sent", "telegram": "sent"}
        assert again.outcome["tenants"]["shinservice"] == {
            "report": str(tmp_path / "daily" / "shinservice" / f"{day}.html"),
            "skipped": "already delivered",
        }
        assert again.outcome["failed"] == ["ghost"] and len(smtp.messages) == 3
        assert [str(r.payload["chat_id"]) for r in tg.sent("sendMessage")] == [str(CHAT), PROKOLESO_CHAT]

        # the doctor names the unknown tenant and a channel a tenant asks for without a server
        check = doctor.check_tenant_reports(demo_engine, settings)
        known = "(the database has prokoleso, shinservice): its reports are not sent"
        assert (check.status, check.detail) == (
            "fail",
            f"unknown tenant 'ghost' {known}; unknown tenant 'elsewhere' {known}",
        )
        no_bot = settings.model_copy(
            update={"telegram_bot_token": None, "tenant_reports": {"prokoleso": settings.tenant_reports["prokoleso"]}}
        )
        assert doctor.check_tenant_reports(demo_engine, no_bot).detail == (
            "reports of tenant 'prokoleso': Telegram needs CCA_TELEGRAM_BOT_TOKEN"
        )
        ok = settings.model_copy(update={"tenant_reports": {"prokoleso": settings.tenant_reports["prokoleso"]}})
        assert doctor.check_tenant_reports(demo_engine, ok).line() == (
            "ok    tenants     own reports: prokoleso (daily, problems, weekly)"
        )


def test_the_doctor_checks_tenants_only_when_tenants_have_reports(demo_url, tmp_path):
    base = {"database_url": demo_url, "lake_dir": tmp_path / "lake", "reports_dir": tmp_path / "reports"}
    plain = [c.name for c in doctor.run_checks(Settings(**base), timeout=2)]
    assert "tenants" not in plain
    configured = Settings(**base, tenant_reports={"prokolesso": {"emails": ["a@prokoleso.example"]}})
    checks = {c.name: c for c in doctor.run_checks(configured, timeout=2)}
    assert list(checks) == [*plain[:4], "tenants", *plain[4:]]
    assert checks["tenants"].status == "fail"
    assert checks["tenants"].detail.startswith("unknown tenant 'prokolesso' (the database has prokoleso, shinservice)")
    assert "e-mail needs CCA_SMTP_HOST" in checks["tenants"].detail  # no SMTP server configured either


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            '{"prokoleso": {"email": ["a@x.ua"]}}',
            "tenant 'prokoleso': unknown key 'email' (keys: emails, telegram_chat_id, kinds)",
        ),
        ('{"prokoleso": {"emails": ["a.x.ua"]}}', "tenant 'prokoleso': 'a.x.ua' is not an e-mail address"),
        (
            '{"prokoleso": {"emails": ["a@x.ua"], "kinds": ["monthly"]}}',
            "tenant 'prokoleso': unknown report kind 'monthly' (kinds: daily, problems, weekly)",
        ),
        (
            '{"prokoleso": {"kinds": ["daily"]}}',
            "tenant 'prokoleso': no recipients (give emails, telegram_chat_id or both)",
        ),
        (
            '{"Про Колесо": {"emails": ["a@x.ua"]}}',
            "'Про Колесо' is not a tenant slug (latin letters, digits, - and _)",
        ),
        ('["prokoleso"]', 'a JSON object is expected: {"<tenant slug>": {"emails": [...], ...}}'),
        ('{"prokoleso": ', "not valid JSON"),
    ],
)
def test_a_bad_tenant_reports_setting_is_a_one_line_error(value, error, tmp_path):
    env = {"CCA_TENANT_REPORTS": value, "CCA_REPORTS_DIR": str(tmp_path)}
    res = CliRunner().invoke(main, ["db", "status"], env=env)
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: invalid setting CCA_TENANT_REPORTS: {error}"]
    if value.endswith("}") or value.endswith("]"):  # the library's own check, without the CLI
        with pytest.raises(ValidationError, match="tenant_reports"):
            Settings(tenant_reports=json.loads(value))


def test_an_empty_setting_changes_nothing():
    assert Settings(tenant_reports="").tenant_reports == {} == Settings().tenant_reports
    shin = Settings(tenant_reports={" ShinService ": {"telegram_chat_id": -1001}}).tenant_reports
    assert list(shin) == ["shinservice"] and shin["shinservice"].telegram_chat_id == "-1001"
    assert shin["shinservice"].kinds == ("daily", "problems", "weekly") and shin["shinservice"].emails == ()
