"""Errors as people see them: a page in the site's layout, in Russian, for a browser; JSON for the API.

* Every error of the library (:class:`ccanalytics.core.errors.CCAError`) and every HTTP error (404 of an
  unknown address, 405, 413, a 500) that reaches the app: under /api/ — or when the client asked for
  JSON (a JSON body, ``Accept: application/json``) — the API's ``{"error": {"code", "message",
  "details"}}`` (with ``message_ru`` when the error has a Russian text); otherwise ``page_error.html``
  with a Russian title and :attr:`CCAError.message_ru`. Blueprints keep their own handlers where they
  add something (the journal's links).
* An expired or missing CSRF token on a form (the session ended, the page stayed open for a night) is
  not a bare error: the form comes back with what the user typed, a fresh token and a Russian notice.
  A view names the page that shows its form again with ``@keeps_form(render)`` (``render(message,
  **view_args)`` reads ``request.form``); without one, a generic page re-creates the form from the
  posted fields. Nothing is written: the view itself does not run. Passwords are never sent back.
  The same page brings back a form posted after the session had ended, once the user has logged in
  again (:func:`form_again`, webapp/drafts.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, render_template, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from ccanalytics.auth.formdrafts import is_secret
from ccanalytics.core import labels
from ccanalytics.core.errors import RU_BY_STATUS, RU_TITLES, CCAError, CSRFError, Forbidden

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
LONG_FIELD = 80  # a posted value longer than this, or with a line break, comes back in a textarea


def wants_json() -> bool:
    """JSON for the API and for clients that ask for it; a page for a browser."""
    if request.path.startswith(API_PREFIX) or request.is_json:
        return True
    accept = request.accept_mimetypes
    return accept["application/json"] > accept["text/html"]


def keeps_form(render: Callable[..., Any]) -> Callable[[Callable], Callable]:
    """Mark a form view: ``render(message, **view_args)`` shows its form again with the posted values
    and ``message`` (used when the CSRF token expired). Put it right under the route decorator."""

    def decorate(view: Callable) -> Callable:
        view._cca_form_page = render  # type: ignore[attr-defined]
        return view

    return decorate


def error_page(status: int, message: str, *, title: str | None = None, headers: dict[str, str] | None = None):
    """The site's error page with a Russian title and message."""
    try:
        html = render_template(
            "page_error.html", title=title or RU_TITLES.get(status, RU_TITLES[500]), message=message, links="scoped"
        )
    except Exception:  # the layout itself failed (a broken template, the database behind the header)
        log.exception("the error page could not be rendered")
        html = (
            '<!doctype html><html lang="ru"><meta charset="utf-8"><title>Ошибка</title>'
            f"<h1>{escape(RU_TITLES.get(status, RU_TITLES[500]))}</h1><p>{escape(message)}</p></html>"
        )
    return html, status, headers or {}


def _forbidden_ru(exc: Forbidden) -> str:
    if exc.ru:
        return exc.ru
    role = (exc.details or {}).get("role") if isinstance(exc.details, dict) else None
    if role == "analyst":
        return "Роль «аналитик» позволяет только просматривать страницы: это действие доступно администратору."
    if role:
        return f"Роли «{labels.role(role)}» это действие недоступно."
    return exc.message_ru


def cca_error(exc: CCAError):
    if wants_json():
        body = exc.to_dict()
        if exc.ru:
            body["message_ru"] = exc.ru
        retry_after = getattr(exc, "retry_after", None)  # TooManyAttempts, DeliveryError
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        return {"error": body}, exc.http_status, headers
    if isinstance(exc, CSRFError):
        return form_expired(exc)
    message = _forbidden_ru(exc) if isinstance(exc, Forbidden) else exc.message_ru
    return error_page(exc.http_status, message)


def http_error(exc: HTTPException):
    """A routing or protocol error of a page (the API's are JSON, webapp/api.py): the Russian page."""
    status = exc.code or 500
    if status >= 500:
        log.error("%s %s answered %s", request.method, request.path, status)
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    return error_page(status, RU_BY_STATUS.get(status, RU_BY_STATUS[500]), headers=headers)


# ------------------------------------------------------------------------------------ expired forms
def form_expired(exc: CSRFError):
    endpoint = request.endpoint if request.method == "POST" else None
    return form_again(exc.message_ru, endpoint=endpoint, view_args=request.view_args or {}, action=request.path)


def form_again(
    message: str,
    *,
    endpoint: str | None,
    view_args: dict[str, Any],
    action: str,
    status: int = 400,
    title: str | None = None,
):
    """The form posted to ``action`` (``endpoint`` with ``view_args``) shown again with ``request.form``
    and ``message``: its own page when the view is marked ``@keeps_form``, else a generic page that
    re-creates the form from the fields (secrets left out)."""
    view = current_app.view_functions.get(endpoint or "")
    render = getattr(view, "_cca_form_page", None)
    if render is not None:
        try:
            result = render(message, **view_args)
        except CCAError:  # the object behind the form is gone meanwhile: the generic page keeps the input
            log.info("the form page of %s could not be shown again", endpoint)
        else:
            page = result[0] if isinstance(result, tuple) else result
            return page, status
    fields = []
    for name, value in request.form.items(multi=True):
        if is_secret(name):
            continue
        label = labels.FORM_FIELDS.get(name)
        kind = "hidden" if label is None else ("textarea" if len(value) > LONG_FIELD or "\n" in value else "text")
        fields.append({"name": name, "value": value, "label": label, "kind": kind})
    secret = any(is_secret(name) and name != "csrf_token" for name in request.form)
    page = render_template(
        "form_expired.html", message=message, action=action, fields=fields, secret=secret, title=title
    )
    return page, status


def init_app(app: Flask) -> None:
    """The Russian error pages and JSON errors (register after the blueprints: this is the app-wide
    fallback; webapp/api.py's handler of HTTP errors answers JSON under /api/ and calls ``http_error``
    for pages)."""
    app.register_error_handler(CCAError, cca_error)
