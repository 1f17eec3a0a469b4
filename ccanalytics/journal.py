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

from . import tenants, timeutil
from .dialogue import place_tools
from .errors import InvalidArgument, NotFound

SORTS = {
    "date": "c.started_at",
    "quality": "coalesce(c.quality_score, -1)",
    "cost": "coalesce(c.total_cost_usd, -1)",
    "duration": "coalesce(c.duration_seconds, -1)",
}
MAX_LIMIT = 200


@dataclass(frozen=True)
class JournalPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


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


# a transcript search: the calls with a matching turn inside the window (turns are partitioned on their
# own stamps, within an hour before and 7 hours after their call's start)
_TURN_WINDOW = (
    "t.created_at >= CAST(:start AS timestamptz) - interval '1 hour' "
    "AND t.created_at < CAST(:end AS timestamptz) + interval '7 hours'"
)
# A search takes one of three plans (docs/benchmarks.md, Journal, measures them at 1M calls against
# ILIKE). The vector of a turn is computed from its text (the processor's call_turns has no column for
# it), so a turn tested without the GIN index costs its to_tsvector.
# - GIN: the matching turns of the window through the GIN index, grouped into calls, and only those
#   calls looked up (each in the partition its turns bound); its cost grows with the number of matches,
#   so it answers rare words at any window.
# - slices (date order): the GIN plan over the newest SLICE_DAYS of the window, then over slices
#   SLICE_GROWTH times longer, until the page is full: frequent words fill it in the first slice.
# - probe first (other orders): the first PROBE_CALLS calls in page order, each tested through its own
#   turns, stopping at a full page; then the GIN plan over the window if they do not fill it.
# Which one: the matching turns of the window are counted through the GIN index, stopping at
# RARE_TURNS; fewer is a rare query (GIN), else slices (date order) or the probe (other orders).
PROBE_CALLS = 500  # calls tested one by one before the index (0: never probe)
RARE_TURNS = 300  # a query with fewer matching turns in the window skips the probe (0: never skip it)
SLICE_DAYS = 0.25  # the first slice of a date-ordered search (0: no slices, the GIN plan over the window)
SLICE_GROWTH = 4
# the calls with a matching turn, each looked up (a nested loop, OFFSET 0 keeps it one) in the partition
# its first matching turn bounds, then sorted; the first matching turn is the snippet
_GIN = (
    "WITH m AS MATERIALIZED (SELECT t.call_id, min(t.created_at) AS at, "
    "(array_agg(t.content ORDER BY t.turn_number))[1] AS snippet FROM call_turns t "
    "WHERE {match} AND {window} GROUP BY t.call_id) "
    "SELECT x.* FROM m CROSS JOIN LATERAL (SELECT {columns}, c.id AS uid, m.snippet {source} "
    "WHERE c.id = m.call_id AND c.started_at > m.at - interval '7 hours' "
    "AND c.started_at <= m.at + interval '1 hour' AND {where} OFFSET 0) x "
    "ORDER BY x.sort_key {order}, x.started_at {order}, x.uid {order} LIMIT :limit"
)


