"""Serving: `ccanalytics serve` runs several gunicorn worker processes that share one admin (sessions,
secret key, database), and the embedded PostgreSQL stops when the last process using it exits, on
Ctrl-C (SIGINT) and SIGTERM alike, for `serve` (with its scheduler child), `scheduler` and `demo`.

Every test starts the real command line in a subprocess and sends real signals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from fakechannels import wait_for
from systools import free_port

from ccanalytics.auth import users as auth
from ccanalytics.db import embedded
from webapp.db import DatabaseMonitor, SchemaGate
from webapp.serving import ServeOptions, default_workers

CLI = str(Path(sys.executable).parent / "ccanalytics")
EXIT_SIGTERM, EXIT_SIGINT = 128 + signal.SIGTERM, 130


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCA_")}
    return {**env, **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """The command with its output in files (a full pipe nobody reads would block it)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([CLI, *args], env=env, stdout=out, stderr=err, text=True)
    proc.out_file, proc.err_file = out, err
    return proc


def _output(proc: subprocess.Popen) -> tuple[str, str]:
    """Both files read with pread: the child shares their offsets, so a seek here would move where it
    writes next (and a line written meanwhile would overwrite the start of the file)."""
    texts = []
    for f in (proc.out_file, proc.err_file):
        f.flush()
        fd, chunks, offset = f.fileno(), [], 0
        while chunk := os.pread(fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        texts.append(b"".join(chunks).decode(errors="replace"))
    return texts[0], texts[1]


def _finish(proc: subprocess.Popen, timeout: float = 90) -> tuple[str, str]:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"did not exit within {timeout} s:\n{_output(proc)[1][-4000:]}") from None
    return _output(proc)


def _status(url: str, opener=None) -> int | None:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _postmaster(pg_data: Path) -> int | None:
    """The pid of the embedded server running in ``pg_data``, if one runs."""
    pid_file = pg_data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        return pid if "postgres" in psutil.Process(pid).name() else None
    except psutil.Error:
        return None


def _gone(pids: list[int]) -> bool:
    def dead(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    return all(dead(p) for p in pids)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and line.endswith("}")]


def _served_by(events: list[dict], path: str) -> set[int]:
    """The worker processes whose access log lines (of ``events``) show a request for ``path``."""
    return {e["pid"] for e in events if e.get("logger") == "webapp.access" and e.get("path") == path}


