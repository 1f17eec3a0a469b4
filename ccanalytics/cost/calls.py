"""Cost per call: priced from the call's usage at the prices in force on its day (ccanalytics.cost.pricing),
stored in ccanalytics's own cca_call_costs (read through the view cca_calls as cost_breakdown /
total_cost_usd; the processor's own calls.cost_breakdown / total_cost_usd are never written);
summaries per resolved call, scenario and prompt version; and baseline-vs-current with the saving
of each lever measured from the usage. Summaries and reports cover some tenants (``tenant=``: a slug or
several; default every tenant); pricing always covers every call."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import clock, definitions, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import fixed as fixedcost
from ccanalytics.cost import pricing
from ccanalytics.db import sqlfiles, tenants

DEFAULTS = {"stt": "google", "llm": "claude-sonnet-4", "tts": "google", "telephony": "sip"}
# usage missing: the spec's phase-1 model per LLM turn (2,500 input and 400 output tokens)
EST_INPUT_TOKENS, EST_OUTPUT_TOKENS = 2500, 400

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CostRun:
    priced: int  # calls with a price (estimated included)
    estimated: int  # of which usage was estimated from the transcript
    unpriced: int  # no price for their provider or model: left as reported
    updated: int  # rows rewritten (a re-run over unchanged calls rewrites none)


def compute_costs(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    only_new: bool = False,
    since: datetime | None = None,
) -> CostRun:
    """Price every call of the period and store the changed prices, in one transaction. With
    ``only_new``, only the finished calls that have no price of ccanalytics yet (the freshness job:
    a new call priced within seconds; the periodic run keeps every price current); with ``since``
    too, only those that started since then (the freshness job's horizon, read through the index on
    calls.started_at) — the day's calls are still counted for the share of a fixed monthly cost.

    The prices are computed by one read-only statement (PostgreSQL may run it in parallel workers)
    into a temporary table; only calls whose breakdown or total changed are rewritten. The
    transaction is REPEATABLE READ, so a call re-delivered meanwhile makes the write fail instead of
    storing a price computed from its old usage; the run is then repeated (a few times at most)."""
    book = book or pricing.load()
    start, end = timeutil.period_bounds(date_from, date_to, tz)
    params = {
        "start": start,
        "end": end,
        "tz": tz,
        "only_new": only_new,
        "price_from": since if only_new and since is not None else start,
        "prices": json.dumps(book.rows()),
        "source": book.source,
        "stt_default": DEFAULTS["stt"],
        "llm_default": DEFAULTS["llm"],
        "tts_default": DEFAULTS["tts"],
        "telephony_default": DEFAULTS["telephony"],
        "est_input_tokens": EST_INPUT_TOKENS,
        "est_output_tokens": EST_OUTPUT_TOKENS,
    }
    fixed = _fixed_monthly(book, *timeutil.resolve_days(date_from, date_to, tz))
    attempt = 1
    while True:
        try:
            return _price(engine, params, fixed)
        except sa.exc.OperationalError as exc:
            if attempt >= RETRIES or not isinstance(exc.orig, psycopg.errors.SerializationFailure):
                raise
            attempt += 1
            log.info("calls changed while they were priced; pricing again (attempt %d)", attempt)


RETRIES = 3
# the calls whose price changes, locked FOR KEY SHARE: under REPEATABLE READ a call updated or
# re-delivered since the snapshot makes this fail (and the run is repeated), while the processor's
# own UPDATE of a call is never blocked by it (KEY SHARE does not conflict with a non-key update)
_CHECK = """
SELECT 1 FROM calls c JOIN cost_priced t ON t.changed AND c.id = t.id AND c.started_at = t.started_at
ORDER BY c.id FOR KEY SHARE OF c
"""
_APPLY = """
INSERT INTO cca_call_costs AS k (call_id, started_at, breakdown, total_usd)
SELECT t.id, t.started_at, t.breakdown, t.total FROM cost_priced t WHERE t.changed
ON CONFLICT (call_id, started_at) DO UPDATE
SET breakdown = EXCLUDED.breakdown, total_usd = EXCLUDED.total_usd, priced_at = now()
"""
# the rewritten calls' hours, for the incremental daily_stats (migration 008)
_NOTE_CHANGES = """
WITH hours AS (
    SELECT min(started_at) AS first_at, max(started_at) AS last_at
    FROM cost_priced WHERE changed GROUP BY date_trunc('hour', started_at)
),
pruned AS (DELETE FROM call_changes WHERE changed_at < now() - interval '35 days')
INSERT INTO call_changes (started_at, source)
SELECT first_at, 'pricing' FROM hours
UNION ALL
SELECT last_at, 'pricing' FROM hours WHERE last_at > first_at
"""
_COUNTS = """
SELECT count(*) FILTER (WHERE estimated AND NOT unpriced) AS estimated, count(*) FILTER (WHERE unpriced) AS unpriced
FROM cost_priced
"""


def _fixed_monthly(book: pricing.PriceBook, first: date, last: date) -> dict[tuple[str, date], float]:
    """(provider, day) → the fixed monthly STT price in force that day, for the days of the period."""
    out = {}
    for p in book.prices:
        if p.component != "stt" or "fixed_usd_per_month" not in p.params:
            continue
        day = max(first, p.valid_from)
        while day <= last and day < p.valid_to:
            out[(p.name, day)] = p.params["fixed_usd_per_month"]
            day += timedelta(days=1)
    return out


def _price(engine: Engine, params: dict[str, Any], fixed: dict[tuple[str, date], float]) -> CostRun:
    with engine.begin() as conn:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        volume = conn.execute(sa.text(sqlfiles.query("call_costs_volume")), params).all()
        days = fixedcost.shares(conn, [(r.d, r.provider, r.n) for r in volume], fixed, clock.now(), params["tz"])
        conn.execute(sa.text(sqlfiles.query("call_costs")), {**params, "days": json.dumps(fixedcost.as_params(days))})
        conn.execute(sa.text("ANALYZE cost_priced"))
        conn.execute(sa.text(_CHECK)).all()
        updated = conn.execute(sa.text(_APPLY)).rowcount
        if updated:
            conn.execute(sa.text(_NOTE_CHANGES))
        row = conn.execute(sa.text(_COUNTS)).one()
    in_period = sum(r.n for r in volume)
    return CostRun(in_period - row.unpriced, row.estimated, row.unpriced, updated)


_PERIOD = """
SELECT count(*) AS calls,
       count(*) FILTER (WHERE NOT transferred_to_operator) AS resolved,
       count(total_cost_usd) AS priced,
       count(total_cost_usd) FILTER (WHERE NOT transferred_to_operator) AS priced_resolved,
       coalesce(sum(total_cost_usd), 0)::float8 AS total,
       coalesce(sum((cost_breakdown ->> 'stt')::float8), 0) AS stt,
       coalesce(sum((cost_breakdown ->> 'llm')::float8), 0) AS llm,
       coalesce(sum((cost_breakdown ->> 'tts')::float8), 0) AS tts,
       coalesce(sum((cost_breakdown ->> 'telephony')::float8), 0) AS telephony,
       count(*) FILTER (WHERE (cost_breakdown ->> 'estimated')::boolean) AS estimated,
       coalesce(sum((usage ->> 'tts_chars')::float8), 0) AS tts_chars,
       coalesce(sum((usage ->> 'tts_cached_chars')::float8), 0) AS tts_cached,
       coalesce(sum((usage ->> 'llm_calls')::float8), 0) AS llm_calls,
       coalesce(sum((usage ->> 'llm_input_tokens')::float8), 0) AS llm_in
FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants}
"""
_BY = """
SELECT {key} AS key, count(*) AS calls, count(*) FILTER (WHERE NOT transferred_to_operator) AS resolved,
       count(total_cost_usd) AS priced,
       count(total_cost_usd) FILTER (WHERE NOT transferred_to_operator) AS priced_resolved,
       coalesce(sum(total_cost_usd), 0)::float8 AS total,
       coalesce(sum((usage ->> 'stt_seconds')::float8), 0) AS stt_seconds,
       coalesce(sum((usage ->> 'llm_input_tokens')::float8), 0) AS llm_in,
       coalesce(sum((usage ->> 'llm_cached_input_tokens')::float8), 0) AS llm_cached,
       coalesce(sum((usage ->> 'llm_output_tokens')::float8), 0) AS llm_out,
       coalesce(sum((usage ->> 'llm_calls')::float8), 0) AS llm_calls,
       coalesce(sum((cost_breakdown ->> 'stt')::float8), 0) AS stt_cost
FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants} GROUP BY 1 ORDER BY 2 DESC
"""
_KEYS = {
    "scenario": "coalesce(scenario, 'unknown')",
    "prompt_version": "coalesce(prompt_version, 'unknown')",
    "llm_model": "coalesce(usage ->> 'llm_model', 'unknown')",
    "stt_provider": "coalesce(usage ->> 'stt_provider', 'unknown')",
}


def _per(total: float, n: int) -> float | None:
    return definitions.cost_per_call(total, n)


def _read_period(
    engine: Engine, first: date, last: date, tz: str, scope: tenants.Scope = None
) -> tuple[sa.Row[*tuple[Any, ...]], dict[str, Sequence[sa.Row[*tuple[Any, ...]]]]]:
    """The period's totals row and its rows per breakdown key, of the tenants ``scope`` (one
    connection, five queries)."""
    start, end = timeutil.period_bounds(first, last, tz)
    p = {"start": start, "end": end, **tenants.params(scope)}
    with engine.connect() as conn:
        t = conn.execute(sa.text(_PERIOD.format(tenants=tenants.SQL)), p).one()
        by = {k: conn.execute(sa.text(_BY.format(key=expr, tenants=tenants.SQL)), p).all() for k, expr in _KEYS.items()}
    return t, by


def _summary(
    first: date, last: date, tz: str, t: Any, by: Mapping[str, Sequence[Any]], scope: tenants.Scope = None
) -> dict[str, Any]:
    return {
        "period": {
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "tz": tz,
            "tenants": list(scope) if scope is not None else None,
        },
        "calls": t.calls,
        "resolved_calls": t.resolved,
        "priced_calls": t.priced,
        "unpriced_calls": t.calls - t.priced,
        "total_cost_usd": round(t.total, 6),
        "cost_per_call_usd": definitions.cost_per_call(t.total, t.priced),
        "cost_per_resolved_call_usd": definitions.cost_per_resolved_call(t.total, t.priced_resolved),
        "components_per_call_usd": {k: _per(getattr(t, k), t.priced) for k in definitions.PRICED_COMPONENTS},
        "estimated_calls": t.estimated,
        "tts_cache_hit_rate": round(t.tts_cached / t.tts_chars, 4) if t.tts_chars else None,
        "llm_input_tokens_per_llm_call": round(t.llm_in / t.llm_calls, 1) if t.llm_calls else None,
        **{
            f"by_{k}": [
                {
                    "key": r.key,
                    "calls": r.calls,
                    "cost_per_call_usd": definitions.cost_per_call(r.total, r.priced),
                    "cost_per_resolved_call_usd": definitions.cost_per_resolved_call(r.total, r.priced_resolved),
                }
                for r in rows
            ]
            for k, rows in by.items()
        },
    }


def cost_summary(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> dict[str, Any]:
    """Cost of a period's calls of ``tenant`` (a slug or several; default every tenant): per call, per
    resolved call, by component, scenario, prompt version, model; and, over every tenant, the fixed
    cost of days on which an in-service fixed-cost provider had no call (``fixed_cost_unallocated_usd``:
    idle capacity, charged to no call — ccanalytics.cost.fixed). Idle capacity is no tenant's: a
    summary of some tenants has None there (their calls carry their share of the fixed cost)."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    scope = tenants.scope(engine, tenant)
    out = _summary(first, last, tz, *_read_period(engine, first, last, tz, scope), scope)
    out["fixed_cost_unallocated_usd"] = (
        round(unallocated_fixed_cost(engine, first, last, book=book, tz=tz), 6) if scope is None else None
    )
    return out


