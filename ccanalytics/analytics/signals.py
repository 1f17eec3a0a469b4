"""Rule-based call signals: the patterns and thresholds shared by per-call metrics, the exporter,
alerts and the rule-based judge. Each pattern has a Python form and an SQL form that agree (a test
checks them against the same texts), so a signal means the same thing wherever it is computed.
"""

from __future__ import annotations

import re
from typing import Any

# Bot phrases that ask the customer to repeat: the STT did not catch what was said. Ukrainian first
# (the bot speaks Ukrainian), Russian for mixed calls. A POSIX ERE that PostgreSQL's ~* and Python's
# re (with IGNORECASE) read the same way. An apology is not a re-ask: "Перепрошую, у нас технічні
# неполадки…", "перепрошую за незручності" do not match; a bare "Перепрошую?" does.
REASK_REGEX = (
    "не розчул|не почул|не зрозумі|не розібрал|повторіть|повторите|не расслыш|не разобрал"
    "|не поняла|не понял|погано чути|плохо слышно|не чую вас|не слышу вас|ще раз, будь ласка"
    "|еще раз, пожалуйста|що ви сказали|что вы сказали|перепрошую\\?|перепрошу\\?|простите\\?"
)
_REASK = re.compile(REASK_REGEX, re.IGNORECASE)

# The bot's first utterance greets the caller.
GREETING_REGEX = "добр(ий|ого|ый|ое)|вітаю|вітаєм|привіт|здравствуй|доброго|добрый|слава україні"
_GREETING = re.compile(GREETING_REGEX, re.IGNORECASE)

LOW_CONFIDENCE = 0.6  # stt_confidence below this is a low-confidence customer turn
LONG_PAUSE_MS = 5_000  # silence between the end of one turn and the start of the next
MAX_PLAUSIBLE_GAP_MS = 120_000  # gaps above this are clock problems, not pauses
REJECTED_TOOLS_PER_CALL = 3  # more rejected tool calls than this in one call is an anomaly

# Tool results that say the arguments were refused (validation), as opposed to a tool outage.
REJECTED_REGEX = "validation|invalid|rejected|not allowed|forbidden"
_REJECTED = re.compile(REJECTED_REGEX, re.IGNORECASE)

# Tool arguments that look like a manipulated order (prompt injection): a free item or a bulk order.
SUSPICIOUS_MAX_QUANTITY = 50
SUSPICIOUS_ARGS_JSONPATH = (
    "$.** ? (@.price <= 0 || @.price_uah <= 0 || @.unit_price <= 0 || @.quantity > 50 || @.qty > 50 || @.count > 50)"
)
_PRICE_KEYS = ("price", "price_uah", "unit_price")
_QTY_KEYS = ("quantity", "qty", "count")


def is_reask(text: str) -> bool:
    """Whether a bot utterance asks the customer to repeat."""
    return bool(_REASK.search(text or ""))


def is_greeting(text: str) -> bool:
    """Whether an utterance greets the caller."""
    return bool(_GREETING.search(text or ""))


def is_rejected(success: bool, result: Any) -> bool:
    """Whether a tool call was refused for its arguments (validation), not merely failed."""
    if success:
        return False
    return bool(_REJECTED.search(str(result))) if result is not None else False


def suspicious_args(args: Any) -> bool:
    """Python twin of ``SUSPICIOUS_ARGS_JSONPATH``: a price ≤ 0 or a quantity above 50 anywhere."""
    if isinstance(args, dict):
        for key, value in args.items():
            # like the SQL/JSON path in lax mode, a comparison looks one array level deep
            numbers = [v for v in (value if isinstance(value, list) else [value]) if _is_number(v)]
            if key in _PRICE_KEYS and any(v <= 0 for v in numbers):
                return True
            if key in _QTY_KEYS and any(v > SUSPICIOUS_MAX_QUANTITY for v in numbers):
                return True
            if isinstance(value, dict | list) and suspicious_args(value):
                return True
    elif isinstance(args, list):
        return any(suspicious_args(item) for item in args)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sql_params() -> dict[str, Any]:
    """Bind parameters for the named queries that evaluate these signals in PostgreSQL."""
    return {
        "reask_regex": REASK_REGEX,
        "greeting_regex": GREETING_REGEX,
        "rejected_regex": REJECTED_REGEX,
        "low_confidence": LOW_CONFIDENCE,
        "long_pause_ms": LONG_PAUSE_MS,
        "max_gap_ms": MAX_PLAUSIBLE_GAP_MS,
        "suspicious_path": SUSPICIOUS_ARGS_JSONPATH,
    }
