"""Journal benchmarks (issues 8 and 22): the call journal with filters, transcript search and 50
concurrent clients on the real app, over 1M calls / ~11M turns, on the call processor's schema.

Data: a seed of SEED_DAYS generated days ending yesterday (by the one clock, so the benchmark runs on
any day and the journal's default window holds data) is ingested with the bulk loader (validation,
COPY), its per-call metrics derived and its calls scored by the rules judge (call_scores, review
items), then replicated in SQL with new uuids (``md5(id || k)``) and stamps shifted by SEED_DAYS days
per copy, so the history is continuous. The GIN indexes of call_turns are rebuilt once after the load
(what a bulk load of history does). VACUUM ANALYZE at the end.

Transcript search is measured where it matters: rare words, frequent words and phrases over the
journal's default window (7 days) and its widest (it sets no limit: the whole history), through the
shipped plan, the GIN plan alone and the probe-first plan alone. Baselines, measured in the same run:
the journal's GIN page query with ``content ILIKE '%text%'`` instead of the tsvector match (same join,
same date bound), and for recall the calls a case-insensitive whole-word regular expression finds.

The app is served by waitress in a child process (its peak RSS is read from /proc at the end) and
driven by 50 client threads with keep-alive connections and one logged-in session. The goals are
checked after the section is written, at full size only (--quick reports without failing).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import date, timedelta

from common import Client, check_goals, fresh_server, last_day, median, p95, timed, write_section
from common import log_in as common_log_in

END_DATE = last_day()  # yesterday by the one clock: the data always ends inside the journal's default window
SEED_DAYS = 5
TZ = "Europe/Kyiv"

# the seed is copied into temporary tables first, so each batch of copies reads only the seed
SEED_SOURCE = "seed_{table}"


def replicate(engine, copies: int, progress, sessions: int = 2, step: int = 5) -> None:
    """Insert copies 1…``copies`` of the seed, ``step`` copies per transaction, on ``sessions``
    connections at once (each with its own temporary copy of the seed, taken before any insert)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import sqlalchemy as sa
    from common import REPLICA_TABLES, replica_statements

    with engine.connect() as conn:
        statements = replica_statements(conn, SEED_DAYS, source=SEED_SOURCE)
    chunks = [(k0, min(copies, k0 + step - 1)) for k0 in range(1, copies + 1, step)]
    seeded = threading.Barrier(sessions)

    def work(mine: list[tuple[int, int]]) -> None:
        with engine.connect() as conn:
            for table, _, _ in REPLICA_TABLES:
                seed = (
                    f"CREATE TEMP TABLE {SEED_SOURCE.format(table=table)} "  # noqa: S608 — REPLICA_TABLES constants
                    f"AS SELECT * FROM {table}"
                )
                conn.execute(sa.text(seed))
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
    from common import ensure_months

    from ccanalytics import quality
    from ccanalytics.analytics import metrics
    from ccanalytics.db.engine import create_engine
    from ccanalytics.db.migrate import migrate
    from ccanalytics.demo.generator import generate_calls
    from ccanalytics.demo.load import ensure_demo_tenants
    from ccanalytics.ingest.load import ingest_records

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
    ensure_months(engine, first, END_DATE + timedelta(days=1))
    with engine.begin() as conn:
        # the GIN indexes of call_turns (ccanalytics's cca_search_vector one and the processor's own
        # 'simple' one) are dropped for the copy and rebuilt after it, as a bulk load of history does
        gin = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'call_turns' "
                "AND schemaname = current_schema() AND indexdef LIKE '%USING gin%'"
            )
        ).all()
        for name, _ in gin:
            conn.execute(sa.text(f"DROP INDEX {name}"))
    replicate(engine, copies, lambda k1: log(f"  copies up to {k1}: {time.perf_counter() - t0:.0f} s"))
    seconds["replicate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        for _, definition in gin:  # on the partitioned table, so every partition gets its index
            conn.execute(sa.text(definition.replace(" ON ONLY ", " ON ")))
        seconds["gin"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute(sa.text("VACUUM ANALYZE"))
        seconds["vacuum"] = time.perf_counter() - t0
        counts = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608 — t: fixed table names
            for t in ("calls", "call_turns", "call_tool_calls", "review_items")
        }
        counts["db_bytes"] = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
        counts["gin_bytes"] = conn.execute(
            sa.text(
                "SELECT sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i "
                "WHERE i.inhparent = 'cca_call_turns_search_idx'::regclass"
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
# transcript search: (class, query); order numbers are added from the data. Rare words are in a few
# calls of any window (seed calls recur every SEED_DAYS days), frequent words in most calls, phrases
# are several words (two frequent, correlated ones among them) or a quoted phrase.
SEARCHES = [
    ("rare word", "хмільницький"),  # an STT misrecognition of Хмельницький
    ("rare word", "крапивницький"),
    ("rare word", "знижка"),  # prompt-injection attempts
    ("rare word", "інструкції"),
    ("rare word", "мотодор"),
    ("rare word", "Potenza"),
    ("frequent word", "шини"),
    ("frequent word", "замовлення"),
    ("frequent word", "гривень"),
    ("frequent word", "доставка"),
    ("phrase", "Nokian Hakkapeliitta"),
    ("phrase", "Новою поштою"),
    ("phrase", '"Hakkapeliitta R5"'),
    ("phrase", "зимові шини Київ"),
    ("phrase", "шиномонтаж -Київ"),
    ("Russian form", "шины"),
    ("Russian form", "колёса"),
    ("Russian form", "Киеве"),
    ("Russian form", "Мишлен"),
    ("Russian form", "Ужгороде"),
    # every word somewhere in the call, not necessarily in one turn (issue 19)
    ("words across turns", "зимові шини Michelin"),
    ("words across turns", "Potenza доставка"),
    ("words across turns", "шиномонтаж замовлення гривень"),
    ("prefix", "шиномонт*"),
    ("prefix", "Hakkap*"),
]
# classes compared with the ILIKE baseline and across the two plans
COMPARED = ("rare word", "frequent word", "phrase")
# word prefixes (``prefix*``), compared with ILIKE '%prefix%' over 30 days
PREFIXES = ["Hakkap", "шиномонт", "Ужгор"]
# whole words whose calls are compared with ILIKE and a whole-word regular expression
RECALL_WORDS = ["хмільницький", "крапивницький", "знижка", "Potenza", "інструкції", "мотодор", "Ужгороді", "Hankook", "доставка",
                "пам'ятаю"]  # fmt: skip
WINDOW_ENDS = (0, 180, 360)  # the filter pages over windows ending this many days before END_DATE
DEFAULT_WINDOW, WIDEST_WINDOW = "default (7 days)", "widest (whole history)"
MATCH = "cca_search_vector(t.content) @@ cca_search_query(%(q)s)"  # the journal's match, as psycopg sees it


class Capture:
    """Remembers the SQL statements an engine runs (to EXPLAIN or rewrite the journal's own queries)."""

    def __init__(self, engine):
        import sqlalchemy as sa

        self.statements: list[tuple[str, dict]] = []
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.statements.append((statement, dict(parameters or {})))

    def all(self, fn) -> list[tuple[str, dict]]:
        self.statements.clear()
        self.on = True
        try:
            fn()
        finally:
            self.on = False
        return list(self.statements)


@contextmanager
def search_plan(plan: str = "shipped"):
    """Run journal.search through one plan: "shipped" (as it is), "gin" (the GIN plan over the whole
    window, no probe, no slices) or "probe" (the probe first, then the GIN plan over the window: the
    plan before issue 22)."""
    from ccanalytics.analytics import journalsearch

    names = ("PROBE_CALLS", "RARE_TURNS", "SLICE_DAYS")
    saved = {n: getattr(journalsearch, n) for n in names}
    values = {"shipped": {}, "gin": {"PROBE_CALLS": 0, "SLICE_DAYS": 0}, "probe": {"RARE_TURNS": 0, "SLICE_DAYS": 0}}
    for name, value in values[plan].items():
        setattr(journalsearch, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(journalsearch, name, value)


def gin_page_query(capture: Capture, fn) -> tuple[str, dict]:
    """The GIN page query ``fn``'s search runs when the probe is off (the statement the ILIKE baseline
    rewrites)."""
    with search_plan("gin"):
        return next((s, p) for s, p in capture.all(fn) if "AS matched" in s)


def ilike_query(sql: str) -> str:
    """The GIN page query with its matching calls (the turns each term matches through the index,
    grouped by call) replaced by the calls with a turn ``t.content ILIKE %(like)s`` (same window)."""
    import re

    from ccanalytics.analytics.journalsearch import _SNIPPET

    like = (
        "AS matched FROM (SELECT t.call_id, "  # noqa: S608 — _SNIPPET is journalsearch.py's constant; values are bound
        f"min(t.created_at) AS at, {_SNIPPET} FROM call_turns t "
        "WHERE t.content ILIKE %(like)s "
        "AND t.created_at >= CAST(%(start)s AS timestamptz) - interval '1 hour' "
        "AND t.created_at < CAST(%(end)s AS timestamptz) + interval '7 hours' GROUP BY t.call_id) m CROSS JOIN LATERAL"
    )
    return re.sub(r"AS matched FROM \(.*?\) m CROSS JOIN LATERAL", lambda _: like, sql, count=1, flags=re.S)


def raw_execute(engine, sql: str, params: dict | None = None) -> list[tuple]:
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.execute(sql, params or {})
        rows = cur.fetchall() if cur.description else []
        conn.rollback()
    return rows


def explain(engine, sql: str, params: dict, setup: tuple[str, ...] = ()) -> str:
    """EXPLAIN ANALYZE of a statement, after the ``setup`` statements (SET LOCAL …) its search ran."""
    with engine.connect() as conn:
        cur = conn.connection.driver_connection
        for statement in setup:
            cur.execute(statement)
        rows = cur.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql, params).fetchall()
        conn.rollback()
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


def _window(days: int, back: int) -> tuple[date, date]:
    last = END_DATE - timedelta(days=back)
    return last - timedelta(days=days - 1), last


def reference_numbers(engine) -> list[tuple[str, str]]:
    """Order and fitting numbers the bot said in the newest seed calls (every seed call recurs every
    SEED_DAYS days); the calls' own order and booking ids are uuids, not in the words."""
    seed_start = END_DATE - timedelta(days=SEED_DAYS + 1)
    rows = raw_execute(
        engine,
        "(SELECT substring(content FROM 'ORD-[0-9]+') FROM call_turns WHERE created_at >= %(s)s "
        "AND content ~ 'ORD-[0-9]+' LIMIT 3) UNION ALL (SELECT substring(content FROM 'FIT-[0-9]+') "
        "FROM call_turns WHERE created_at >= %(s)s AND content ~ 'FIT-[0-9]+' LIMIT 1)",
        {"s": seed_start},
    )
    return [("order number", r[0]) for r in rows]


def measured(fn, repeat: int = 3, slow: float = 1.0) -> float:
    """Median of ``repeat`` runs of ``fn``; one run when the first takes more than ``slow`` seconds."""
    _, seconds = timed(fn)
    if seconds[0] < slow:
        seconds += timed(fn, repeat - 1)[1]
    return median(seconds)


def measure_queries(url: str, info: dict, log=print) -> dict:
    """Latency of journal.search() (filters, pages, transcript search at the default and the widest
    window), the ILIKE baseline and the two plans on the same queries, recall, plans."""
    from collections import defaultdict

    from common import loadavg

    from ccanalytics.analytics import journal, journalsearch
    from ccanalytics.core import timeutil
    from ccanalytics.db.engine import create_engine

    engine = create_engine(url, application_name="bench-journal", statement_timeout_ms=0)
    capture = Capture(engine)
    searches = SEARCHES + reference_numbers(engine)
    by_class: dict[str, list[float]] = defaultdict(list)
    by_query: dict[str, list[float]] = defaultdict(list)
    load_before = loadavg()
    found: dict[tuple[str, str], str] = {}
    windows = {DEFAULT_WINDOW: {}, WIDEST_WINDOW: {"date_from": info["first"], "date_to": timeutil.today(TZ)}}

    def search(days: int, back: int, **kw):  # with the total, as the journal page asks for it
        first, last = _window(days, back)
        return journal.search(engine, date_from=first, date_to=last, tz=TZ, count=True, **kw)

    def text_search(window: str, q: str, **kw):  # the default window: no dates, as the journal page opens
        if "after" not in kw:  # a new search counts its terms (its next page reuses their counts)
            journalsearch.forget_probes()
        return journal.search(engine, tz=TZ, text=q, count=True, **windows[window], **kw)

    journal.search(engine, tz=TZ)  # connect the pool
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
                if page.prev_cursor:  # back one page, as the previous-page link does
                    _, (s,) = timed(lambda: search(days, back, before=page.prev_cursor, **kw))  # noqa: B023
                    by_class["filters, previous page"].append(s)
        for window in windows:
            for cls, q in searches:
                page, (s,) = timed(lambda: text_search(window, q))  # noqa: B023
                by_class[f"{cls}, {window}"].append(s)
                by_query[f"{q} ({window})"].append(s)
                found[(window, q)] = f"{len(page.rows)}{'+' if page.next_cursor else ''}"
                if cls == "frequent word" and page.next_cursor:
                    _, (s,) = timed(lambda: text_search(window, q, after=page.next_cursor))  # noqa: B023
                    by_class[f"frequent word, page 2, {window}"].append(s)
        for q, kw in (("шини", {"scenario": "tire_search"}), ("Nokian", {"transferred": True}),
                      ("Гуменюк", {"quality_below": 0.9}), ("замовлення", {"sort": "cost"})):  # fmt: skip
            _, (s,) = timed(lambda: text_search(DEFAULT_WINDOW, q, **kw))  # noqa: B023
            by_class[f"word + filters, {DEFAULT_WINDOW}"].append(s)
        if rep == 0:
            first_round = {k: len(v) for k, v in by_class.items()}
        log(f"  query round {rep + 1} done")
    repeats = {k: v[first_round.get(k, 0) :] for k, v in by_class.items()}
    prefix = {}
    start, end = timeutil.period_bounds(*_window(30, 0), TZ)
    for q in PREFIXES:
        page, seconds = timed(lambda: search(30, 0, text=q + "*"), 3)  # noqa: B023
        like = raw_execute(
            engine,
            RECALL_SQL.format(match="t.content ILIKE %(like)s"),
            {"start": start, "end": end, "like": f"%{q}%"},
        )
        prefix[q] = (page.total, median(seconds), len(like))
    load_mid = loadavg()

    # the same queries through each plan and through ILIKE: the journal's GIN page query with the match
    # replaced by ``t.content ILIKE '%text%'`` (same join, same date bound, same order and limit)
    compared: dict[tuple[str, str], dict] = {}
    for window in windows:
        for cls, q in searches:
            if cls not in COMPARED:
                continue
            sql, params = gin_page_query(capture, lambda: text_search(window, q))  # noqa: B023
            like_sql = ilike_query(sql)
            row = {"class": cls, "calls": None}
            row["shipped"] = measured(lambda: text_search(window, q))  # noqa: B023
            with search_plan("gin"):
                row["gin"] = measured(lambda: text_search(window, q))  # noqa: B023
            with search_plan("probe"):
                row["probe"] = measured(lambda: text_search(window, q))  # noqa: B023
            row["ilike"] = measured(lambda: raw_execute(engine, like_sql, {**params, "like": f"%{q}%"}))  # noqa: B023
            compared[(window, q)] = row
        log(f"  plans and ILIKE compared, {window}")
    for (window, q), row in compared.items():  # matching calls in the window (the rare ones only: cheap)
        if row["class"] == "rare word":
            s, e = timeutil.period_bounds(windows[window].get("date_from"), windows[window].get("date_to"), TZ,
                                          default_days=7)  # fmt: skip
            row["calls"] = len(raw_execute(engine, RECALL_SQL.format(match="cca_search_vector(t.content) @@ "
                                                                     "cca_search_query(%(q)s)"),
                                           {"start": s, "end": e, "q": q}))  # fmt: skip

    recall = measure_recall(engine)
    plans = {}
    for name, window, q in (
        ("rare word «Potenza»", WIDEST_WINDOW, "Potenza"),
        ("frequent word «шини»", WIDEST_WINDOW, "шини"),
        ("two frequent, correlated words «Новою поштою»", WIDEST_WINDOW, "Новою поштою"),
        ("rare word «Potenza»", DEFAULT_WINDOW, "Potenza"),
    ):
        statements = capture.all(lambda: text_search(window, q))  # noqa: B023
        setup = tuple(sql for sql, _ in statements if sql.startswith("SET "))
        for n, (sql, params) in enumerate([(s, p) for s, p in statements if not s.startswith("SET ")], 1):
            plans[f"{name}, {window}, statement {n}"] = explain(engine, sql, params, setup)
    sql, params = gin_page_query(capture, lambda: text_search(WIDEST_WINDOW, "Potenza"))
    plans[f"baseline: ILIKE '%Potenza%', {WIDEST_WINDOW}"] = explain(
        engine, ilike_query(sql), {**params, "like": "%Potenza%"}
    )
    engine.dispose()
    return {
        "by_class": dict(by_class),
        "repeats": repeats,
        "loadavg": (load_before, load_mid, loadavg()),
        "by_query": dict(by_query),
        "found": found,
        "searches": searches,
        "prefix": prefix,
        "compared": compared,
        "recall": recall,
        "plans": plans,
        "widest_days": (timeutil.today(TZ) - info["first"]).days + 1,
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
    from ccanalytics.core import timeutil

    first, last = _window(30, 0)
    start, end = timeutil.period_bounds(first, last, TZ)
    matches = {
        "fts": MATCH,
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
from ccanalytics.db.engine import create_engine
from ccanalytics.ops.logs import setup
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


def log_in(port: int) -> str:
    client = common_log_in(port, USER, PASSWORD)
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

    from common import ROOT, loadavg

    from ccanalytics.auth import users as auth
    from ccanalytics.db.engine import create_engine

    engine = create_engine(url)
    auth.add_user(engine, USER, PASSWORD, "analyst")
    ids = [r[0] for r in raw_execute(engine, "SELECT id::text FROM calls ORDER BY md5(id::text) LIMIT 500")]
    # the detail page's parts in process: the queries, and the latency chart it draws (matplotlib PNG)
    from ccanalytics.analytics import journal
    from ccanalytics.reports import charts

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
            if kind == "journal" or (kind == "search" and END_DATE.isoformat() in path) or kind == "detail":
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
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(quick: bool = False) -> None:
    per_day, target, seconds = (400, 100_000, 10) if quick else (2000, 1_000_000, 60)
    t0 = time.perf_counter()
    with fresh_server() as make_db:
        url = make_db("bench_journal")
        info = build(url, per_day, target)
        log = lambda msg: print(msg, flush=True)
        log("queries …")
        q = measure_queries(url, info, log)
        log("the app over HTTP …")
        h = measure_http(url, seconds, log)
    total = time.perf_counter() - t0
    body, goals = report(info, q, h, quick, total)
    command = "make bench BENCH=journal" + (" (--quick)" if quick else "")
    write_section("journal", command, body, load=f"{q['loadavg'][0]}–{max(q['loadavg'])} during the queries")
    print(body)
    print("\n\n".join(f"-- {name}\n{plan}" for name, plan in q["plans"].items()))
    if not quick:  # the goals are stated for 1M calls; a --quick run only reports
        check_goals("journal", goals)


def search_samples(by_class: dict[str, list[float]]) -> list[float]:
    """Every transcript search of the mix (both windows, every class)."""
    return [v for k, vals in by_class.items() if not k.startswith("filters") for v in vals]


def _total(total) -> str:
    if total is None:
        return "?"
    return {"exact": "", "estimate": "≈ ", "at_least": "more than "}[total.kind] + f"{total.value:,}"


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
        target = re.sub(r"^(call_turns|calls|call_tool_calls)_\d{4}_\d{2}_\w+$", r"\1 (partition index)", target)
        label = f"{name.strip()} ({target})" if target else name.strip()
        if label not in nodes:
            nodes.append(label)
    return " → ".join(nodes)


def plan_numbers(plan: str) -> str:
    import re

    exec_ms = re.search(r"Execution Time: ([\d.]+)", plan)
    buffers = re.search(r"Buffers: ([^\n]+)", plan)
    return f"{float(exec_ms.group(1)):.1f} ms, buffers {buffers.group(1) if buffers else '—'}"


def report(info: dict, q: dict, h: dict, quick: bool, total: float) -> tuple[str, list[tuple[str, bool]]]:
    """The section's text, and the goals with whether each was met."""
    verdict = lambda ok: "**met**" if ok else "**NOT met**"
    c, sec = info["counts"], info["seconds"]
    days = (END_DATE - info["first"]).days + 1
    by_class, repeats = q["by_class"], q["repeats"]
    filter_classes = ("filters, first page", "filters, next pages (2–5)", "filters, previous page")
    filt = [v for k in filter_classes for v in by_class.get(k, [])]
    filt_rep = [v for k in filter_classes for v in repeats.get(k, [])]
    search_all, search_rep = search_samples(by_class), search_samples(repeats)
    filt_p95, search_p95 = p95(filt) * 1000, p95(search_all) * 1000
    compared = q["compared"]
    rare_widest = {w: r for (win, w), r in compared.items() if win == WIDEST_WINDOW and r["class"] == "rare word"}
    min_ratio = min(r["ilike"] / r["shipped"] for r in rare_widest.values())
    load = h["load"]
    res = load["results"]
    lat = [s * 1000 for _, _, s in res]
    whole_word_ok = all(r["word_not_fts"] == 0 for r in q["recall"].values())
    slowest = sorted(q["by_query"].items(), key=lambda kv: -median(kv[1]))[:6]
    from ccanalytics.analytics import journalpage, journalsearch

    size = "100k calls (--quick: the goals are stated for 1M and not checked)" if quick else "1M calls"
    goals = [
        (f"journal page with filters p95 < 100 ms (measured {filt_p95:.0f} ms)", filt_p95 < 100),
        (f"transcript search p95 < 150 ms over the mix at {size} (measured {search_p95:.0f} ms)", search_p95 < 150),
        (f"rare words ≥ 20× ILIKE at the widest window (measured at least {min_ratio:.0f}×)", min_ratio >= 20),
        ("whole-word recall: every call ILIKE's whole word is in is found", whole_word_ok),
        (f"50 clients for 60 s: zero errors (measured {len(load['errors'])})", not load["errors"]),
    ]
    mixed_note = (
        f"{', '.join(sorted({cls for cls, _ in q['searches']}))}; each over the default and the widest window, "
        "two rounds"
    )

    lines = [
        "## Journal: filters, transcript search, 50 concurrent clients",
        "",
        f"Data (loaded with the bulk loader): {SEED_DAYS} days × {info['per_day']:,} generated calls/day ending "
        f"{END_DATE} (yesterday at the run) ({info['seed_calls']:,} calls, {info['seed_turns']:,} turns) went "
        f"through `ingest_records` (validation, COPY into the call processor's tables and ccanalytics's cca_ "
        f"tables; {sec['ingest']:.0f} s); their per-call metrics were derived and the rules judge scored them "
        f"(call_scores, review items; {sec['derive']:.0f} s). That seed was replicated in SQL {info['copies']} "
        f"times with new uuids (`md5(id || k)`) and stamps {SEED_DAYS}·k days earlier, into the monthly "
        f"partitions `<table>_YYYY_MM`: **{c['calls']:,} calls, {c['call_turns']:,} turns**, "
        f"{c['call_tool_calls']:,} tool calls, {c['review_items']:,} review items over {days} days "
        f"({info['first']} … {END_DATE}). The two GIN indexes of call_turns (ccanalytics's "
        f"`cca_search_vector(content)`, the processor's `to_tsvector('simple', content)`) were dropped for the "
        f"copy and rebuilt after it ({sec['replicate']:.0f} s copy on 2 connections, {sec['gin']:.0f} s GIN "
        f"builds, {sec['vacuum']:.0f} s VACUUM ANALYZE). Database {c['db_bytes'] / 2**30:.1f} GiB, "
        f"ccanalytics's GIN index {int(c['gin_bytes']) / 2**20:.0f} MiB. Every seed dialogue recurs every "
        f"{SEED_DAYS} days, so a word's frequency is the seed's. Embedded PostgreSQL 16, default settings "
        f"(shared_buffers 128 MB). The 2 cores were shared with other test runs: load average "
        f"{' → '.join(q['loadavg'])} during the queries, {load['loadavg'][0]}–{load['loadavg'][1]} during the "
        "load test.",
        "",
        "### `journal.search()` latency (in process)",
        "",
        f"Filter pages ran over windows ending 0, 180 and 360 days before {END_DATE}, in two rounds (the first "
        "touches each window for the first time), first page, pages 2–5 through the cursor and one page back "
        "through the previous-page cursor: "
        + "; ".join(label for label, _, _ in FILTERS)
        + f". Transcript searches ran over the journal's default window (no dates: the last 7 days up to today) "
        f"and its widest: the journal sets no limit on the period, so the widest is the whole history "
        f"({q['widest_days']} days, {info['first']} … today). Searches, with the rows on the first page "
        "(default / widest; +: more pages): "
        + ", ".join(
            f"{t} ({q['found'].get((DEFAULT_WINDOW, t), '?')} / {q['found'].get((WIDEST_WINDOW, t), '?')})"
            for _, t in q["searches"]
        )
        + ".",
        "",
        "| query class | samples | p50 ms | p95 ms | max ms | p95 of the 2nd round ms |",
        "|---|---:|---:|---:|---:|---:|",
        classes(by_class, repeats),
        "",
        f"Goal: journal page with filters p95 < 100 ms — {verdict(filt_p95 < 100)}: {filt_p95:.0f} ms over first "
        f"and next pages ({p95(filt_rep) * 1000:.0f} ms in the second round). Goal: transcript search p95 < 150 ms "
        f"over the mix at 1M calls — {verdict(search_p95 < 150)}: {search_p95:.0f} ms over {len(search_all)} "
        f"searches ({mixed_note}; {p95(search_rep) * 1000:.0f} ms in the second round). Slowest queries (median / "
        "max): " + "; ".join(f"{name} {median(v) * 1000:.0f} / {max(v) * 1000:.0f} ms" for name, v in slowest) + ".",
        "",
        "Every page (filters and searches) is timed with its total (`count=True`, as the journal page asks): "
        f"exact up to {journalpage.COUNT_CAP:,} calls for filters, exact for rare searches, an estimate (the newest "
        "6 hours of the window scaled to the window) for frequent ones. A search matches the whole call: every "
        "word in some turn (*words across turns*: «зимові шини Michelin» has its words in different turns). "
        "Word prefixes (`prefix*`, `cca_prefix_query`) over 30 days, against the calls `ILIKE '%prefix%'` "
        "finds: "
        + "; ".join(
            f"«{p}*»: {_total(t)} calls ({s * 1000:.0f} ms), ILIKE finds {like:,}"
            for p, (t, s, like) in q["prefix"].items()
        )
        + ".",
        "",
        "### Rare, frequent and phrase queries: three plans against `ILIKE '%text%'` (same run)",
        "",
        "The ILIKE baseline is the journal's own GIN page query with its turn condition "
        "(`cca_search_vector(t.content) @@ cca_search_query(:q)`) replaced by `t.content ILIKE '%text%'` (same "
        "join, date bound, order and limit). *shipped*: `journal.search()` as it is: the turns that match are "
        f"counted through the GIN index up to {journalsearch.RARE_TURNS:,}; fewer: the GIN plan over the window (the "
        "matching calls only, each looked up in the partition its turns bound); more, in date order: the GIN "
        f"plan over slices of the window from its newest call ({journalsearch.SLICE_DAYS * 24:.0f} hours, then "
        f"{journalsearch.SLICE_GROWTH}× longer each) until the page is full (other orders: the probe of the first "
        f"{journalsearch.PROBE_CALLS} calls in page order, then the GIN plan). *GIN only*: the GIN plan over the whole "
        "window for every query. *probe first*: the probe for every query, then the GIN plan (the plan before "
        "this change, with its vector now computed from each turn's text). Whole `search()` calls (page and "
        "snippets), ms, median of 3 (one run when the first took over 1 s). Calls: the calls the rare word is "
        "in, in that window.",
        "",
        "| window | class | text | calls | shipped | GIN only | probe first | ILIKE | ILIKE / shipped |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (window, w), r in compared.items():
        calls = f"{r['calls']:,}" if r["calls"] is not None else ""
        lines.append(
            f"| {window} | {r['class']} | {w} | {calls} | **{r['shipped'] * 1000:.1f}** | {r['gin'] * 1000:.1f} | "
            f"{r['probe'] * 1000:.1f} | {r['ilike'] * 1000:.0f} | **{r['ilike'] / r['shipped']:.0f}×** |"
        )
    ratio_default = [r["ilike"] / r["shipped"] for (win, _), r in compared.items()
                     if win == DEFAULT_WINDOW and r["class"] == "rare word"]  # fmt: skip
    lines += [
        "",
        f"Goal: rare words ≥ 20× ILIKE at the widest window — {verdict(min_ratio >= 20)}: at least "
        f"{min_ratio:.0f}× (at the default 7-day window, which has no goal: {min(ratio_default):.0f}–"
        f"{max(ratio_default):.0f}×).",
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
        "### Plans (EXPLAIN (ANALYZE, BUFFERS)) of the statements one search runs",
        "",
    ]
    for name, plan in q["plans"].items():
        lines.append(f"- {name}: {plan_numbers(plan)}; {plan_outline(plan)}")
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
        f"({len(SEARCHES)} terms, 30 days), the next page of the page just read (half the time) and details of "
        f"500 calls spread over the whole history ({DETAIL_SHARE:.0%} of the other picks).",
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
        + f" — goal zero errors {verdict(not errors)}. Peak RSS of the server process: {h['peak_mib']} MiB. "
        f"Warnings in its log: {sum(h['log_problems'].values())}"
        + "".join(f"; {n} × «{m}»" for m, n in h["log_problems"].most_common(3))
        + f". Time inside the app (the access log's duration) p50 {median(h['server_ms']):.0f} ms, "
        f"p95 {pct(h['server_ms'], 0.95):.0f} ms; the rest of the clients' latency is waiting for one of the 8 "
        "threads.",
        "",
        f"Whole benchmark: {total / 60:.1f} min.",
    ]
    return "\n".join(lines), goals