def _spread_requests(proc: subprocess.Popen, url: str, opener, timeout: float = 60) -> list[int | None]:
    """GET ``url`` in bursts of parallel new connections until two workers have answered it.

    Which worker accepts a new connection is the kernel's choice: sequential requests to an idle server
    can all land on one worker, while concurrent ones reach the others. The statuses of every request
    are returned; the loop ends after ``timeout`` seconds even if one worker took them all.
    """
    statuses: list[int | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ThreadPoolExecutor(6) as pool:
            statuses += pool.map(lambda _: _status(url, opener), range(6))
        if len(statuses) >= 30 and len(_served_by(_json_lines(_output(proc)[1]), urllib.parse.urlsplit(url).path)) >= 2:
            break
    return statuses


# ------------------------------------------------------------------------------ worker processes
def test_default_worker_count_follows_the_cores():
    assert [default_workers(c) for c in (1, 2, 3, 4, 16)] == [2, 2, 3, 4, 8]
    assert ServeOptions(host="::1", port=8050).bind == "[::1]:8050"
    assert ServeOptions(host="0.0.0.0", port=80).bind == "0.0.0.0:80"


def test_serve_answers_from_several_worker_processes_that_share_sessions(db_url, engine, tmp_path):
    auth.add_user(engine, "olena", "correct horse battery staple", "analyst")
    port = free_port()
    env = _env(CCA_DATABASE_URL=db_url, CCA_DATA_DIR=str(tmp_path), CCA_SERVE_THREADS="2")
    proc = _start(["serve", "--port", str(port), "--workers", "3"], env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _status(f"{base}/healthz") == 200, timeout=60), "the admin did not start"
        master = psutil.Process(proc.pid)
        workers = master.children()
        assert len(workers) == 3, workers  # no scheduler child: the jobs of an external database run elsewhere
        assert master.num_threads() == 1  # nothing a fork could copy half-way (polars' threads, a pool's lock)
        # log in once; every later request opens a new connection, which any worker may accept
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/login", timeout=10) as res:
            token = re.search(r'name="csrf_token" value="([^"]+)"', res.read().decode()).group(1)
        form = {"username": "olena", "password": "correct horse battery staple", "csrf_token": token, "next": "/"}
        with opener.open(f"{base}/login", data=urllib.parse.urlencode(form).encode(), timeout=10) as res:
            assert res.status == 200 and "/login" not in res.url
        statuses = _spread_requests(proc, f"{base}/calls", opener)
        assert statuses == [200] * len(statuses)  # the session is valid in every worker (one key, one database)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert _gone([w.pid for w in workers])
    events = _json_lines(err)
    pids = _served_by(events, "/calls")
    assert pids and pids <= {w.pid for w in workers}
    assert len(pids) >= 2, f"{len(statuses)} new connections in parallel bursts all went to one worker"
    booted = [e for e in events if e.get("logger") == "gunicorn.error" and "Booting worker" in e["message"]]
    assert len(booted) == 3
    assert "serving with 3 worker processes × 2 threads" in out


def _log_in(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/login", timeout=30) as res:
        token = re.search(r'name="csrf_token" value="([^"]+)"', res.read().decode()).group(1)
    form = {"username": user, "password": password, "csrf_token": token, "next": "/"}
    with opener.open(f"{base}/login", data=urllib.parse.urlencode(form).encode(), timeout=30) as res:
        assert res.status == 200 and "/login" not in res.url
    return opener


def test_fresh_workers_answer_a_burst_of_concurrent_requests_without_503(db_url, engine, tmp_path):
    """Issue 19: the first requests a new worker gets arrive together (a burst of clients, a restarted
    worker); none of them may be told the database is unavailable or unmigrated while it is fine."""
    auth.add_user(engine, "olena", "correct horse battery staple", "analyst")
    port = free_port()
    env = _env(CCA_DATABASE_URL=db_url, CCA_DATA_DIR=str(tmp_path))
    proc = _start(["serve", "--port", str(port), "--workers", "4", "--threads", "4"], env)
    base = f"http://127.0.0.1:{port}"
    clients, rounds = 32, 3
    paths = ["/calls", "/calls?q=" + urllib.parse.quote("шини"), "/login", "/api/v1/analytics/calls"]
    try:
        assert wait_for(lambda: _status(f"{base}/healthz") == 200, timeout=60), "the admin did not start"
        ready = lambda: _output(proc)[1].count('"worker_ready": true') == 4
        assert wait_for(ready, timeout=60), "not every worker booted"
        opener = _log_in(base, "olena", "correct horse battery staple")  # reaches one or two workers
        barrier = threading.Barrier(clients)
        statuses: list[tuple[str, int | None]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            barrier.wait()
            mine = []
            for r in range(rounds):  # a new connection per request: any worker may accept it
                path = paths[(n + r) % len(paths)]
                mine.append((path, _status(base + path, opener)))
            with lock:
                statuses.extend(mine)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert len(statuses) == clients * rounds
    assert [s for s in statuses if s[1] != 200] == []
    events = _json_lines(err)
    served = {e["pid"] for e in events if e.get("logger") == "webapp.access" and e.get("status") == 200}
    assert len(served) >= 3, "the burst did not reach the fresh workers"
    problems = [e["message"] for e in events if e.get("level") in ("warning", "error") and "schema" in e["message"]]
    assert problems == []
    assert not [e for e in events if "database unavailable" in e.get("message", "")]


def _together(n: int, fn) -> list:
    """``fn()`` in ``n`` threads at once; their answers."""
    answers, barrier = [None] * n, threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


class _SlowCheck:
    """A schema check or database probe that answers only when the test lets it, counting its calls."""

    def __init__(self, result=True) -> None:
        self.result, self.calls, self.release = result, 0, threading.Event()
        self.started = threading.Event()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(30)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def _first_answer(gate_call, check: _SlowCheck, n: int = 8) -> list:
    """``n`` concurrent callers while the first check is held back until they all wait for it."""
    out: list = []
    entered = []

    def call():
        entered.append(1)
        return gate_call()

    thread = threading.Thread(target=lambda: out.extend(_together(n, call)))
    thread.start()
    assert check.started.wait(30)
    assert wait_for(lambda: len(entered) == n, timeout=30)
    time.sleep(0.1)  # from entering to waiting at the gate's lock: a few bytecodes
    check.release.set()
    thread.join(30)
    return out


def test_a_fresh_schema_gate_makes_concurrent_requests_wait_for_its_first_check():
    check = _SlowCheck(True)
    gate = SchemaGate(None, check=check)
    assert _first_answer(gate.ready, check) == [True] * 8  # before the fix: 7 × False, the schema page (503)
    assert check.calls == 1
    assert gate.ready() and check.calls == 1  # in place: never asked again


def test_a_schema_gate_keeps_its_last_answer_while_the_schema_is_missing():
    now = [0.0]
    check = _SlowCheck(False)
    check.release.set()
    gate = SchemaGate(None, check=check, retry_seconds=5, clock=lambda: now[0])
    assert not gate.ready() and not gate.ready() and check.calls == 1
    now[0] = 6.0
    check.result = True  # `db migrate` ran
    assert gate.ready() and check.calls == 2


def test_a_schema_gate_seeded_by_serve_asks_nothing():
    gate = SchemaGate(None, check=lambda: pytest.fail("a worker asked again"), ready=True)
    assert _together(4, gate.ready) == [True] * 4


def test_a_schema_check_cut_off_by_an_outage_is_not_a_missing_schema():
    from ccanalytics.core.errors import DatabaseUnavailable

    def failing():
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    gate = SchemaGate(None, check=failing)
    with pytest.raises(DatabaseUnavailable):  # the database's 503 page, not "run db migrate"
        gate.ready()
    with pytest.raises(DatabaseUnavailable):  # no answer cached: asked again on the next request
        gate.ready()


def test_a_fresh_database_monitor_probes_once_for_a_burst_of_requests():
    check = _SlowCheck(None)
    monitor = DatabaseMonitor(None, check=check)
    assert _first_answer(monitor.available, check) == [True] * 8
    assert check.calls == 1 and not monitor.is_down


def test_a_busy_connection_pool_is_not_an_outage():
    def pool_busy():
        raise sa.exc.TimeoutError("QueuePool limit of size 5 overflow 5 reached, connection timed out")

    monitor = DatabaseMonitor(None, check=pool_busy)
    assert monitor.available() and monitor.probe()
    assert not monitor.is_down and monitor.last_error is None


def test_a_failed_probe_still_marks_the_database_down_and_recovers():
    from ccanalytics.core.errors import DatabaseUnavailable

    now, up = [0.0], [False]

    def check():
        if not up[0]:
            raise DatabaseUnavailable("cannot connect: connection refused")

    monitor = DatabaseMonitor(None, check=check, retry_seconds=2, clock=lambda: now[0])
    assert _together(4, monitor.available) == [False] * 4
    assert monitor.is_down and "connection refused" in monitor.last_error
    up[0] = True
    assert not monitor.available()  # the next probe is not due yet
    now[0] = 3.0
    assert monitor.available() and not monitor.is_down


# ------------------------------------------------------------------- the embedded server's lifetime
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_with_the_embedded_database_stops_it_on(sig, tmp_path):
    data = tmp_path / "data"
    port = free_port()
    proc = _start(["serve", "--port", str(port), "--workers", "2", "--threads", "2"], _env(CCA_DATA_DIR=str(data)))
    try:
        assert wait_for(lambda: _status(f"http://127.0.0.1:{port}/login") == 200, timeout=120), "did not start"
        children = psutil.Process(proc.pid).children()
        scheduler = [c for c in children if "scheduler" in " ".join(c.cmdline())]
        assert len(children) == 3 and len(scheduler) == 1  # two workers and the scheduler
        assert psutil.Process(proc.pid).num_threads() == 1  # the arbiter forks workers: it runs no threads
        # the arbiter and the scheduler are attached to the server; forked workers use the arbiter's
        assert wait_for(lambda: sorted(embedded.holders(data / "pg")) == sorted([proc.pid, scheduler[0].pid]), 60)
        postmaster = _postmaster(data / "pg")
        assert postmaster
    finally:
        proc.send_signal(sig)
        out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert _gone([c.pid for c in children]), "a worker or the scheduler outlived serve"
    assert wait_for(lambda: _postmaster(data / "pg") is None, timeout=30), "the embedded PostgreSQL kept running"
    assert _gone([postmaster])
    assert embedded.holders(data / "pg") == []
    assert "scheduler: running in a child process" in out
    # forked workers never took part in the server's bookkeeping (only the arbiter and the scheduler left)
    leaving = [e["message"] for e in _json_lines(err) if e.get("logger") == "pgserver" and "exiting" in e["message"]]
    assert sorted(int(m.split()[1]) for m in leaving) == sorted([proc.pid, scheduler[0].pid]), leaving


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, EXIT_SIGTERM), (signal.SIGINT, EXIT_SIGINT)], ids=["SIGTERM", "SIGINT"]
)
def test_the_scheduler_stops_the_embedded_database_on(sig, code, tmp_path):
    data = tmp_path / "data"
    proc = _start(["scheduler"], _env(CCA_DATA_DIR=str(data)))
    try:
        assert wait_for(lambda: embedded.holders(data / "pg") == [proc.pid], timeout=120), "did not attach"
        assert wait_for(lambda: _postmaster(data / "pg") is not None, timeout=30)
        time.sleep(1)  # into the scheduler's loop (the signal also works before it, through the same handler)
    finally:
        proc.send_signal(sig)
        _out, err = _finish(proc)
    assert proc.returncode == code, err[-3000:]
    assert wait_for(lambda: _postmaster(data / "pg") is None, timeout=30), "the embedded PostgreSQL kept running"