_IN_SERVICE = """
SELECT (x.started_at AT TIME ZONE :tz)::date AS d, coalesce(x.usage ->> 'stt_provider', :stt_default) AS provider
FROM cca_calls x WHERE x.started_at >= :start AND x.started_at < :end AND x.usage ->> 'stt_provider' = ANY(:providers)
GROUP BY 1, 2
"""


def unallocated_fixed_cost(
    engine: Engine, first: date, last: date, *, book: pricing.PriceBook | None = None, tz: str = timeutil.DEFAULT_TZ
) -> float:
    """The daily shares of fixed monthly costs that fell on days of [first, last] without a call on
    the provider, in months in which the provider served calls (idle capacity)."""
    fixed = _fixed_monthly(book or pricing.load(), first, last)
    providers = sorted({p for p, _ in fixed})
    if not providers:
        return 0.0
    month_from = first.replace(day=1)
    month_to = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
    start, end = timeutil.day_start(month_from, tz), timeutil.day_start(month_to, tz)
    with engine.connect() as conn:
        used = {
            (r.provider, r.d)
            for r in conn.execute(
                sa.text(_IN_SERVICE),
                {"start": start, "end": end, "tz": tz, "providers": providers, "stt_default": DEFAULTS["stt"]},
            )
        }
    months = {(p, d.replace(day=1)) for p, d in used}
    return sum(
        fixedcost.daily_share(monthly, d)
        for (p, d), monthly in fixed.items()
        if (p, d.replace(day=1)) in months and (p, d) not in used
    )


