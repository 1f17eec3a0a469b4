"""The overview page: headline numbers of the last days and the latest calls, of the tenants chosen in
the header (webapp/tenancy.py)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, render_template, request

from ccanalytics.analytics import metrics
from ccanalytics.analytics.store import Store
from ccanalytics.core import labels, timeutil
from ccanalytics.core.errors import InvalidArgument

from . import tenancy
from .db import get_engine

bp = Blueprint("overview", __name__)

SCENARIO_NAMES = labels.SCENARIOS
TRANSFER_REASONS = labels.TRANSFER_REASONS
scenario_ru = labels.scenario


@bp.get("/")
def index():
    tz = current_app.config["TIMEZONE"]
    try:
        days = int(request.args.get("days", 7))
    except ValueError:
        raise InvalidArgument("days must be a whole number", ru="Период: нужно целое число дней от 1 до 366.") from None
    if not 1 <= days <= 366:
        raise InvalidArgument("days must be between 1 and 366", ru="Период: нужно целое число дней от 1 до 366.")
    last = timeutil.today(tz)
    first = last - timedelta(days=days - 1)
    engine = get_engine()
    scope = tenancy.scope()
    today = metrics.summary(engine, last, last, tz=tz, tenant=scope)
    period = metrics.summary(engine, first, last, tz=tz, tenant=scope)
    latest = Store(engine, tz=tz).calls(first, last, limit=20, newest_first=True, tenant=scope).to_dicts()
    return render_template(
        "overview.html",
        today=today,
        period=period,
        days=days,
        latest=latest,
        scenario_ru=scenario_ru,
        reasons=TRANSFER_REASONS,
    )
