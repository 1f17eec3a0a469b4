"""The journal's transcript search: the plans (GIN, slices, probe) finding a page of matching calls, the snippets."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ccanalytics.analytics.journalpage import SORTS, Page, Total
from ccanalytics.analytics.journaltext import Query, parse_query
from ccanalytics.db.engine import PARALLEL_WORKERS_OPTION

# a transcript search: the calls with a matching turn inside the window (turns are partitioned on their
# own stamps, within an hour before and 7 hours after their call's start)
_TURN_WINDOW = (
    "t.created_at >= CAST(:start AS timestamptz) - interval '1 hour' "
    "AND t.created_at < CAST(:end AS timestamptz) + interval '7 hours'"
)
# A search matches the whole call: every term (a word, a "quoted phrase", a prefix*, or terms joined
# by «or») in some turn of the call, no -excluded term in any (cca_call_matches, migration 025). It
# takes one of three plans (docs/benchmarks.md, Journal, measures them at 1M calls against ILIKE). The
# vector of a turn is computed from its text (the processor's call_turns has no column for it), so a
# turn tested without the GIN index costs its to_tsvector.
# - GIN: the turns of the window matching the query's rarest term (the driver) through the GIN index,
#   grouped into calls, and only those calls looked up (each in the partition its turns bound) and
#   tested for the other terms; its cost grows with the driver's matches, so it answers rare words at
#   any window.
# - slices (date order): the GIN plan over the newest SLICE_DAYS of the window, then over slices
#   SLICE_GROWTH times longer, until the page is full: frequent words fill it in the first slice.
# - probe first (other orders): the first PROBE_CALLS calls in page order, each tested through its own
#   turns, stopping at a full page; then the GIN plan over the window if they do not fill it.
# Which one: the matching turns of each term are counted through the GIN index, stopping at
# RARE_TURNS; fewer for some term is a rare query (GIN), else slices (date order) or the probe.
PROBE_CALLS = 500  # calls tested one by one before the index (0: never probe)
RARE_TURNS = 300  # a query with fewer matching turns in the window skips the probe (0: never skip it)
SLICE_DAYS = 0.25  # the first slice of a date-ordered search (0: no slices, the GIN plan over the window)
SLICE_GROWTH = 4
# max_parallel_workers_per_gather for a search's queries (None: the server's). Measured on 200k calls: a
# search's short index queries are faster without workers (whose start-up costs more than they save)
SEARCH_PARALLEL: int | None = 0
# the calls with a turn matching the driver, each looked up (a nested loop, OFFSET 0 keeps it one) in
# the partition its first matching turn bounds and tested for the rest of the query (``hits``: their keys
# only — the view's joins the page's filters do not need are left out by the planner), then sorted;
# ``matched`` counts them all (before the page's cursor and limit); only the page's rows are then read
# in full. A frequent word's first slice matches hundreds of calls: reading them all in full through the
# view cost more than the search itself.
_GIN = (
    "WITH hits AS (SELECT x.*, count(*) OVER () AS matched FROM ({calls}) m "
    "CROSS JOIN LATERAL (SELECT c.id AS uid, c.started_at, {key} AS sort_key, m.snippet, m.snippet_speaker, "
    "m.snippet_turn {source} WHERE c.id = m.call_id AND c.started_at > m.at - interval '7 hours' "
    "AND c.started_at <= m.at + interval '1 hour' AND {where} OFFSET 0) x), "
    "page AS (SELECT * FROM hits x WHERE {after} ORDER BY x.sort_key {order}, x.started_at {order}, x.uid {order} "
    "LIMIT :limit) "
    "SELECT y.*, h.snippet, h.snippet_speaker, h.snippet_turn, h.matched FROM page h "
    "CROSS JOIN LATERAL (SELECT {columns}, c.id AS uid {source} WHERE c.id = h.uid AND c.started_at = h.started_at "
    "AND c.started_at >= :start AND c.started_at < :end OFFSET 0) y "
    "ORDER BY h.sort_key {order}, h.started_at {order}, h.uid {order}"
)
# The terms' counts of matching turns (capped at RARE_TURNS) only choose a plan: every plan gives the same
# page. They are kept for PROBE_SECONDS per database, terms and window, so that the next page, the same
# search again or another reader's does not count them again (8 ms for a frequent word, a search's
# largest single cost under load); a count that changed meanwhile only makes the plan less suited.
PROBE_SECONDS = 600.0
_PROBE_KEEP = 2048
_probes: dict[tuple[Any, ...], tuple[float, list[int]]] = {}


def forget_probes() -> None:
    """Count every term again at its next search (benchmarks: a new search as its first reader runs it)."""
    _probes.clear()


def find(
    conn: sa.Connection, page: Page, text: str, limit: int, cursor_start: datetime | None, count: bool
) -> tuple[list[dict[str, Any]], Total | None]:
    """Up to ``limit`` + 1 rows of a search for ``text`` with their snippets, and the total when ``count``."""
    # a search's many short index queries: no parallel workers (unless the session already runs so: the admin)
    session = conn.get_execution_options().get(PARALLEL_WORKERS_OPTION)
    if SEARCH_PARALLEL is not None and session != SEARCH_PARALLEL:
        conn.execute(sa.text(f"SET LOCAL max_parallel_workers_per_gather = {int(SEARCH_PARALLEL)}"))
    terms = parse_query(conn, text)
    rows, total = _text_rows(conn, page, terms, limit, cursor_start, count)
    _snippets(conn, rows, terms)
    return rows, total


def _index_match(vector: str, term: str, name: str) -> tuple[str, str]:
    """The turn condition of the GIN plan for one term (its tsquery text in :``name``), and the part of it
    the GIN index answers alone. A phrase (``"…"``: words in order) is not decided by the index: each
    candidate turn with all its words would be rechecked, its vector computed from its text, before
    the date bound is tested. So the index is asked for the words (``<->`` read as ``&``: every phrase
    match has them all), and the phrase is a filter tested after the date bound (``ts_match_vq``, the
    function of ``@@``, which the planner does not match to the index)."""
    exact = f"{vector} @@ CAST(:{name} AS tsquery)"
    if "<" not in term or "!" in term:
        return exact, exact
    words = f"{vector} @@ CAST(regexp_replace(:{name}, '<[0-9-]+>', '&', 'g') AS tsquery)"
    return f"{words} AND ts_match_vq({vector}, CAST(:{name} AS tsquery))", words


def _text_rows(
    conn: sa.Connection, page: Page, q: Query, limit: int, cursor_start: datetime | None, count: bool
) -> tuple[list[dict[str, Any]], Total | None]:
    """Up to ``limit`` + 1 rows of a text search, by the plan that suits the query (see PROBE_CALLS),
    and the total when ``count``."""
    p = {**page.params, "pos": q.terms, "neg": q.excluded}
    p.update({f"d{n}": t for n, t in enumerate(q.terms)})
    p.update({f"x{n}": t for n, t in enumerate(q.excluded)})
    if not q.terms and not q.excluded:
        return [], (Total(0, "exact") if count else None)
    matches = "cca_call_matches(c.id, c.started_at, CAST(:pos AS tsquery[]), CAST(:neg AS tsquery[]))"
    if not q.terms:  # only excluded terms: the calls in page order, each tested through its turns
        rows = [dict(r) for r in conn.execute(sa.text(page.sql(f"AND {matches}")), p).mappings()]
        total = None
        if count and len(rows) > limit:
            total = Total(limit, "at_least")
        elif count and cursor_start is None:
            total = Total(len(rows), "exact")
        return rows, total
    counts = _term_turns(conn, q.terms, p)
    every = _calls(q, range(len(q.terms)), negatives=True)  # every term through the index
    if RARE_TURNS and min(counts) < RARE_TURNS:
        # the rarest term's calls through the index, each tested for the rest of the query
        driver = min(range(len(q.terms)), key=counts.__getitem__)
        rows = _gin(conn, page, _driven(q, driver), p)
        total = None
        if count:
            total = Total(int(rows[0]["matched"]), "exact") if rows and cursor_start is None else None
            total = total or _gin_count(conn, page, _driven(q, driver), p)
        return rows, total
    if page.sort == "date" and SLICE_DAYS:
        return _slices(conn, page, every, p, limit, cursor_start, count)
    if PROBE_CALLS:
        # the first PROBE_CALLS calls in page order, each tested through its own turns: when they hold a
        # full page of matches, that page is the answer (they are a prefix of the ordered calls)
        o = page.order
        probe = (
            f"SELECT * FROM ("  # noqa: S608 — the page's SQL and matches: code fragments; values bound
            f"{page.sql().replace('LIMIT :limit', 'LIMIT :probe')}) c "
            f"WHERE {matches.replace('c.id', 'c.uid')} ORDER BY c.sort_key {o}, c.started_at {o}, c.uid {o} "
            "LIMIT :limit"
        )
        found = [dict(r) for r in conn.execute(sa.text(probe), {**p, "probe": PROBE_CALLS}).mappings()]
        if len(found) > limit:
            return found, (_estimate(conn, page, every, p) if count else None)
    rows = _gin(conn, page, every, p)
    total = None
    if count:
        total = Total(int(rows[0]["matched"]), "exact") if rows and cursor_start is None else None
        total = total or _gin_count(conn, page, every, p)
    return rows, total


# the first matching turn of a call (its text, speaker and number): the snippet of a GIN plan's row
_SNIPPET = (
    "(array_agg(t.content ORDER BY t.turn_number))[1] AS snippet, "
    "(array_agg(t.speaker ORDER BY t.turn_number))[1] AS snippet_speaker, min(t.turn_number) AS snippet_turn"
)


def _calls(q: Query, terms: Any, *, negatives: bool = False) -> str:
    """The SQL of the calls (call_id, at: the first matching turn's stamp) with a turn of the window
    matching each of ``terms`` (their numbers; tsqueries in :d0, :d1, …) and, with ``negatives``, no turn
    matching an excluded one (:x0, …), all through the GIN index: each term's matching turns (no
    vector is computed but a phrase's, see _index_match), grouped by call."""
    vector = turn_vector("t")
    terms = list(terms)
    if len(terms) == 1 and not (negatives and q.excluded):
        match, _ = _index_match(vector, q.terms[terms[0]], f"d{terms[0]}")
        return (
            f"SELECT t.call_id, min(t.created_at) AS at, "  # noqa: S608 — constant fragments; tsqueries bound as :dN
            f"{_SNIPPET} FROM call_turns t "
            f"WHERE {match} AND {_TURN_WINDOW} GROUP BY t.call_id"
        )
    branches = []
    for n in terms:
        match, _ = _index_match(vector, q.terms[n], f"d{n}")
        branches.append(
            f"SELECT t.call_id, t.created_at AS at, {n} AS k, "  # noqa: S608 — n is an int; tsqueries bound as :dN
            f"t.turn_number, t.speaker, t.content "
            f"FROM call_turns t WHERE {match} AND {_TURN_WINDOW}"
        )
    for n, term in enumerate(q.excluded if negatives else []):
        match, _ = _index_match(vector, term, f"x{n}")
        branches.append(
            f"SELECT t.call_id, NULL, -1, NULL, NULL, NULL "  # noqa: S608 — constant fragments; tsqueries bound as :xN
            f"FROM call_turns t WHERE {match} AND {_TURN_WINDOW}"
        )
    return (
        f"SELECT u.call_id, min(u.at) AS at, "  # noqa: S608 — constants, ints and built branches; values bound
        f"{_SNIPPET.replace('t.', 'u.')} "
        f"FROM ({' UNION ALL '.join(branches)}) u GROUP BY u.call_id "
        f"HAVING count(DISTINCT u.k) FILTER (WHERE u.k >= 0) = {len(terms)} AND count(*) FILTER (WHERE u.k < 0) = 0"
    )


def _driven(q: Query, driver: int) -> str:
    """The SQL of the calls (call_id, at) of a rare term (number ``driver``) through the GIN index,
    kept when each other term matches one of their turns and no excluded term any: each term's turns of
    those calls only (the call_id index and the GIN index together: no vector computed)."""
    vector = turn_vector("t")
    match, _ = _index_match(vector, q.terms[driver], f"d{driver}")
    theirs = "t.call_id = ANY(ARRAY(SELECT d.call_id FROM d))"
    tests = []
    for n in range(len(q.terms)):
        if n != driver:
            other, _ = _index_match(vector, q.terms[n], f"d{n}")
            tests.append(
                f"d.call_id IN (SELECT t.call_id FROM call_turns t "  # noqa: S608 — constant fragments; values bound
                f"WHERE {theirs} AND {other} AND {_TURN_WINDOW})"
            )
    for n, term in enumerate(q.excluded):
        other, _ = _index_match(vector, term, f"x{n}")
        tests.append(
            f"NOT EXISTS (SELECT 1 FROM call_turns t "  # noqa: S608 — constant fragments; tsqueries bound as :xN
            f"WHERE t.call_id = d.call_id AND {other} AND {_TURN_WINDOW})"
        )
    return (
        f"WITH d AS MATERIALIZED (SELECT t.call_id, "  # noqa: S608 — constant fragments; tsqueries bound as :dN
        f"min(t.created_at) AS at, {_SNIPPET} FROM call_turns t "
        f"WHERE {match} AND {_TURN_WINDOW} GROUP BY t.call_id) SELECT d.* FROM d"
        + (f" WHERE {' AND '.join(tests)}" if tests else "")
    )


def _term_turns(conn: sa.Connection, terms: list[str], p: dict[str, Any]) -> list[int]:
    """Each term's matching turns in the window, counted through the GIN index and stopping at
    RARE_TURNS (a rare word costs a few index pages; a frequent one stops early)."""
    if not RARE_TURNS:
        return [0] * len(terms)
    key = (conn.engine.url, RARE_TURNS, tuple(terms), p["start"], p["end"])
    kept = _probes.get(key)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    vector = turn_vector("t")
    parts = []
    for n, term in enumerate(terms):
        _, indexed = _index_match(vector, term, f"d{n}")
        parts.append(
            f"(SELECT count(*) FROM (SELECT 1 FROM call_turns t "  # noqa: S608 — constants; tsqueries bound as :dN
            f"WHERE {indexed} AND {_TURN_WINDOW} LIMIT :cap) m)"
        )
    counts = list(conn.execute(sa.text(f"SELECT {', '.join(parts)}"), {**p, "cap": RARE_TURNS}).one())
    if len(_probes) >= _PROBE_KEEP:
        _probes.clear()
    _probes[key] = (time.monotonic() + PROBE_SECONDS, counts)
    return counts


def _slices(
    conn: sa.Connection,
    page: Page,
    calls: str,
    p: dict[str, Any],
    limit: int,
    cursor_start: datetime | None,
    count: bool,
) -> tuple[list[dict[str, Any]], Total | None]:
    """The GIN plan over slices of the window from the page's end, each SLICE_GROWTH times longer than
    the one before, until the page is full; the slices' calls follow one another in page order. The
    total: the slices' matching calls, scaled from the span they covered to the window's."""
    bounds = _call_span(conn, p)
    if bounds is None:
        return [], (Total(0, "exact") if count else None)
    start, end = whole = bounds
    if cursor_start is not None:
        if page.descending:
            end = min(end, cursor_start + timedelta(microseconds=1))
        else:
            start = max(start, cursor_start)
    rows: list[dict[str, Any]] = []
    span, covered, matched = timedelta(days=SLICE_DAYS), timedelta(0), 0
    while start < end and len(rows) <= limit:
        if page.descending:
            part = {"start": max(start, end - span), "end": end}
            end = part["start"]
        else:
            part = {"start": start, "end": min(end, start + span)}
            start = part["end"]
        found = _gin(conn, page, calls, {**p, **part, "limit": limit + 1 - len(rows)})
        rows += found
        covered += part["end"] - part["start"]
        matched += int(found[0]["matched"]) if found else 0
        # the next slice: SLICE_GROWTH times longer, or as long as the matches so far say the rest of the
        # page needs (a sparse query does not walk the window in many short slices)
        needed = covered * ((limit + 1 - len(rows)) / matched) if matched else covered * SLICE_GROWTH**2
        span = max(span * SLICE_GROWTH, needed * 1.5)
    if not count:
        return rows, None
    if start >= end and cursor_start is None:  # the whole window
        return rows, Total(matched, "exact")
    return rows, Total(_round(matched * ((whole[1] - whole[0]) / covered)), "estimate")


def _call_span(conn: sa.Connection, p: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """From the window's first call to just after its last (an end of the day in the future holds none)."""
    first, last = conn.execute(
        sa.text("SELECT min(started_at), max(started_at) FROM calls WHERE started_at >= :start AND started_at < :end"),
        p,
    ).one()
    if first is None:
        return None
    return max(p["start"], first), min(p["end"], last + timedelta(microseconds=1))


ESTIMATE_SAMPLE = 50  # calls: a frequent search's total is scaled from a slice holding at least these


def _estimate(conn: sa.Connection, page: Page, calls: str, p: dict[str, Any]) -> Total:
    """A frequent search's total: the matching calls of the window's newest slice (from SLICE_DAYS,
    at least 6 hours, SLICE_GROWTH times longer until it holds ESTIMATE_SAMPLE), scaled to the window's
    span; exact when the slice is the whole window."""
    bounds = _call_span(conn, p)
    if bounds is None:
        return Total(0, "exact")
    start, end = bounds
    span = timedelta(days=max(SLICE_DAYS, 0.25))
    while True:
        part = {"start": max(start, end - span), "end": end}
        counted = _gin_count(conn, page, calls, {**p, **part})
        if part["start"] <= start:
            return counted
        if counted.value >= ESTIMATE_SAMPLE:
            share = (end - start) / (part["end"] - part["start"])
            return Total(_round(counted.value * share), "estimate")
        span *= SLICE_GROWTH


def _round(n: float) -> int:
    """An estimate to three significant figures (12 437 → 12 400)."""
    if n < 1000:
        return round(n)
    digits = len(str(int(n))) - 3
    return int(round(n, -digits))


def _gin(conn: sa.Connection, page: Page, calls: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    sql = _GIN.format(
        calls=calls,
        key=SORTS[page.sort],
        columns=page.columns,
        source=page.source,
        where=" AND ".join(page.where),
        after=page.after("x.sort_key", "x.started_at", "x.uid"),
        order=page.order,
    )
    return [dict(r) for r in conn.execute(sa.text(sql), p).mappings()]


def _gin_count(conn: sa.Connection, page: Page, calls: str, p: dict[str, Any]) -> Total:
    """The calls the GIN plan finds in the window of ``p`` (no cursor)."""
    sql = (
        f"SELECT count(*) FROM ({calls}) m "  # noqa: S608 — calls/source/where: code-built fragments; values bound
        f"CROSS JOIN LATERAL (SELECT 1 {page.source} "
        "WHERE c.id = m.call_id AND c.started_at > m.at - interval '7 hours' "
        f"AND c.started_at <= m.at + interval '1 hour' AND {' AND '.join(page.where)} OFFSET 0) x"
    )
    return Total(conn.execute(sa.text(sql), p).scalar_one(), "exact")


def _snippets(conn: sa.Connection, rows: list[dict[str, Any]], q: Query) -> None:
    """Each row's first turn matching a term of the search (through the call's own turns): its text
    (``snippet``), speaker and number."""
    rows = [r for r in rows if "snippet" not in r]  # a GIN plan's rows have theirs
    if not rows:
        return
    if not q.terms:
        for r in rows:
            r.update(snippet=None, snippet_speaker=None, snippet_turn=None)
        return
    found = {
        r.id: r
        for r in conn.execute(
            sa.text(
                "SELECT x.id::text AS id, "  # noqa: S608 — only turn_vector('t'), a constant; values bound
                "s.content, s.speaker, s.turn_number "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:starts AS timestamptz[])) AS x(id, started_at) "
                "CROSS JOIN LATERAL (SELECT t.content, t.speaker, t.turn_number FROM call_turns t "
                "WHERE t.call_id = x.id AND t.created_at >= x.started_at - interval '1 hour' "
                "AND t.created_at < x.started_at + interval '7 hours' "
                # the function of @@: tested on the call's turns, never through the GIN index
                f"AND ts_match_vq({turn_vector('t')}, CAST(:any AS tsquery)) ORDER BY t.turn_number LIMIT 1) s"
            ),
            {"ids": [r["id"] for r in rows], "starts": [r["started_at"] for r in rows], "any": q.any},
        )
    }
    for r in rows:
        hit = found.get(r["id"])
        r["snippet"] = hit.content if hit else None
        r["snippet_speaker"] = hit.speaker if hit else None
        r["snippet_turn"] = hit.turn_number if hit else None


def turn_vector(alias: str = "t") -> str:
    """The SQL for a turn's tsvector: ``cca_search_vector(content)``, the expression ccanalytics's GIN
    index on the processor's call_turns is built on (migration 001)."""
    return f"cca_search_vector({alias}.content)"
