"""ccanalytics — analytics, quality and optimisation for an AI voice call centre.

import ccanalytics as cca
store = cca.connect()
store.calls("2026-11-01", "2026-11-23")
cca.show_call(call_id); cca.search("зимові шини"); cca.compare(a, b); cca.lake(); cca.plot_quality()
cca.list_tenants(); cca.compare(a, b, tenant="prokoleso"); cca.lake(tenant="prokoleso")   # one tenant
"""

from __future__ import annotations

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
__all__ = ["__version__", "connect", "Store", *_WORKBENCH]

if TYPE_CHECKING:
    from .store import Store, connect


def __getattr__(name: str):
    # keep `import ccanalytics` light: the store pulls in SQLAlchemy and Polars
    if name in ("connect", "Store"):
        from . import store

        return getattr(store, name)
    if name in _WORKBENCH:
        from . import workbench

        return getattr(workbench, name)
    raise AttributeError(f"module 'ccanalytics' has no attribute {name!r}")
