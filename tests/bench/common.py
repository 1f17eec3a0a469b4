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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
# CCA_BENCH_DOC writes the sections elsewhere (a trial run that must not replace the recorded figures)
DOC = Path(os.environ.get("CCA_BENCH_DOC") or ROOT / "docs" / "benchmarks.md")


def last_day(days_back: int = 1) -> date:
    """The last day of a benchmark's generated data: ``days_back`` days before today by the one clock
    (ccanalytics.core.timeutil.today, Kyiv), so every group runs on any day. Yesterday by default: a whole
    day, nothing in the future, and inside every default window that ends today (the journal's 7 days)."""
    from ccanalytics.core import timeutil

    return timeutil.today() - timedelta(days=days_back)


class GoalMissed(AssertionError):
    """A benchmark missed a goal: a real regression, stated as such (never a calendar effect)."""


def check_goals(group: str, goals: list[tuple[str, bool]]) -> None:
    """Fail loudly, after the section is written, when a goal was missed: ``goals`` are (statement, met)."""
    missed = [text for text, met in goals if not met]
    if missed:
        raise GoalMissed(f"{group}: goal missed — " + "; ".join(missed))


@contextmanager
def fresh_server():
    """A new embedded PostgreSQL with default (durable) settings; yields a function making databases."""
    from ccanalytics.db import embedded

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
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


# Defined in every child's code: ``_peak_rss_mib()``, the child's own peak RSS (VmHWM of its memory map).
# Not getrusage's ru_maxrss: Linux carries the forking process's peak across exec into the child, so a
# child of a benchmark process that had grown to 1.7 GB reported 1.7 GB whatever it did.
_PEAK_RSS_DEF = """
def _peak_rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
"""


def run_child(code: str, *args: str) -> str:
    """Run Python code in a child process (which may print ``_peak_rss_mib()``, its own peak RSS in MiB);
    return its stdout."""
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_DEF + code, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return proc.stdout


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def commit() -> str:
    """The short commit of the checkout, with "+ uncommitted changes" when the tree is dirty (this page
    itself does not count: every group of a run rewrites it)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/benchmarks.md"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit (not a git checkout)"
    return f"commit {head}" + (" + uncommitted changes" if dirty else "")


def loadavg() -> str:
    """The 1-minute load average now (other processes share the 2 cores)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def write_section(name: str, command: str, body: str, *, load: str | None = None) -> None:
    """Replace the section ``name`` of docs/benchmarks.md (creating the file or section). The section
    ends with the date it was measured, the commit (dirty or not), the machine and the load average
    (``load``: what the benchmark saw while it measured; else the load average at the end)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n{body.rstrip()}\n\n"
        f"_Measured {stamp} at {commit()} on {machine()}, load average {load or loadavg()}, "
        f"with `{command}`._\n<!-- /bench:{name} -->"
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


# ------------------------------------------------------------------ copying generated calls in SQL
# The tables a generated call has rows in, in the shape the call processor creates its own
# (sql/processor/schema.sql) and ccanalytics's cca_ tables beside them: (table, uuid columns re-keyed
# as md5(value || k) in copy k, time columns moved back by k × shift days). Other columns are copied.
REPLICA_TABLES = (
    ("calls", ("id",), ("started_at", "ended_at")),
    ("call_turns", ("id", "call_id"), ("created_at",)),
    ("call_tool_calls", ("id", "call_id"), ("created_at",)),
    ("cca_turn_extras", ("turn_id", "call_id"), ()),
    ("cca_call_ingest", ("call_id",), ("started_at",)),
    ("cca_call_prompts", ("call_id",), ()),
    ("cca_ab_assignments", ("call_id",), ()),
    ("call_metrics", ("call_id",), ("started_at", "call_ended_at")),
    ("call_scores", ("call_id",), ("started_at",)),
    ("cca_call_costs", ("call_id",), ("started_at",)),
    ("review_items", ("call_id",), ("started_at",)),
)


def replica_statements(conn, shift_days: int, *, source: str = "{table}", tables=REPLICA_TABLES) -> list[str]:
    """``INSERT … SELECT`` statements copying the rows of ``tables`` for copies :k0 … :k1 (bound
    parameters), each copy ``shift_days`` days earlier than the one before and keyed by new uuids.
    ``source`` names the table read (``{table}``: the table itself; e.g. ``seed_{table}``). Columns
    come from the catalog, so the copy follows the schema; generated and identity columns are left to
    their defaults, and only the current score of a call is copied."""
    import sqlalchemy as sa

    quote = conn.dialect.identifier_preparer.quote
    out = []
    for table, keys, stamps in tables:
        columns = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = :t AND is_generated = 'NEVER' AND is_identity = 'NO' "
                "AND coalesce(column_default, '') NOT LIKE 'nextval(%' ORDER BY ordinal_position"
            ),
            {"t": table},
        ).scalars()
        names, values = [], []
        for col in columns:
            name = quote(col)  # a name from the catalogue: quoted as an identifier (as needed)
            names.append(name)
            if col in keys:
                values.append(f"md5(x.{name}::text || k)::uuid")
            elif col in stamps:
                values.append(f"x.{name} - k * {int(shift_days)} * interval '1 day'")
            else:
                values.append(f"x.{name}")
        where = " WHERE x.is_current" if table == "call_scores" else ""
        out.append(
            f"INSERT INTO {table} "  # noqa: S608 — REPLICA_TABLES constants; catalogue columns quoted; k bound
            f"({', '.join(names)}) SELECT {', '.join(values)} "
            f"FROM {source.format(table=table)} x CROSS JOIN generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k"
            + where
        )
    return out


def ensure_months(engine, first: date, last: date) -> None:
    """The monthly partitions (``<table>_YYYY_MM``) from the month before ``first`` to the one after
    ``last``, made the way ccanalytics stands in for the processor's partition manager."""
    from ccanalytics.db import partitions

    months, m = [], partitions.add_months(partitions.month_start(first), -1)
    while m <= partitions.add_months(partitions.month_start(last), 1):
        months.append(m)
        m = partitions.add_months(m, 1)
    with engine.begin() as conn:
        partitions.ensure_months(conn, months)


# --------------------------------------------------------------------------- HTTP clients of the admin
class Client:
    """One keep-alive HTTP/1.1 connection to the admin on 127.0.0.1 with the session cookie."""

    def __init__(self, port: int, cookie: str = ""):
        import http.client

        self.port, self.cookie = port, cookie
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            res = self.conn.getresponse()
            text = res.read().decode("utf-8", "replace")
        except Exception:
            self.conn.close()  # reconnects on the next request
            raise
        for name, value in res.getheaders():
            if name.lower() == "set-cookie" and value.startswith("cca_session="):
                self.cookie = value.split(";", 1)[0]
        return res.status, text


def log_in(port: int, user: str, password: str) -> Client:
    """A client logged in to the admin through its login form (CSRF token included)."""
    import urllib.parse

    client = Client(port)
    _, page = client.request("GET", "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": user, "password": password, "csrf_token": token, "next": "/calls"})
    status, _ = client.request("POST", "/login", form)
    assert status in (302, 303), status
    return client
