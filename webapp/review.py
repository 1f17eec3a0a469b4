"""The manual review queue pages (Russian UI): the queue with its filters, taking a call, and who
reviewed what. Thin: ccanalytics.quality.review does the work (and writes the audit log).

* ``GET /review``: the queue of the tenants chosen in the header (or ``?tenant=``), filtered by status,
  a criterion the judge failed, the reviewer, the call's days; sorted, paged, with the total.
* ``POST /review/<call_id>/take``: the call is assigned to me (admins, as in the API); back to the queue.
  Resolving — a verdict per criterion and a comment — is the call page's form (``#review``), next to
  the transcript it judges.
* ``GET /review/history``: every taking and resolving, by reviewer and period, with a summary per
  reviewer.

Bad filters are a 400 page in Russian; a call outside the reader's tenants a 404 page (a tenant outside
them in ``?tenant=`` is the app's 403).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import replace
from datetime import date
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from ccanalytics.core import labels, privacy, timeutil
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.core.rutext import num, plural
from ccanalytics.db import tenants
from ccanalytics.quality import review, reviewhistory

from . import tenancy
from .apiparams import MAX_DATE, MIN_DATE
from .auth import WRITE_ROLES, current_principal, require_principal, safe_next
from .db import get_engine

bp = Blueprint("review", __name__)

PAGE_SIZE = 50
MAX_PAGE = 2000
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
STATUS_RU = labels.REVIEW_STATUSES
REASONS_RU = labels.REVIEW_REASONS
SORTS_RU = {"score": "сначала низкие оценки", "date": "сначала новые звонки", "updated": "сначала недавно изменённые"}
ACTIONS_RU = {"review.taken": "взял на проверку", "review.resolved": "завершил проверку"}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_LIMITS = {"reviewer": 200, "call": 40, "tenant": 100}


# ------------------------------------------------------------------------------------------ errors
def _page(title: str, message: str, status: int):
    return render_template("page_error.html", title=title, message=message, links="scoped"), status


@bp.errorhandler(InvalidArgument)
def _bad_request(exc: InvalidArgument):
    message = exc.message if CYRILLIC.search(exc.message) else "Параметры запроса не подходят: проверьте фильтры."
    return _page("Ошибка в запросе", message, 400)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    message = exc.message if CYRILLIC.search(exc.message) else "Такого звонка нет в очереди проверки."
    return _page("Не найдено", message, 404)


# --------------------------------------------------------------------------------------- arguments
def arg(name: str, label: str) -> str:
    """A query parameter, stripped; a control character or an overlong value is a 400 page."""
    value = request.args.get(name, "")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"«{label}»: недопустимый символ.")
    if len(value) > _LIMITS.get(name, 40):
        raise InvalidArgument(f"«{label}»: слишком длинное значение (не больше {_LIMITS.get(name, 40)} символов).")
    return value.strip()


def day(name: str, label: str) -> date | None:
    value = arg(name, label)
    if not value:
        return None
    if not _DATE.match(value):
        raise InvalidArgument(f"«{label}»: нужна дата в виде ГГГГ-ММ-ДД, а не «{value}».")
    try:
        found = date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"«{label}»: такой даты нет в календаре ({value}).") from None
    if not MIN_DATE <= found <= MAX_DATE:
        raise InvalidArgument(
            f"«{label}»: дата должна быть между {MIN_DATE:%d.%m.%Y} и {MAX_DATE:%d.%m.%Y}, а не {found:%d.%m.%Y}."
        )
    return found


def period() -> tuple[date | None, date | None]:
    first, last = day("from", "С"), day("to", "По")
    if first and last and last < first:
        raise InvalidArgument(f"Период пуст: «По» ({last:%d.%m.%Y}) раньше, чем «С» ({first:%d.%m.%Y}).")
    return first, last


def page_number() -> int:
    value = arg("page", "Страница") or "1"
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidArgument(f"«Страница»: нужно целое число от 1 до {MAX_PAGE}, а не «{value}».")
    return int(value)


def choice(name: str, label: str, allowed: dict[str, str]) -> str | None:
    value = arg(name, label)
    if not value:
        return None
    if value not in allowed:
        raise InvalidArgument(f"«{label}»: можно выбрать {', '.join(allowed.values())}, а не «{value}».")
    return value


def period_words(first: date | None, last: date | None) -> str:
    if first and last:
        return f"с {first:%d.%m.%Y} по {last:%d.%m.%Y}" if first != last else f"за {first:%d.%m.%Y}"
    if first:
        return f"с {first:%d.%m.%Y}"
    if last:
        return f"по {last:%d.%m.%Y}"
    return "за всё время"


def _filters(*names: str) -> dict[str, str]:
    """The page's filters as they are in the address, for links and paging: empty ones dropped, but an
    empty ``tenant`` (every tenant of the reader, whatever the header's choice) is kept."""
    return {k: v for k in names if (v := request.args.get(k, "").strip()) or (k == "tenant" and k in request.args)}


def _tenant_choices() -> list[tenants.Tenant]:
    limit = tenancy.allowed()
    return [t for t in tenancy.known() if limit is None or t.slug in limit]


def _common() -> dict[str, Any]:
    """Template values every review page uses."""
    scope = tenancy.scope()
    return {
        "scope": scope,
        "scope_words": tenancy.words(scope),
        "show_tenant": scope is None or len(scope) > 1,
        "tenant_choices": _tenant_choices(),
        "tenant_names": {t.slug: t.name or t.slug for t in tenancy.known()},
        "criteria_ru": labels.CRITERIA,
        "status_ru": STATUS_RU,
        "reasons_ru": REASONS_RU,
        "zone": _zone(),
        "num": num,
        "plural": plural,
    }


def _zone():
    return timeutil.zone(current_app.config["TIMEZONE"])


# ------------------------------------------------------------------------------------------- pages
@bp.get("/review")
def queue():
    """The review queue with its filters."""
    status = choice("status", "Статус", STATUS_RU)
    criterion = choice("criterion", "Критерий", labels.CRITERIA)
    reviewer = arg("reviewer", "Проверяющий") or None
    first, last = period()
    sort = choice("sort", "Порядок", SORTS_RU) or "score"
    number = page_number()
    principal = current_principal()
    found = review.queue(
        get_engine(),
        status=status,
        criterion=criterion,
        reviewer=reviewer,
        date_from=first,
        date_to=last,
        tenant=tenancy.scope(),
        sort=sort,
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        tz=current_app.config["TIMEZONE"],
    )
    role = principal.role if principal else None
    rows = [replace(r, comment=privacy.for_reader(r.comment, role)) for r in found.rows]
    filters = _filters("status", "criterion", "reviewer", "from", "to", "sort", "tenant")
    return render_template(
        "review.html",
        page=found,
        rows=rows,
        number=number,
        pages=max(1, math.ceil(found.total / PAGE_SIZE)),
        filters=filters,
        status=status,
        criterion=criterion,
        reviewer=reviewer,
        date_from=first,
        date_to=last,
        sort=sort,
        sorts_ru=SORTS_RU,
        period_words=period_words(first, last),
        reviewers=review.reviewers(get_engine()),
        can_write=principal is not None and principal.role in WRITE_ROLES,
        me=principal.actor if principal else None,
        here=request.full_path.rstrip("?"),
        **_common(),
    )


@bp.post("/review/<call_id>/take")
def take(call_id: str):
    """Assign the call's review to me (new → in_review, or from another reviewer) and go back."""
    try:
        cid = uuid.UUID(call_id)
    except ValueError:
        raise InvalidArgument(f"«{call_id[:40]}» — не идентификатор звонка.") from None
    target = safe_next(request.form.get("next") or url_for(".queue"))
    try:
        review.take(get_engine(), cid, require_principal().actor, tenant=tenancy.scope())
    except NotFound:
        raise NotFound(f"Звонка {cid} нет в очереди проверки.") from None
    except (InvalidArgument, Conflict) as exc:  # resolved meanwhile
        flash(exc.message_ru, "bad")
        return redirect(target, 303)
    flash("Звонок назначен вам на проверку.", "good")
    return redirect(target, 303)


@bp.get("/review/history")
def history():
    """Who reviewed what: takings and resolutions by reviewer and period."""
    reviewer = arg("reviewer", "Проверяющий") or None
    call = arg("call", "Звонок") or None
    if call is not None:
        try:
            call = str(uuid.UUID(call))
        except ValueError:
            raise InvalidArgument(f"«Звонок»: нужен идентификатор звонка, а не «{call}».") from None
    first, last = period()
    number = page_number()
    found = reviewhistory.history(
        get_engine(),
        reviewer=reviewer,
        call_id=call,
        date_from=first,
        date_to=last,
        tenant=tenancy.scope(),
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        tz=current_app.config["TIMEZONE"],
    )
    principal = current_principal()
    role = principal.role if principal else None
    entries = [replace(e, comment=privacy.for_reader(e.comment, role)) for e in found.entries]
    return render_template(
        "review_history.html",
        history=found,
        entries=entries,
        number=number,
        pages=max(1, math.ceil(found.total / PAGE_SIZE)),
        filters=_filters("reviewer", "call", "from", "to", "tenant"),
        reviewer=reviewer,
        call=call,
        date_from=first,
        date_to=last,
        period_words=period_words(first, last),
        reviewers=review.reviewers(get_engine()),
        actions_ru=ACTIONS_RU,
        verdict_words=verdict_words,
        **_common(),
    )


def verdict_words(value: float | None) -> str:
    return "неприменимо" if value is None else num(value, 2)
