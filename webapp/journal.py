"""The call journal and the call details pages (Russian UI). Thin: ccanalytics.journal does the work.
Every list, export, call and review action covers the tenants chosen in the header (webapp/tenancy.py):
a call of another tenant is a 404 page, as if it did not exist."""

from __future__ import annotations

import uuid
from functools import lru_cache

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from ccanalytics import auth, charts, journal, labels, recorded, tenants
from ccanalytics.errors import InvalidArgument, NotFound
from ccanalytics.quality import review
from ccanalytics.rutext import num, signed

from . import tenancy
from .auth import WRITE_ROLES, current_principal
from .db import get_engine
from .overview import SCENARIO_NAMES, TRANSFER_REASONS, scenario_ru

bp = Blueprint("journal", __name__)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return render_template("page_error.html", title="Не найдено", message=exc.message, links="scoped"), 404


CRITERIA_RU = labels.CRITERIA
# the reviewer's verdict per criterion: form value → score (None: not applicable)
VERDICTS = (("1", "1 — да"), ("0.75", "0,75"), ("0.5", "0,5 — частично"), ("0.25", "0,25"), ("0", "0 — нет"))
NOT_APPLICABLE = "na"
REVIEW_STATUS_RU = {"new": "ждёт проверки", "in_review": "на проверке", "resolved": "проверен"}


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
        tenant=tenancy.scope(),
        after=after,
        limit=limit,
        tz=current_app.config["TIMEZONE"],
    )


@bp.get("/calls")
def index():
    args = request.args
    page = _search(args.get("after") or None, 50)
    filters = {k: v for k, v in args.items() if k != "after" and v}
    scope = tenancy.scope()
    return render_template(
        "journal.html",
        page=page,
        show_tenant=scope is None or len(scope) > 1,
        tenant_names={t.slug: t.name or t.slug for t in tenants.list_tenants(get_engine())},
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
    ("tenant", "Сеть"),
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


def _actor() -> str:
    principal = current_principal()
    return principal.actor if principal else "anonymous"


_LATENCY_KEYS = ("stt_latency_ms", "llm_latency_ms", "tts_latency_ms")


def _latency_chart(turns: list[dict]) -> Markup | None:
    """The per-turn latency chart. Drawing it costs ~100 ms of CPU, far more than the page's queries,
    so it is cached per distinct set of latencies (a call's chart is drawn once per process)."""
    key = tuple((t["turn_number"], t["speaker"], *(t.get(k) for k in _LATENCY_KEYS)) for t in turns)
    if not any(v is not None for row in key for v in row[2:]):
        return None
    return _cached_chart(key)


@lru_cache(maxsize=512)
def _cached_chart(key: tuple) -> Markup:
    turns = [{"turn_number": n, "speaker": s, **dict(zip(_LATENCY_KEYS, values, strict=True))} for n, s, *values in key]
    return Markup(charts.turn_latency(turns).to_html())


def _detail_page(call_id: str, *, error: str | None = None, status: int = 200, form: dict | None = None):
    try:
        data = journal.call_detail(get_engine(), call_id, tz=current_app.config["TIMEZONE"], tenant=tenancy.scope())
    except NotFound:  # no such call, or another tenant's: the same answer
        raise NotFound(f"Звонка {call_id[:40]} нет.") from None
    principal = current_principal()
    page = render_template(
        "call.html",
        criteria_ru=CRITERIA_RU,
        scenario_ru=scenario_ru,
        reasons=TRANSFER_REASONS,
        latency_chart=_latency_chart(data["turns"]),
        can_write=principal is not None and principal.role in WRITE_ROLES,
        me=principal.actor if principal else None,
        verdict_choices=VERDICTS,
        not_applicable=NOT_APPLICABLE,
        review_status_ru=REVIEW_STATUS_RU,
        review_error=error,
        review_form=form or {},
        beside={b.figure: b for b in recorded.beside(data["call"])},
        num=num,
        signed=signed,
        **data,
    )
    return page, status


@bp.get("/calls/<call_id>")
def detail(call_id: str):
    return _detail_page(call_id)


def _call_id(call_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(call_id)
    except ValueError:
        raise InvalidArgument(f"not a call id: {call_id[:40]!r}") from None


@bp.post("/calls/<call_id>/review/take")
def review_take(call_id: str):
    """Assign the call's review item to me (new → in_review)."""
    cid = _call_id(call_id)
    try:
        review.take(get_engine(), cid, _actor(), tenant=tenancy.scope())
    except (InvalidArgument, NotFound) as exc:
        return _detail_page(call_id, error=str(exc), status=exc.http_status)
    auth.audit(get_engine(), _actor(), "review.taken", "call", str(cid))
    flash("Звонок назначен вам на проверку.", "good")
    return redirect(url_for(".detail", call_id=str(cid), _anchor="review"), 303)


def _verdicts() -> dict[str, float | None]:
    verdicts: dict[str, float | None] = {}
    allowed = {value for value, _ in VERDICTS}
    for name in CRITERIA_RU:
        value = request.form.get(f"verdict_{name}", "")
        if value == NOT_APPLICABLE:
            verdicts[name] = None
        elif value in allowed:
            verdicts[name] = float(value)
        elif value:
            raise InvalidArgument(f"unexpected verdict for {name}")
    return verdicts


@bp.post("/calls/<call_id>/review/resolve")
def review_resolve(call_id: str):
    """Resolve the call's review: my verdict per criterion (stored as labels) and a comment."""
    cid = _call_id(call_id)
    form = request.form.to_dict()
    try:
        verdicts = _verdicts()
        comment = request.form.get("comment", "").strip() or None
        if comment is not None and (len(comment) > 5000 or "\x00" in comment):
            raise InvalidArgument("комментарий: не больше 5000 символов")
        if not verdicts and not comment:
            raise InvalidArgument("поставьте вердикт хотя бы по одному критерию или напишите комментарий")
        stored = review.resolve(get_engine(), cid, _actor(), verdicts, comment, tenant=tenancy.scope())
    except (InvalidArgument, NotFound) as exc:
        return _detail_page(call_id, error=str(exc), status=exc.http_status, form=form)
    auth.audit(get_engine(), _actor(), "review.resolved", "call", str(cid), {"verdicts": verdicts, "comment": comment})
    flash(f"Проверка завершена: сохранено вердиктов — {stored}.", "good")
    return redirect(url_for(".detail", call_id=str(cid), _anchor="review"), 303)
