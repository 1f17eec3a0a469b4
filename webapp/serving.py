"""Serving the admin: gunicorn with several worker processes, each with a few threads (Linux/Unix).

Why gunicorn's ``gthread`` workers (docs/deployment.md has the measurements): one Python process
runs Python on one core at a time, and one waitress process at 95 % of a core was the admin's
ceiling under load. gunicorn's arbiter forks worker processes that share the listening socket,
replaces a worker that dies or hangs, and on SIGTERM lets every worker finish its requests before
it exits; in each worker the threads cover the time a request waits for PostgreSQL. A worker takes a
connection only while one of its threads is free, so waiting requests queue once, in the listening
socket's backlog, for whichever worker frees a thread first (see ``load_config``). Several waitress
processes would need a supervisor and a balancer written here.

The processes of ``ccanalytics serve``::

    arbiter (binds the port; attached to the embedded PostgreSQL, whose last user stops it)
     ├─ worker 1 … N   forked; each builds its own app and engine (``make_app``) after the fork
     └─ child command   optional (the embedded set-up's ``ccanalytics scheduler``): started when the
                        socket is bound, restarted if it dies, stopped (SIGTERM, then SIGKILL) before
                        the arbiter exits

The arbiter runs no threads of its own, so forking a worker never copies a lock some thread holds.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from ccanalytics.core.config import DEFAULT_SERVE_THREADS
from ccanalytics.ops.logs import JsonFormatter

log = logging.getLogger("ccanalytics.serve")

MAX_DEFAULT_WORKERS = 8
CHILD_STOP_SECONDS = 20.0  # a child that ignores SIGTERM this long is killed
CHILD_RESTART_SECONDS = 10.0  # at most one restart of a dead child per this many seconds
_PR_SET_PDEATHSIG = 1


def default_workers(cpus: int | None = None) -> int:
    """Worker processes when none are configured: one per core (at least 2, at most
    MAX_DEFAULT_WORKERS), each with DEFAULT_SERVE_THREADS threads: about two requests in flight per core, one
    running Python while another waits for PostgreSQL, which runs on the same cores. More in flight only
    makes them share the cores: on 2 cores, 4 × 4 answered 129 requests/s with search's p95 at 558 ms
    under 50 clients, 2 × 2 answered 134 requests/s at 456 ms (docs/deployment.md)."""
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    return max(2, min(MAX_DEFAULT_WORKERS, cpus))


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8050
    workers: int = 2
    threads: int = DEFAULT_SERVE_THREADS
    timeout_s: int = 60  # a worker silent this long (hung main loop) is replaced
    graceful_s: int = 30  # on SIGTERM, time for requests in flight before workers are killed
    backlog: int = 2048  # connections waiting for a free thread of any worker (the kernel's queue)
    child: Sequence[str] | None = field(default=None)  # a command run beside the workers

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _JsonLogger(glogging.Logger):
    """gunicorn's own messages (worker boots, signals, errors) as the JSON lines of ccanalytics.ops.logs."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


class _ChildProcess:
    """The command run beside the workers (in its own session: Ctrl-C in a terminal reaches the
    arbiter, which stops it in order); it gets SIGTERM if the arbiter dies without stopping it."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.stopping = False

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", " ".join(self.argv[-1:]), self.proc.pid, extra={"pid": self.proc.pid})

    def check(self) -> None:
        """Restart the child if it died (gunicorn's arbiter may have reaped it already)."""
        if self.stopping or self.proc is None or self.proc.poll() is None:
            return
        if time.monotonic() - self.started_at < CHILD_RESTART_SECONDS:
            return
        log.error("child process %d exited (%s): restarting it", self.proc.pid, self.proc.returncode)
        self.start()

    def signal_stop(self) -> None:
        """SIGTERM now (the workers stop meanwhile); :meth:`stop` waits for it."""
        if not self.stopping and self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        self.stopping = True

    def stop(self) -> None:
        self.signal_stop()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.wait(CHILD_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("child process %d ignored SIGTERM for %.0f s: killing it", self.proc.pid, CHILD_STOP_SECONDS)
            self.proc.kill()
            self.proc.wait()


def _worker_ready(worker) -> None:
    log.info("worker %d ready", worker.pid, extra={"worker_ready": True})


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the arbiter dies (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _AdminArbiter(Arbiter):
    """gunicorn's arbiter that also looks after the child command."""

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.app.child is not None:
            self.app.child.check()

    def stop(self, graceful: bool = True) -> None:
        if self.app.child is not None:  # the child stops while the workers finish their requests
            self.app.child.signal_stop()
        super().stop(graceful)


class AdminServer(BaseApplication):
    """gunicorn serving ``make_app()``, which each worker calls once after it was forked."""

    def __init__(self, make_app: Callable[[], Flask], options: ServeOptions) -> None:
        self._make_app = make_app
        self.options = options
        self.child = _ChildProcess(options.child) if options.child else None
        super().__init__()

    def load_config(self) -> None:
        opts = self.options
        settings = {
            "bind": [opts.bind],
            "workers": opts.workers,
            "worker_class": "gthread",
            "threads": opts.threads,
            "timeout": opts.timeout_s,
            "graceful_timeout": opts.graceful_s,
            # one queue for all workers: a worker accepts a connection only while it has a free thread
            # (worker_connections = threads), so the next connection goes to whichever worker frees
            # a thread first, and each answer closes its connection (keep-alive 0). gthread's defaults
            # (1,000 connections per worker, keep-alive 5 s) let the first worker to wake take most of a
            # burst of keep-alive clients and keep them: requests queued behind its 4 threads while
            # others idled (50 clients: p95 3.9 s against 0.56 s inside the app; issue 19)
            "worker_connections": opts.threads,
            "keepalive": 0,
            "backlog": opts.backlog,
            "preload_app": False,  # each worker builds its app and engine: no connection crosses a fork
            "proc_name": "ccanalytics-admin",
            "accesslog": None,  # webapp.requestlog writes one JSON line per request
            "errorlog": "-",
            "logger_class": _JsonLogger,
            "control_socket_disable": True,  # no gunicornc socket (one fixed path for every instance)
            "when_ready": self._when_ready,
            "post_worker_init": _worker_ready,
            "on_exit": self._on_exit,
        }
        for key, value in settings.items():
            if key in self.cfg.settings:  # older gunicorn releases lack the newest settings
                self.cfg.set(key, value)

    def load(self) -> Flask:
        app = self._make_app()
        for name in app.jinja_env.list_templates():  # compiled at boot, not on someone's first page
            app.jinja_env.get_template(name)
        return app

    def run(self) -> None:
        _AdminArbiter(self).run()

    def _when_ready(self, _arbiter) -> None:
        if self.child is not None:
            self.child.start()

    def _on_exit(self, _arbiter) -> None:
        if self.child is not None:
            self.child.stop()


def serve(make_app: Callable[[], Flask], options: ServeOptions) -> None:
    """Run the arbiter until SIGTERM (graceful), SIGINT or SIGQUIT (quick); returns never (exits)."""
    log.info(
        "admin listening on %s with %d workers × %d threads",
        options.bind,
        options.workers,
        options.threads,
        extra={"host": options.host, "port": options.port, "workers": options.workers, "threads": options.threads},
    )
    # the app is not built in the arbiter: importing it starts native threads (polars' allocator and
    # pool), which a fork does not copy, and polars is not fork-safe; each worker imports it itself
    sys.stdout.flush()  # nothing buffered may be copied into the workers (each would print it again)
    sys.stderr.flush()
    AdminServer(make_app, options).run()
