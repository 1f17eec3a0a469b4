"""The app's database engine (given in config — tests, ``ccanalytics serve`` — or built from settings),
and what the admin does while that database is unreachable.

The admin starts without its database and keeps running through an outage: pages answer 503 with a
Russian banner (and refresh themselves), the API answers 503 JSON, /healthz stays 200, /readyz is
503. ``DatabaseMonitor`` knows whether the database is up without asking it on every request: it
probes only while the database is down (at most every ``DB_RETRY_SECONDS``, 2 s by default) and
after a query failed with a connection error. When a probe succeeds, pages work again by themselves.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import sqlalchemy as sa
from flask import Flask, current_app, render_template_string, request
from sqlalchemy.engine import Engine

from ccanalytics.core.config import Settings
from ccanalytics.core.errors import CCAError, DatabaseUnavailable
from ccanalytics.db.engine import check_connection, engine_from_settings
from ccanalytics.db.migrations import status

from .public import is_public

log = logging.getLogger(__name__)

# endpoints that never need the database, or answer for themselves when it is gone
_NO_DB_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "prom.metrics", "static"})
UNAVAILABLE_MESSAGE = "the database is unavailable; the admin recovers by itself when it is back"
RETRY_AFTER_SECONDS = 15

UNAVAILABLE_PAGE = """{% extends "base.html" %}
{% block title %}База данных недоступна{% endblock %}
{% block content %}
<h1>Страница временно недоступна</h1>
<p>Админка работает, но не может связаться с базой данных. Эта страница обновится сама,
как только база снова будет доступна.</p>
<p class="muted">Администратору: проверьте PostgreSQL и <code>CCA_DATABASE_URL</code>;
<code>ccanalytics doctor</code> покажет, что именно не так.</p>
{% endblock %}
"""


SCHEMA_MESSAGE = "the database has no ccanalytics schema yet: run `ccanalytics db migrate`"

SCHEMA_PAGE = """{% extends "base.html" %}
{% block title %}База данных ещё не подключена{% endblock %}
{% block content %}
<h1>Админка ждёт подключения к базе звонков</h1>
<p>База данных доступна, но в ней ещё нет таблиц ccanalytics: она не подключена к базе call processor.
Эта страница обновится сама, как только подключение будет выполнено.</p>
<p>Администратору: выполните <code>ccanalytics db check</code> (покажет, что будет сделано, ничего не меняя),
затем <code>ccanalytics db migrate</code>. Таблицы и данные call processor при этом не меняются
(docs/attach.md).</p>
{% if problem %}<p class="muted">Последняя попытка: {{ problem }}</p>{% endif %}
{% endblock %}
"""


class SchemaGate:
    """Whether the database has ccanalytics's schema, for an admin started before ``db migrate`` ran on
    the call processor's database: until then pages explain what to do and the API answers 503; the
    state is checked again at most every ``retry_seconds``, so the admin recovers by itself.

    ``ready=True``: ``ccanalytics serve`` saw the schema in place before it forked the worker (a schema
    does not go away again), so the worker asks nothing. While no answer is known yet, concurrent
    requests wait for the one check in flight: a fresh worker's first burst of requests must not be
    told "no schema" just because the first request's check has not returned yet (issue 19)."""

    def __init__(
        self,
        engine_of,
        *,
        problem: str | None = None,
        retry_seconds: float = 5.0,
        clock=time.monotonic,
        ready: bool = False,
        check=None,
    ):
        self._engine_of = engine_of
        self.problem = problem  # why the schema is not ready (a refused attach says why), if known
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._check = check or self._schema_up_to_date
        self._ready = ready
        self._known = ready  # an answer exists (the last check's, or the serving process's)
        self._waited = False  # pages were refused: say when they are served again
        self._next = 0.0
        self._checking = threading.Lock()  # one check at a time

    def ready(self) -> bool:
        if self._ready:  # once in place, the schema stays
            return True
        if self._known:
            if self._clock() < self._next or not self._checking.acquire(blocking=False):
                return False  # checked a moment ago, or being checked again: the last answer stands
        else:
            self._checking.acquire()  # the first answer: wait for the check in flight
        try:
            if self._ready or (self._known and self._clock() < self._next):
                return self._ready  # another thread answered while this one waited
            return self._check_now()
        finally:
            self._checking.release()

    def _check_now(self) -> bool:
        try:
            ready = self._check()
        except DatabaseUnavailable:
            # an outage, not a missing schema: no answer is cached; the database's own 503 page says it
            raise
        except sa.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"schema check: {_first_line(exc)}") from exc
        except (CCAError, sa.exc.SQLAlchemyError) as exc:
            log.warning("schema check failed: %s", _first_line(exc))
            ready = False
        self._ready, self._known = ready, True
        self._next = self._clock() + self.retry_seconds
        if ready and self._waited:
            log.warning("ccanalytics schema is in place: the admin serves pages")
        self._waited = not ready
        return ready

    def _schema_up_to_date(self) -> bool:
        return status(self._engine_of()).up_to_date


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def init_app(app: Flask) -> None:
    app.extensions.setdefault("cca", {})
    if app.config.get("ENGINE") is not None:
        app.extensions["cca"]["engine"] = app.config["ENGINE"]
    app.extensions["cca"]["db_monitor"] = DatabaseMonitor(
        get_engine_of=lambda: get_engine(), retry_seconds=float(app.config.get("DB_RETRY_SECONDS", 2.0))
    )
    if app.config.get("SCHEMA_GATE"):
        app.extensions["cca"]["schema_gate"] = SchemaGate(
            lambda: get_engine(), problem=app.config.get("SCHEMA_PROBLEM"), ready=bool(app.config.get("SCHEMA_READY"))
        )
        app.before_request_funcs.setdefault(None, []).insert(0, _require_schema)
    # runs before the login guard, which needs the database to know the user
    app.before_request_funcs.setdefault(None, []).insert(0, _require_database)
    app.register_error_handler(DatabaseUnavailable, _unavailable_error)
    app.register_error_handler(sa.exc.OperationalError, _driver_error)
    app.register_error_handler(sa.exc.InterfaceError, _driver_error)
    app.register_error_handler(psycopg.OperationalError, _driver_error)
    app.context_processor(lambda: {"db_unavailable": monitor().is_down})


