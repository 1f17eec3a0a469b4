"""Request ids and the admin's access log: one JSON line per request with method, path, status, ms,
user and request_id; call_id where a call is involved; the request_id on every record logged while
the request runs; ``ccanalytics serve`` writes these lines to stderr."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from factories import make_call
from fakechannels import wait_for
from systools import free_port
from test_auth import bearer, logged_in

from ccanalytics.auth import users as auth
from ccanalytics.ops.logs import JsonFormatter
from webapp import create_app
from webapp.requestlog import new_request_id

CLI = str(Path(sys.executable).parent / "ccanalytics")


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def access(caplog) -> list[dict]:
    """The access-log records as the JSON lines ``ccanalytics.ops.logs`` writes."""
    fmt = JsonFormatter()
    return [json.loads(fmt.format(r)) for r in caplog.records if r.name == "webapp.access"]


def test_every_request_gets_an_id_echoed_in_the_response_and_logged(app, records):
    client = app.test_client()
    res = client.get("/login")
    rid = res.headers["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    again = client.get("/login").headers["X-Request-ID"]
    assert again != rid
    (first, second) = access(records)
    assert first["request_id"] == rid and second["request_id"] == again
    assert {k: first[k] for k in ("method", "path", "status", "user", "level", "logger")} == {
        "method": "GET",
        "path": "/login",
        "status": 200,
        "user": None,
        "level": "info",
        "logger": "webapp.access",
    }
    assert isinstance(first["ms"], float) and first["ms"] >= 0
    assert first["message"].startswith("GET /login 200")


def test_an_incoming_request_id_is_honoured_and_a_bad_one_replaced(app, records):
    client = app.test_client()
    assert client.get("/login", headers={"X-Request-ID": "proxy-7f3a:1"}).headers["X-Request-ID"] == "proxy-7f3a:1"
    for bad in ("a b", "x" * 200, "<script>", "ünïcode"):
        rid = client.get("/login", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert rid != bad and len(rid) == 32
    assert new_request_id(None) != new_request_id(None)
    assert next(e["request_id"] for e in access(records)) == "proxy-7f3a:1"


def test_the_logged_in_user_refusals_and_errors_are_logged(app, engine, records):
    anonymous = app.test_client()
    assert anonymous.get("/calls").status_code == 302  # to the login page
    assert anonymous.get("/api/v1/me").status_code == 401
    client = logged_in(app, engine, "olena", "analyst")
    assert client.get("/?days=abc").status_code == 400
    lines = access(records)
    assert [(e["path"], e["status"], e["user"]) for e in lines if e["path"] != "/login"] == [
        ("/calls", 302, None),
        ("/api/v1/me", 401, None),
        ("/", 400, "olena"),
    ]


def test_call_pages_and_ingested_calls_carry_the_call_id(app, engine, records):
    client = logged_in(app, engine, "olena", "admin")
    call = make_call()
    token = auth.create_token(engine, "service", "call-processor")
    res = client.post("/api/v1/calls", json=call, headers={**bearer(token), "X-Request-ID": "cp-batch-1"})
    assert res.status_code == 200, res.get_data(as_text=True)
    ingested = [r for r in records.records if r.name == "webapp.api" and r.getMessage() == "call log ingested"]
    assert len(ingested) == 1
    assert ingested[0].call_id == call["call_id"] and ingested[0].request_id == "cp-batch-1"
    assert ingested[0].outcome["inserted"] == 1

    bad = {**make_call(), "turns": [{"speaker": "robot", "text": "?"}]}
    assert client.post("/api/v1/calls", json=bad, headers=bearer(token)).status_code == 422
    refused = [r for r in records.records if r.getMessage().startswith("call log refused")]
    assert len(refused) == 1 and refused[0].call_id == bad["call_id"] and refused[0].request_id

    assert client.get(f"/calls/{call['call_id']}").status_code == 200
    page = [e for e in access(records) if e["path"] == f"/calls/{call['call_id']}"]
    assert page[0]["call_id"] == call["call_id"] and page[0]["user"] == "olena"
    api_line = next(e for e in access(records) if e["path"] == "/api/v1/calls")
    assert api_line["user"] == "token:call-processor" and api_line["request_id"] == "cp-batch-1"


def test_health_probes_and_scrapes_are_debug_lines(app, records):
    client = app.test_client()
    client.get("/healthz")
    client.get("/readyz")
    probes = [r for r in records.records if r.name == "webapp.access"]
    assert [r.levelno for r in probes] == [logging.DEBUG, logging.DEBUG]


def test_no_request_id_outside_a_request(app, records):
    logging.getLogger("ccanalytics.test").warning("outside")
    (record,) = [r for r in records.records if r.getMessage() == "outside"]
    assert not hasattr(record, "request_id")


def test_ccanalytics_serve_writes_json_access_lines(db_url, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [CLI, "serve", "--port", str(port), "--threads", "2"],
        env={**os.environ, "CCA_DATABASE_URL": db_url, "CCA_DATA_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rid = uuid.uuid4().hex
    try:
        assert wait_for(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/login", headers={"X-Request-ID": rid})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.headers["X-Request-ID"] == rid
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every stderr line is JSON
    (login,) = [e for e in lines if e.get("request_id") == rid]
    assert login["path"] == "/login" and login["status"] == 200 and login["logger"] == "webapp.access"
    assert {"ts", "level", "message", "method", "ms", "user", "remote_addr"} <= set(login)
    assert not [e for e in lines if e.get("path") == "/healthz"]  # probes stay out at INFO


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except OSError:
        return None
