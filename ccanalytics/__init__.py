"""ccanalytics — analytics, quality and optimisation for an AI voice call centre.

import ccanalytics as cca
store = cca.connect()
store.calls("2026-11-01", "2026-11-23")
cca.show_call(call_id); cca.search("зимові шини"); cca.compare(a, b); cca.lake(); cca.plot_quality()
cca.list_tenants(); cca.compare(a, b, tenant="prokoleso"); cca.lake(tenant="prokoleso")   # one tenant
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"
_WORKBENCH = (
    "show_call",
    "search",
    "compare",
    "compare_scenarios",
    "lake",
    "latencies",
    "plot_calls_by_hour",
    "plot_scenario_mix",
    "plot_latency",
    "plot_quality",
    "plot_cost_trend",
    "default_store",
    "list_tenants",
)
__all__ = ["__version__", "connect", "Store", "MOVED", *_WORKBENCH]

if TYPE_CHECKING:
    from ccanalytics.analytics.store import Store, connect


def __getattr__(name: str):
    # keep `import ccanalytics` light: the store pulls in SQLAlchemy and Polars
    if name in ("connect", "Store"):
        from ccanalytics.analytics import store  # lazy: sqlalchemy, polars

        return getattr(store, name)
    if name in _WORKBENCH:
        from ccanalytics.analytics import workbench  # lazy: sqlalchemy, polars, matplotlib

        return getattr(workbench, name)
    raise AttributeError(f"module 'ccanalytics' has no attribute {name!r}")


# Modules moved into domain packages (issue 21; docs/architecture.md): code outside this repository —
# the call processor imports ccanalytics.telemetry and ccanalytics.promptlib — keeps importing them by
# their old names, with a DeprecationWarning. Old names that are packages now (ingest, prompts, cost,
# alerts, auth, reports, experiments, datalake, cli) name the package.
MOVED = {
    "errors": "core.errors", "config": "core.config", "clock": "core.clock", "timeutil": "core.timeutil",
    "vocabulary": "core.vocabulary", "definitions": "core.definitions", "labels": "core.labels",
    "rutext": "core.rutext", "retry": "core.retry", "privacy": "core.privacy",
    "database": "db.engine", "embedded": "db.embedded", "migrate": "db.migrate", "attach": "db.attach",
    "schemacheck": "db.schemacheck", "partitions": "db.partitions", "sqlfiles": "db.sqlfiles",
    "tenants": "db.tenants", "dataproblems": "db.dataproblems",
    "ingest_pipeline": "ingest.pipeline", "ingest_prepare": "ingest.prepare", "callog": "ingest.callog",
    "dialogue": "ingest.dialogue",
    "store": "analytics.store", "metrics": "analytics.metrics", "callmetrics": "analytics.callmetrics",
    "signals": "analytics.signals", "explore": "analytics.explore", "workbench": "analytics.workbench",
    "journal": "analytics.journal", "percentiles": "analytics.percentiles", "checkruns": "analytics.checkruns",
    "recorded": "analytics.recorded",
    "abtest": "experiments.abtest", "abview": "reports.abview", "abstats_core": "experiments.stats.core",
    "abstats_power": "experiments.stats.power", "abstats_sequential": "experiments.stats.sequential",
    "abstats_decision": "experiments.stats.decision",
    "promptlib": "prompts.resolver", "optimizer": "prompts.optimizer",
    "pricing": "cost.pricing", "costview": "reports.costview", "levers": "cost.levers", "router": "cost.router",
    "routing_replay": "cost.routing_replay", "fixedcost": "cost.fixed",
    "alert_rules": "alerts.rules", "notify": "alerts.notify",
    "reporting": "reports.run", "reportsend": "reports.send", "reportview": "reports.dailyview",
    "dailyreport": "reports.daily", "daystory": "reports.daystory", "storyfacts": "reports.storyfacts",
    "problemcalls": "reports.problemcalls", "problemview": "reports.problemview", "weeklyreport": "reports.weekly",
    "weeklyview": "reports.weeklyview", "weekstory": "reports.weekstory", "htmlblocks": "reports.htmlblocks",
    "charts": "reports.charts", "svgcharts": "reports.svgcharts", "callview": "reports.callview",
    "lakeschema": "datalake.schema",
    "telemetry": "ops.telemetry", "exporter": "ops.exporter", "doctor": "ops.doctor", "logs": "ops.logs",
    "dashcheck": "ops.dashcheck", "jobs": "ops.jobs", "freshness": "ops.freshness", "retention": "ops.retention",
    "accounts": "auth.accounts", "formdrafts": "auth.formdrafts",
}  # fmt: skip


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``ccanalytics.<old name>`` (after the regular finders found nothing) and gives the moved module."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        old = fullname.removeprefix(__name__ + ".")
        if fullname.startswith(__name__ + ".") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        new = f"{__name__}.{MOVED[spec.name.removeprefix(__name__ + '.')]}"
        warnings.warn(f"{spec.name} is now {new}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The moved module ran when it was imported under its new name."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
