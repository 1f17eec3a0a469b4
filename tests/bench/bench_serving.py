"""Serving benchmark (issue 19): the real `ccanalytics serve` (gunicorn, several worker processes)
under 10 and 50 concurrent clients for 60 s each, a mix of journal pages, transcript searches and
call details; per kind p50/p95/p99, errors, requests/s, the server's CPU and memory.

Data: SEED_DAYS generated days ending yesterday (by the one clock) go through the bulk loader, their
metrics are derived, the rules judge scores them and they are priced (the steady state the scoring and
pricing jobs keep); the seed is then replicated in SQL (new uuids,
stamps SEED_DAYS days earlier per copy) to about TARGET_CALLS calls, VACUUM ANALYZE.

The server is `ccanalytics serve` in a child process with ``CCA_DATABASE_URL`` set (so it runs no
scheduler), the worker count and threads it picks by default on this machine, and its JSON log on a
file (the access log gives the time spent inside the app). Baseline, in the same run: the serving it
replaced, one waitress process with 8 threads (the app built the same way), at 50 clients. Clients
are threads of this process, each with its own HTTP/1.1 connection (reopened when the server closes
it: `ccanalytics serve` closes every connection after its answer, see webapp/serving.py) and the
session cookie of one logged-in user, without think time (a closed loop: each sends its next request when the previous
answer arrived). The goals are checked after the section is written, at full size only.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import timedelta

from common import ROOT, Client, check_goals, fresh_server, last_day, loadavg, median, timed, write_section
from common import log_in as common_log_in

END_DATE = last_day()
SEED_DAYS = 5
TZ = "Europe/Kyiv"
USER, PASSWORD = "bench", "bench serving password 1"
P95_GOAL_MS = 500
KINDS = ("journal", "search", "detail")
SEARCH_TERMS = ["шини", "замовлення", "доставка", "Nokian Hakkapeliitta", "Новою поштою", "зимові шини Київ",
                "знижка", "Potenza", "шины", '"Hakkapeliitta R5"']  # fmt: skip
MIX = {"journal": 0.45, "search": 0.2, "detail": 0.35}  # of the picks; a journal page's next page half the time

WAITRESS_CHILD = """
import logging, sys
from ccanalytics.ops.logs import setup
setup(logging.INFO)  # the same JSON access log as `ccanalytics serve`
from waitress import create_server
from ccanalytics.db.engine import create_engine
from webapp import create_app
engine = create_engine(sys.argv[1], application_name="ccanalytics-admin")
app = create_app({"ENGINE": engine, "SCHEMA_GATE": True})
server = create_server(app, host="127.0.0.1", port=int(sys.argv[2]), threads=8, ident="ccanalytics")
server.run()
"""


# ------------------------------------------------------------------------------------------ data
def build(url: str, per_day: int, target_calls: int, log=print) -> dict:
    import sqlalchemy as sa
    from common import REPLICA_TABLES, ensure_months, replica_statements

    from ccanalytics import quality
    from ccanalytics.analytics import metrics
    from ccanalytics.cost.calls import compute_costs
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants
    from ccanalytics.ingest.load import ingest_records

    engine = create_engine(url, statement_timeout_ms=0)
    migrate(engine)
    with engine.begin() as conn:
        ensure_demo_tenants(conn)
    t0 = time.perf_counter()
    seed_first = END_DATE - timedelta(days=SEED_DAYS - 1)
    ingest_records(
        engine, generate_calls(seed=19, days=SEED_DAYS, calls_per_day=per_day, end_date=END_DATE, ab_test=None)
    )
    metrics.compute_daily_stats(engine, seed_first, END_DATE, tz=TZ, incremental=False)
    quality.enqueue(engine, date_from=seed_first, date_to=END_DATE, tz=TZ)
    quality.score_pending(engine, quality.RulesJudge(), quality.Rubric(), workers=2)
    compute_costs(engine, seed_first, END_DATE, tz=TZ)  # as the pricing job keeps every call priced
    with engine.connect() as conn:
        seed_calls = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
    copies = max(0, round(target_calls / seed_calls) - 1)
    first = END_DATE - timedelta(days=SEED_DAYS * (copies + 1) - 1)
    ensure_months(engine, first, END_DATE + timedelta(days=1))
    with engine.connect() as conn:
        for table, _, _ in REPLICA_TABLES:  # every copy reads the seed only
            seed = (
                f"CREATE TEMP TABLE seed_{table} "  # noqa: S608 — table from REPLICA_TABLES (constants)
                f"AS SELECT * FROM {table}"
            )
            conn.execute(sa.text(seed))
        statements = replica_statements(conn, SEED_DAYS, source="seed_{table}")
        for k0 in range(1, copies + 1, 10):
            for statement in statements:
                conn.execute(sa.text(statement), {"k0": k0, "k1": min(copies, k0 + 9)})
            conn.commit()
            log(f"  copies up to {min(copies, k0 + 9)} of {copies}: {time.perf_counter() - t0:.0f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608 — t: fixed table names
            for t in ("calls", "call_turns")
        }
    seconds = time.perf_counter() - t0
    log(f"data: {counts} over {(END_DATE - first).days + 1} days in {seconds:.0f} s")
    engine.dispose()
    return {"counts": counts, "first": first, "seconds": seconds, "per_day": per_day}


# ---------------------------------------------------------------------------------------- clients
def log_in(port: int) -> str:
    return common_log_in(port, USER, PASSWORD).cookie


def pages(ids: list[str]) -> dict[str, list[str]]:
    """The paths each kind of request chooses from."""

    def q(days: int, back: int, **kw) -> str:
        last = END_DATE - timedelta(days=back)
        first = last - timedelta(days=days - 1)
        return "/calls?" + urllib.parse.urlencode({"from": first.isoformat(), "to": last.isoformat(), **kw})

    journal = ["/calls"]
    for back in (0, 30, 90):
        journal += [
            q(7, back),
            q(30, back, scenario="tire_search"),
            q(30, back, transferred="yes"),
            q(30, back, quality_below="0.6", sort="quality", order="asc"),
            q(30, back, sort="cost"),
            q(7, back, review="new"),
        ]
    search = ["/calls?" + urllib.parse.urlencode({"q": term}) for term in SEARCH_TERMS]
    search += [q(30, 30, q=term) for term in SEARCH_TERMS[:4]]
    return {"journal": journal, "search": search, "detail": [f"/calls/{i}" for i in ids]}


def load_test(port: int, cookie: str, paths: dict[str, list[str]], seconds: float, clients: int) -> dict:
    results: list[tuple[str, int, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)
    kinds, weights = list(MIX), list(MIX.values())
    deadline = [0.0]

    def worker(n: int) -> None:
        rng = random.Random(n)
        client = Client(port, cookie)
        mine, next_page = [], None
        gate.wait()
        while time.perf_counter() < deadline[0]:
            kind = rng.choices(kinds, weights)[0]
            if kind == "journal" and next_page and rng.random() < 0.5:
                path = next_page
            else:
                path = rng.choice(paths[kind])
            next_page = None
            t0 = time.perf_counter()
            try:
                status, text = client.request("GET", path)
            except Exception as exc:  # noqa: BLE001 — an error of the run
                status, text = 0, repr(exc)
            mine.append((kind, status, time.perf_counter() - t0))
            if status != 200:
                with lock:
                    errors.append(f"{status} {path[:80]}: {text[:160]}")
            elif kind == "journal":
                m = re.search(r'href="(/calls\?[^"]*after=[^"]*)"', text)
                next_page = html.unescape(m.group(1)) if m else None
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return {"results": results, "errors": errors, "elapsed": time.perf_counter() - t0, "clients": clients}


# ---------------------------------------------------------------------------------------- servers
class Watch:
    """Samples the server's processes (and PostgreSQL's) while the load runs: peak RSS and CPU."""

    def __init__(self, pid: int, postmaster: int | None) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.postmaster = psutil.Process(postmaster) if postmaster else None
        self.peak_rss = 0
        self.processes = 0
        self._stop = threading.Event()
        self._cpu: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self, proc):
        import psutil

        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return []

    def _cpu_seconds(self, procs) -> float:
        import psutil

        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.5):
            procs = self._tree(self.root)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            self.processes = max(self.processes, len(procs))

    def _total_cpu(self, root) -> float:
        """CPU seconds of ``root`` and its descendants, those that exited too: a process's CPU moves into
        its parent's children times when the parent reaps it (PostgreSQL's backends of closed
        connections; left out, the waitress run's overflow connections hid most of its PostgreSQL CPU)."""
        import psutil

        if root is None:
            return 0.0
        try:
            t = root.cpu_times()
            reaped = t.children_user + t.children_system
        except psutil.Error:
            reaped = 0.0
        return self._cpu_seconds(self._tree(root)) + reaped

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._cpu0 = (self._total_cpu(self.root), self._pg_cpu())
        self._thread.start()
        return self

    def _pg_cpu(self) -> float:
        return self._total_cpu(self.postmaster)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.perf_counter() - self._t0
        app, pg = self._total_cpu(self.root), self._pg_cpu()
        self.app_cores = (app - self._cpu0[0]) / wall
        self.pg_cores = (pg - self._cpu0[1]) / wall


