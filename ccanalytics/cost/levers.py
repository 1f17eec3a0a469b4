"""The cost levers, measured from the call logs: is self-hosted Whisper worth it at our volume, what a
TTS phrase cache would serve (``ccanalytics.cost.ttscache``), and how long the prompts of each version
are. (Model routing is ``ccanalytics.cost.router``.)

    from ccanalytics.cost import levers
    levers.whisper_break_even(engine, "2026-11-01", "2026-11-30").verdict
    levers.prompt_length_by_version(engine, "2026-11-01", "2026-11-30")

Prices come from the price book (``ccanalytics.cost.pricing``) at the dates in force, never from code. Each
measure takes ``tenant=`` (a slug or several; default every tenant): the calls it is measured on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import pricing
from ccanalytics.cost.ttscache import CacheReplay, PrecachePhrase, phrase_key, tts_cache_from_logs, tts_cache_replay
from ccanalytics.db import tenants

# the TTS cache moved to ccanalytics.cost.ttscache; code outside this repository imports it from here
__all__ = [
    "DAYS_PER_MONTH",
    "CacheReplay",
    "PrecachePhrase",
    "PromptVersionLength",
    "WhisperBreakEven",
    "phrase_key",
    "prompt_length_by_version",
    "tts_cache_from_logs",
    "tts_cache_replay",
    "whisper_break_even",
]

DAYS_PER_MONTH = 30  # the spec's break-even convention: monthly fixed cost / 30 / cost per call

# ------------------------------------------------------------------------------------ Whisper


@dataclass(frozen=True)
class WhisperBreakEven:
    """Google STT (per started increment) against self-hosted Whisper (a fixed monthly GPU cost) at the
    period's actual volume and call lengths. Fields are None when the period has no calls."""

    date_from: date
    date_to: date
    days: int
    calls: int
    calls_per_day: float
    stt_seconds_per_call: float | None
    google_usd_per_call: float | None  # what Google charges for these calls, at the price of each call's day
    whisper_usd_per_month: float
    whisper_usd_per_call: float | None  # the fixed cost shared by the current monthly volume
    break_even_calls_per_day: float | None
    monthly_saving_usd: float | None  # Google − Whisper per month at the current volume; negative: Whisper costs more
    calls_on_whisper: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date_from"], d["date_to"] = self.date_from.isoformat(), self.date_to.isoformat()
        return d


_STT_VOLUME = f"""
WITH p AS (
    SELECT * FROM jsonb_to_recordset(CAST(:prices AS jsonb)) AS p(
        component text, name text, valid_from date, valid_to date, usd_per_increment float8, increment_seconds float8)
    WHERE component = 'stt' AND name = :google AND increment_seconds > 0
),
c AS (
    SELECT (started_at AT TIME ZONE :tz)::date AS d,
           coalesce((usage ->> 'stt_seconds')::float8, duration_seconds, 0) AS s,
           coalesce(usage ->> 'stt_provider', :google) AS provider
    FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
)
SELECT count(*) AS calls,
       count(p.name) AS priced,
       coalesce(sum(c.s), 0)::float8 AS seconds,
       coalesce(sum(ceil(c.s / p.increment_seconds) * p.usd_per_increment), 0)::float8 AS google_usd,
       count(*) FILTER (WHERE c.provider = :whisper) AS on_whisper
FROM c LEFT JOIN p ON c.d >= p.valid_from AND c.d < p.valid_to
"""  # noqa: S608 — tenants.SQL is a constant filter; values are bound


