"""Realistic synthetic calls of the tyre shop's voice agent, deterministic for a seed.

``generate_calls()`` yields call logs in the call processor's format (see ``ccanalytics.ingest.callog``): JSON-ready
dicts with Ukrainian dialogues, tool calls with plausible arguments and results, per-turn STT/LLM/TTS
metrics, usage and cost at the spec's prices, prompt versions and the A/B assignment.

Determinism
    Each Kyiv-local day has its own RNG seeded with ``f"{seed}:{date}"``, so the calls of a date do not
    depend on ``days``. They do depend on ``end_date`` only through what is defined relative to it: the
    A/B window and the special days below. The caller pool (regular customers with their names, cars
    and cities) is drawn once from ``f"{seed}:callers"``; ~30 % of calls come from it, so customers call
    again across days. ~2 % of calls have a hidden number (``"anonymous"``).

Volume
    ``calls_per_day`` is the average: Mondays are busiest, weekends ~70 % of weekdays, ±4 % noise.
    Hours follow a two-peak curve in Kyiv time (10–13 and 17–19), almost nothing at night.

Tenants
    The call processor serves several retail networks (tenants) from one Asterisk, and a customer is a
    customer of one tenant (customers are unique per tenant and phone). Every call names its tenant
    (``"tenant": slug``, ``DEMO_TENANTS``: 60 % ``shinservice`` «Шинсервіс», 40 % ``prokoleso``
    «ПроКолесо»). A phone number has a home tenant (a hash of the number) and calls the other network now
    and then (``OTHER_TENANT_P``); a few regular customers (``SHARED_CALLERS``) call every network alike.
    The first regular customer calls once every day (one call of the day, picked by a generator of its
    own), the tenants taking turns by day, so any two days have a number that is a customer of both.
    ``tenants=None`` leaves the key out (the calls then belong to the database's only tenant). The tenant
    is drawn from generators of its own, so no other value of a call depends on it.

Ids
    Call ids, order ids and fitting booking ids are uuids (the processor's columns hold only uuids); the
    order and booking ids are derived from the call id. The human numbers the tools answer with
    (``ORD-204518``, ``FIT-51234``) stay in the tool results and the bot's words.

A/B test
    On the last ``ab_days`` days (dates > end_date - ab_days) every call carries
    ``ab_test = {"test_name": ab_test, "variant": "A"|"B"}``; the variant is sticky per caller
    (``ab_variant()``: SHA-256 of ``"{test_name}:{caller_id}"``, the call id for hidden numbers), A runs
    ``tire_agent@v1`` and B ``tire_agent@v2``. Before the window (or with ``ab_test=None``) every call is
    v1 without an ``ab_test`` key. v2 confirms the size before searching, always confirms an order
    before ``confirm_order``, answers shorter, transfers ~5 points less, and is cheaper (shorter prompt,
    prompt caching, order-status and consultation calls routed to Claude Haiku).

Phase 1 and the current period (cost levers)
    Days before the last ``levers_days`` (default: the A/B window) are the phase-1 baseline: Google STT
    and no TTS phrase cache. From then on the levers are in production: self-hosted Whisper STT
    (reported at 0 per call; its monthly GPU cost is shared by ``ccanalytics.cost.calls``), the TTS phrase
    cache (stock phrases are served from it), and, for the B arm of the A/B test, a shorter prompt with
    prompt caching and Claude Haiku for order-status and consultation calls. ``cost report`` over the
    two periods shows the reduction and each lever's share.

Injected problems (what the analytics has to find)
    - angry customers (~3 % of calls): rude lines from ``phrases.ANGRY``; ~75 % (v2: 60 %) end in a
      transfer with reason ``negative_emotion``;
    - confused customers (~4.5 %): one or two confused exchanges (``phrases.CONFUSED``), more transfers;
    - STT re-asks: a customer turn naming a hard brand or city (``phrases.HARD_WORDS``) is misrecognised
      (stt_confidence < 0.6, garbled word in the text) and the bot answers
      "Перепрошую, не розчула…" (``phrases.REASK_MARKER``); the customer repeats. No other customer turn
      has a confidence below 0.6;
    - tool errors (~3 %): a tool call fails (``success: false``, ``{"error": "timeout"|…}``); the bot retries
      or transfers with ``cannot_help``;
    - prompt injection (≥1 call a day, ~0.4 %): the customer tries to override the rules and
      ``create_order_draft`` gets ``price: 0`` or ``quantity`` > 50 (rejected with ``validation_failed``);
    - validation storms (≥1 call a day, ~0.4 %): 4–5 ``create_order_draft`` calls in one call rejected with
      ``{"error": "validation_failed", …}``, then a transfer with ``cannot_help``;
    - no greeting (≥1 call a day, ~0.6 %): the first bot turn is "Слухаю." instead of a greeting;
    - special days (``special_days()``; offsets from ``end_date`` in ``SPECIAL_DAY_OFFSETS``, only when
      inside the range):
        * ``latency_spike`` (end_date - 2): calls starting 11:20–12:00 Kyiv have LLM TTFT × 4–6;
        * ``cost_spike`` (end_date - 4): a runaway retry loop — every LLM request sent three times, past
          the prompt cache (llm_calls and tokens × 3, no cached tokens): the day costs > 2× a normal day;
        * ``order_status_outage`` (end_date - 6): 08:30–20:30 Kyiv the order service is down
          (``OUTAGE_TOOLS`` fail with ``upstream_unavailable``), order-status calls double and every call
          that hits it is transferred with ``cannot_help`` — about half of the day's calls;
    - misunderstood intent (~2.5 %): the bot answers the first request as if it were another one
      (``phrases.BOT_OFF_TOPIC``), the customer corrects it (``phrases.CUST_CORRECTION``);
    - a wrong price (~5 % of calls that start with a tyre search): the bot's offer names a price the
      search did not return.
    The two are drawn from a generator of their own (``f"{seed}:{call_id}:staged"``).

Ground truth
    ``generate_calls_with_truth()`` yields ``(call, truth)``: per quality criterion what was staged —
    ``True`` passed, ``False`` failed, ``None`` not applicable (see ``TRUTH_CRITERIA``; a criterion the
    generator does not stage, conciseness, is absent). The judge benchmark measures judges against it.

Costs (``PRICES``, from the spec): Google STT $0.006 per started 15 s of the call; Claude Sonnet 4 $3/$15
per 1M input/output tokens, Haiku 4.5 $1/$5, cached input at 10 % of the input price
(``llm_input_tokens`` includes ``llm_cached_input_tokens``); Google TTS $16 per 1M characters, phrases
served from the TTS cache (``tts_cached_chars``) are free. Telephony is reported in usage, not costed.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ccanalytics.core import clock, timeutil, vocabulary
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.demo import phrases as P
from ccanalytics.experiments.lifecycle import assign_variant

# ------------------------------------------------------------------------------------ public names
DEMO_PROMPT_NAME = "tire_agent"
DEMO_AB_TEST = "tire_agent-v1-vs-v2"
DEMO_AB_DAYS = 14  # the A/B window and the current (levers) period of the demo: the last 14 days
# the retail networks (the call processor's tenants) of the demo: slug, name, share of the calls
DEMO_TENANTS: tuple[tuple[str, str, float], ...] = (
    ("shinservice", "Шинсервіс", 0.6),
    ("prokoleso", "ПроКолесо", 0.4),
)
DEMO_TENANT_SLUGS = tuple(slug for slug, _name, _share in DEMO_TENANTS)
SHARED_CALLERS = 0.05  # share of the regular customers who call both networks alike
OTHER_TENANT_P = 0.15  # how often any other regular customer calls the other network

BASE_SCENARIOS = vocabulary.SCENARIOS
TRANSFER_REASONS = vocabulary.TRANSFER_REASONS
TOOL_NAMES = tuple(spec[0] for spec in P.TOOL_SPECS)  # the agent's tools as the demo defines them
if set(TOOL_NAMES) != set(vocabulary.TOOLS):
    raise ImportError(
        f"demo tools differ from ccanalytics.core.vocabulary.TOOLS: {set(TOOL_NAMES) ^ set(vocabulary.TOOLS)}"
    )

PRICES: dict[str, Any] = {
    # self-hosted Whisper costs a fixed monthly amount the call processor cannot attribute per call: it
    # reports 0 and ccanalytics.cost.calls shares the month's cost over the month's Whisper calls
    "stt": {
        "google": {"usd_per_increment": 0.006, "increment_seconds": 15},
        "whisper": {"usd_per_increment": 0.0, "increment_seconds": 15},
    },
    "llm": {
        "claude-sonnet-4": {"input_per_1m": 3.0, "output_per_1m": 15.0, "cached_input_per_1m": 0.30},
        "claude-haiku-4-5": {"input_per_1m": 1.0, "output_per_1m": 5.0, "cached_input_per_1m": 0.10},
    },
    "tts": {"google": {"usd_per_1m_chars": 16.0}},
}
LLM_MODEL = "claude-sonnet-4"
CHEAP_LLM_MODEL = "claude-haiku-4-5"

SPECIAL_DAY_OFFSETS = {"latency_spike": 2, "cost_spike": 4, "order_status_outage": 6}
LATENCY_SPIKE_WINDOW = (time(11, 20), time(12, 0))  # Kyiv time, start of the call
OUTAGE_WINDOW = (time(8, 30), time(20, 30))  # Kyiv time, start of the call
OUTAGE_TOOLS = frozenset(
    {"get_order_status", "check_availability", "create_order_draft", "update_order_delivery", "confirm_order"}
)
COMMITTING_TOOLS = frozenset({"confirm_order", "book_fitting"})  # they place an order or a booking
MISUNDERSTOOD_P = 0.025
WRONG_PRICE_P = 0.05
# the criteria whose truth the generator stages (bot_was_concise is not staged)
TRUTH_CRITERIA = (
    "bot_greeted_properly",
    "bot_understood_intent",
    "bot_used_correct_tool",
    "bot_provided_accurate_info",
    "bot_confirmed_before_action",
    "call_resolved_without_human",
    "customer_seemed_satisfied",
)


def _tools_config() -> dict[str, Any]:
    tools = []
    for name, description, params, required in P.TOOL_SPECS:
        tools.append(
            {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {k: {"type": v} for k, v in params.items()},
                    "required": list(required),
                },
            }
        )
    return {"tools": tools}


DEMO_PROMPTS: list[dict[str, Any]] = [
    {
        "name": DEMO_PROMPT_NAME,
        "version": 1,
        "label": f"{DEMO_PROMPT_NAME}@v1",
        "system_prompt": P.SYSTEM_PROMPT_V1,
        "tools_config": _tools_config(),
        "metadata": {
            "model": LLM_MODEL,
            "temperature": 0.3,
            "max_tokens": 400,
            "prompt_caching": False,
            "tts_cache": True,
        },
        "note": "Исходная версия фазы 1: общий промпт, все найденные варианты зачитываются клиенту, "
        "без кэширования промпта, все звонки на Claude Sonnet 4.",
        "created_at": datetime(2026, 3, 2, 7, 0, tzinfo=UTC),
    },
    {
        "name": DEMO_PROMPT_NAME,
        "version": 2,
        "label": f"{DEMO_PROMPT_NAME}@v2",
        "system_prompt": P.SYSTEM_PROMPT_V2,
        "tools_config": _tools_config(),
        "metadata": {
            "model": LLM_MODEL,
            "temperature": 0.2,
            "max_tokens": 250,
            "prompt_caching": True,
            "tts_cache": True,
            "routing": {"order_status": CHEAP_LLM_MODEL, "consultation": CHEAP_LLM_MODEL},
        },
        "note": "Улучшенная версия: подтверждает размер перед поиском и заказ перед confirm_order, чёткие "
        "правила перевода на оператора, короткие ответы (не больше двух вариантов), защита от prompt "
        "injection; кэширование промпта и маршрутизация статуса заказа и консультаций на Claude Haiku.",
        "created_at": datetime(2026, 9, 15, 9, 30, tzinfo=UTC),
    },
]
_LABELS = {False: DEMO_PROMPTS[0]["label"], True: DEMO_PROMPTS[1]["label"]}
# system prompt + tool schemas, tokens sent with every LLM request
_PROMPT_TOKENS = {False: 2100, True: 1450}


def special_days(end_date: date, days: int) -> dict[str, date]:
    """The special days of a range of ``days`` days ending on ``end_date``: name → date, only those
    inside the range (see ``SPECIAL_DAY_OFFSETS``)."""
    first = end_date - timedelta(days=days - 1)
    out = {}
    for name, offset in SPECIAL_DAY_OFFSETS.items():
        day = end_date - timedelta(days=offset)
        if day >= first:
            out[name] = day
    return out


def ab_variant(key: str, test_name: str) -> str:
    """Sticky 50/50 assignment, exactly as the call processor gets it from ccanalytics.prompts.resolver for
    the demo test (whose salt is its name)."""
    return assign_variant(test_name, key, (("A", 0.5), ("B", 0.5)))


def compute_cost(usage: dict[str, Any]) -> dict[str, float]:
    """Cost of a call's usage at ``PRICES`` (USD, 6 decimals); ``total_usd`` is the sum of the parts."""
    stt_price = PRICES["stt"][usage.get("stt_provider", "google")]
    stt = math.ceil(usage["stt_seconds"] / stt_price["increment_seconds"]) * stt_price["usd_per_increment"]
    llm_price = PRICES["llm"][usage["llm_model"]]
    cached = usage.get("llm_cached_input_tokens", 0)
    llm = (
        (usage["llm_input_tokens"] - cached) * llm_price["input_per_1m"]
        + cached * llm_price["cached_input_per_1m"]
        + usage["llm_output_tokens"] * llm_price["output_per_1m"]
    ) / 1e6
    tts_price = PRICES["tts"][usage.get("tts_provider", "google")]
    tts = (usage["tts_chars"] - usage.get("tts_cached_chars", 0)) * tts_price["usd_per_1m_chars"] / 1e6
    stt, llm, tts = round(stt, 6), round(llm, 6), round(tts, 6)
    return {"stt": stt, "llm": llm, "tts": tts, "total_usd": round(stt + llm + tts, 6)}


