"""Journal benchmarks (issue 8): the call journal with filters, full-text search over the transcripts
and 50 concurrent clients on the real app, over 1M calls / ~11M turns.

Data: a seed of SEED_DAYS generated days is ingested with the bulk loader (validation, COPY), its
per-call metrics derived and its calls scored by the rules judge (quality scores, review items), then
replicated in SQL with new ids (``md5(id || k)``) and stamps shifted by SEED_DAYS days per copy, so
the history is continuous. ``call_turns.search_tsv`` is a generated column: ``INSERT … SELECT``
computes it for every copy, and the GIN index is rebuilt once after the load (what a bulk load of
history does). VACUUM ANALYZE at the end.

Baselines, measured in the same run: the same journal query with ``content ILIKE '%term%'`` instead
of the tsvector match (same join, same date bound), and for recall the calls a case-insensitive
whole-word regular expression finds. The two changes the report proposes for ``journal.search`` are
measured on the same data next to the current queries.

The app is served by waitress in a child process (its peak RSS is read from /proc at the end) and
driven by 50 client threads with keep-alive connections and one logged-in session.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

from common import fresh_server, median, p95, timed, write_section

END_DATE = date(2026, 11, 23)
SEED_DAYS = 5
TZ = "Europe/Kyiv"

# the seed is copied into temporary tables first, so each batch of copies reads only the seed
SEED_TABLES = """
CREATE TEMP TABLE seed_calls AS SELECT * FROM calls;
CREATE TEMP TABLE seed_metrics AS SELECT * FROM call_metrics;
CREATE TEMP TABLE seed_turns AS SELECT * FROM call_turns;
CREATE TEMP TABLE seed_tools AS SELECT * FROM call_tool_calls;
CREATE TEMP TABLE seed_reviews AS SELECT * FROM review_items;
CREATE TEMP TABLE seed_scores AS SELECT * FROM call_scores WHERE is_current;
CREATE TEMP TABLE seed_costs AS SELECT * FROM cca_call_costs
"""
REPLICATE = """
INSERT INTO calls (id, caller_id, customer_id, started_at, ended_at, duration_seconds, scenario,
    transferred_to_operator, transfer_reason, order_id, fitting_booking_id, prompt_version, quality_score,
    quality_details, cost_breakdown, total_cost_usd, usage, payload_sha256, ingested_at)
SELECT md5(c.id::text || k)::uuid, c.caller_id, c.customer_id, c.started_at - k * :shift * interval '1 day',
       c.ended_at - k * :shift * interval '1 day', c.duration_seconds, c.scenario, c.transferred_to_operator,
       c.transfer_reason, c.order_id, c.fitting_booking_id, c.prompt_version, c.quality_score,
       c.quality_details, c.cost_breakdown, c.total_cost_usd, c.usage, c.payload_sha256, c.ingested_at
FROM seed_calls c, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO call_metrics (call_id, started_at, turns, customer_turns, bot_turns, response_ms, response_p50_ms,
    response_p95_ms, response_max_ms, response_estimated, stt_ms, llm_ms, tts_ms, stt_p95_ms, llm_p95_ms,
    tts_p95_ms, stt_reasks, low_confidence_turns, min_stt_confidence, long_pauses, barge_ins, tool_calls,
    tool_errors, rejected_tool_calls, suspicious_tool_calls, greeted, computed_at)
SELECT md5(m.call_id::text || k)::uuid, m.started_at - k * :shift * interval '1 day', turns, customer_turns,
       bot_turns, response_ms, response_p50_ms, response_p95_ms, response_max_ms, response_estimated, stt_ms, llm_ms,
       tts_ms, stt_p95_ms, llm_p95_ms, tts_p95_ms, stt_reasks, low_confidence_turns, min_stt_confidence,
       long_pauses, barge_ins, tool_calls, tool_errors, rejected_tool_calls, suspicious_tool_calls, greeted,
       computed_at
FROM seed_metrics m, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO call_turns (call_id, turn_number, speaker, content, stt_confidence, stt_latency_ms, llm_latency_ms,
    tts_latency_ms, created_at, speech_duration_ms, interrupted)
SELECT md5(t.call_id::text || k)::uuid, turn_number, speaker, content, stt_confidence, stt_latency_ms,
       llm_latency_ms, tts_latency_ms, created_at - k * :shift * interval '1 day', speech_duration_ms, interrupted
FROM seed_turns t, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO call_tool_calls (call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, success, created_at)
SELECT md5(x.call_id::text || k)::uuid, turn_number, tool_name, tool_args, tool_result, duration_ms, success,
       created_at - k * :shift * interval '1 day'
FROM seed_tools x, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO review_items (call_id, started_at, reasons, score)
SELECT md5(r.call_id::text || k)::uuid, r.started_at - k * :shift * interval '1 day', reasons, score
FROM seed_reviews r, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO call_scores (call_id, started_at, judge_kind, judge_model, rubric_version, overall_score, criteria,
    signals, auto_failed, auto_fail_reasons, attempts, created_at, details)
SELECT md5(s.call_id::text || k)::uuid, s.started_at - k * :shift * interval '1 day', judge_kind, judge_model,
       rubric_version, overall_score, criteria, signals, auto_failed, auto_fail_reasons, attempts, created_at, details
FROM seed_scores s, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k;
INSERT INTO cca_call_costs (call_id, started_at, breakdown, total_usd, priced_at)
SELECT md5(p.call_id::text || k)::uuid, p.started_at - k * :shift * interval '1 day', breakdown, total_usd, priced_at
FROM seed_costs p, generate_series(CAST(:k0 AS int), CAST(:k1 AS int)) k
"""


def replicate(engine, copies: int, progress, sessions: int = 2, step: int = 5) -> None:
    """Insert copies 1…``copies`` of the seed, ``step`` copies per transaction, on ``sessions``
    connections at once (each with its own temporary copy of the seed, taken before any insert)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import sqlalchemy as sa

    statements = [s.replace(":shift", str(SEED_DAYS)) for s in REPLICATE.strip().split(";\n") if s.strip()]
    chunks = [(k0, min(copies, k0 + step - 1)) for k0 in range(1, copies + 1, step)]
    seeded = threading.Barrier(sessions)

    def work(mine: list[tuple[int, int]]) -> None:
        with engine.connect() as conn:
            for statement in SEED_TABLES.strip().split(";\n"):
                conn.execute(sa.text(statement))
            conn.commit()
            seeded.wait(timeout=600)
            for k0, k1 in mine:
                for statement in statements:
                    conn.execute(sa.text(statement), {"k0": k0, "k1": k1})
                conn.commit()
                progress(k1)

    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(work, [chunks[i::sessions] for i in range(sessions)]))


