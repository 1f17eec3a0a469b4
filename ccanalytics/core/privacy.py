"""Phone numbers: normalisation for storage and masking for anything that leaves the admin.

One rule for every reader of a call (admin pages, the API, CSV exports, reports, notebooks): caller
numbers are always shown masked (in SQL, ``cca_mask_phone``, the twin of :func:`mask_phone`); the rest
of a call — transcript text, tool arguments and results, judge reasons, customer names — is shown as
recorded only to readers whose role :func:`sees_personal_data` (admins), and through
:func:`for_reader` (:func:`mask_personal`) to everyone else."""

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


def _mask_match(m: re.Match[str]) -> str:
    return mask_phone(m.group(0)) or ""


# keys of tool arguments and results that name a person or reach them (the Store API's customer_name,
# phone, e-mail …); an address of a shop or fitting station is not a person's and stays
PERSONAL_KEYS = frozenset(
    {
        "customer_name", "name_of_customer", "full_name", "first_name", "last_name", "surname", "patronymic",
        "contact_name", "recipient", "recipient_name", "email", "phone", "phone_number", "customer_phone",
    }
)  # fmt: skip


# keys of objects that describe a person: inside them a plain ``name`` is the person's too
PERSON_KEYS = frozenset({"customer", "client", "recipient", "contact", "buyer", "person", "caller"})


def mask_personal(value: Any, *, person: bool = False) -> Any:
    """A JSON value (tool arguments, a tool result) with every personal field masked, at any depth:
    names to their initial (``Мар'яна Коваль`` → ``М***``), phones as :func:`mask_phone`, anything else
    personal to ``***``; phone-like numbers in the remaining strings masked as well. Inside an object
    that describes a person (``customer``, ``recipient`` …) a plain ``name`` is personal too."""
    if isinstance(value, dict):
        personal = PERSONAL_KEYS | {"name"} if person else PERSONAL_KEYS
        return {
            k: _mask_field(v)
            if str(k).lower() in personal
            else mask_personal(v, person=str(k).lower() in PERSON_KEYS and isinstance(v, dict | list))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_personal(v, person=person) for v in value]
    if isinstance(value, str):
        return mask_phones_in_text(value)
    return value


def _mask_field(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        return value if not isinstance(value, (dict, list)) else mask_personal(value, person=True)
    if _PHONE_RE.match(_SEPARATORS.sub("", value.strip())):
        return mask_phone(value)
    return value.strip()[0] + "***"


# the roles that see a call's personal data as recorded (they act on orders and complaints)
ROLES_SEEING_PERSONAL_DATA = frozenset({"admin"})


def sees_personal_data(role: str | None) -> bool:
    """Whether a reader with ``role`` sees phones and names in a call as recorded (admins only)."""
    return role in ROLES_SEEING_PERSONAL_DATA


def for_reader(value: Any, role: str | None) -> Any:
    """``value`` (text, or JSON: a call, its turns, tool arguments and results) as a reader with ``role``
    may see it: as is for admins, through :func:`mask_personal` for everyone else (analysts, services,
    an unknown role)."""
    return value if sees_personal_data(role) else mask_personal(value)
