"""The call journal: filtered, searchable, sortable pages of calls with keyset pagination, and the
details of one call. Phone numbers are masked; transcript search uses ``cca_search_vector(content)``,
the expression ccanalytics's GIN index on the processor's call_turns is built on, always bounded by the
date range. A customer is one tenant's (customers are unique per tenant and phone): a call's "other
calls" are its customer's, not every call of the number. Both take ``tenant`` (a slug, several, or None
for every tenant): a call of another tenant is not listed, and its details are NotFound."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup, escape
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.db import tenants
from ccanalytics.ingest.dialogue import place_tools

SORTS = {
    "date": "c.started_at",
    "quality": "coalesce(c.quality_score, -1)",
    "cost": "coalesce(c.total_cost_usd, -1)",
    "duration": "coalesce(c.duration_seconds, -1)",
}
MAX_LIMIT = 200


@dataclass(frozen=True)
class Total:
    """How many calls match a journal page's filters and search, as the page can tell cheaply:
    ``exact``; ``at_least`` (counting stopped at COUNT_CAP, or the search is not counted); ``estimate``
    (a frequent search: the matches of the newest slice of the window scaled to the window)."""

    value: int
    kind: str  # "exact" | "at_least" | "estimate"


@dataclass(frozen=True)
class JournalPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    prev_cursor: str | None = None
    total: Total | None = None  # only when search(count=True)
    date_from: date | None = None  # the period shown: the local days of the window
    date_to: date | None = None


def _cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def _uncursor(text: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(text.encode()))
        if not (isinstance(values, list) and len(values) == 3):
            raise ValueError
        return [float(values[0]), datetime.fromisoformat(values[1]), str(uuid.UUID(values[2]))]
    except (ValueError, TypeError):
        raise InvalidArgument("the page cursor is not valid: start from the first page") from None


COUNT_CAP = 10_000  # a page's total is counted exactly up to this many calls, else "more than COUNT_CAP"

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
# the partition its first matching turn bounds and tested for the rest of the query, then sorted;
# ``matched`` counts them all (before the page's cursor and limit)
_GIN = (
    "SELECT * FROM (SELECT x.*, count(*) OVER () AS matched FROM ({calls}) m "
    "CROSS JOIN LATERAL (SELECT {columns}, c.id AS uid, m.snippet, m.snippet_speaker, m.snippet_turn {source} "
    "WHERE c.id = m.call_id AND c.started_at > m.at - interval '7 hours' "
    "AND c.started_at <= m.at + interval '1 hour' AND {where} OFFSET 0) x) x "
    "WHERE {after} ORDER BY x.sort_key {order}, x.started_at {order}, x.uid {order} LIMIT :limit"
)
_WORD_OR = {"or", "или", "або"}
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class Query:
    """A transcript search as tsqueries (their text): ``terms`` each in some turn of the call,
    ``excluded`` in none."""

    terms: list[str]
    excluded: list[str]

    @property
    def any(self) -> str:
        """A turn matching any term (the snippet)."""
        return " | ".join(f"( {t} )" for t in self.terms)


def parse_query(conn: sa.Connection, text: str) -> Query:
    """The search text as terms: words (every inflected form), "a phrase" (its words in this order in
    one turn), prefix* (every word starting with it), ``-word`` / ``-"phrase"`` (no turn of the call has
    it), terms joined by «or» / «или» / «або» (either). Terms that hold no searchable word are dropped."""
    groups: list[tuple[bool, list[tuple[str, str]]]] = []  # (excluded, alternatives (kind, text))
    join_next = False
    for m in _TOKEN.finditer(text):
        minus, phrase, word = m.groups()
        if word is not None and word.lower() in _WORD_OR and groups and not groups[-1][0]:
            join_next = True
            continue
        if phrase is not None:
            alt = ("phrase", f'"{phrase}"')
        else:
            minus = "-" if word.startswith("-") and len(word) > 1 else ""
            word = word[1:] if minus else word
            if word.endswith("*") and len(word.rstrip("*")) >= 2:
                alt = ("prefix", word.rstrip("*"))
            else:
                alt = ("word", word.replace('"', " "))
        if join_next and not minus:
            groups[-1][1].append(alt)
        else:
            groups.append((bool(minus), [alt]))
        join_next = False
    if not groups:
        return Query([], [])
    params: dict[str, str] = {}
    exprs = []
    for g, (_, alts) in enumerate(groups):
        parts = []
        for a, (kind, value) in enumerate(alts):
            params[f"t{g}_{a}"] = value
            fn = "cca_prefix_query" if kind == "prefix" else "cca_search_query"
            parts.append(f"{fn}(:t{g}_{a})")
        exprs.append(f"CAST({' || '.join(parts)} AS text)")
    texts = conn.execute(sa.text(f"SELECT {', '.join(exprs)}"), params).one()
    terms = [t for (excluded, _), t in zip(groups, texts, strict=True) if t and not excluded]
    excluded = [t for (excluded, _), t in zip(groups, texts, strict=True) if t and excluded]
    return Query(terms, excluded)


def search(
    engine: Engine,
    *,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    scenario: str | None = None,
    transferred: bool | None = None,
    quality_below: float | None = None,
    quality_above: float | None = None,
    prompt_version: str | None = None,
    review_status: str | None = None,
    tenant: tenants.TenantArg = None,
    text: str | None = None,
    sort: str = "date",
    descending: bool = True,
    after: str | None = None,
    before: str | None = None,
    limit: int = 50,
    tz: str = timeutil.DEFAULT_TZ,
    count: bool = False,
) -> JournalPage:
    """One page of the journal. ``after`` is the ``next_cursor`` of the previous page, ``before`` the
    ``prev_cursor`` of the next one. ``count``: also tell how many calls match (JournalPage.total)."""
    if sort not in SORTS:
        raise InvalidArgument(f"sort must be one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
    if after and before:
        raise InvalidArgument("a page is either after one cursor or before another")
    first_day, last_day = timeutil.resolve_days(date_from, date_to, tz, default_days=7)
    start, end = timeutil.period_bounds(date_from, date_to, tz, default_days=7)
    where = ["c.started_at >= :start", "c.started_at < :end"]
    p: dict[str, Any] = {"start": start, "end": end, "limit": limit + 1}
    if scenario:
        where.append("(c.scenario = :scenario OR :scenario = ANY(string_to_array(c.scenario, ' + ')))")
        p["scenario"] = scenario
    if transferred is not None:
        where.append("c.transferred_to_operator = :transferred")
        p["transferred"] = transferred
    for name, value, op in (("qbelow", quality_below, "<"), ("qabove", quality_above, ">")):
        if value is not None:
            if not 0 <= value <= 1:
                raise InvalidArgument("quality filters must be between 0 and 1")
            where.append(f"c.quality_score {op} :{name}")
            p[name] = value
    if prompt_version:
        where.append("c.prompt_version = :pv")
        p["pv"] = prompt_version
    scope = tenants.scope(engine, tenant)
    if scope is not None:
        where.append(tenants.SQL)
        p.update(tenants.params(scope))
    if review_status:
        if review_status not in ("new", "in_review", "resolved"):
            raise InvalidArgument("review status must be new, in_review or resolved")
        where.append("r.status = :review")
        p["review"] = review_status
    query = (text or "").strip()
    if query:
        if len(query) > 200:
            raise InvalidArgument("the search text is limited to 200 characters")
        p["q"] = query
    cursor = after or before
    backwards = before is not None  # the page before ``before``: the other direction, then reversed
    desc = descending != backwards
    if cursor:
        k, s, i = _uncursor(cursor)
        p.update(ck=k, cs=s, ci=i)
    key = SORTS[sort]
    columns = (
        f"c.id::text AS id, c.started_at, c.duration_seconds, c.scenario, c.transferred_to_operator, "
        f"c.transfer_reason, c.quality_score, c.total_cost_usd, c.prompt_version, c.order_id, c.fitting_booking_id, "
        f"c.tenant, cca_mask_phone(c.caller_id) AS caller, r.status AS review_status, {key} AS sort_key"
    )
    page = _Page(columns, "FROM cca_calls c LEFT JOIN review_items r ON r.call_id = c.id", where, sort, desc, p)
    total = None
    with engine.connect() as conn:
        if query:
            if SEARCH_PARALLEL is not None:  # a search's many short index queries: no parallel workers
                conn.execute(sa.text(f"SET LOCAL max_parallel_workers_per_gather = {int(SEARCH_PARALLEL)}"))
            terms = parse_query(conn, query)
            rows, total = _text_rows(conn, page, terms, limit, s if cursor else None, count)
            _snippets(conn, rows, terms)
        else:
            rows = _filter_rows(conn, page)
            if count:
                plain = not (
                    scenario or transferred is not None or prompt_version or scope is not None or review_status
                )
                total = _count(conn, page, plain)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()

    def cursor_of(row: dict[str, Any]) -> str:
        return _cursor([float(row["sort_key"]) if sort != "date" else 0.0, row["started_at"].isoformat(), row["id"]])

    next_cursor = prev_cursor = None
    if rows:
        if backwards:
            prev_cursor = cursor_of(rows[0]) if more else None
            next_cursor = cursor_of(rows[-1])  # the page the cursor came from
        else:
            next_cursor = cursor_of(rows[-1]) if more else None
            prev_cursor = cursor_of(rows[0]) if after else None
    for r in rows:
        r.pop("sort_key", None)
        r.pop("uid", None)
        r.pop("matched", None)
        r["started_at"] = r["started_at"].astimezone(timeutil.zone(tz))
    return JournalPage(rows, next_cursor, prev_cursor, total, first_day, last_day)


@dataclass(frozen=True)
class _Page:
    """The parts of one journal page's query; the plans of a sort or a search fill them in."""

    columns: str
    source: str
    where: list[str]  # the filters (no cursor)
    sort: str
    descending: bool
    params: dict[str, Any]

    @property
    def order(self) -> str:
        return "DESC" if self.descending else "ASC"

    def after(self, key: str, started: str, uid: str) -> str:
        """The cursor's condition on these expressions (TRUE without a cursor)."""
        if "ci" not in self.params:
            return "TRUE"
        cmp = "<" if self.descending else ">"
        if self.sort == "date":
            return f"({started}, {uid}) {cmp} (:cs, CAST(:ci AS uuid))"
        return f"({key}, {started}, {uid}) {cmp} (:ck, :cs, CAST(:ci AS uuid))"

    def sql(self, extra: str = "") -> str:
        """Up to :limit rows in page order, through the cca_calls view."""
        key = SORTS[self.sort]
        o = self.order
        return (
            f"SELECT {self.columns}, c.id AS uid {self.source} WHERE {' AND '.join(self.where)} {extra} "
            f"AND {self.after(key, 'c.started_at', 'c.id')} ORDER BY {key} {o}, c.started_at {o}, c.id {o} LIMIT :limit"
        )


