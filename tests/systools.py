"""System tools the tests run for real. A missing tool fails the test with the package to install;
it is never skipped (`make test` and .ci/run install them: scripts/system-tools.sh)."""

from __future__ import annotations

import shutil
import socket

import pytest

PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install the Debian package {PACKAGES[tool]} (scripts/system-tools.sh)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# libfaketime (scripts/test-at.sh) moves the wall clock of every process the suite starts; Chromium
# does not run under it (pages never load), so the browser alone runs at the real date: it only
# renders what the server, running at the faked date, sends.
FAKETIME_VARIABLES = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")


def real_clock_env() -> dict[str, str]:
    """The environment for a program that must not run under libfaketime (Chromium)."""
    import os

    return {k: v for k, v in os.environ.items() if k not in FAKETIME_VARIABLES}
