"""The embedded PostgreSQL: a real server from the ``pgserver`` wheel in a local data directory.

Several processes (admin, scheduler, notebooks, CLI) may attach to the same data directory at once:
pgserver keeps a list of attached processes and, in ``stop`` mode, stops the server when the last one
exits. The server listens on a unix socket only.

What "exits" covers here (pgserver alone only stops the server from a normal interpreter exit):

- SIGTERM and SIGHUP end an attached process like Ctrl-C does (``SystemExit``, so ``finally`` blocks
  and the exit hooks run), unless the process installed its own handler (gunicorn's arbiter does, and
  exits through ``sys.exit`` too);
- a process that died without its exit hooks (SIGKILL, a crash) no longer holds the server: the list
  of attached processes is pruned of dead ones when a process attaches and when one leaves;
- a forked child (gunicorn workers, ``multiprocessing`` with fork) uses its parent's attachment and
  never stops the server itself.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import psutil

from ccanalytics.core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

_servers: dict[Path, Any] = {}
_CREATE_DB_LOCK = 0x63636164  # "ccad"
# signals that end an attached process through SystemExit (exit code 128 + signal number)
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


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
            import pgserver  # lazy: pgserver reads XDG_RUNTIME_DIR when imported (_prepare_runtime_dir first)

            _prune_dead_holders(pg_data)
            server = pgserver.get_server(pg_data, cleanup_mode=cleanup_mode)
        except Exception as exc:  # pgserver raises assorted subprocess/OS errors
            log_file = pg_data / "log"
            hint = f"; see {log_file}" if log_file.exists() else ""
            raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {pg_data}: {exc}{hint}") from exc
        _servers[pg_data] = server
        # registered after pgserver's own exit hook, so it runs first (exit hooks run last-in first-out)
        atexit.register(_prune_dead_holders, pg_data)
        exit_on_signals()
    _ensure_database(server, database)
    return to_sqlalchemy_url(server.get_uri(database))


HANDLES_FILE = ".handle_pids.json"  # pgserver's list of attached processes, in the data directory


def holders(pg_data: Path) -> list[int]:
    """The processes attached to the embedded server in ``pg_data`` (pgserver's list, as stored)."""
    path = Path(pg_data) / HANDLES_FILE
    try:
        return [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # no such process (or not ours to see: then it is not one of ours)
        return False


def _prune_dead_holders(pg_data: Path) -> None:
    """Drop processes that died without leaving (SIGKILL, a crash) from pgserver's list, under its
    inter-process lock: otherwise the server outlives every real user. A process id reused by an
    unrelated process since still counts (the server then stops when that one exits)."""
    path = Path(pg_data) / HANDLES_FILE
    if not path.exists():
        return
    from pgserver.postgres_server import PostgresServer  # lazy: pgserver, as in start()

    with PostgresServer._lock:
        pids = holders(pg_data)
        alive = [p for p in pids if _alive(p)]
        if alive != pids:
            log.info("embedded PostgreSQL: dropping %d dead process(es) from its users", len(pids) - len(alive))
            path.write_text(json.dumps(alive))


def _exit_by_signal(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


def exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP end this process like Ctrl-C (through ``SystemExit``: cleanup and exit
    hooks run, the last process attached stops the server). Only from the main thread, and only for
    a signal whose handler is still the default: a server that handles them itself keeps its own."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in EXIT_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _exit_by_signal)


def _forget_in_child() -> None:
    """A forked child uses its parent's attachment: it neither leaves nor stops the server."""
    for server in _servers.values():  # kept: start() in the child reuses the parent's attachment
        atexit.unregister(server._cleanup)
    atexit.unregister(_prune_dead_holders)


os.register_at_fork(after_in_child=_forget_in_child)


def _ensure_database(server: Any, database: str) -> None:
    import psycopg  # lazy: psycopg

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