@pytest.mark.slow
def test_the_demo_stops_the_embedded_database_on_sigterm(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    args = ["demo", "--days", "2", "--calls-per-day", "30", "--port", str(port)]
    proc = _start(args, _env(CCA_DATA_DIR=str(data), CCA_REPORTS_DIR=str(tmp_path / "reports")))
    try:
        serving = lambda: proc.poll() is not None or _status(f"http://127.0.0.1:{port}/login") == 200
        started = wait_for(serving, timeout=900)
        assert proc.poll() is None, "the demo exited: " + _output(proc)[1][-3000:]
        assert started, "the demo did not serve within 900 s"
        children = psutil.Process(proc.pid).children()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert "admin: http://" in out
    assert _gone([c.pid for c in children])
    assert wait_for(lambda: _postmaster(data / "pg") is None, timeout=30), "the embedded PostgreSQL kept running"


ATTACH = textwrap.dedent(
    """
    import sys, time, psycopg
    from ccanalytics.db import embedded
    url = embedded.start(sys.argv[1], database="shared")
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    mode = sys.argv[2]
    with psycopg.connect(libpq, autocommit=True) as conn:
        print(conn.execute("SELECT 1").fetchone()[0], flush=True)
    if mode == "hold":
        time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_killed_process_does_not_keep_the_server_running(tmp_path):
    pg_data = tmp_path / "pg"
    holder = subprocess.Popen([sys.executable, "-c", ATTACH, str(pg_data), "hold"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "1"
        assert embedded.holders(pg_data) == [holder.pid]
    finally:
        holder.kill()  # no exit hooks run: its pid stays in pgserver's list
        holder.wait(10)
    assert embedded.holders(pg_data) == [holder.pid] and _postmaster(pg_data)
    # the next process drops the dead one from the list, and stops the server when it leaves
    again = subprocess.run(
        [sys.executable, "-c", ATTACH, str(pg_data), "once"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stdout.strip() == "1", again.stderr[-3000:]
    assert wait_for(lambda: _postmaster(pg_data) is None, timeout=30), "a dead process kept the server running"
    assert embedded.holders(pg_data) == []
