"""Request ids and the access log of the admin.

Every request gets a ``request_id``: the caller's ``X-Request-ID`` when it is a sane token (a proxy
or the call processor sets it), otherwise a new one. It is echoed in the ``X-Request-ID`` response
header, and every log record emitted while the request runs carries it (a log-record factory adds
the attribute, so library code logging from inside a view gets it without doing anything).

One log line per request on the ``webapp.access`` logger: method, path, status, ms, user,
request_id, remote_addr, and call_id when the route names a call (``/calls/<call_id>`` …).
Successful health probes and Prometheus scrapes are logged at DEBUG: they come every few seconds.
With ``ccanalytics.ops.logs.setup()`` these are JSON lines (docs/operations.md).
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from flask import Flask, g, request

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:@/+=\-]{1,128}$")
QUIET_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "prom.metrics", "static"})

access_log = logging.getLogger("webapp.access")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("cca_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served by this thread, if any."""
    return _current.get()


def new_request_id(incoming: str | None = None) -> str:
    """``incoming`` when it is a safe token (letters, digits, ``._:@/+=-``, at most 128), else a new id."""
    if incoming and _VALID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def install_log_record_factory() -> None:
    """Make every LogRecord created while a request runs carry ``request_id`` (idempotent).

    Inside a request, do not pass ``request_id`` in ``extra=`` yourself: logging refuses to
    overwrite an attribute the record already has."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_cca_request_id", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        rid = _current.get()
        if rid is not None:
            record.request_id = rid
        return record

    factory._cca_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def init_app(app: Flask) -> None:
    """Register the request-id and access-log hooks so they run before every other hook (the login
    guard included) and after every other one."""
    install_log_record_factory()
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    # after_request hooks run in reverse order of registration: first in the list runs last
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)
    app.teardown_request(_teardown)


def _start() -> None:
    g.request_id = new_request_id(request.headers.get(HEADER))
    g.request_started = time.perf_counter()
    g.request_token = _current.set(g.request_id)


def _finish(response):
    rid = g.get("request_id")
    if rid is not None:
        response.headers[HEADER] = rid
        _log(response.status_code)
    return response


def _teardown(exc: BaseException | None) -> None:
    if g.get("request_id") is not None and not g.get("request_logged"):
        _log(500)  # an exception escaped the error handlers (only when exceptions propagate)
    token = g.pop("request_token", None)
    if token is not None:
        _current.reset(token)


def _log(status: int) -> None:
    g.request_logged = True
    started = g.get("request_started")
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    principal = g.get("principal")
    fields = {
        "method": request.method,
        "path": request.path,
        "status": status,
        "ms": ms,
        "user": principal.actor if principal is not None else None,
        "remote_addr": request.remote_addr,
    }
    call_id = (request.view_args or {}).get("call_id")
    if call_id is not None:
        fields["call_id"] = call_id
    quiet = request.endpoint in QUIET_ENDPOINTS and status < 400
    access_log.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s %s %.1f ms",
        request.method,
        request.path,
        status,
        ms or 0.0,
        extra=fields,
    )
