"""The embedded PostgreSQL: a real server from the ``pgserver`` wheel in a local data directory.

Several processes (admin, scheduler, notebooks, CLI) may attach to the same data directory at once:
pgserver keeps a list of attached processes and, in ``stop`` mode, stops the server when the last one
exits. The server listens on a unix socket only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}
_CREATE_DB_LOCK = 0x63636164  # "ccad"


def _prepare_runtime_dir() -> None:
    """pgserver keeps its inter-process lock under XDG_RUNTIME_DIR, read when it is imported.

    Every process of one user must agree on that directory, or two of them could race to start the
    same server. Without a usable one, use a fixed private directory under the temp dir.
    """
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir() and os.access(current, os.W_OK):
        return
    runtime = Path(tempfile.gettempdir()) / f"ccanalytics-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chmod(runtime, 0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def start(pg_data: Path, *, database: str = "ccanalytics", cleanup_mode: str | None = "stop") -> str:
    """Start (or attach to) the embedded server in ``pg_data``; create ``database`` if missing.

    Returns a SQLAlchemy URL for psycopg 3.
    """
    pg_data = Path(pg_data).resolve()
    server = _servers.get(pg_data)
    if server is None:
        _prepare_runtime_dir()
        # create the directory first: pgserver itself refuses an existing one when two processes race
        pg_data.parent.mkdir(parents=True, exist_ok=True)
        pg_data.mkdir(exist_ok=True)
        try:
            import pgserver

            server = pgserver.get_server(pg_data, cleanup_mode=cleanup_mode)
        except Exception as exc:  # pgserver raises assorted subprocess/OS errors
            log_file = pg_data / "log"
            hint = f"; see {log_file}" if log_file.exists() else ""
            raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {pg_data}: {exc}{hint}") from exc
        _servers[pg_data] = server
    _ensure_database(server, database)
    return to_sqlalchemy_url(server.get_uri(database))


def _ensure_database(server: Any, database: str) -> None:
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        # processes starting together would race on CREATE DATABASE: let them take turns
        conn.execute("SELECT pg_advisory_lock(%s)", (_CREATE_DB_LOCK,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{_quote_ident_body(database)}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_DB_LOCK,))


def _quote_ident_body(name: str) -> str:
    return name.replace('"', '""')


def to_sqlalchemy_url(url: str) -> str:
    """Normalise a libpq URL (``postgresql://…``) to the psycopg 3 SQLAlchemy dialect."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