# A page sorted by quality or cost merges two streams: the calls ccanalytics scored (priced), read in
# key order from its own index (migration 025), each looked up in cca_calls for the page's filters,
# and the calls it has not, whose key is the processor's (calls.quality_score, total_cost_usd), read
# through cca_calls and bounded by the first stream's last row (only those that come before it on the
# page are needed; on the processor's quality, its own index finds them). With the setting
# cca.quality_source (cca.cost_source) = 'processor' every call is of the second kind.
@dataclass(frozen=True)
class _Own:
    setting: str
    table: str  # alias s
    key: str  # ccanalytics's figure, as its index orders it
    current: str
    filters: dict[str, str]  # the page's filters on the figure, as conditions on s
    recorded: str  # the processor's figure in cca_calls
    none: str  # the call has no figure of ccanalytics (a condition on c)


_OWN = {
    "quality": _Own(
        "cca.quality_source",
        "call_scores s",
        "s.overall_score",
        "s.is_current",
        {"qbelow": "s.overall_score < :qbelow", "qabove": "s.overall_score > :qabove"},
        "c.recorded_quality_score",
        "NOT EXISTS (SELECT 1 FROM call_scores o WHERE o.is_current AND o.call_id = c.id "
        "AND o.started_at = c.started_at AND o.started_at >= :start AND o.started_at < :end)",
    ),
    "cost": _Own(
        "cca.cost_source",
        "cca_call_costs s",
        "coalesce(s.total_usd, -1)",
        "TRUE",
        {},
        "c.recorded_total_cost_usd",
        "NOT EXISTS (SELECT 1 FROM cca_call_costs o WHERE o.call_id = c.id AND o.started_at = c.started_at "
        "AND o.started_at >= :start AND o.started_at < :end)",
    ),
}


