"""Check that every dashboard panel and alert rule reads metrics that exist, and that the dashboards
show what a person can read.

Extracts the PromQL of the Grafana dashboards and Prometheus rule files and the SQL of the
PostgreSQL panels (and of the dashboards' query variables), then evaluates each against a real
Prometheus (HTTP API) and a real database. A query that fails to parse, or returns nothing, or names a
metric no target exports, is a problem; those live checks are this module's. The static checks, each a
function returning problems (importable from here too):

- :func:`tenant_problems` (dashtenants): every SQL panel reading daily figures or calls follows the
  dashboard's tenant variable («Сеть»); so does every PromQL selector of a metric with a ``tenant`` label;
- :func:`label_problems` (dashlabels): no raw codes (scenarios, transfer reasons, criteria, components,
  outcomes, statuses): the Russian labels of ccanalytics.core.labels, written by :func:`labelled`
  (scripts/grafana-labels.py), and current;
- :func:`display_problems` (dashlabels): «нет данных» instead of Grafana's «No data», and a Russian text
  instead of «NaN» where a ratio can be 0/0.

:func:`sql_relations` / :func:`grafana_grant` (dashqueries, with the extraction of the queries) give the
tables and views the SQL panels read: Grafana's database role gets exactly those (docs/deployment.md).
Used by the test suite.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import datetime

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db.engine import driver_connection
from ccanalytics.ops.dashlabels import (
    CODED_LABELS,
    SQL_CODED_COLUMNS,
    display_problems,
    label_problems,
    labelled,
    prom_vocabularies,
    prom_vocabulary,
    sql_label,
)
from ccanalytics.ops.dashqueries import (
    GRAFANA_ROLE,
    METRIC_RE,
    Problem,
    Query,
    dashboard_queries,
    grafana_grant,
    rule_queries,
    sql_reads,
    sql_relations,
    substitute,
)
from ccanalytics.ops.dashtenants import (
    ALL_TENANTS_TEXT,
    PROM_TENANT_FILTER,
    TENANT_LABEL,
    TENANT_VARIABLE,
    tenant_problems,
)

# the static checks live in dashqueries, dashtenants and dashlabels; ``ccanalytics.dashcheck`` (an old
# name, ccanalytics.MOVED) and this module keep every public name importable from here
__all__ = [
    "ALL_TENANTS_TEXT",
    "CODED_LABELS",
    "GRAFANA_ROLE",
    "METRIC_RE",
    "PROM_TENANT_FILTER",
    "SQL_CODED_COLUMNS",
    "TENANT_LABEL",
    "TENANT_VARIABLE",
    "Problem",
    "Query",
    "check_promql",
    "check_sql",
    "dashboard_queries",
    "display_problems",
    "existing_metrics",
    "expand_sql_macros",
    "grafana_grant",
    "label_problems",
    "labelled",
    "prom_vocabularies",
    "prom_vocabulary",
    "rule_queries",
    "sql_label",
    "sql_reads",
    "sql_relations",
    "substitute",
    "tenant_problems",
]


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
