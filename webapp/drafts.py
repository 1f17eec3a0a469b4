"""Forms that survive an ended session — the web side of :mod:`ccanalytics.auth.formdrafts`.

A form posted after its session ended (12 h, a logout elsewhere, a new password) is not lost at the
login redirect:

* the guard (webapp/auth.py) calls :func:`keep_posted_form` for an unauthenticated POST of a form page
  (never the JSON API): the posted fields (no password, no CSRF token; at most
  :data:`MAX_BODY` bytes, else a Russian 413 page) are kept server-side for the user whose browser
  sent them — the user of the ended session, or the one named by the signed ``cca_who`` cookie that
  every login sets (a browser drops an expired session cookie) — and the redirect to /login carries
  the draft's random key;
* after a successful login as that user, ``GET /drafts/<key>`` shows the form page again with the
  fields filled in (the mechanism of an expired CSRF token, webapp/errorpages.py) and the notice
  :data:`NOTICE`; nothing is sent on its own: the form has a fresh CSRF token and the user confirms.
  Another user logging in with the same key gets the page the form was on, empty; the draft's page is
  a 404 for them.

A browser that names no user (never logged in, or logged out) keeps nothing: the POST is redirected
to /login as before, and its body is not read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import MapAdapter

from ccanalytics.auth import formdrafts
from ccanalytics.core import rutext
from ccanalytics.core.errors import NotFound, PayloadTooLarge

from . import auth
from .db import get_engine
from .errorpages import form_again

bp = Blueprint("drafts", __name__)

NOTICE = "Сессия истекла — войдите и отправьте форму ещё раз; введённое сохранено"
LOGIN_NOTICE = "Сессия истекла. Войдите снова: введённое в форму сохранено, после входа вы вернётесь к ней."
TITLE = "Введённое сохранено"
OWNER_COOKIE = "cca_who"
OWNER_AGE = timedelta(days=30)
MAX_BODY = 1024 * 1024  # bytes of an unauthenticated form read to keep it (a 100 000-character prompt fits)
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
KEY = re.compile(r"^[A-Za-z0-9_\-]{20,100}$")


def _signer() -> URLSafeTimedSerializer:
    secret_key = current_app.secret_key
    if secret_key is None:  # webapp/auth.py sets one when the app is created
        raise RuntimeError("the app has no SECRET_KEY")
    return URLSafeTimedSerializer(secret_key, salt="cca-form-owner")


def _url_adapter() -> MapAdapter:
    """The app's URL adapter for this request."""
    adapter = current_app.create_url_adapter(request)
    if adapter is None:  # only outside a request
        raise RuntimeError("no URL adapter outside a request")
    return adapter


def remember_owner(response: Response, user_id: int) -> None:
    """Name the user of this browser in a signed cookie (at login): a form this browser posts after
    the session has expired is kept for that user."""
    response.set_cookie(
        OWNER_COOKIE,
        _signer().dumps(int(user_id)),
        max_age=int(OWNER_AGE.total_seconds()),
        httponly=True,
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        samesite="Lax",
    )


def forget_owner(response: Response) -> None:
    """At logout from this browser: a form posted here afterwards is nobody's."""
    response.delete_cookie(OWNER_COOKIE, httponly=True, samesite="Lax")


def browser_owner(ended_user_id: int | None) -> int | None:
    """The user a form posted by this browser belongs to: the ended session's, else the cookie's."""
    if isinstance(ended_user_id, int):
        return ended_user_id
    raw = request.cookies.get(OWNER_COOKIE)
    if not raw or len(raw) > 200:
        return None
    try:
        value = _signer().loads(raw, max_age=int(OWNER_AGE.total_seconds()))
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def _ttl_minutes() -> int:
    return int(formdrafts.TTL.total_seconds() // 60)


def valid_key(key: str | None) -> str | None:
    return key if isinstance(key, str) and KEY.match(key) else None


def _form_page() -> str:
    """The page the form was on: the same-site Referer, else the form's own address when it answers
    GET, else the overview."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        page = referrer.path + (f"?{referrer.query}" if referrer.query else "")
        if auth.safe_next(page) == page:
            return page
    try:
        _url_adapter().match(request.path, method="GET")
    except HTTPException:
        return "/"
    return request.path


def keep_posted_form(ended_user_id: int | None) -> tuple[str, str] | None:
    """Keep this unauthenticated POST's form for its browser's user: (key, the form's page), or None
    (no user known, not a form, a read-only database). Too large → PayloadTooLarge (a 413 page)."""
    if request.method != "POST" or request.mimetype not in FORM_TYPES or request.routing_exception is not None:
        return None  # not a form, or posted where no view answers
    owner = browser_owner(ended_user_id)
    if owner is None:
        return None
    request.max_content_length = MAX_BODY
    try:
        fields = list(request.form.items(multi=True))
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"the form is larger than {MAX_BODY} bytes", ru=formdrafts.TOO_LARGE_RU) from None
    page = _form_page()
    key = formdrafts.keep(get_engine(), owner, page=page, action=request.path, fields=fields)
    return (key, page) if key is not None else None


def claimable(key: str | None, user_id: int) -> bool:
    """Whether the draft under ``key`` waits for ``user_id`` (checked at login)."""
    key = valid_key(key)
    return key is not None and formdrafts.get(get_engine(), key, user_id) is not None


@bp.get("/drafts/<key>")
def show(key: str):
    """The kept form's page, filled in, with the notice: the user checks it and sends it again."""
    principal = auth.current_principal()
    draft = None
    if principal is not None and principal.kind == "user" and valid_key(key):
        draft = formdrafts.get(get_engine(), key, principal.id)
    if draft is None:
        raise NotFound(
            "no such form draft",
            ru=f"Сохранённой формы нет: она хранится {rutext.count(_ttl_minutes(), 'минуту', 'минуты', 'минут')} "
            "и только для того, кто её отправил.",
        )
    endpoint: str | None = None
    view_args: dict[str, Any] = {}
    try:
        rule, matched = _url_adapter().match(draft.action, method="POST", return_rule=True)
        view_args = dict(matched)
    except HTTPException:
        pass
    else:  # the page renders as the form's own view would: its blueprint's template values and error pages
        request.url_rule, request.view_args, endpoint = rule, view_args, rule.endpoint
    request.form = ImmutableMultiDict(list(draft.fields))  # what the form pages read (keeps_form)
    return form_again(NOTICE, endpoint=endpoint, view_args=view_args, action=draft.action, status=200, title=TITLE)
