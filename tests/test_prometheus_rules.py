"""Alert rules, their unit tests, the Prometheus and Alertmanager configs and the dashboards, checked
with the real promtool and amtool."""

from __future__ import annotations

import json
import re
import string
import subprocess
from pathlib import Path

import pytest
import yaml
from systools import require

from ccanalytics.ops import dashcheck, dashqueries, telemetry

ROOT = Path(__file__).resolve().parent.parent
PROM = ROOT / "prometheus"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# promtool unit tests: alerts_test.yml (each alert), _timing (bursts), _healthy (fresh start, restarts),
# _longterm (days: spend, quality, a healthy week)
RULE_TESTS = sorted(p.name for p in PROM.glob("alerts_test*.yml"))

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
    "CCA_ADMIN_BASE_URL": "https://cca.shop.example",
}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=PROM, timeout=timeout)


def test_rules_are_valid():
    out = run(require("promtool"), "check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def _alerts() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"] if "alert" in r]


def _cases(*files: str) -> list[dict]:
    return [c for f in files for c in yaml.safe_load((PROM / f).read_text(encoding="utf-8"))["tests"]]


def _duration(text: str) -> float:
    """promtool's eval_time ("1d2h30m15s") in seconds."""
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit():
            number += ch
        else:
            total += int(number) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total


