"""Database down at start, and during the run: the admin starts and shows a banner (503) instead of
failing, /readyz says so, and everything recovers by itself; the scheduler waits with backoff and
pauses its jobs; the exporter reports cca_exporter_up 0. Nothing exits, nothing loops.

The "database" is the test PostgreSQL behind a TCP forwarder on 127.0.0.1 that the test stops (a
closed port, open connections cut) and starts again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fakechannels import wait_for
from systools import free_port

from ccanalytics.auth import users as auth
from ccanalytics.db.engine import create_engine
from scheduler.app import DatabaseGate, _run, wait_for_database
from webapp import create_app

CLI = str(Path(sys.executable).parent / "ccanalytics")
BANNER = "База данных недоступна"


class Forwarder:
    """127.0.0.1:<port> → the test server's unix socket. ``down()`` closes the port and cuts every
    open connection (what a crashed or restarted PostgreSQL looks like); ``up()`` reopens it."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> Forwarder:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            try:
                server.connect(self.socket_path)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def forwarder(db_url):
    """A forwarder (initially down) and the TCP URL of this test's database through it."""
    parts = urlsplit(db_url)
    host = parse_qs(parts.query)["host"][0]
    fwd = Forwarder(os.path.join(host, ".s.PGSQL.5432"))
    url = f"postgresql+psycopg://postgres@127.0.0.1:{fwd.port}{parts.path}"
    yield fwd, url
    fwd.down()


def _get(url: str, headers: dict[str, str] | None = None):
    """(status, headers (case-insensitive), body)"""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.communicate(timeout=10)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# ------------------------------------------------------------------------------------ the admin app
def test_admin_without_its_database_shows_a_banner_and_recovers_by_itself(forwarder, engine):
    fwd, url = forwarder
    auth.add_user(engine, "olena", "correct horse battery staple", "admin")
    tcp_engine = create_engine(url, pool_size=2)
    app = create_app({"ENGINE": tcp_engine, "TESTING": True, "DB_RETRY_SECONDS": 0})
    client = app.test_client()
    try:
        # down at start: every page is a 503 with the banner, never a 500
        for path in ("/", "/calls", "/calls/00000000-0000-0000-0000-000000000001"):
            page = client.get(path)
            assert page.status_code == 503, path
            html = page.get_data(as_text=True)
            assert BANNER in html and 'role="alert"' in html
            assert page.headers["Retry-After"] and page.headers["Refresh"]
        api = client.get("/api/v1/me", headers={"Authorization": "Bearer cca_x"})
        assert api.status_code == 503 and api.get_json()["error"]["code"] == "database_unavailable"
        assert client.get("/healthz").status_code == 200  # alive: no restart loop from the supervisor
        assert client.get("/readyz").status_code == 503
        login_page = client.get("/login")
        assert login_page.status_code == 200 and BANNER in login_page.get_data(as_text=True)
        refused = client.post("/login", data={"username": "olena", "password": "x"})
        assert refused.status_code in (400, 503)  # the stale form or the banner, never a 500

        # the database comes back: nothing to restart
        fwd.up()
        assert client.get("/readyz").status_code == 200
        client.get("/login")
        with client.session_transaction() as s:
            token = s["csrf"]
        res = client.post(
            "/login", data={"username": "olena", "password": "correct horse battery staple", "csrf_token": token}
        )
        assert res.status_code == 302
        page = client.get("/")
        assert page.status_code == 200 and BANNER not in page.get_data(as_text=True)

        # it goes away while the admin is up (open connections cut): banner again, then back
        fwd.down()
        page = client.get("/")
        assert page.status_code == 503 and BANNER in page.get_data(as_text=True)
        fwd.up()
        page = client.get("/")
        assert page.status_code == 200 and BANNER not in page.get_data(as_text=True)
    finally:
        tcp_engine.dispose()


def test_a_query_error_that_is_not_an_outage_stays_a_500(engine):
    app = create_app({"ENGINE": engine, "TESTING": False})

    @app.get("/boom")
    def boom():  # a statement timeout is an OperationalError too, but the database is up
        with engine.connect() as conn:
            conn.execute(sa.text("SET statement_timeout = 1"))
            conn.execute(sa.text("SELECT pg_sleep(1)"))

    app.config["AUTH_PUBLIC_ENDPOINTS"] = {"boom"}
    res = app.test_client().get("/boom")
    assert res.status_code == 500 and BANNER not in res.get_data(as_text=True)


