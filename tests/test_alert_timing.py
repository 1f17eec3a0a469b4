"""Issue 18: a burst of transfers or of response latency reaches Telegram within 2 minutes of its start
and its resolution within 5 minutes of its end, measured through the real path with production
timings: the live metrics of the demo traffic on 127.0.0.1 → Prometheus (scrape 15 s, rules 30 s, as
prometheus/prometheus.yml) with prometheus/alerts.yml → Alertmanager with the repository's
configuration and templates (group_wait and group_interval as in production) → the local Telegram
Bot API stand-in. A fresh Prometheus beside running traffic and a healthy stretch page nothing.

One test of about 6 minutes wall-clock (its own xdist group): 2 minutes healthy from a fresh start,
then both bursts at once (different alerts, different Alertmanager groups) until both are paged, then
healthy again until both are resolved. The rules' own timing at each volume: alerts_test_timing.yml."""

from __future__ import annotations

import os
import re
import string
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from fakechannels import CHAT, TOKEN, FakeTelegram, SMTPServer, wait_for
from prometheus_client import CollectorRegistry
from systools import free_port, require

from ccanalytics.demo import generator
from ccanalytics.demo.livesim import LiveSimulator
from ccanalytics.telemetry import LiveMetrics

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
PAGE_WITHIN = 120.0  # seconds from the burst's start to the message in Telegram (issue 18)
RESOLVE_WITHIN = 300.0  # seconds from the burst's end to the resolution in Telegram
HEALTHY_STRETCH = 120.0  # seconds of a fresh Prometheus beside healthy traffic before the burst

pytestmark = [pytest.mark.slow, pytest.mark.realclock, pytest.mark.xdist_group("alert_timing")]


def _alert(name: str) -> dict:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text(encoding="utf-8"))
    return next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == name)


def _stem(text: str) -> str:
    """The fixed words an annotation starts with (before its first template action)."""
    return text.split("{{")[0].strip().rstrip(":=").strip()


BURSTS = {
    name: (_stem(_alert(name)["annotations"]["summary"]), _stem(_alert(name)["annotations"]["resolution"]))
    for name in ("CCAHighTransferRate", "CCAResponseLatencyHigh")
}


class Bursts(LiveSimulator):
    """The demo traffic; while ``bursting``, every call that ends is transferred and every reply of
    the bot comes 3 s later (the `transfers` and `latency` incidents of demo-traffic at once)."""

    bursting = False

    def _staged(self, call: dict) -> dict:
        if not self.bursting:
            return call
        for incident in ("transfers", "latency"):
            self.incident = incident
            call = super()._staged(call)
        self.incident = None
        return call


class TimedTelegram(FakeTelegram):
    """The Bot API stand-in, noting when each request arrived (monotonic clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[tuple[float, str]] = []

    def _answer(self, handler, req) -> None:
        if req.method == "sendMessage":
            self.arrived.append((time.monotonic(), str(req.payload.get("text", ""))))
        super()._answer(handler, req)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def production_route() -> dict:
    """The route of the repository's Alertmanager configuration (group_wait, group_interval)."""
    text = (PROM / "alertmanager.yml.tmpl").read_text(encoding="utf-8")
    return yaml.safe_load(re.sub(r"\$\{[A-Z_]+\}", "x", text))["route"]


def _seconds(duration: str) -> float:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def test_alertmanager_sends_a_resolution_within_a_minute_of_prometheus():
    """Alertmanager sends a group's resolution at the group's next flush, group_interval after the
    last: the 5 minutes from a burst's end to its resolution in Telegram leave one minute for it."""
    route = production_route()
    assert _seconds(route["group_wait"]) <= 30, route
    assert _seconds(route["group_interval"]) <= 60, route


def _start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)


