"""Alertmanager and Prometheus as the tests run them: the real programs on 127.0.0.1. Alertmanager with
the repository's configuration (prometheus/alertmanager.yml.tmpl, rendered from the environment as
deploy/render_config.py does) and its Russian templates, delivering to the Telegram stand-in and the
SMTP server of fakechannels.py; Prometheus with a given configuration and storage. Used by
test_alertmanager.py (alerts posted to Alertmanager's API) and test_alert_timing.py (alerts from
Prometheus)."""

from __future__ import annotations

import os
import string
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, wait_for
from systools import free_port, require

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
PUBLIC_URL = "https://alerts.shop.example"  # Alertmanager's own public address (--web.external-url)


def render_config(env: Mapping[str, str]) -> dict:
    """prometheus/alertmanager.yml.tmpl with ``env`` substituted, parsed."""
    return yaml.safe_load(string.Template((PROM / "alertmanager.yml.tmpl").read_text()).substitute(env))


def channel_env(tg: FakeTelegram, smtp: SMTPServer, admin_url: str) -> dict[str, str]:
    """The template's environment pointing Telegram and e-mail at these stand-ins."""
    return {
        "CCA_SMTP_SMARTHOST": f"127.0.0.1:{smtp.port}",
        "CCA_SMTP_FROM": "alerts@shop.example",
        "CCA_SMTP_USERNAME": "",
        "CCA_SMTP_PASSWORD": "",
        "CCA_SMTP_REQUIRE_TLS": "false",
        "CCA_TELEGRAM_API_URL": tg.url,
        "CCA_TELEGRAM_BOT_TOKEN": TOKEN,
        "CCA_TELEGRAM_CHAT_ID": str(CHAT),
        "CCA_ALERT_EMAIL_TO": "ops@shop.example",
        "CCA_ADMIN_BASE_URL": admin_url,
    }


def ready(url: str) -> bool:
    """Whether the Prometheus or Alertmanager at ``url`` answers its readiness check."""
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def alertmanager_env(tg: FakeTelegram, smtp: SMTPServer, admin_url: str, tmp_path: Path, **route: str) -> Iterator[str]:
    """Alertmanager with the repository's configuration for these channels; ``route`` overrides the
    route's timings (``group_wait="1s"``), production's otherwise. Yields its URL; it runs in
    Europe/Kyiv time with a public address, and its log must show no template error."""
    cfg = render_config(channel_env(tg, smtp, admin_url))
    assert cfg["templates"] == ["/etc/alertmanager/templates/*.tmpl"]
    cfg["templates"] = [str(PROM / "templates" / "*.tmpl")]  # where deploy/docker-compose.yml mounts them
    cfg["route"].update(route)
    config = tmp_path / "am.yml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    check = subprocess.run([require("amtool"), "check-config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = tmp_path / "am.log"
    args = [
        require("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.external-url={PUBLIC_URL}",
        "--cluster.listen-address=",
    ]
    with _serving(args, log, env={**os.environ, "TZ": "Europe/Kyiv"}) as url:
        yield url
    text = log.read_text()
    assert "template" not in text.lower() or "error" not in text.lower(), text


@contextmanager
def prometheus_env(config: dict, tmp_path: Path) -> Iterator[str]:
    """Prometheus with ``config`` and its storage in ``tmp_path / "tsdb"`` (what is there already is
    its history); yields its URL once it is ready."""
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    args = [
        require("prometheus"),
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
    ]
    with _serving(args, tmp_path / "prometheus.log") as url:
        yield url


@contextmanager
def _serving(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """The program of ``args`` on a free port of 127.0.0.1, its errors in ``log``; yields its URL once
    ready, stops it after."""
    port = free_port()
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*args, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: ready(url)), f"{Path(args[0]).name} did not start: {log.read_text()}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
