"""The model router replayed over the calls of a period: the share it would send to the cheaper model,
the LLM saving at each call's day's prices, and the quality of the routed segment against the rest.

It applies ``ccanalytics.cost.router.route`` itself to every call (the caller's first utterance and the
recorded scenario's first part as the IVR choice), so the estimate and the call processor use the
same rules:

    from ccanalytics.cost.routing_replay import replay_routing
    r = replay_routing(engine, "2026-11-01", "2026-11-23")
    r.share_cheap, r.net_saving_usd, r.by_reason
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any, cast

import polars as pl
from sqlalchemy.engine import Engine

from ccanalytics.analytics.store import Store
from ccanalytics.core import timeutil
from ccanalytics.cost import pricing
from ccanalytics.cost.router import CHEAP_MODEL, DEFAULT_MODEL, Decision, route
from ccanalytics.experiments.abtest import sample_size_means


def ivr_choice(recorded_scenario: str | None) -> str | None:
    """The replay's stand-in for the caller's IVR choice: the first part of the recorded scenario
    (``calls.scenario`` keeps what the call turned out to be — «tire_search + order_creation» — not the
    menu key pressed, which the call processor gives the router at run time)."""
    first = (recorded_scenario or "").split("+")[0].strip()
    return first or None


def route_calls(
    frame: pl.DataFrame,
    *,
    text: str = "text",
    scenario: str | None = "scenario",
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> pl.DataFrame:
    """``route`` applied to every row (the first utterance in ``text``, the recorded scenario in
    ``scenario``, passed through ``ivr_choice``): adds ``model``, ``tier`` and ``reason`` columns."""
    texts = frame.get_column(text).to_list()
    scenarios = frame.get_column(scenario).to_list() if scenario is not None else [None] * len(texts)
    memo: dict[tuple[str | None, str | None], Decision] = {}  # openers repeat: route each distinct pair once
    decisions: list[Decision] = []
    for t, s in zip(texts, scenarios, strict=True):
        key = (t, ivr_choice(s))
        d = memo.get(key)
        if d is None:
            d = memo[key] = route(t, key[1], cheap_model=cheap_model, default_model=default_model)
        decisions.append(d)
    return frame.with_columns(
        model=pl.Series([d.model for d in decisions], dtype=pl.String),
        tier=pl.Series([d.tier for d in decisions], dtype=pl.String),
        reason=pl.Series([d.reason for d in decisions], dtype=pl.String),
    )


@dataclass(frozen=True)
class Segment:
    calls: int
    scored: int
    mean_quality: float | None
    std_quality: float | None
    transfer_rate: float | None


@dataclass(frozen=True)
class RoutingReplay:
    """The router replayed over the calls of a period, priced at each call's day."""

    date_from: date
    date_to: date
    cheap_model: str
    default_model: str
    calls: int
    routed_cheap: int
    share_cheap: float | None
    by_reason: dict[str, int]
    llm_cost_usd: float  # actual LLM cost of all priced calls, at their actual models
    llm_saving_usd: float  # routed calls: actual model − cheap model, on their actual tokens
    llm_extra_usd: float  # calls the router keeps on the default but that ran on another model: default − actual
    net_saving_usd: float
    saving_per_call_usd: float | None
    saving_share_of_llm: float | None
    unpriced_calls: int  # no usage, or no price for a model on the call's day
    routed: Segment
    rest: Segment
    ab_calls_per_arm: int | None  # to detect a 0.02 drop of mean quality in the routed segment
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date_from"], d["date_to"] = self.date_from.isoformat(), self.date_to.isoformat()
        return d


_CALLS = """
SELECT id::text AS call_id, (started_at AT TIME ZONE :tz)::date AS day, coalesce(scenario, '') AS scenario,
       quality_score::float8 AS quality, transferred_to_operator AS transferred,
       usage ->> 'llm_model' AS llm_model, (usage ->> 'llm_input_tokens')::float8 AS llm_in,
       coalesce((usage ->> 'llm_cached_input_tokens')::float8, 0) AS llm_cached,
       (usage ->> 'llm_output_tokens')::float8 AS llm_out
FROM cca_calls WHERE started_at >= :start AND started_at < :end ORDER BY started_at, id
"""
QUALITY_MDE = 0.02