# Pages are short queries from many readers at once on few cores: PostgreSQL's parallel workers only add
# their start-up to them (50 clients on 2 cores: 110 → 118 requests/s without; docs/benchmarks.md, Serving).
ADMIN_PARALLEL_WORKERS = 0


def admin_engine(settings: Settings, *, url: str | None = None) -> Engine:
    """The admin's engine (one per worker process)."""
    return engine_from_settings(
        settings, url=url, application_name="ccanalytics-admin", parallel_workers=ADMIN_PARALLEL_WORKERS
    )


def get_engine() -> Engine:
    ext = current_app.extensions["cca"]
    if "engine" not in ext:
        ext["engine"] = admin_engine(ext["settings"])
    return ext["engine"]


class DatabaseMonitor:
    """Up/down state of the database, shared by the threads of one process.

    ``available()`` costs nothing while the database is up (the pool's pre-ping and the error
    handlers notice an outage); while it is down, one thread at a time probes, at most every
    ``retry_seconds``, and the others get the cached answer at once. Before the first answer (a
    fresh worker process), concurrent requests wait for the one probe in flight instead of each
    opening a connection of its own.

    Only a failed connection is an outage: a probe that waited in vain for a connection of this
    process's own pool (every one busy with requests) says the database is busy, not gone, and
    changes nothing (issue 19)."""

    def __init__(self, get_engine_of, *, retry_seconds: float = 2.0, clock=time.monotonic, check=None) -> None:
        self._engine_of = get_engine_of
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._check = check or (lambda: check_connection(self._engine_of()))
        self._lock = threading.Lock()
        self._first = threading.Lock()  # held by the probe that gives the first answer
        self._state: bool | None = None  # None: not known yet
        self._next_probe = 0.0
        self._down_since: float | None = None
        self.last_error: str | None = None

    @property
    def is_down(self) -> bool:
        return self._state is False

    def available(self) -> bool:
        with self._lock:
            if self._state is True:
                return True
            if self._state is False:
                if self._clock() < self._next_probe:
                    return False
                self._next_probe = self._clock() + self.retry_seconds  # this thread probes; others wait for it
                first = False
            else:
                first = True
        if not first:
            return self.probe()
        with self._first:  # the first answer: one probe, the other threads wait for it
            if self._state is not None:
                return self._state
            return self.probe()

    def probe(self) -> bool:
        """Ask the database now and remember the answer."""
        try:
            self._check()
        except sa.exc.TimeoutError as exc:  # the pool's wait, not the database's
            log.warning("database probe found every pooled connection busy: %s", _first_line(exc))
            return self._state is not False
        except CCAError as exc:
            self._mark_down(exc.message)
            return False
        except Exception as exc:  # noqa: BLE001 — a URL that cannot even build an engine is an outage too
            self._mark_down(_first_line(exc))
            return False
        self._mark_up()
        return True

    def _mark_down(self, error: str) -> None:
        with self._lock:
            was = self._state
            self._state = False
            self.last_error = error
            self._next_probe = self._clock() + self.retry_seconds
            if was is not False:
                self._down_since = self._clock()
        if was is not False:
            log.error("database unavailable: %s; pages show a banner until it is back", error)

    def _mark_up(self) -> None:
        with self._lock:
            was, since = self._state, self._down_since
            self._state, self._down_since, self.last_error = True, None, None
        if was is False:
            seconds = self._clock() - since if since is not None else 0.0
            log.warning("database is back after %.0f s", seconds, extra={"down_seconds": round(seconds, 1)})


