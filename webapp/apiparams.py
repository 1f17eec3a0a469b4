"""Request declarations and answers of the JSON API (webapp/api.py and its resources): query parameters (``@query``)
and JSON bodies (``@json_body``) parsed and validated strictly — unknown or repeated parameters, bad
dates, ids and JSON are InvalidArgument (400) — and described for the OpenAPI document
(webapp/openapi.py); ``ok``/``clean`` make answers JSON-ready."""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import request

from ccanalytics.core.errors import InvalidArgument, PayloadTooLarge
from ccanalytics.prompts.versions import as_uuid

MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2100, 12, 31)
# what the OpenAPI document declares for the checks below: dates within MIN_DATE … MAX_DATE, text with
# something besides spaces and no NUL (the server strips surrounding spaces)
DATE_PATTERN = r"^(20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$"
TEXT_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
NO_NUL = r"^[^\x00]*$"
# a JSON object without NUL characters in its keys or strings, at any depth (components/schemas/JsonValue)
JSON_OBJECT = {
    "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}
JSON_VALUE = {
    "description": "Any JSON value without NUL characters (\\u0000) in its strings or keys.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"type": "object", **JSON_OBJECT},
    ],
}
# an A/B test by name: no control characters, something besides spaces
TEST_NAME_PATTERN = r"^[^\x00-\x1f]*[^\x00-\x1f\s][^\x00-\x1f]*$"
VERSION_REF_PATTERN = (
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[a-z][a-z0-9_\-]{0,99}@v[0-9]{1,9})$"
)
SLUG_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9_\-]*\s*$"
MAX_ID = 2**63 - 1
LABEL = re.compile(r"^[a-z][a-z0-9_\-]{0,99}@v[0-9]{1,9}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INT = re.compile(r"^[+-]?[0-9]{1,18}$")
_FLOAT = re.compile(r"^[+-]?([0-9]{1,10}(\.[0-9]{0,12})?|\.[0-9]{1,12})$")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


# ------------------------------------------------------------------------------ parameter declarations
@dataclass(frozen=True)
class Param:
    """One query parameter: how to parse and validate it, and how the OpenAPI document shows it."""

    name: str
    kind: str  # date | bool | int | float | text | enum | uuid
    description: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    repeated: bool = False
    max_length: int = 100
    required: bool = False
    pattern: str | None = None  # text: the form the view or library requires (declared in OpenAPI)

    def parse(self, values: list[str]) -> Any:
        if not values:
            if self.required:
                raise InvalidArgument(f"query parameter {self.name} is required")
            return [] if self.repeated else self.default
        if len(values) > 1 and not self.repeated:
            raise InvalidArgument(f"query parameter {self.name} is given more than once")
        if self.repeated and len(values) > 20:
            raise InvalidArgument(f"query parameter {self.name} is given more than 20 times")
        parsed = [self._one(v) for v in values]
        return parsed if self.repeated else parsed[0]

    def _one(self, raw: str) -> Any:
        if len(raw) > max(self.max_length, 40) or "\x00" in raw:
            raise InvalidArgument(f"{self.name}: too long or contains a NUL character")
        parser = {
            "date": self._date,
            "bool": self._bool,
            "int": self._number,
            "float": self._number,
            "enum": self._enum,
            "uuid": self._uuid,
        }.get(self.kind, self._text)
        return parser(raw.strip(), raw)

    def _date(self, value: str, raw: str) -> date:
        if not _DATE.match(value):
            raise InvalidArgument(f"{self.name} must be a date YYYY-MM-DD, not {raw[:40]!r}")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise InvalidArgument(f"{self.name} is not a calendar date: {raw[:40]!r}") from None
        if not MIN_DATE <= day <= MAX_DATE:
            raise InvalidArgument(f"{self.name} must be between {MIN_DATE} and {MAX_DATE}")
        return day

    def _bool(self, value: str, raw: str) -> bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise InvalidArgument(f"{self.name} must be true or false, not {raw[:40]!r}")

    def _number(self, value: str, raw: str) -> int | float:
        number: int | float
        if self.kind == "int":
            if not _INT.match(value):
                raise InvalidArgument(f"{self.name} must be an integer")
            number = int(value)
        else:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise InvalidArgument(f"{self.name} must be a finite number")
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise InvalidArgument(f"{self.name} must be between {self.minimum:g} and {self.maximum:g}")
        return number

    def _enum(self, value: str, raw: str) -> str:
        if value not in self.choices:
            raise InvalidArgument(f"{self.name} must be one of {', '.join(self.choices)}, not {raw[:40]!r}")
        return value

    def _uuid(self, value: str, raw: str) -> uuid.UUID:
        return parse_uuid(value, self.name)

    def _text(self, value: str, raw: str) -> str:
        if not value:
            raise InvalidArgument(f"{self.name} must not be empty")
        return value  # a declared pattern is checked by the view or library, with its own message

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        schemas: dict[str, dict[str, Any]] = {
            "date": {"type": "string", "format": "date", "pattern": DATE_PATTERN},
            "bool": {"type": "boolean"},
            "int": {"type": "integer"},
            "float": {"type": "number"},
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": self.max_length,
                "pattern": self.pattern or TEXT_PATTERN,
            },
            "enum": {"type": "string", "enum": list(self.choices)},
            "uuid": {"type": "string", "format": "uuid"},
        }
        base = schemas[self.kind]
        if self.minimum is not None:
            base["minimum"] = self.minimum
        if self.maximum is not None:
            base["maximum"] = self.maximum
        if self.default is not None:
            base["default"] = self.default
        return {"type": "array", "items": base} if self.repeated else base


