"""The /api/v1 blueprint the JSON API's views register on (webapp/api.py assembles them), its JSON
error answers, and the helpers every view shares: the time zone, who reads, date ranges, the prompt resolver."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.prompts.resolver import PromptResolver

from . import errorpages
from .auth import current_principal
from .db import get_engine

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("webapp.api")  # the API's logger, by the name docs/operations.md gives it

ALL_ROLES = ("admin", "analyst", "service")
MAX_RANGE_DAYS = 400  # calls, quality: one request covers at most this many days


def records(frame, json_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows = frame.to_dicts()
    for row in rows:
        for name in json_columns:
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def tz() -> str:
    return current_app.config["TIMEZONE"]


def reader_role() -> str | None:
    principal = current_principal()
    return principal.role if principal else None


def actor() -> str:
    principal = current_principal()
    return principal.actor if principal else "anonymous"


def days(q: dict[str, Any], *, default_days: int, max_days: int = MAX_RANGE_DAYS) -> tuple[date, date]:
    first, last = timeutil.resolve_days(q.get("date_from"), q.get("date_to"), tz(), default_days=default_days)
    if (last - first).days + 1 > max_days:
        raise InvalidArgument(f"the date range covers {(last - first).days + 1} days; at most {max_days}")
    return first, last


def prompt_resolver():
    ext = current_app.extensions.setdefault("cca", {})
    if "prompt_resolver" not in ext:
        ext["prompt_resolver"] = PromptResolver(get_engine(), ttl_seconds=5.0)
    return ext["prompt_resolver"]


def prompts_changed() -> None:
    resolver = current_app.extensions.get("cca", {}).get("prompt_resolver")
    if resolver is not None:
        resolver.invalidate()


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Routing and protocol errors (404, 405, 413…) as JSON under /api/; a Russian page elsewhere."""
    if exc.code is None or exc.code < 400:
        return exc
    if not request.path.startswith("/api/"):
        return errorpages.http_error(exc)
    code = re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")
    message = {404: "no such endpoint", 405: f"method {request.method} is not allowed here"}.get(
        exc.code, exc.description or exc.name
    )
    if exc.code >= 500:
        message = "internal error"
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    return {"error": {"code": code, "message": message, "details": None}}, exc.code, headers
