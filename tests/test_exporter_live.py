"""The exporter restarted under a real Prometheus: after a call is re-delivered and the exporter
process is replaced (its checkpoint in the database), Prometheus sees no counter reset and no alert
fires or is pending (issue 18: the restart that paged «Высокая доля переводов» with no new calls)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import yaml
from factories import make_call
from systools import free_port, require

from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import exporter

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.xdist_group("prometheus")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no access log in the test output
        pass


class _Threaded(WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(engine, port: int):
    """A new exporter 'process': a new collector (it starts from the checkpoint) on ``port``."""
    registry = exporter.make_registry(engine, lag_seconds=0)
    server = make_server("127.0.0.1", port, exporter.wsgi_app(registry), server_class=_Threaded, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def _query(prom: str, expr: str) -> list:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_a_redelivery_and_an_exporter_restart_show_no_reset_and_page_nothing(engine, tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    calls = [make_call(started_at=now - timedelta(minutes=20 - i), seconds=60, caller_id=None) for i in range(12)]
    ingest_records(engine, calls)
    port, prom_port = free_port(), free_port()
    server = _serve(engine, port)

    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, allow_unicode=True))
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "alerts.yml")],
                "scrape_configs": [{"job_name": "ccanalytics", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
            }
        )
    )
    prom = subprocess.Popen(
        [
            require("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        _wait(lambda: _ping(base), 30, "Prometheus")
        _wait(lambda: _query(base, "count_over_time(cca_exporter_up[1m]) >= 5"), 60, "five scrapes")
        before = _total(base)
        assert before == 12

        # the same call delivered again, corrected (an identical payload is not written again)
        ingest_records(engine, [{**calls[-1], "scenario": "order_status"}])
        time.sleep(3)
        server.shutdown()
        server.server_close()
        time.sleep(3)  # the exporter is down for a few scrapes
        server = _serve(engine, port)  # a new process: starts from the checkpoint
        _wait(lambda: _query(base, "count_over_time(cca_exporter_up[6s]) >= 5"), 60, "scrapes after the restart")

        assert _total(base) == before
        for metric in ("cca_calls_total", "cca_cost_usd_total", "cca_call_duration_seconds_count"):
            resets = _query(base, f"sum(resets({metric}[5m]))")
            assert resets and float(resets[0]["value"][1]) == 0, (metric, resets)
        assert _query(base, "ALERTS") == []  # nothing firing, nothing pending
    finally:
        server.shutdown()
        server.server_close()
        prom.terminate()
        prom.wait(timeout=10)


def _ping(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
            return True
    except OSError:
        return False


def _total(base: str) -> float:
    result = _query(base, "sum(cca_calls_total)")
    return float(result[0]["value"][1]) if result else 0.0
