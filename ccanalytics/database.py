"""Engines: production PostgreSQL from a URL, or the embedded server when no URL is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from . import embedded
from .errors import ConfigError, DatabaseUnavailable

if TYPE_CHECKING:
    from .config import Settings


def resolve_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: ``CCA_DATABASE_URL`` or the (started) embedded server."""
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
) -> Engine:
    """An engine whose sessions run in UTC with a statement timeout.

    Timestamps are stored as timestamptz; conversion to Europe/Kyiv happens in the library, so the
    session time zone never changes a result.
    """
    options = "-c timezone=UTC"
    if statement_timeout_ms:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    return sa.create_engine(
        embedded.to_sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"options": options, "application_name": application_name},
    )


def check_connection(engine: Engine) -> None:
    """Raise DatabaseUnavailable with a readable message when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {safe_url(engine.url)}: {str(exc.orig).strip().splitlines()[0]}"
        ) from exc


def safe_url(url: sa.URL | str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
