"""The call journal and the call details pages (Russian UI). Thin: ccanalytics.journal does the work."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from ccanalytics import journal
from ccanalytics.errors import InvalidArgument

from .db import get_engine
from .overview import SCENARIO_NAMES, TRANSFER_REASONS, scenario_ru

bp = Blueprint("journal", __name__)
CRITERIA_RU = {
    "bot_greeted_properly": "Приветствие",
    "bot_understood_intent": "Понял запрос",
    "bot_used_correct_tool": "Верный инструмент",
    "bot_provided_accurate_info": "Точная информация",
    "bot_confirmed_before_action": "Подтверждение перед действием",
    "bot_was_concise": "Краткость",
    "call_resolved_without_human": "Решено без оператора",
    "customer_seemed_satisfied": "Клиент доволен",
}


def _float(name: str) -> float | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return float(value.replace(",", "."))
    except ValueError:
        raise InvalidArgument(f"{name} must be a number between 0 and 1") from None


def _bool(name: str) -> bool | None:
    value = request.args.get(name, "")
    return {"yes": True, "no": False, "": None}.get(value) if value in ("yes", "no", "") else _bad(name)


def _bad(name: str):
    raise InvalidArgument(f"unexpected value of {name}")


@bp.get("/calls")
def index():
    args = request.args
    page = journal.search(
        get_engine(),
        date_from=args.get("from") or None,
        date_to=args.get("to") or None,
        scenario=args.get("scenario") or None,
        transferred=_bool("transferred"),
        quality_below=_float("quality_below"),
        quality_above=_float("quality_above"),
        prompt_version=args.get("prompt_version") or None,
        review_status=args.get("review") or None,
        text=args.get("q") or None,
        sort=args.get("sort", "date"),
        descending=args.get("order", "desc") != "asc",
        after=args.get("after") or None,
        limit=50,
        tz=current_app.config["TIMEZONE"],
    )
    filters = {k: v for k, v in args.items() if k != "after" and v}
    return render_template(
        "journal.html",
        page=page,
        filters=filters,
        query=args.get("q", ""),
        scenarios=SCENARIO_NAMES,
        reasons=TRANSFER_REASONS,
        scenario_ru=scenario_ru,
        highlight=journal.highlight,
    )


@bp.get("/calls/<call_id>")
def detail(call_id: str):
    data = journal.call_detail(get_engine(), call_id, tz=current_app.config["TIMEZONE"])
    return render_template(
        "call.html", criteria_ru=CRITERIA_RU, scenario_ru=scenario_ru, reasons=TRANSFER_REASONS, **data
    )
