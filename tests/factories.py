"""Factories for call logs in tests: a valid call by default; override any field. Also a usage block
with hand-checkable figures and a running A/B test to assign calls to."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

DEFAULT_START = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)  # 10:00 Kyiv

# a call's usage block (hand-computed costs in tests/test_cost.py)
USAGE = {
    "stt_provider": "google",
    "stt_seconds": 90.4,
    "llm_model": "claude-sonnet-4",
    "llm_calls": 4,
    "llm_input_tokens": 10_000,
    "llm_cached_input_tokens": 6_000,
    "llm_output_tokens": 1_600,
    "tts_provider": "google",
    "tts_chars": 600,
    "tts_cached_chars": 200,
    "telephony_seconds": 90.4,
}

_DIALOGUE = [
    ("bot", "Добрий день! Інтернет-магазин шин, мене звати Олена. Чим можу допомогти?", []),
    ("customer", "Добрий день, мені потрібні зимові шини на Шкоду Октавію дві тисячі сімнадцятого року.", []),
    (
        "bot",
        "Для Škoda Octavia 2017 підходить розмір 205/55 R16. Шукаю зимові варіанти.",
        [
            {
                "name": "get_vehicle_tire_sizes",
                "args": {"make": "Skoda", "model": "Octavia", "year": 2017},
                "result": {"sizes": ["205/55 R16", "225/45 R17"]},
                "duration_ms": 140,
                "success": True,
            },
            {
                "name": "search_tires",
                "args": {"size": "205/55 R16", "season": "winter"},
                "result": {"items": [{"sku": "NOK-HKPL10-2055516", "brand": "Nokian", "price_uah": 4150, "stock": 12}]},
                "duration_ms": 320,
                "success": True,
            },
        ],
    ),
    ("customer", "Так, Нокіан підходить, оформіть чотири штуки.", []),
    (
        "bot",
        "Оформила замовлення ORD-204518 на чотири шини Nokian Hakkapeliitta 10. Дякую!",
        [
            {
                "name": "create_order_draft",
                "args": {"items": [{"sku": "NOK-HKPL10-2055516", "quantity": 4, "price": 4150}]},
                "result": {"order_id": "ORD-204518", "total_uah": 16600},
                "duration_ms": 410,
                "success": True,
            },
        ],
    ),
]


def make_call(
    *,
    call_id: str | None = None,
    started_at: datetime = DEFAULT_START,
    seconds: int = 90,
    caller_id: str | None = "+380671234567",
    turns: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A valid call log dict (JSON-ready). ``turns`` replaces the default dialogue."""
    ended_at = started_at + timedelta(seconds=seconds)
    if turns is None:
        turns = []
        step = seconds / (len(_DIALOGUE) + 1)
        for i, (speaker, text, tools) in enumerate(_DIALOGUE):
            turn: dict[str, Any] = {
                "speaker": speaker,
                "text": text,
                "timestamp": (started_at + timedelta(seconds=step * (i + 1))).isoformat(),
                "duration_ms": 2500,
            }
            if speaker == "customer":
                turn.update(stt_confidence=0.93, stt_latency_ms=240)
            else:
                turn.update(llm_latency_ms=720, tts_latency_ms=190)
            if tools:
                turn["tool_calls"] = copy.deepcopy(tools)
            turns.append(turn)
    call: dict[str, Any] = {
        "call_id": call_id or str(uuid.uuid4()),
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "duration_seconds": seconds,
        "caller_id": caller_id,
        "scenario": "tire_search + order_creation",
        "transferred_to_operator": False,
        "order_created": "ORD-204518",
        "prompt_version": "tire_agent@v1",
        "turns": turns,
        "usage": {"stt_seconds": 45, "llm_input_tokens": 5000, "llm_output_tokens": 800, "tts_chars": 240},
        "cost": {"stt": 0.018, "llm": 0.027, "tts": 0.00384},
    }
    call.update(fields)
    return call


def turn(speaker: str, text: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"speaker": speaker, "text": text, "timestamp": at.isoformat(), **extra}


# every table of the call processor's (sql/processor/schema.sql) with its key: all their columns are its
# own; checksums compare their rows in key order
PROCESSOR_TABLE_KEYS = {
    "tenants": "id",
    "customers": "id",
    "calls": "id, started_at",
    "call_turns": "id, created_at",
    "call_tool_calls": "id, created_at",
    "llm_usage_log": "id, created_at",
    "prompt_versions": "id",
    "prompt_ab_tests": "id",
    "daily_stats": "stat_date",
    "llm_model_pricing": "id",
    "llm_pricing_catalog": "model_key",
}

TENANT = "shop"  # the tenant every test database has (tests/conftest.py)


def add_tenant(conn: sa.Connection, slug: str = TENANT, name: str = "Інтернет-магазин шин") -> uuid.UUID:
    """A tenant as the call processor creates one. Returns its id."""
    return conn.execute(
        sa.text("INSERT INTO tenants (slug, name, network_id) VALUES (:s, :n, :s) RETURNING id"),
        {"s": slug, "n": name},
    ).scalar_one()


