"""Phone numbers: normalisation for storage and masking for anything that leaves the admin."""

from __future__ import annotations

import re

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
