"""The call as the judge sees it: compact and faithful.

Turns in order, each with its number (T1, T2…), speaker, text, and the tool calls made in it
interleaved right after (name, key arguments, ✓/✗ and a short result). Low STT confidence and
barge-ins are marked, because they explain many failures. Phone numbers and the customer's name are
masked before anything leaves the system.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ccanalytics.analytics.signals import LOW_CONFIDENCE
from ccanalytics.core.privacy import mask_phones_in_text

MAX_VALUE_CHARS = 40
MAX_RESULT_CHARS = 160
MAX_LIST_ITEMS = 3
NAME_MASK = "[ИМЯ]"


@dataclass(frozen=True)
class ToolUse:
    name: str
    args: Any
    result: Any
    success: bool
    duration_ms: int | None = None


@dataclass(frozen=True)
class TurnView:
    number: int
    speaker: str  # customer | bot
    text: str
    at: datetime | None = None
    stt_confidence: float | None = None
    interrupted: bool | None = None
    tools: tuple[ToolUse, ...] = ()


@dataclass(frozen=True)
class CallView:
    """Everything the judges need about one call."""

    call_id: str
    started_at: datetime
    scenario: str | None
    transferred: bool
    transfer_reason: str | None
    order_id: str | None
    fitting_booking_id: str | None
    customer_name: str | None
    turns: tuple[TurnView, ...]
    metrics: dict[str, Any] = field(default_factory=dict)  # the call_metrics row, if derived


def _short(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        head = ", ".join(_short(v, limit) for v in value[:MAX_LIST_ITEMS])
        text = f"[{head}{', …' if len(value) > MAX_LIST_ITEMS else ''}]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_short(v, limit)}" for k, v in list(value.items())[:6]) + "}"
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit * 3 else text[: limit * 3 - 1] + "…"


def render_args(args: Any) -> str:
    if isinstance(args, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in args.items())
    return "" if args is None else _short(args)


def render_result(result: Any, success: bool) -> str:
    if isinstance(result, dict):
        if "error" in result:
            return f"ошибка: {_short(result['error'])}"
        for key in ("items", "results", "slots", "stations", "points", "sizes"):
            if isinstance(result.get(key), list):
                items = result[key]
                rest = {k: v for k, v in result.items() if k != key}
                tail = f"; {_short(rest)}" if rest else ""
                return f"{len(items)} шт.: {_short(items[:MAX_LIST_ITEMS])}{tail}"
    text = _short(result) if result is not None else ("ok" if success else "ошибка")
    return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 1] + "…"


def mask(text: str, customer_name: str | None) -> str:
    """Mask phone numbers and the customer's name (each word of it, in any case)."""
    text = mask_phones_in_text(text)
    if customer_name:
        for word in sorted({w for w in re.split(r"\s+", customer_name.strip()) if len(w) >= 3}, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(word)}\w*", NAME_MASK, text, flags=re.IGNORECASE)
    return text


def render(call: CallView) -> str:
    """The judge's view of the call (masked)."""
    head = [
        f"Сценарий: {call.scenario or 'не указан'}",
        "Перевод на оператора: "
        + (f"да ({call.transfer_reason or 'причина не указана'})" if call.transferred else "нет"),
    ]
    outcome = [x for x in (call.order_id and "заказ создан", call.fitting_booking_id and "запись создана") if x]
    if outcome:
        head.append("Итог: " + ", ".join(outcome))
    lines = ["; ".join(head)]
    for t in call.turns:
        who = "Клиент" if t.speaker == "customer" else "Бот"
        marks = []
        if t.speaker == "customer" and t.stt_confidence is not None and t.stt_confidence < LOW_CONFIDENCE:
            marks.append(f"STT {t.stt_confidence:.2f}")
        if t.interrupted:
            marks.append("перебит")
        mark = f" [{', '.join(marks)}]" if marks else ""
        lines.append(f"T{t.number} {who}{mark}: {mask(t.text, call.customer_name)}")
        for tool in t.tools:
            sign = "✓" if tool.success else "✗"
            args = mask(render_args(tool.args), call.customer_name)
            result = mask(render_result(tool.result, tool.success), call.customer_name)
            lines.append(f"  → {tool.name}({args}) {sign} {result}")
    return "\n".join(lines)