def postmaster_pid(url: str) -> int | None:
    """The embedded server's pid: its unix socket directory is its data directory."""
    host = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("host", [""])[0]
    try:
        with open(os.path.join(host, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, url: str, data_dir: str, log_path: str) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCA_")}
    env.update(CCA_DATABASE_URL=url, CCA_DATA_DIR=data_dir, CCA_SECRET_KEY=secrets.token_hex(32))
    if kind == "serve":
        argv = [os.path.join(os.path.dirname(sys.executable), "ccanalytics"), "serve", "--port", str(port)]
    else:
        argv = [sys.executable, "-c", WAITRESS_CHILD, url, str(port)]
    log_file = open(log_path, "w")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT)
    log_file.close()
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            status, _ = Client(port).request("GET", "/healthz")
            if status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError(f"{kind} did not start: {open(log_path).read()[-2000:]}")
    banner = ""
    if kind == "serve":
        while "serving with" not in banner:
            banner = proc.stdout.readline()
        workers = int(re.search(r"with (\d+) worker", banner).group(1))
        while time.time() < deadline:  # every worker has imported the app and compiled its templates
            with open(log_path, encoding="utf-8", errors="replace") as f:
                if f.read().count('"worker_ready": true') >= workers:
                    break
            time.sleep(0.5)
    return proc, port, banner.strip()


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_log(log_path: str, last: int) -> tuple[list[float], dict[str, int]]:
    """The access log's durations of the last ``last`` requests, and the warnings and errors."""
    from collections import Counter

    out, pids, problems = [], [], Counter()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            entry = json.loads(line) if line.startswith("{") else {"level": "error", "message": line.strip()}
            if entry.get("logger") == "webapp.access" and "ms" in entry:
                out.append(entry["ms"])
                pids.append(entry.get("pid"))
            if entry.get("level") in ("warning", "error", "critical") and entry.get("message"):
                problems[f"{entry.get('logger')}: {re.sub(r'[0-9.]+', 'N', str(entry['message']))[:140]}"] += 1
    per_worker = sorted(Counter(pids[-last:]).values(), reverse=True)
    if len(per_worker) > 1:  # how evenly the worker processes shared the requests
        problems[f"info: requests per worker process {per_worker}"] = 0
    return out[-last:], dict(problems)


