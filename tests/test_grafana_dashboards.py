"""The Grafana dashboards show Russian labels, never raw codes, and never «NaN».

One vocabulary: the labels come from ccanalytics.core.labels through ``dashlabels.labelled`` (the committed
JSON must equal what scripts/grafana-labels.py writes); the SQL label expressions give on the demo data
what ``labels.label`` gives; every value the exporter and the call processor emit for a label a panel
shows has a Russian label. Every panel says «нет данных» when it has no data, and a panel whose value
can be 0/0 says so («нет звонков» …) instead of NaN.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import DEMO_END
from prometheus_client import CollectorRegistry

from ccanalytics.core import labels
from ccanalytics.ops import dashcheck, dashlabels, dashqueries, dashtenants, telemetry

ROOT = Path(__file__).resolve().parent.parent
BOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SCRIPT = ROOT / "scripts" / "grafana-labels.py"


def _board(name: str) -> dict:
    return json.loads((ROOT / "grafana" / "dashboards" / name).read_text(encoding="utf-8"))


def _problems_of(tmp_path: Path, board: dict, check=dashlabels.label_problems) -> list[str]:
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [f"{p.query.origin.split(' / ', 1)[1]}: {p.message}" for p in check([path])]


def _panel(board: dict, title: str) -> dict:
    return next(p for p in board["panels"] if p["title"] == title)


# ------------------------------------------------------------------------------------- labels
def test_the_committed_dashboards_carry_the_current_labels():
    assert dashlabels.label_problems(BOARDS) == []
    res = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_label_check_catches_raw_codes_and_stale_labels(tmp_path, monkeypatch):
    analytics = _board("cca-analytics.json")
    reasons = "Причины переводов за период"
    raw = json.loads(json.dumps(analytics))
    target = _panel(raw, reasons)["targets"][0]
    target["rawSql"] = re.sub(
        r"/\* labels\.TRANSFER_REASONS\(r\.key\) \*/.*?/\* end labels \*/", "r.key", target["rawSql"]
    )
    assert _problems_of(tmp_path, raw) == [
        f"{reasons}: shows transfer_reasons keys raw: wrap r.key in dashcheck.sql_label"
    ]
    wrong = json.loads(json.dumps(analytics))
    target = _panel(wrong, reasons)["targets"][0]
    target["rawSql"] = target["rawSql"].replace("labels.TRANSFER_REASONS(r.key)", "labels.SCENARIOS(r.key)")
    assert f"{reasons}: labels transfer_reasons keys with another vocabulary than labels.TRANSFER_REASONS" in (
        _problems_of(tmp_path, wrong)
    )
    ab = "A/B-тесты: сравнение вариантов за период"
    scenario = json.loads(json.dumps(analytics))
    target = _panel(scenario, ab)["targets"][0]
    target["rawSql"] = target["rawSql"].replace('SELECT t.test_name AS "тест"', 'SELECT c.scenario AS "сценарий"')
    assert _problems_of(tmp_path, scenario) == [f"{ab}: shows scenario codes raw: wrap it in dashcheck.sql_label"]
    # a label changed in labels.py: the dashboards are stale until the script runs
    monkeypatch.setitem(labels.TRANSFER_REASONS, "cannot_help", "бот не справился")
    assert _problems_of(tmp_path, analytics) == [
        f"{reasons}: Russian labels are not current: run scripts/grafana-labels.py"
    ]
    assert "'бот не справился'" in json.dumps(dashlabels.labelled(analytics), ensure_ascii=False)
    monkeypatch.undo()

    realtime = _board("cca-realtime.json")
    errors = "Ошибки по компонентам (в минуту)"
    bare = json.loads(json.dumps(realtime))
    _panel(bare, errors)["fieldConfig"]["overrides"] = []
    assert _problems_of(tmp_path, bare) == [f"{errors}: Russian labels are not current: run scripts/grafana-labels.py"]
    assert dashlabels.labelled(bare) == realtime  # the script writes them back, other overrides kept
    combined = json.loads(json.dumps(realtime))
    _panel(combined, errors)["targets"][0]["legendFormat"] = "{{component}} ({{source}})"
    assert (
        f"{errors}: legend '{{{{component}}}} ({{{{source}}}})' shows codes that cannot be labelled (use "
        "{{label}} alone)" in _problems_of(tmp_path, combined)
    )
    codes = json.loads(json.dumps(realtime))
    variable = next(v for v in codes["templating"]["list"] if v["name"] == "source")
    variable["options"][0]["text"] = "live"
    assert _problems_of(tmp_path, codes) == ["variable source: options without a Russian text: live"]


def test_the_prometheus_panels_label_every_value_the_exporter_and_the_processor_emit():
    # what the call processor's LiveMetrics emits (its zeroed counters name every tool and component)
    registry = CollectorRegistry()
    live = telemetry.LiveMetrics(registry)
    live.call_started()
    live.call_ended(scenario="tire_search", transferred=False, cost_breakdown={"stt": 0.01, "zzz": 0.1})
    live.call_ended(scenario="x", transferred=True, transfer_reason="cannot_help", ab_test="t", ab_variant="A")
    live.tool_call("search_tires", success=True)
    live.tool_call("search_tires", success=False, result={"error": "boom"})
    live.tool_call("confirm_order", success=False, result={"error": "validation failed: quantity"})
    live.component_error("nonsense")
    emitted: dict[tuple[str, str], set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                emitted.setdefault((family.name, label), set()).add(value)
    # what the exporter emits goes through the same label hygiene
    emitted.setdefault(("cca_quality_criterion_score", "criterion"), set()).update(
        telemetry.criterion_label(c) for c in (*telemetry.CRITERIA, "made_up")
    )
    emitted[("cca_cost_usd", "component")] = emitted.pop(("cca_cost_usd", "component"), set()) | {
        *telemetry.COST_COMPONENTS,
        "other",
    }
    shown = set()
    for path in BOARDS:
        for panel in dashqueries.walk_panels(json.loads(path.read_text(encoding="utf-8"))["panels"]):
            for target in panel.get("targets", []):
                metric = dashlabels._prom_metric(target.get("expr") or "")
                if not metric:
                    continue
                legend = set(re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat") or ""))
                by = set(re.findall(r"\w+", " ".join(re.findall(r"by \(([^)]*)\)", target["expr"]))))
                for label in (legend | by) & dashlabels.CODED_LABELS:
                    shown.add((re.sub(r"_(bucket|sum|count)$", "", metric), label))
    assert shown == {
        ("cca_component_errors_total", "component"),
        ("cca_calls_total", "outcome"),
        ("cca_tool_calls_total", "status"),
        ("cca_quality_criterion_score", "criterion"),
        ("cca_cost_usd_total", "component"),
        ("cca_ab_calls_total", "outcome"),
    }
    for metric, label in shown:
        family = metric.removesuffix("_total")
        values = emitted.get((family, label), set())
        assert values, (metric, label)
        vocabulary = dashlabels.prom_vocabulary(metric, label)
        assert vocabulary is not None and values <= set(vocabulary), (metric, label, values - set(vocabulary or {}))
        assert all(re.search("[а-яА-Я]", text) or text.isupper() for text in vocabulary.values())


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.connection.driver_connection.execute(sql).fetchall()


def test_the_sql_labels_are_those_of_labels_py_on_the_demo_data(demo_engine):
    """Each SQL panel that shows codes, run on the demo data, shows what labels.label gives for them."""
    to = datetime.combine(date.fromisoformat(DEMO_END) + timedelta(days=1), time(), ZoneInfo("Europe/Kyiv"))
    checked = 0
    for query in dashqueries.dashboard_queries(BOARDS):
        labelled = list(dashlabels._SQL_LABEL.finditer(query.text))
        if query.kind != "sql" or not labelled:
            continue
        (m,) = labelled
        raw = query.text.replace(m.group(0), m["key"])  # the same query showing the codes
        sql, raw_sql = (dashcheck.expand_sql_macros(q, to - timedelta(days=7), to) for q in (query.text, raw))
        shown, codes = _rows(demo_engine, sql), _rows(demo_engine, raw_sql)
        column = 1 if "AS metric" in query.text else 0
        assert len(shown) == len(codes) > 0, query.origin
        vocabulary = getattr(labels, m["vocab"])
        expected = [(*r[:column], labels.label(vocabulary, r[column]), *r[column + 1 :]) for r in codes]
        assert sorted(shown) == sorted(expected), query.origin  # (ordered by the label, not the code)
        assert not {r[column] for r in shown} & set(vocabulary), query.origin  # no code left raw
        checked += 1
    assert checked == 2  # «Сценарии по дням», «Причины переводов за период»
    assert _rows(
        demo_engine,
        f"SELECT {dashlabels.sql_label('SCENARIOS', 'k')} FROM (VALUES "
        "('tire_search + order_creation'), (''), (NULL), ('made_up')) t(k)",
    ) == [("подбор шин + оформление заказа",), ("—",), ("—",), ("made_up",)]


# --------------------------------------------------------------------------- no data, no «NaN»
def test_every_panel_says_no_data_and_no_nan_in_russian(tmp_path):
    assert dashlabels.display_problems(BOARDS) == []
    realtime = _board("cca-realtime.json")
    p95 = _panel(realtime, "Задержка ответа p95")  # NaN whenever no call ended in the last 5 minutes
    defaults = p95["fieldConfig"]["defaults"]
    assert defaults["noValue"] == "нет данных"
    assert {m["options"]["match"]: m["options"]["result"]["text"] for m in defaults["mappings"]} == {
        "nan": "нет звонков",
        "null": "нет звонков",
    }
    check = dashlabels.display_problems
    no_text = json.loads(json.dumps(realtime))
    del _panel(no_text, "Активные звонки")["fieldConfig"]["defaults"]["noValue"]
    assert _problems_of(tmp_path, no_text, check) == [
        "Активные звонки: no Russian noValue text («нет данных») for a panel without data"
    ]
    nan = json.loads(json.dumps(realtime))
    _panel(nan, "Задержка ответа p95")["fieldConfig"]["defaults"]["mappings"].pop(0)
    assert _problems_of(tmp_path, nan, check) == [
        "Задержка ответа p95: a ratio that can be 0/0 without a Russian value mapping for nan"
    ]
    both = json.loads(json.dumps(realtime))
    _panel(both, "Задержка ответа p95")["fieldConfig"]["defaults"]["mappings"] = [
        {"type": "special", "options": {"match": "null+nan", "result": {"text": "нет звонков", "index": 0}}}
    ]
    assert _problems_of(tmp_path, both, check) == []
    # every ratio: PromQL divisions and quantiles, SQL nullif/avg; a unit change (/ 1000.0) is none
    ratios = {
        p["title"]
        for path in BOARDS
        for p in json.loads(path.read_text(encoding="utf-8"))["panels"]
        if dashlabels._can_be_nan(p)
    }
    assert {"Доля переводов за час", "Средняя стоимость звонка", "A/B-тесты: сравнение вариантов за период"} <= ratios
    assert "Задержка ответа по дням (p50, p95)" not in ratios and len(ratios) == 12


# ---------------------------------------------------------------------- «Сеть» on Prometheus
PROM_BOARDS = ("cca-realtime.json", "cca-quality-cost.json")


def test_the_prometheus_dashboards_follow_the_tenant_variable(tmp_path):
    assert dashtenants.tenant_problems(BOARDS) == []
    assert "tenant" in telemetry.BY_NAME["cca_calls_total"].labels  # the exporter's and processor's label
    for name in PROM_BOARDS:
        board = _board(name)
        variable = board["templating"]["list"][0]
        assert (variable["name"], variable["label"], variable["definition"]) == (
            "tenant",
            "Сеть",
            "label_values(cca_calls_total, tenant)",
        )
        assert (variable["includeAll"], variable["allValue"], variable["current"]["value"]) == (True, ".*", "$__all")
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        assert exprs and all(e.count("cca_") == e.count('tenant=~"$tenant"') for e in exprs), name
    check = dashtenants.tenant_problems
    realtime = _board("cca-realtime.json")
    unfiltered = json.loads(json.dumps(realtime))
    target = _panel(unfiltered, "Доля переводов за час")["targets"][0]
    target["expr"] = target["expr"].replace(',outcome="operator",tenant=~"$tenant"', ',outcome="operator"')
    assert _problems_of(tmp_path, unfiltered, check) == [
        'Доля переводов за час / A: does not filter cca_calls_total by the tenant variable (tenant=~"$tenant")'
    ]
    no_variable = json.loads(json.dumps(realtime))
    no_variable["templating"]["list"].pop(0)
    assert _problems_of(tmp_path, no_variable, check) == [
        "variable tenant: the dashboard reads metrics with a tenant label but has no tenant variable"
    ]
    no_all = json.loads(json.dumps(realtime))
    no_all["templating"]["list"][0].update(includeAll=False, current={"text": "prokoleso", "value": "prokoleso"})
    assert _problems_of(tmp_path, no_all, check) == [
        'variable tenant: the tenant variable must be with «All» = ".*" (also series without the label), the default'
    ]
    # the checks substitute «All» as Grafana sends it
    (query, *_) = dashqueries.dashboard_queries([ROOT / "grafana" / "dashboards" / "cca-realtime.json"])
    assert query.text == 'sum(cca_active_calls{source="live",tenant=~".*"})'


def test_all_tenants_also_counts_the_series_without_a_tenant_in_real_prometheus(tmp_path):
    """«All» (.*) sums every series, those of no known tenant (tenant="" is no label) included; a tenant
    its own only. Evaluated by the real Prometheus engine (promtool) on the panel's own query."""
    from systools import require

    expr = _panel(_board("cca-realtime.json"), "Активные звонки")["targets"][0]["expr"]
    (tmp_path / "none.yml").write_text("groups: []\n")
    tests = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'cca_active_calls{source="live"}', "values": "2x5"},
                    {"series": 'cca_active_calls{source="live",tenant="prokoleso"}', "values": "3x5"},
                    {"series": 'cca_active_calls{source="live",tenant="shinservice"}', "values": "4x5"},
                ],
                "promql_expr_test": [
                    {
                        "expr": expr.replace("$tenant", value),
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "{}", "value": n}],
                    }
                    for value, n in ((".*", 9), ("prokoleso", 3), ("shinservice", 4))
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(json.dumps(tests))
    res = subprocess.run(
        [require("promtool"), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