# the tenant scope of a view (webapp/tenancy.py reads it): declared by every view over calls
TENANT = Param(
    "tenant",
    "text",
    "Only this tenant's calls: a slug from GET /tenants; repeat for several. Default: every tenant the reader may "
    "see. A tenant outside the reader's tenants is 403, an unknown slug 400.",
    repeated=True,
    max_length=100,
    pattern=SLUG_PATTERN,
)


@dataclass(frozen=True)
class BodyField:
    """One field of a JSON object body."""

    kind: str  # string | boolean | integer | number | object | array | id (integer id or label)
    description: str
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    items: dict[str, Any] = field(default_factory=dict)  # OpenAPI schema of array items
    pattern: str | None = None  # strings: the form the view or library requires (declared in OpenAPI)
    min_items: int | None = None  # arrays
    max_items: int | None = None
    properties: dict[str, Any] | None = None  # objects: the OpenAPI schema of the allowed keys and values

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            if self.nullable or not self.required:
                return None
            raise InvalidArgument(f"{name} must not be null")
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "object": isinstance(value, dict),
            "array": isinstance(value, list),
        }[self.kind]
        if not ok:
            raise InvalidArgument(f"{name} must be {'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind}")
        if self.kind in ("object", "array") and _has_nul(value):
            raise InvalidArgument(f"{name} contains a NUL character (\\u0000), which cannot be stored")
        if self.kind == "number" and not math.isfinite(value):
            raise InvalidArgument(f"{name} must be a finite number")
        if self.kind == "string":
            if self.max_length is not None and len(value) > self.max_length:
                raise InvalidArgument(f"{name} must have at most {self.max_length:,} characters")
            if "\x00" in value:
                raise InvalidArgument(f"{name} contains a NUL character")
            if self.choices and value not in self.choices:
                raise InvalidArgument(f"{name} must be one of {', '.join(self.choices)}")
        if self.kind == "array" and not (self.min_items or 0) <= len(value) <= (self.max_items or len(value)):
            raise InvalidArgument(f"{name} must list {self.min_items or 0} to {self.max_items} items")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "description": self.description}
        if self.kind == "array" and self.items:
            out["items"] = self.items
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.kind == "string":
            out["pattern"] = self.pattern or NO_NUL
        if self.min_items is not None:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        if self.properties is not None:
            out.update(self.properties)
        elif self.kind == "object":  # any JSON object without NUL characters (jsonb cannot store them)
            out.update(JSON_OBJECT)
        if self.choices:
            out["enum"] = list(self.choices)
        if self.nullable:
            out["type"] = [self.kind, "null"]
        return out


