"""Alerts reach people: the real Alertmanager with the repository's configuration delivers a firing
alert to Telegram (a local Bot API server) and, for critical and e-mail alerts, to SMTP (aiosmtpd)."""

from __future__ import annotations

import json
import string
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, wait_for
from systools import free_port, require

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def alertmanager(tmp_path):
    tg = FakeTelegram().up()
    smtp = SMTPServer().up()
    env = {
        "CCA_SMTP_SMARTHOST": f"127.0.0.1:{smtp.port}",
        "CCA_SMTP_FROM": "alerts@shop.example",
        "CCA_SMTP_USERNAME": "",
        "CCA_SMTP_PASSWORD": "",
        "CCA_SMTP_REQUIRE_TLS": "false",
        "CCA_TELEGRAM_API_URL": tg.url,
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
        yield url, smtp.mailbox, tg
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tg.down()
        smtp.down()


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
    url, mailbox, tg = alertmanager
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
    sent = lambda: [p for path, p in tg.calls if path.endswith("/sendMessage")]  # noqa: E731
    assert wait_for(lambda: sent()), f"nothing sent to Telegram: {tg.calls}"
    msg = sent()[0]
    assert str(msg["chat_id"]) == str(CHAT)
    assert msg["parse_mode"] == "HTML"
    assert "Высокая доля переводов на оператора: 62% за час" in msg["text"]
    assert all(path.startswith(f"/bot{TOKEN}/") for path, _ in tg.calls)
    assert wait_for(lambda: mailbox.messages), "no e-mail for a critical alert"
    mail = mailbox.messages[0]
    assert mail["To"] == "ops@shop.example"
    assert "Высокая доля переводов" in mail["Subject"]


def test_email_channel_alert_goes_to_email_only(alertmanager):
    url, mailbox, tg = alertmanager
    post_alert(
        url,
        {"alertname": "CCAAbnormalSpend", "source": "calllog", "severity": "warning", "channel": "email"},
        {"summary": "Аномальные расходы на API: темп 144.00 $ в сутки", "description": "…"},
    )
    assert wait_for(lambda: mailbox.messages)
    assert "Аномальные расходы" in mailbox.messages[0]["Subject"]
    time.sleep(1.0)
    assert not [p for path, p in tg.calls if path.endswith("/sendMessage")]