def _own_figures(conn: sa.Connection, sort: str) -> bool:
    """Whether the cca_calls view shows ccanalytics's figure (quality or cost) where it has one."""
    return conn.execute(sa.text(f"SELECT current_setting('{_OWN[sort].setting}', true)")).scalar() != "processor"


def _own_stream(page: _Page, own: _Own, select: str, *, ordered: bool = True) -> str:
    """The calls with ccanalytics's figure in the window, in its index's order (``ordered``), each
    looked up in cca_calls (a nested loop: OFFSET 0 keeps it one) for the page's filters."""
    p, o = page.params, page.order
    conditions = "".join(f"AND {cond} " for name, cond in own.filters.items() if name in p)
    order = f"ORDER BY {own.key} {o}, s.started_at {o}, s.call_id {o}" if ordered else ""
    after = page.after(own.key, "s.started_at", "s.call_id") if ordered else "TRUE"
    return (
        f"SELECT {select} "  # noqa: S608 — select is "x.*"/"1"; _OWN constants, _Page parts; values bound
        f"FROM (SELECT s.call_id, s.started_at, {own.key} AS own_key FROM {own.table} "
        f"WHERE {own.current} AND s.started_at >= :start AND s.started_at < :end {conditions}AND {after} {order}) s "
        f"CROSS JOIN LATERAL (SELECT {page.columns}, c.id AS uid {page.source} WHERE c.id = s.call_id "
        f"AND c.started_at = s.started_at AND {' AND '.join(page.where)} OFFSET 0) x "
        + (f"ORDER BY s.own_key {o}, s.started_at {o}, s.call_id {o} " if ordered else "")
        + "LIMIT :limit"
    )