def replay_routing(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    book: pricing.PriceBook | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> RoutingReplay:
    """Route every call of the period by its first customer utterance and scenario (``route_calls``:
    the router's own ``route``), and measure: the share routed to the cheaper model, the LLM saving
    (the routed calls' actual tokens priced at the cheaper model against their actual model, at the
    prices of the call's day), and the quality of the routed segment against the rest. The segments
    differ in what the calls are about, so the quality gap is a risk signal, not the model's effect:
    confirm with an A/B test."""
    book = book or pricing.load()
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    start, end = timeutil.period_bounds(first, last, tz)
    store = Store(engine, tz=tz)
    calls = store.sql(_CALLS, {"start": start, "end": end, "tz": tz})
    if calls.is_empty():
        empty = Segment(0, 0, None, None, None)
        return RoutingReplay(
            first, last, cheap_model, default_model, 0, 0, None, {}, 0.0, 0.0, 0.0, 0.0, None, None, 0,
            empty, empty, None, "Нет звонков за период — маршрутизацию проверить не на чем.",
        )  # fmt: skip
    calls = calls.with_columns(
        pl.col("llm_model").cast(pl.String).fill_null(default_model),
        pl.col("quality").cast(pl.Float64),
        *(pl.col(c).cast(pl.Float64) for c in ("llm_in", "llm_cached", "llm_out")),
    )
    first_turns = (
        store.turns(first, last, speaker="customer")
        .sort(["call_id", "turn_number"])
        .unique(subset="call_id", keep="first", maintain_order=True)
        .select("call_id", text="content")
    )
    calls = route_calls(
        calls.join(first_turns, on="call_id", how="left"), cheap_model=cheap_model, default_model=default_model
    )
    prices = _llm_prices(book)
    calls = (
        calls.pipe(_priced, prices, "llm_model", "cost_actual")
        .pipe(_priced, prices, pl.lit(cheap_model), "cost_cheap")
        .pipe(_priced, prices, pl.lit(default_model), "cost_default")
    )
    cheap = pl.col("tier") == "cheap"
    priced = (
        pl.col("cost_actual").is_not_null()
        & pl.when(cheap).then(pl.col("cost_cheap")).otherwise(pl.col("cost_default")).is_not_null()
    )
    t = calls.select(
        n=pl.len(),
        routed=cheap.sum(),
        unpriced=(~priced).sum(),
        llm=pl.col("cost_actual").filter(priced).sum(),
        saving=(pl.col("cost_actual") - pl.col("cost_cheap")).filter(priced & cheap).sum(),
        extra=(pl.col("cost_default") - pl.col("cost_actual"))
        .filter(priced & ~cheap & (pl.col("llm_model") != default_model))
        .sum(),
    ).row(0, named=True)
    by_reason = dict(calls.group_by("reason").len().sort(["len", "reason"], descending=[True, False]).iter_rows())
    routed, rest = _segment(calls.filter(cheap)), _segment(calls.filter(~cheap))
    n_ab = None
    if routed.std_quality:
        n_ab = sample_size_means(routed.std_quality, -QUALITY_MDE)
    n = t["n"]
    net = t["saving"] - t["extra"]
    result = RoutingReplay(
        date_from=first,
        date_to=last,
        cheap_model=cheap_model,
        default_model=default_model,
        calls=n,
        routed_cheap=t["routed"],
        share_cheap=round(t["routed"] / n, 4),
        by_reason=by_reason,
        llm_cost_usd=round(t["llm"], 6),
        llm_saving_usd=round(t["saving"], 6),
        llm_extra_usd=round(t["extra"], 6),
        net_saving_usd=round(net, 6),
        saving_per_call_usd=round(t["saving"] / n, 6),
        saving_share_of_llm=round(t["saving"] / t["llm"], 4) if t["llm"] else None,
        unpriced_calls=t["unpriced"],
        routed=routed,
        rest=rest,
        ab_calls_per_arm=n_ab,
        recommendation="",
    )
    return _with_recommendation(result, days=(last - first).days + 1)


def _llm_prices(book: pricing.PriceBook) -> pl.DataFrame:
    rows = [
        {
            "name": p.name,
            "valid_from": p.valid_from,
            "valid_to": p.valid_to,
            "p_in": p.params.get("input_per_1m"),
            "p_out": p.params.get("output_per_1m"),
            "p_cached": p.params.get("cached_input_per_1m", p.params.get("input_per_1m")),
        }
        for p in book.prices
        if p.component == "llm"
    ]
    schema = {
        "name": pl.String,
        "valid_from": pl.Date,
        "valid_to": pl.Date,
        "p_in": pl.Float64,
        "p_out": pl.Float64,
        "p_cached": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def _priced(calls: pl.DataFrame, prices: pl.DataFrame, model: str | pl.Expr, out: str) -> pl.DataFrame:
    """Add ``out``: the call's LLM tokens priced at ``model`` (a column name or a literal) on its day."""
    model_expr = pl.col(model) if isinstance(model, str) else model
    cached = pl.min_horizontal("llm_cached", "llm_in")
    cost = (
        (
            (pl.col("llm_in") - cached) * pl.col("p_in")
            + cached * pl.col("p_cached")
            + pl.col("llm_out") * pl.col("p_out")
        )
        / 1e6
    ).alias(out)
    matched = (
        calls.select("call_id", "day", "llm_in", "llm_cached", "llm_out", _m=model_expr)
        .join(prices, left_on="_m", right_on="name", how="inner")
        .filter((pl.col("day") >= pl.col("valid_from")) & (pl.col("day") < pl.col("valid_to")))
        .select("call_id", cost)
    )
    return calls.join(matched, on="call_id", how="left")


def _segment(frame: pl.DataFrame) -> Segment:
    if frame.is_empty():
        return Segment(0, 0, None, None, None)
    q = frame.get_column("quality").drop_nulls()
    # aggregates of a Float64 column are floats (None where there is none); polars types them more widely
    mean, std = (cast("float | None", q.mean()), cast("float | None", q.std())) if len(q) else (None, None)
    transferred = cast(float, frame.get_column("transferred").cast(pl.Float64).mean())  # None: float() raises
    return Segment(
        calls=len(frame),
        scored=len(q),
        mean_quality=round(mean, 4) if mean is not None else None,
        std_quality=round(std, 4) if std is not None and not math.isnan(std) else None,
        transfer_rate=round(float(transferred), 4),
    )


def _with_recommendation(r: RoutingReplay, days: int) -> RoutingReplay:
    def quality(s: Segment) -> str:
        return f"{s.mean_quality:.2f} (n={s.scored})" if s.mean_quality is not None else f"нет оценок (n={s.scored})"

    share = f", {r.saving_share_of_llm:.0%} расходов на LLM" if r.saving_share_of_llm is not None else ""
    text = (
        f"Роутер отправил бы {r.share_cheap:.0%} звонков на {r.cheap_model}: экономия LLM ≈ ${r.llm_saving_usd:,.2f} "
        f"за период (${r.saving_per_call_usd or 0:.4f} на звонок{share})."
    )
    if r.llm_extra_usd > 0:
        text += (
            f" Звонки, которые роутер оставил бы на {r.default_model}, но которые шли на другой модели, стоили бы "
            f"на ${r.llm_extra_usd:,.2f} больше."
        )
    text += (
        f" Качество: простой сегмент {quality(r.routed)}, остальные {quality(r.rest)} — сегменты различаются "
        "составом звонков, так что это сигнал риска, а не эффект модели. Подтвердите A/B-тестом: простые звонки "
        f"50/50 на {r.cheap_model} и {r.default_model}, метрики — quality_score, доля переводов на оператора и "
        "стоимость звонка"
    )
    if r.ab_calls_per_arm and r.routed.calls:
        per_day = r.routed.calls / days / 2
        text += (
            f"; чтобы заметить падение качества на {QUALITY_MDE}, нужно ≈ {r.ab_calls_per_arm:,} звонков на группу "
            f"(≈ {math.ceil(r.ab_calls_per_arm / per_day)} дн. при текущем потоке)."
        )
    else:
        text += "."
    return replace(r, recommendation=text)
