"""The domain vocabulary, defined once: the codes of the call processor's scenarios, transfer reasons,
agent tools and quality criteria. Everything else imports them from here: the Prometheus catalogue
(ccanalytics.ops.telemetry bounds its labels by them), the judge and its rubric (ccanalytics.quality),
the demo generator, and ccanalytics.core.labels, which holds their Russian labels (a test checks that every
code has one). Codes only: no Russian here, and no module of ccanalytics imported."""

from __future__ import annotations

# what a call was about (``calls.scenario``; a call may combine up to three, ``a + b``)
SCENARIOS = (
    "tire_search",
    "availability_check",
    "order_status",
    "order_creation",
    "fitting_booking",
    "consultation",
)
# why the bot handed a call to an operator (``calls.transfer_reason``)
TRANSFER_REASONS = ("customer_request", "cannot_help", "complex_question", "negative_emotion")
# the tools of the call processor's agent (``tool_calls.tool_name``)
TOOLS = (
    "get_vehicle_tire_sizes",
    "search_tires",
    "check_availability",
    "transfer_to_operator",
    "get_order_status",
    "create_order_draft",
    "update_order_delivery",
    "confirm_order",
    "get_pickup_points",
    "get_fitting_stations",
    "get_fitting_slots",
    "book_fitting",
    "cancel_fitting",
    "get_fitting_price",
    "get_customer_bookings",
    "search_knowledge_base",
)
# tools that change an order or a booking (the others look something up)
ACTION_TOOLS = ("create_order_draft", "update_order_delivery", "confirm_order", "book_fitting", "cancel_fitting")
# the judge's quality criteria, in the rubric's order
CRITERIA = (
    "bot_greeted_properly",
    "bot_understood_intent",
    "bot_used_correct_tool",
    "bot_provided_accurate_info",
    "bot_confirmed_before_action",
    "bot_was_concise",
    "call_resolved_without_human",
    "customer_seemed_satisfied",
)


def labelled(known: tuple[str, ...], labels: dict[str, str], what: str) -> dict[str, str]:
    """``labels`` (code → label) in the order of ``known``; ValueError at import when a code has no
    label or a label has no code, so a new code cannot reach a page without its label."""
    missing, extra = set(known) - set(labels), set(labels) - set(known)
    if missing or extra:
        raise ValueError(f"{what}: no label for {sorted(missing)}, label of no code {sorted(extra)}")
    return {code: labels[code] for code in known}
