"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

The list of operations below is written by hand; a test checks it against the routes Flask
registered, so neither can change without the other. Parameters and request bodies come from the
views' own declarations (``@query``, ``@json_body``), roles from ``@role_required`` (or the default
policy), and the shapes of calls, summaries, prompt versions and tests from the library's
dataclasses and column lists — the document cannot drift from the code that answers.

    python -m webapp.openapi > docs/openapi.json
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

from flask import Flask

from . import auth
from .apiparams import LABEL, TEST_NAME_PATTERN
from .openapischemas import schemas

PREFIX = "/api/v1"

# (method, path, tag, response schema, success status, extra error statuses)
OPERATIONS: list[tuple[str, str, str, dict[str, Any], int, tuple[int, ...]]] = [
    ("get", "/me", "auth", {"$ref": "#/components/schemas/Principal"}, 200, ()),
    ("get", "/tenants", "auth", {"type": "array", "items": {"$ref": "#/components/schemas/Tenant"}}, 200, ()),
    ("get", "/openapi.json", "meta", {"type": "object", "description": "This document."}, 200, ()),
    ("get", "/analytics/calls", "analytics", {"$ref": "#/components/schemas/CallPage"}, 200, ()),
    ("get", "/analytics/calls/{call_id}", "analytics", {"$ref": "#/components/schemas/CallDetail"}, 200, (404,)),
    (
        "get",
        "/analytics/summary",
        "analytics",
        {"type": "array", "items": {"$ref": "#/components/schemas/Summary"}},
        200,
        (),
    ),
    ("get", "/analytics/quality", "analytics", {"$ref": "#/components/schemas/QualityReport"}, 200, ()),
    (
        "get",
        "/prompts",
        "prompts",
        {"type": "array", "items": {"$ref": "#/components/schemas/PromptVersion"}},
        200,
        (),
    ),
    ("post", "/prompts", "prompts", {"$ref": "#/components/schemas/PromptVersion"}, 201, ()),
    ("get", "/prompts/resolve", "prompts", {"$ref": "#/components/schemas/ResolvedPrompt"}, 200, (404,)),
    ("get", "/prompts/{version_id}", "prompts", {"$ref": "#/components/schemas/PromptVersion"}, 200, (404,)),
    (
        "patch",
        "/prompts/{version_id}/activate",
        "prompts",
        {"$ref": "#/components/schemas/Activation"},
        200,
        (404, 409),
    ),
    (
        "get",
        "/prompts/ab-tests",
        "ab-tests",
        {
            "type": "array",
            "description": "ABTest items (source=ccanalytics, the default) or ProcessorABTest items "
            "(source=processor).",
            "items": {
                "oneOf": [{"$ref": "#/components/schemas/ABTest"}, {"$ref": "#/components/schemas/ProcessorABTest"}]
            },
        },
        200,
        (),
    ),
    ("post", "/prompts/ab-tests", "ab-tests", {"$ref": "#/components/schemas/ABTest"}, 201, (404, 409)),
    ("post", "/prompts/ab-tests/{test_id}/start", "ab-tests", {"$ref": "#/components/schemas/ABTest"}, 200, (404, 409)),
    ("post", "/prompts/ab-tests/{test_id}/stop", "ab-tests", {"$ref": "#/components/schemas/ABTest"}, 200, (404, 409)),
    (
        "get",
        "/prompts/ab-tests/{test_id}/results",
        "ab-tests",
        {"$ref": "#/components/schemas/ABResults"},
        200,
        (404, 409),
    ),
    (
        "get",
        "/prompts/suggestions",
        "prompts",
        {"type": "array", "items": {"$ref": "#/components/schemas/Suggestion"}},
        200,
        (),
    ),
    (
        "post",
        "/prompts/suggestions/{suggestion_id}/decide",
        "prompts",
        {"$ref": "#/components/schemas/Suggestion"},
        200,
        (404, 409),
    ),
    ("get", "/review", "review", {"$ref": "#/components/schemas/ReviewQueue"}, 200, ()),
    ("post", "/review/{call_id}/take", "review", {"$ref": "#/components/schemas/ReviewResult"}, 200, (404,)),
    ("post", "/review/{call_id}/resolve", "review", {"$ref": "#/components/schemas/ReviewResult"}, 200, (404,)),
    ("post", "/calls", "ingest", {"$ref": "#/components/schemas/IngestResult"}, 200, (413, 422)),
    (
        "get",
        "/audit",
        "audit",
        {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
        200,
        (),
    ),
]

UUID = {"type": "string", "format": "uuid"}
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "call_id": {"description": "Call id (the Asterisk channel UUID).", "schema": UUID},
    "version_id": {
        "description": "Prompt version: its id (a uuid) or its label (tire_agent@v3). Anything else is a 400.",
        "schema": {"anyOf": [UUID, {"type": "string", "pattern": LABEL.pattern}]},
    },
    "test_id": {
        "description": "A/B test of ccanalytics's: its id (a uuid) or its name. A call processor's test is a 409.",
        "schema": {"anyOf": [UUID, {"type": "string", "minLength": 1, "maxLength": 100, "pattern": TEST_NAME_PATTERN}]},
    },
    "suggestion_id": {"description": "Suggestion id.", "schema": {"type": "integer", "minimum": 1}},
}

