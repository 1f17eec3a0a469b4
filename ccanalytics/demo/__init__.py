"""Demo: realistic synthetic calls and the one-command demo installation."""

from __future__ import annotations

from ccanalytics.demo.load import load_demo_data
from ccanalytics.demo.run import run_demo

__all__ = ["load_demo_data", "run_demo"]
