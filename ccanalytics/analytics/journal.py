"""The call journal: filtered, searchable, sortable pages of calls with keyset pagination, and the
details of one call. Phone numbers are masked; transcript search uses ``cca_search_vector(content)``,
the expression ccanalytics's GIN index on the processor's call_turns is built on, always bounded by the
date range. A customer is one tenant's (customers are unique per tenant and phone): a call's "other
calls" are its customer's, not every call of the number. Both take ``tenant`` (a slug, several, or None
for every tenant): a call of another tenant is not listed, and its details are NotFound."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics import journalpage, journalsearch
from ccanalytics.analytics.journalpage import COUNT_CAP, SORTS, Total
from ccanalytics.analytics.journalsearch import (
    ESTIMATE_SAMPLE,
    PROBE_CALLS,
    RARE_TURNS,
    SEARCH_PARALLEL,
    SLICE_DAYS,
    SLICE_GROWTH,
    turn_vector,
)
from ccanalytics.analytics.journaltext import Query, highlight, parse_query
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.db import tenants
from ccanalytics.ingest.dialogue import place_tools

# the names this module had before its page query, search and search text moved out: code outside this
# repository imports them as ccanalytics.journal (ccanalytics.MOVED). Setting a search plan's constant
# here changes nothing: set it on journalsearch (COUNT_CAP: journalpage).
__all__ = [
    "COUNT_CAP",
    "ESTIMATE_SAMPLE",
    "MAX_LIMIT",
    "PROBE_CALLS",
    "RARE_TURNS",
    "SEARCH_PARALLEL",
    "SLICE_DAYS",
    "SLICE_GROWTH",
    "SORTS",
    "JournalPage",
    "Query",
    "Total",
    "call_detail",
    "highlight",
    "parse_query",
    "search",
    "turn_vector",
]
MAX_LIMIT = 200


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
    _check_page(sort, limit, after, before)
    first_day, last_day = timeutil.resolve_days(date_from, date_to, tz, default_days=7)
    start, end = timeutil.period_bounds(date_from, date_to, tz, default_days=7)
    where, p, plain = journalpage.filters(
        engine,
        start,
        end,
        limit,
        scenario=scenario,
        transferred=transferred,
        quality_below=quality_below,
        quality_above=quality_above,
        prompt_version=prompt_version,
        review_status=review_status,
        tenant=tenant,
    )
    query = (text or "").strip()
    if query:
        if len(query) > 200:
            raise InvalidArgument("the search text is limited to 200 characters")
        p["q"] = query
    cursor = after or before
    backwards = before is not None  # the page before ``before``: the other direction, then reversed
    desc = descending != backwards
    cursor_start: datetime | None = None
    if cursor:
        k, cursor_start, i = _uncursor(cursor)
        p.update(ck=k, cs=cursor_start, ci=i)
    page = journalpage.page(where, sort, desc, p)
    total = None
    with engine.connect() as conn:
        if query:
            rows, total = journalsearch.find(conn, page, query, limit, cursor_start, count)
        else:
            rows = journalpage.filter_rows(conn, page)
            if count:
                total = journalpage.count_calls(conn, page, plain)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    next_cursor, prev_cursor = _cursors(rows, sort, more=more, backwards=backwards, after=after)
    for r in rows:
        r.pop("sort_key", None)
        r.pop("uid", None)
        r.pop("matched", None)
        r["started_at"] = r["started_at"].astimezone(timeutil.zone(tz))
    return JournalPage(rows, next_cursor, prev_cursor, total, first_day, last_day)


def _check_page(sort: str, limit: int, after: str | None, before: str | None) -> None:
    if sort not in SORTS:
        raise InvalidArgument(f"sort must be one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
    if after and before:
        raise InvalidArgument("a page is either after one cursor or before another")


def _cursors(
    rows: list[dict[str, Any]], sort: str, *, more: bool, backwards: bool, after: str | None
) -> tuple[str | None, str | None]:
    """The page's next and previous cursors."""

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
    return next_cursor, prev_cursor


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
        conn.execute(sa.text(journalpage.FIXED_JOIN_ORDER))  # the call and its lookups, as written
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