ERRORS = {
    400: ("BadRequest", "Invalid parameter, body or JSON; also a missing CSRF token on a cookie-session write."),
    401: ("Unauthorized", "No session and no (valid) Bearer token."),
    403: ("Forbidden", "The role does not allow this operation, or a tenant asked for is not one of the reader's."),
    404: ("NotFound", "No such object."),
    409: ("Conflict", "The object's state does not allow this (already active, not running, exists…)."),
    413: ("PayloadTooLarge", "The body is too large."),
    422: ("Unprocessable", "Invalid call logs: details name every bad record and field; nothing was written."),
}

DESCRIPTION = """JSON API of ccanalytics (AI voice call centre analytics).

Every answer is `{"data": …}`; every error `{"error": {"code", "message", "details"}}`.

Authentication: `Authorization: Bearer cca_…` (create tokens with `ccanalytics tokens create --role ROLE
--name NAME`), or the admin's session cookie — then state-changing requests need the header
`X-CSRF-Token` with the session's CSRF token.

Roles: **admin** may do everything; **analyst** may read (GET) only; **service** tokens may ingest
(POST /calls) and fetch prompts (GET /prompts, /prompts/{version_id}, /prompts/resolve,
/prompts/ab-tests) only. Each operation lists its roles in `x-roles`.

Tenants: calls belong to the call processor's tenants (retail networks). Users and tokens may be limited
to some of them (`ccanalytics tokens create … --tenant SLUG`; GET /me shows `tenants`, null for every
tenant). Operations over calls take `tenant` (a slug from GET /tenants, repeatable; default every tenant
the reader may see): a tenant outside the reader's is a 403, an unknown slug a 400, and a call of
another tenant is a 404 as if it did not exist. Prompts, A/B tests and suggestions are shared by every
tenant.

Ids of prompt versions and A/B tests are uuids (strings); a version may also be named by its label
(tire_agent@v3), a test by its name. GET /prompts/ab-tests?source=processor lists the call processor's
own A/B tests read-only, with their counters as stored and no per-call results (the processor does not
record the variant on the call).

Dates are local days of the business time zone (`CCA_TIMEZONE`), `YYYY-MM-DD`; timestamps are ISO 8601
with offset. Phone numbers are masked."""


# ------------------------------------------------------------------------------------------- build
def flask_operations(app: Flask) -> dict[tuple[str, str], str]:
    """(method, path relative to /api/v1 in OpenAPI form) → endpoint, for every API route."""
    out = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(PREFIX) :])
        if rule.methods is None:  # Flask gives every route its methods (GET by default)
            raise ValueError(f"route {rule.rule} has no methods")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(method.lower(), path)] = rule.endpoint
    return out


def _envelope(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _operation(app: Flask, method: str, path: str, endpoint: str | None, tag: str, schema, status, extra):
    view = app.view_functions.get(endpoint) if endpoint else None
    doc = inspect.getdoc(view) or ""
    summary, _, rest = doc.partition("\n")
    is_public = endpoint is not None and auth.is_public(endpoint, app)
    roles = [] if is_public else sorted(auth.allowed_roles(view, method.upper()))
    op: dict[str, Any] = {
        "operationId": endpoint.split(".")[-1] if endpoint else f"{method}_{path}",
        "tags": [tag],
        "summary": summary.strip() or path,
        "description": " ".join((rest.strip() + f" Roles: {', '.join(roles) or 'public'}.").split()),
        "x-roles": roles,
        "parameters": [],
        "responses": {
            str(status): {
                "description": "OK" if status == 200 else "Created",
                "content": {"application/json": {"schema": schema if endpoint == "api.openapi" else _envelope(schema)}},
            },
        },
    }
    for name in re.findall(r"{([^}]+)}", path):
        op["parameters"].append({"name": name, "in": "path", "required": True, **PATH_PARAMS[name]})
    for p in getattr(view, "_cca_params", ()):
        op["parameters"].append(
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.description,
                "schema": p.schema(),
                **({"explode": True} if p.repeated else {}),
            }
        )
    body = getattr(view, "_cca_body", None)
    if body is not None:
        fields, optional = body
        op["requestBody"] = {
            "required": not optional,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [n for n, f in fields.items() if f.required],
                        "properties": {n: f.schema() for n, f in fields.items()},
                    }
                }
            },
        }
    elif endpoint == "api.ingest_calls":
        log = {"$ref": "#/components/schemas/CallLog"}
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [log, {"type": "array", "items": log}]}}},
        }
    codes = [400] + ([] if is_public else [401, 403]) + list(extra)
    for code in sorted(set(codes)):
        op["responses"][str(code)] = {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
    if is_public:
        op["security"] = []
    return op


def build(app: Flask) -> dict[str, Any]:
    routes = flask_operations(app)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, tag, schema, status, extra in OPERATIONS:
        endpoint = routes.get((method, path))
        paths.setdefault(path, {})[method] = _operation(app, method, path, endpoint, tag, schema, status, extra)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ccanalytics API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}, {"cookieSession": []}],
        "tags": [
            {"name": t} for t in ("analytics", "prompts", "ab-tests", "review", "ingest", "audit", "auth", "meta")
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API token: cca_…"},
                "cookieSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "cca_session",
                    "description": "The admin's session after /login; writes also need the X-CSRF-Token header.",
                },
            },
            "responses": {
                name: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for name, text in ERRORS.values()
            },
            "schemas": schemas(),
        },
    }


def spec(app: Flask) -> dict[str, Any]:
    """The document (built once per app)."""
    ext = app.extensions.setdefault("cca", {})
    if "openapi" not in ext:
        ext["openapi"] = build(app)
    return ext["openapi"]


def render(app: Flask) -> str:
    return json.dumps(build(app), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    from . import create_app

    print(render(create_app({"TESTING": True, "SECRET_KEY": "openapi"})), end="")
