"""The component schemas of the OpenAPI document (webapp/openapi.py): the shapes of calls, summaries,
prompt versions, tests, review items and audit entries, from the library's dataclasses and column lists."""

from __future__ import annotations

import dataclasses
from typing import Any

from ccanalytics.analytics import metrics, storecolumns
from ccanalytics.auth import users as cauth
from ccanalytics.auth.auditlog import AuditEntry
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.experiments import processortests
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality.review import ReviewItem

from .apiparams import JSON_VALUE

_PY_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}


def _annotation_schema(annotation: object) -> dict[str, Any]:
    """The schema of a dataclass field's annotation (a string under postponed evaluation, else a type)."""
    text = str(annotation).replace(" ", "")
    nullable = "None" in text.split("|")
    base = text.split("|")[0]
    if base in _PY_TYPES:
        schema: dict[str, Any] = {"type": _PY_TYPES[base]}
    elif base == "uuid.UUID":
        schema = {"type": "string", "format": "uuid"}
    elif base == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif base.startswith("dict"):
        schema = {"type": "object"}
    elif base.startswith(("list", "tuple")):
        schema = {"type": "array"}
    else:
        schema = {}
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def _dataclass_schema(cls: type, *, drop: tuple[str, ...] = (), extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props = {f.name: _annotation_schema(f.type) for f in dataclasses.fields(cls) if f.name not in drop}
    props.update(extra or {})
    return {"type": "object", "properties": props}


_COLUMN_TYPES: dict[str, dict[str, Any]] = {
    "ts": {"type": ["string", "null"], "format": "date-time"},
    "bool": {"type": ["boolean", "null"]},
    "str": {"type": ["string", "null"]},
    "int": {"type": ["integer", "null"]},
    "float": {"type": ["number", "null"]},
    "json": {},
}


def _columns_schema(columns) -> dict[str, Any]:
    return {"type": "object", "properties": {c.name: dict(_COLUMN_TYPES[c.kind]) for c in columns}}


def schemas() -> dict[str, Any]:
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}
    call = _columns_schema(storecolumns.CALL_COLUMNS)
    call_detail = _columns_schema(storecolumns.CALL_COLUMNS + storecolumns.CALL_DETAIL_COLUMNS)
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": ["invalid_argument"]},
                        "message": {"type": "string"},
                        "message_ru": {"type": "string", "description": "The message in Russian, when there is one."},
                        "details": {"description": "Anything that helps: allowed values, bad records…"},
                    },
                }
            },
        },
        "Principal": {
            "type": "object",
            "properties": {
                "kind": {"enum": ["user", "token"]},
                "name": {"type": "string"},
                "role": {"enum": list(cauth.ROLES)},
                "actor": {"type": "string", "description": "The name written to the audit log."},
                "tenants": {
                    "type": ["array", "null"],
                    "items": {"type": "string"},
                    "description": "The tenants (slugs) it may read; null: every tenant.",
                },
            },
        },
        "Tenant": {
            "type": "object",
            "properties": {
                "slug": {"type": "string", "description": "What ?tenant= takes, e.g. prokoleso."},
                "name": {"type": "string", "description": "The network's name, e.g. ПроКолесо."},
            },
        },
        "Call": call,
        "CallPage": {
            "type": "object",
            "properties": {
                "calls": {"type": "array", "items": ref("Call")},
                "period": {"type": "object"},
                "page": {"type": "integer"},
                "page_size": {"type": "integer"},
                "has_more": {"type": "boolean"},
                "next_page": {"type": ["integer", "null"]},
            },
        },
        "Turn": _columns_schema(storecolumns.TURN_COLUMNS),
        "ToolCall": _columns_schema(storecolumns.TOOL_COLUMNS),
        "CallDetail": {
            "type": "object",
            "properties": {
                "call": call_detail,
                "turns": {"type": "array", "items": ref("Turn")},
                "tool_calls": {"type": "array", "items": ref("ToolCall")},
            },
        },
        "Summary": _dataclass_schema(metrics.Summary, extra={"period": {"type": "object"}}),  # a TypedDict
        "QualityReport": {
            "type": "object",
            "description": "Totals, averages per criterion and scenario, daily trend, queues and judges.",
            "properties": {
                k: {}
                for k in (
                    "period",
                    "total_calls",
                    "scored_calls",
                    "avg_quality_score",
                    "low_count",
                    "middle_count",
                    "high_count",
                    "auto_failed",
                    "criteria",
                    "scenarios",
                    "trend",
                    "review_queue",
                    "scoring_queue",
                    "judges",
                )
            },
        },
        "PromptVersion": _dataclass_schema(prompts.PromptVersion, extra={"tools_config": {}, "metadata": {}}),
        "ResolvedPrompt": {
            "type": "object",
            "properties": {
                k: {}
                for k in (
                    "name",
                    "label",
                    "version_id",
                    "system_prompt",
                    "tools_config",
                    "metadata",
                    "ab_test",
                    "ab_test_id",
                    "variant",
                    "source",
                )
            },
        },
        "Activation": _dataclass_schema(prompts.Activation),
        "ABTest": _dataclass_schema(experiments.ABTest, drop=("salt", "extra"), extra={"variants": {"type": "array"}}),
        "ABResults": {
            "type": "object",
            "properties": {
                k: {}
                for k in (
                    "test",
                    "days_running",
                    "calls_per_day",
                    "variants",
                    "srm",
                    "comparisons",
                    "criteria_comparisons",
                    "recommendations",
                )
            },
        },
        "ProcessorABTest": _dataclass_schema(
            processortests.ProcessorTest,
            extra={
                "source": {"const": "processor"},
                "per_call_results": {
                    "type": "null",
                    "description": "Always null: the processor does not record the variant on the call.",
                },
                "results_note": {"type": "string", "examples": [processortests.PROCESSOR_RESULTS_NOTE_EN]},
                "quality_a": {
                    "type": ["number", "null"],
                    "description": "The processor's own figure; null while it holds the column default 0.",
                },
                "quality_b": {
                    "type": ["number", "null"],
                    "description": "The processor's own figure; null while it holds the column default 0.",
                },
                "status": {
                    "enum": list(processortests.PROCESSOR_STATUSES),
                    "description": "As the processor means it.",
                },
                "status_raw": {"type": "string", "description": "As stored (the default is the quoted 'active')."},
            },
        ),
        "Suggestion": _dataclass_schema(optimizer.Suggestion),
        "ReviewQueue": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": _dataclass_schema(ReviewItem)},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "ReviewResult": {
            "type": "object",
            "properties": {
                "call_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string"},
                "assigned_to": {"type": "string"},
                "labels_stored": {"type": "integer"},
            },
        },
        "IngestResult": {
            "type": "object",
            "properties": {
                k: {"type": "integer"}
                for k in ("inserted", "replaced", "unchanged", "ignored", "rejected", "turns", "tool_calls")
            },
        },
        "CallLog": {
            "type": "object",
            "description": "One call as the call processor logs it; see docs/call-log.md for every field.",
            "required": ["call_id", "started_at", "ended_at", "turns"],
            "properties": {
                "call_id": {"type": "string", "format": "uuid"},
                "started_at": {"type": "string", "format": "date-time"},
                "ended_at": {"type": "string", "format": "date-time"},
                "caller_id": {"type": ["string", "null"]},
                "scenario": {"type": ["string", "null"]},
                "transferred_to_operator": {"type": "boolean"},
                "transfer_reason": {"type": ["string", "null"]},
                "prompt_version": {"type": ["string", "null"]},
                "turns": {"type": "array", "items": {"type": "object"}},
                "usage": {"type": "object"},
                "cost": {"type": "object"},
            },
        },
        "AuditEntry": _dataclass_schema(AuditEntry, extra={"details": {"type": "object"}}),
        "JsonValue": JSON_VALUE,
    }
