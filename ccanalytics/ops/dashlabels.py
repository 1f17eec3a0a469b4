"""What a person reads on the dashboards: the Russian labels of every code (written from
ccanalytics.core.labels), «нет данных» instead of «No data» and a Russian text instead of «NaN»."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccanalytics.core import labels
from ccanalytics.ops.dashqueries import METRIC_RE, SQL_COMMENT, SQL_STRING, Problem, Query, walk_panels

# ------------------------------------------------------------------------------ Russian labels
# The dashboards show no raw codes: every scenario, transfer reason, criterion, component, outcome and
# status is shown by its Russian label from ccanalytics.core.labels (the one vocabulary). :func:`labelled`
# writes the labels into a dashboard (scripts/grafana-labels.py runs it over grafana/dashboards);
# :func:`label_problems` fails a dashboard whose labels are not current or that shows a code unlabelled.


def _with_other(mapping: dict[str, str]) -> dict[str, str]:
    return {**mapping, "other": labels.OTHER}


def prom_vocabularies() -> dict[tuple[str, str], dict[str, str]]:
    """Per (metric, label) holding codes: the Russian labels of every value the exporter and the call
    processor emit (telemetry's label hygiene: codes outside the known sets become "other")."""
    return {
        ("cca_calls_total", "outcome"): dict(labels.OUTCOMES),
        ("cca_ab_calls_total", "outcome"): dict(labels.OUTCOMES),
        ("cca_calls_total", "transfer_reason"): _with_other({**labels.TRANSFER_REASONS, **labels.NO_TRANSFER}),
        ("cca_tool_calls_total", "status"): dict(labels.TOOL_STATUSES),
        ("cca_component_errors_total", "component"): _with_other(
            {k: labels.COST_COMPONENTS[k] for k in ("stt", "llm", "tts", "telephony")} | labels.TOOL_COMPONENT
        ),
        # the processor zeroes its cost counter for every pipeline component, "tool" included
        ("cca_cost_usd_total", "component"): _with_other(labels.COST_COMPONENTS | labels.TOOL_COMPONENT),
        ("cca_quality_criterion_score", "criterion"): _with_other(dict(labels.CRITERIA)),
    }


def prom_vocabulary(metric: str, label: str) -> dict[str, str] | None:
    """The Russian labels of ``label``'s values on ``metric`` (a histogram's _bucket/_sum/_count
    included); None for a label without a vocabulary."""
    return prom_vocabularies().get((re.sub(r"_(bucket|sum|count)$", "", metric), label))


# labels whose values are codes; a panel showing one must label it
CODED_LABELS = frozenset({"scenario", "transfer_reason", "outcome", "tool", "status", "component", "criterion"})
# jsonb columns of the daily figures whose keys are codes -> the labels.py vocabulary of the keys
SQL_CODED_COLUMNS = {
    "scenario_breakdown": "SCENARIO_CODES",
    "scenario_transfers": "SCENARIO_CODES",
    "transfer_reasons": "TRANSFER_REASONS",
}
# columns of the calls holding codes, shown when selected AS a column of the panel
_SQL_CODED_CALL_COLUMN = re.compile(r"\b(?:\w+\.)?(scenario|transfer_reason)\s+AS\b", re.I)
_CYRILLIC = re.compile(r"[А-Яа-яЁёІіЇїЄє]")
_SQL_LABEL = re.compile(r"/\* labels\.(?P<vocab>[A-Z_]+)\((?P<key>[\w.]+)\) \*/.*?/\* end labels \*/", re.S)
_JSONB_KEYS = re.compile(r"\bjsonb_each(?:_text)?\(\s*(?:\w+\.)?(\w+)\s*\)\s+(?:AS\s+)?(\w+)", re.I)
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_BY_LABELS = re.compile(r"\bby\s*\(([^)]*)\)")


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_label(vocabulary: str, key: str) -> str:
    """An SQL expression giving the Russian label of the code ``key`` (a column), as
    ``labels.label(labels.<vocabulary>, key)`` does: a combined code (``a + b``) labels each part, an
    unknown code stays as it is, an empty one is «—». Marked with comments so :func:`labelled` can
    regenerate it."""
    mapping: dict[str, str] = getattr(labels, vocabulary)
    values = ", ".join(f"({_sql_literal(k)}, {_sql_literal(v)})" for k, v in mapping.items())
    return (
        f"/* labels.{vocabulary}({key}) */ "  # noqa: S608 — regex-checked names; labels.py codes quoted as literals
        "coalesce((SELECT string_agg(coalesce(v.label, p.part), ' + ' "
        f"ORDER BY p.n) FROM unnest(string_to_array({key}, ' + ')) WITH ORDINALITY AS p(part, n) "
        f"LEFT JOIN (VALUES {values}) AS v(code, label) ON v.code = p.part), '—') /* end labels */"
    )


def _prom_metric(expr: str) -> str | None:
    found = METRIC_RE.findall(expr)
    return found[0] if found else None


def _prom_overrides(panel: dict) -> tuple[list[dict], list[str]]:
    """The overrides that label a Prometheus panel's codes, and what cannot be labelled."""
    overrides: list[dict] = []
    problems: list[str] = []
    for target in panel.get("targets", []):
        expr = target.get("expr")
        metric = _prom_metric(expr or "")
        if not expr or not metric:
            continue
        if target.get("format") == "table":  # label columns: map their values
            shown = [x.strip() for m in _BY_LABELS.finditer(expr) for x in m.group(1).split(",")]
            for name in dict.fromkeys(x for x in shown if x in CODED_LABELS):
                vocab = prom_vocabulary(metric, name)
                if vocab is None:
                    problems.append(f"shows {name} codes of {metric}, which have no Russian labels")
                    continue
                options = {code: {"text": text, "index": i} for i, (code, text) in enumerate(vocab.items())}
                overrides.append(
                    {
                        "matcher": {"id": "byName", "options": name},
                        "properties": [{"id": "mappings", "value": [{"type": "value", "options": options}]}],
                    }
                )
            continue
        legend = target.get("legendFormat") or ""
        shown = [x for x in _LEGEND_LABEL.findall(legend) if x in CODED_LABELS]
        if not shown:
            continue
        vocab = prom_vocabulary(metric, shown[0])
        if legend.strip() != "{{" + shown[0] + "}}" or vocab is None:
            problems.append(f"legend {legend!r} shows codes that cannot be labelled (use {{{{label}}}} alone)")
            continue
        for code, text in vocab.items():
            overrides.append(
                {"matcher": {"id": "byName", "options": code}, "properties": [{"id": "displayName", "value": text}]}
            )
    return overrides, problems


def _is_label_override(override: dict, codes: set[str]) -> bool:
    """Whether an override is one :func:`_prom_overrides` makes (a code's display name, or the value
    mappings of a column of codes)."""
    matcher = override.get("matcher") or {}
    props = [p.get("id") for p in override.get("properties") or []]
    if matcher.get("id") != "byName":
        return False
    return (props == ["displayName"] and matcher.get("options") in codes) or (
        props == ["mappings"] and matcher.get("options") in CODED_LABELS
    )


def labelled(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard with its Russian labels regenerated from ccanalytics.core.labels: the SQL label
    expressions (:func:`sql_label`) and the Prometheus panels' label overrides."""
    out = json.loads(json.dumps(dashboard))
    codes = {code for vocab in prom_vocabularies().values() for code in vocab}
    for panel in walk_panels(out.get("panels", [])):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                target["rawSql"] = _SQL_LABEL.sub(lambda m: sql_label(m["vocab"], m["key"]), target["rawSql"])
        if (panel.get("datasource") or {}).get("type") != "prometheus":
            continue
        generated, _problems = _prom_overrides(panel)
        config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
        kept = [o for o in config.get("overrides", []) if not _is_label_override(o, codes)]
        config["overrides"] = kept + generated
    return out


def label_problems(paths: Iterable[Path]) -> list[Problem]:
    """Where a dashboard shows a code (scenario, transfer reason, criterion, component, outcome,
    status) instead of its Russian label, or its labels differ from ccanalytics.core.labels."""
    problems: list[Problem] = []
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        uid = dashboard.get("uid")
        current = labelled(dashboard)
        for panel, fresh in zip(
            walk_panels(dashboard.get("panels", [])), walk_panels(current.get("panels", [])), strict=True
        ):
            origin = Query(f"dashboard {uid} / {panel.get('title')}", "panel", "")
            if panel != fresh:
                problems.append(Problem(origin, "Russian labels are not current: run scripts/grafana-labels.py"))
            for target in panel.get("targets", []):
                sql = target.get("rawSql")
                if sql is None:
                    continue
                labelled_keys = {(m["key"], m["vocab"]) for m in _SQL_LABEL.finditer(sql)}
                rest = SQL_COMMENT.sub(" ", _SQL_LABEL.sub(" ", sql))
                for column in _SQL_CODED_CALL_COLUMN.findall(rest):
                    problems.append(Problem(origin, f"shows {column} codes raw: wrap it in dashcheck.sql_label"))
                for column, alias in _JSONB_KEYS.findall(rest):
                    vocab = SQL_CODED_COLUMNS.get(column.lower())
                    if vocab is None:
                        continue
                    if re.search(rf"\b{re.escape(alias)}\.key\b", rest):
                        problems.append(
                            Problem(origin, f"shows {column} keys raw: wrap {alias}.key in dashcheck.sql_label")
                        )
                    elif (f"{alias}.key", vocab) not in labelled_keys:
                        problems.append(
                            Problem(origin, f"labels {column} keys with another vocabulary than labels.{vocab}")
                        )
            if (panel.get("datasource") or {}).get("type") == "prometheus":
                problems += [Problem(origin, message) for message in _prom_overrides(panel)[1]]
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "custom":
                raw = [o.get("text") for o in var.get("options", []) if not _CYRILLIC.search(str(o.get("text")))]
                if raw:
                    origin = Query(f"dashboard {uid} / variable {var.get('name')}", "variable", str(var.get("query")))
                    problems.append(Problem(origin, f"options without a Russian text: {', '.join(map(str, raw))}"))
    return problems


# ------------------------------------------------------------------------- no data, no «NaN»
# A panel without data says so in Russian (noValue); a panel whose value is a ratio (a PromQL division or
# quantile, an SQL nullif/avg) maps NaN (0/0: no calls in the window) and null to Russian text.
# (a division by a number is a change of unit, not a ratio)
_PROM_RATIO = re.compile(r"/(?!\s*[\d.])|\bhistogram_quantile\s*\(")
_SQL_RATIO = re.compile(r"\bnullif\s*\(|\bavg\s*\(|/(?!\s*[\d.])", re.I)


def _can_be_nan(panel: dict) -> bool:
    for target in panel.get("targets", []):
        if "expr" in target and _PROM_RATIO.search(target["expr"]):
            return True
        if "rawSql" in target and _SQL_RATIO.search(SQL_COMMENT.sub(" ", SQL_STRING.sub("''", target["rawSql"]))):
            return True
    return False


def _special_mappings(defaults: dict) -> dict[str, str]:
    """The panel's special value mappings: match ("nan", "null") -> text ("null+nan" counts for both)."""
    out: dict[str, str] = {}
    for mapping in defaults.get("mappings") or []:
        if mapping.get("type") == "special":
            options = mapping.get("options") or {}
            text = str((options.get("result") or {}).get("text") or "")
            for match in str(options.get("match")).split("+"):
                out[match] = text
    return out


def display_problems(paths: Iterable[Path]) -> list[Problem]:
    """Panels that would show Grafana's «No data» or «NaN» instead of Russian text."""
    problems: list[Problem] = []
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        for panel in walk_panels(dashboard.get("panels", [])):
            if not panel.get("targets"):
                continue  # a row
            origin = Query(f"dashboard {dashboard.get('uid')} / {panel.get('title')}", "panel", "")
            defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
            if not _CYRILLIC.search(str(defaults.get("noValue") or "")):
                problems.append(Problem(origin, "no Russian noValue text («нет данных») for a panel without data"))
            if _can_be_nan(panel):
                special = _special_mappings(defaults)
                missing = [m for m in ("nan", "null") if not _CYRILLIC.search(special.get(m, ""))]
                if missing:
                    problems.append(
                        Problem(
                            origin, f"a ratio that can be 0/0 without a Russian value mapping for {', '.join(missing)}"
                        )
                    )
    return problems
