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
            "(SELECT max(created_at) + interval '1 millisecond' FROM prompt_versions WHERE name = :n))) RETURNING id"
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
