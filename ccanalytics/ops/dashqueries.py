"""The queries of the Grafana dashboards and the Prometheus rule files (``Query``, ``Problem``), and the
tables and views the dashboards' SQL reads (Grafana's grant)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

METRIC_RE = re.compile(r"\bcca[_:][A-Za-z0-9_:]*")
SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
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
        for panel in walk_panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                origin = f"dashboard {dashboard.get('uid')} / {panel.get('title')} / {target.get('refId')}"
                if "expr" in target:
                    yield Query(origin, "promql", substitute(target["expr"], values))
                elif "rawSql" in target:
                    yield Query(origin, "sql", substitute(target["rawSql"], values))
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "query" and (var.get("datasource") or {}).get("type") == "postgres":
                origin = f"dashboard {dashboard.get('uid')} / variable {var['name']} / query"
                yield Query(origin, "sql", variable_sql(var), "variable")


def variable_sql(var: dict[str, Any]) -> str:
    """The SQL of a dashboard's query variable."""
    query = var.get("query")
    return query.get("rawSql", "") if isinstance(query, dict) else str(query or "")


def walk_panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, those inside rows too."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))  # rows


def rule_queries(path: Path) -> Iterator[Query]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                yield Query(f"recording rule {rule['record']}", "promql", rule["expr"], "record")
            else:
                yield Query(f"alert {rule['alert']}", "promql", rule["expr"], "alert")


# ------------------------------------------------------------------ what the SQL panels read
# Grafana's database role (docs/deployment.md, deploy/postgres-init/10-grafana-role.sh) may read exactly
# the tables and views the SQL panels and query variables name: :func:`sql_relations` finds them.
GRAFANA_ROLE = "grafana_ro"
_SQL_TOKEN = re.compile(r'"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?|\$\w+|[(),;]|\S')
SQL_STRING = re.compile(r"'(?:[^']|'')*'")
# a FROM inside these functions' parentheses is no table: extract(epoch FROM x), substring(s FROM 2) …
_FROM_FUNCTIONS = frozenset({"extract", "substring", "trim", "position", "overlay", "normalize"})
# what ends a FROM list at its own depth
_FROM_END = frozenset(
    {"where", "group", "order", "having", "limit", "offset", "fetch", "union", "except", "intersect", "window", "for"}
)


def sql_relations(sql: str) -> set[str]:
    """The tables and views a query reads: the names after FROM (each item of its list) and JOIN,
    without functions (``jsonb_each_text(x) s``), subqueries, VALUES lists and the query's own CTEs."""
    cleaned = SQL_STRING.sub("''", SQL_COMMENT.sub(" ", sql))
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
