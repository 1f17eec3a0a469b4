"""The TTS phrase cache, measured: the cache key of an utterance, an LRU (optionally TTL) replay of the
bot's utterances in the order they were spoken, and that replay over a period's call logs.

    from ccanalytics.cost import ttscache
    ttscache.tts_cache_from_logs(engine, "2026-11-01", "2026-11-30", max_entries=2000).hit_rate_chars

Prices come from the price book (``ccanalytics.cost.pricing``) at the dates in force, never from code;
``tts_cache_from_logs`` takes ``tenant=`` (a slug or several; default every tenant).
"""

from __future__ import annotations

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