def _parse_range(text: str, tz: str) -> tuple[date, date]:
    try:
        a, b = text.split(":")
        return timeutil.to_date(a, tz), timeutil.to_date(b, tz)
    except ValueError:
        raise InvalidArgument(f"a period is FROM:TO (YYYY-MM-DD:YYYY-MM-DD), not {text!r}") from None


@dataclass(frozen=True)
class Lever:
    lever: str
    saving_per_call_usd: float
    saving_pct_of_baseline: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_report(
    engine: Engine,
    baseline: tuple[date, date] | str,
    current: tuple[date, date] | str,
    *,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> dict[str, Any]:
    """Baseline vs current cost per call (and per resolved call), and what each lever saved, over the
    calls of ``tenant`` (a slug or several; default every tenant) in both periods.

    Each lever is the current period's usage priced as if the lever were at its baseline level,
    minus its actual price, per call: TTS phrase cache (cached share of characters), model routing
    (calls on a cheaper model than the default), STT provider (calls on another provider), prompt
    length (input tokens per LLM call). Whatever the levers do not explain is "other" (volume mix,
    call length, price changes)."""
    book = book or pricing.load()
    b = timeutil.resolve_days(*(_parse_range(baseline, tz) if isinstance(baseline, str) else baseline), tz)
    c = timeutil.resolve_days(*(_parse_range(current, tz) if isinstance(current, str) else current), tz)
    scope = tenants.scope(engine, tenant)
    (bt, bby), (ct, cby) = _read_period(engine, *b, tz, scope), _read_period(engine, *c, tz, scope)
    base, cur = _summary(*b, tz, bt, bby, scope), _summary(*c, tz, ct, cby, scope)
    if not base["calls"] or not cur["calls"]:
        raise InvalidArgument("both periods need calls")
    models = {r.key: r for r in cby["llm_model"]}
    stts = {r.key: r for r in cby["stt_provider"]}
    day = c[1]
    n = ct.priced or ct.calls  # the levers are per priced call, as cost per call is
    default_llm = book.at("llm", DEFAULTS["llm"], day)
    levers = []
    # TTS cache
    tts_price = book.at("tts", DEFAULTS["tts"], day)
    if tts_price and ct.tts_chars:
        base_share = bt.tts_cached / bt.tts_chars if bt.tts_chars else 0.0
        cur_share = ct.tts_cached / ct.tts_chars
        saved = (cur_share - base_share) * ct.tts_chars * tts_price.params["usd_per_1m_chars"] / 1e6
        levers.append(("tts_cache", saved / n, f"cache hit rate {base_share:.0%} → {cur_share:.0%} of characters"))
    # model routing: calls on another model, priced at the default model
    if default_llm:
        saved, routed = 0.0, 0
        for model, r in models.items():
            price = book.at("llm", model, day)
            if model in (DEFAULTS["llm"], "unknown") or price is None:
                continue
            routed += r.calls
            saved += _llm_cost(default_llm.params, r) - _llm_cost(price.params, r)
        levers.append(("model_routing", saved / n, f"{routed / n:.0%} of calls on a cheaper model"))
    # STT provider
    google = book.at("stt", DEFAULTS["stt"], day)
    if google:
        saved = 0.0
        for provider, r in stts.items():
            if provider in (DEFAULTS["stt"], "unknown"):
                continue
            # per-call 15-s rounding is approximated by the seconds; the calls' actual STT cost is stored
            as_google = r.stt_seconds / google.params["increment_seconds"] * google.params["usd_per_increment"]
            saved += as_google - r.stt_cost
        levers.append(("stt_provider", saved / n, "calls on self-hosted or another STT provider"))
    # prompt length: input tokens per LLM call against the baseline
    if default_llm and bt.llm_calls and ct.llm_calls:
        base_tokens, cur_tokens = bt.llm_in / bt.llm_calls, ct.llm_in / ct.llm_calls
        saved = (base_tokens - cur_tokens) * ct.llm_calls * default_llm.params["input_per_1m"] / 1e6
        levers.append(("prompt_length", saved / n, f"input tokens per LLM call {base_tokens:.0f} → {cur_tokens:.0f}"))
    reduction = base["cost_per_call_usd"] - cur["cost_per_call_usd"]
    explained = sum(s for _, s, _ in levers)
    levers.append(("other", reduction - explained, "volume mix, call length and price changes"))
    return {
        "tenants": list(scope) if scope is not None else None,
        "baseline": base,
        "current": cur,
        "reduction_pct": round(100 * reduction / base["cost_per_call_usd"], 2) if base["cost_per_call_usd"] else None,
        "reduction_per_resolved_call_pct": round(
            100
            * (base["cost_per_resolved_call_usd"] - cur["cost_per_resolved_call_usd"])
            / base["cost_per_resolved_call_usd"],
            2,
        )
        if base["cost_per_resolved_call_usd"] and cur["cost_per_resolved_call_usd"]
        else None,
        "levers": [
            Lever(name, round(saving, 6), round(100 * saving / base["cost_per_call_usd"], 2), detail).to_dict()
            for name, saving, detail in levers
        ],
    }


def change_words(reduction_pct: float | None) -> str:
    """A reduction in percent as words: "lower by 25.5%", "higher by 2.1%", "unchanged", "not computed"."""
    if reduction_pct is None:
        return "not computed"
    if abs(reduction_pct) < 0.005:
        return "unchanged"
    return f"{'lower' if reduction_pct > 0 else 'higher'} by {abs(reduction_pct):.1f}%"


def _llm_cost(price: dict[str, float], r: Any) -> float:
    cached = min(r.llm_cached, r.llm_in)
    usd: float = (
        (r.llm_in - cached) * price["input_per_1m"]
        + cached * price.get("cached_input_per_1m", price["input_per_1m"])
        + r.llm_out * price["output_per_1m"]
    ) / 1e6
    return usd
