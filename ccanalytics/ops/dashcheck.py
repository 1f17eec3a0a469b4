"""Check that every dashboard panel and alert rule reads metrics that exist, and that the dashboards
show what a person can read.

Extracts the PromQL of the Grafana dashboards and Prometheus rule files and the SQL of the
PostgreSQL panels (and of the dashboards' query variables), then evaluates each against a real
Prometheus (HTTP API) and a real database. A query that fails to parse, or returns nothing, or names a
metric no target exports, is a problem. The static checks, each a function returning problems:

- :func:`tenant_problems`: every SQL panel reading daily figures or calls follows the dashboard's
  tenant variable («Сеть»); so does every PromQL selector of a metric with a ``tenant`` label;
- :func:`label_problems`: no raw codes (scenarios, transfer reasons, criteria, components, outcomes,
  statuses): the Russian labels of ccanalytics.core.labels, written by :func:`labelled`
  (scripts/grafana-labels.py), and current;
- :func:`display_problems`: «нет данных» instead of Grafana's «No data», and a Russian text instead
  of «NaN» where a ratio can be 0/0.

:func:`sql_relations` / :func:`grafana_grant` give the tables and views the SQL panels read: Grafana's
database role gets exactly those (docs/deployment.md). Used by the test suite.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db.engine import driver_connection

METRIC_RE = re.compile(r"\bcca[_:][A-Za-z0-9_:]*")
# the tenant variable of a dashboard whose SQL panels read daily figures or calls: «Все сети» is the
# sentinel of cca_daily_stats_by_tenant (metrics.ALL_TENANTS), every other option a tenant's slug
TENANT_VARIABLE = "tenant"
TENANT_LABEL = "Сеть"
ALL_TENANTS_TEXT = "Все сети"
# what has a tenant: the daily figures (cca_daily_stats, cca_daily_stats_tenants, the view over both)
# and the calls (the processor's table or ccanalytics's view of it)
_TENANT_SCOPED = re.compile(r"\b(cca_daily_stats\w*|cca_calls|calls)\b", re.IGNORECASE)
_USES_TENANT = re.compile(r"\$(\{tenant\}|tenant\b)")
_EVERY_TENANT_ONLY = re.compile(r"\bcca_daily_stats\b(?!_)", re.IGNORECASE)
_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
# PromQL functions and keywords that happen to start like our metrics never occur: our names all
# begin with cca_ (metrics) or cca: (recording rules).


@dataclass(frozen=True)
class Query:
    origin: str  # "dashboard cca-realtime / Активные звонки / A" or "rule CCAHighTransferRate"
    kind: str  # promql | sql
    text: str
    role: str = "panel"  # panel | variable | record | alert

    def metrics(self) -> list[str]:
        return sorted(set(METRIC_RE.findall(self.text))) if self.kind == "promql" else []


@dataclass(frozen=True)
class Problem:
    query: Query
    message: str

    def __str__(self) -> str:
        return f"{self.query.origin}: {self.message}\n    {self.query.text}"


# --------------------------------------------------------------------------------- extraction
def _template_defaults(dashboard: dict[str, Any]) -> dict[str, str]:
    out = {}
    for var in dashboard.get("templating", {}).get("list", []):
        current = var.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else ""
        if current == "$__all":  # «All»: the variable's allValue, as Grafana sends it
            current = var.get("allValue") or ".*"
        out[var["name"]] = str(current if current is not None else "")
    return out


def _verbatim(value: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement inserting ``value`` as it is (no backslash or group escapes)."""
    return lambda _m: value


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace $var and ${var} with values (Grafana's own variables are left alone)."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
        text = re.sub(r"\$" + re.escape(name) + r"\b", _verbatim(value), text)
    return text


def dashboard_queries(paths: Iterable[Path], variables: dict[str, str] | None = None) -> Iterator[Query]:
    """The queries of the dashboards' panels, with the template variables at their current values
    (``variables`` overrides some: ``{"tenant": "prokoleso"}``), then of their SQL query variables."""
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        values = {**_template_defaults(dashboard), **(variables or {})}
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                origin = f"dashboard {dashboard.get('uid')} / {panel.get('title')} / {target.get('refId')}"
                if "expr" in target:
                    yield Query(origin, "promql", substitute(target["expr"], values))
                elif "rawSql" in target:
                    yield Query(origin, "sql", substitute(target["rawSql"], values))
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "query" and (var.get("datasource") or {}).get("type") == "postgres":
                origin = f"dashboard {dashboard.get('uid')} / variable {var['name']} / query"
                yield Query(origin, "sql", _variable_sql(var), "variable")


def _variable_sql(var: dict[str, Any]) -> str:
    query = var.get("query")
    return query.get("rawSql", "") if isinstance(query, dict) else str(query or "")


def tenant_problems(paths: Iterable[Path]) -> list[Problem]:
    """Where a dashboard does not scope its daily figures or calls by tenant.

    A dashboard with an SQL panel that reads daily figures or calls must have the tenant variable: a
    single-value query variable labelled «Сеть» whose query lists «Все сети» (the sentinel of
    cca_daily_stats_by_tenant) and the tenants, current value «Все сети». Every such panel must use
    ``$tenant`` (outside comments), and read the daily figures from cca_daily_stats_by_tenant, not from
    cca_daily_stats (every tenant only). A dashboard whose PromQL reads metrics with a ``tenant`` label
    must have a Prometheus variable of that label («All» = ".*") and filter every such selector by it.
    """
    from ccanalytics.analytics.metrics import ALL_TENANTS

    problems: list[Problem] = []
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        uid = dashboard.get("uid")
        var = next(
            (v for v in dashboard.get("templating", {}).get("list", []) if v.get("name") == TENANT_VARIABLE), None
        )
        scoped = []
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                sql = _SQL_COMMENT.sub(" ", target.get("rawSql") or "")
                if _TENANT_SCOPED.search(sql):
                    scoped.append(
                        (Query(f"dashboard {uid} / {panel.get('title')} / {target.get('refId')}", "sql", sql), sql)
                    )
        for q, sql in scoped:
            if not _USES_TENANT.search(sql):
                problems.append(Problem(q, "reads daily figures or calls but ignores the tenant variable ($tenant)"))
            elif _EVERY_TENANT_ONLY.search(sql):
                problems.append(Problem(q, "reads cca_daily_stats (every tenant only): read cca_daily_stats_by_tenant"))
        problems += _prom_tenant_problems(dashboard, var)
        if not scoped:
            continue
        origin = Query(f"dashboard {uid} / variable {TENANT_VARIABLE}", "sql", _variable_sql(var or {}), "variable")
        if var is None:
            problems.append(Problem(origin, "the dashboard reads daily figures or calls but has no tenant variable"))
            continue
        wrong = []
        if var.get("type") != "query" or (var.get("datasource") or {}).get("type") != "postgres":
            wrong.append("a query variable over the PostgreSQL datasource")
        if var.get("label") != TENANT_LABEL:
            wrong.append(f"labelled «{TENANT_LABEL}»")
        if var.get("multi") or var.get("includeAll"):
            wrong.append("one value at a time (no multi, no «All»)")
        current = var.get("current") or {}
        if current.get("value") != ALL_TENANTS or current.get("text") != ALL_TENANTS_TEXT:
            wrong.append(f"current value «{ALL_TENANTS_TEXT}» = '{ALL_TENANTS}'")
        text = origin.text
        if f"'{ALL_TENANTS}'" not in text or f"'{ALL_TENANTS_TEXT}'" not in text or not re.search(r"\btenants\b", text):
            wrong.append(f"options «{ALL_TENANTS_TEXT}» ('{ALL_TENANTS}') and each tenant from tenants")
        if wrong:
            problems.append(Problem(origin, "the tenant variable must be " + "; ".join(wrong)))
    return problems


# ------------------------------------------------------------------ what the SQL panels read
# Grafana's database role (docs/deployment.md, deploy/postgres-init/10-grafana-role.sh) may read exactly
# the tables and views the SQL panels and query variables name: :func:`sql_relations` finds them.
GRAFANA_ROLE = "grafana_ro"
_SQL_TOKEN = re.compile(r'"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?|\$\w+|[(),;]|\S')
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
# a FROM inside these functions' parentheses is no table: extract(epoch FROM x), substring(s FROM 2) …
_FROM_FUNCTIONS = frozenset({"extract", "substring", "trim", "position", "overlay", "normalize"})
# what ends a FROM list at its own depth
_FROM_END = frozenset(
    {"where", "group", "order", "having", "limit", "offset", "fetch", "union", "except", "intersect", "window", "for"}
)


def sql_relations(sql: str) -> set[str]:
    """The tables and views a query reads: the names after FROM (each item of its list) and JOIN,
    without functions (``jsonb_each_text(x) s``), subqueries, VALUES lists and the query's own CTEs."""
    cleaned = _SQL_STRING.sub("''", _SQL_COMMENT.sub(" ", sql))
    tokens = _SQL_TOKEN.findall(cleaned)
    low = [t.lower() for t in tokens]
    ctes = {low[i] for i in range(len(low) - 2) if low[i + 1] == "as" and low[i + 2] == "(" and i > 0}
    ctes &= {low[i + 1] for i in range(len(low) - 1) if low[i] in ("with", ",", "recursive")}
    found: set[str] = set()
    depth = 0
    in_from: set[int] = set()  # depths whose FROM list is open
    no_from: set[int] = set()  # depths inside extract( … ) and the like

    def item(j: int) -> None:
        while j < len(low) and low[j] in ("lateral", "only"):
            j += 1
        if j >= len(low) or not re.match(r"[a-z_]", low[j]) or (j + 1 < len(low) and low[j + 1] == "("):
            return  # a subquery, a VALUES list, a function
        name = low[j].removeprefix("public.")
        if name not in ctes:
            found.add(name)

    for i, tok in enumerate(low):
        if tok == "(":
            depth += 1
            if i > 0 and low[i - 1] in _FROM_FUNCTIONS:
                no_from.add(depth)
        elif tok == ")":
            in_from.discard(depth)
            no_from.discard(depth)
            depth -= 1
        elif tok == "from" and depth not in no_from:
            in_from.add(depth)
            item(i + 1)
        elif tok == "join":
            item(i + 1)
        elif tok == "," and depth in in_from:
            item(i + 1)
        elif tok in _FROM_END or tok in ("select", ";"):
            in_from.discard(depth)
    return found


def sql_reads(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Per SQL panel target and query variable of the dashboards (its origin): the relations it reads."""
    return {q.origin: sql_relations(q.text) for q in dashboard_queries(paths) if q.kind == "sql"}


def grafana_grant(paths: Iterable[Path], role: str = GRAFANA_ROLE) -> str:
    """The one GRANT that lets ``role`` run every SQL panel and variable of the dashboards, and no more."""
    relations = sorted(set().union(*sql_reads(paths).values()))
    return f"GRANT SELECT ON {', '.join(relations)} TO {role};"


# ------------------------------------------------------------------------------ Russian labels
# The dashboards show no raw codes: every scenario, transfer reason, criterion, component, outcome and
# status is shown by its Russian label from ccanalytics.core.labels (the one vocabulary). :func:`labelled`
# writes the labels into a dashboard (scripts/grafana-labels.py runs it over grafana/dashboards);
# :func:`label_problems` fails a dashboard whose labels are not current or that shows a code unlabelled.


def _with_other(mapping: dict[str, str]) -> dict[str, str]:
    from ccanalytics.core import labels

    return {**mapping, "other": labels.OTHER}


def prom_vocabularies() -> dict[tuple[str, str], dict[str, str]]:
    """Per (metric, label) holding codes: the Russian labels of every value the exporter and the call
    processor emit (telemetry's label hygiene: codes outside the known sets become "other")."""
    from ccanalytics.core import labels

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
    from ccanalytics.core import labels

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
    for panel in _panels(out.get("panels", [])):
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
        for panel, fresh in zip(_panels(dashboard.get("panels", [])), _panels(current.get("panels", [])), strict=True):
            origin = Query(f"dashboard {uid} / {panel.get('title')}", "panel", "")
            if panel != fresh:
                problems.append(Problem(origin, "Russian labels are not current: run scripts/grafana-labels.py"))
            for target in panel.get("targets", []):
                sql = target.get("rawSql")
                if sql is None:
                    continue
                labelled_keys = {(m["key"], m["vocab"]) for m in _SQL_LABEL.finditer(sql)}
                rest = _SQL_COMMENT.sub(" ", _SQL_LABEL.sub(" ", sql))
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
        if "rawSql" in target and _SQL_RATIO.search(_SQL_COMMENT.sub(" ", _SQL_STRING.sub("''", target["rawSql"]))):
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
        for panel in _panels(dashboard.get("panels", [])):
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


# A Prometheus dashboard follows «Сеть» too: a query variable over the values of the metrics' tenant
# label, with «All» = ".*" (which also matches series without the label: the live side's calls of no
# known tenant), and every selector of a metric that has the label filters by it.
PROM_TENANT_FILTER = 'tenant=~"$tenant"'
_PROM_SELECTOR = re.compile(r"\b(cca_[A-Za-z0-9_]+)(\{[^}]*\})?")


def _has_tenant_label(metric: str) -> bool:
    from ccanalytics.ops import telemetry

    d = telemetry.BY_NAME.get(re.sub(r"_(bucket|sum|count)$", "", metric)) or telemetry.BY_NAME.get(metric)
    return d is not None and "tenant" in d.labels


def _prom_tenant_problems(dashboard: dict[str, Any], var: dict | None) -> list[Problem]:
    uid = dashboard.get("uid")
    problems: list[Problem] = []
    scoped = False
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr") or ""
            q = Query(f"dashboard {uid} / {panel.get('title')} / {target.get('refId')}", "promql", expr)
            unfiltered = [
                m[1]
                for m in _PROM_SELECTOR.finditer(expr)
                if _has_tenant_label(m[1]) and PROM_TENANT_FILTER not in (m[2] or "")
            ]
            scoped |= any(_has_tenant_label(m[1]) for m in _PROM_SELECTOR.finditer(expr))
            if unfiltered:
                problems.append(
                    Problem(q, f"does not filter {', '.join(unfiltered)} by the tenant variable ({PROM_TENANT_FILTER})")
                )
    if not scoped:
        return problems
    definition = str((var or {}).get("definition") or "")
    origin = Query(f"dashboard {uid} / variable {TENANT_VARIABLE}", "promql", definition, "variable")
    if var is None:
        return [
            *problems,
            Problem(origin, "the dashboard reads metrics with a tenant label but has no tenant variable"),
        ]
    wrong = []
    if var.get("type") != "query" or (var.get("datasource") or {}).get("type") != "prometheus":
        wrong.append("a query variable over the Prometheus datasource")
    if var.get("label") != TENANT_LABEL:
        wrong.append(f"labelled «{TENANT_LABEL}»")
    if not re.fullmatch(r"label_values\(\s*cca_\w+\s*,\s*tenant\s*\)", definition.strip()):
        wrong.append("label_values(<a cca_ metric>, tenant)")
    if not var.get("includeAll") or var.get("allValue") != ".*" or (var.get("current") or {}).get("value") != "$__all":
        wrong.append('with «All» = ".*" (also series without the label), the default')
    if wrong:
        problems.append(Problem(origin, "the tenant variable must be " + "; ".join(wrong)))
    return problems


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows


def rule_queries(path: Path) -> Iterator[Query]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                yield Query(f"recording rule {rule['record']}", "promql", rule["expr"], "record")
            else:
                yield Query(f"alert {rule['alert']}", "promql", rule["expr"], "alert")


# ----------------------------------------------------------------------------------- checking
def _prom_get(base_url: str, endpoint: str, params: list[tuple[str, str]], timeout: float = 10.0) -> dict:
    url = base_url.rstrip("/") + endpoint + "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 400 for a bad query carries a JSON error body
        body = exc.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": f"HTTP {exc.code}: {body[:200]!r}"}


def existing_metrics(prometheus_url: str) -> set[str]:
    """Metric names Prometheus has series for (including recording rules already evaluated)."""
    data = _prom_get(prometheus_url, "/api/v1/label/__name__/values", [])
    if data.get("status") != "success":
        raise InvalidArgument(f"Prometheus at {prometheus_url} answered: {data.get('error')}")
    return set(data["data"])


def check_promql(
    prometheus_url: str, queries: Iterable[Query], *, require_data: bool = True, known: set[str] | None = None
) -> list[Problem]:
    """Evaluate each PromQL query now. Panels and recording rules must return data; alert
    expressions (which return nothing while all is well) must parse and name existing metrics."""
    known = existing_metrics(prometheus_url) if known is None else known
    problems = []
    for q in queries:
        missing = [m for m in q.metrics() if m not in known]
        if missing:
            problems.append(Problem(q, f"names metrics no target exports: {', '.join(missing)}"))
            continue
        data = _prom_get(prometheus_url, "/api/v1/query", [("query", q.text)])
        if data.get("status") != "success":
            problems.append(Problem(q, f"does not evaluate: {data.get('error')}"))
        elif require_data and q.role != "alert" and not _has_values(data["data"]):
            problems.append(Problem(q, "returns no data"))
    return problems


def _has_values(data: dict) -> bool:
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return result is not None
    if not result:
        return False
    return any(str(r.get("value", [None, "NaN"])[1]) not in ("NaN",) for r in result)


def expand_sql_macros(sql: str, time_from: datetime, time_to: datetime) -> str:
    """Expand the Grafana PostgreSQL macros the dashboards use ($__timeFilter, $__timeFrom/To)."""
    a, b = f"'{time_from.isoformat()}'", f"'{time_to.isoformat()}'"
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1)} BETWEEN {a} AND {b}", sql)
    sql = sql.replace("$__timeFrom()", a).replace("$__timeTo()", b)
    if "$__" in sql:
        raise InvalidArgument(f"unsupported Grafana macro in: {sql[:80]}")
    return sql


def check_sql(
    engine: Engine, queries: Iterable[Query], time_from: datetime, time_to: datetime, *, require_data: bool = True
) -> list[Problem]:
    """Run each SQL panel query in a read-only transaction over [time_from, time_to]."""
    problems = []
    for q in queries:
        try:
            sql = expand_sql_macros(q.text, time_from, time_to)
            with engine.connect() as conn:
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                # the driver's own execute without parameters: Grafana SQL is not a DB-API template
                # (a literal % in an alias must stay as it is)
                rows = driver_connection(conn).execute(sql).fetchall()
        except (sa.exc.SQLAlchemyError, InvalidArgument, psycopg.Error) as exc:
            problems.append(Problem(q, f"fails: {str(exc).splitlines()[0]}"))
            continue
        if require_data and not rows:
            problems.append(Problem(q, "returns no rows"))
    return problems
