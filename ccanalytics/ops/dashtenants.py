"""The dashboards follow the tenant variable «Сеть»: every SQL panel reading daily figures or calls, and
every PromQL selector of a metric with a ``tenant`` label."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccanalytics.analytics.metrics import ALL_TENANTS
from ccanalytics.ops import telemetry
from ccanalytics.ops.dashqueries import SQL_COMMENT, Problem, Query, variable_sql, walk_panels

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


def tenant_problems(paths: Iterable[Path]) -> list[Problem]:
    """Where a dashboard does not scope its daily figures or calls by tenant.

    A dashboard with an SQL panel that reads daily figures or calls must have the tenant variable: a
    single-value query variable labelled «Сеть» whose query lists «Все сети» (the sentinel of
    cca_daily_stats_by_tenant) and the tenants, current value «Все сети». Every such panel must use
    ``$tenant`` (outside comments), and read the daily figures from cca_daily_stats_by_tenant, not from
    cca_daily_stats (every tenant only). A dashboard whose PromQL reads metrics with a ``tenant`` label
    must have a Prometheus variable of that label («All» = ".*") and filter every such selector by it.
    """
    problems: list[Problem] = []
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        uid = dashboard.get("uid")
        var = next(
            (v for v in dashboard.get("templating", {}).get("list", []) if v.get("name") == TENANT_VARIABLE), None
        )
        scoped = _tenant_scoped_sql(dashboard)
        for q, sql in scoped:
            if not _USES_TENANT.search(sql):
                problems.append(Problem(q, "reads daily figures or calls but ignores the tenant variable ($tenant)"))
            elif _EVERY_TENANT_ONLY.search(sql):
                problems.append(Problem(q, "reads cca_daily_stats (every tenant only): read cca_daily_stats_by_tenant"))
        problems += _prom_tenant_problems(dashboard, var)
        if not scoped:
            continue
        origin = Query(f"dashboard {uid} / variable {TENANT_VARIABLE}", "sql", variable_sql(var or {}), "variable")
        if var is None:
            problems.append(Problem(origin, "the dashboard reads daily figures or calls but has no tenant variable"))
            continue
        wrong = _sql_tenant_variable_faults(var, origin.text)
        if wrong:
            problems.append(Problem(origin, "the tenant variable must be " + "; ".join(wrong)))
    return problems


def _tenant_scoped_sql(dashboard: dict[str, Any]) -> list[tuple[Query, str]]:
    """The dashboard's SQL panel targets that read daily figures or calls, with their SQL without comments."""
    uid = dashboard.get("uid")
    scoped = []
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            sql = SQL_COMMENT.sub(" ", target.get("rawSql") or "")
            if _TENANT_SCOPED.search(sql):
                scoped.append(
                    (Query(f"dashboard {uid} / {panel.get('title')} / {target.get('refId')}", "sql", sql), sql)
                )
    return scoped


def _sql_tenant_variable_faults(var: dict[str, Any], text: str) -> list[str]:
    """What the SQL tenant variable ``var`` (its query ``text``) is not and must be."""
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
    if f"'{ALL_TENANTS}'" not in text or f"'{ALL_TENANTS_TEXT}'" not in text or not re.search(r"\btenants\b", text):
        wrong.append(f"options «{ALL_TENANTS_TEXT}» ('{ALL_TENANTS}') and each tenant from tenants")
    return wrong


# A Prometheus dashboard follows «Сеть» too: a query variable over the values of the metrics' tenant
# label, with «All» = ".*" (which also matches series without the label: the live side's calls of no
# known tenant), and every selector of a metric that has the label filters by it.
PROM_TENANT_FILTER = 'tenant=~"$tenant"'
_PROM_SELECTOR = re.compile(r"\b(cca_[A-Za-z0-9_]+)(\{[^}]*\})?")


def _has_tenant_label(metric: str) -> bool:
    d = telemetry.BY_NAME.get(re.sub(r"_(bucket|sum|count)$", "", metric)) or telemetry.BY_NAME.get(metric)
    return d is not None and "tenant" in d.labels


def _prom_tenant_problems(dashboard: dict[str, Any], var: dict | None) -> list[Problem]:
    uid = dashboard.get("uid")
    problems: list[Problem] = []
    scoped = False
    for panel in walk_panels(dashboard.get("panels", [])):
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
