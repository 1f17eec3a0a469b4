"""``ccanalytics doctor`` against real servers: the test PostgreSQL, a local OpenAI-compatible endpoint,
aiosmtpd, a local Telegram Bot API, a real Prometheus; closed ports for the failures."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, wait_for
from fakeopenai import FakeOpenAI
from systools import free_port, require

from ccanalytics.cli.root import main
from ccanalytics.core.config import Settings
from ccanalytics.db.engine import create_engine
from ccanalytics.db.partitions import add_months, month_start
from ccanalytics.ops import doctor


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def judge():
    """FakeOpenAI, plus ``GET /v1/models`` that checks the key like the real API."""
    with FakeOpenAI() as fake:
        base = fake.httpd.RequestHandlerClass

        class WithModels(base):
            def do_GET(self):
                if self.path.rstrip("/") != "/v1/models":
                    status, body = 404, {"error": {"message": "not found"}}
                elif self.headers.get("Authorization") != "Bearer test-key":
                    status, body = 401, {"error": {"message": "Incorrect API key provided"}}
                else:
                    ids = ["fake-judge-1", "fake-judge-2"]
                    status, body = 200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        fake.httpd.RequestHandlerClass = WithModels
        yield fake


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus scraping itself."""
    tmp = tmp_path_factory.mktemp("prom")
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n"
    )
    proc = subprocess.Popen(
        [
            require("prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: doctor.check_prometheus(url, timeout=1).status == "ok", timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def by_name(checks) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


# -------------------------------------------------------------------------------- all at once
def test_a_healthy_installation(db_url, judge, smtp, telegram, prometheus, tmp_path):
    settings = Settings(
        database_url=db_url,
        judge_api_key="test-key",
        judge_base_url=judge.base_url,
        judge_model="fake-judge-1",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        email_to=["ops@shop.example"],
        telegram_bot_token=TOKEN,
        telegram_chat_id=str(CHAT),
        telegram_api_url=telegram.url,
        lake_dir=tmp_path / "lake",
        reports_dir=tmp_path / "reports",
    )
    started = time.perf_counter()
    checks = doctor.run_checks(settings, timeout=3, prometheus_url=prometheus)
    assert time.perf_counter() - started < 10
    assert [c.name for c in checks] == [
        "database",
        "migrations",
        "partitions",
        "data",
        "judge",
        "smtp",
        "telegram",
        "prometheus",
        "lake",
        "reports",
    ]
    assert {c.name: c.status for c in checks} == dict.fromkeys((c.name for c in checks), "ok"), [
        c.line() for c in checks
    ]
    found = by_name(checks)
    assert found["database"].detail.startswith("PostgreSQL 16.")
    assert "none pending" in found["migrations"].detail
    assert "calls, call_turns, call_tool_calls, llm_usage_log through" in found["partitions"].detail
    assert found["data"].detail == "no odd rows of the call processor in the last 7 days"
    assert "model fake-judge-1 available" in found["judge"].detail
    assert "EHLO" in found["smtp"].detail
    assert "@cca_bot" in found["telegram"].detail and "ccanalytics alerts" in found["telegram"].detail
    assert "ready" in found["prometheus"].detail
    # nothing was sent, and the secrets appear nowhere
    assert smtp.messages == [] and telegram.sent("sendMessage") == []
    assert not judge.requests  # no completion was asked for
    text = "\n".join(c.line() for c in checks)
    assert TOKEN not in text and "test-key" not in text
    assert not doctor.failed(checks)


def test_cli_exit_code_and_json(db_url, tmp_path):
    env = {"CCA_DATABASE_URL": db_url, "CCA_LAKE_DIR": str(tmp_path / "l"), "CCA_REPORTS_DIR": str(tmp_path / "r")}
    res = CliRunner().invoke(main, ["doctor", "--json", "--timeout", "2"], env=env)
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["ok"] is True
    statuses = {c["name"]: c["status"] for c in body["checks"]}
    assert statuses["database"] == "ok" and statuses["judge"] == "ok"  # the offline judge
    assert statuses["smtp"] == statuses["telegram"] == "warn"  # not configured: works, but off
    closed = free_port()
    res = CliRunner().invoke(main, ["doctor"], env={**env, "CCA_DATABASE_URL": f"postgresql://x@127.0.0.1:{closed}/db"})
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert lines[0].startswith(f"fail  database    cannot connect to postgresql+psycopg://x@127.0.0.1:{closed}/db")
    assert lines[1] == "warn  migrations  not checked: the database is unreachable"
    assert len(lines) == 10  # every check, the four of the database not checked


# ----------------------------------------------------------------------------------- database
def test_pending_migrations_fail(empty_db_url):
    engine = create_engine(empty_db_url, pool_size=1)
    try:
        check = doctor.check_migrations(engine)
    finally:
        engine.dispose()
    assert check.status == "fail" and "0 applied" in check.detail and "run ccanalytics db migrate" in check.detail


def test_partitions_ahead(engine):
    assert doctor.check_partitions(engine, 3).status == "ok"
    ahead = doctor.check_partitions(engine, 6)
    assert ahead.status == "warn" and "calls lacks" in ahead.detail
    far = doctor.check_partitions(engine, 1, today=date(2031, 5, 10))
    assert far.status == "fail" and "2031-05" in far.detail
    # a month covered by a partition named otherwise (the call processor's) counts as covered
    nxt = add_months(month_start(datetime.now(UTC).date()), 7)
    with engine.begin() as conn:
        for table in ("calls", "call_turns", "call_tool_calls", "llm_usage_log"):
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table}_cp PARTITION OF {table} FOR VALUES FROM ('{nxt}') "
                    f"TO ('{add_months(nxt, 1)}')"
                )
            )
    seven = doctor.check_partitions(engine, 7)
    assert seven.status == "warn" and add_months(nxt, -1).strftime("%Y-%m") in seven.detail
    assert nxt.strftime("%Y-%m") not in seven.detail


