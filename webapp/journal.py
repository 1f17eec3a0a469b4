"""The call journal and the call details pages (Russian UI). Thin: ccanalytics.journal does the work."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request

from ccanalytics import journal, labels
from ccanalytics.errors import InvalidArgument

from .db import get_engine
from .overview import SCENARIO_NAMES, TRANSFER_REASONS, scenario_ru

bp = Blueprint("journal", __name__)
CRITERIA_RU = labels.CRITERIA


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
    if value not in ("yes", "no", ""):
        raise InvalidArgument(f"unexpected value of {name}")
    return {"yes": True, "no": False}.get(value)


def _search(after: str | None, limit: int):
    args = request.args
    return journal.search(
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
        after=after,
        limit=limit,
        tz=current_app.config["TIMEZONE"],
    )


@bp.get("/calls")
def index():
    args = request.args
    page = _search(args.get("after") or None, 50)
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


CSV_COLUMNS = (
    ("started_at", "Начало"),
    ("id", "ID звонка"),
    ("caller", "Клиент"),
    ("scenario", "Сценарий"),
    ("duration_seconds", "Длительность, с"),
    ("transferred_to_operator", "Переведён"),
    ("transfer_reason", "Причина перевода"),
    ("quality_score", "Оценка"),
    ("total_cost_usd", "Стоимость, $"),
    ("prompt_version", "Промпт"),
    ("order_id", "Заказ"),
    ("fitting_booking_id", "Запись"),
)
CSV_MAX_ROWS = 10_000


@bp.get("/calls.csv")
def export_csv():
    """The journal with the current filters as CSV (phones masked), at most 10,000 rows."""
    import csv
    import io

    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow([title for _, title in CSV_COLUMNS])
    after, written = None, 0
    while written < CSV_MAX_ROWS:
        page = _search(after, min(200, CSV_MAX_ROWS - written))
        for row in page.rows:
            out.writerow(
                [row["started_at"].isoformat() if key == "started_at" else row.get(key) for key, _ in CSV_COLUMNS]
            )
        written += len(page.rows)
        if not page.next_cursor:
            break
        after = page.next_cursor
    return Response(
        "\ufeff" + buf.getvalue(),  # BOM: spreadsheet programs read UTF-8 Cyrillic correctly
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=calls.csv"},
    )


@bp.get("/calls/<call_id>")
def detail(call_id: str):
    data = journal.call_detail(get_engine(), call_id, tz=current_app.config["TIMEZONE"])
    return render_template(
        "call.html", criteria_ru=CRITERIA_RU, scenario_ru=scenario_ru, reasons=TRANSFER_REASONS, **data
    )
