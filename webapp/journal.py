"""The call journal and the call details pages (Russian UI). Thin: ccanalytics.analytics.journal does the work.
Every list, export, call and review action covers the tenants chosen in the header (webapp/tenancy.py):
a call of another tenant is a 404 page, as if it did not exist."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import re
import uuid
from datetime import date, datetime

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from ccanalytics.analytics import journal, journalpage, journaltext, recorded
from ccanalytics.core import labels, privacy
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.core.rutext import num, signed
from ccanalytics.quality import review
from ccanalytics.reports import svgcharts

from . import callpage, tenancy
from .apiparams import MAX_DATE, MIN_DATE
from .auth import WRITE_ROLES, current_principal
from .db import get_engine
from .errorpages import keeps_form
from .overview import SCENARIO_NAMES, TRANSFER_REASONS, scenario_ru

bp = Blueprint("journal", __name__)
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return render_template("page_error.html", title="Не найдено", message=exc.message, links="scoped"), 404


@bp.errorhandler(InvalidArgument)
def _bad_request(exc: InvalidArgument):
    """A bad filter or address: a 400 page in Russian (the filters are checked here with Russian
    messages; one the library refuses on its own gets a general one)."""
    message = exc.message if CYRILLIC.search(exc.message) else "Параметры запроса не подходят: проверьте фильтры."
    return render_template("page_error.html", title="Ошибка в запросе", message=message, links="scoped"), 400


CRITERIA_RU = labels.CRITERIA
# the reviewer's verdict per criterion: form value → score (None: not applicable)
VERDICTS = (("1", "1 — да"), ("0.75", "0,75"), ("0.5", "0,5 — частично"), ("0.25", "0,25"), ("0", "0 — нет"))
NOT_APPLICABLE = "na"
REVIEW_STATUS_RU = labels.REVIEW_STATUSES


# the journal's query parameters; anything else in the address is ignored
_TEXT_LIMITS = {"q": 200, "scenario": 100, "prompt_version": 100, "after": 400, "before": 400}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
REVIEW_STATUSES = ("new", "in_review", "resolved")


def bad_request(message: str) -> InvalidArgument:
    """A bad filter of a page: a 400 page in the site's layout with ``message`` (Russian)."""
    return InvalidArgument(message)


def _arg(name: str) -> str:
    value = request.args.get(name, "")
    if "\x00" in value or any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise bad_request(f"Параметр «{name}» содержит недопустимый символ.")
    if len(value) > _TEXT_LIMITS.get(name, 40):
        raise bad_request(f"Параметр «{name}» слишком длинный: не больше {_TEXT_LIMITS.get(name, 40)} символов.")
    return value.strip()


def _date(name: str, label: str) -> date | None:
    value = _arg(name)
    if not value:
        return None
    if not _DATE.match(value):
        raise bad_request(f"«{label}»: нужна дата в виде ГГГГ-ММ-ДД, а не «{value}».")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"«{label}»: такой даты нет в календаре ({value}).") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise bad_request(
            f"«{label}»: дата должна быть между {MIN_DATE:%d.%m.%Y} и {MAX_DATE:%d.%m.%Y}, а не {day:%d.%m.%Y}."
        )
    return day


def _float(name: str) -> float | None:
    value = _arg(name)
    if not value:
        return None
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        number = math.nan
    if not 0 <= number <= 1:  # NaN fails too
        raise bad_request(f"«Оценка»: нужно число от 0 до 1, а не «{value}».")
    return number


def _bool(name: str) -> bool | None:
    value = _arg(name)
    if value not in ("yes", "no", ""):
        raise bad_request(f"«Перевод»: допустимы значения yes или no, а не «{value}».")
    return {"yes": True, "no": False}.get(value)