def _recorded(page: _Page, own: _Own) -> list[str]:
    """The page's filters on the figure as conditions on the processor's own column (which its index
    can answer), for the calls without ccanalytics's figure."""
    p = page.params
    out = []
    if own is _OWN["quality"]:
        out += [f"{own.recorded} {op} :{name}" for name, op in (("qbelow", "<"), ("qabove", ">")) if name in p]
    return out


def _filter_rows(conn: sa.Connection, page: _Page) -> list[dict[str, Any]]:
    """Up to :limit rows of a page without a transcript search."""
    p = page.params
    if page.sort not in _OWN:
        return [dict(r) for r in conn.execute(sa.text(page.sql()), p).mappings()]
    own = _OWN[page.sort]
    if not _own_figures(conn, page.sort):
        return [dict(r) for r in conn.execute(sa.text(page.sql()), p).mappings()]
    rows = [dict(r) for r in conn.execute(sa.text(_own_stream(page, own, "x.*")), p).mappings()]
    extra = [own.none, *_recorded(page, own)]
    bound = dict(p)
    if len(rows) >= p["limit"]:  # only the calls that come before the stream's last row
        last = rows[-1]
        cmp = ">" if page.descending else "<"  # before that row in page order
        extra.append(f"({SORTS[page.sort]}, c.started_at, c.id) {cmp} (:tk, :ts, CAST(:ti AS uuid))")
        bound.update(tk=last["sort_key"], ts=last["started_at"], ti=str(last["uid"]))
        recorded = f"coalesce({own.recorded}, -1)"
        if page.descending and last["sort_key"] > -1:  # a range of the processor's own index
            extra.append(f"{own.recorded} >= :tk")
        elif not page.descending:
            extra.append(f"({recorded} <= :tk)")
    rest = page.sql("AND " + " AND ".join(extra))
    rows += [dict(r) for r in conn.execute(sa.text(rest), bound).mappings()]
    rows.sort(key=lambda r: (r["sort_key"], r["started_at"], str(r["uid"])), reverse=page.descending)
    return rows[: p["limit"]]


