"""Alerts reach people: the real Alertmanager with the repository's configuration delivers a firing
alert to Telegram (a local Bot API server) and, for critical and e-mail alerts, to SMTP (aiosmtpd)."""

from __future__ import annotations

import email
import json
import string
import subprocess
import threading
import time
import urllib.request
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller
from systools import free_port, require

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-token"
CHAT = -1001234567890


class FakeTelegram(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = dict(urllib.parse.parse_qsl(body.decode()))
        method = self.path.rsplit("/", 1)[-1]
        type(self).calls.append((self.path, payload))
        if method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "cca", "username": "cca_bot"}
        else:
            result = {"message_id": len(self.calls), "date": int(time.time()), "chat": {"id": CHAT, "type": "group"}}
        data = json.dumps({"ok": True, "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Mailbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def alertmanager(tmp_path):
    FakeTelegram.calls = []
    tg = ThreadingHTTPServer(("127.0.0.1", 0), FakeTelegram)
    threading.Thread(target=tg.serve_forever, daemon=True).start()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        "CCA_SMTP_SMARTHOST": f"127.0.0.1:{smtp.port}",
        "CCA_SMTP_FROM": "alerts@shop.example",
        "CCA_SMTP_USERNAME": "",
        "CCA_SMTP_PASSWORD": "",
        "CCA_SMTP_REQUIRE_TLS": "false",
        "CCA_TELEGRAM_API_URL": f"http://127.0.0.1:{tg.server_port}",
        "CCA_TELEGRAM_BOT_TOKEN": TOKEN,
        "CCA_TELEGRAM_CHAT_ID": str(CHAT),
        "CCA_ALERT_EMAIL_TO": "ops@shop.example",
    }
    cfg = yaml.safe_load(string.Template((ROOT / "prometheus/alertmanager.yml.tmpl").read_text()).substitute(env))
    cfg["route"]["group_wait"] = "0s"  # deliver at once in the test (production: 30 s)
    (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    port = free_port()
    proc = subprocess.Popen(
        [
            require("prometheus-alertmanager"),
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: _ready(url)), "alertmanager did not start"
        yield url, mailbox
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tg.shutdown()
        smtp.stop()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1):
            return True
    except OSError:
        return False


def post_alert(url: str, labels: dict, annotations: dict) -> None:
    data = json.dumps([{"labels": labels, "annotations": annotations}]).encode()
    req = urllib.request.Request(url + "/api/v2/alerts", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200


def test_critical_alert_goes_to_telegram_and_email(alertmanager):
    url, mailbox = alertmanager
    rules = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "CCAHighTransferRate")
    post_alert(
        url,
        {"alertname": "CCAHighTransferRate", "source": "live", **rule["labels"]},
        {
            "summary": "Высокая доля переводов на оператора: 62% за час",
            "description": "За последний час бот передал оператору больше половины звонков (источник live).",
        },
    )
    sent = lambda: [p for path, p in FakeTelegram.calls if path.endswith("/sendMessage")]  # noqa: E731
    assert wait_for(lambda: sent()), f"nothing sent to Telegram: {FakeTelegram.calls}"
    msg = sent()[0]
    assert str(msg["chat_id"]) == str(CHAT)
    assert msg["parse_mode"] == "HTML"
    assert "Высокая доля переводов на оператора: 62% за час" in msg["text"]
    assert all(path.startswith(f"/bot{TOKEN}/") for path, _ in FakeTelegram.calls)
    assert wait_for(lambda: mailbox.messages), "no e-mail for a critical alert"
    mail = mailbox.messages[0]
    assert mail["To"] == "ops@shop.example"
    assert "Высокая доля переводов" in mail["Subject"]


def test_email_channel_alert_goes_to_email_only(alertmanager):
    url, mailbox = alertmanager
    post_alert(
        url,
        {"alertname": "CCAAbnormalSpend", "source": "calllog", "severity": "warning", "channel": "email"},
        {"summary": "Аномальные расходы на API: темп 144.00 $ в сутки", "description": "…"},
    )
    assert wait_for(lambda: mailbox.messages)
    assert "Аномальные расходы" in mailbox.messages[0]["Subject"]
    time.sleep(1.0)
    assert not [p for path, p in FakeTelegram.calls if path.endswith("/sendMessage")]