# -------------------------------------------------------------------------------------- judge
def test_judge(judge):
    assert doctor.check_judge(None, None, "x").detail.startswith("offline rule-based judge")
    refused = doctor.check_judge(judge.base_url, "wrong-key", "fake-judge-1", timeout=2)
    assert refused.status == "fail" and "refused (401)" in refused.detail
    unknown = doctor.check_judge(judge.base_url, "test-key", "gpt-9", timeout=2)
    assert unknown.status == "warn" and "gpt-9 is not among its 2 models" in unknown.detail
    down = doctor.check_judge(closed_url() + "/v1", "test-key", "fake-judge-1", timeout=2)
    assert down.status == "fail" and "unreachable" in down.detail


def test_judge_endpoint_without_a_models_list():
    with FakeOpenAI() as plain:  # answers POST only, like some OpenAI-compatible servers
        check = doctor.check_judge(plain.base_url, "test-key", "fake-judge-1", timeout=2)
    assert check.status == "warn" and "no /models" in check.detail


# --------------------------------------------------------------------------------------- SMTP
def test_smtp(smtp):
    ok = doctor.check_smtp("127.0.0.1", smtp.port, starttls=False, recipients=["a@x.ua"], timeout=2)
    assert ok.status == "ok" and ok.detail == f"127.0.0.1:{smtp.port}: EHLO"
    plain = doctor.check_smtp("127.0.0.1", smtp.port, starttls=True, recipients=["a@x.ua"], timeout=2)
    assert plain.status == "warn" and "no STARTTLS" in plain.detail
    nobody = doctor.check_smtp("127.0.0.1", smtp.port, starttls=False, recipients=[], timeout=2)
    assert nobody.status == "warn" and "CCA_EMAIL_TO is empty" in nobody.detail
    down = doctor.check_smtp("127.0.0.1", free_port(), recipients=["a@x.ua"], timeout=2)
    assert down.status == "fail" and "refused" in down.detail.lower()
    assert doctor.check_smtp(None, 587).status == "warn"
    assert smtp.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login():
    with SMTPServer(users={"cca": "secret"}) as server:
        good = doctor.check_smtp(
            "127.0.0.1", server.port, user="cca", password="secret", starttls=False, recipients=["a"], timeout=2
        )
        bad = doctor.check_smtp(
            "127.0.0.1", server.port, user="cca", password="nope", starttls=False, recipients=["a"], timeout=2
        )
    assert good.status == "warn" and "login as cca" in good.detail and "without TLS" in good.detail
    assert server.mailbox.logins == ["cca"]
    assert bad.status == "fail" and "login as cca refused (535)" in bad.detail and "nope" not in bad.detail


# ----------------------------------------------------------------------------------- Telegram
def test_telegram(telegram):
    assert doctor.check_telegram(telegram.url, TOKEN, str(CHAT), timeout=2).status == "ok"
    wrong_token = doctor.check_telegram(telegram.url, "1:wrong", str(CHAT), timeout=2)
    assert wrong_token.status == "fail" and "getMe: HTTP 401 Unauthorized" in wrong_token.detail
    assert "1:wrong" not in wrong_token.detail
    wrong_chat = doctor.check_telegram(telegram.url, TOKEN, "-100999", timeout=2)
    assert wrong_chat.status == "fail" and "chat not found" in wrong_chat.detail
    assert doctor.check_telegram(telegram.url, TOKEN, None).status == "warn"
    assert telegram.sent("sendMessage") == []
    telegram.down()
    down = doctor.check_telegram(telegram.url, TOKEN, str(CHAT), timeout=2)
    assert down.status == "fail" and "refused" in down.detail.lower()


def test_telegram_outage_is_a_failure():
    with FakeTelegram() as tg:
        tg.status = 502
        check = doctor.check_telegram(tg.url, TOKEN, str(CHAT), timeout=2)
    assert check.status == "fail" and "502" in check.detail  # getMe works, getChat hits the outage


# --------------------------------------------------------------------------------- Prometheus
def test_prometheus(prometheus):
    ok = doctor.check_prometheus(prometheus, timeout=2)
    assert ok.status == "ok" and "targets up" in ok.detail
    down = doctor.check_prometheus(closed_url(), timeout=2)
    assert down.status == "fail" and "unreachable" in down.detail
    assert doctor.check_prometheus(None).status == "warn"


# -------------------------------------------------------------------------------- directories
def test_directories(tmp_path):
    assert doctor.check_directory("reports", tmp_path).detail == f"{tmp_path} writable"
    assert "will be created" in doctor.check_directory("reports", tmp_path / "a" / "b").detail
    (tmp_path / "file").write_text("x")
    assert doctor.check_directory("lake", tmp_path / "file", lake=True).status == "fail"
    lake = tmp_path / "lake"
    for day in ("2026-11-01", "2026-11-23"):
        (lake / "calls" / f"date={day}").mkdir(parents=True)
    fresh = doctor.check_directory("lake", lake, lake=True, today=date(2026, 11, 24))
    assert fresh.status == "ok" and "2 days exported, the last 2026-11-23" in fresh.detail
    stale = doctor.check_directory("lake", lake, lake=True, today=date(2026, 11, 30))
    assert stale.status == "warn" and "behind" in stale.detail