def _count(conn: sa.Connection, page: _Page, plain: bool) -> Total:
    """How many calls the filters select: exact up to COUNT_CAP. ``plain``: no filter but the window
    and the quality."""
    p = page.params
    quality = any(n in p for n in ("qbelow", "qabove"))
    if plain and not quality:  # the window's calls, through the index on their start
        sql = (
            "SELECT count(*) FROM (SELECT 1 FROM calls c WHERE c.started_at >= :start AND c.started_at < :end "
            "LIMIT :cap) n"
        )
    elif quality and _own_figures(conn, "quality"):
        # a quality filter: counted by the two streams of the quality sort (each through its index)
        own = _OWN["quality"]
        if plain:
            conditions = "".join(f"AND {cond} " for name, cond in own.filters.items() if name in p)
            scored = (
                f"SELECT 1 FROM {own.table} "  # noqa: S608 — _OWN fields and filters are constants; values bound
                f"WHERE {own.current} AND s.started_at >= :start AND s.started_at < :end "
                f"{conditions}LIMIT :cap"
            )
        else:
            scored = _own_stream(replace(page, params={**p, "limit": 0}), own, "1", ordered=False).replace(
                "LIMIT :limit", "LIMIT :cap"
            )
        extra = " AND ".join([own.none, *_recorded(page, own)])
        rest = f"SELECT 1 {page.source} WHERE {' AND '.join(page.where)} AND {extra} LIMIT :cap"
        sql = (
            f"SELECT count(*) FROM (({scored}) "  # noqa: S608 — both streams built from constants; values bound
            f"UNION ALL ({rest}) LIMIT :cap) n"
        )
    else:
        sql = (
            f"SELECT count(*) FROM (SELECT 1 "  # noqa: S608 — page.source/where are code fragments; values bound
            f"{page.source} WHERE {' AND '.join(page.where)} LIMIT :cap) n"
        )
    n = conn.execute(sa.text(sql), {**p, "cap": COUNT_CAP + 1}).scalar_one()
    return Total(COUNT_CAP, "at_least") if n > COUNT_CAP else Total(n, "exact")


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
    conn: sa.Connection, page: _Page, q: Query, limit: int, cursor_start: datetime | None, count: bool
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
    vector = turn_vector("t")
    parts = []
    for n, term in enumerate(terms):
        _, indexed = _index_match(vector, term, f"d{n}")
        parts.append(
            f"(SELECT count(*) FROM (SELECT 1 FROM call_turns t "  # noqa: S608 — constants; tsqueries bound as :dN
            f"WHERE {indexed} AND {_TURN_WINDOW} LIMIT :cap) m)"
        )
    return list(conn.execute(sa.text(f"SELECT {', '.join(parts)}"), {**p, "cap": RARE_TURNS}).one())


