"""Prompts and A/B benchmarks: the call processor's prompt resolution (warm cache and cold, from the
database) while an A/B test runs, and A/B results over 100,000 calls.

Baselines, measured in the same run: resolution that reads the database on every call (TTL 0); and
results computed in Python (pandas) from the call rows instead of from sufficient statistics in SQL.
"""

from __future__ import annotations

import time

from common import check_goals, fresh_server, median, p95, timed, write_section

COMMAND = "make bench BENCH=prompts"

CALLS_SQL = """
INSERT INTO calls (id, caller_id, started_at, ended_at, duration_seconds, scenario, transferred_to_operator,
                   transfer_reason, quality_score, total_cost_usd, prompt_version)
SELECT md5('ab' || g)::uuid, '+38067' || lpad(g::text, 7, '0'), :t + g * interval '5 seconds',
       :t + g * interval '5 seconds' + interval '70 seconds', 40 + g % 90, 'tire_search',
       (g % 5 = 0) OR (g % 2 = 0 AND g % 17 = 0), CASE WHEN (g % 5 = 0) OR (g % 2 = 0 AND g % 17 = 0)
       THEN 'cannot_help' END, 0.5 + (g % 50) / 100.0, 0.05 + (g % 40) / 1000.0,
       CASE WHEN g % 2 = 0 THEN 'b@v2' ELSE 'b@v1' END
FROM generate_series(1, :n) g;
INSERT INTO cca_ab_assignments (call_id, test_id, variant, source)
SELECT md5('ab' || g)::uuid, :test, CASE WHEN g % 2 = 0 THEN 'B' ELSE 'A' END, 'resolver'
FROM generate_series(1, :n) g;
INSERT INTO call_metrics (call_id, started_at, turns, customer_turns, bot_turns, response_ms)
SELECT md5('ab' || g)::uuid, :t + g * interval '5 seconds', 8, 4, 4,
       ARRAY[900 + g % 700, 1100 + g % 900, 1300 + g % 500, 1000 + g % 1200]
FROM generate_series(1, :n) g;
"""


def run(quick: bool = False) -> None:
    from datetime import timedelta

    import pandas as pd
    import sqlalchemy as sa

    from ccanalytics.core import clock
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.experiments import abresults
    from ccanalytics.experiments import lifecycle as experiments
    from ccanalytics.prompts import versions as prompts
    from ccanalytics.prompts.resolver import PromptResolver

    n_calls = 10_000 if quick else 100_000
    with fresh_server() as make_db:
        engine = create_engine(make_db("bench_prompts"), statement_timeout_ms=0)
        migrate(engine, partitions_ahead_months=3)
        v1 = prompts.create_version(
            engine, "b", "Версія 1. " * 200, author="bench", tools_config={"tools": []}, activate=True
        )
        v2 = prompts.create_version(engine, "b", "Версія 2. " * 200, author="bench", tools_config={"tools": []})
        test = experiments.create_test(engine, "b-ab", [v1.id, v2.id], created_by="bench")
        experiments.start_test(engine, test.id, by="bench")
        callers = [f"+38050{i:07d}" for i in range(100_000)]

        warm = PromptResolver(engine, ttl_seconds=3600)
        warm.resolve("b", caller_id=callers[0])
        warm_ns = []
        for c in callers:
            t0 = time.perf_counter_ns()
            warm.resolve("b", caller_id=c)
            warm_ns.append(time.perf_counter_ns() - t0)
        cold = PromptResolver(engine, ttl_seconds=0)
        cold_ns = []
        for c in callers[:2000]:
            t0 = time.perf_counter_ns()
            cold.resolve("b", caller_id=c)
            cold_ns.append(time.perf_counter_ns() - t0)

        start = clock.now() + timedelta(minutes=1)  # the one clock
        with engine.begin() as conn:
            from ccanalytics.db import partitions

            partitions.ensure_months(
                conn, [start.date().replace(day=1), (start + timedelta(days=10)).date().replace(day=1)]
            )
            conn.execute(sa.text("UPDATE cca_ab_tests SET started_at = :t WHERE id = :i"), {"t": start, "i": test.id})
            for statement in CALLS_SQL.strip().split(";\n"):
                if statement.strip():
                    conn.execute(sa.text(statement), {"t": start, "n": n_calls, "test": test.id})
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE calls, call_metrics, cca_ab_assignments"))
            conn.commit()
        later = start + timedelta(days=30)
        res, res_s = timed(lambda: abresults.results(engine, test.id, now=later), 5)

        def pandas_results():
            with engine.connect() as conn:
                df = pd.read_sql(
                    sa.text(
                        "SELECT c.ab_variant, c.transferred_to_operator, c.quality_score, c.duration_seconds, "
                        "c.total_cost_usd, m.response_ms FROM cca_calls c LEFT JOIN call_metrics m ON m.call_id = c.id "
                        "WHERE c.ab_test_id = :i"
                    ),
                    conn,
                    params={"i": test.id},
                )
            g = df.groupby("ab_variant")
            out = g.agg(
                n=("transferred_to_operator", "size"),
                transferred=("transferred_to_operator", "sum"),
                q=("quality_score", "mean"),
                qv=("quality_score", "var"),
                d=("duration_seconds", "mean"),
                c=("total_cost_usd", "mean"),
            )
            replies = df.explode("response_ms").dropna(subset=["response_ms"])
            p = replies.assign(ms=replies["response_ms"].astype(float)).groupby("ab_variant")["ms"].quantile(0.95)
            return out, p

        _, base_s = timed(pandas_results, 3)
        engine.dispose()

    def us(ns_values, q):
        ordered = sorted(ns_values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    body = f"""## Prompts and A/B

The prompt resolver answers the call processor while an A/B test runs on the prompt (sticky hash
assignment, 2 KB system prompts). Targets: warm cache < 1 ms p99, cold (database) < 10 ms p99;
A/B results over 100,000 calls < 1 s.

| Measurement | Result |
|---|---|
| `PromptResolver.resolve`, warm cache, {len(warm_ns):,} callers: median / p99 | {us(warm_ns, 0.5):.1f} µs / **{us(warm_ns, 0.99):.1f} µs** |
| Baseline: read the database on every call (TTL 0), {len(cold_ns):,} callers: median / p99 | {us(cold_ns, 0.5) / 1000:.2f} ms / **{us(cold_ns, 0.99) / 1000:.2f} ms** |
| `abresults.results` over {n_calls:,} calls (SQL sufficient statistics + statistics), median of 5 / p95 | **{median(res_s):.2f} s** / {p95(res_s):.2f} s |
| Baseline: the same per-variant figures in pandas from the rows, median of 3 | {median(base_s):.2f} s |

The warm path is a dictionary lookup and one SHA-256; the cold path is one query that returns the
active version and the running test with its variants. Results read counts, sums and sums of squares
per variant (one SQL statement) and run the tests on them; only the latency p95 needs the replies.
Variants in the results: {", ".join(f"{v.variant} {v.n:,} calls" for v in res.variants)}.
"""
    write_section("prompts", COMMAND + (" (--quick)" if quick else ""), body)
    print(body)
    if not quick:
        check_goals(
            "prompts",
            [
                (f"warm resolve p99 < 1 ms (measured {us(warm_ns, 0.99):.1f} µs)", us(warm_ns, 0.99) < 1000),
                (f"cold resolve p99 < 10 ms (measured {us(cold_ns, 0.99) / 1000:.2f} ms)", us(cold_ns, 0.99) < 10_000),
                (f"A/B results over 100,000 calls < 1 s (measured {median(res_s):.2f} s)", median(res_s) < 1),
            ],
        )
