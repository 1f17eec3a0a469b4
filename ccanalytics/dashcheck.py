"""Check that every dashboard panel and alert rule reads metrics that exist.

Extracts the PromQL of the Grafana dashboards and Prometheus rule files and the SQL of the
PostgreSQL panels (and of the dashboards' query variables), then evaluates each against a real
Prometheus (HTTP API) and a real database. A query that fails to parse, or returns nothing, or names a
metric no target exports, is a problem. :func:`tenant_problems` checks that every SQL panel reading
daily figures or calls follows the dashboard's tenant variable («Сеть»). Used by the test suite and by
``ccanalytics dashboards check`` in production.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from .errors import InvalidArgument

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
        out[var["name"]] = str(current if current is not None else "")
    return out


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace $var and ${var} with values (Grafana's own variables are left alone)."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
        text = re.sub(r"\$" + re.escape(name) + r"\b", lambda _m, v=value: v, text)
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
    cca_daily_stats (every tenant only).
    """
    from .metrics import ALL_TENANTS

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
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (configured URL)
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
    return bool(result) and any(str(r.get("value", [None, "NaN"])[1]) not in ("NaN",) for r in result)


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
                rows = conn.connection.driver_connection.execute(sql).fetchall()
        except (sa.exc.SQLAlchemyError, InvalidArgument, psycopg.Error) as exc:
            problems.append(Problem(q, f"fails: {str(exc).splitlines()[0]}"))
            continue
        if require_data and not rows:
            problems.append(Problem(q, "returns no rows"))
    return problems