def run_load(kind: str, url: str, paths, clients: int, seconds: float, log=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="cca-bench-serving-") as tmp:
        log_path = os.path.join(tmp, "server.log")
        proc, port, banner = start_server(kind, url, tmp, log_path)
        try:
            cookie = log_in(port)
            warm = Client(port, cookie)  # every worker compiles its templates on its first pages
            for path in [p for k in KINDS for p in paths[k][:3]] * 4:
                warm.request("GET", path)
            load_before = loadavg()
            with Watch(proc.pid, postmaster_pid(url)) as watch:
                load = load_test(port, cookie, paths, seconds, clients)
            load.update(
                loadavg=(load_before, loadavg()),
                peak_mib=watch.peak_rss / 2**20,
                processes=watch.processes,
                app_cores=watch.app_cores,
                pg_cores=watch.pg_cores,
                banner=banner,
                server="`ccanalytics serve`" if kind == "serve" else "waitress, 1 process × 8 threads (before)",
            )
        finally:
            stop_server(proc)
        load["server_ms"], load["log_problems"] = server_log(log_path, len(load["results"]))
    n = len(load["results"])
    log(f"  {kind} {clients} clients: {n} requests, {n / load['elapsed']:.1f}/s, {len(load['errors'])} errors")
    for error in load["errors"][:5]:
        log(f"    error: {error}")
    for message, count in sorted(load["log_problems"].items(), key=lambda kv: -kv[1])[:6]:
        log(f"    server log: {count} × {message}")
    return load


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


