"""Login, logout, sessions, CSRF and roles — for every route of the admin and of the API.

One ``before_request`` hook guards the whole app, so a page added by any blueprint is protected
without doing anything:

* public: /healthz, /readyz, /metrics (protect it at the reverse proxy if needed), /login, static
  files, /api/v1/openapi.json, and any view marked ``@public``;
* everything else needs a logged-in user (session cookie) or, under /api/, a Bearer token;
  anonymous browsers are redirected to /login, anonymous API calls get 401 JSON; a form posted after
  its session ended is kept for its user and comes back filled in after the login (webapp/drafts.py);
* roles: a view marked ``@role_required(...)`` admits exactly those roles; unmarked views admit
  admin and analyst for GET/HEAD/OPTIONS and admin only for state-changing methods (403 otherwise);
* CSRF: every POST/PUT/PATCH/DELETE authenticated by the session cookie must carry the session's
  CSRF token — form field ``csrf_token`` (``{{ csrf_field() }}`` in a template) or header
  ``X-CSRF-Token`` (400 otherwise). Bearer-token requests need none (browsers never send them).

Sessions end server-side: the cookie carries a stamp of the user's password hash and session epoch,
checked on every request; logout (like a new password or disabling the user) bumps the epoch, so every
session of the user ends at once, copied cookies included. Logins are throttled by
:class:`ccanalytics.auth.logins.LoginPolicy` (growing delays per client and account, never a lockout of the
real user); docs/deployment.md describes both.

Templates get ``current_user`` (a Principal or None), ``csrf_token()`` and ``csrf_field()``. A Principal
carries the tenants it is limited to; webapp/tenancy.py turns them into each request's scope.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from markupsafe import Markup, escape
from werkzeug.middleware.proxy_fix import ProxyFix

from ccanalytics.auth import logins, secretkey
from ccanalytics.auth import users as auth
from ccanalytics.auth.users import Forbidden, Unauthorized
from ccanalytics.core import labels
from ccanalytics.core.errors import CSRFError

from . import app_settings, drafts
from .db import get_engine
from .public import is_public, public

bp = Blueprint("auth", __name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ROLES = frozenset({"admin", "analyst"})
WRITE_ROLES = frozenset({"admin"})
API_PREFIX = "/api/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Principal:
    """Who makes the request: a logged-in user or an API token."""

    kind: str  # "user" | "token"
    id: int
    name: str
    role: str
    tenants: tuple[str, ...] | None = None  # the tenants (slugs) it may read; None: every tenant

    @property
    def actor(self) -> str:
        """The name written to the audit log and to created_by/activated_by columns."""
        return self.name if self.kind == "user" else f"token:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "role": self.role,
            "actor": self.actor,
            "tenants": list(self.tenants) if self.tenants is not None else None,
        }


def current_principal() -> Principal | None:
    return g.get("principal")


def require_principal() -> Principal:
    """The principal of a view that requires a login (``role_required``, ``login_required``)."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized("log in first")
    return principal


# --------------------------------------------------------------------------------------- decorators


def login_required(view: Callable) -> Callable:
    """Any logged-in user or token (the app-wide hook already requires it; this documents it)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_principal() is None:
            raise Unauthorized("log in first")
        return view(*args, **kwargs)

    return wrapper


def role_required(*roles: str) -> Callable[[Callable], Callable]:
    """Only these roles may call the view, whatever the method (overrides the default policy)."""
    unknown = set(roles) - set(auth.ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    allowed = frozenset(roles)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            _authorize(current_principal(), allowed)
            return view(*args, **kwargs)

        wrapper._cca_roles = allowed  # type: ignore[attr-defined]
        return wrapper

    return decorate


def allowed_roles(view: Callable | None, method: str) -> frozenset[str]:
    """The roles that may call ``view`` with ``method``: its ``@role_required`` or the default."""
    roles = getattr(view, "_cca_roles", None)
    if roles is not None:
        return roles
    return READ_ROLES if method in SAFE_METHODS else WRITE_ROLES


# -------------------------------------------------------------------------------------------- CSRF
def csrf_token() -> str:
    """The CSRF token of this session (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token())}">')


def csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    return bool(expected and given) and hmac.compare_digest(str(given).encode(), str(expected).encode())