def _slices(
    conn: sa.Connection,
    page: _Page,
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


def _estimate(conn: sa.Connection, page: _Page, calls: str, p: dict[str, Any]) -> Total:
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


def _gin(conn: sa.Connection, page: _Page, calls: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    sql = _GIN.format(
        calls=calls,
        columns=page.columns,
        source=page.source,
        where=" AND ".join(page.where),
        after=page.after("x.sort_key", "x.started_at", "x.uid"),
        order=page.order,
    )
    return [dict(r) for r in conn.execute(sa.text(sql), p).mappings()]


def _gin_count(conn: sa.Connection, page: _Page, calls: str, p: dict[str, Any]) -> Total:
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


def highlight(text: str | None, query: str | None, *, width: int = 220) -> Markup:
    """The text, HTML-escaped, shortened around the first match, with the query's words in <mark>."""
    if not text:
        return Markup("")
    words = [w for w in re.findall(r"[\w'’ʼ-]{3,}", query or "") if not w.startswith("-")]
    stems = [re.escape(w[: max(3, len(w) - 2)]) for w in words]
    pattern = re.compile("(" + "|".join(stems) + r")[\w'’ʼ-]*", re.IGNORECASE) if stems else None
    start = 0
    if pattern and (m := pattern.search(text)) and m.start() > width // 2:
        start = m.start() - width // 3
    part = text[start : start + width]
    prefix, suffix = ("…" if start else ""), ("…" if start + width < len(text) else "")
    if pattern is None:
        return Markup(escape(prefix + part + suffix))
    out, pos = [], 0
    for m in pattern.finditer(part):
        out.append(escape(part[pos : m.start()]))
        out.append(Markup("<mark>") + escape(m.group()) + Markup("</mark>"))
        pos = m.end()
    out.append(escape(part[pos:]))
    return Markup(escape(prefix)) + Markup("").join(out) + Markup(escape(suffix))


def call_detail(
    engine: Engine, call_id: str, *, tz: str = timeutil.DEFAULT_TZ, tenant: tenants.TenantArg = None
) -> dict[str, Any]:
    """One call for its page: the call, turns with their tool calls, metrics, current score, review,
    and the customer's other calls (phones masked). A call outside ``tenant`` is NotFound, as if it
    did not exist."""
    try:
        cid = uuid.UUID(str(call_id))
    except ValueError:
        raise InvalidArgument(f"not a call id: {call_id!r}") from None
    with engine.connect() as conn:
        scope = tenants.scope(conn, tenant)
        call = (
            conn.execute(
                sa.text(
                    "SELECT c.*, cca_mask_phone(c.caller_id) AS caller, "  # noqa: S608 — tenants.SQL is constant
                    "cu.name AS customer_name, "
                    "tn.name AS tenant_name FROM cca_calls c LEFT JOIN customers cu ON cu.id = c.customer_id "
                    f"LEFT JOIN tenants tn ON tn.id = c.tenant_id WHERE c.id = :id AND {tenants.SQL}"
                ),
                {"id": cid, **tenants.params(scope)},
            )
            .mappings()
            .one_or_none()
        )
        if call is None:
            raise NotFound(f"call {call_id} does not exist")
        turns = [
            dict(r)
            for r in conn.execute(
                sa.text(
                    # the speech duration and barge-in flag come with a delivered call log (cca_call_turns)
                    "SELECT turn_number, speaker, content, created_at, stt_confidence, stt_latency_ms, llm_latency_ms, "
                    "tts_latency_ms, speech_duration_ms, interrupted FROM cca_call_turns WHERE call_id = :id "
                    "ORDER BY turn_number, created_at, id"
                ),
                {"id": cid},
            ).mappings()
        ]
        tools = (
            conn.execute(
                sa.text(
                    "SELECT turn_number, tool_name, tool_args, tool_result, duration_ms, success, created_at "
                    "FROM call_tool_calls WHERE call_id = :id ORDER BY created_at, turn_number, id"
                ),
                {"id": cid},
            )
            .mappings()
            .all()
        )
        metrics = (
            conn.execute(sa.text("SELECT * FROM call_metrics WHERE call_id = :id"), {"id": cid})
            .mappings()
            .one_or_none()
        )
        review = (
            conn.execute(sa.text("SELECT * FROM review_items WHERE call_id = :id"), {"id": cid})
            .mappings()
            .one_or_none()
        )
        others = []
        if call["customer_id"] is not None:
            others = [
                dict(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT id::text AS id, started_at, scenario, transferred_to_operator, quality_score "
                        "FROM cca_calls WHERE customer_id = :cu AND id <> :id ORDER BY started_at DESC LIMIT 20"
                    ),
                    {"cu": call["customer_id"], "id": cid},
                ).mappings()
            ]
    # placed by time: the processor's turn_number of a tool call counts tool calls, not turns
    places = place_tools(
        [(t["turn_number"], t["speaker"], t["created_at"]) for t in turns], [x["created_at"] for x in tools]
    )
    by_turn: dict[int | None, list[dict]] = {}
    for x, number in zip(tools, places, strict=True):
        by_turn.setdefault(number, []).append({k: v for k, v in x.items() if k != "created_at"})
    zone = timeutil.zone(tz)
    for t in turns:
        t["tools"] = by_turn.get(t["turn_number"], [])
        t["created_at"] = t["created_at"].astimezone(zone)
    for o in others:
        o["started_at"] = o["started_at"].astimezone(zone)
    out = dict(call)
    out.pop("caller_id", None)  # only the masked number leaves the database
    out["id"] = str(out["id"])
    out["started_at"] = out["started_at"].astimezone(zone)
    return {
        "call": out,
        "turns": turns,
        "metrics": dict(metrics) if metrics else None,
        "review": dict(review) if review else None,
        "other_calls": others,
    }
