"""The LLM model router: simple calls to the cheaper model, everything else to the default one.

The call processor imports it and routes on the first customer utterance (and the scenario, when it
already knows one):

    from ccanalytics.router import route
    route("Підкажіть статус замовлення 204518").model      # 'claude-haiku-4-5'
    route("Що краще для міста — шипи чи липучка?").model   # 'claude-sonnet-4'

Rules, in order; the first that matches decides (``RULES`` holds them; Ukrainian and Russian):

  default model (complex or risky — checked first, so a simple request said angrily stays on the default)
    empty              no utterance (silence, hang-up before speaking)
    negative_emotion   anger or insults (знущаєтесь, жах, безлад, издеваетесь, ужас, «?!», «!!»)
    complaint          complaints, returns, warranty, defects, wrong goods, money, cancelling, address changes
    operator_requested the customer asks for a person (оператор, менеджер, жива людина, человек)
    consultation       advice and comparisons (порадьте, що краще, чим відрізняються, стоит ли, сравнить)
    complex_scenario   the scenario is a consultation
    several_requests   several requests (і ще, а також, и ещё, two questions, or a multi-part scenario)
    long_utterance     more than 25 words
  cheaper model (simple intents)
    order_status_with_number  order status / delivery question with an order number (5+ digits, 204 518, №)
    availability_of_size      availability (чи є, в наявності, есть ли) of a named tyre size (205/55 R16,
                              205 на 55, R16, 16-й радіус)
    hours_or_address          working hours or the shop's address
    greeting_or_confirmation  only greetings and short confirmations (алло, добрий день, так, угу)
  default model
    no_simple_intent   anything else (tyre selection, orders, fitting, …)

The first customer utterance is a deliberately small signal: a call that starts simple can turn
complex, so measure the routed segment (``replay_routing``) and confirm with an A/B test before
switching. The text is normalised first (lowercase, ё → е, one kind of apostrophe, whitespace
collapsed). The rules are regular expressions that Python's ``re`` and Polars (Rust ``regex``) evaluate the same way:
``route`` decides one call, ``route_frame`` decides a whole history at once (``replay_routing``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy.engine import Engine

from . import pricing, timeutil
from .errors import InvalidArgument
from .store import Store

CHEAP_MODEL = "claude-haiku-4-5"
DEFAULT_MODEL = "claude-sonnet-4"
LONG_UTTERANCE_WORDS = 25

# a tyre size: 205/55, 205 на 55, 205 55; R16 / р16; 16-й радіус; радіус 16
_SIZE = (
    r"\b[1-3]\d\d ?(?:/|на|\s) ?[2-9]\d\b|\b[rр] ?-?(?:1[2-9]|2[0-4])c?\b"
    r"|\b(?:1[2-9]|2[0-4])(?:-?(?:й|ий|ый|го|му|ом))? (?:радіус|радиус)|(?:радіус|радиус) (?:1[2-9]|2[0-4])\b"
)
_ORDER_NUMBER = r"\d{5,}|\b\d{3}[ -]\d{3}\b|№ ?\d{3,}"
_GREETING_WORDS = (
    "алло|ало|добрий|добрый|доброго|доброе|день|дня|ранку|ранок|утро|утра|вечір|вечора|вечер|вечера|"
    "здрастуйте|здравствуйте|здрасьте|привіт|привет|вітаю|приветствую|так|да|ага|угу|добре|хорошо|окей|ок|ok|"
    "дякую|спасибо|слухаю|слушаю|зрозуміло|понятно|дівчино|девушка|будь|ласка|пожалуйста"
)


@dataclass(frozen=True)
class Rule:
    """One routing rule: every pattern must match the normalised utterance (and ``scenario`` the
    scenario, ``min_words`` the word count). ``tier`` is "cheap" or "default"."""

    reason: str
    tier: str
    description: str
    patterns: tuple[str, ...] = ()
    scenario: str | None = None
    min_words: int | None = None
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)
    _scenario: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(re.compile(p) for p in self.patterns))
        object.__setattr__(self, "_scenario", re.compile(self.scenario) if self.scenario is not None else None)

    def matches(self, text: str, scenario: str, words: int) -> bool:
        if self._scenario is not None and not self._scenario.search(scenario):
            return False
        if self.min_words is not None and words < self.min_words:
            return False
        return all(p.search(text) for p in self._compiled)

    def expr(self, text: pl.Expr, scenario: pl.Expr, words: pl.Expr) -> pl.Expr:
        cond = pl.lit(True)
        if self.scenario is not None:
            cond = cond & scenario.str.contains(self.scenario)
        if self.min_words is not None:
            cond = cond & (words >= self.min_words)
        for p in self.patterns:
            cond = cond & text.str.contains(p)
        return cond


RULES: tuple[Rule, ...] = (
    Rule("empty", "default", "no customer utterance", (r"^$",)),
    Rule(
        "negative_emotion",
        "default",
        "anger or insults",
        (
            r"\b(?:знущ|жах|безлад|чорт|дурн|ідіот|идиот|обдур|шахра|мошен|набрид|надоел|неподобств|бісит|бесит|"
            r"дістал|достал|издева|ужас|бардак|безобраз|кошмар|хамств|відстій|отстой|туп(?:а|ий|ої|і|ая|ой|ые)\b)"
            r"|скільки можна|сколько можно|\?!|!\?|! ?!",
        ),
    ),
    Rule(
        "complaint",
        "default",
        "complaint, return, warranty, defect, wrong goods, money, cancellation, changing an address",
        (
            r"\b(?:скарг|жалоб|претензі|претензи|поверн|возвра|гаранті|гаранти|брак|дефект|грижа|грыжа|зламал|"
            r"сломал|пошкодж|поврежд|компенсац|відшкод|списали|не ті\b|не те\b|не той\b|не тот\b|не та\b|"
            r"скасу|отмен|змінити адрес|изменить адрес|гроші|деньги)",
        ),
    ),
    Rule(
        "operator_requested",
        "default",
        "the customer asks for a person",
        (r"\b(?:оператор|менеджер|жив\w* (?:людин|человек)|з людиною|с человеком|консультант)",),
    ),
    Rule(
        "consultation",
        "default",
        "advice or comparison",
        (
            r"\b(?:порад|посовет|порівн|сравн|різниц|разниц|відрізня|отлича|проконсульт|консультац|чи варто|"
            r"стоит ли|не розбира|не разбира|(?:що|яка|який|які|що з цього) (?:\S+ )?краще|"
            r"(?:что|какая|какой|какие) (?:\S+ )?лучше|краще (?:взяти|брати|обрати|вибрати)|"
            r"лучше (?:взять|брать|выбрать)|(?:що|який|яку|які) (?:обрати|вибрати)|(?:что|какой|какую|какие) выбрать)",
        ),
    ),
    Rule("complex_scenario", "default", "the scenario is a consultation", scenario="consultation"),
    Rule("several_requests", "default", "a multi-part scenario", scenario=r" \+ "),
    Rule(
        "several_requests",
        "default",
        "several requests in the utterance",
        (
            r"\b(?:і ще|а ще|а також|крім того|и ещ?е|а также|кроме того|по-перше|во-первых)\b"
            r"|\?.*\?",
        ),
    ),
    Rule("long_utterance", "default", f"more than {LONG_UTTERANCE_WORDS} words", min_words=LONG_UTTERANCE_WORDS + 1),
    Rule(
        "order_status_with_number",
        "cheap",
        "order status with an order number",
        (
            r"\b(?:статус|де (?:моє |мій |мое )?замовлен|где (?:мой )?заказ|коли (?:привезуть|буде|приїде|доставлять|"
            r"прийде)|когда (?:привезут|будет|доставят|придет)|відстеж|отслед|накладн|номер (?:замовлення|заказа))",
            _ORDER_NUMBER,
        ),
    ),
    Rule(
        "availability_of_size",
        "cheap",
        "availability of a named tyre size",
        (
            r"\b(?:наявн|наличи|чи (?:є|маєте)|є (?:на складі|у вас|в наявності)|на склад|залишк|есть (?:ли|у вас)|"
            r"в наличии|имеется|остат|що (?:у вас )?є|что (?:у вас )?есть)",
            _SIZE,
        ),
    ),
    Rule(
        "hours_or_address",
        "cheap",
        "working hours or the shop's address",
        (
            r"\b(?:графік|години роботи|режим роботи|до котрої|коли (?:ви )?працюєте|як (?:ви )?працюєте|"
            r"часы работы|режим работы|до скольки|когда (?:вы )?работаете|как (?:вы )?работаете|вихідн|выходн|"
            r"ваша адреса|яка (?:у вас |ваша )?адреса|за якою адресою|де (?:ви )?знаходит|ваш адрес|"
            r"какой (?:у вас |ваш )?адрес|по какому адресу|где (?:вы )?находит|як (?:до вас )?(?:доїхати|дістатися)|"
            r"как (?:к вам )?(?:доехать|добраться|проехать))",
        ),
    ),
    Rule(
        "greeting_or_confirmation",
        "cheap",
        "only greetings and short confirmations",
        (rf"^(?:(?:{_GREETING_WORDS})[ .,!?-]*)+$",),
    ),
)
FALLBACK = "no_simple_intent"


@dataclass(frozen=True)
class RouteDecision:
    model: str
    reason: str  # a rule's reason code (RULES) or "no_simple_intent"
    tier: str = "default"  # "cheap" | "default"


def normalise(text: str | None) -> str:
    """The router's view of an utterance: lowercase, ё → е, one apostrophe, whitespace collapsed."""
    text = (text or "").lower().replace("ё", "е")
    return re.sub(r"\s+", " ", re.sub(r"[’ʼ`]", "'", text)).strip()