def _cursor(value: str) -> str | None:
    """The ``after`` cursor as the journal made it, or a 400 page (an old or edited link)."""
    if not value:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))
        ok = isinstance(values, list) and len(values) == 3 and all(isinstance(v, str | int | float) for v in values)
        if ok:
            float(values[0])
            moment = datetime.fromisoformat(str(values[1]))
            uuid.UUID(str(values[2]))
            ok = math.isfinite(float(values[0])) and MIN_DATE <= moment.date() <= MAX_DATE
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        ok = False
    if not ok:
        raise bad_request("Ссылка на страницу журнала устарела или повреждена: начните с первой страницы.")
    return value


def _search(after: str | None, limit: int, *, before: str | None = None, count: bool = False):
    first, last = _date("from", "С"), _date("to", "По")
    if first and last and last < first:
        raise bad_request(f"Период пуст: «По» ({last:%d.%m.%Y}) раньше, чем «С» ({first:%d.%m.%Y}).")
    sort = _arg("sort") or "date"
    if sort not in journalpage.SORTS:
        raise bad_request(f"Неизвестная сортировка «{sort}»: по дате, оценке, стоимости или длительности.")
    order = _arg("order") or "desc"
    if order not in ("asc", "desc"):
        raise bad_request(f"Порядок сортировки — asc или desc, а не «{order}».")
    review_status = _arg("review") or None
    if review_status is not None and review_status not in REVIEW_STATUSES:
        raise bad_request(f"Неизвестный статус проверки «{review_status}».")
    return journal.search(
        get_engine(),
        date_from=first,
        date_to=last,
        scenario=_arg("scenario") or None,
        transferred=_bool("transferred"),
        quality_below=_float("quality_below"),
        quality_above=_float("quality_above"),
        prompt_version=_arg("prompt_version") or None,
        review_status=review_status,
        text=_arg("q") or None,
        sort=sort,
        descending=order != "asc",
        tenant=tenancy.scope(),
        after=_cursor(after or ""),
        before=_cursor(before or "") if not after else None,
        limit=limit,
        tz=current_app.config["TIMEZONE"],
        count=count,
    )


SPEAKERS = {"customer": "Клиент", "bot": "Бот"}  # as the call page names them
SORT_NAMES = {"date": "дате", "quality": "оценке", "cost": "стоимости", "duration": "длительности"}


def total_text(total: journalpage.Total | None) -> str:
    """«Найдено звонков: 1 234», «≈ 12 400» (an estimate), «больше 10 000» (counting stopped)."""
    if total is None:
        return ""
    n = num(total.value)
    if total.kind == "estimate":
        return f"Найдено звонков: ≈\u00a0{n} (оценка)"
    if total.kind == "at_least":
        return f"Найдено звонков: больше {n}"
    return f"Найдено звонков: {n}"