def build(url: str, per_day: int, target_calls: int, log=print) -> dict:
    """Seed SEED_DAYS × per_day calls through the bulk loader, then replicate them (SEED_DAYS days
    earlier per copy) until there are about ``target_calls`` calls."""
    import sqlalchemy as sa

    from ccanalytics import metrics, partitions, quality
    from ccanalytics.database import create_engine
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants
    from ccanalytics.ingest import ingest_records
    from ccanalytics.migrate import migrate

    engine = create_engine(url, statement_timeout_ms=0)
    migrate(engine)
    with engine.begin() as conn:  # the demo calls name the demo's tenants
        ensure_demo_tenants(conn)
    seconds = {}
    t0 = time.perf_counter()
    seed_first = END_DATE - timedelta(days=SEED_DAYS - 1)
    ingest_records(
        engine, generate_calls(seed=8, days=SEED_DAYS, calls_per_day=per_day, end_date=END_DATE, ab_test=None)
    )
    seconds["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics.compute_daily_stats(engine, seed_first, END_DATE, tz=TZ, incremental=False)
    quality.enqueue(engine, date_from=seed_first, date_to=END_DATE, tz=TZ)
    quality.score_pending(engine, quality.RulesJudge(), quality.Rubric(), workers=2)
    seconds["derive"] = time.perf_counter() - t0
    with engine.connect() as conn:
        seed_calls = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
        seed_turns = conn.execute(sa.text("SELECT count(*) FROM call_turns")).scalar_one()
    copies = max(1, round(target_calls / seed_calls) - 1)
    log(
        f"seed: {seed_calls} calls, {seed_turns} turns; ingest {seconds['ingest']:.1f} s, "
        f"metrics + scores {seconds['derive']:.1f} s; {copies} copies"
    )

    first = END_DATE - timedelta(days=SEED_DAYS * (copies + 1) - 1)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        months = [first - timedelta(days=31)]
        while months[-1] < END_DATE + timedelta(days=31):
            months.append(months[-1] + timedelta(days=28))
        partitions.ensure_months(conn, months)
        conn.execute(sa.text("DROP INDEX call_turns_search_idx"))
    replicate(engine, copies, lambda k1: log(f"  copies up to {k1}: {time.perf_counter() - t0:.0f} s"))
    seconds["replicate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("CREATE INDEX call_turns_search_idx ON call_turns USING gin (search_tsv)"))
        seconds["gin"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute(sa.text("VACUUM ANALYZE"))
        seconds["vacuum"] = time.perf_counter() - t0
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("calls", "call_turns", "call_tool_calls", "review_items")
        }
        counts["db_bytes"] = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        counts["gin_bytes"] = conn.execute(
            sa.text(
                "SELECT sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i "
                "WHERE i.inhparent = 'call_turns_search_idx'::regclass"
            )
        ).scalar_one()
    log(
        f"replicate {seconds['replicate']:.0f} s, GIN {seconds['gin']:.0f} s, vacuum {seconds['vacuum']:.0f} s: {counts}"
    )
    engine.dispose()
    return {
        "seconds": seconds,
        "counts": counts,
        "first": first,
        "per_day": per_day,
        "copies": copies,
        "seed_calls": seed_calls,
        "seed_turns": seed_turns,
    }


# ------------------------------------------------------------------------------------ the queries
# journal pages without text: (label, window in days, search() keyword arguments)
FILTERS = [
    ("7 days, all calls, newest first", 7, {}),
    ("30 days, scenario tire_search", 30, {"scenario": "tire_search"}),
    ("30 days, scenario order_creation (also inside combined scenarios)", 30, {"scenario": "order_creation"}),
    ("30 days, transferred to an operator", 30, {"transferred": True}),
    ("30 days, quality < 0.6, worst first", 30, {"quality_below": 0.6, "sort": "quality", "descending": False}),
    ("30 days, most expensive first", 30, {"sort": "cost"}),
    ("30 days, consultation + transferred, longest first", 30,
     {"scenario": "consultation", "transferred": True, "sort": "duration"}),
    ("7 days, review status new", 7, {"review_status": "new"}),
    ("90 days, quality > 0.95, best first", 90, {"quality_above": 0.95, "sort": "quality"}),
]  # fmt: skip
# transcript search, 30-day window: (class, query); order numbers are added from the data
SEARCHES = [
    ("rare word", "хмільницький"),  # an STT misrecognition of Хмельницький
    ("rare word", "крапивницький"),
    ("rare word", "знижка"),  # prompt-injection attempts
    ("rare word", "інструкції"),
    ("rare word", "мотодор"),
    ("rare word", "Potenza"),
    ("common word", "шини"),
    ("common word", "замовлення"),
    ("common word", "гривень"),
    ("common word", "доставка"),
    ("several words", "Nokian Hakkapeliitta"),
    ("several words", "Новою поштою"),
    ("several words", '"Hakkapeliitta R5"'),
    ("several words", "зимові шини Київ"),
    ("several words", "шиномонтаж -Київ"),
    ("Russian form", "шины"),
    ("Russian form", "колёса"),
    ("Russian form", "Киеве"),
    ("Russian form", "Мишлен"),
    ("Russian form", "Ужгороде"),
]
# word prefixes: websearch syntax has no prefix operator (``шиномонт*`` is read as ``шиномонт``)
PREFIXES = ["Hakkap", "шиномонт", "Ужгор"]
# whole words whose calls are compared with ILIKE and a whole-word regular expression
RECALL_WORDS = ["хмільницький", "крапивницький", "знижка", "Potenza", "інструкції", "мотодор", "Ужгороді", "Hankook", "доставка",
                "пам'ятаю"]  # fmt: skip
WINDOW_ENDS = (0, 180, 360)  # the same queries over windows ending this many days before END_DATE


# the proposed search path: probe the first PROBE_CALLS calls of the window in page order, each by
# its own turns (call_turns_call_idx); only a page this does not fill needs the GIN query
PROBE_CALLS = 500
SORT_INDEXES = {"cost": "coalesce(total_cost_usd, -1)", "quality": "coalesce(quality_score, -1)"}
PROPOSAL_QUERIES = ["Новою поштою", "Nokian Hakkapeliitta", "Киеве", "колёса", "шини", "Potenza"]
DATE_BOUND = (
    "t.created_at >= CAST(%(start)s AS timestamptz) - interval '1 hour' "
    "AND t.created_at < CAST(%(end)s AS timestamptz) + interval '7 hours'"
)
PROBE_SQL = f"""
SELECT r.id FROM (
    SELECT c.id, c.started_at FROM calls c WHERE c.started_at >= %(start)s AND c.started_at < %(end)s
    ORDER BY c.started_at DESC, c.id DESC LIMIT %(probe)s) r
CROSS JOIN LATERAL (
    SELECT bool_or(t.search_tsv @@ cca_search_query(%(q)s)) AS hit FROM call_turns t
    WHERE t.call_id = r.id AND {DATE_BOUND}) m
WHERE m.hit ORDER BY r.started_at DESC, r.id DESC LIMIT 51
"""


class Capture:
    """Remembers the SQL statements an engine runs (to EXPLAIN or rewrite the journal's own query)."""

    def __init__(self, engine):
        import sqlalchemy as sa

        self.statements: list[tuple[str, dict]] = []
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.statements.append((statement, dict(parameters or {})))

    def main_query(self, fn, marker: str = "FROM calls c LEFT JOIN review_items") -> tuple[str, dict]:
        """The statement containing ``marker`` that ``fn`` ran (by default the journal's page query)."""
        self.statements.clear()
        self.on = True
        try:
            fn()
        finally:
            self.on = False
        return next((s, p) for s, p in self.statements if marker in s)


def raw_execute(engine, sql: str, params: dict | None = None) -> list[tuple]:
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.execute(sql, params or {})
        rows = cur.fetchall() if cur.description else []
        conn.rollback()
    return rows


def explain(engine, sql: str, params: dict) -> str:
    rows = raw_execute(engine, "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql, params)
    return "\n".join(r[0] for r in rows)


def classes(samples: dict[str, list[float]], repeats: dict[str, list[float]] | None = None) -> str:
    lines = []
    for name, values in samples.items():
        ms = [v * 1000 for v in values]
        row = f"| {name} | {len(ms)} | {median(ms):.1f} | **{p95(ms):.1f}** | {max(ms):.1f} |"
        if repeats is not None:
            row += f" {p95(repeats[name]) * 1000:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def loadavg() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _window(days: int, back: int) -> tuple[date, date]:
    last = END_DATE - timedelta(days=back)
    return last - timedelta(days=days - 1), last


def reference_numbers(engine, info) -> list[tuple[str, str]]:
    """Order and fitting numbers that exist (every seed call recurs every SEED_DAYS days)."""
    seed_start = END_DATE - timedelta(days=SEED_DAYS + 1)
    orders = raw_execute(
        engine,
        "SELECT order_id FROM calls WHERE started_at >= %(s)s AND order_id LIKE 'ORD-%%' ORDER BY id LIMIT 3",
        {"s": seed_start},
    )
    fits = raw_execute(
        engine,
        "SELECT fitting_booking_id FROM calls WHERE started_at >= %(s)s AND fitting_booking_id IS NOT NULL "
        "ORDER BY id LIMIT 1",
        {"s": seed_start},
    )
    return [("order number", r[0]) for r in orders] + [("order number", r[0]) for r in fits]


def measure_queries(url: str, info: dict, log=print) -> dict:
    """Latency of journal.search() (filters, pages, full-text), the ILIKE baseline, recall, plans."""
    from collections import defaultdict

    from ccanalytics import journal, timeutil
    from ccanalytics.database import create_engine

    engine = create_engine(url, application_name="bench-journal")
    capture = Capture(engine)
    searches = SEARCHES + reference_numbers(engine, info)
    by_class: dict[str, list[float]] = defaultdict(list)
    by_query: dict[str, list[float]] = defaultdict(list)
    load_before = loadavg()
    found: dict[str, str] = {}

    def search(days: int, back: int, **kw):
        first, last = _window(days, back)
        return journal.search(engine, date_from=first, date_to=last, tz=TZ, **kw)

    journal.search(engine, date_from=END_DATE, date_to=END_DATE, tz=TZ)  # connect the pool
    for rep in range(2):
        for back in WINDOW_ENDS:
            for label, days, kw in FILTERS:
                page, (s,) = timed(lambda: search(days, back, **kw))  # noqa: B023
                by_class["filters, first page"].append(s)
                by_query[label].append(s)
                for _ in range(4):  # pages 2..5 through the cursors
                    if not page.next_cursor:
                        break
                    page, (s,) = timed(lambda: search(days, back, after=page.next_cursor, **kw))  # noqa: B023
                    by_class["filters, next pages (2–5)"].append(s)
            for cls, q in searches:
                page, (s,) = timed(lambda: search(30, back, text=q))  # noqa: B023
                by_class[cls].append(s)
                by_query[q].append(s)
                if back == 0:
                    found[q] = f"{len(page.rows)}{'+' if page.next_cursor else ''}"
                if cls == "common word" and page.next_cursor:
                    _, (s,) = timed(lambda: search(30, back, text=q, after=page.next_cursor))  # noqa: B023
                    by_class["common word, page 2"].append(s)
            for q, kw in (("шини", {"scenario": "tire_search"}), ("Nokian", {"transferred": True}),
                          ("Гуменюк", {"quality_below": 0.9}), ("замовлення", {"sort": "cost"})):  # fmt: skip
                _, (s,) = timed(lambda: search(7, back, text=q, **kw))  # noqa: B023
                by_class["word + filters, 7 days"].append(s)
        if rep == 0:
            first_round = {k: len(v) for k, v in by_class.items()}
        log(f"  query round {rep + 1} done")
    repeats = {k: v[first_round.get(k, 0) :] for k, v in by_class.items()}
    prefix = {}
    start, end = timeutil.period_bounds(*_window(30, 0), TZ)
    for q in PREFIXES:
        page, seconds = timed(lambda: search(30, 0, text=q), 3)  # noqa: B023
        like = raw_execute(
            engine,
            RECALL_SQL.format(match="t.content ILIKE %(like)s"),
            {"start": start, "end": end, "like": f"%{q}%"},
        )
        prefix[q] = (len(page.rows), median(seconds), len(like))

    # the ILIKE baseline: the journal's own query with the tsvector match replaced, same date bound
    match = "t.search_tsv @@ cca_search_query(%(q)s)"
    baseline = {}
    for cls, q in searches:
        if cls != "rare word":
            continue
        fts_s, like_s = [], []
        for back in (0, 0, 180):
            sql, params = capture.main_query(lambda: search(30, back, text=q))  # noqa: B023
            assert match in sql, sql
            fts_s.append(timed(lambda: search(30, back, text=q))[1][0])  # noqa: B023
            like_sql = sql.replace(match, "t.content ILIKE %(like)s")
            rows, (s,) = timed(lambda: raw_execute(engine, like_sql, {**params, "like": f"%{q}%"}))  # noqa: B023
            like_s.append(s)
        baseline[q] = (median(fts_s), median(like_s))
    log(f"  ILIKE baseline: {baseline}")

    # two changes proposed in the report, measured on the same data: a bounded date-ordered probe
    # before the GIN query, and the snippet query with the main query's date bound
    proposals = {}
    for q in PROPOSAL_QUERIES:
        sql, params = capture.main_query(lambda: search(30, 0, text=q))  # noqa: B023
        snippet_sql, snippet_params = capture.main_query(lambda: search(30, 0, text=q), "DISTINCT ON (call_id)")  # noqa: B023
        bounded = snippet_sql.replace(" ORDER BY call_id", f" AND {DATE_BOUND} ORDER BY call_id")
        both = {**snippet_params, "start": params["start"], "end": params["end"]}
        probe_params = {"start": params["start"], "end": params["end"], "q": q, "probe": PROBE_CALLS}
        timings = {}
        for name, stmt, prm in (
            ("page", sql, params),
            ("probe", PROBE_SQL, probe_params),
            ("snippet", snippet_sql, snippet_params),
            ("snippet_bounded", bounded, both),
        ):
            rows, seconds = timed(lambda: raw_execute(engine, stmt, prm), 3)  # noqa: B023
            timings[name] = median(seconds)
            timings[f"{name}_rows"] = len(rows)
        proposals[q] = timings
    log(f"  proposals: {proposals}")

    # the third proposal: expression indexes matching the journal's ORDER BY for cost and quality
    def sorted_pages() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for label, days, kw in FILTERS:
            if kw.get("sort") not in SORT_INDEXES:
                continue
            for back in WINDOW_ENDS:
                page, (s,) = timed(lambda: search(days, back, **kw))  # noqa: B023
                _, (s2,) = timed(lambda: search(days, back, after=page.next_cursor, **kw))  # noqa: B023
                out.setdefault(label, []).extend([s, s2])
        return out

    sort_before = sorted_pages()
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name, expr in SORT_INDEXES.items():
            conn.exec_driver_sql(f"CREATE INDEX bench_sort_{name}_idx ON calls (({expr}), started_at, id)")
        conn.exec_driver_sql("ANALYZE calls")
    index_s = time.perf_counter() - t0
    sort_after = sorted_pages()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in SORT_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX bench_sort_{name}_idx")
        conn.exec_driver_sql("ANALYZE calls")
    proposals["sort indexes"] = {"before": sort_before, "after": sort_after, "build_s": index_s}

    recall = measure_recall(engine)
    plans = {}
    for name, kw in (
        ("rare word «Potenza», 30 days", {"text": "Potenza"}),
        ("common word «шини», 30 days", {"text": "шини"}),
        ("two frequent, correlated words «Новою поштою», 30 days", {"text": "Новою поштою"}),
        ("filters: most expensive first, 30 days", {"sort": "cost"}),
        ("filters: quality < 0.6, worst first, 30 days", {"quality_below": 0.6, "sort": "quality",
                                                          "descending": False}),
    ):  # fmt: skip
        sql, params = capture.main_query(lambda: search(30, 0, **kw))  # noqa: B023
        plans[name] = explain(engine, sql, params)
    sql, params = capture.main_query(lambda: search(30, 0, text="Potenza"))
    plans["baseline: ILIKE '%Potenza%', 30 days"] = explain(
        engine, sql.replace(match, "t.content ILIKE %(like)s"), {**params, "like": "%Potenza%"}
    )
    engine.dispose()
    return {
        "by_class": dict(by_class),
        "repeats": repeats,
        "loadavg": (load_before, loadavg()),
        "by_query": dict(by_query),
        "found": found,
        "searches": searches,
        "prefix": prefix,
        "baseline": baseline,
        "recall": recall,
        "plans": plans,
        "proposals": proposals,
    }


RECALL_SQL = """
SELECT DISTINCT t.call_id FROM call_turns t JOIN calls c ON c.id = t.call_id
WHERE c.started_at >= %(start)s AND c.started_at < %(end)s
  AND t.created_at >= %(start)s - interval '1 hour' AND t.created_at < %(end)s + interval '7 hours'
  AND {match}
"""
EXAMPLE_SQL = """
SELECT t.content FROM call_turns t
WHERE t.call_id = ANY(%(ids)s) AND {match} ORDER BY t.call_id, t.turn_number LIMIT 1
"""


def measure_recall(engine) -> dict:
    """Calls found by the full-text search vs ILIKE '%word%' vs the whole word (``~* '\\mword\\M'``),
    over 30 days, with an example turn for each kind of difference."""
    from ccanalytics import timeutil

    first, last = _window(30, 0)
    start, end = timeutil.period_bounds(first, last, TZ)
    matches = {
        "fts": "t.search_tsv @@ cca_search_query(%(q)s)",
        "ilike": "t.content ILIKE %(like)s",
        "word": "t.content ~* %(re)s",
    }
    out = {}
    for word in RECALL_WORDS:
        params = {"start": start, "end": end, "q": word, "like": f"%{word}%", "re": rf"\m{word}\M"}
        sets = {k: {r[0] for r in raw_execute(engine, RECALL_SQL.format(match=m), params)} for k, m in matches.items()}
        examples = {}
        for a, b in (("fts", "ilike"), ("ilike", "fts"), ("word", "fts")):
            only = sorted(sets[a] - sets[b])[:50]
            if only:
                rows = raw_execute(
                    engine,
                    EXAMPLE_SQL.format(match=f"{matches[a]} AND NOT ({matches[b]})"),
                    {**params, "ids": only},
                )
                examples[f"{a}-{b}"] = rows[0][0] if rows else None
        out[word] = {
            "fts": len(sets["fts"]),
            "ilike": len(sets["ilike"]),
            "word": len(sets["word"]),
            "fts_not_ilike": len(sets["fts"] - sets["ilike"]),
            "ilike_not_fts": len(sets["ilike"] - sets["fts"]),
            "word_not_fts": len(sets["word"] - sets["fts"]),
            "examples": examples,
        }
    return out


# ------------------------------------------------------------------------------ the app under load
SERVER_CHILD = """
import logging, sys, threading
from datetime import timedelta
from waitress.server import create_server
from ccanalytics.database import create_engine
from ccanalytics.logs import setup
from webapp import create_app
setup(logging.INFO)  # one JSON access-log line per request, as `ccanalytics serve` (to a file here)
engine = create_engine(sys.argv[1], application_name="ccanalytics-admin")
app = create_app({"ENGINE": engine, "SECRET_KEY": sys.argv[2], "SESSION_COOKIE_SECURE": False,
                  "PERMANENT_SESSION_LIFETIME": timedelta(hours=8), "LOGIN_MAX_FAILURES": 5, "TRUSTED_PROXIES": 0})
server = create_server(app, host="127.0.0.1", port=0, threads=8, ident="ccanalytics")
print(server.effective_port, flush=True)
threading.Thread(target=server.run, daemon=True).start()
sys.stdin.read()  # until the benchmark closes our stdin
status = open("/proc/self/status").read()
print(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM")), flush=True)
"""
USER, PASSWORD = "bench", "bench journal password 1"
DETAIL_SHARE = 0.4  # of the requests not following a next-page link


class Client:
    """One keep-alive HTTP/1.1 connection with the session cookie."""

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
            self.conn.close()  # reconnect on the next request
            raise
        for name, value in res.getheaders():
            if name.lower() == "set-cookie" and value.startswith("cca_session="):
                self.cookie = value.split(";", 1)[0]
        return res.status, text


def log_in(port: int) -> str:
    import re
    import urllib.parse

    client = Client(port)
    status, page = client.request("GET", "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": USER, "password": PASSWORD, "csrf_token": token, "next": "/calls"})
    status, _ = client.request("POST", "/login", form)
    assert status in (302, 303), status
    status, page = client.request("GET", "/calls")
    assert status == 200 and "Следующая страница" in page, status
    return client.cookie


def journal_paths(ids: list[str]) -> list[tuple[str, str, float]]:
    """(kind, path, weight) of the requests the clients choose from."""
    import urllib.parse

    def q(days: int, back: int, **kw) -> str:
        first, last = _window(days, back)
        return "/calls?" + urllib.parse.urlencode({"from": first.isoformat(), "to": last.isoformat(), **kw})

    paths = []
    for back in (0, 30, 180, 360):
        paths += [
            ("journal", q(7, back), 3),
            ("journal", q(30, back, scenario="tire_search"), 1),
            ("journal", q(30, back, transferred="yes"), 1),
            ("journal", q(30, back, quality_below="0.6", sort="quality", order="asc"), 1),
            ("journal", q(30, back, sort="cost"), 1),
            ("journal", q(7, back, review="new"), 1),
            ("journal", q(30, back, scenario="consultation", transferred="no", sort="duration"), 1),
        ]
        for _, text in SEARCHES:
            paths.append(("search", q(30, back, q=text), 0.5))
    pages = sum(w for _, _, w in paths)
    paths += [("detail", f"/calls/{i}", pages * DETAIL_SHARE / (1 - DETAIL_SHARE) / len(ids)) for i in ids]
    return paths


def load_test(port: int, cookie: str, ids: list[str], seconds: float, clients: int = 50) -> dict:
    """``clients`` threads, each with its own keep-alive connection, for ``seconds``: journal pages
    (filters, searches), their next pages, and call details."""
    import html
    import random
    import re
    import threading

    paths = journal_paths(ids)
    weights = [w for _, _, w in paths]
    results: list[tuple[str, int, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    start_gate = threading.Barrier(clients + 1)

    def worker(n: int) -> None:
        rng = random.Random(n)
        client = Client(port, cookie)
        mine, next_page = [], None
        start_gate.wait()
        while time.perf_counter() < deadline:
            if next_page and rng.random() < 0.5:
                kind, path = "next page", next_page
            else:
                kind, path, _ = rng.choices(paths, weights)[0]
            next_page = None
            t0 = time.perf_counter()
            try:
                status, text = client.request("GET", path)
            except Exception as exc:  # noqa: BLE001 — counted as an error
                status, text = 0, repr(exc)
            mine.append((kind, status, time.perf_counter() - t0))
            if status != 200:
                with lock:
                    errors.append(f"{status} {path[:80]}: {text[:200]}")
            elif kind != "detail":
                m = re.search(r'href="(/calls\?[^"]*after=[^"]*)"', text)
                next_page = html.unescape(m.group(1)) if m else None
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"results": results, "errors": errors, "elapsed": elapsed, "clients": clients}


def measure_http(url: str, seconds: float, log=print) -> dict:
    """Serve the app in a child process (waitress, 8 threads), log in, time the pages one at a time,
    then run the load test. Returns timings, errors and the server's peak RSS."""
    import secrets
    import subprocess
    import sys
    import tempfile

    from common import ROOT

    from ccanalytics import auth
    from ccanalytics.database import create_engine

    engine = create_engine(url)
    auth.add_user(engine, USER, PASSWORD, "analyst")
    ids = [r[0] for r in raw_execute(engine, "SELECT id::text FROM calls ORDER BY md5(id::text) LIMIT 500")]
    # the detail page's parts in process: the queries, and the latency chart it draws (matplotlib PNG)
    from ccanalytics import charts, journal

    journal.call_detail(engine, ids[0], tz=TZ)
    parts: dict[str, list[float]] = {"call_detail()": [], "latency chart (PNG)": []}
    for call_id in ids[:30]:
        data, (s,) = timed(lambda: journal.call_detail(engine, call_id, tz=TZ))  # noqa: B023
        parts["call_detail()"].append(s)
        parts["latency chart (PNG)"].append(timed(lambda: charts.turn_latency(data["turns"]).to_html())[1][0])  # noqa: B023
    engine.dispose()
    log_file = tempfile.NamedTemporaryFile(prefix="cca-bench-server-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_CHILD, url, secrets.token_hex(32)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        cwd=ROOT,
    )
    try:
        port = int(server.stdout.readline())
        cookie = log_in(port)
        client = Client(port, cookie)
        single: dict[str, list[float]] = {"journal": [], "search": [], "detail": []}
        for kind, path, _ in journal_paths(ids[:60]):
            if kind == "journal" or (kind == "search" and "2026-11-23" in path) or kind == "detail":
                t0 = time.perf_counter()
                status, _ = client.request("GET", path)
                single[kind].append(time.perf_counter() - t0)
                assert status == 200, (status, path)
        log("  single-client pages done; load test …")
        load_before = loadavg()
        load = load_test(port, cookie, ids, seconds)
        load["loadavg"] = (load_before, loadavg())
    finally:
        out, _ = server.communicate("", timeout=120)
        log_file.close()
    peak_mib = int(out.split()[-1]) // 1024
    import json
    import os
    import re
    from collections import Counter

    server_ms, problems = [], Counter()
    with open(log_file.name, encoding="utf-8", errors="replace") as f:
        for line in f:
            entry = json.loads(line) if line.startswith("{") else {"level": "error", "message": line.strip()}
            if entry.get("logger") == "webapp.access" and "ms" in entry:
                server_ms.append(entry["ms"])
            if entry.get("level") in ("warning", "error", "critical"):
                problems[f"{entry.get('logger')}: {re.sub(r'[0-9.]+', 'N', str(entry.get('message')))[:120]}"] += 1
    os.unlink(log_file.name)
    n = len(load["results"])  # the access log's last lines are the load test's requests
    return {
        "single": single,
        "parts": parts,
        "load": load,
        "peak_mib": peak_mib,
        "server_ms": server_ms[-n:],
        "log_problems": problems,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(quick: bool = False) -> None:
    per_day, target, seconds = (400, 100_000, 10) if quick else (2000, 1_000_000, 60)
    t0 = time.perf_counter()
    with fresh_server() as make_db:
        url = make_db("bench_journal")
        info = build(url, per_day, target)
        log = lambda msg: print(msg, flush=True)  # noqa: E731
        log("queries …")
        q = measure_queries(url, info, log)
        log("the app over HTTP …")
        h = measure_http(url, seconds, log)
    total = time.perf_counter() - t0
    body = report(info, q, h, quick, total)
    command = "make bench BENCH=journal" + (" (--quick)" if quick else "")
    write_section("journal", command, body)
    print(body)
    print("\n\n".join(f"-- {name}\n{plan}" for name, plan in q["plans"].items()))


SEARCH_CLASSES = ("rare word", "common word", "several words", "Russian form", "order number",
                  "common word, page 2", "word + filters, 7 days")  # fmt: skip


def plan_outline(plan: str) -> str:
    """'Limit → Nested Loop Semi Join → …' from an EXPLAIN text, partitions folded into their parent."""
    import re

    nodes = []
    for line in plan.splitlines():
        m = re.match(r"\s*(?:->\s+)?([A-Z][A-Za-z ]+?)(?: using (\S+))?(?: on (\S+)(?: \w+)?)?\s+\(", line)
        if not m or not (line.lstrip().startswith("->") or not nodes):
            continue
        name, index, table = m.groups()
        target = re.sub(r"_\d{4}_\d{2}", "", index or table or "")
        label = f"{name.strip()} ({target})" if target else name.strip()
        if label not in nodes:
            nodes.append(label)
    return " → ".join(nodes)


def plan_numbers(plan: str) -> str:
    import re

    exec_ms = re.search(r"Execution Time: ([\d.]+)", plan)
    buffers = re.search(r"Buffers: ([^\n]+)", plan)
    return f"{float(exec_ms.group(1)):.1f} ms, buffers {buffers.group(1) if buffers else '—'}"


def report(info: dict, q: dict, h: dict, quick: bool, total: float) -> str:
    verdict = lambda ok: "**met**" if ok else "**NOT met**"  # noqa: E731
    c, sec = info["counts"], info["seconds"]
    days = (END_DATE - info["first"]).days + 1
    by_class, repeats = q["by_class"], q["repeats"]
    filt = by_class["filters, first page"] + by_class["filters, next pages (2–5)"]
    filt_rep = repeats["filters, first page"] + repeats["filters, next pages (2–5)"]
    search_all = [v for k in SEARCH_CLASSES for v in by_class.get(k, [])]
    search_rep = [v for k in SEARCH_CLASSES for v in repeats.get(k, [])]
    filt_p95, search_p95 = p95(filt) * 1000, p95(search_all) * 1000
    min_ratio = min(like / fts for fts, like in q["baseline"].values())
    load = h["load"]
    res = load["results"]
    lat = [s * 1000 for _, _, s in res]
    whole_word_ok = all(r["word_not_fts"] == 0 for r in q["recall"].values())
    slowest = sorted(q["by_query"].items(), key=lambda kv: -median(kv[1]))[:6]

    lines = [
        "## Journal: filters, full-text search, 50 concurrent clients",
        "",
        f"Data (loaded with the bulk loader): {SEED_DAYS} days × {info['per_day']:,} generated calls/day ending "
        f"{END_DATE} ({info['seed_calls']:,} calls, {info['seed_turns']:,} turns) went through `ingest_records` "
        f"(validation, COPY; {sec['ingest']:.0f} s); their per-call metrics were derived and the rules judge "
        f"scored them (quality scores, review items; {sec['derive']:.0f} s). That seed was replicated in SQL "
        f"{info['copies']} times with new ids (`md5(id || k)`) and stamps {SEED_DAYS}·k days earlier, into "
        f"partitions made by `partitions.ensure_months`: **{c['calls']:,} calls, {c['call_turns']:,} turns**, "
        f"{c['call_tool_calls']:,} tool calls, {c['review_items']:,} review items over {days} days "
        f"({info['first']} … {END_DATE}). `search_tsv` is a generated column, so every `INSERT … SELECT` "
        f"computed it; the GIN index was dropped for the copy and rebuilt after it ({sec['replicate']:.0f} s "
        f"copy on 2 connections, {sec['gin']:.0f} s GIN build, {sec['vacuum']:.0f} s VACUUM ANALYZE). Database "
        f"{c['db_bytes'] / 2**30:.1f} GiB, GIN index {int(c['gin_bytes']) / 2**20:.0f} MiB. Every seed dialogue "
        f"recurs every {SEED_DAYS} days, so a word's frequency is the seed's and an order number is in "
        f"{30 // SEED_DAYS} calls of any 30-day window. Embedded PostgreSQL 16, default settings "
        f"(shared_buffers 128 MB). The 2 cores were shared with other test runs: load average "
        f"{q['loadavg'][0]}–{q['loadavg'][1]} during the queries, {load['loadavg'][0]}–{load['loadavg'][1]} "
        "during the load test.",
        "",
        "### `journal.search()` latency (in process)",
        "",
        f"Each query ran over windows ending 0, 180 and 360 days before {END_DATE}, in two rounds (the first "
        "touches each window for the first time); searches use a 30-day window (the date bound is always part "
        "of the query), first page of 50 unless stated. Filter queries: "
        + "; ".join(label for label, _, _ in FILTERS)
        + ". Searches: "
        + ", ".join(f"{t} ({q['found'].get(t, '?')})" for _, t in q["searches"])
        + " — in brackets the rows on the first page of the newest window (+: more pages).",
        "",
        "| query class | samples | p50 ms | p95 ms | max ms | p95 of the 2nd round ms |",
        "|---|---:|---:|---:|---:|---:|",
        classes(by_class, repeats),
        "",
        f"Target: journal page with filters p95 < 100 ms — {verdict(filt_p95 < 100)}: {filt_p95:.0f} ms over "
        f"first and next pages ({p95(filt_rep) * 1000:.0f} ms in the second round). Target: full-text search "
        f"p95 < 150 ms over the mix — {verdict(search_p95 < 150)}: {search_p95:.0f} ms over {len(search_all)} "
        f"searches ({p95(search_rep) * 1000:.0f} ms in the second round). Slowest queries (median of 6 / max): "
        + "; ".join(f"{name} {median(v) * 1000:.0f} / {max(v) * 1000:.0f} ms" for name, v in slowest)
        + ".",
        "",
        "Word prefixes are **not supported**: `cca_search_query` is `websearch_to_tsquery`, which has no "
        "prefix operator (`шиномонт*` is read as the word `шиномонт`); stemming covers inflected forms "
        "instead. "
        + "; ".join(
            f"«{p}»: {n} calls found ({s * 1000:.0f} ms), ILIKE finds {like:,}"
            for p, (n, s, like) in q["prefix"].items()
        )
        + ".",
        "",
        "### Rare words against an `ILIKE '%term%'` scan (same query, same 30-day bound, same run)",
        "",
        "The baseline is the journal's own page query with `t.search_tsv @@ cca_search_query(:q)` replaced by "
        "`t.content ILIKE '%term%'`; the full-text time is the whole `search()` call (with its snippet query). "
        "Medians of 3 (windows ending 0, 0 and 180 days back).",
        "",
        "| word | calls in 30 days | full-text ms | ILIKE ms | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for w, (fts, like) in q["baseline"].items():
        calls = q["recall"].get(w, {}).get("fts", "—")
        lines.append(f"| {w} | {calls} | {fts * 1000:.1f} | {like * 1000:.0f} | **{like / fts:.0f}×** |")
    lines += [
        "",
        f"Target ≥ 20× on rare terms — {verdict(min_ratio >= 20)}: at least {min_ratio:.0f}×.",
        "",
        "### Recall: calls found over 30 days",
        "",
        "FTS: the journal's match; ILIKE: `content ILIKE '%word%'`; whole word: `content ~* '\\mword\\M'`. "
        "Every call the whole word is in must be found by the search (last count column).",
        "",
        "| word | FTS | ILIKE | whole word | FTS not ILIKE | ILIKE not FTS | whole word not FTS | example of a difference |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w, r in q["recall"].items():
        ex = next(iter(r["examples"].items()), None)
        example = f"{ex[0]}: «{ex[1][:90]}»" if ex and ex[1] else ""
        lines.append(
            f"| {w} | {r['fts']:,} | {r['ilike']:,} | {r['word']:,} | {r['fts_not_ilike']:,} | "
            f"{r['ilike_not_fts']:,} | {r['word_not_fts']:,} | {example} |"
        )
    lines += [
        "",
        f"Whole-word recall — {verdict(whole_word_ok)}: "
        + ("the search found every call the whole word is in. " if whole_word_ok else "some calls were missed. ")
        + "Where it finds more than ILIKE, the extra calls contain another inflection of the word (stemming: "
        "«Ужгороді» also finds «Ужгород», «доставка» also «доставки»), which is intended.",
        "",
        "### Plans (EXPLAIN (ANALYZE, BUFFERS), 30 days, newest window)",
        "",
    ]
    for name, plan in q["plans"].items():
        lines.append(f"- {name}: {plan_numbers(plan)}; {plan_outline(plan)}")
    pr = q["proposals"]
    lines += [
        "",
        "Frequent single words take the date-ordered nested loop and stop once the page is full. Words the "
        "planner believes rare but are not (two correlated words such as «Новою поштою», whose selectivities it "
        "multiplies; mid-frequency words such as «Киеве») take the GIN path instead: every matching turn of the "
        "window is fetched, grouped into calls, every one of those calls is looked up and all of them sorted "
        "to return 50. The snippet query has no date bound and visits every monthly partition. Both changes "
        f"proposed for `journal.search`, measured on the same data (median of 3, ms): a probe of the first "
        f"{PROBE_CALLS} calls of the page order, each tested through its own turns "
        "(`LATERAL (SELECT bool_or(search_tsv @@ q) … WHERE call_id = c.id)`), with the GIN query only when the "
        "probe does not fill the page; and the snippet query with the page query's `created_at` bound.",
        "",
        "| search | page query now | probe (rows found) | snippet query now | snippet with the date bound |",
        "|---|---:|---:|---:|---:|",
    ]
    for word, t in pr.items():
        if word == "sort indexes":
            continue
        lines.append(
            f"| {word} | {t['page'] * 1000:.1f} | {t['probe'] * 1000:.1f} ({t['probe_rows']}) | "
            f"{t['snippet'] * 1000:.1f} | {t['snippet_bounded'] * 1000:.1f} |"
        )
    si = pr["sort indexes"]
    lines += [
        "",
        "Sorting by cost or quality reads every call of the window: no index matches the journal's "
        "`ORDER BY coalesce(c.total_cost_usd, -1)` / `coalesce(c.quality_score, -1)` (`calls_quality_idx` is "
        "on the bare column). With the proposed `CREATE INDEX ON calls ((coalesce(total_cost_usd, -1)), "
        "started_at, id)` and the same for `quality_score` (built here in "
        f"{si['build_s']:.0f} s for both, then dropped again), first and second pages over the three windows "
        "(ms, median / max of 6):",
        "",
        "| query | now | with the index |",
        "|---|---:|---:|",
    ]
    for label, before in si["before"].items():
        after = si["after"][label]
        lines.append(
            f"| {label} | {median(before) * 1000:.0f} / {max(before) * 1000:.0f} | "
            f"{median(after) * 1000:.0f} / {max(after) * 1000:.0f} |"
        )
    single = h["single"]
    lines += [
        "",
        "### The app over HTTP",
        "",
        "`webapp.create_app` served by waitress (`create_server(…, threads=8)`, engine pool 5 + 5) in a child "
        "process with JSON access logging to a file, one user logged in through `POST /login` with the form's "
        "CSRF token, whose session cookie every client sends. One client, one page at a time (rendering "
        "included), then the parts of a detail page in process:",
        "",
        "| page | requests | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        classes({f"/calls, {k}" if k != "detail" else "/calls/<id>": v for k, v in single.items()}),
        classes({f"detail page part: {k}": v for k, v in h["parts"].items()}),
        "",
        f"Load: {load['clients']} client threads, each with its own keep-alive connection, for "
        f"{load['elapsed']:.0f} s (the last requests finish after the {'10' if quick else '60'} s), choosing "
        "among journal pages (7/30-day windows at four ages, filters, sorts), searches "
        f"({len(SEARCHES)} terms), the next page of the page just read (half the time) and details of 500 "
        f"calls spread over the whole history ({DETAIL_SHARE:.0%} of the other picks).",
        "",
        "| requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in ["all", *sorted({k for k, _, _ in res})]:
        vals = lat if kind == "all" else [s * 1000 for k, _, s in res if k == kind]
        lines.append(
            f"| {kind}: {len(vals):,} | {median(vals):.0f} | **{pct(vals, 0.95):.0f}** | {pct(vals, 0.99):.0f} | "
            f"{max(vals):.0f} |"
        )
    errors = load["errors"]
    lines += [
        "",
        f"Throughput {len(res) / load['elapsed']:.1f} requests/s; errors: **{len(errors)}**"
        + (f" (first: {errors[0][:200]})" if errors else "")
        + f" — target zero errors {verdict(not errors)}. Peak RSS of the server process: {h['peak_mib']} MiB. "
        f"Warnings in its log: {sum(h['log_problems'].values())}"
        + "".join(f"; {n} × «{m}»" for m, n in h["log_problems"].most_common(3))
        + f". Time inside the app (the access log's duration) p50 {median(h['server_ms']):.0f} ms, "
        f"p95 {pct(h['server_ms'], 0.95):.0f} ms; the rest of the clients' latency is waiting for one of the 8 "
        "threads. The detail page draws its latency chart with matplotlib on every request (the PNG row "
        "above), which holds the GIL: that, not the database, bounds the throughput.",
        "",
        f"Whole benchmark: {total / 60:.1f} min.",
    ]
    return "\n".join(lines)
