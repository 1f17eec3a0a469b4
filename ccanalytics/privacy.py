"""Phone numbers: normalisation for storage and masking for anything that leaves the admin."""

from __future__ import annotations

import re
from typing import Any

# Caller IDs Asterisk reports when the number is hidden
ANONYMOUS_CALLER_IDS = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})

_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE_RE = re.compile(r"^\+?[0-9]{5,19}$")  # ASCII digits only: \d also matches ٠١٢…
# phone-like runs inside free text: +380 67 123 45 67, 067-123-45-67, 0671234567 …
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])(?:\+?[0-9][\s\-()]*){9,14}[0-9](?!\w)")


_ASCII_DIGITS = frozenset("0123456789")


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str | None) -> str | None:
    """E.164 for Ukrainian numbers (``0671234567`` → ``+380671234567``), ``+digits`` otherwise.

    Returns None for a hidden caller ID; raises InvalidPhone for anything that is not a number.
    """
    if raw is None:
        return None
    value = _SEPARATORS.sub("", raw.strip())
    if value.lower() in ANONYMOUS_CALLER_IDS:
        return None
    if not _PHONE_RE.match(value):
        raise InvalidPhone(f"not a phone number: {raw!r}")
    digits = value.lstrip("+")
    if value.startswith("+"):
        return "+" + digits
    if len(digits) == 10 and digits.startswith("0"):
        return "+38" + digits
    if len(digits) == 12 and digits.startswith("380"):
        return "+" + digits
    if len(digits) == 9:  # national number without the trunk zero
        return "+380" + digits
    return "+" + digits if len(digits) >= 11 else digits


def mask_phone(phone: str | None) -> str | None:
    """Keep the country/operator prefix and the last two digits: ``+380671234567`` → ``+38067*****67``."""
    if phone is None:
        return None
    digits = [i for i, ch in enumerate(phone) if ch in _ASCII_DIGITS]
    if len(digits) <= 4:
        return "*" * len(phone)
    keep_head = 5 if phone.startswith("+") and len(digits) >= 11 else 2
    hidden = set(digits[keep_head:-2])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(phone))


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def mask_phones_in_text(text: str) -> str:
    """Mask every phone-like number inside free text (transcripts, tool arguments, messages); call
    ids (UUIDs, whose digit groups can look like a phone number) are left intact."""
    out, pos = [], 0
    for m in _UUID.finditer(text):
        out += [_PHONE_IN_TEXT.sub(_mask_match, text[pos : m.start()]), m.group(0)]
        pos = m.end()
    return "".join([*out, _PHONE_IN_TEXT.sub(_mask_match, text[pos:])])


def _mask_match(m: re.Match) -> str:
    return mask_phone(m.group(0)) or ""


# keys of tool arguments and results that name a person or reach them (the Store API's customer_name,
# phone, e-mail …); an address of a shop or fitting station is not a person's and stays
PERSONAL_KEYS = frozenset(
    {
        "customer_name", "name_of_customer", "full_name", "first_name", "last_name", "surname", "patronymic",
        "contact_name", "recipient", "recipient_name", "email", "phone", "phone_number", "customer_phone",
    }
)  # fmt: skip


def mask_personal(value: Any) -> Any:
    """A JSON value (tool arguments, a tool result) with every personal field masked, at any depth:
    names to their initial (``Мар'яна Коваль`` → ``М***``), phones as :func:`mask_phone`, anything else
    personal to ``***``; phone-like numbers in the remaining strings masked as well."""
    if isinstance(value, dict):
        return {k: _mask_field(v) if str(k).lower() in PERSONAL_KEYS else mask_personal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal(v) for v in value]
    if isinstance(value, str):
        return mask_phones_in_text(value)
    return value


def _mask_field(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        return value if not isinstance(value, (dict, list)) else mask_personal(value)
    if _PHONE_RE.match(_SEPARATORS.sub("", value.strip())):
        return mask_phone(value)
    return value.strip()[0] + "***"
