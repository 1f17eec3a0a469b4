"""The cost levers, measured from the call logs: is self-hosted Whisper worth it at our volume, what a
TTS phrase cache would serve, and how long the prompts of each version are. (Model routing is
``ccanalytics.cost.router``.)

    from ccanalytics.cost import levers
    levers.whisper_break_even(engine, "2026-11-01", "2026-11-30").verdict
    levers.tts_cache_from_logs(engine, "2026-11-01", "2026-11-30", max_entries=2000).hit_rate_chars
    levers.prompt_length_by_version(engine, "2026-11-01", "2026-11-30")

Prices come from the price book (``ccanalytics.cost.pricing``) at the dates in force, never from code. Each
measure takes ``tenant=`` (a slug or several; default every tenant): the calls it is measured on.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.analytics.store import Store
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import pricing
from ccanalytics.db import tenants

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


# ------------------------------------------------------------------------------------ TTS cache
_EDGE = " .,!?;:…—–-«»\"'“”„()[]"
_WS, _DIGITS = r"\s+", r"\d+"


def phrase_key(text: str, *, template: bool = False) -> str:
    """The TTS cache key of one utterance: lowercase, whitespace collapsed, punctuation stripped at the
    ends; with ``template`` every run of digits becomes ``#``. The call processor's cache should use
    the same key; ``tts_cache_replay`` computes it vectorised."""
    key = re.sub(_WS, " ", text.lower())
    if template:
        key = re.sub(_DIGITS, "#", key)
    return key.strip(_EDGE)


def _phrase_keys(texts: pl.Expr, template: bool) -> pl.Expr:
    key = texts.str.to_lowercase().str.replace_all(_WS, " ")
    if template:
        key = key.str.replace_all(_DIGITS, "#")
    return key.str.strip_chars(_EDGE)


@dataclass(frozen=True)
class PrecachePhrase:
    phrase: str  # the cache key
    example: str  # one utterance as the bot said it
    count: int
    chars: int  # characters synthesised per utterance (in template mode: without the digits)
    total_chars: int  # chars × count: what pre-caching it saves
    share_of_chars: float  # of all characters replayed


@dataclass(frozen=True)
class CacheReplay:
    """Bot utterances replayed in time order through an LRU phrase cache (optionally with a TTL)."""

    utterances: int
    chars: int
    unique_phrases: int
    hits: int
    hit_rate_utterances: float | None
    hit_rate_chars: float | None
    chars_saved: int
    usd_per_1m_chars: float
    usd_saved: float
    max_entries: int
    ttl_days: float | None
    template: bool
    unbounded_hit_rate_chars: float | None  # a cache of unlimited size and no TTL: the ceiling
    precache_share_of_chars: float | None  # characters the phrases below account for, pre-cached
    phrases_to_precache: tuple[PrecachePhrase, ...]
    logged_hit_rate_chars: float | None = None  # what the production cache served (usage.tts_cached_chars)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tts_cache_replay(
    texts: Iterable[str] | pl.Series,
    *,
    max_entries: int = 2000,
    ttl_days: float | None = None,
    timestamps: Iterable[datetime] | pl.Series | None = None,
    template: bool = False,
    usd_per_1m_chars: float | None = None,
    top_n: int = 20,
    min_count: int = 2,
) -> CacheReplay:
    """Replay bot utterances (in time order) through an LRU cache of ``max_entries`` phrases.

    A hit is an utterance whose key (``phrase_key``) is in the cache; a miss synthesises it and
    caches it, evicting the least recently used phrase when full. With ``ttl_days`` (needs
    ``timestamps``; the utterances are then ordered by them) an entry older than the TTL is a miss and
    is synthesised again. Characters saved on a hit are the utterance's characters; in ``template``
    mode (digits replaced by ``#`` in the key, so "Замовлення ORD-204518 оформлено" hits "Замовлення
    ORD-731904 оформлено") the digits are still synthesised and are not counted as saved.
    ``usd_per_1m_chars`` defaults to the bundled price book's Google TTS price today.
    ``phrases_to_precache``: the ``top_n`` keys seen at least ``min_count`` times, by characters ×
    frequency.
    """
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise InvalidArgument(f"max_entries must be a positive integer, got {max_entries!r}")
    if ttl_days is not None and not ttl_days > 0:
        raise InvalidArgument(f"ttl_days must be positive, got {ttl_days!r}")
    if top_n < 0 or min_count < 1:
        raise InvalidArgument("top_n must be ≥ 0 and min_count ≥ 1")
    if usd_per_1m_chars is None:
        price = pricing.load().at("tts", "google", timeutil.today())
        if price is None:
            raise InvalidArgument("no TTS price in the price book today: pass usd_per_1m_chars")
        usd_per_1m_chars = price.params["usd_per_1m_chars"]
    text = texts.cast(pl.String) if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)
    frame = pl.DataFrame({"text": text.fill_null("")})
    if ttl_days is not None:
        if timestamps is None:
            raise InvalidArgument("ttl_days needs the utterances' timestamps")
        ts = timestamps if isinstance(timestamps, pl.Series) else pl.Series(list(timestamps))
        if len(ts) != len(frame):
            raise InvalidArgument(f"{len(ts)} timestamps for {len(frame)} utterances")
        if not isinstance(ts.dtype, pl.Datetime):
            raise InvalidArgument("timestamps must be datetimes")
        seconds = ts.dt.epoch("us") / 1e6
        frame = frame.with_columns(t=seconds).sort("t", maintain_order=True, nulls_last=True)
    # normalise each distinct text once (a cache only pays off when texts repeat, so there are few),
    # number the distinct keys, and replay the integer ids: the only Python loop is the cache itself
    saved = pl.col("text").str.len_chars()
    if template:
        saved = saved - pl.col("text").str.count_matches(r"\d")
    distinct = (
        frame.select(pl.col("text").unique())
        .with_columns(key=_phrase_keys(pl.col("text"), template), chars=pl.col("text").str.len_chars(), saved=saved)
        .filter(pl.col("key") != "")
        .with_columns(kid=pl.col("key").rank("dense").cast(pl.Int64))
    )
    frame = frame.join(distinct, on="text", how="inner", maintain_order="left")
    ids = frame.get_column("kid").to_list()
    if ttl_days is None:
        hit_rows = _lru(ids, max_entries)
    else:
        hit_rows = _lru_ttl(ids, frame.get_column("t").to_list(), max_entries, ttl_days * 86400.0)
    n, total_chars = len(frame), int(frame.get_column("chars").sum())
    chars_saved = int(frame.get_column("saved").gather(hit_rows).sum()) if hit_rows else 0
    ceiling = int(frame.filter(~pl.col("kid").is_first_distinct()).get_column("saved").sum()) if n else 0
    top = (
        frame.group_by("kid")
        .agg(
            key=pl.col("key").first(),
            example=pl.col("text").first(),
            count=pl.len(),
            chars=pl.col("saved").first(),
            total=pl.col("saved").sum(),
        )
        .filter(pl.col("count") >= min_count)
        .sort(["total", "count", "key"], descending=[True, True, False])
        .head(top_n)
    )
    phrases = tuple(
        PrecachePhrase(r["key"], r["example"], r["count"], r["chars"], r["total"], round(r["total"] / total_chars, 4))
        for r in top.iter_rows(named=True)
    )
    return CacheReplay(
        utterances=n,
        chars=total_chars,
        unique_phrases=frame.get_column("kid").n_unique() if n else 0,
        hits=len(hit_rows),
        hit_rate_utterances=_share(len(hit_rows), n),
        hit_rate_chars=_share(chars_saved, total_chars),
        chars_saved=chars_saved,
        usd_per_1m_chars=usd_per_1m_chars,
        usd_saved=round(chars_saved * usd_per_1m_chars / 1e6, 6),
        max_entries=max_entries,
        ttl_days=ttl_days,
        template=template,
        unbounded_hit_rate_chars=_share(ceiling, total_chars),
        precache_share_of_chars=_share(sum(p.total_chars for p in phrases), total_chars),
        phrases_to_precache=phrases,
    )


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _lru(keys: list[int], max_entries: int) -> list[int]:
    """Row numbers of the hits of an LRU cache (OrderedDict: O(1) move and eviction)."""
    cache: OrderedDict[int, None] = OrderedDict()
    touch, evict = cache.move_to_end, cache.popitem
    hits: list[int] = []
    hit = hits.append
    size = 0
    for i, k in enumerate(keys):
        if k in cache:
            touch(k)
            hit(i)
        else:
            cache[k] = None
            if size == max_entries:
                evict(last=False)
            else:
                size += 1
    return hits


def _lru_ttl(keys: list[int], times: list[float | None], max_entries: int, ttl: float) -> list[int]:
    """As ``_lru``; an entry synthesised more than ``ttl`` seconds ago is a miss and is synthesised again."""
    cache: OrderedDict[int, float] = OrderedDict()
    touch, evict = cache.move_to_end, cache.popitem
    hits: list[int] = []
    hit = hits.append
    size = 0
    for i, (k, t) in enumerate(zip(keys, times, strict=True)):
        born = cache.get(k)
        if born is not None:
            touch(k)
            if t is not None and t - born > ttl:
                cache[k] = t
            else:
                hit(i)
        else:
            cache[k] = t if t is not None else 0.0
            if size == max_entries:
                evict(last=False)
            else:
                size += 1
    return hits


def tts_cache_from_logs(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    max_entries: int = 2000,
    ttl_days: float | None = None,
    template: bool = False,
    top_n: int = 20,
    book: pricing.PriceBook | None = None,
    provider: str = "google",
    tz: str = timeutil.DEFAULT_TZ,
    tenant: tenants.TenantArg = None,
) -> CacheReplay:
    """``tts_cache_replay`` over the bot turns of the calls of a period, in the order they were spoken,
    at the TTS price in force on the last day; ``logged_hit_rate_chars`` is what the production cache
    actually served in the same calls (``usage.tts_cached_chars / tts_chars``). With ``tenant``: the
    bot turns of those tenants' calls only."""
    book = book or pricing.load()
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    scope = tenants.scope(engine, tenant)
    price = book.at("tts", provider, last)
    if price is None:
        raise InvalidArgument(f"the price book has no tts.{provider} price on {last}")
    store = Store(engine, tz=tz)
    call_ids = None if scope is None else store.calls(first, last, tenant=list(scope))["id"].to_list()
    turns = store.turns(first, last, speaker="bot", call_ids=call_ids).sort(["created_at", "call_id", "turn_number"])
    result = tts_cache_replay(
        turns.get_column("content"),
        max_entries=max_entries,
        ttl_days=ttl_days,
        timestamps=turns.get_column("created_at") if ttl_days is not None else None,
        template=template,
        usd_per_1m_chars=price.params["usd_per_1m_chars"],
        top_n=top_n,
    )
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT sum((usage ->> 'tts_cached_chars')::float8) "  # noqa: S608 — tenants.SQL is a constant
                "/ nullif(sum((usage ->> 'tts_chars')::float8), 0) "
                "FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND c.usage ? 'tts_chars' "
                f"AND {tenants.SQL}"
            ),
            {"start": start, "end": end, **tenants.params(scope)},
        ).scalar_one()
    return replace(result, logged_hit_rate_chars=round(logged, 4) if logged is not None else None)


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