# ------------------------------------------------------------------------------------ static tables
_OPERATOR_CODES = ("50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99")
_HOUR_WEIGHTS = (
    0.05, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.6, 1.3, 2.2, 3.0, 3.3,
    3.1, 2.7, 2.3, 2.2, 2.4, 2.9, 3.0, 2.5, 1.6, 1.0, 0.5, 0.2,
)  # fmt: skip
_HOUR_CUM = list(accumulate(_HOUR_WEIGHTS))
_RAW_WEEKDAY = (1.12, 1.06, 1.04, 1.03, 1.05, 0.80, 0.74)
_WEEKDAY_FACTOR = tuple(f * 7 / sum(_RAW_WEEKDAY) for f in _RAW_WEEKDAY)

_SCENARIOS = (
    ("tire_search", 20),
    ("tire_search + order_creation", 12),
    ("tire_search + fitting_booking", 5),
    ("tire_search + order_creation + fitting_booking", 2),
    ("availability_check", 11),
    ("availability_check + order_creation", 3),
    ("order_creation", 6),
    ("order_status", 16),
    ("fitting_booking", 12),
    ("consultation", 13),
)
_SCENARIO_NAMES = tuple(name for name, _ in _SCENARIOS)


def _scenario_cum(fitting_boost: bool, outage: bool, v2: bool) -> list[float]:
    weights = []
    w: float  # a weight becomes fractional when boosted
    for name, w in _SCENARIOS:
        if fitting_boost and "fitting_booking" in name:
            w *= 1.6
        if outage and name == "order_status":
            w *= 2.0
        if v2 and name == "tire_search":
            w -= 2
        if v2 and name == "tire_search + order_creation":
            w += 2
        weights.append(w)
    return list(accumulate(weights))


_SCENARIO_CUMS = {
    (f, o, v): _scenario_cum(f, o, v) for f in (False, True) for o in (False, True) for v in (False, True)
}
_TRANSFER_P = {
    "tire_search": 0.13,
    "availability_check": 0.12,
    "order_creation": 0.16,
    "order_status": 0.24,
    "fitting_booking": 0.13,
    "consultation": 0.27,
}
_REASON_MIX = {
    "consultation": (("complex_question", 0.55), ("customer_request", 0.30), ("cannot_help", 0.15)),
    "order_status": (("cannot_help", 0.50), ("customer_request", 0.35), ("complex_question", 0.15)),
    "other": (("customer_request", 0.45), ("complex_question", 0.30), ("cannot_help", 0.25)),
}
# season weights (winter, summer, all_season) by month
_SEASON_BY_MONTH = {
    1: (0.8, 0.08, 0.12), 2: (0.55, 0.3, 0.15), 3: (0.15, 0.7, 0.15), 4: (0.1, 0.75, 0.15),
    5: (0.1, 0.75, 0.15), 6: (0.1, 0.75, 0.15), 7: (0.1, 0.75, 0.15), 8: (0.15, 0.7, 0.15),
    9: (0.5, 0.35, 0.15), 10: (0.8, 0.08, 0.12), 11: (0.82, 0.06, 0.12), 12: (0.8, 0.08, 0.12),
}  # fmt: skip
_FITTING_MONTHS = frozenset({3, 4, 10, 11})

_TOOL_MS = {
    "get_vehicle_tire_sizes": 120,
    "search_tires": 320,
    "check_availability": 180,
    "create_order_draft": 350,
    "update_order_delivery": 260,
    "confirm_order": 300,
    "get_order_status": 200,
    "get_pickup_points": 150,
    "get_fitting_stations": 140,
    "get_fitting_slots": 220,
    "get_fitting_price": 90,
    "book_fitting": 380,
    "cancel_fitting": 250,
    "get_customer_bookings": 170,
    "search_knowledge_base": 260,
    "transfer_to_operator": 60,
}
# tokens a tool call adds to the conversation (arguments + result)
_TOOL_TOKENS = {"search_tires": 260, "search_knowledge_base": 180, "get_fitting_slots": 90, "get_pickup_points": 120}
_TOOL_ERRORS = (
    ({"error": "timeout", "message": "upstream did not answer within 5000 ms"}, 5000),
    ({"error": "upstream_error", "status": 502, "message": "bad gateway"}, 0),
    ({"error": "internal_error", "message": "unexpected response from the store API"}, 0),
)
_STATUSES = (
    ("shipped", 0.45),
    ("processing", 0.20),
    ("awaiting_payment", 0.15),
    ("ready_for_pickup", 0.12),
    ("delivered", 0.08),
)
_STATUS_NAMES = tuple(s for s, _ in _STATUSES)
_STATUS_CUM = list(accumulate(w for _, w in _STATUSES))

_CITY_CUM = list(accumulate(c[3] for c in P.CITIES))
_BRAND_NAMES = tuple(P.BRANDS)
_BRAND_CUM = list(accumulate(P.BRANDS[b][3] for b in _BRAND_NAMES))
_PREMIUM = ("Michelin", "Continental", "Nokian", "Pirelli", "Bridgestone", "Goodyear")
_MIDDLE = ("Hankook", "Matador", "Goodyear", "Nokian")
_BUDGET = ("Premiorri", "Rosava", "Matador")
_POPULAR_SIZE_NAMES = tuple(s for s, _ in P.POPULAR_SIZES)
_POPULAR_SIZE_CUM = list(accumulate(w for _, w in P.POPULAR_SIZES))


