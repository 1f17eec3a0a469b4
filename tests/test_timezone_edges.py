"""Config at the edges: the one Settings' time zone (CCA_TIMEZONE) reaches the admin, the scheduler
and the reports alike, whichever way the app is built (``create_app(settings=…)``, the environment,
``ccanalytics serve``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from click.testing import CliRunner
from factories import make_call
from test_auth import logged_in

from ccanalytics.cli.root import main
from ccanalytics.core import clock
from ccanalytics.core.config import Settings
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import jobs
from ccanalytics.reports import daily as dailyreport
from scheduler.app import build
from webapp import app_settings, create_app

NEW_YORK = "America/New_York"
CALL_AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 22:00 on 19.11 in New York, 05:00 on 20.11 in Kyiv
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 07:00 in New York: "today" is the 20th everywhere
NY_DAY = CALL_AT.astimezone(ZoneInfo(NEW_YORK)).date()
UTC_DAY = CALL_AT.date()


def _journal_ids(client, day: date) -> str:
    res = client.get(f"/calls?from={day}&to={day}")
    assert res.status_code == 200, res.get_data(as_text=True)[:500]
    return res.get_data(as_text=True)


def test_new_york_settings_put_a_call_on_the_same_day_in_the_admin_scheduler_and_report(engine, monkeypatch):
    assert NY_DAY < UTC_DAY  # the premise: the call is on the previous day in New York
    monkeypatch.setenv("CCA_TIMEZONE", NEW_YORK)
    settings = Settings()
    call = make_call(started_at=CALL_AT)
    ingest_records(engine, [call])

    app = create_app({"ENGINE": engine, "TESTING": True}, settings=settings)
    assert app_settings(app) is settings and app.config["TIMEZONE"] == NEW_YORK
    client = logged_in(app, engine, "admin", "admin")
    # the journal's date filter: New York days
    assert call["call_id"] in _journal_ids(client, NY_DAY)
    assert call["call_id"] not in _journal_ids(client, UTC_DAY)

    # daily figures computed by the scheduler's job, "today" from the injected clock
    with clock.frozen(NOW):
        assert jobs.refresh_daily_stats(engine, settings).ran
    with engine.connect() as conn:
        per_day = dict(
            conn.execute(sa.text("SELECT stat_date, sum(total_calls) FROM cca_daily_stats GROUP BY stat_date")).all()
        )
    assert per_day.get(NY_DAY) == 1 and not per_day.get(UTC_DAY)

    # the daily report of that day
    report = dailyreport.build(engine, NY_DAY, tz=settings.timezone, run_checks=False)
    assert report.summary.total_calls == 1
    assert dailyreport.build(engine, UTC_DAY, tz=settings.timezone, run_checks=False).summary.total_calls == 0

    # the scheduler runs its cron jobs in New York time: the daily report at 08:00 there
    scheduler = build(engine, settings, background=True, catch_up_missed=False)
    assert str(scheduler.timezone) == NEW_YORK
    fire = scheduler.get_job("report_daily").trigger.get_next_fire_time(None, CALL_AT)
    assert fire.astimezone(ZoneInfo(NEW_YORK)).replace(tzinfo=None) == datetime(2026, 11, 20, 8, 0)


def test_an_app_without_settings_reads_the_environment_once(engine, monkeypatch):
    monkeypatch.setenv("CCA_TIMEZONE", NEW_YORK)
    app = create_app({"ENGINE": engine, "TESTING": True})
    assert app.config["TIMEZONE"] == NEW_YORK and app_settings(app).timezone == NEW_YORK
    monkeypatch.setenv("CCA_TIMEZONE", "Asia/Tokyo")  # read at creation, not per request
    assert app.config["TIMEZONE"] == NEW_YORK
    assert create_app({"ENGINE": engine, "TESTING": True, "TIMEZONE": "UTC"}).config["TIMEZONE"] == "UTC"


def test_serve_gives_its_settings_to_every_worker_app(db_url, monkeypatch):
    import webapp.serving

    built = []

    def fake_serve(make_app, options):
        built.append(make_app())

    monkeypatch.setenv("CCA_DATABASE_URL", db_url)
    monkeypatch.setenv("CCA_TIMEZONE", NEW_YORK)
    monkeypatch.setenv("CCA_SECRET_KEY", "k" * 32)
    monkeypatch.setattr(webapp.serving, "serve", fake_serve)
    res = CliRunner().invoke(main, ["serve", "--workers", "1", "--threads", "1"])
    assert res.exit_code == 0, res.output
    (app,) = built
    assert app.config["TIMEZONE"] == NEW_YORK and app_settings(app).timezone == NEW_YORK
    app.extensions["cca"]["engine"].dispose()
