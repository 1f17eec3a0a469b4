"""Check that every dashboard panel and alert rule reads metrics that exist.

Extracts the PromQL of the Grafana dashboards and Prometheus rule files and the SQL of the
PostgreSQL panels, then evaluates each against a real Prometheus (HTTP API) and a real database.
A query that fails to parse, or returns nothing, or names a metric no target exports, is a problem.
Used by the test suite and by ``ccanalytics dashboards check`` in production.
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
# PromQL functions and keywords that happen to start like our metrics never occur: our names all
# begin with cca_ (metrics) or cca: (recording rules).


@dataclass(frozen=True)
class Query:
    origin: str  # "dashboard cca-realtime / Активные звонки / A" or "rule CCAHighTransferRate"
    kind: str  # promql | sql
    text: str
    role: str = "panel"  # panel | record | alert

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


def dashboard_queries(paths: Iterable[Path]) -> Iterator[Query]:
    for path in paths:
        dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
        variables = _template_defaults(dashboard)
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                origin = f"dashboard {dashboard.get('uid')} / {panel.get('title')} / {target.get('refId')}"
                if "expr" in target:
                    yield Query(origin, "promql", substitute(target["expr"], variables))
                elif "rawSql" in target:
                    yield Query(origin, "sql", substitute(target["rawSql"], variables))


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