class _Size(NamedTuple):
    text: str  # "205/55 R16"
    width: int
    profile: int
    rim: int
    spoken: tuple[str, ...]
    code: str  # "2055516"


def _parse_size(text: str) -> _Size:
    wp, r = text.split(" R")
    w, p = wp.split("/")
    rim = int(r.rstrip("C"))
    spoken = tuple(t.format(w=w, p=p, r=r) for t in P.SIZE_SPOKEN)
    return _Size(text, int(w), int(p), rim, spoken, f"{w}{p}{r}")


_SIZES = {s: _parse_size(s) for s in {*_POPULAR_SIZE_NAMES, *(size for car in P.CARS for size in car[6])}}


def _build_places() -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    rng = random.Random("ccanalytics-demo-places")
    stations: dict[str, list[dict]] = {}
    pickups: dict[str, list[dict]] = {}
    for _nom, _loc, slug, weight in P.CITIES:
        n = 4 if weight >= 20 else 2 if weight >= 8 else 1
        stations[slug] = [
            {"id": f"st-{slug}-{k}", "address": f"{rng.choice(P.STREETS)}, {rng.randint(2, 180)}"}
            for k in range(1, n + 1)
        ]
        pickups[slug] = [
            {
                "id": f"pp-{slug}-{k}",
                "address": f"{rng.choice(P.STREETS)}, {rng.randint(2, 180)}",
                "hours": rng.choice(("09:00–20:00", "08:00–21:00", "10:00–19:00")),
            }
            for k in range(1, n + 1)
        ]
    return stations, pickups


_STATIONS, _PICKUPS = _build_places()
_PRICE_CACHE: dict[tuple[str, str, str], int] = {}


def _price(brand: str, model: str, size: _Size) -> int:
    key = (brand, model, size.text)
    price = _PRICE_CACHE.get(key)
    if price is None:
        base = P.BRANDS[brand][2] * P.RIM_PRICE.get(size.rim, 2.1) * (1 + (size.width - 205) / 400)
        jitter = 0.94 + (zlib.crc32("|".join(key).encode()) % 13) / 100
        price = _PRICE_CACHE[key] = round(base * jitter / 10) * 10
    return price


def _money(value: int) -> str:
    return f"{value:,}".replace(",", " ")


# ------------------------------------------------------------------------------------ callers
class _Caller(NamedTuple):
    phone: str
    first: str
    last: str
    female: bool
    car: tuple | None
    year: int
    city: tuple  # an entry of phrases.CITIES


def _phone(rng: random.Random) -> str:
    return f"+380{rng.choice(_OPERATOR_CODES)}{rng.randrange(10_000_000):07d}"


def _profile(rng: random.Random, phone: str) -> _Caller:
    female = rng.random() < 0.35
    if female:
        first = rng.choice(P.FEMALE_NAMES)
    else:
        first = rng.choice(P.MALE_NAMES)
    if rng.random() < 0.15:
        last = rng.choice(P.SURNAMES_GENDERED)[1 if female else 0]
    else:
        last = rng.choice(P.SURNAMES)
    car = rng.choice(P.CARS) if rng.random() < 0.85 else None
    year = rng.randint(car[4], car[5]) if car else 2015
    city = P.CITIES[bisect.bisect_right(_CITY_CUM, rng.random() * _CITY_CUM[-1])]
    return _Caller(phone, first, last, female, car, year, city)


@lru_cache(maxsize=16)
def _caller_pool(seed: int, size: int) -> tuple[_Caller, ...]:
    """Regular customers: drawn from the seed alone, so they call again across days."""
    rng = random.Random(f"{seed}:callers")
    phones: set[str] = set()
    pool: list[_Caller] = []
    while len(pool) < size:
        phone = _phone(rng)
        if phone in phones:
            continue
        phones.add(phone)
        pool.append(_profile(rng, phone))
    return tuple(pool)