def test_ccanalytics_serve_starts_with_the_database_down_and_recovers(forwarder, tmp_path):
    fwd, url = forwarder
    port = free_port()
    proc = _start(
        ["serve", "--port", str(port), "--workers", "1", "--threads", "2"],
        {"CCA_DATABASE_URL": url, "CCA_DATA_DIR": str(tmp_path)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _try(f"{base}/healthz") == 200, timeout=30), "the admin did not start"
        status, headers, html = _get(f"{base}/")
        assert status == 503 and BANNER in html and headers.get("X-Request-ID")
        assert _get(f"{base}/readyz")[0] == 503
        fwd.up()
        assert wait_for(lambda: _try(f"{base}/readyz") == 200, timeout=15)
        assert wait_for(lambda: BANNER not in _get(f"{base}/login")[2], timeout=15)
        assert proc.poll() is None  # never exited
    finally:
        out, err = _stop(proc)
    events = _json_lines(err)
    assert any(e["level"] == "error" and "database unavailable at start" in e["message"] for e in events), err
    assert any(e.get("path") == "/" and e.get("status") == 503 and e.get("request_id") for e in events)
    assert any("database is back" in e["message"] for e in events)
    assert "admin: http://" in out


def _try(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None


# ---------------------------------------------------------------------------------------- scheduler
def test_wait_for_database_retries_with_backoff_until_it_answers(forwarder, caplog):
    fwd, url = forwarder
    tcp_engine = create_engine(url, pool_size=1)
    prepared: list[bool] = []
    result: list[bool] = []
    caplog.set_level("INFO", logger="scheduler.app")
    thread = threading.Thread(
        target=lambda: result.append(
            wait_for_database(tcp_engine, lambda e: prepared.append(True), first_delay=0.05, max_delay=0.4)
        ),
        daemon=True,
    )
    try:
        thread.start()
        assert wait_for(lambda: len([r for r in caplog.records if "unavailable" in r.getMessage()]) >= 4, timeout=10)
        assert not prepared and thread.is_alive()
        fwd.up()
        thread.join(timeout=10)
        assert result == [True] and prepared == [True]
    finally:
        tcp_engine.dispose()
    waits = [r.retry_in_s for r in caplog.records if hasattr(r, "retry_in_s")]
    assert waits[1] > waits[0] and max(waits) <= 0.4 * 1.1  # exponential, capped (±10 % jitter)
    assert [r.attempt for r in caplog.records if hasattr(r, "attempt")][:3] == [1, 2, 3]


def test_the_gate_pauses_jobs_while_the_database_is_down(forwarder):
    fwd, url = forwarder
    tcp_engine = create_engine(url, pool_size=1)
    gate = DatabaseGate(tcp_engine, first_delay=0.2, max_delay=1.0)
    runs: list[str] = []

    def job(engine, settings):
        runs.append("ran")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def broken(engine, settings):
        raise ValueError("a bug, not an outage")

    try:
        _run(job, tcp_engine, None, "score", gate)  # the database is down: the job fails, the gate closes
        assert runs == ["ran"] and not gate.is_open and gate.failures == 1
        for _ in range(5):
            _run(job, tcp_engine, None, "alerts", gate)  # within the delay: skipped without trying
        assert runs == ["ran"]
        time.sleep(0.25)
        _run(job, tcp_engine, None, "alerts", gate)  # due: probes, still down, waits longer
        assert runs == ["ran"] and gate.failures == 2 and gate.retry_at - time.monotonic() > 0.3
        fwd.up()
        time.sleep(0.45)
        _run(job, tcp_engine, None, "score", gate)  # due: the probe succeeds, the job runs
        assert runs == ["ran", "ran"] and gate.is_open and gate.failures == 0
        _run(broken, tcp_engine, None, "problems", gate)  # an ordinary failure does not close it
        assert gate.is_open
    finally:
        tcp_engine.dispose()


def test_ccanalytics_scheduler_waits_for_its_database_instead_of_exiting(forwarder):
    fwd, url = forwarder
    proc = _start(["scheduler"], {"CCA_DATABASE_URL": url})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: sum("unavailable (attempt" in line for line in lines) >= 2, timeout=20), lines
        assert proc.poll() is None
        fwd.up()
        assert wait_for(lambda: any("is available after" in line for line in lines), timeout=20), lines
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        out = proc.stdout.read()
    assert "scheduler: fresh (interval" in out and "score (interval" in out
    events = [json.loads(line) for line in lines if line.startswith("{")]
    attempts = [e for e in events if "attempt" in e]
    assert attempts[0]["attempt"] == 1 and attempts[1]["retry_in_s"] > attempts[0]["retry_in_s"]


# ----------------------------------------------------------------------------------------- exporter
def test_exporter_starts_without_its_database_and_reports_it(forwarder):
    fwd, url = forwarder
    port = free_port()
    proc = _start(["exporter", "--port", str(port), "--lag", "0"], {"CCA_DATABASE_URL": url})
    try:
        assert wait_for(lambda: _try(f"http://127.0.0.1:{port}/metrics") == 200, timeout=30)
        assert "cca_exporter_up 0.0" in _get(f"http://127.0.0.1:{port}/metrics")[2]
        fwd.up()
        assert wait_for(lambda: "cca_exporter_up 1.0" in _get(f"http://127.0.0.1:{port}/metrics")[2], timeout=15)
    finally:
        _, err = _stop(proc)
    assert any("database unavailable at start" in e["message"] for e in _json_lines(err)), err


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _terminate(url, pid: int) -> None:
    """End backend ``pid`` from another connection, as a database restart would."""
    other = create_engine(url.render_as_string(hide_password=False), pool_size=1)
    with other.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    other.dispose()
    time.sleep(0.2)


def test_a_pooled_connection_is_tested_only_after_waiting_and_a_dead_one_is_replaced(engine, monkeypatch):
    """The pool tests a connection (SELECT 1) only when it waited longer than PING_IDLE_SECONDS (an
    admin page checks out three: no extra round trip each under load); one that died while it waited
    is replaced without the caller seeing an error."""
    from ccanalytics.db import engine as engines

    monkeypatch.setattr(engines, "PING_IDLE_SECONDS", 3600.0)  # used a moment ago: handed out untested
    pid = _backend_pid(engine)
    _terminate(engine.url, pid)
    with pytest.raises(sa.exc.OperationalError, match=r"terminat|closed"):
        _backend_pid(engine)
    engine.dispose()

    monkeypatch.setattr(engines, "PING_IDLE_SECONDS", 0.0)  # waited long enough: tested first
    pid = _backend_pid(engine)
    _terminate(engine.url, pid)
    assert _backend_pid(engine) != pid  # replaced; the query worked