def query(*params: Param):
    """Declare the view's query parameters: unknown ones are refused; the view gets ``q``."""
    names = {p.name for p in params}

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**kwargs):
            unknown = sorted(set(request.args) - names)
            if unknown:
                shown = ", ".join(repr(n[:40]) for n in unknown[:5])
                raise InvalidArgument(f"unknown query parameter {shown}", details={"allowed": sorted(names)})
            q = {p.name: p.parse(request.args.getlist(p.name)) for p in params}
            return view(q=q, **kwargs)

        wrapper._cca_params = params  # type: ignore[attr-defined]
        return wrapper

    return decorate


def json_body(fields: dict[str, BodyField], *, optional: bool = False):
    """Declare the view's JSON object body: unknown, missing or mistyped fields are refused; the view
    gets ``b``. With ``optional`` an empty body means ``{}``."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**kwargs):
            body = read_json(allow_empty=optional)
            if body is None and optional and not request.get_data(cache=True).strip():
                body = {}  # no body at all; a JSON null is refused below
            if not isinstance(body, dict):
                raise InvalidArgument("the JSON body must be an object")
            unknown = sorted(set(body) - set(fields))
            if unknown:
                shown = ", ".join(repr(n[:40]) for n in unknown[:5])
                raise InvalidArgument(f"unknown field {shown}", details={"allowed": sorted(fields)})
            missing = [n for n, f in fields.items() if f.required and n not in body]
            if missing:
                raise InvalidArgument(f"missing field {', '.join(missing)}")
            b = {n: f.check(n, body.get(n)) for n, f in fields.items()}
            return view(b=b, **kwargs)

        wrapper._cca_body = (fields, optional)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def read_json(*, allow_empty: bool = False, limit: int = 1024 * 1024) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit:,} bytes")
    try:
        request.max_content_length = limit  # Flask ≥ 3.1: also bounds chunked bodies while reading
    except AttributeError:  # pragma: no cover - Flask 3.0
        pass
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            return None
        raise InvalidArgument("a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidArgument("the request body is not valid JSON") from None


def _has_nul(value: Any, depth: int = 0) -> bool:
    """Whether a JSON value holds a NUL character in any string or key (PostgreSQL cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in str(k) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def has_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds a NUL character anywhere (refuse it: jsonb cannot store it)."""
    return _has_nul(value)


def parse_uuid(value: str, name: str = "call_id") -> uuid.UUID:
    found = _as_uuid(value)
    if found is None:
        raise InvalidArgument(f"{name} must be a UUID, not {value[:40]!r}")
    return found


def parse_id(value: str, name: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 19 or not 1 <= int(value) <= MAX_ID:
        raise InvalidArgument(f"{name} must be a positive integer id, not {value[:40]!r}")
    return int(value)


def parse_version_ref(value: str) -> uuid.UUID | str:
    """A prompt version by id (a uuid) or label (``tire_agent@v3``)."""
    if LABEL.match(value):
        return value
    found = _as_uuid(value)
    if found is None:
        raise InvalidArgument(f"a prompt version is a uuid or a label like tire_agent@v3, not {value[:40]!r}")
    return found


def parse_test_ref(value: str) -> uuid.UUID | str:
    """An A/B test of ccanalytics's by id (a uuid) or name."""
    found = _as_uuid(value)
    if found is not None:
        return found
    if not value.strip() or len(value) > 100 or any(ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"an A/B test is a uuid or a test name (at most 100 characters), not {value[:40]!r}")
    return value


def _as_uuid(value: str) -> uuid.UUID | None:
    return as_uuid(value) if len(value) <= 64 else None


# ---------------------------------------------------------------------------------------- answers
def clean(value: Any) -> Any:
    """JSON-ready: ISO dates, no NaN/infinity (null), UUIDs and Decimals converted, dataclasses as dicts."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return clean(float(value))
    if is_dataclass(value) and not isinstance(value, type):
        return clean(value.to_dict() if hasattr(value, "to_dict") else asdict(value))
    return value


def ok(data: Any, status: int = 200):
    return {"data": clean(data)}, status