def test_bursts_are_paged_within_2_minutes_and_resolved_within_5(tmp_path):
    tg, smtp = TimedTelegram().up(), SMTPServer().up()
    procs: list[subprocess.Popen] = []
    live = LiveMetrics(CollectorRegistry())
    live_port, am_port, prom_port = free_port(), free_port(), free_port()
    live.serve(live_port)
    calls = list(generator.generate_calls(seed=42, days=1, calls_per_day=400, ab_test=None))
    # the demo-traffic defaults: 120 calls a minute, each lasting its duration / 20
    sim = Bursts(live, calls, calls_per_minute=120, speedup=20, seed=42).start()
    try:
        # Alertmanager: the repository's configuration and templates, production timings
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
            "CCA_ADMIN_BASE_URL": "https://cca.shop.example",
        }
        am = yaml.safe_load(string.Template((PROM / "alertmanager.yml.tmpl").read_text()).substitute(env))
        if "templates" in am:  # where deploy/docker-compose.yml mounts them
            am["templates"] = [str(PROM / "templates" / "*.tmpl")]
        route = am["route"]
        (tmp_path / "am.yml").write_text(yaml.safe_dump(am, allow_unicode=True))
        procs.append(
            _start(
                [
                    require("prometheus-alertmanager"),
                    f"--config.file={tmp_path / 'am.yml'}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                tmp_path / "am.log",
                {**os.environ, "TZ": "Europe/Kyiv"},
            )
        )
        assert wait_for(lambda: _ready(f"http://127.0.0.1:{am_port}/-/ready")), (tmp_path / "am.log").read_text()

        # Prometheus: production scrape and evaluation intervals, the repository's rules
        prod = yaml.safe_load((PROM / "prometheus.yml").read_text())
        cfg = {
            "global": prod["global"],
            "rule_files": [str(PROM / "alerts.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [
                {"job_name": "call-processor", "static_configs": [{"targets": [f"127.0.0.1:{live_port}"]}]}
            ],
        }
        assert (cfg["global"]["scrape_interval"], cfg["global"]["evaluation_interval"]) == ("15s", "30s")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        started = time.monotonic()
        procs.append(
            _start(
                [
                    require("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                tmp_path / "prometheus.log",
            )
        )
        assert wait_for(lambda: _ready(f"http://127.0.0.1:{prom_port}/-/ready")), "Prometheus did not start"

        # a fresh Prometheus beside running healthy traffic: nothing is sent
        time.sleep(max(0.0, started + HEALTHY_STRETCH - time.monotonic()))
        assert tg.arrived == [], f"paged on a healthy system: {[t for _, t in tg.arrived]}"

        def first(stem: str, since: float) -> float | None:
            return next((at for at, text in tg.arrived if at >= since and stem in text), None)

        sim.bursting, burst_start = True, time.monotonic()
        fired: dict[str, float] = {}
        while len(fired) < len(BURSTS) and time.monotonic() < burst_start + PAGE_WITHIN + 60:
            time.sleep(0.5)
            for name, (firing, _) in BURSTS.items():
                if name not in fired and (at := first(firing, burst_start)) is not None:
                    fired[name] = at - burst_start
        time.sleep(10)  # the burst goes on a little after the last page
        sim.bursting, burst_end = False, time.monotonic()
        resolved: dict[str, float] = {}
        while len(resolved) < len(BURSTS) and time.monotonic() < burst_end + RESOLVE_WITHIN + 60:
            time.sleep(0.5)
            for name, (_, resolution) in BURSTS.items():
                if name not in resolved and (at := first(resolution, burst_end)) is not None:
                    resolved[name] = at - burst_end

        texts = [text for _, text in tg.arrived]
        print(
            f"\nburst {burst_end - burst_start:.0f} s; group_wait {route['group_wait']}, "
            f"group_interval {route['group_interval']}"
        )
        for name in BURSTS:
            print(
                f"{name}: paged {fired.get(name, float('nan')):.0f} s after the start, resolved "
                f"{resolved.get(name, float('nan')):.0f} s after the end"
            )
        for name in BURSTS:
            assert fired.get(name, 1e9) <= PAGE_WITHIN, (name, fired, texts)
            assert resolved.get(name, 1e9) <= RESOLVE_WITHIN, (name, resolved, texts)
        # nothing else was sent: each alert paged once and resolved once
        assert len(texts) == 2 * len(BURSTS), texts
    finally:
        sim.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        tg.down()
        smtp.down()
