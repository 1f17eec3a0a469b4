"""Which tenants a request covers: the one helper every scoped view of the admin and of the API calls.

:func:`scope` asks :func:`ccanalytics.db.tenants.scope` with what the reader asked for and the tenants
the reader is limited to (the Principal's ``tenants``):

* the API (/api/…): ``?tenant=SLUG`` (repeatable; views declare it with ``apiparams.TENANT``); a tenant
  outside the reader's is 403 JSON, an unknown slug 400 JSON (code invalid_argument);
* the admin: ``?tenant=`` when the link names one (a report's link to the journal), else the tenant
  chosen in the header's «Сеть» selector, kept in the session (POST /tenant).
  Choosing a tenant outside the reader's is a 403 page in Russian, an unknown one a 400 page; a choice
  that stopped being valid (the tenant was deleted, the user's tenants changed) falls back to all of the
  reader's tenants with a notice.

Prompts, A/B tests and optimizer suggestions are shared by every tenant: their pages do not filter and
the header says so. Library functions get the checked scope (None: every tenant, or a tuple of slugs).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session

from ccanalytics.core.errors import CCAError, Forbidden, InvalidArgument
from ccanalytics.db import tenants

from .auth import API_PREFIX, current_principal, role_required, safe_next
from .db import get_engine, monitor

bp = Blueprint("tenancy", __name__)

SESSION_KEY = "tenant"
# pages of things every tenant shares: the selector does not apply to them
SHARED_BLUEPRINTS = frozenset({"prompts", "abtests", "suggestions"})
STALE_NOTICE = "Выбранная раньше сеть вам больше недоступна: показаны все ваши сети."
SHARED_NOTE = "Промпты, A/B-тесты и предложения общие для всех сетей: выбор сети на них не влияет."


def allowed() -> tuple[str, ...] | None:
    """The tenants the reader of this request is limited to (None: every tenant)."""
    principal = current_principal()
    return principal.tenants if principal is not None else None


def scope() -> tenants.Scope:
    """The tenants this request covers, checked against the reader's limits (computed once per request)."""
    if "tenant_scope" in g:
        return g.tenant_scope
    engine = get_engine()
    if request.path.startswith(API_PREFIX) or request.args.getlist("tenant"):
        # the API, or an admin link that names its tenant (a report's link to the journal): the URL wins
        found = tenants.scope(engine, request.args.getlist("tenant"), allowed=allowed())
    else:
        try:
            found = tenants.scope(engine, session.get(SESSION_KEY), allowed=allowed())
        except (Forbidden, InvalidArgument):  # chosen earlier; deleted or taken away since
            session.pop(SESSION_KEY, None)
            g.tenant_notice = STALE_NOTICE
            found = tenants.scope(engine, None, allowed=allowed())
    g.tenant_scope = found
    return found


# Every page shows the tenants (the header's selector, the scope's words), and they change a few times a
# year: a worker reads them at most every TENANTS_SECONDS (one pooled connection and query less per page:
# ~7 % of a page's CPU under load, docs/deployment.md). Checking a choice against them reads them fresh.
TENANTS_SECONDS = 10.0


def known(*, fresh: bool = False) -> list[tenants.Tenant]:
    """Every tenant of the database, as read at most TENANTS_SECONDS ago (``fresh``: now); one list per
    request (the header, the page and its words share it)."""
    if fresh or "known_tenants" not in g:
        kept = current_app.extensions["cca"].get("tenants")
        now = time.monotonic()
        if fresh or kept is None or now - kept[0] >= TENANTS_SECONDS:
            kept = (now, tenants.list_tenants(get_engine()))
            current_app.extensions["cca"]["tenants"] = kept
        g.known_tenants = kept[1]
    found: list[tenants.Tenant] = g.known_tenants
    return found


def words(found: tenants.Scope) -> str:
    """The scope for people: «Все сети», «Сеть «ПроКолесо»», «Сети «ПроКолесо», «Шинсервіс»»."""
    if found is None:
        return "Все сети"
    named = tenants.label(known(), found)
    return f"{'Сеть' if len(found) == 1 else 'Сети'} {named}"


# ---------------------------------------------------------------------------------------- the header
def _header() -> dict[str, Any] | None:
    """What the header's selector shows, or None (nobody logged in, no database)."""
    if current_principal() is None or monitor().is_down:
        return None
    try:
        limit = allowed()
        choices = [t for t in known() if limit is None or t.slug in limit]
        scope()  # a stale choice is dropped here, with a notice
    except (CCAError, sa.exc.SQLAlchemyError):  # the page itself says what is wrong
        return None
    if limit is None and len(choices) < 2:
        return None  # one tenant: nothing to choose
    only = None
    if limit is not None and len(limit) == 1:
        only = (choices[0].name or choices[0].slug) if choices else limit[0]
    return {
        "choices": choices,
        "chosen": session.get(SESSION_KEY),
        "limited": limit is not None,
        "only": only,
        "shared": request.blueprint in SHARED_BLUEPRINTS,
        "shared_note": SHARED_NOTE,
        "notice": g.get("tenant_notice"),
        "next": request.full_path.rstrip("?") if request.method == "GET" else request.path,
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(lambda: {"tenant_header": _header, "tenant_words": lambda: words(scope())})


def _page(title: str, message: str, status: int):
    return render_template("page_error.html", title=title, message=message, links="scoped"), status


@bp.post("/tenant")
@role_required("admin", "analyst")
def choose():
    """The header's selector: keep the chosen tenant (or every tenant) in the session and go back."""
    slug = request.form.get("tenant", "").strip().lower()
    target = safe_next(request.form.get("next"))
    if not slug:
        session.pop(SESSION_KEY, None)
        return redirect(target, 303)
    engine = get_engine()
    try:
        tenants.scope(engine, slug, allowed=allowed())
    except Forbidden:
        mine = tenants.describe(engine, allowed())
        return _page("Нет доступа", f"Сеть «{slug[:100]}» вам недоступна. Ваши сети: {mine}.", 403)
    except InvalidArgument:
        known = ", ".join(t.slug for t in tenants.list_tenants(engine)) or "нет ни одной"
        return _page("Ошибка в запросе", f"Сети «{slug[:100]}» нет. Есть: {known}.", 400)
    session[SESSION_KEY] = slug
    return redirect(target, 303)