# ------------------------------------------------------------------------------------ dialogue
class _Transfer(Exception):
    def __init__(self, reason: str, bot_text: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bot_text = bot_text  # None: the customer triggers it, else the bot's own transfer line


class _Hangup(Exception):
    pass


def _lognorm(rng: random.Random, median: float, sigma: float) -> int:
    return int(median * math.exp(rng.gauss(0.0, sigma)))


def _pick(rng: random.Random, table: tuple | list) -> Any:
    return table[int(rng.random() * len(table))]


def _weighted(rng: random.Random, pairs: tuple) -> str:
    x = rng.random()
    for value, w in pairs:
        x -= w
        if x < 0:
            return value
    return pairs[-1][0]


class _Dlg:
    """One call's dialogue as it is being written: planned turns, then the timeline in ``_render``."""

    __slots__ = (
        "angered",
        "angry_stage",
        "anon",
        "apology",
        "booking_id",
        "caller",
        "choice",
        "closing",
        "confused_stage",
        "consent",
        "consents",
        "day",
        "hour",
        "kind",
        "last_bot",
        "mishear",
        "misheard",
        "misinformed",
        "name_given",
        "order_id",
        "outage",
        "pending",
        "qty",
        "reask",
        "rng",
        "season",
        "size",
        "slots",
        "stage",
        "tool_error",
        "tools_called",
        "transfer_reason",
        "transfer_stage",
        "turns",
        "v2",
        "wrong_price",
    )  # fmt: skip

    def __init__(self, rng: random.Random, caller: _Caller, anon: bool, v2: bool, day: date, hour: int) -> None:
        self.rng = rng
        self.caller = caller
        self.anon = anon
        self.v2 = v2
        self.day = day
        self.hour = hour
        self.kind: str | None = None
        self.turns: list[tuple] = []  # (speaker, text, tool calls, forced stt_confidence, from TTS cache)
        self.pending: list[dict] = []
        self.stage = 0
        self.transfer_stage: int | None = None
        self.transfer_reason: str | None = None
        self.angry_stage = 0
        self.confused_stage = 0
        self.reask = False
        self.tool_error = False
        self.outage = False
        self.apology = False
        self.last_bot = ""
        self.order_id: str | None = None
        self.booking_id: str | None = None
        self.name_given = False
        self.season = "winter"
        self.size: _Size = _SIZES["205/55 R16"]
        self.choice: tuple | None = None
        self.qty = 4
        self.closing: tuple[str, ...] = P.CUST_THANKS
        # staged truth: what the judges are measured against
        self.mishear: str | None = None  # the scenario head whose first request the bot will mishear
        self.misheard = False
        self.wrong_price = False
        self.misinformed = False  # the wrong price was said
        self.consent = False  # the customer has just agreed to a read-back of the action's details
        self.consents: list[bool] = []  # per committing tool call: was it agreed to
        self.angered = False
        self.tools_called = 0
        city = caller.city
        car = caller.car
        in_city = ("в " if city[1][0] in "АЕЄИІЇОУЮЯ" else "у ") + city[1]
        self.slots = {
            "l": "ла" if caller.female else "в",
            "a": "а" if caller.female else "ий",
            "a_short": "а" if caller.female else "",
            "would": "Хотіла б" if caller.female else "Хотів би",
            "in_city": in_city,
            "In_city": _cap(in_city),
            "hi": _pick(rng, P.CUST_HI),
            "first": caller.first,
            "last": caller.last,
            "city": city[0],
            "city_loc": city[1],
            "car_nom": car[2] if car else "Шкода Октавія",
            "car_acc": car[3] if car else "Шкоду Октавію",
        }

    # -- turns
    def fmt(self, template: str, **extra: Any) -> str:
        if extra:
            return template.format_map({**self.slots, **extra})
        return template.format_map(self.slots)

    def bot(self, text: str, cached: bool = False) -> None:
        if self.apology:
            text = P.BOT_RETRY_PREFIX + text
            self.apology = False
            cached = False
        self.turns.append(("bot", text, self.pending, None, cached))
        self.pending = []
        self.last_bot = text

    def cust(self, text: str, conf: float | None = None) -> None:
        self.turns.append(("customer", text, None, conf, False))
        if self.mishear is not None:  # the first request is taken for another one, then corrected
            head, self.mishear = self.mishear, None
            if conf is None:
                self.misheard = True
                self.turns.append(("bot", _pick(self.rng, P.BOT_OFF_TOPIC.get(head, P.BOT_OFF_TOPIC["other"])),
                                   [], None, False))  # fmt: skip
                self.turns.append(("customer", _pick(self.rng, P.CUST_CORRECTION), None, None, False))

    def cust_word(self, text: str, word: str) -> None:
        """A customer turn naming a brand or a city: streaming STT may mishear it (then the bot re-asks)."""
        hard = P.HARD_WORDS.get(word)
        rng = self.rng
        if self.reask and hard is not None and rng.random() < hard[0]:
            self.reask = False
            self.cust(text.replace(word, _pick(rng, hard[1])), conf=round(rng.uniform(0.31, 0.58), 3))
            self.bot(_pick(rng, P.REASK), cached=True)
            if rng.random() < 0.5:
                self.cust(text.replace(self.slots["hi"], "", 1) if self.slots["hi"] else text)
            else:
                self.cust(_pick(rng, P.CUST_REPEAT).format(word=word, Word=word))
        else:
            self.cust(text)

    def tool(self, name: str, args: dict, result: Any, fail: Any = None) -> None:
        rng = self.rng
        if name != "transfer_to_operator":
            self.tools_called += 1
        if name in COMMITTING_TOOLS:
            self.consents.append(self.consent)
        if fail is not None:
            self.pending.append(self._call(name, args, fail, False))
            return
        if self.outage and name in OUTAGE_TOOLS:
            error = {"error": "upstream_unavailable", "status": 503, "message": "order service unavailable"}
            self.pending.append(self._call(name, args, error, False, extra_ms=rng.randint(800, 3000)))
            raise _Transfer("cannot_help", _pick(rng, P.BOT_SYSTEM_DOWN))
        if self.tool_error and name != "transfer_to_operator":
            self.tool_error = False
            error, slow = _pick(rng, _TOOL_ERRORS)
            self.pending.append(self._call(name, args, error, False, extra_ms=slow))
            if rng.random() < 0.4:
                raise _Transfer("cannot_help", _pick(rng, P.BOT_TECH_TRANSFER))
            self.apology = True
        self.pending.append(self._call(name, args, result, True))

    def _call(self, name: str, args: dict, result: Any, success: bool, extra_ms: int = 0) -> dict:
        ms = _lognorm(self.rng, _TOOL_MS.get(name, 200), 0.35) + extra_ms
        return {"name": name, "args": args, "result": result, "duration_ms": ms, "success": success}

    def checkpoint(self) -> None:
        """A point after a bot turn where the customer may get confused, angry or ask for an operator."""
        self.stage += 1
        stage = self.stage
        rng = self.rng
        if stage == self.confused_stage:
            last = self.last_bot
            for customer, bot in rng.sample(P.CONFUSED, 1 if rng.random() < 0.6 else 2):
                self.cust(self.fmt(customer))
                self.bot(bot.format(last=last) if "{last}" in bot else bot)
        if stage == self.angry_stage and not (
            self.transfer_stage == stage and self.transfer_reason == "negative_emotion"
        ):
            self.cust(self.fmt(_pick(rng, P.ANGRY)))
            self.angered = True
            self.bot(_pick(rng, P.BOT_CALM), cached=True)
        if stage == self.transfer_stage:
            raise _Transfer(self.transfer_reason or "customer_request")

    # -- pieces
    def brand_spoken(self, brand: str) -> str:
        return P.BRANDS[brand][1]

    def phone_args(self) -> dict:
        return {} if self.anon else {"phone": self.caller.phone}


def _item(rng: random.Random, brand: str, season: str, size: _Size) -> tuple:
    models = P.BRANDS[brand][4][season]
    model, code = models[int(rng.random() * len(models))]
    sku = f"{P.BRANDS[brand][0]}-{code}-{size.code}"
    return (brand, model, sku, _price(brand, model, size), rng.randint(4, 40))


def _item_json(item: tuple) -> dict:
    brand, model, sku, price, stock = item
    return {"sku": sku, "brand": brand, "model": model, "price_uah": price, "stock": stock}


def _random_brand(rng: random.Random) -> str:
    return _BRAND_NAMES[bisect.bisect_right(_BRAND_CUM, rng.random() * _BRAND_CUM[-1])]


def _search(rng: random.Random, size: _Size, season: str, brand: str | None) -> list[tuple]:
    brands = [brand] if brand else [_pick(rng, _PREMIUM)]
    for group in (_MIDDLE, _BUDGET):
        candidate = _pick(rng, group)
        if candidate not in brands:
            brands.append(candidate)
    for fallback in ("Hankook", "Premiorri", "Matador", "Rosava"):
        if len(brands) >= 3:
            break
        if fallback not in brands:
            brands.append(fallback)
    items = [_item(rng, b, season, size) for b in brands[:3]]
    if brand is None:
        items.sort(key=lambda it: -it[3])
    return items


def _offer(item: tuple) -> str:
    return P.OFFER_ITEM.format(brand=item[0], model=item[1], price=_money(item[3]))


def _qty_spoken(qty: int) -> str:
    word = P.QTY_WORDS.get(qty, str(qty))
    unit = "штуку" if qty == 1 else "штуки" if qty < 5 else "штук"
    return f"{word} {unit}"


def _year_spoken(rng: random.Random, year: int) -> str:
    if rng.random() < 0.6 or year < 2001:
        return f"{year} року"
    return f"дві тисячі {P.YEAR_ORDINAL_GEN[year - 2000]} року"


def _day_spoken(day: date, target: date) -> str:
    delta = (target - day).days
    if delta == 0:
        return "сьогодні"
    if delta == 1:
        return "завтра"
    if delta == 2:
        return "післязавтра"
    return P.WEEKDAY_ACC[target.weekday()]


def _date_spoken(day: date, target: date) -> str:
    if (target - day).days == 1:
        return "завтра"
    return f"{target.day} {P.MONTHS_GEN[target.month - 1]}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------ scenarios
def _tire_search(d: _Dlg, standalone: bool) -> None:
    rng = d.rng
    season_pl, season_gen = P.SEASON_WORDS[d.season]
    brand = None
    car = d.caller.car
    if car is not None and rng.random() < 0.6:
        make, model, _nom, _acc, _y0, _y1, sizes, _vtype = car
        year = d.caller.year
        d.cust(
            d.fmt(_pick(rng, P.CUST_TIRE_CAR), season_pl=season_pl, season_gen=season_gen,
                  year_sp=_year_spoken(rng, year))
        )  # fmt: skip
        d.tool("get_vehicle_tire_sizes", {"make": make, "model": model, "year": year}, {"sizes": list(sizes)})
        car_disp = f"{make} {model}"
        if len(sizes) == 1:
            size = _SIZES[sizes[0]]
            d.bot(_pick(rng, P.BOT_CAR_ONE_SIZE).format(car_disp=car_disp, year=year, size=size.text))
            d.checkpoint()
            d.cust(_pick(rng, P.CUST_SIZE_YES))
        else:
            d.bot(_pick(rng, P.BOT_CAR_SIZES).format(car_disp=car_disp, year=year, sizes=" або ".join(sizes)))
            d.checkpoint()
            size = _SIZES[sizes[0] if rng.random() < 0.6 else _pick(rng, sizes)]
            d.cust(_pick(rng, P.CUST_SIZE_ANSWER).format(size_sp=_pick(rng, size.spoken)))
    else:
        size = d.size
        size_sp = _pick(rng, size.spoken)
        if rng.random() < 0.4:
            brand = _random_brand(rng)
            spoken = d.brand_spoken(brand)
            text = d.fmt(
                _pick(rng, P.CUST_TIRE_SIZE_BRAND), season_pl=season_pl, Season_pl=_cap(season_pl),
                brand_sp=spoken, size_sp=size_sp,
            )  # fmt: skip
            d.cust_word(text, spoken)
        else:
            d.cust(
                d.fmt(_pick(rng, P.CUST_TIRE_SIZE), season_pl=season_pl, season_gen=season_gen, size_sp=size_sp,
                      r=size.rim)
            )  # fmt: skip
    d.size = size
    if d.v2:
        d.bot(_pick(rng, P.BOT_CONFIRM_SIZE).format(size=size.text, season_pl=season_pl))
        d.cust(_pick(rng, P.CUST_YES))
    items = _search(rng, size, d.season, brand)
    spoken_items = list(items)
    if d.wrong_price:  # the offer names a price the search did not return
        b, m, sku, price, stock = items[0]
        spoken_items[0] = (b, m, sku, price + 10 * (zlib.crc32(sku.encode()) % 60 + 15), stock)
    args: dict[str, Any] = {"size": size.text, "season": d.season}
    if brand:
        args["brand"] = brand
    args["limit"] = 3
    d.tool("search_tires", args, {"items": [_item_json(it) for it in items], "total": rng.randint(len(items), 24)})
    if brand:
        text = _pick(rng, P.BOT_OFFER_BRAND).format(
            brand=brand, size=size.text, o1=_offer(spoken_items[0]), o2=_offer(spoken_items[1])
        )
    elif d.v2:
        text = _pick(rng, P.BOT_OFFER_V2).format(size=size.text, o1=_offer(spoken_items[0]), o2=_offer(spoken_items[1]))
    else:
        text = _pick(rng, P.BOT_OFFER_V1).format(
            size=size.text, n=rng.randint(5, 20), o1=_offer(spoken_items[0]), o2=_offer(spoken_items[1]),
            o3=_offer(spoken_items[2]),
        )  # fmt: skip
    d.bot(text)
    d.misinformed = d.misinformed or d.wrong_price
    d.checkpoint()
    if rng.random() < 0.35:
        question, answer = _pick(rng, P.TIRE_COMPARE)
        d.cust(question)
        (b1, m1, _, _, _), (b2, m2, _, _, _), (b3, m3, _, p3, _) = items
        d.bot(answer.format(b1=b1, m1=m1, b2=b2, m2=m2, b3=b3, m3=m3, p3=_money(p3)))
    if brand or rng.random() < 0.45:
        pick = items[0]
    else:
        pick = items[1] if d.v2 or rng.random() < 0.6 else items[2]
    spoken = d.brand_spoken(pick[0])
    d.cust_word(_pick(rng, P.CUST_PICK).format(brand_sp=spoken, model=pick[1]), spoken)
    d.bot(
        _pick(rng, P.BOT_PICKED).format(
            brand=pick[0], model=pick[1], size=size.text, total=_money(pick[3] * 4), stock=pick[4]
        )
    )
    d.choice = pick
    if rng.random() < 0.3:
        question, answer = _pick(rng, P.AVAIL_FOLLOWUP)
        d.cust(question)
        d.bot(answer.format(year=d.day.year - rng.randint(0, 1)), cached="{" not in answer)
    if standalone:
        d.closing = P.CUST_THINK


def _availability(d: _Dlg, standalone: bool) -> None:
    rng = d.rng
    size = d.size
    brand = _random_brand(rng)
    item = _item(rng, brand, d.season, size)
    spoken = d.brand_spoken(brand)
    d.cust_word(
        d.fmt(_pick(rng, P.CUST_AVAIL), brand_sp=spoken, model=item[1], size_sp=_pick(rng, size.spoken)), spoken
    )
    city = d.caller.city
    roll = rng.random()
    price = item[3]
    if roll < 0.6:
        stock = rng.randint(4, 24)
        result = {"sku": item[2], "available": True, "stock_local": stock, "stock_central": rng.randint(0, 60),
                  "price_uah": price, "city": city[0]}  # fmt: skip
        text = _pick(rng, P.BOT_AVAIL_LOCAL).format(
            brand=brand, model=item[1], size=size.text, stock=stock, in_city=d.slots["in_city"], price=_money(price)
        )
        d.choice = item
    elif roll < 0.85:
        stock = rng.randint(4, 80)
        result = {"sku": item[2], "available": True, "stock_local": 0, "stock_central": stock,
                  "price_uah": price, "city": city[0], "delivery_days": rng.randint(1, 2)}  # fmt: skip
        text = _pick(rng, P.BOT_AVAIL_CENTRAL).format(stock=stock, In_city=d.slots["In_city"], price=_money(price))
        d.choice = item
    else:
        alt_brand = next(b for b in (_pick(rng, _MIDDLE), "Hankook", "Matador") if b != brand)
        alt = _item(rng, alt_brand, d.season, size)
        eta = d.day + timedelta(days=rng.randint(5, 21))
        result = {"sku": item[2], "available": False, "stock_local": 0, "stock_central": 0,
                  "expected_date": eta.isoformat(), "alternatives": [_item_json(alt)]}  # fmt: skip
        text = _pick(rng, P.BOT_AVAIL_NONE).format(
            brand=brand, model=item[1], size=size.text, eta=_date_spoken(d.day, eta),
            alt=f"{alt[0]} {alt[1]}", alt_price=_money(alt[3]),
        )  # fmt: skip
        d.choice = alt
        if standalone:
            d.closing = P.CUST_AVAIL_NONE
    d.tool("check_availability", {"sku": item[2], "city": city[0]}, result)
    d.bot(text)
    d.checkpoint()
    if rng.random() < 0.6:
        question, answer = _pick(rng, P.AVAIL_FOLLOWUP)
        d.cust(question)
        d.bot(answer.format(year=d.day.year - rng.randint(0, 1)), cached="{" not in answer)
    if standalone and d.closing is P.CUST_THANKS:
        d.closing = P.CUST_THINK


def _injection(d: _Dlg, item: tuple) -> None:
    rng = d.rng
    _brand, _model, sku, price, _stock = item
    if rng.random() < 0.6:
        d.cust(_pick(rng, P.INJECTION_PRICE))
        args = {"items": [{"sku": sku, "quantity": 4, "price": 0}], **d.phone_args()}
        fail = {"error": "validation_failed", "field": "items.0.price",
                "message": f"price 0 does not match the catalogue price {price}"}  # fmt: skip
        d.tool("create_order_draft", args, None, fail=fail)
        d.bot(_pick(rng, P.BOT_INJECTION_PRICE).format(price=_money(price)))
    else:
        text, qty = _pick(rng, P.INJECTION_QTY)
        d.cust(text)
        args = {"items": [{"sku": sku, "quantity": qty, "price": price}], **d.phone_args()}
        fail = {"error": "validation_failed", "field": "items.0.quantity",
                "message": f"quantity {qty} exceeds the limit of 50 per order"}  # fmt: skip
        d.tool("create_order_draft", args, None, fail=fail)
        d.bot(_pick(rng, P.BOT_INJECTION_QTY))
    d.cust(_pick(rng, P.CUST_INJECTION_END))
    raise _Hangup


def _storm(d: _Dlg, item: tuple, qty: int, name: str) -> None:
    rng = d.rng
    sku = item[2]
    attempts = (
        ({"items": [{"sku": sku[:7], "quantity": qty, "price": item[3]}], "customer_name": name},
         {"error": "validation_failed", "field": "items.0.sku", "message": f"unknown sku {sku[:7]}"}),
        ({"items": [{"sku": sku, "quantity": f"{qty} шт", "price": item[3]}], "customer_name": name},
         {"error": "validation_failed", "field": "items.0.quantity", "message": "must be an integer"}),
        ({"items": [], "customer_name": name},
         {"error": "validation_failed", "field": "items", "message": "must not be empty"}),
        ({"items": [{"sku": sku, "quantity": qty, "price": item[3]}], "customer_name": name, "phone": "0"},
         {"error": "validation_failed", "field": "phone", "message": "not a phone number"}),
        ({"items": [{"sku": sku, "quantity": qty}], "customer_name": ""},
         {"error": "validation_failed", "field": "customer_name", "message": "must not be empty"}),
    )  # fmt: skip
    n = rng.randint(4, len(attempts))
    for k in range(n):
        args, fail = attempts[k]
        d.tool("create_order_draft", args, None, fail=fail)
        if k < n - 1:
            d.bot(P.BOT_STORM[k % len(P.BOT_STORM)])
            d.cust(_pick(rng, P.CUST_STORM))
    raise _Transfer("cannot_help", _pick(rng, P.BOT_STORM_TRANSFER))


def _order(d: _Dlg, after: bool) -> None:
    rng = d.rng
    city = d.caller.city
    qty = d.qty
    if after and d.choice is not None:
        item = d.choice
        if d.kind == "injection":
            _injection(d, item)
        d.cust(_pick(rng, P.CUST_ORDER_AFTER_SEARCH).format(qty_sp=_qty_spoken(qty)))
    else:
        item = _item(rng, _random_brand(rng), d.season, d.size)
        spoken = d.brand_spoken(item[0])
        text = d.fmt(
            _pick(rng, P.CUST_ORDER_DIRECT), brand_sp=spoken, model=item[1], size_sp=_pick(rng, d.size.spoken),
            qty_sp=_qty_spoken(qty),
        )  # fmt: skip
        d.cust_word(text, spoken)
        stock = rng.randint(qty, qty + 30)
        d.tool(
            "check_availability",
            {"sku": item[2], "city": city[0]},
            {"sku": item[2], "available": True, "stock_local": stock, "stock_central": rng.randint(0, 60),
             "price_uah": item[3], "city": city[0]},
        )  # fmt: skip
        d.bot(
            _pick(rng, P.BOT_ORDER_DIRECT).format(
                brand=item[0], model=item[1], size=d.size.text, price=_money(item[3]), qty=qty,
                total=_money(item[3] * qty),
            )
        )  # fmt: skip
        d.checkpoint()
        if d.kind == "injection":
            _injection(d, item)
        d.cust(_pick(rng, P.CUST_GO))
    brand, model, sku, price, _stock = item
    total = price * qty
    name = f"{d.caller.first} {d.caller.last}"
    if not d.name_given:
        d.bot(_pick(rng, P.BOT_ASK_NAME), cached=True)
        d.cust(d.fmt(_pick(rng, P.CUST_NAME)))
        d.name_given = True
    if d.kind == "storm":
        _storm(d, item, qty, name)
    order_id = f"ORD-{rng.randrange(100_000, 1_000_000)}"
    d.tool(
        "create_order_draft",
        {"items": [{"sku": sku, "quantity": qty, "price": price}], "customer_name": name, **d.phone_args()},
        {"order_id": order_id, "status": "draft", "total_uah": total},
    )
    d.bot(d.fmt(_pick(rng, P.BOT_ASK_DELIVERY)))
    d.checkpoint()
    eta = d.day + timedelta(days=rng.randint(1, 3))
    if rng.random() < 0.72:
        branch = rng.randint(1, 250 if city[2] == "kyiv" else 60)
        d.cust_word(d.fmt(_pick(rng, P.CUST_DELIVERY_NP), branch=branch), city[0])
        d.tool(
            "update_order_delivery",
            {"order_id": order_id, "method": "nova_poshta", "city": city[0], "branch": str(branch)},
            {"order_id": order_id, "delivery_cost_uah": 0 if qty >= 4 else 120, "eta": eta.isoformat()},
        )
        delivery = P.DELIVERY_NP.format(in_city=d.slots["in_city"], branch=branch)
    else:
        d.cust(d.fmt(_pick(rng, P.CUST_DELIVERY_PICKUP)))
        points = _PICKUPS[city[2]]
        point = _pick(rng, points)
        d.tool("get_pickup_points", {"city": city[0]}, {"points": [dict(p) for p in points]})
        d.tool(
            "update_order_delivery",
            {"order_id": order_id, "method": "pickup", "pickup_point_id": point["id"]},
            {"order_id": order_id, "delivery_cost_uah": 0, "eta": eta.isoformat()},
        )
        delivery = P.DELIVERY_PICKUP.format(address=point["address"])
    fields = {"qty": qty, "brand": brand, "model": model, "size": d.size.text, "total": _money(total),
              "delivery": delivery, "order_id": order_id}  # fmt: skip
    confirm_result = {"order_id": order_id, "status": "confirmed", "total_uah": total, "payment": "cash_on_delivery"}
    if d.v2 or rng.random() < 0.7:
        d.bot(_pick(rng, P.BOT_ORDER_SUMMARY_V2 if d.v2 else P.BOT_ORDER_SUMMARY).format(**fields))
        d.cust(_pick(rng, P.CUST_CONFIRM))
        d.consent = True
        d.tool("confirm_order", {"order_id": order_id}, confirm_result)
        d.consent = False
        d.bot(_pick(rng, P.BOT_ORDER_DONE).format(**fields))
    else:
        d.consent = False
        d.tool("confirm_order", {"order_id": order_id}, confirm_result)
        d.bot(_pick(rng, P.BOT_ORDER_DONE_NO_CONFIRM).format(**fields))
    d.order_id = order_id


def _order_status(d: _Dlg) -> None:
    rng = d.rng
    digits = str(rng.randrange(100_000, 1_000_000))
    order_id = f"ORD-{digits}"
    if rng.random() < 0.5:
        d.cust(d.fmt(_pick(rng, P.CUST_STATUS_WITH_ID), digits=digits))
        args: dict[str, Any] = {"order_id": order_id}
    else:
        d.cust(d.fmt(_pick(rng, P.CUST_STATUS)))
        if d.anon:
            d.bot(_pick(rng, P.BOT_ASK_ORDER_ID), cached=True)
            d.cust(_pick(rng, P.CUST_ORDER_ID).format(digits=digits))
            args = {"order_id": order_id}
        else:
            d.bot(_pick(rng, P.BOT_ASK_ORDER_ID_OR_PHONE), cached=True)
            if rng.random() < 0.5:
                d.cust(_pick(rng, P.CUST_ORDER_ID).format(digits=digits))
                args = {"order_id": order_id}
            else:
                d.cust(_pick(rng, P.CUST_BY_PHONE))
                args = {"phone": d.caller.phone}
    x = rng.random() * _STATUS_CUM[-1]
    status = _STATUS_NAMES[bisect.bisect_right(_STATUS_CUM, x)]
    ttn = f"2045{rng.randrange(10**10):010d}"
    eta = d.day + timedelta(days=rng.randint(1, 3))
    delivered = d.day - timedelta(days=rng.randint(1, 4))
    city = d.caller.city
    point = _PICKUPS[city[2]][0]
    result: dict[str, Any] = {
        "order_id": order_id,
        "status": status,
        "created_at": (d.day - timedelta(days=3)).isoformat(),
    }
    if status == "shipped":
        result.update(carrier="nova_poshta", tracking_number=ttn, eta=eta.isoformat())
    elif status == "ready_for_pickup":
        result.update(pickup_point_id=point["id"], pickup_until=(d.day + timedelta(days=5)).isoformat())
    elif status == "delivered":
        result.update(carrier="nova_poshta", tracking_number=ttn, delivered_at=delivered.isoformat())
    d.tool("get_order_status", args, result)
    d.bot(
        _pick(rng, P.BOT_STATUS[status]).format(
            order_id=order_id, ttn=ttn, eta=_date_spoken(d.day, eta), address=point["address"],
            delivered=_date_spoken(d.day, delivered),
        )
    )  # fmt: skip
    d.checkpoint()
    if rng.random() < 0.7:
        question, answer = _pick(rng, P.STATUS_FOLLOWUP)
        if "{ttn}" in answer and status not in ("shipped", "delivered"):
            question, answer = P.STATUS_FOLLOWUP[0]
        d.cust(question)
        d.bot(answer.format(ttn=ttn))


def _fitting(d: _Dlg, after: bool) -> None:
    rng = d.rng
    city = d.caller.city
    offset = _pick(rng, (0, 1, 1, 1, 2, 2, 3, 4, 5))
    if offset == 0 and d.hour >= 16:
        offset = 1
    target = d.day + timedelta(days=offset)
    day_sp = _day_spoken(d.day, target)
    station = _pick(rng, _STATIONS[city[2]])
    times = sorted(rng.sample(P.SLOT_TIMES, 3))
    slots_result = {"station_id": station["id"], "date": target.isoformat(), "slots": times}
    if not after and not d.anon and rng.random() < 0.18:
        old_id = f"FIT-{rng.randrange(10_000, 100_000)}"
        old_date = d.day + timedelta(days=rng.randint(0, 3))
        old_time = _pick(rng, P.SLOT_TIMES)
        d.cust(d.fmt(_pick(rng, P.CUST_RESCHEDULE)))
        d.tool(
            "get_customer_bookings",
            {"phone": d.caller.phone},
            {"bookings": [{"booking_id": old_id, "date": old_date.isoformat(), "time": old_time,
                           "station_id": station["id"]}]},
        )  # fmt: skip
        d.bot(
            _pick(rng, P.BOT_FOUND_BOOKING).format(
                old_id=old_id, old_date=_date_spoken(d.day, old_date), old_time=old_time
            )
        )
        d.checkpoint()
        d.cust(_pick(rng, P.CUST_NEW_DAY).format(day_sp=day_sp, Day_sp=_cap(day_sp)))
        d.tool("cancel_fitting", {"booking_id": old_id}, {"booking_id": old_id, "status": "cancelled"})
        d.tool("get_fitting_slots", {"station_id": station["id"], "date": target.isoformat()}, slots_result)
        d.bot(_pick(rng, P.BOT_RESCHEDULE_SLOTS).format(Day_sp=_cap(day_sp), t1=times[0], t2=times[1], t3=times[2]))
        d.name_given = True
    else:
        if after:
            d.cust(_pick(rng, P.CUST_FITTING_AFTER_SEARCH))
        else:
            d.cust(d.fmt(_pick(rng, P.CUST_FITTING), day_sp=day_sp))
        d.bot(_pick(rng, P.BOT_ASK_CITY_DAY), cached=True)
        d.cust_word(d.fmt(_pick(rng, P.CUST_CITY_DAY), day_sp=day_sp), city[0])
        d.tool("get_fitting_stations", {"city": city[0]}, {"stations": [dict(s) for s in _STATIONS[city[2]]]})
        d.tool("get_fitting_slots", {"station_id": station["id"], "date": target.isoformat()}, slots_result)
        d.bot(
            _pick(rng, P.BOT_SLOTS).format(
                In_city=d.slots["In_city"], address=station["address"], Day_sp=_cap(day_sp), t1=times[0], t2=times[1],
                t3=times[2],
            )
        )  # fmt: skip
    d.checkpoint()
    chosen = _pick(rng, times)
    car = d.caller.car
    vtype = car[7] if car else "car"
    if rng.random() < 0.3:
        rim = d.size.rim if d.choice else (_SIZES[car[6][0]].rim if car else 16)
        price = {13: 600, 14: 600, 15: 700, 16: 800, 17: 950, 18: 1100}.get(rim, 1300)
        price += {"car": 0, "suv": 200, "van": 300}[vtype]
        d.cust(_pick(rng, P.CUST_FITTING_PRICE).format(r=rim))
        d.tool(
            "get_fitting_price",
            {"rim": rim, "vehicle_type": vtype},
            {"price_uah": price, "includes": ["demount", "mount", "balancing"]},
        )
        d.bot(_pick(rng, P.BOT_FITTING_PRICE).format(r=rim, price=_money(price), t=chosen))
        d.cust(_pick(rng, P.CUST_BOOK_GO))
        d.consent = True  # the bot read the slot back and asked; the name that may follow changes nothing
    else:  # the customer picked a time; the booking was never read back for a yes
        d.cust(_pick(rng, P.CUST_TIME).format(t=chosen))
        d.consent = False
    if not d.name_given:
        d.bot(_pick(rng, P.BOT_ASK_NAME_CAR), cached=True)
        d.cust(d.fmt(_pick(rng, P.CUST_NAME_CAR)))
        d.name_given = True
    booking_id = f"FIT-{rng.randrange(10_000, 100_000)}"
    vehicle = f"{car[0]} {car[1]}" if car else "Skoda Octavia"
    d.tool(
        "book_fitting",
        {"station_id": station["id"], "date": target.isoformat(), "time": chosen,
         "customer_name": f"{d.caller.first} {d.caller.last}", **d.phone_args(), "vehicle": vehicle},
        {"booking_id": booking_id, "status": "confirmed", "date": target.isoformat(), "time": chosen},
    )  # fmt: skip
    d.consent = False
    d.bot(_pick(rng, P.BOT_BOOKED).format(day_sp=day_sp, t=chosen, address=station["address"], booking_id=booking_id))
    d.booking_id = booking_id


def _consultation(d: _Dlg) -> None:
    rng = d.rng
    first, second = rng.sample(P.KB, 2)
    for k, (kb_id, query, title, questions, answer) in enumerate((first, second)):
        question = _pick(rng, questions)
        if k == 0:
            d.cust(d.fmt(_pick(rng, P.CONSULT_INTRO)) + question)
        else:
            if rng.random() < 0.35:
                break
            prefix = _pick(rng, P.CONSULT_MORE)
            if prefix and not prefix.endswith(". "):
                question = question[:1].lower() + question[1:]
            d.cust(prefix + question)
        d.tool(
            "search_knowledge_base",
            {"query": query},
            {"articles": [{"id": kb_id, "title": title, "snippet": answer[:160]}]},
        )
        d.bot(answer)
        d.checkpoint()


def _build(d: _Dlg, scenario: str) -> None:
    parts = scenario.split(" + ")
    head = parts[0]
    if head == "tire_search":
        _tire_search(d, standalone=len(parts) == 1)
        if "order_creation" in parts:
            _order(d, after=True)
        if "fitting_booking" in parts:
            _fitting(d, after=True)
    elif head == "availability_check":
        _availability(d, standalone=len(parts) == 1)
        if "order_creation" in parts:
            _order(d, after=True)
    elif head == "order_creation":
        _order(d, after=False)
    elif head == "order_status":
        _order_status(d)
    elif head == "fitting_booking":
        _fitting(d, after=False)
    else:
        _consultation(d)


# ------------------------------------------------------------------------------------ one call
class _Day(NamedTuple):
    day: date
    zone: ZoneInfo
    seed: int
    pool: tuple[_Caller, ...]
    ab_test: str | None
    latency_spike: bool
    cost_spike: bool
    outage: bool
    levers: bool  # the current period: Whisper STT and the TTS phrase cache in production (phase 1: neither)
    tenants: tuple[str, ...] = ()  # slugs; empty: the calls name no tenant
    tenant_cum: tuple[float, ...] = ()  # cumulative shares of the tenants
    shared: frozenset[str] = frozenset()  # phones of the regular customers who call every tenant alike


def _tenant_shares(tenants: tuple[str, ...]) -> tuple[float, ...]:
    """Cumulative shares of ``tenants``: the demo's own shares for the demo tenants, else equal."""
    shares = {slug: share for slug, _name, share in DEMO_TENANTS}
    weights = [shares[t] for t in tenants] if all(t in shares for t in tenants) else [1.0] * len(tenants)
    return tuple(accumulate(weights))


def _by_share(ctx: _Day, x: float) -> str:
    """The tenant at ``x`` in [0, 1) of the tenants' cumulative shares."""
    return ctx.tenants[min(bisect.bisect_right(ctx.tenant_cum, x * ctx.tenant_cum[-1]), len(ctx.tenants) - 1)]


def _call_tenant(ctx: _Day, call_id: uuid.UUID, caller: _Caller, anon: bool, shared_call: bool) -> str | None:
    """The tenant a call went to, from generators of its own (no other value of the call depends on it)."""
    if not ctx.tenants:
        return None
    if shared_call:  # the day's call of the first regular customer: the tenants take turns by day
        return ctx.tenants[ctx.day.toordinal() % len(ctx.tenants)]
    own = random.Random(f"{ctx.seed}:{call_id}:tenant").random()
    if anon or caller.phone in ctx.shared:
        return _by_share(ctx, own)
    home = _by_share(ctx, zlib.crc32(caller.phone.encode()) / 2**32)  # a number's home network
    if own < OTHER_TENANT_P and len(ctx.tenants) > 1:  # now and then a caller tries the other network
        others = [t for t in ctx.tenants if t != home]
        return others[int(own / OTHER_TENANT_P * len(others)) % len(others)]
    return home


def _ref_uuid(call_id: uuid.UUID, kind: str) -> str:
    """The uuid of the order or fitting booking a call created (the processor's columns hold uuids)."""
    return str(uuid.uuid5(call_id, kind))


def _make_call(
    rng: random.Random, ctx: _Day, kind: str | None, shared_call: bool = False
) -> tuple[dict[str, Any], dict[str, bool | None]]:
    day = ctx.day
    # when (Kyiv time)
    hour = bisect.bisect_right(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
    minute = int(rng.random() * 60)
    second = int(rng.random() * 60)
    ms = int(rng.random() * 1000)
    local = datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=ctx.zone)
    started = local.astimezone(UTC)
    hm = time(hour, minute)
    call_id = uuid.UUID(int=rng.getrandbits(128), version=4)

    # who
    roll = rng.random()
    anon = roll < 0.02 and not shared_call
    if shared_call:  # the regular customer who calls every network (see _call_tenant)
        caller = ctx.pool[0]
    elif anon:
        caller = _profile(rng, "anonymous")
    elif roll < 0.34:
        caller = _pick(rng, ctx.pool)
    else:
        caller = _profile(rng, _phone(rng))

    # prompt version
    variant = None
    if ctx.ab_test is not None:
        variant = ab_variant(str(call_id) if anon else caller.phone, ctx.ab_test)
    v2 = variant == "B"

    # what
    outage = ctx.outage and kind is None and OUTAGE_WINDOW[0] <= hm < OUTAGE_WINDOW[1]
    if kind in ("injection", "storm"):
        scenario = "tire_search + order_creation" if rng.random() < 0.6 else "order_creation"
    else:
        cum = _SCENARIO_CUMS[(day.month in _FITTING_MONTHS, ctx.outage, v2)]
        scenario = _SCENARIO_NAMES[bisect.bisect_right(cum, rng.random() * cum[-1])]
    head = scenario.split(" + ", 1)[0]

    d = _Dlg(rng, caller, anon, v2, day, hour)
    d.kind = kind
    d.outage = outage
    staged = random.Random(f"{ctx.seed}:{call_id}:staged")  # the main stream is left as it was
    if kind is None and staged.random() < MISUNDERSTOOD_P:
        d.mishear = head
    d.wrong_price = kind is None and head == "tire_search" and staged.random() < WRONG_PRICE_P
    season_w = _SEASON_BY_MONTH[day.month]
    x = rng.random()
    d.season = "winter" if x < season_w[0] else "summer" if x < season_w[0] + season_w[1] else "all_season"
    if caller.car is not None and rng.random() < 0.5:
        d.size = _SIZES[caller.car[6][0]]
    else:
        d.size = _SIZES[
            _POPULAR_SIZE_NAMES[bisect.bisect_right(_POPULAR_SIZE_CUM, rng.random() * _POPULAR_SIZE_CUM[-1])]
        ]
    q = rng.random()
    d.qty = 4 if q < 0.75 else 2 if q < 0.95 else 1 if q < 0.98 else 8

    if kind not in ("injection", "storm"):
        angry = rng.random() < 0.03
        confused = not angry and rng.random() < 0.045
        d.reask = rng.random() < 0.12
        d.tool_error = rng.random() < 0.03
        if angry:
            d.angry_stage = 1
            if rng.random() < (0.6 if v2 else 0.75):
                d.transfer_reason = "negative_emotion"
                d.transfer_stage = 1 if rng.random() < 0.5 else 2
        else:
            p = _TRANSFER_P[head] + 0.02 * scenario.count("+") - (0.06 if v2 else 0.0)
            if confused:
                d.confused_stage = 1
                p += 0.2
            if rng.random() < p:
                mix = _REASON_MIX.get(head, _REASON_MIX["other"])
                if confused:
                    mix = (("complex_question", 0.6), ("cannot_help", 0.25), ("customer_request", 0.15))
                d.transfer_reason = _weighted(rng, mix)
                d.transfer_stage = rng.randint(1, 3)

    # the dialogue
    if kind == "no_greeting":
        d.bot(_pick(rng, P.NO_GREETING_OPENERS), cached=True)
    else:
        part = "morning" if 5 <= hour < 11 else "day" if 11 <= hour < 18 else "evening"
        d.bot(_pick(rng, P.GREETINGS_V2 if v2 else P.GREETINGS_V1).format(hello=P.HELLO_BY_PART[part]), cached=True)
    reason = None
    try:
        _build(d, scenario)
        if d.transfer_stage is not None:
            raise _Transfer(d.transfer_reason or "customer_request")
        if rng.random() < 0.9:
            d.cust(d.fmt(_pick(rng, d.closing)))
            if rng.random() < 0.65:
                d.bot(_pick(rng, P.BOT_ANYTHING_ELSE), cached=True)
                d.cust(_pick(rng, P.CUST_NOTHING_ELSE))
                d.bot(_pick(rng, P.BOT_BYE_SHORT), cached=True)
            else:
                d.bot(_pick(rng, P.BOT_BYE), cached=True)
    except _Transfer as t:
        reason = t.reason
        if t.bot_text is None:
            d.cust(d.fmt(_pick(rng, P.TRANSFER_CUSTOMER[reason])))
            d.angered = d.angered or reason == "negative_emotion"
            bot_text, cached = _pick(rng, P.TRANSFER_BOT[reason]), True
        else:
            bot_text, cached = t.bot_text, False
        queue = rng.randint(0, 4)
        d.pending.append(
            d._call(
                "transfer_to_operator",
                {"reason": reason, "summary": P.TRANSFER_SUMMARY[reason]},
                {"status": "queued", "queue_position": queue + 1, "estimated_wait_seconds": 20 + 35 * queue},
                True,
            )
        )
        d.bot(bot_text, cached=cached)
    except _Hangup:
        d.bot(_pick(rng, P.BOT_BYE_SHORT), cached=True)

    slow = ctx.latency_spike and LATENCY_SPIKE_WINDOW[0] <= hm < LATENCY_SPIKE_WINDOW[1]
    record = _render(d, call_id, started, scenario, head, reason, slow, ctx.cost_spike, ctx.levers)
    tenant = _call_tenant(ctx, call_id, caller, anon, shared_call)
    if tenant is not None:
        record = {"call_id": record.pop("call_id"), "tenant": tenant, **record}
    if variant is not None:
        record["ab_test"] = {"test_name": ctx.ab_test, "variant": variant}
    return record, _truth(d, reason)


def _truth(d: _Dlg, reason: str | None) -> dict[str, bool | None]:
    """What was staged in a call, per criterion: True passed, False failed, None not applicable."""
    return {
        "bot_greeted_properly": d.kind != "no_greeting",
        "bot_understood_intent": not d.misheard,
        # an injected price or quantity, or a storm of invalid arguments: the bot's arguments were wrong
        "bot_used_correct_tool": d.kind not in ("injection", "storm") if d.tools_called else None,
        "bot_provided_accurate_info": not d.misinformed if d.tools_called else None,
        "bot_confirmed_before_action": all(d.consents) if d.consents else None,
        "call_resolved_without_human": reason is None,
        "customer_seemed_satisfied": not d.angered,
    }


def _render(
    d: _Dlg,
    call_id: uuid.UUID,
    started: datetime,
    scenario: str,
    head: str,
    reason: str | None,
    slow: bool,
    cost_spike: bool,
    levers: bool = True,
) -> dict[str, Any]:
    """The timeline (timestamps, durations, latencies), usage and cost of a planned dialogue."""
    rng = d.rng
    gauss = rng.gauss
    rand = rng.random
    exp = math.exp

    def iso(ms: int) -> str:
        return (started + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")

    prompt_tokens = _PROMPT_TOKENS[d.v2]
    hist = llm_calls = llm_in = llm_out = tts_chars = tts_cached = 0
    turns_out = []
    cursor = 0  # end of the previous turn, ms since the call was answered
    ready = rng.randint(150, 600)  # when the bot can start preparing its next turn
    barge_in = False
    planned = d.turns
    last = len(planned) - 1
    for i, (speaker, text, tools, conf, cached) in enumerate(planned):
        nch = len(text)
        if speaker == "customer":
            start = cursor if barge_in else cursor + int(600 + 1400 * rand() + (1500 * rand() if rand() < 0.2 else 0))
            barge_in = False
            duration = int(nch * (75 + 25 * rand())) + int(300 + 600 * rand())
            stt = int(250 * exp(gauss(0.0, 0.35)))
            if rand() < 0.01:
                stt *= 3
            if conf is None:
                if rand() < 0.06:
                    conf = round(0.6 + 0.25 * rand(), 3)
                else:
                    conf = round(min(0.99, max(0.85, gauss(0.93, 0.03))), 3)
            turns_out.append(
                {
                    "turn_number": i + 1,
                    "speaker": "customer",
                    "text": text,
                    "timestamp": iso(start),
                    "duration_ms": duration,
                    "stt_confidence": conf,
                    "stt_latency_ms": stt,
                }
            )
            cursor = start + duration
            ready = cursor + stt
            hist += nch * 2 // 5 + 4
            continue
        t = ready
        tool_tokens = 0
        for k, tc in enumerate(tools):
            if k == 0 or rand() < 0.5:  # the model decides to call (another) tool
                t += int(380 * exp(gauss(0.0, 0.3)))
            tc["timestamp"] = iso(t)
            t += tc["duration_ms"]
            tool_tokens += _TOOL_TOKENS.get(tc["name"], 70)
        llm = int(700 * exp(gauss(0.0, 0.22)))
        if slow:
            llm = int(llm * (4 + 2 * rand()))
        elif rand() < 0.01:
            llm = int(llm * (2.5 + 1.5 * rand()))
        tts = int(200 * exp(gauss(0.0, 0.3)))
        if rand() < 0.01:
            tts *= 3
        start = t + llm + tts
        duration = int(nch * (68 + 12 * rand())) + 200
        interrupted = False
        if 0 < i < last and rand() < 0.08:
            interrupted = True
            duration = int(duration * (0.3 + 0.45 * rand()))
            barge_in = True
        turn: dict[str, Any] = {
            "turn_number": i + 1,
            "speaker": "bot",
            "text": text,
            "timestamp": iso(start),
            "duration_ms": duration,
            "llm_latency_ms": llm,
            "tts_latency_ms": tts,
            "interrupted": interrupted,
        }
        if tools:
            turn["tool_calls"] = tools
        turns_out.append(turn)
        cursor = start + duration
        rounds = 1 + (len(tools) + 1) // 2 if tools else 1
        llm_calls += rounds
        llm_in += rounds * (prompt_tokens + hist) + (rounds - 1) * tool_tokens // 2
        llm_out += nch * 2 // 5 + 8 + 35 * len(tools)
        hist += nch * 2 // 5 + 4 + tool_tokens
        tts_chars += nch
        if cached and levers:  # phase 1 had no phrase cache: every phrase was synthesised
            tts_cached += nch

    end = cursor + (rng.randint(300, 900) if reason else rng.randint(600, 2500))
    if end < 30_000:
        end = 30_000 + rng.randint(0, 4_000)
    seconds = round(end / 1000, 1)
    cached_in = prompt_tokens * (llm_calls - 1) if d.v2 else 0
    if cost_spike:  # a retry loop re-sends every request three times, past the prompt cache
        llm_calls, llm_in, llm_out, cached_in = llm_calls * 3, llm_in * 3, llm_out * 3, 0
    # the model router runs in the current period (both arms); v2 was designed with it
    model = CHEAP_LLM_MODEL if (d.v2 or levers) and head in ("order_status", "consultation") else LLM_MODEL
    usage = {
        "stt_provider": "whisper" if levers else "google",
        "stt_seconds": seconds,
        "llm_model": model,
        "llm_calls": llm_calls,
        "llm_input_tokens": llm_in,
        "llm_output_tokens": llm_out,
        "llm_cached_input_tokens": cached_in,
        "tts_provider": "google",
        "tts_chars": tts_chars,
        "tts_cached_chars": tts_cached,
        "telephony_seconds": seconds,
    }
    record: dict[str, Any] = {
        "call_id": str(call_id),
        "started_at": started.isoformat(timespec="milliseconds"),
        "ended_at": iso(end),
        "duration_seconds": seconds,
        "caller_id": "anonymous" if d.anon else d.caller.phone,
    }
    if d.order_id or d.booking_id:
        record["customer_name"] = f"{d.caller.first} {d.caller.last}"
    record["scenario"] = scenario
    record["transferred_to_operator"] = reason is not None
    if reason is not None:
        record["transfer_reason"] = reason
    # the tools answer with human numbers (ORD-204518, FIT-51234); the call records the uuids
    record["order_created"] = d.order_id is not None
    if d.order_id:
        record["order_id"] = _ref_uuid(call_id, "order")
    record["fitting_booked"] = d.booking_id is not None
    if d.booking_id:
        record["fitting_booking_id"] = _ref_uuid(call_id, "fitting_booking")
    record["prompt_version"] = _LABELS[d.v2]
    record["turns"] = turns_out
    record["usage"] = usage
    record["cost"] = compute_cost(usage)
    return record


# ------------------------------------------------------------------------------------ days
def _day_calls(ctx: _Day, calls_per_day: int) -> list[tuple[dict[str, Any], dict[str, bool | None]]]:
    rng = random.Random(f"{ctx.seed}:{ctx.day.isoformat()}")
    factor = _WEEKDAY_FACTOR[ctx.day.weekday()] * (1.0 + rng.gauss(0.0, 0.04))
    if ctx.outage:
        factor *= 1.08
    n = max(1, round(calls_per_day * factor))
    kinds: dict[int, str] = {}
    wanted = (
        ("injection", max(1, round(n * 0.004))),
        ("storm", max(1, round(n * 0.004))),
        ("no_greeting", max(1, round(n * 0.006))),
    )
    picks = rng.sample(range(n), min(n, sum(k for _, k in wanted)))
    for kind, count in wanted:
        for _ in range(count):
            if picks:
                kinds[picks.pop()] = kind
    # one call a day of the first regular customer, who calls every network: drawn apart from the day's stream
    shared = random.Random(f"{ctx.seed}:{ctx.day.isoformat()}:shared").randrange(n)
    calls = [_make_call(rng, ctx, kinds.get(i), i == shared) for i in range(n)]
    calls.sort(key=lambda c: c[0]["started_at"])
    return calls


def generate_calls(
    *,
    seed: int = 42,
    days: int = 30,
    calls_per_day: int = 400,
    end_date: date | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    ab_test: str | None = DEMO_AB_TEST,
    ab_days: int = DEMO_AB_DAYS,
    levers_days: int | None = None,
    until: datetime | None = None,
    with_truth: bool = False,
    tenants: tuple[str, ...] | list[str] | None = DEMO_TENANT_SLUGS,
) -> Iterator[Any]:
    """Yield ``days`` Kyiv-local days of synthetic call logs ending on ``end_date`` (default: today in
    ``tz``), in chronological order. Deterministic: same arguments, same calls (see the module docstring).

    ``until`` (an aware instant, e.g. ``clock.now()``): only the calls that have ended by then — a
    call still in progress or in the future has not been logged yet. The calls kept are the same as
    without it, so a later run with a later ``until`` only adds calls.

    ``with_truth``: yield ``(call, truth)`` pairs instead (see ``generate_calls_with_truth``).

    ``tenants``: the slugs of the tenants the calls are split between (default: the demo's two, see the
    module docstring); ``None`` or empty: the calls name no tenant. Only the ``tenant`` key depends on it."""
    if days < 1:
        raise InvalidArgument("days must be at least 1")
    if calls_per_day < 1:
        raise InvalidArgument("calls_per_day must be at least 1")
    if ab_days < 0:
        raise InvalidArgument("ab_days must not be negative")
    if levers_days is not None and levers_days < 0:
        raise InvalidArgument("levers_days must not be negative")
    if until is not None and until.tzinfo is None:
        raise InvalidArgument("until must be timezone-aware")
    tenants = tuple(tenants or ())
    if len(set(tenants)) != len(tenants):
        raise InvalidArgument("tenants must not repeat")
    zone = ZoneInfo(tz)
    end = end_date if end_date is not None else clock.now().astimezone(zone).date()
    if isinstance(end, datetime):
        end = end.date()
    specials = special_days(end, days)
    pool = _caller_pool(seed, max(30, round(calls_per_day * 1.5)))
    ab_first = end - timedelta(days=ab_days - 1)
    levers_first = end - timedelta(days=(ab_days if levers_days is None else levers_days) - 1)
    calls = _generate(seed, days, calls_per_day, end, zone, ab_test, ab_first, specials, pool, levers_first, tenants)
    if until is not None:
        calls = (c for c in calls if datetime.fromisoformat(c[0]["ended_at"]) <= until)
    return calls if with_truth else (call for call, _truth in calls)


def generate_calls_with_truth(**kwargs: Any) -> Iterator[tuple[dict[str, Any], dict[str, bool | None]]]:
    """``generate_calls()`` (same keyword arguments) with each call's staged truth:
    ``(call, {criterion: True | False | None})`` over ``TRUTH_CRITERIA`` (True passed, False failed,
    None not applicable)."""
    return generate_calls(**kwargs, with_truth=True)


def _generate(
    seed: int,
    days: int,
    calls_per_day: int,
    end: date,
    zone: ZoneInfo,
    ab_test: str | None,
    ab_first: date,
    specials: dict[str, date],
    pool: tuple[_Caller, ...],
    levers_first: date,
    tenants: tuple[str, ...] = (),
) -> Iterator[tuple[dict[str, Any], dict[str, bool | None]]]:
    tenant_cum = _tenant_shares(tenants)
    shared = frozenset(c.phone for c in pool[: max(1, round(len(pool) * SHARED_CALLERS))])
    for k in range(days - 1, -1, -1):
        day = end - timedelta(days=k)
        ctx = _Day(
            day=day,
            zone=zone,
            seed=seed,
            pool=pool,
            ab_test=ab_test if day >= ab_first else None,
            latency_spike=specials.get("latency_spike") == day,
            cost_spike=specials.get("cost_spike") == day,
            outage=specials.get("order_status_outage") == day,
            levers=day >= levers_first,
            tenants=tenants,
            tenant_cum=tenant_cum,
            shared=shared,
        )
        yield from _day_calls(ctx, calls_per_day)