@pytest.mark.realclock
def test_rule_unit_tests_pass():
    assert {"alerts_test.yml", "alerts_test_timing.yml", "alerts_test_healthy.yml"} <= set(RULE_TESTS)
    # ~35 s of CPU; a guard against a hang, not a time limit (a loaded machine takes minutes)
    out = run(require("promtool"), "test", "rules", *RULE_TESTS, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_silent():
    alerts = {r["alert"] for r in _alerts()}
    fired, silent = set(), set()
    for case in _cases(*RULE_TESTS):
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - fired == set(), "alerts never shown to fire"
    assert alerts - silent == set(), "alerts never shown to stay silent"
    for a in alerts:
        assert a.startswith("CCA")


def test_alert_annotations_are_russian_with_runbooks():
    docs = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    for rule in _alerts():
        ann = rule["annotations"]
        # what fires, what it means, and what the resolved message says (Alertmanager's templates)
        for key in ("summary", "description", "resolution"):
            assert any("а" <= ch <= "я" for ch in ann[key].lower()), (rule["alert"], key)
        assert ann["runbook"].startswith("docs/alerts.md#")
        assert rule["alert"] in docs, f"{rule['alert']} missing from docs/alerts.md"
        assert rule["labels"]["channel"] in ("telegram", "email")
        assert rule["labels"]["severity"] in ("critical", "warning")


def test_alert_numbers_are_in_russian_format():
    """humanize gives "1.013k", humanizePercentage "84.26%", humanizeDuration "4.9s": every number goes
    through printf and a decimal comma instead (promtool tests check the rendered text)."""
    for rule in _alerts():
        for key, text in rule["annotations"].items():
            assert "humanize" not in text, (rule["alert"], key)
            for part in text.split("printf")[1:]:
                fmt = part.split('"')[1]
                if fmt.startswith("cca:"):  # a query for the deciding window
                    continue
                assert fmt in ("%.0f", "%.1f", "%.2f"), (rule["alert"], key, fmt)
                if fmt != "%.0f":
                    assert 'reReplaceAll `\\.` ","' in part.split("}}")[0], (rule["alert"], key)
        assert "$value }}" not in str(rule["annotations"]), rule["alert"]
    cases = _cases(*RULE_TESTS)
    texts = [
        text
        for case in cases
        for check in case.get("alert_rule_test", [])
        for alert in check.get("exp_alerts") or []
        for text in alert.get("exp_annotations", {}).values()
    ]
    assert texts and not [t for t in texts if any(s in t for s in ('%"', 'ms"', ".0", 's"'))]
    assert any("66,7 %" in t for t in texts) and any("2,98 с" in t for t in texts)


def test_every_alert_is_shown_silent_on_a_healthy_system_at_every_age():
    """Issue 18: a fresh start, an hour, a day and a week of data, and across an exporter restart, a
    call-processor restart and a Prometheus restart."""
    alerts = {r["alert"] for r in _alerts()}
    ages: dict[str, set[float]] = {a: set() for a in alerts}
    situations = {"fresh": False, "exporter": False, "processor": False, "prometheus": False, "week": False}
    for case in _cases("alerts_test_healthy.yml", "alerts_test_longterm.yml"):
        checks = case.get("alert_rule_test", [])
        everything_silent = all(not c.get("exp_alerts") for c in checks)
        if not everything_silent or {c["alertname"] for c in checks} != alerts:
            continue
        name = case["name"]
        for key, words in (
            ("fresh", "fresh Prometheus"),
            ("exporter", "exporter restarts"),
            ("processor", "processor restarts"),
            ("prometheus", "Prometheus restarts"),
            ("week", "healthy week"),
        ):
            situations[key] |= words in name
        for c in checks:
            ages[c["alertname"]].add(_duration(c["eval_time"]))
    assert all(situations.values()), situations
    for alert, seen in ages.items():
        assert min(seen) <= 60, alert  # the first scrapes
        for age in (3600, 86400, 7 * 86400):
            assert any(age <= s < age + 86400 for s in seen), (alert, age)


# judged over every tenant: the pipeline's health, not a shop's (docs/alerts.md)
OVER_EVERY_TENANT = {"CCAExporterDatabaseDown", "CCANoCallsLogged"}


def test_rules_aggregate_per_tenant_and_name_it():
    """Issue 16: each shop pages on its own — every aggregation and join keeps `tenant`, and the
    texts people read name it; Alertmanager groups and inhibits per tenant."""
    rules = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        name = rule.get("alert") or rule["record"]
        if name in OVER_EVERY_TENANT:
            continue
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            assert "tenant" in clause.split(", ") and "source" in clause, (name, clause)
        if "alert" in rule:
            for key in ("summary", "description", "resolution"):
                assert "$labels.tenant" in rule["annotations"][key], (name, key)
            for query in re.findall(r'printf "(cca:[^"]*)"', str(rule["annotations"])):
                assert "tenant=%q" in query, (name, query)
    am = yaml.safe_load(string.Template((PROM / "alertmanager.yml.tmpl").read_text()).substitute(TEMPLATE_ENV))
    assert "tenant" in am["route"]["group_by"]
    assert all("tenant" in r["equal"] for r in am["inhibit_rules"])
    assert ", сеть: {{ .Labels.tenant }}" in (PROM / "templates" / "ccanalytics.tmpl").read_text()


def test_a_promtool_case_shows_one_tenant_paging_while_the_other_is_healthy():
    cases = [c for c in _cases("alerts_test.yml") if c["name"].startswith("one tenant spikes")]
    [case] = cases
    tenants = {re.search(r'tenant="([^"]+)"', s["series"]).group(1) for s in case["input_series"]}
    assert tenants == {"shinservice", "prokoleso"}
    paged = [a["exp_labels"]["tenant"] for c in case["alert_rule_test"] for a in c["exp_alerts"]]
    assert paged == ["shinservice"]


def test_busy_bursts_fire_within_a_minute_and_resolve_within_a_minute_at_the_rules():
    """Rule-level timing (alerts_test_timing.yml): a busy burst from 30m to 35m fires by 31m and is
    resolved by 36m. Scrape (15 s), Alertmanager's group_wait (30 s) and group_interval come on top:
    tests/test_alert_timing.py measures the whole path."""
    busy = [c for c in _cases("alerts_test_timing.yml") if c["name"].startswith("busy:")]
    assert {c["alert_rule_test"][0]["alertname"] for c in busy} == {"CCAHighTransferRate", "CCAResponseLatencyHigh"}
    for case in busy:
        checks = {c["eval_time"]: bool(c.get("exp_alerts")) for c in case["alert_rule_test"]}
        assert checks["30m"] is False and checks["31m"] is True and checks["36m"] is False


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
    queries = list(dashqueries.dashboard_queries(DASHBOARDS))
    assert len([q for q in queries if q.kind == "promql"]) >= 25
    for q in queries:
        for name in q.metrics():
            base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            assert base in known, f"{q.origin} reads {name}, which nothing exports"
        assert "$source" not in q.text


def test_dashboard_metric_names_check_catches_a_made_up_metric():
    q = dashqueries.Query("test", "promql", 'sum(rate(cca_made_up_total{source="live"}[5m]))')
    problems = dashcheck.check_promql("http://127.0.0.1:1", [q], known={"cca_calls_total"})
    assert len(problems) == 1 and "cca_made_up_total" in problems[0].message
