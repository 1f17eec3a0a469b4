"""Alert rules, their unit tests, the Prometheus and Alertmanager configs and the dashboards, checked
with the real promtool and amtool."""

from __future__ import annotations

import json
import string
import subprocess
from pathlib import Path

import yaml
from systools import require

from ccanalytics import dashcheck, telemetry

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))

TEMPLATE_ENV = {
    "CCA_SMTP_SMARTHOST": "127.0.0.1:2525",
    "CCA_SMTP_FROM": "alerts@shop.example",
    "CCA_SMTP_USERNAME": "alerts",
    "CCA_SMTP_PASSWORD": "secret",
    "CCA_SMTP_REQUIRE_TLS": "true",
    "CCA_TELEGRAM_API_URL": "https://api.telegram.org",
    "CCA_TELEGRAM_BOT_TOKEN": "123456:ABC",
    "CCA_TELEGRAM_CHAT_ID": "-1001234567890",
    "CCA_ALERT_EMAIL_TO": "ops@shop.example",
}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=PROM, timeout=120)


def test_rules_are_valid():
    out = run(require("promtool"), "check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_rule_unit_tests_pass():
    out = run(require("promtool"), "test", "rules", "alerts_test.yml", "alerts_test_longterm.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_silent():
    alerts = {
        r["alert"]
        for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    fired, silent = set(), set()
    cases = [
        c
        for f in ("alerts_test.yml", "alerts_test_longterm.yml")
        for c in yaml.safe_load((PROM / f).read_text())["tests"]
    ]
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - fired == set(), "alerts never shown to fire"
    assert alerts - silent == set(), "alerts never shown to stay silent"
    for a in alerts:
        assert a.startswith("CCA")


def test_alert_annotations_are_russian_with_runbooks():
    docs = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    for group in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            ann = rule["annotations"]
            assert any("а" <= ch <= "я" for ch in ann["summary"].lower()), rule["alert"]
            assert ann["runbook"].startswith("docs/alerts.md#")
            assert rule["alert"] in docs, f"{rule['alert']} missing from docs/alerts.md"
            assert rule["labels"]["channel"] in ("telegram", "email")


def test_prometheus_config_is_valid():
    out = run(require("promtool"), "check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_alertmanager_config_renders_and_is_valid(tmp_path):
    text = string.Template((PROM / "alertmanager.yml.tmpl").read_text()).substitute(TEMPLATE_ENV)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    out = subprocess.run([require("amtool"), "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = yaml.safe_load(text)
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert receivers["telegram"]["telegram_configs"][0]["chat_id"] == -1001234567890
    assert receivers["email"]["email_configs"][0]["to"] == "ops@shop.example"
    # the template holds no secrets of its own
    raw = (PROM / "alertmanager.yml.tmpl").read_text()
    assert "123456:ABC" not in raw and "${CCA_TELEGRAM_BOT_TOKEN}" in raw


def test_dashboards_use_provisioned_datasources_and_known_metrics():
    prov = yaml.safe_load((ROOT / "grafana/provisioning/datasources/ccanalytics.yml").read_text())
    uids = {d["uid"] for d in prov["datasources"]}
    assert uids == {"cca-prometheus", "cca-postgres"}
    known = {d.name for d in telemetry.CATALOG} | {"cca_exporter_up", "cca_exporter_refresh_seconds"}
    seen_uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text(encoding="utf-8"))
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dash["panels"]:
            seen_uids.add(panel["datasource"]["uid"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == panel["datasource"]["uid"]
    assert seen_uids <= uids
    queries = list(dashcheck.dashboard_queries(DASHBOARDS))
    assert len([q for q in queries if q.kind == "promql"]) >= 25
    for q in queries:
        for name in q.metrics():
            base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            assert base in known, f"{q.origin} reads {name}, which nothing exports"
        assert "$source" not in q.text


def test_dashboard_metric_names_check_catches_a_made_up_metric():
    q = dashcheck.Query("test", "promql", 'sum(rate(cca_made_up_total{source="live"}[5m]))')
    problems = dashcheck.check_promql("http://127.0.0.1:1", [q], known={"cca_calls_total"})
    assert len(problems) == 1 and "cca_made_up_total" in problems[0].message