# ------------------------------------------------------------------------------------------ setup
def init_app(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Session and login settings from CCA_* settings (unless given in the app's config), the
    secret key, and the app-wide guard."""
    overrides = overrides or {}
    settings = app_settings(app)
    if not app.config.get("SECRET_KEY"):
        if settings.secret_key is not None and settings.secret_key.get_secret_value():
            app.config["SECRET_KEY"] = settings.secret_key.get_secret_value()
        elif app.config.get("TESTING"):
            app.config["SECRET_KEY"] = secrets.token_hex(32)  # a test app: nothing to persist
        else:
            app.config["SECRET_KEY"] = secretkey.load_or_create_secret_key(settings.resolved_data_dir() / "secret_key")
    defaults = {
        "SESSION_COOKIE_SECURE": settings.cookie_secure,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=settings.session_hours),
        "LOGIN_MAX_FAILURES": settings.login_max_failures,
        "LOGIN_MAX_FAILURES_PER_IP": settings.login_max_failures_per_ip,
        "LOGIN_WINDOW_MINUTES": settings.login_window_minutes,
        "TRUSTED_PROXIES": settings.trusted_proxies,
    }
    for key, value in defaults.items():
        if key not in overrides:
            app.config[key] = value
    if "SESSION_COOKIE_NAME" not in overrides:
        app.config["SESSION_COOKIE_NAME"] = "cca_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    if app.config.get("TRUSTED_PROXIES"):
        n = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    app.before_request(_guard)
    app.after_request(_after)
    app.context_processor(
        lambda: {"current_user": current_principal(), "csrf_token": csrf_token, "csrf_field": csrf_field}
    )
    app.register_blueprint(bp)
    app.register_blueprint(drafts.bp)


def _guard():
    g.principal = None
    endpoint = request.endpoint
    if is_public(endpoint):
        return None
    is_api = request.path.startswith(API_PREFIX)
    unsafe = request.method not in SAFE_METHODS
    principal = _authenticate(is_api)
    if principal is None:
        if is_api:
            raise Unauthorized("log in or send an API token (Authorization: Bearer cca_…)")
        if not unsafe:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        kept = drafts.keep_posted_form(g.pop("ended_user_id", None))  # what was typed survives the login
        if kept is None:
            return redirect(url_for("auth.login"))
        key, page = kept
        return redirect(url_for("auth.login", next=page, draft=key))
    g.principal = principal
    view = current_app.view_functions.get(endpoint) if endpoint else None
    _authorize(principal, allowed_roles(view, request.method))
    # a request no view answers (404, 405 with its Allow header) changes nothing: no CSRF check
    if unsafe and principal.kind == "user" and request.routing_exception is None and not csrf_ok():
        raise CSRFError("the CSRF token is missing or wrong: reload the page and try again")
    return None


def _authenticate(is_api: bool) -> Principal | None:
    engine = get_engine()
    header = request.headers.get("Authorization") if is_api else None
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token = auth.check_token(engine, credentials.strip())
        if token is None:
            raise Unauthorized("the API token is unknown or revoked")
        return Principal("token", token.id, token.name, token.role, token.tenants)
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    user = auth.get_user(engine, uid)
    if user is None or user.disabled or session.get("stamp") != user.stamp:
        session.pop("uid", None)
        session.pop("stamp", None)
        if user is not None and not user.disabled:
            g.ended_user_id = user.id  # a form this session posts is kept for the user (webapp/drafts.py)
        return None
    return Principal("user", user.id, user.username, user.role, user.tenants)


def _authorize(principal: Principal | None, roles: frozenset[str]) -> None:
    if principal is None:
        raise Unauthorized("log in first")
    if principal.role not in roles:
        raise Forbidden(
            f"the {principal.role} role may not {request.method} {request.path}",
            details={"role": principal.role, "allowed_roles": sorted(roles)},
        )


def _after(response):
    if g.get("principal") is not None:
        response.headers.setdefault("Cache-Control", "no-store")
        response.vary.add("Cookie")
    if response.status_code == 401 and request.path.startswith(API_PREFIX):
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="ccanalytics"')
    return response


# ---------------------------------------------------------------------------------------- the pages
LOGIN_PAGE = """{% extends "base.html" %}
{% block title %}Вход{% endblock %}
{% block content %}
<section style="max-width:360px">
  <h1>Вход в админку</h1>
  {% if draft %}<p class="flash warn" role="status">{{ draft_notice }}</p>{% endif %}
  {% if error %}<p role="alert" style="color:#b42318">{{ error }}</p>{% endif %}
  <form method="post" action="{{ url_for('auth.login') }}">
    {{ csrf_field() }}
    <input type="hidden" name="next" value="{{ next }}">
    {% if draft %}<input type="hidden" name="draft" value="{{ draft }}">{% endif %}
    <p><label>Имя пользователя<br>
      <input name="username" autocomplete="username" required autofocus value="{{ username }}" maxlength="100">
    </label></p>
    <p><label>Пароль<br>
      <input name="password" type="password" autocomplete="current-password" required maxlength="1024">
    </label></p>
    <p><button type="submit">Войти</button></p>
  </form>
  <p class="muted">Нет учётной записи? Её создаёт администратор:
    <code>ccanalytics users add ИМЯ --role analyst</code></p>
</section>
{% endblock %}
"""

LOGOUT_PAGE = """{% extends "base.html" %}
{% block title %}Выход{% endblock %}
{% block content %}
<h1>Выйти из админки?</h1>
<p>Вы вошли как <b>{{ current_user.name }}</b> ({{ roles[current_user.role] }}).</p>
<form method="post" action="{{ url_for('auth.logout') }}">
  {{ csrf_field() }}
  <button type="submit">Выйти</button>
</form>
{% endblock %}
"""

ROLE_NAMES = labels.ROLES


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no '//' or backslash tricks)."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(c in target for c in "\\\r\n\t\x00"):
        return "/"
    return target


def _login_page(*, error: str | None = None, status: int = 200, username: str = "", next: str = "/"):
    draft = drafts.valid_key(request.values.get("draft"))
    html = render_template_string(
        LOGIN_PAGE, error=error, username=username[:100], next=next, draft=draft, draft_notice=drafts.LOGIN_NOTICE
    )
    return html, status


def _policy() -> logins.LoginPolicy:
    """The login throttling policy from the app's config (CCA_LOGIN_* settings; see docs/deployment.md)."""
    cfg = current_app.config
    seconds = timedelta(seconds=1)
    return logins.LoginPolicy(
        per_client_account=int(cfg.get("LOGIN_MAX_FAILURES", logins.LOGIN_MAX_FAILURES)),
        per_client=int(cfg.get("LOGIN_MAX_FAILURES_PER_IP", logins.LOGIN_MAX_FAILURES_PER_IP)),
        per_account=int(cfg.get("LOGIN_MAX_FAILURES_PER_ACCOUNT", logins.LOGIN_MAX_FAILURES_PER_ACCOUNT)),
        window=timedelta(minutes=cfg.get("LOGIN_WINDOW_MINUTES", logins.LOGIN_WINDOW.total_seconds() / 60)),
        first_delay=seconds * cfg.get("LOGIN_FIRST_DELAY_SECONDS", logins.LOGIN_FIRST_DELAY.total_seconds()),
        account_max_delay=seconds
        * cfg.get("LOGIN_ACCOUNT_MAX_DELAY_SECONDS", logins.LOGIN_ACCOUNT_MAX_DELAY.total_seconds()),
    )


def _wait_words(seconds: int) -> str:
    """«5 с», «3 мин.»: how long until the next login attempt is checked."""
    return f"{seconds} с" if seconds < 60 else f"{-(-seconds // 60)} мин."


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    nxt = safe_next(request.values.get("next"))
    if request.method == "GET":
        return _login_page(next=nxt)
    if not csrf_ok():
        return _login_page(error="Форма устарела: обновите страницу и войдите снова.", status=400, next=nxt)
    username = request.form.get("username", "")
    try:
        user = logins.login(
            get_engine(), username, request.form.get("password", ""), ip=request.remote_addr, policy=_policy()
        )
    except auth.TooManyAttempts as exc:
        page, status = _login_page(
            error=f"Слишком много неудачных попыток входа. Попробуйте снова через {_wait_words(exc.retry_after)}.",
            status=429,
            username=username,
            next=nxt,
        )
        return page, status, {"Retry-After": str(exc.retry_after)}
    except auth.Unauthorized:
        return _login_page(error="Неверное имя пользователя или пароль.", status=401, username=username, next=nxt)
    session.clear()  # a fresh session: no fixation
    session.permanent = True
    session["uid"] = user.id
    session["stamp"] = user.stamp
    session["csrf"] = secrets.token_urlsafe(32)
    draft = request.form.get("draft")
    response = redirect(url_for("drafts.show", key=draft) if drafts.claimable(draft, user.id) else nxt)
    drafts.remember_owner(response, user.id)
    return response


@bp.route("/logout", methods=["GET", "POST"])
@role_required("admin", "analyst")
def logout():
    if request.method == "GET":
        return render_template_string(LOGOUT_PAGE, roles=ROLE_NAMES)
    principal = current_principal()
    if principal is not None and principal.kind == "user":
        auth.end_sessions(get_engine(), principal.id)  # every session of the user, copied cookies too
    session.clear()
    response = redirect(url_for("auth.login"))
    drafts.forget_owner(response)
    return response