def _normalise_expr(text: pl.Expr) -> pl.Expr:
    return (
        text.fill_null("")
        .str.to_lowercase()
        .str.replace_all("ё", "е", literal=True)
        .str.replace_all(r"[’ʼ`]", "'")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def route(
    first_customer_utterance: str | None,
    scenario: str | None = None,
    *,
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> RouteDecision:
    """The model for a call from its first customer utterance (and scenario, if known). Deterministic."""
    if first_customer_utterance is not None and not isinstance(first_customer_utterance, str):
        raise InvalidArgument(f"the utterance must be a string, got {type(first_customer_utterance).__name__}")
    if scenario is not None and not isinstance(scenario, str):
        raise InvalidArgument(f"the scenario must be a string, got {type(scenario).__name__}")
    text = normalise(first_customer_utterance)
    words = len(text.split())
    for rule in RULES:
        if rule.matches(text, scenario or "", words):
            return RouteDecision(cheap_model if rule.tier == "cheap" else default_model, rule.reason, rule.tier)
    return RouteDecision(default_model, FALLBACK, "default")


def route_frame(
    frame: pl.DataFrame,
    *,
    text: str = "text",
    scenario: str | None = "scenario",
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> pl.DataFrame:
    """``route`` for every row at once (vectorised; same rules, same answers): adds ``model``,
    ``reason`` and ``tier`` columns."""
    norm = _normalise_expr(pl.col(text))
    scen = pl.col(scenario).fill_null("") if scenario is not None else pl.lit("")
    words = norm.str.count_matches(r"\S+")
    reason: Any = pl.lit(FALLBACK)
    for rule in reversed(RULES):
        reason = pl.when(rule.expr(norm, scen, words)).then(pl.lit(rule.reason)).otherwise(reason)
    cheap = {r.reason for r in RULES if r.tier == "cheap"}
    is_cheap = pl.col("reason").is_in(list(cheap))
    return frame.with_columns(reason=reason).with_columns(
        model=pl.when(is_cheap).then(pl.lit(cheap_model)).otherwise(pl.lit(default_model)),
        tier=pl.when(is_cheap).then(pl.lit("cheap")).otherwise(pl.lit("default")),
    )


# ------------------------------------------------------------------------------------ replay


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
    """Route every call of the period by its first customer utterance and scenario, and measure: the
    share routed to the cheaper model, the LLM saving (the routed calls' actual tokens priced at the
    cheaper model against their actual model, at the prices of the call's day), and the quality of
    the routed segment against the rest. The segments differ in what the calls are about, so the
    quality gap is a risk signal, not the model's effect: confirm with an A/B test."""
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
    calls = route_frame(
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
        from .abtest import sample_size_means

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
    mean, std = (q.mean(), q.std()) if len(q) else (None, None)
    return Segment(
        calls=len(frame),
        scored=len(q),
        mean_quality=round(float(mean), 4) if mean is not None else None,
        std_quality=round(float(std), 4) if std is not None and not math.isnan(std) else None,
        transfer_rate=round(float(frame.get_column("transferred").cast(pl.Float64).mean()), 4),
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
