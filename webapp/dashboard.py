"""The dashboard (Russian UI): key numbers of a day against a normal day (the 7 days before it),
quality and cost trends, the latest alerts, running A/B tests, the review queue, and links to (and
an embedded panel of) the Grafana dashboards when ``GRAFANA_URL`` is configured. Thin: ccanalytics
computes everything, over the tenants chosen in the header (webapp/tenancy.py); running A/B tests are
shared by every tenant."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template, request
from markupsafe import Markup

from ccanalytics.alerts import engine as alerts
from ccanalytics.alerts import messages as alert_messages
from ccanalytics.analytics import metrics
from ccanalytics.core import definitions, labels, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.quality.report import quality_report
from ccanalytics.reports import costview, svgcharts
from ccanalytics.reports import daily as dailyreport

from . import app_settings, tenancy
from .db import get_engine
from .prompts import page_context

bp = Blueprint("dashboard", __name__)
bp.context_processor(page_context)

WEEK = definitions.COMPARISON_DAYS
DEFAULT_TREND_DAYS, MAX_TREND_DAYS = 30, 120
ALERTS_SHOWN = 20
# the provisioned dashboards (grafana/dashboards/*.json): uid, title
GRAFANA_DASHBOARDS = (
    ("cca-realtime", "Реальное время"),
    ("cca-analytics", "Аналитика по дням"),
    ("cca-quality-cost", "Качество и стоимость"),
)
GRAFANA_EMBEDDED = "cca-realtime"
EVENTS_RU = labels.ALERT_EVENTS


@bp.record_once
def _grafana_setting(state) -> None:
    """``GRAFANA_URL`` from the CCA_* settings unless the app's config already has it."""
    if "GRAFANA_URL" not in state.app.config:
        state.app.config["GRAFANA_URL"] = app_settings(state.app).grafana_url


def grafana_base() -> str | None:
    """The configured Grafana address, if it is a plain http(s) URL (anything else is ignored)."""
    url = (current_app.config.get("GRAFANA_URL") or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in "\"'<> \\"):
        return None
    return url.rstrip("/")


def _day(tz: str) -> date:
    raw = request.args.get("day", "").strip()
    try:
        day = timeutil.to_date(raw, tz) if raw else timeutil.today(tz)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, ru=f"«День»: нужна дата в виде ГГГГ-ММ-ДД, а не «{raw[:40]}».") from None
    if not date(2000, 1, 1) <= day <= date(2100, 12, 31):
        raise InvalidArgument(
            "day must be between 2000-01-01 and 2100-12-31",
            ru="«День»: дата должна быть между 01.01.2000 и 31.12.2100.",
        )
    return day


def _trend_days() -> int:
    raw = request.args.get("days", str(DEFAULT_TREND_DAYS)).strip()
    if not raw.isascii() or not raw.isdigit() or not WEEK <= int(raw) <= MAX_TREND_DAYS:
        raise InvalidArgument(
            f"days must be a whole number from {WEEK} to {MAX_TREND_DAYS}",
            ru=f"«Тренды за»: нужно целое число дней от {WEEK} до {MAX_TREND_DAYS}.",
        )
    return int(raw)


def _charts(quality: dict[str, Any], costs: list[dict[str, Any]], first: date, last: date) -> list[Markup]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    out = []
    scores = {row["date"]: row["avg_score"] for row in quality["trend"]}
    if any(v is not None for v in scores.values()):
        chart = svgcharts.trend(
            days,
            {"средняя оценка": [scores.get(d.isoformat()) for d in days]},
            title="Качество звонков по дням (0–1)",
            ylim=(0, 1),
        )
        out.append(Markup(chart))
    per_call = {row["day"]: row["per_call"] for row in costs}
    if per_call:
        chart = svgcharts.trend(
            days, {"на звонок": [per_call.get(d) for d in days]}, title="Стоимость звонка по дням", unit="USD"
        )
        out.append(Markup(chart))
    return out


@bp.get("/dashboard")
def index():
    tz = current_app.config["TIMEZONE"]
    day, trend_days = _day(tz), _trend_days()
    engine = get_engine()
    scope = tenancy.scope()
    today = metrics.summary(engine, day, day, tz=tz, tenant=scope)
    week_first, week_last = definitions.comparison_window(day)
    first = day - timedelta(days=trend_days - 1)
    quality = quality_report(engine, first, day, tz=tz, tenant=scope)
    costs = costview.daily(engine, first, day, tz, tenant=scope)
    # alerts are evaluated over every tenant together: shown on the page of every tenant only
    events = alerts.history(engine, limit=ALERTS_SHOWN) if scope is None else None
    numbers = dailyreport.day_against_normal(engine, day, tz=tz, partial=day == timeutil.today(tz), tenant=scope)
    return render_template(
        "dashboard.html",
        day=day,
        is_today=day == timeutil.today(tz),
        trend_days=trend_days,
        numbers=numbers,
        summary=today,
        week_first=week_first,
        week_last=week_last,
        quality=quality,
        charts=_charts(quality, costs, first, day),
        events=events,
        events_ru=EVENTS_RU,
        icons=alert_messages.SEVERITY_ICON,
        running=experiments.list_tests(engine, status="running"),
        grafana=grafana_base(),
        grafana_dashboards=GRAFANA_DASHBOARDS,
        grafana_embedded=GRAFANA_EMBEDDED,
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
    )