@bp.get("/calls")
def index():
    args = request.args
    page = _search(_arg("after") or None, 50, before=_arg("before") or None, count=True)
    principal = current_principal()
    for row in page.rows:  # a snippet of the transcript: phones masked for non-admins
        if row.get("snippet"):
            row["snippet"] = privacy.for_reader(row["snippet"], principal.role if principal else None)
    filters = {k: v for k, v in args.items() if k not in ("after", "before") and v}
    scope = tenancy.scope()
    sort, order = filters.get("sort", "date"), filters.get("order", "desc")

    def sort_link(key: str) -> str:
        """The column's sort: this column, the other direction when it is the current sort."""
        flip = "asc" if sort == key and order == "desc" else "desc"
        return url_for("journal.index", **{**filters, "sort": key, "order": flip})

    return render_template(
        "journal.html",
        page=page,
        show_tenant=scope is None or len(scope) > 1,
        tenant_names={t.slug: t.name or t.slug for t in tenancy.known()},
        filters=filters,
        query=args.get("q", ""),
        scenarios=SCENARIO_NAMES,
        reasons=TRANSFER_REASONS,
        scenario_ru=scenario_ru,
        highlight=journaltext.highlight,
        speakers=SPEAKERS,
        sort=sort,
        order=order,
        sort_names=SORT_NAMES,
        sort_link=sort_link,
        total=total_text(page.total),
        period_default=not filters.get("from") and not filters.get("to"),
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
    """The per-turn latency chart as inline SVG (ccanalytics.reports.svgcharts: milliseconds to draw, where
    a matplotlib PNG cost 115–250 ms per call); none when no turn has a latency."""
    if not any(t.get(k) is not None for t in turns for k in _LATENCY_KEYS):
        return None
    return Markup(svgcharts.turn_latency(turns))


def _for_reader(data: dict, role: str | None) -> dict:
    """The call page's data as this reader may see it (ccanalytics.core.privacy's rule): everything but
    the ids, times and numbers masked for non-admins — transcript, tool arguments and results, judge
    reasons, the review comment and the customer's name."""
    if privacy.sees_personal_data(role):
        return data
    call = dict(data["call"])
    for key in ("customer_name", "quality_details"):
        call[key] = privacy.for_reader(call.get(key), role)
    turns = [
        {
            **t,
            "content": privacy.for_reader(t.get("content"), role),
            "tools": [
                {
                    **x,
                    "tool_args": privacy.for_reader(x.get("tool_args"), role),
                    "tool_result": privacy.for_reader(x.get("tool_result"), role),
                }
                for x in t.get("tools", [])
            ],
        }
        for t in data["turns"]
    ]
    review_item = data.get("review")
    if review_item:
        review_item = {**review_item, "comment": privacy.for_reader(review_item.get("comment"), role)}
    return {**data, "call": call, "turns": turns, "review": review_item}


def _detail_page(call_id: str, *, error: str | None = None, status: int = 200, form: dict | None = None):
    try:
        data = journal.call_detail(get_engine(), call_id, tz=current_app.config["TIMEZONE"], tenant=tenancy.scope())
    except NotFound:  # no such call, or another tenant's: the same answer
        raise NotFound(f"Звонка {call_id[:40]} нет.") from None
    principal = current_principal()
    parts = callpage.score_composition(data["call"])  # numbers only: from the unmasked document
    data = _for_reader({**data, "turns": callpage.readable_tools(data["turns"])}, principal.role if principal else None)
    page = render_template(
        "call.html",
        composition=parts,
        weights_source=callpage.WEIGHTS_SOURCE,
        pretty_json=callpage.pretty_json,
        review_reasons_ru=labels.REVIEW_REASONS,
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
    except (InvalidArgument, NotFound, Conflict) as exc:
        return _detail_page(
            call_id, error=_review_error(exc, "Этот звонок уже проверен: взять его нельзя."), status=exc.http_status
        )
    flash("Звонок назначен вам на проверку.", "good")
    return redirect(url_for(".detail", call_id=str(cid), _anchor="review"), 303)


def _review_error(exc: InvalidArgument | NotFound | Conflict, refused: str) -> str:
    """A review action's error for people: the route's own Russian message, else a Russian one."""
    if isinstance(exc, NotFound):
        return "Звонка нет в очереди ручной проверки."
    return exc.ru or (exc.message if CYRILLIC.search(exc.message) else refused)


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
@keeps_form(lambda message, call_id: _detail_page(call_id, error=message, status=400, form=request.form.to_dict()))
def review_resolve(call_id: str):
    """Resolve the call's review: my verdict per criterion (stored as labels) and a comment."""
    cid = _call_id(call_id)
    form = request.form.to_dict()
    try:
        verdicts = _verdicts()
        comment = request.form.get("comment", "")  # its rules are the library's (review.resolve)
        stored = review.resolve(get_engine(), cid, _actor(), verdicts, comment, tenant=tenancy.scope())
    except (InvalidArgument, NotFound, Conflict) as exc:
        message = _review_error(exc, "Вердикт не подходит: выберите значение из списка.")
        return _detail_page(call_id, error=message, status=exc.http_status, form=form)
    flash(f"Проверка завершена: сохранено вердиктов — {stored}.", "good")
    return redirect(url_for(".detail", call_id=str(cid), _anchor="review"), 303)
