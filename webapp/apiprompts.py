"""The JSON API's prompts: versions (list, resolve for a call, one, create, activate) and the optimizer's
suggestions; shared by every tenant."""

from __future__ import annotations

import re
from typing import Any

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.prompts.resolver import as_dict

from .apibase import ALL_ROLES, actor, bp, prompt_resolver, prompts_changed
from .apiparams import TEXT_PATTERN, BodyField, Param, json_body, ok, parse_id, parse_version_ref, query
from .auth import role_required
from .db import get_engine

PROMPT_NAME = Param("name", "text", "Prompt name, e.g. tire_agent.", max_length=100, pattern=prompts.NAME_PATTERN)


def _version_dict(v: prompts.PromptVersion) -> dict[str, Any]:
    return v.to_dict()


@bp.get("/prompts")
@role_required(*ALL_ROLES)
@query(PROMPT_NAME, Param("active", "bool", "Only the active version(s) (true) or only inactive ones (false)."))
def list_prompts(q):
    """Prompt versions, newest first per name, with their texts."""
    if q["name"] is not None and not re.match(prompts.NAME_PATTERN, q["name"]):
        raise InvalidArgument("name must be lowercase letters, digits, '_' or '-', starting with a letter")
    found = prompts.list_versions(get_engine(), q["name"])
    if q["active"] is not None:
        found = [v for v in found if v.is_active == q["active"]]
    return ok([_version_dict(v) for v in found])


@bp.get("/prompts/resolve")
@role_required(*ALL_ROLES)
@query(
    Param("name", "text", "Prompt name, e.g. tire_agent.", required=True, pattern=prompts.NAME_PATTERN),
    Param("caller_id", "text", "The caller's number: picks the caller's sticky A/B variant.", max_length=32),
    Param("call_id", "uuid", "The call id: the A/B key when the number is hidden."),
)
def resolve_prompt(q):
    """The prompt for a call: the active version, or the caller's variant while an A/B test runs."""
    if not re.match(prompts.NAME_PATTERN, q["name"]):
        raise InvalidArgument("name must be lowercase letters, digits, '_' or '-', starting with a letter")
    found = prompt_resolver().resolve(
        q["name"], caller_id=q["caller_id"], call_id=str(q["call_id"]) if q["call_id"] else None
    )
    return ok(as_dict(found))


@bp.get("/prompts/<version_id>")
@role_required(*ALL_ROLES)
@query()
def get_prompt(q, version_id: str):
    """One prompt version by id or label."""
    return ok(_version_dict(prompts.get_version(get_engine(), parse_version_ref(version_id))))


@bp.post("/prompts")
@query()
@json_body(
    {
        "name": BodyField(
            "string",
            "Prompt name (lowercase, digits, '_' or '-').",
            required=True,
            max_length=100,
            pattern=prompts.NAME_PATTERN,
        ),
        "system_prompt": BodyField(
            "string", "The system prompt.", required=True, max_length=prompts.MAX_PROMPT_CHARS, pattern=TEXT_PATTERN
        ),
        "tools_config": BodyField("object", "Tools configuration (JSON object).", nullable=True),
        "metadata": BodyField("object", "Free-form metadata.", nullable=True),
        "note": BodyField("string", "What changed and why.", nullable=True, max_length=2000),
        "activate": BodyField("boolean", "Make it the active version at once (default false)."),
    }
)
def create_prompt(q, b):
    """Create a new version of a prompt (number = previous + 1); not active unless ``activate``."""
    v = prompts.create_version(
        get_engine(),
        b["name"],
        b["system_prompt"],
        tools_config=b["tools_config"],
        metadata=b["metadata"],
        author=actor(),
        note=b["note"],
        activate=bool(b["activate"]),
    )  # audited by the library
    if v.is_active:
        prompts_changed()
    return ok(_version_dict(v), 201)


@bp.patch("/prompts/<version_id>/activate")
@query()
@json_body({"reason": BodyField("string", "Why (kept in the activation history).", max_length=2000)}, optional=True)
def activate_prompt(q, version_id: str, b):
    """Make a version the active one of its prompt (atomically; recorded with who and why)."""
    ref = parse_version_ref(version_id)
    activation = prompts.activate_version(get_engine(), ref, by=actor(), reason=b["reason"])  # audited
    prompts_changed()
    return ok(activation.to_dict())


# ------------------------------------------------------------------------------- optimizer suggestions
@bp.get("/prompts/suggestions")
@query(Param("status", "enum", "Only suggestions in this status.", choices=("proposed", "approved", "rejected")))
def list_suggestions(q):
    """Prompt changes proposed by the optimizer from failure patterns."""
    return ok([s.to_dict() for s in optimizer.list_suggestions(get_engine(), q["status"])])


@bp.post("/prompts/suggestions/<suggestion_id>/decide")
@query()
@json_body(
    {
        "approve": BodyField("boolean", "Approve (a new inactive version) or reject.", required=True),
        "prompt_text": BodyField(
            "string", "The edited prompt text to approve instead of the proposal.", max_length=prompts.MAX_PROMPT_CHARS
        ),
    }
)
def decide_suggestion(q, suggestion_id: str, b):
    """Approve a suggestion into a new (inactive) prompt version, or reject it."""
    sid = parse_id(suggestion_id, "suggestion id")
    decided = optimizer.decide(get_engine(), sid, by=actor(), approve=b["approve"], prompt_text=b["prompt_text"])
    return ok(decided.to_dict())  # audited by the library
