"""Reports benchmark: the daily report end to end (papermill execution + HTML) for a 2,000-call day.

Target: < 20 s and an HTML below 3 MB. Baseline, measured in the same run: the report's data alone
(``dailyreport.build`` in this process, no kernel, no charts, no HTML) — what the notebook, the
charts and the conversion add on top of the queries.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from common import check_goals, fresh_server, last_day, median, write_section

COMMAND = "make bench BENCH=reports"


def run(quick: bool = False) -> None:
    from ccanalytics.core.config import Settings
    from ccanalytics.demo.run import run_demo
    from ccanalytics.reports import daily as dailyreport
    from ccanalytics.reports import run as reporting

    per_day = 500 if quick else 2000
    end = last_day()  # the demo ends yesterday by the one clock; the report is of the day before
    day = end - timedelta(days=1)
    with fresh_server() as make_db:
        url = make_db("bench_reports")
        out = Path(tempfile.mkdtemp(prefix="cca-bench-reports-"))
        settings = Settings(database_url=url, reports_dir=out)
        t0 = time.perf_counter()
        demo = run_demo(settings, days=9, calls_per_day=per_day, end_date=end, echo=lambda _l: None)
        load_s = time.perf_counter() - t0
        engine = demo.engine
        build_s = []
        for _ in range(3):
            t0 = time.perf_counter()
            rep = dailyreport.build(engine, day, admin_url=settings.admin_base_url)
            build_s.append(time.perf_counter() - t0)
        calls = rep.summary.total_calls
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = reporting.run(engine, settings, "daily", day=day)
            runs.append(time.perf_counter() - t0)
        size = r.rendered.html_bytes
        engine.dispose()

    e2e = median(runs)
    body = f"""## Reports

| measurement | value | target |
|---|---|---|
| daily report end to end (papermill execute + HTML), {calls:,} calls that day | **{e2e:.1f} s** (median of 3; min {min(runs):.1f} s) | < 20 s |
| HTML size | **{size / 1024:.0f} KB** | < 3 MB |
| baseline: the report's data alone (`dailyreport.build`, in process) | {median(build_s):.2f} s | — |
| demo data for the run (9 days × {per_day:,} calls: load, price, score, stats, reports) | {load_s:.0f} s | — |

The end-to-end time includes starting a Python kernel, importing the package, the queries
(the baseline row), drawing the charts and the nbconvert conversion; the notebook adds
{e2e - median(build_s):.1f} s to its data."""
    write_section("reports", COMMAND + (" (--quick)" if quick else ""), body)
    print(body)
    if not quick:
        check_goals(
            "reports",
            [
                (f"daily report end to end < 20 s (measured {e2e:.1f} s)", e2e < 20),
                (f"report HTML < 3 MB (measured {size / 1024:.0f} KB)", size < 3 * 2**20),
            ],
        )