def monitor() -> DatabaseMonitor:
    return current_app.extensions["cca"]["db_monitor"]


def _require_database():
    endpoint = request.endpoint
    if endpoint in _NO_DB_ENDPOINTS or (endpoint or "").endswith(".static"):
        return None
    if monitor().available():
        return None
    if request.method == "GET" and is_public(endpoint):
        return None  # the login page renders (with the banner); posting it needs the database
    return unavailable_response()


def _require_schema():
    endpoint = request.endpoint
    if endpoint in _NO_DB_ENDPOINTS or (endpoint or "").endswith(".static"):
        return None
    gate = current_app.extensions["cca"]["schema_gate"]
    if gate.ready():
        return None
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        body = {"error": {"code": "schema_not_ready", "message": SCHEMA_MESSAGE, "details": gate.problem}}
        return body, 503, headers
    headers["Refresh"] = str(RETRY_AFTER_SECONDS)
    headers["Cache-Control"] = "no-store"
    return render_template_string(SCHEMA_PAGE, problem=gate.problem), 503, headers


def schema_ready() -> bool:
    """False while the admin waits for ``db migrate`` (see SchemaGate); True when no gate is set."""
    gate = current_app.extensions["cca"].get("schema_gate")
    return gate is None or gate.ready()


def unavailable_response():
    """503: JSON under /api/, else the page with the banner, which reloads itself."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        body = {"error": {"code": DatabaseUnavailable.code, "message": UNAVAILABLE_MESSAGE, "details": None}}
        return body, 503, headers
    headers["Refresh"] = str(RETRY_AFTER_SECONDS)
    headers["Cache-Control"] = "no-store"
    return render_template_string(UNAVAILABLE_PAGE, db_unavailable=True), 503, headers


def _unavailable_error(exc: DatabaseUnavailable):
    monitor()._mark_down(exc.message)
    return unavailable_response()


def _driver_error(exc: Exception):
    """A query failed with a driver-level error: an outage when a probe fails too, else a real 500."""
    if monitor().probe():
        raise exc
    return unavailable_response()