# ------------------------------------------------------------------------------------------- run
def run(quick: bool = False) -> None:
    per_day, target, seconds = (400, 20_000, 10) if quick else (2000, 200_000, 60)
    t0 = time.perf_counter()
    log = lambda msg: print(msg, flush=True)
    with fresh_server() as make_db:
        url = make_db("bench_serving")
        info = build(url, per_day, target, log)
        from ccanalytics.analytics import journal
        from ccanalytics.auth import users as auth
        from ccanalytics.db.engine import create_engine
        from ccanalytics.reports import charts, svgcharts

        engine = create_engine(url)
        auth.add_user(engine, USER, PASSWORD, "analyst")
        with engine.connect() as conn:
            ids = [r[0] for r in conn.exec_driver_sql("SELECT id::text FROM calls ORDER BY md5(id::text) LIMIT 500")]
        # the call page's chart, both ways, on the same calls
        chart_ms: dict[str, list[float]] = {"matplotlib PNG (before)": [], "inline SVG (now)": []}
        for call_id in ids[:20]:
            turns = journal.call_detail(engine, call_id, tz=TZ)["turns"]
            chart_ms["matplotlib PNG (before)"].append(timed(lambda: charts.turn_latency(turns).to_html())[1][0] * 1e3)  # noqa: B023
            chart_ms["inline SVG (now)"].append(timed(lambda: svgcharts.turn_latency(turns))[1][0] * 1e3)  # noqa: B023
        engine.dispose()
        paths = pages(ids)
        runs = []
        for kind, clients in (("serve", 10), ("serve", 50), ("waitress", 50)):
            log(f"{kind}, {clients} clients …")
            runs.append(run_load(kind, url, paths, clients, seconds, log))
    body, goals = report(info, runs, chart_ms, quick, seconds, time.perf_counter() - t0)
    command = "make bench BENCH=serving" + (" (--quick)" if quick else "")
    write_section("serving", command, body, load=f"{runs[1]['loadavg'][0]}–{runs[1]['loadavg'][1]} during 50 clients")
    print(body)
    if not quick:
        check_goals("serving", goals)


