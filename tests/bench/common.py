"""Shared pieces of the benchmarks: a throw-away embedded PostgreSQL, timing, and writing results
into docs/benchmarks.md (each benchmark group owns one marked section)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"


@contextmanager
def fresh_server():
    """A new embedded PostgreSQL with default (durable) settings; yields a function making databases."""
    from ccanalytics import embedded

    root = Path(tempfile.mkdtemp(prefix="cca-bench-"))
    url = embedded.start(root / "pg", database="postgres", cleanup_mode="delete")
    libpq = url.replace("postgresql+psycopg://", "postgresql://")

    def make_db(name: str) -> str:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return url.replace("/postgres?", f"/{name}?", 1)

    try:
        yield make_db
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed(fn, repeat: int = 1):
    """Run ``fn`` ``repeat`` times; return (last result, list of seconds)."""
    seconds, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
    return result, seconds


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_child(code: str, *args: str) -> tuple[str, int]:
    """Run Python code in a child process; return (stdout, peak RSS of the child in MiB)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return proc.stdout, max(peak, before) // 1024


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def write_section(name: str, command: str, body: str) -> None:
    """Replace the section ``name`` of docs/benchmarks.md (creating the file or section)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n{body.rstrip()}\n\n"
        f"_Measured {stamp} on {machine()} with `{command}`._\n<!-- /bench:{name} -->"
    )
    text = (
        DOC.read_text(encoding="utf-8")
        if DOC.exists()
        else (
            "# Benchmarks\n\nProduced by `make bench` (tests/bench/). Each section is rewritten by its "
            "benchmark; baselines are measured in the same run as the numbers they are compared with.\n"
        )
    )
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")
