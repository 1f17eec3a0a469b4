"""The LLM model router: a simple call to the cheaper model, everything else to the default one.

The call processor imports it and routes on the caller's IVR choice (the scenario, when it knows one)
and the first customer utterance. Pure rules, standard library only (importing it loads no Polars,
SQLAlchemy or database code):

    from ccanalytics.cost.router import route
    route("Підкажіть статус замовлення 204518").model                  # 'claude-haiku-4-5'
    route("Статус замовлення 204518 — хочу його відмінити").reason     # 'cancellation'
    route("Який статус мого замовлення?", "order_status").model        # 'claude-haiku-4-5'
    route("Добрий день").reason                                         # 'no_content' (default model)

Decision, in order (``Decision.reason`` names the step that decided):

1. The scenario, when given: several parts (``a + b``) → default (``several_requests``); a complex
   scenario (tyre search, order creation, fitting booking, consultation) → default
   (``complex_scenario``). ``order_status`` and ``availability_check`` are simple: the utterance
   decides below, and may only confirm them.
2. Any risk signal anywhere in the utterance → default, with or without punctuation (``SIGNALS``):
   emotion (anger, «?!», shouting, a repeated call, waiting), complaint or claim, damage,
   cancellation, a change to an order, payment or money, placing an order, booking a fitting,
   asking for a person, consultation or selection, several requests; and more than
   ``LONG_UTTERANCE_WORDS`` words.
3. A content-free opener («так», «алло», «добрий день») → default (``no_content``), until there is
   content; with a simple scenario → cheap (``simple_scenario``).
4. Exactly one simple intent (``INTENTS``: order status, availability or price of a named tyre or
   size, hours or address) must cover the *whole* utterance: every word is a greeting or filler, a
   word of that intent, a number, a city, a tyre brand or the model name after it. One intent and
   one item (a second order number or tyre size is a second request) → cheap, reason = the intent.
   A second intent → ``several_requests``; a word no simple intent covers → ``not_covered`` (the
   words are in ``Decision.detail``); no intent → ``no_simple_intent``.

The text is normalised first (``normalise``): lowercase, ё → е, one apostrophe, punctuation dropped,
numbers said in words turned into digits («двісті чотири п'ятсот вісімнадцять» → ``204 518``,
«шістнадцятий радіус» → ``16 радіус``). The first utterance is a small signal: a call that starts
simple can turn complex, so measure the routed segment (``ccanalytics.cost.routing_replay``, which applies
this same ``route`` to every call) and confirm with an A/B test before switching. The labelled
openers in ``tests/data/router_openers.jsonl`` hold the goals (complex calls routed cheap ≤ 2 %,
simple calls routed cheap ≥ 60 %); their confusion matrix is in docs/benchmarks.md.

The rules' data live beside it: the normalisation in ``routing_text``, the risk signals in
``routing_signals``, the simple intents and their words in ``routing_intents``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost.routing_intents import (
    FILLER,
    INTENTS,
    SIZE,
    Intent,
    has_brand,
    other_items,
    several_items,
    uncovered,
)
from ccanalytics.cost.routing_signals import SIGNALS, Signal, shouting
from ccanalytics.cost.routing_text import normalise

# the router's names as they were before the rules moved to routing_text / routing_signals / routing_intents
__all__ = [
    "CHEAP_MODEL",
    "COMPLEX_SCENARIOS",
    "DEFAULT_MODEL",
    "INTENTS",
    "LONG_UTTERANCE_WORDS",
    "SIGNALS",
    "SIMPLE_SCENARIOS",
    "Decision",
    "Intent",
    "RouteDecision",
    "Signal",
    "normalise",
    "reasons",
    "route",
]

CHEAP_MODEL = "claude-haiku-4-5"
DEFAULT_MODEL = "claude-sonnet-4"
LONG_UTTERANCE_WORDS = 30
SIMPLE_SCENARIOS = {"order_status": "order_status", "availability_check": "availability"}  # → the intent
COMPLEX_SCENARIOS = frozenset({"tire_search", "order_creation", "fitting_booking", "consultation"})


@dataclass(frozen=True)
class Decision:
    """The model for a call and why: ``tier`` is "cheap" or "default"; ``reason`` the step that
    decided (a signal, an intent, or ``no_content`` / ``not_covered`` / …); ``intent`` the simple
    intent found, if any; ``detail`` the words behind the reason (the signal's match, or the words
    no simple intent covers)."""

    model: str
    tier: str
    reason: str
    intent: str | None = None
    detail: str = ""


RouteDecision = Decision  # the name before issue 17


# ------------------------------------------------------------------------------------ the router
def route(
    first_customer_utterance: str | None,
    scenario: str | None = None,
    *,
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> Decision:
    """The model for a call from the caller's IVR choice (``scenario``, if known) and first utterance.
    Deterministic; the cheaper model only when a simple intent covers the whole utterance and no risk
    signal is present (see the module's docstring)."""
    if first_customer_utterance is not None and not isinstance(first_customer_utterance, str):
        raise InvalidArgument(f"the utterance must be a string, got {type(first_customer_utterance).__name__}")
    if scenario is not None and not isinstance(scenario, str):
        raise InvalidArgument(f"the scenario must be a string, got {type(scenario).__name__}")
    v = _verdict(first_customer_utterance or "", scenario)
    if v.cheap:
        return Decision(cheap_model, "cheap", v.reason, v.intent, v.detail)
    return Decision(default_model, "default", v.reason, v.intent, v.detail)


@dataclass(frozen=True)
class _Verdict:
    """What ``route`` decides, before the models are named: the default model unless ``cheap``."""

    reason: str
    detail: str = ""
    intent: str | None = None
    cheap: bool = False


def _verdict(raw: str, scenario: str | None) -> _Verdict:
    """The steps of the module's docstring, in order: the scenario, the risk signals, content, intents."""
    parts = [p.strip().lower() for p in (scenario or "").split("+") if p.strip()]
    if len(parts) > 1:
        return _Verdict("several_requests", scenario or "")
    if parts and parts[0] in COMPLEX_SCENARIOS:
        return _Verdict("complex_scenario", parts[0])
    scenario_intent = SIMPLE_SCENARIOS.get(parts[0]) if parts else None  # an unknown scenario says nothing

    text = normalise(raw)
    tokens = text.split()
    risk = _risk(raw, text, tokens)
    if risk is not None:
        return risk
    if all(FILLER.fullmatch(t) for t in tokens):
        if scenario_intent:
            return _Verdict("simple_scenario", parts[0], scenario_intent, cheap=True)
        return _Verdict("empty" if not tokens else "no_content", text)
    return _by_intent(text, tokens, scenario_intent)


def _risk(raw: str, text: str, tokens: list[str]) -> _Verdict | None:
    """Shouting, any risk signal, or a long utterance: the default model."""
    shout = shouting(raw)
    if shout:
        return _Verdict("negative_emotion", shout)
    for signal in SIGNALS:
        m = signal.pattern.search(text)
        if m:
            return _Verdict(signal.reason, m.group(0))
    if len(tokens) > LONG_UTTERANCE_WORDS:
        return _Verdict("long_utterance", f"{len(tokens)} words")
    return None


def _by_intent(text: str, tokens: list[str], scenario_intent: str | None) -> _Verdict:
    """The cheaper model when exactly one simple intent and one item cover the whole utterance."""
    several = several_items(text)
    if several:
        return _Verdict("several_requests", several)
    found = [i for i in INTENTS if i.anchor.search(text)]
    if not found and scenario_intent:  # the IVR choice names the intent: «204518» after «order status»
        found = [i for i in INTENTS if i.name == scenario_intent]
    if not found:
        return _Verdict("no_simple_intent", text)
    # the intent that covers every word; two intents found and neither covers the other's words: two requests
    left = {i.name: uncovered(tokens, i) for i in found}
    covering = [i for i in found if not left[i.name]]
    if not covering:
        if len(found) > 1:
            return _Verdict("several_requests", " + ".join(i.name for i in found))
        return _Verdict("not_covered", " ".join(left[found[0].name]), found[0].name)
    intent = covering[0]
    other = other_items(text, intent)
    if other:
        return _Verdict("several_requests", other, intent.name)
    if intent.needs_item and intent.name != scenario_intent and not (SIZE.search(text) or has_brand(tokens)):
        return _Verdict("no_simple_intent", "no tyre size or brand named", intent.name)
    return _Verdict(intent.name, "", intent.name, cheap=True)


def reasons() -> dict[str, str]:
    """Every reason code ``route`` can give, with its meaning (for reports and docs)."""
    out = {
        "several_requests": "several requests (a multi-part scenario, a second intent or item, «і ще»)",
        "complex_scenario": "the IVR scenario is a complex one",
    }
    out.update({s.reason: s.description for s in SIGNALS if s.reason not in out})
    out.update(
        {
            "long_utterance": f"more than {LONG_UTTERANCE_WORDS} words",
            "empty": "no utterance (silence)",
            "no_content": "a content-free opener (greeting, «так», «алло») and no simple scenario",
            "simple_scenario": "a simple IVR scenario and a content-free opener",
            "no_simple_intent": "no simple intent found (or no tyre named for availability)",
            "not_covered": "words no simple intent covers",
        }
    )
    out.update({i.name: f"simple: {i.description}" for i in INTENTS})
    return out