def report(info: dict, runs: list[dict], chart_ms: dict, quick: bool, seconds: float, total: float):
    verdict = lambda ok: "**met**" if ok else "**NOT met**"
    c = info["counts"]
    ten, fifty, _before = runs
    p95s = {k: pct([s * 1000 for kind, _, s in fifty["results"] if kind == k], 0.95) for k in KINDS}
    goals = [(f"50 clients: zero errors (measured {len(fifty['errors'])})", not fifty["errors"])]
    goals += [
        (f"50 clients: {k} p95 < {P95_GOAL_MS} ms (measured {v:.0f} ms)", v < P95_GOAL_MS) for k, v in p95s.items()
    ]
    lines = [
        "## Serving: `ccanalytics serve` under 10 and 50 concurrent clients",
        "",
        f"Data: {SEED_DAYS} generated days × {info['per_day']:,} calls/day ending {END_DATE} went through the bulk "
        "loader, their metrics were derived, the rules judge scored them and they were priced; the seed was replicated in SQL "
        f"to **{c['calls']:,} calls, {c['call_turns']:,} turns** ({info['first']} … {END_DATE}; "
        f"{info['seconds']:.0f} s). Embedded PostgreSQL 16 with default settings on the same 2 cores.",
        "",
        f"Server: {ten['banner'] or '`ccanalytics serve`'} — its defaults on this machine (CCA_SERVE_WORKERS "
        "and CCA_SERVE_THREADS unset: one worker per core, 2 threads each), `CCA_DATABASE_URL` set (no scheduler beside it). Clients: threads of the "
        "benchmark process (on the same cores), each with its own HTTP/1.1 connection (`ccanalytics serve` closes it "
        "after each answer, waitress keeps it alive) and the session of one "
        f"logged-in analyst, no think time, for {seconds:.0f} s. Mix: {MIX['journal']:.0%} journal pages (the "
        f"default page, 7/30-day windows at three ages with filters and sorts; half of them the next page of the "
        f"page just read), {MIX['search']:.0%} transcript searches ({len(SEARCH_TERMS)} terms, default window "
        f"and 30 days), {MIX['detail']:.0%} call pages (500 calls over the whole history, with their latency "
        "chart). Each server was warmed with a few pages first. Baseline in the same run: the previous serving, "
        "one waitress process with 8 threads, at 50 clients.",
        "",
        "| server | clients | kind | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        for kind in ("all", *KINDS):
            vals = [s * 1000 for k, _, s in r["results"] if kind in ("all", k)]
            if not vals:
                continue
            lines.append(
                f"| {r['server']} | {r['clients']} | {kind} | {len(vals):,} | {median(vals):.0f} | "
                f"**{pct(vals, 0.95):.0f}** | {pct(vals, 0.99):.0f} | {max(vals):.0f} |"
            )
    lines += [
        "",
        "| server | clients | requests/s | errors | time in the app p50 / p95 ms | CPU: server / PostgreSQL "
        "(cores) | processes | peak RSS, all processes | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        sm = r["server_ms"] or [float("nan")]
        lines.append(
            f"| {r['server']} | {r['clients']} | **{len(r['results']) / r['elapsed']:.1f}** | {len(r['errors'])} | "
            f"{median(sm):.0f} / {pct(sm, 0.95):.0f} | {r['app_cores']:.2f} / {r['pg_cores']:.2f} | "
            f"{r['processes']} | {r['peak_mib']:.0f} MiB | {r['loadavg'][0]} → {r['loadavg'][1]} |"
        )
    errors = [e for r in runs for e in r["errors"]]
    lines += [
        "",
        "Errors: "
        + ("none." if not errors else f"{len(errors)}; first: {errors[0][:120]}")
        + " Warnings and errors in the servers' logs: "
        + (
            "; ".join(
                f"{r['server']}, {r['clients']} clients: "
                + (
                    ", ".join(
                        m[6:] if m.startswith("info: ") else f"{n} × «{m}»"
                        for m, n in sorted(r["log_problems"].items(), key=lambda kv: -kv[1])[:4]
                    )
                    or "none"
                )
                for r in runs
            )
        )
        + ".",
        "",
        "The call page's latency chart, drawn in process for 20 calls (ms): "
        + "; ".join(f"{name}: median {median(v):.1f}, max {max(v):.1f}" for name, v in chart_ms.items())
        + ".",
        "",
        f"Goals at 50 clients (full size only{'; not checked in this --quick run' if quick else ''}): zero errors "
        f"— {verdict(not fifty['errors'])}; p95 < {P95_GOAL_MS} ms for each kind — "
        + ", ".join(f"{k} {v:.0f} ms {verdict(v < P95_GOAL_MS)}" for k, v in p95s.items())
        + ".",
        "",
        f"Whole benchmark: {total / 60:.1f} min.",
    ]
    return "\n".join(lines), goals
