"""`make lab`: JupyterLab from the project's virtualenv, opened on notebooks/, whose Python kernel is
the virtualenv's interpreter (so `import ccanalytics` and the demo database work in every notebook)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from systools import free_port

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_make_lab_serves_the_notebooks_with_the_project_kernel(tmp_path):
    port, token = free_port(), "cca-test-token"
    proc = subprocess.Popen(
        [
            "make",
            "-s",
            "lab",
            f"VENV={Path(sys.prefix)}",
            f"LAB_ARGS=--no-browser --port={port} --IdentityProvider.token={token} --ServerApp.open_browser=False",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, contents, specs = time.monotonic() + 90, None, None
        while time.monotonic() < deadline and contents is None:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            try:
                contents = _get(f"{base}/api/contents?token={token}")
                specs = _get(f"{base}/api/kernelspecs?token={token}")
            except OSError:
                time.sleep(0.5)
        assert contents is not None, "JupyterLab did not start"
        names = {item["name"] for item in contents["content"]}
        assert {"daily_report.ipynb", "problem_calls.ipynb", "explore_funnel.ipynb"} <= names
        # the native kernel: jupyter_client starts it with the server's own interpreter (the venv's,
        # since make runs .venv/bin/jupyter), where ccanalytics is installed
        python3 = specs["kernelspecs"]["python3"]["spec"]
        assert python3["argv"][0] in ("python", "python3", sys.executable)
        assert specs["default"] == "python3"  # what the notebooks ask for
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