def whisper_break_even(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    google: str = "google",
    whisper: str = "whisper",
    tenant: tenants.TenantArg = None,
) -> WhisperBreakEven:
    """Break-even volume of self-hosted Whisper from the period's calls per day and STT seconds.

    Google cost per call: every call's STT seconds rounded up to the increment at the Google price in
    force on its day (calls already on Whisper are priced as if on Google: that is what they would
    cost there). Whisper: the fixed monthly cost in force on the last day. Break-even calls/day =
    monthly fixed / 30 / Google cost per call; the monthly saving is at the period's calls/day. With
    ``tenant``: at those tenants' volume (as if the GPU served them alone).
    """
    book = book or pricing.load()
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    fixed = book.at("stt", whisper, last)
    if fixed is None or "fixed_usd_per_month" not in fixed.params:
        raise InvalidArgument(f"the price book has no fixed monthly price for stt.{whisper} on {last}")
    monthly = fixed.params["fixed_usd_per_month"]
    params = {
        "prices": json.dumps(book.rows()),
        "google": google,
        "whisper": whisper,
        "tz": tz,
        "start": start,
        "end": end,
    }
    with engine.connect() as conn:
        params.update(tenants.params(tenants.scope(conn, tenant)))
        row = conn.execute(sa.text(_STT_VOLUME), params).one()
    days = (last - first).days + 1
    if row.calls and row.priced < row.calls:
        raise InvalidArgument(f"the price book has no stt.{google} price for some days of {first} … {last}")
    if not row.calls:
        return WhisperBreakEven(
            first, last, days, 0, 0.0, None, None, monthly, None, None, None, 0,
            "Нет звонков за период — точку безубыточности Whisper посчитать нельзя.",
        )  # fmt: skip
    per_day = row.calls / days
    google_per_call = row.google_usd / row.calls
    monthly_calls = per_day * DAYS_PER_MONTH
    break_even = monthly / DAYS_PER_MONTH / google_per_call if google_per_call > 0 else None
    saving = google_per_call * monthly_calls - monthly
    whisper_per_call = monthly / monthly_calls
    be = f"{break_even:.0f}" if break_even is not None else "—"
    if saving > 0:
        verdict = (
            f"Whisper выгоден: {per_day:.0f} звонков/день при точке безубыточности {be}/день — экономия "
            f"≈ ${saving:,.0f} в месяц (Google ${google_per_call:.4f}/звонок против "
            f"${whisper_per_call:.4f} на Whisper)."
        )
    else:
        verdict = (
            f"Whisper пока не окупается: {per_day:.0f} звонков/день при точке безубыточности {be}/день — "
            f"переход обошёлся бы в ≈ ${-saving:,.0f} в месяц сверх Google."
        )
    return WhisperBreakEven(
        first, last, days, row.calls, round(per_day, 2), round(row.seconds / row.calls, 2),
        round(google_per_call, 6), monthly, round(whisper_per_call, 6),
        round(break_even, 1) if break_even is not None else None, round(saving, 2), row.on_whisper, verdict,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ prompt length


@dataclass(frozen=True)
class PromptVersionLength:
    prompt_version: str
    calls: int
    calls_with_usage: int
    llm_calls: int
    llm_calls_per_call: float | None
    input_tokens_per_llm_call: float | None
    output_tokens_per_llm_call: float | None
    cached_share: float | None  # cached input tokens / input tokens
    cost_per_call_usd: float | None  # total_cost_usd over the calls that have one
    llm_cost_per_call_usd: float | None  # cost_breakdown.llm over the calls that have one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BY_VERSION = f"""
WITH c AS (
    SELECT coalesce(prompt_version, 'unknown') AS v, total_cost_usd, (cost_breakdown ->> 'llm')::float8 AS llm_cost,
           (usage ->> 'llm_calls')::float8 AS n, (usage ->> 'llm_input_tokens')::float8 AS tin,
           coalesce((usage ->> 'llm_cached_input_tokens')::float8, 0) AS tcached,
           (usage ->> 'llm_output_tokens')::float8 AS tout
    FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND {tenants.SQL}
)
SELECT v, count(*) AS calls,
       count(*) FILTER (WHERE n IS NOT NULL AND tin IS NOT NULL) AS with_usage,
       coalesce(sum(n) FILTER (WHERE tin IS NOT NULL), 0)::float8 AS llm_calls,
       coalesce(sum(tin) FILTER (WHERE n IS NOT NULL), 0)::float8 AS tin,
       coalesce(sum(least(tcached, tin)) FILTER (WHERE n IS NOT NULL), 0)::float8 AS tcached,
       coalesce(sum(tout) FILTER (WHERE n IS NOT NULL AND tin IS NOT NULL), 0)::float8 AS tout,
       avg(total_cost_usd) AS cost, avg(llm_cost) AS llm_cost
FROM c GROUP BY v ORDER BY v
"""  # noqa: S608 — tenants.SQL is a constant filter; values are bound


def prompt_length_by_version(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> list[PromptVersionLength]:
    """Per prompt version: LLM calls, input/output tokens per LLM call, the cached share of the input,
    and the cost per call (from the stored cost; run ``cost.compute_costs`` first for current prices),
    over the calls of ``tenant`` (default every tenant)."""
    start, end = timeutil.period_bounds(date_from, date_to, tz)
    with engine.connect() as conn:
        p = {"start": start, "end": end, **tenants.params(tenants.scope(conn, tenant))}
        rows = conn.execute(sa.text(_BY_VERSION), p).all()

    def ratio(a: float, b: float, digits: int) -> float | None:
        return round(a / b, digits) if b else None

    return [
        PromptVersionLength(
            prompt_version=r.v,
            calls=r.calls,
            calls_with_usage=r.with_usage,
            llm_calls=int(r.llm_calls),
            llm_calls_per_call=ratio(r.llm_calls, r.with_usage, 2),
            input_tokens_per_llm_call=ratio(r.tin, r.llm_calls, 1),
            output_tokens_per_llm_call=ratio(r.tout, r.llm_calls, 1),
            cached_share=ratio(r.tcached, r.tin, 4),
            cost_per_call_usd=round(r.cost, 6) if r.cost is not None else None,
            llm_cost_per_call_usd=round(r.llm_cost, 6) if r.llm_cost is not None else None,
        )
        for r in rows
    ]
