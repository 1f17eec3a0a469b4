"""Quality benchmarks: scoring throughput against a local OpenAI-compatible server answering in
300 ms (real SDK, real HTTP, real database), and the size of the judge's input against a naive JSON
dump of the same calls.

Baseline, measured in the same run: one worker (sequential scoring), as a naive loop would do.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from common import fresh_server, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fake OpenAI server

COMMAND = "make bench BENCH=quality"


def run(quick: bool = False) -> None:
    from fakeopenai import FakeOpenAI

    from ccanalytics import quality
    from ccanalytics.analytics import callmetrics
    from ccanalytics.core import timeutil
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo import load_demo_data
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.quality import LLMJudge, LLMJudgeConfig, Rubric, ScoringConfig

    per_day = 100 if quick else 400
    today = timeutil.today()
    with fresh_server() as make_db:
        engine = create_engine(make_db("bench_quality"), statement_timeout_ms=0, pool_size=20)
        migrate(engine)
        load_demo_data(engine, days=3, calls_per_day=per_day, end_date=today)
        callmetrics.derive_days(engine, "2000-01-01", today)
        rubric = Rubric()
        results = {}
        with FakeOpenAI(delay=0.3) as server:
            config = LLMJudgeConfig(base_url=server.base_url, api_key="test-key", model="fake-judge-1", timeout_s=10)
            judge = LLMJudge(config, rubric)
            for workers, limit in ((1, 20), (8, 200), (16, 400)):
                quality.enqueue(engine, reason="rescore")
                run_ = quality.score_pending(
                    engine, judge, rubric, workers=workers, limit=limit, config=ScoringConfig(max_attempts=2)
                )
                results[workers] = (run_.scored, run_.seconds, run_.scored / run_.seconds)
            # judge input size: the rendered transcript vs a JSON dump of the call log as received
            with engine.connect() as conn:
                ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM calls ORDER BY started_at LIMIT 300")]
                views = quality.load_calls(conn, ids)
        records = {c["call_id"]: c for c in generate_calls(days=3, calls_per_day=per_day, end_date=today)}
        ratios, judge_chars, naive_chars = [], [], []
        for cid, view in views.items():
            rendered = "\n".join(m["content"] for m in judge.messages(view))
            naive = json.dumps(records[str(cid)], ensure_ascii=False)
            user_only = quality.render(view)
            judge_chars.append(len(user_only))
            naive_chars.append(len(naive))
            ratios.append(len(user_only) / len(naive))
        system_chars = len(rendered) - len(user_only)
        engine.dispose()

    one = results[1][2]
    body = f"""## Quality

Data: {3 * per_day:,} demo calls over 3 days. The local OpenAI-compatible server answers every
request after 300 ms (tests/fakeopenai.py); the openai SDK talks to it over HTTP; every result is
written to PostgreSQL with its claim checked. Target: ≥ 20 calls/s on 2 cores; judge input ≤ 60 % of
a naive JSON dump of the call.

| Measurement | Result |
|---|---|
| Baseline: 1 worker (sequential), {results[1][0]} calls | {one:.1f} calls/s |
| 8 workers, {results[8][0]} calls | **{results[8][2]:.1f} calls/s** ({results[8][2] / one:.1f}×) |
| 16 workers, {results[16][0]} calls | **{results[16][2]:.1f} calls/s** ({results[16][2] / one:.1f}×) |
| Judge transcript / JSON dump of the call log, median over {len(ratios)} calls (characters) | **{statistics.median(ratios):.0%}** (p90 {sorted(ratios)[int(0.9 * len(ratios))]:.0%}) |
| Mean characters: transcript / JSON dump | {statistics.mean(judge_chars):.0f} / {statistics.mean(naive_chars):.0f} |
| Rubric and instructions (system message, same for every call, cacheable) | {system_chars} characters |

The transcript keeps everything the rubric reads: every turn's speaker and text in order, low STT
confidence and barge-ins, every tool call with its arguments, success and a short result, the
scenario, the transfer and its reason, and whether an order or booking was made. It drops
timestamps, latencies, ids, usage and cost, and masks phones and the customer's name.
"""
    write_section("quality", COMMAND, body)
    print(body)
