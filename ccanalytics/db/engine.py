"""Engines: production PostgreSQL from a URL, or the embedded server when no URL is configured."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ccanalytics.core.errors import ConfigError, DatabaseUnavailable, WriteRefused
from ccanalytics.db import embedded

if TYPE_CHECKING:
    import psycopg

    from ccanalytics.core.config import Settings


READ_ONLY_OPTION = "-c default_transaction_read_only=on"
# the execution option saying the engine's sessions already run with this max_parallel_workers_per_gather
PARALLEL_WORKERS_OPTION = "cca_parallel_workers"
# A pooled connection idle this long is tested (SELECT 1) before it is handed out; one in use a moment
# ago is not. SQLAlchemy's pool_pre_ping tests every checkout: three extra round trips for an admin page
# under load. A database restart leaves the connections idle longer than this, so they are still replaced.
PING_IDLE_SECONDS = 2.0
# read_only_sql_transaction, insufficient_privilege: the database refused a change
WRITE_REFUSED_SQLSTATES = ("25006", "42501")


def resolve_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: ``CCA_DATABASE_URL`` or the (started) embedded server; with
    ``CCA_READ_ONLY`` its sessions start read-only; ``CCA_QUALITY_SOURCE`` / ``CCA_COST_SOURCE`` other
    than ccanalytics set the session settings the view ``cca_calls`` reads (migration 015)."""
    url = _resolve_url(settings)
    extra = [READ_ONLY_OPTION] if settings.read_only else []
    if settings.quality_source != "ccanalytics":
        extra.append(f"-c cca.quality_source={settings.quality_source}")
    if settings.cost_source != "ccanalytics":
        extra.append(f"-c cca.cost_source={settings.cost_source}")
    if extra:
        parsed = make_url(url)
        given = parsed.query.get("options")  # a tuple when the URL gives options more than once
        given_parts = (given,) if isinstance(given, str) else given or ()
        options = " ".join(filter(None, (*given_parts, *extra)))
        url = parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    return url


def _resolve_url(settings: Settings) -> str:
    if settings.database_url:
        url = embedded.to_sqlalchemy_url(settings.database_url.strip())
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise ConfigError(f"CCA_DATABASE_URL is not a valid database URL: {exc}") from exc
        if parsed.get_backend_name() != "postgresql":
            raise ConfigError(f"CCA_DATABASE_URL must point at PostgreSQL, got '{parsed.get_backend_name()}'")
        return url
    return embedded.start(settings.resolved_pg_data(), database=settings.embedded_database)


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    statement_timeout_ms: int = 60_000,
    application_name: str = "ccanalytics",
    parallel_workers: int | None = None,
) -> Engine:
    """An engine whose sessions run in UTC with a statement timeout (and, when given, at most
    ``parallel_workers`` parallel workers per query).

    Timestamps are stored as timestamptz; conversion to the business time zone (``CCA_TIMEZONE``)
    happens in the library, so the session time zone never changes a result.
    """
    options = "-c timezone=UTC"
    if statement_timeout_ms:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    if parallel_workers is not None:
        options += f" -c max_parallel_workers_per_gather={int(parallel_workers)}"
    parsed = make_url(embedded.to_sqlalchemy_url(url))
    if parsed.query.get("options"):  # options given in the URL (CCA_READ_ONLY adds one) come first
        options = f"{parsed.query['options']} {options}"
        parsed = parsed.difference_update_query(["options"])
    engine = sa.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"options": options, "application_name": application_name},
    )
    if parallel_workers is not None:  # code that would set it per transaction can see it is set
        engine.update_execution_options(**{PARALLEL_WORKERS_OPTION: int(parallel_workers)})
    sa.event.listen(engine, "handle_error", _refused_write)
    sa.event.listen(engine, "checkin", _idle_from)
    sa.event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _idle_from(dbapi_connection: Any, record: Any) -> None:
    record.info["cca_idle_from"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Test a connection that waited in the pool longer than PING_IDLE_SECONDS; a dead one is replaced
    (the pool tries a new connection on DisconnectionError)."""
    idle_from = record.info.get("cca_idle_from")
    if idle_from is None or time.monotonic() - idle_from < PING_IDLE_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as exc:  # any failure of the test means: not this connection
        raise sa.exc.DisconnectionError(str(exc)) from exc


def engine_from_settings(
    settings: Settings,
    *,
    application_name: str,
    url: str | None = None,
    pool_size: int | None = None,
    statement_timeout_ms: int | None = None,
    parallel_workers: int | None = None,
) -> Engine:
    """The engine of a process, from its one ``Settings``: the URL they resolve to (or ``url``, already
    resolved: the embedded server started before a fork, a URL with a connect timeout added),
    ``CCA_DB_POOL_SIZE`` connections and ``CCA_STATEMENT_TIMEOUT_MS`` unless given here."""
    return create_engine(
        url or resolve_url(settings),
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
        statement_timeout_ms=settings.statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms,
        application_name=application_name,
        parallel_workers=parallel_workers,
    )


def is_write_refused(exc: BaseException) -> bool:
    """True when ``exc`` says the database refused a change (read-only session, missing privilege)."""
    if isinstance(exc, WriteRefused):
        return True
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) in WRITE_REFUSED_SQLSTATES


def _refused_write(context: sa.engine.ExceptionContext) -> None:
    """Raise WriteRefused (a one-line error at every edge) instead of the driver's error."""
    orig = context.original_exception
    state = getattr(orig, "sqlstate", None)
    if state not in WRITE_REFUSED_SQLSTATES:
        return
    reason = str(orig).strip().splitlines()[0]
    if state == "25006":
        hint = "this connection is read-only (CCA_READ_ONLY or a read replica)"
    else:
        hint = "the database role lacks the privilege (a read-only role?)"
    raise WriteRefused(f"the database refused: {reason}; {hint}. See docs/attach.md") from context.sqlalchemy_exception


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailable with a readable message when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {safe_url(engine.url)}: {str(exc.orig).strip().splitlines()[0]}"
        ) from exc


def driver_connection(conn: sa.Connection) -> psycopg.Connection:
    """The psycopg connection under ``conn`` (to run SQL text as is, COPY, autocommit)."""
    raw = conn.connection.driver_connection
    if raw is None:  # only after the connection was closed or invalidated
        raise DatabaseUnavailable("the database connection is closed")
    return raw


def safe_url(url: sa.URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
