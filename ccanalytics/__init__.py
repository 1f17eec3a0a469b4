"""ccanalytics — analytics, quality and optimisation for an AI voice call centre.

import ccanalytics as cca
store = cca.connect()
store.calls("2026-11-01", "2026-11-23")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "connect", "Store"]

if TYPE_CHECKING:
    from .store import Store, connect


def __getattr__(name: str):
    # keep `import ccanalytics` light: the store pulls in SQLAlchemy and Polars
    if name in ("connect", "Store"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'ccanalytics' has no attribute {name!r}")
