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