def add_prompt_version(conn: sa.Connection, name: str, system_prompt: str, *, is_active: bool = False) -> uuid.UUID:
    """A row of the processor's prompt_versions (created after every other version of the name, so it
    is numbered next). Returns its id."""
    return conn.execute(
        sa.text(
            "INSERT INTO prompt_versions (id, name, system_prompt, tools_config, is_active, metadata, created_at) "
            "VALUES (gen_random_uuid(), :n, :p, '{}', :a, '{}', greatest(clock_timestamp(), "
            "(SELECT max(created_at) + interval '1 millisecond' FROM prompt_versions "
            "WHERE name = CAST(:n AS varchar)))) RETURNING id"
        ),
        {"n": name, "p": system_prompt, "a": is_active},
    ).scalar_one()


def running_ab_test(conn: sa.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Two versions of tire_agent and ccanalytics's running A/B test 'greeting' between them:
    (test id, A, B)."""
    a = add_prompt_version(conn, "tire_agent", "p1")
    b = add_prompt_version(conn, "tire_agent", "p2")
    test_id = conn.execute(
        sa.text(
            "INSERT INTO cca_ab_tests (test_name, prompt_name, variant_a_id, variant_b_id, status, started_at) "
            "VALUES ('greeting', 'tire_agent', :a, :b, 'running', now()) RETURNING id"
        ),
        {"a": a, "b": b},
    ).scalar_one()
    return test_id, a, b


def add_processor_ab_test(
    conn: sa.Connection,
    test_name: str,
    variant_a_id: uuid.UUID,
    variant_b_id: uuid.UUID,
    *,
    status: str | None = "active",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    **counters: Any,
) -> uuid.UUID:
    """A row of the call processor's prompt_ab_tests as its A/B manager writes one: the columns it sets
    and the table's defaults for the rest. ``status=None`` leaves status out, so the row gets the
    column's quoted default (the text 'active' with its quotes). ``counters``: traffic_split, calls_a,
    calls_b, quality_a, quality_b. Returns its id."""
    values: dict[str, Any] = {"test_name": test_name, "variant_a_id": variant_a_id, "variant_b_id": variant_b_id}
    unknown = set(counters) - {"traffic_split", "calls_a", "calls_b", "quality_a", "quality_b"}
    if unknown:
        raise TypeError(f"not a column of prompt_ab_tests: {', '.join(sorted(unknown))}")
    values.update(counters)
    if status is not None:
        values["status"] = status
    if started_at is not None:
        values["started_at"] = started_at
    if ended_at is not None:
        values["ended_at"] = ended_at
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    return conn.execute(
        sa.text(f"INSERT INTO prompt_ab_tests ({columns}) VALUES ({params}) RETURNING id"), values
    ).scalar_one()


def record_scores(conn: sa.Connection, where: str, score: str, details: dict[str, Any], **params: Any) -> int:
    """What ccanalytics's scorer stores, without running a judge: a current call_scores row (score SQL
    expression ``score`` over the call ``c``) for every call matching the SQL condition ``where``; the
    calls' earlier scores stop being current. Returns how many calls were scored."""
    ids = conn.execute(sa.text(f"SELECT c.id FROM calls c WHERE {where}"), params).scalars().all()
    conn.execute(
        sa.text("UPDATE call_scores SET is_current = false WHERE call_id = ANY(:ids) AND is_current"), {"ids": ids}
    )
    conn.execute(
        sa.text(
            "INSERT INTO call_scores (call_id, started_at, judge_kind, judge_model, rubric_version, overall_score, "
            f"criteria, details, created_at) SELECT c.id, c.started_at, 'rules', 'rules-test', 'test', {score}, "
            "CAST(:d AS jsonb) -> 'criteria', CAST(:d AS jsonb), clock_timestamp() FROM calls c WHERE c.id = ANY(:ids)"
        ),
        {"ids": ids, "d": json.dumps(details)},
    )
    return len(ids)