@dataclass(frozen=True)
class _Page:
    """The parts of one journal page's query (a text search fills them in per plan)."""

    columns: str
    source: str
    where: list[str]
    ordering: str
    order: str
    params: dict[str, Any]
    match: str = ""  # the turn condition of the GIN plan (see _index_match)


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
    limit: int = 50,
    tz: str = timeutil.DEFAULT_TZ,
) -> JournalPage:
    """One page of the journal. ``after`` is the ``next_cursor`` of the previous page."""
    if sort not in SORTS:
        raise InvalidArgument(f"sort must be one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
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
    key = SORTS[sort]
    order = "DESC" if descending else "ASC"
    if after:
        k, s, i = _uncursor(after)
        cmp = "<" if descending else ">"
        if sort == "date":
            where.append(f"(c.started_at, c.id) {cmp} (:cs, CAST(:ci AS uuid))")
        else:
            where.append(f"({key}, c.started_at, c.id) {cmp} (:ck, :cs, CAST(:ci AS uuid))")
        p.update(ck=k, cs=s, ci=i)
    columns = (
        f"c.id::text AS id, c.started_at, c.duration_seconds, c.scenario, c.transferred_to_operator, "
        f"c.transfer_reason, c.quality_score, c.total_cost_usd, c.prompt_version, c.order_id, c.fitting_booking_id, "
        f"c.tenant, cca_mask_phone(c.caller_id) AS caller, r.status AS review_status, {key} AS sort_key"
    )
    ordering = f"ORDER BY {key} {order}, c.started_at {order}, c.id {order}"
    source = "FROM cca_calls c LEFT JOIN review_items r ON r.call_id = c.id"
    with engine.connect() as conn:
        if query:
            page = _Page(columns, source, where, ordering, order, p)
            rows = _text_rows(conn, page, sort, descending, limit, p.get("cs"))
        else:
            sql = f"SELECT {columns} {source} WHERE {' AND '.join(where)} {ordering} LIMIT :limit"
            rows = [dict(r) for r in conn.execute(sa.text(sql), p).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        missing = [r for r in rows if "snippet" not in r] if query else []
        if missing:  # the probe's rows: the first matching turn of each call, through its own turns
            snippets = dict(
                conn.execute(
                    sa.text(
                        "SELECT x.id::text, s.content "
                        "FROM unnest(CAST(:ids AS uuid[]), CAST(:starts AS timestamptz[])) AS x(id, started_at) "
                        "CROSS JOIN LATERAL (SELECT t.content FROM call_turns t "
                        "WHERE t.call_id = x.id AND t.created_at >= x.started_at - interval '1 hour' "
                        "AND t.created_at < x.started_at + interval '7 hours' "
                        # the function of @@: tested on the call's turns, never through the GIN index
                        f"AND ts_match_vq({turn_vector('t')}, cca_search_query(:q)) ORDER BY t.turn_number LIMIT 1) s"
                    ),
                    {"ids": [r["id"] for r in missing], "starts": [r["started_at"] for r in missing], "q": query},
                ).all()
            )
            for r in missing:
                r["snippet"] = snippets.get(r["id"])
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = _cursor(
            [float(last["sort_key"]) if sort != "date" else 0.0, last["started_at"].isoformat(), last["id"]]
        )
    for r in rows:
        r.pop("sort_key", None)
        r.pop("uid", None)
        r["started_at"] = r["started_at"].astimezone(timeutil.zone(tz))
    return JournalPage(rows, cursor)


def _index_match(conn: sa.Connection, vector: str, q: str) -> tuple[str, str]:
    """The turn condition of the GIN plan, and the part of it the GIN index answers alone. A phrase
    (``"…"``: words in order) is not decided by the index: each candidate turn with all its words would
    be rechecked, its vector computed from its text, before the date bound is tested. So the index is
    asked for the words (``<->`` read as ``&``: every phrase match has them all), and the phrase is a
    filter tested after the date bound (``ts_match_vq``, the function of ``@@``, which the planner does
    not match to the index)."""
    exact = f"{vector} @@ cca_search_query(:q)"
    text = conn.execute(sa.text("SELECT CAST(cca_search_query(:q) AS text)"), {"q": q}).scalar_one()
    if "<" not in text or "!" in text:
        return exact, exact
    words = f"{vector} @@ CAST(regexp_replace(CAST(cca_search_query(:q) AS text), '<[0-9-]+>', '&', 'g') AS tsquery)"
    return f"{words} AND ts_match_vq({vector}, cca_search_query(:q))", words


def _text_rows(
    conn: sa.Connection, page: _Page, sort: str, descending: bool, limit: int, cursor_start: datetime | None
) -> list[dict[str, Any]]:
    """Up to ``limit`` + 1 rows of a text search, by the plan that suits the query (see PROBE_CALLS)."""
    vector = turn_vector("t")
    p = page.params
    match, indexed = _index_match(conn, vector, p["q"])
    page = replace(page, match=match)
    if _rare(conn, indexed, p):
        return _gin(conn, page, p)
    if sort == "date" and SLICE_DAYS:
        return _slices(conn, page, descending, limit, cursor_start)
    if PROBE_CALLS:
        # the first PROBE_CALLS calls in page order, each tested through its own turns (in the partitions
        # its start bounds): when they hold a full page of matches, that page is the answer (they are a
        # prefix of the ordered calls)
        probe = (
            f"SELECT * FROM (SELECT {page.columns}, c.id AS uid {page.source} WHERE {' AND '.join(page.where)} "
            f"{page.ordering} LIMIT :probe) c "
            f"CROSS JOIN LATERAL (SELECT bool_or({vector} @@ cca_search_query(:q)) AS hit "
            f"FROM call_turns t WHERE t.call_id = c.uid AND {_TURN_WINDOW} "
            "AND t.created_at >= c.started_at - interval '1 hour' "
            "AND t.created_at < c.started_at + interval '7 hours') h "
            f"WHERE h.hit ORDER BY c.sort_key {page.order}, c.started_at {page.order}, c.uid {page.order} LIMIT :limit"
        )
        found = [dict(r) for r in conn.execute(sa.text(probe), {**p, "probe": PROBE_CALLS}).mappings()]
        if len(found) > limit:
            return [{k: v for k, v in r.items() if k != "hit"} for r in found]
    return _gin(conn, page, p)


def _slices(
    conn: sa.Connection, page: _Page, descending: bool, limit: int, cursor_start: datetime | None
) -> list[dict[str, Any]]:
    """The GIN plan over slices of the window from the page's end, each SLICE_GROWTH times longer than
    the one before, until the page is full; the slices' calls follow one another in page order."""
    p = page.params
    # from the window's first or last call (an end of the day in the future holds none), or the cursor's
    first, last = conn.execute(
        sa.text("SELECT min(started_at), max(started_at) FROM calls WHERE started_at >= :start AND started_at < :end"),
        p,
    ).one()
    if first is None:
        return []
    start, end = max(p["start"], first), min(p["end"], last + timedelta(microseconds=1))
    if cursor_start is not None:
        if descending:
            end = min(end, cursor_start + timedelta(microseconds=1))
        else:
            start = max(start, cursor_start)
    rows: list[dict[str, Any]] = []
    span = timedelta(days=SLICE_DAYS)
    while start < end and len(rows) <= limit:
        if descending:
            bounds = {"start": max(start, end - span), "end": end}
            end = bounds["start"]
        else:
            bounds = {"start": start, "end": min(end, start + span)}
            start = bounds["end"]
        rows += _gin(conn, page, {**p, **bounds, "limit": limit + 1 - len(rows)})
        span *= SLICE_GROWTH
    return rows


def _gin(conn: sa.Connection, page: _Page, p: dict[str, Any]) -> list[dict[str, Any]]:
    sql = _GIN.format(
        match=page.match,
        window=_TURN_WINDOW,
        columns=page.columns,
        source=page.source,
        where=" AND ".join(page.where),
        order=page.order,
    )
    return [dict(r) for r in conn.execute(sa.text(sql), p).mappings()]


def _rare(conn: sa.Connection, match: str, p: dict[str, Any]) -> bool:
    """Whether fewer than RARE_TURNS turns of the window match ``match`` (the part of the search the GIN
    index answers), counted through the index and stopping at RARE_TURNS (a rare word costs a few index
    pages; a frequent one stops early)."""
    if not RARE_TURNS:
        return False
    found = conn.execute(
        sa.text(f"SELECT count(*) FROM (SELECT 1 FROM call_turns t WHERE {match} AND {_TURN_WINDOW} LIMIT :cap) m"),
        {"q": p["q"], "start": p["start"], "end": p["end"], "cap": RARE_TURNS},
    ).scalar_one()
    return found < RARE_TURNS


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
                    "SELECT c.*, cca_mask_phone(c.caller_id) AS caller, cu.name AS customer_name, "
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
