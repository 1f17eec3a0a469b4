"""The journal's page query: filters, sort orders, cursor conditions, a quality or cost sort's streams, the count."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import tenants

SORTS = {
    "date": "c.started_at",
    "quality": "coalesce(c.quality_score, -1)",
    "cost": "coalesce(c.total_cost_usd, -1)",
    "duration": "coalesce(c.duration_seconds, -1)",
}
COUNT_CAP = 10_000  # a page's total is counted exactly up to this many calls, else "more than COUNT_CAP"
# A page's query joins the seven tables of the cca_calls view (and the review queue). PostgreSQL plans it
# in ~3.7 ms, of which ~3 ms go to searching join orders, to run it in ~0.7 ms; the order as written
# (the window's calls first, then each lookup by key) is the plan it picks anyway. So the page and the
# call page keep the written order (planning ~0.6 ms; docs/benchmarks.md, Serving) — but for a filter
# on review status, whose plan starts from the review queue (4 ms, against 16–20 ms in written order).
FIXED_JOIN_ORDER = "SET LOCAL join_collapse_limit = 1"


@dataclass(frozen=True)
class Total:
    """How many calls match a journal page's filters and search, as the page can tell cheaply:
    ``exact``; ``at_least`` (counting stopped at COUNT_CAP, or the search is not counted); ``estimate``
    (a frequent search: the matches of the newest slice of the window scaled to the window)."""

    value: int
    kind: str  # "exact" | "at_least" | "estimate"


def filters(
    engine: Engine,
    start: datetime,
    end: datetime,
    limit: int,
    *,
    scenario: str | None,
    transferred: bool | None,
    quality_below: float | None,
    quality_above: float | None,
    prompt_version: str | None,
    review_status: str | None,
    tenant: tenants.TenantArg,
) -> tuple[list[str], dict[str, Any], bool]:
    """A page's filters as conditions (on cca_calls c and review_items r), their values with :limit (one
    row more than the page shows), and whether the window and the quality are the only filters (``plain``)."""
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
    plain = not (scenario or transferred is not None or prompt_version or scope is not None or review_status)
    return where, p, plain


def page(where: list[str], sort: str, descending: bool, params: dict[str, Any]) -> Page:
    """The query of a page of calls with the ``where`` filters, in ``sort`` order."""
    key = SORTS[sort]
    columns = (
        f"c.id::text AS id, c.started_at, c.duration_seconds, c.scenario, c.transferred_to_operator, "
        f"c.transfer_reason, c.quality_score, c.total_cost_usd, c.prompt_version, c.order_id, c.fitting_booking_id, "
        f"c.tenant, cca_mask_phone(c.caller_id) AS caller, r.status AS review_status, {key} AS sort_key"
    )
    return Page(
        columns, "FROM cca_calls c LEFT JOIN review_items r ON r.call_id = c.id", where, sort, descending, params
    )


@dataclass(frozen=True)
class Page:
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


def _own_stream(page: Page, own: _Own, select: str, *, ordered: bool = True) -> str:
    """The calls with ccanalytics's figure in the window, in its index's order (``ordered``), each
    looked up in cca_calls (a nested loop: OFFSET 0 keeps it one) for the page's filters. The order is
    the outer query's only: an ORDER BY inside the subquery kept it from being pulled up, and the
    planner then sorted the window's figures instead of walking their index (a cost sort over 30 days at
    200k calls: 14–35 ms → 1.7 ms, the same rows)."""
    p, o = page.params, page.order
    conditions = "".join(f"AND {cond} " for name, cond in own.filters.items() if name in p)
    after = page.after(own.key, "s.started_at", "s.call_id") if ordered else "TRUE"
    return (
        f"SELECT {select} "  # noqa: S608 — select is "x.*"/"1"; _OWN constants, Page parts; values bound
        f"FROM (SELECT s.call_id, s.started_at, {own.key} AS own_key FROM {own.table} "
        f"WHERE {own.current} AND s.started_at >= :start AND s.started_at < :end {conditions}AND {after}) s "
        f"CROSS JOIN LATERAL (SELECT {page.columns}, c.id AS uid {page.source} WHERE c.id = s.call_id "
        f"AND c.started_at = s.started_at AND {' AND '.join(page.where)} OFFSET 0) x "
        + (f"ORDER BY s.own_key {o}, s.started_at {o}, s.call_id {o} " if ordered else "")
        + "LIMIT :limit"
    )


def _recorded(page: Page, own: _Own) -> list[str]:
    """The page's filters on the figure as conditions on the processor's own column (which its index
    can answer), for the calls without ccanalytics's figure."""
    p = page.params
    out = []
    if own is _OWN["quality"]:
        out += [f"{own.recorded} {op} :{name}" for name, op in (("qbelow", "<"), ("qabove", ">")) if name in p]
    return out


def filter_rows(conn: sa.Connection, page: Page) -> list[dict[str, Any]]:
    """Up to :limit rows of a page without a transcript search."""
    p = page.params
    if "review" not in p:
        conn.execute(sa.text(FIXED_JOIN_ORDER))
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


def count_calls(conn: sa.Connection, page: Page, plain: bool) -> Total:
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