def write_as_processor(
    conn: sa.Connection,
    call: dict[str, Any],
    *,
    tenant: str = TENANT,
    cost_breakdown: dict[str, Any] | None = None,
    quality: tuple[float, dict[str, Any]] | None = None,
    ended: bool = True,
) -> uuid.UUID:
    """Write a call log dict (``make_call``) into the processor's tables the way the call processor
    writes a call itself, with no delivery through ccanalytics (no cca_call_ingest row): its customer
    of ``tenant`` if new, the call at its start (prompt_version 'default'), its turns, tool calls
    (turn_number counting them) and LLM requests during it, its end and ``cost_breakdown`` at the end
    (unless not ``ended``: still in progress), and its quality task's ``(score, criteria)`` after. Makes
    the months' partitions as the processor's partition manager would. Returns the call id."""
    from ccanalytics.db import partitions

    call_id = uuid.UUID(call["call_id"])
    started, ended_at = datetime.fromisoformat(call["started_at"]), datetime.fromisoformat(call["ended_at"])
    stamps = [datetime.fromisoformat(t["timestamp"]) for t in call["turns"]]
    partitions.ensure_months(conn, [started, ended_at, *stamps])
    tenant_id = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = :s"), {"s": tenant}).scalar_one()
    customer_id = None
    if call.get("caller_id"):
        conn.execute(
            sa.text(
                "INSERT INTO customers (id, tenant_id, phone, name, total_calls, first_call_at, last_call_at) "
                "VALUES (gen_random_uuid(), :t, :p, :n, 0, :at, :at) ON CONFLICT (tenant_id, phone) DO NOTHING"
            ),
            {"t": tenant_id, "p": call["caller_id"], "n": call.get("customer_name"), "at": started},
        )
        customer_id = conn.execute(
            sa.text("SELECT id FROM customers WHERE tenant_id = :t AND phone = :p"),
            {"t": tenant_id, "p": call["caller_id"]},
        ).scalar_one()
    conn.execute(
        sa.text(
            "INSERT INTO calls (id, caller_id, customer_id, started_at, prompt_version, tenant_id) "
            "VALUES (:id, :caller, :customer, :at, 'default', :tenant)"
        ),
        {"id": call_id, "caller": call.get("caller_id"), "customer": customer_id, "at": started, "tenant": tenant_id},
    )
    tool_number = 0
    for number, (t, at) in enumerate(zip(call["turns"], stamps, strict=True), start=1):
        conn.execute(
            sa.text(
                "INSERT INTO call_turns (id, call_id, turn_number, speaker, content, stt_confidence, stt_latency_ms, "
                "llm_latency_ms, tts_latency_ms, created_at, language) "
                "VALUES (gen_random_uuid(), :c, :n, :s, :x, :conf, :stt, :llm, :tts, :at, 'uk')"
            ),
            {
                "c": call_id,
                "n": number,
                "s": t["speaker"],
                "x": t["text"],
                "conf": t.get("stt_confidence"),
                "stt": t.get("stt_latency_ms"),
                "llm": t.get("llm_latency_ms"),
                "tts": t.get("tts_latency_ms"),
                "at": at,
            },
        )
        for tool in t.get("tool_calls", []):
            tool_number += 1
            conn.execute(
                sa.text(
                    "INSERT INTO call_tool_calls (id, call_id, turn_number, tool_name, tool_args, tool_result, "
                    "duration_ms, success, created_at) VALUES (gen_random_uuid(), :c, :n, :name, CAST(:a AS jsonb), "
                    "CAST(:r AS jsonb), :d, :ok, :at)"
                ),
                {
                    "c": call_id,
                    "n": tool_number,
                    "name": tool["name"],
                    "a": None if tool.get("args") is None else json.dumps(tool["args"]),
                    "r": None if tool.get("result") is None else json.dumps(tool["result"]),
                    "d": tool.get("duration_ms"),
                    "ok": tool.get("success"),
                    "at": at,
                },
            )
        if t["speaker"] == "bot":
            conn.execute(
                sa.text(
                    "INSERT INTO llm_usage_log (task_type, provider_key, model_name, input_tokens, output_tokens, "
                    "cached_input_tokens, latency_ms, call_id, tenant_id, created_at) "
                    "VALUES ('agent', 'anthropic-sonnet', 'claude-sonnet-4', 2500, 200, 1500, :ms, :c, :t, :at)"
                ),
                {"ms": t.get("llm_latency_ms"), "c": call_id, "t": tenant_id, "at": at},
            )
    if ended:
        end_as_processor(conn, call, cost_breakdown=cost_breakdown)
    if quality is not None:
        conn.execute(
            sa.text(
                "UPDATE calls SET quality_score = :q, quality_details = CAST(:d AS jsonb) "
                "WHERE id = :id AND started_at = :at"
            ),
            {"id": call_id, "at": started, "q": quality[0], "d": json.dumps(quality[1])},
        )
    return call_id


def end_as_processor(
    conn: sa.Connection, call: dict[str, Any], *, cost_breakdown: dict[str, Any] | None = None
) -> None:
    """The call processor's UPDATE at the end of a call written by ``write_as_processor(ended=False)``."""
    started, ended_at = datetime.fromisoformat(call["started_at"]), datetime.fromisoformat(call["ended_at"])
    conn.execute(
        sa.text(
            "UPDATE calls SET ended_at = :end, duration_seconds = :d, scenario = :s, transferred_to_operator = :tr, "
            "transfer_reason = :why, cost_breakdown = CAST(:cost AS jsonb), total_cost_usd = :total "
            "WHERE id = :id AND started_at = :at"
        ),
        {
            "id": uuid.UUID(call["call_id"]),
            "at": started,
            "end": ended_at,
            "d": round(call.get("duration_seconds") or (ended_at - started).total_seconds()),
            "s": call.get("scenario"),
            "tr": bool(call.get("transferred_to_operator")),
            "why": call.get("transfer_reason"),
            "cost": json.dumps(cost_breakdown) if cost_breakdown is not None else None,
            "total": (cost_breakdown or {}).get("total_cost"),
        },
    )
