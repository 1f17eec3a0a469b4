"""Rows of the call processor that break ccanalytics's expectations (a call still in progress, a
negative duration, an unknown or missing speaker, a turn without content, tool arguments that are not
objects, a tool call and a transfer flag left NULL, a cost without usage) are read as they are by every
job and page: never a crash, never "fixed" in their rows, and counted."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest
import sqlalchemy as sa
from test_attach import OLEG, SHOP, build_processor_database, libpq

from ccanalytics import quality
from ccanalytics.analytics import journal, metrics
from ccanalytics.cost import calls as cost
from ccanalytics.datalake import export as datalake
from ccanalytics.db import dataproblems
from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate
from ccanalytics.ops import doctor
from ccanalytics.quality import Rubric, RulesJudge

DAY = date(2026, 12, 5)
EVENING = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
ODD = {
    name: str(uuid.uuid5(uuid.NAMESPACE_URL, name)) for name in ("in_progress", "negative", "speaker", "args", "cost")
}
BAD_ROWS = f"""
INSERT INTO calls (id, caller_id, customer_id, started_at, ended_at, duration_seconds, scenario, prompt_version,
                   tenant_id)
VALUES ('{ODD["in_progress"]}', '+380671112233', '{OLEG}', '2026-12-05 09:00+00', NULL, NULL, NULL, 'default',
        '{SHOP}');
INSERT INTO calls (id, caller_id, started_at, ended_at, duration_seconds, scenario, prompt_version, tenant_id,
                   transferred_to_operator)
VALUES ('{ODD["negative"]}', NULL, '2026-12-05 09:10+00', '2026-12-05 09:09:55+00', -5, 'tire_search', 'default',
        '{SHOP}', NULL);
INSERT INTO calls (id, caller_id, started_at, ended_at, duration_seconds, scenario, prompt_version, tenant_id)
VALUES ('{ODD["speaker"]}', NULL, '2026-12-05 09:20+00', '2026-12-05 09:21+00', 60, 'order_status', 'default',
        '{SHOP}');
INSERT INTO calls (id, caller_id, started_at, ended_at, duration_seconds, scenario, prompt_version)
VALUES ('{ODD["args"]}', NULL, '2026-12-05 09:30+00', '2026-12-05 09:31+00', 60, 'tire_search', 'default');
INSERT INTO calls (id, caller_id, started_at, ended_at, duration_seconds, scenario, prompt_version, cost_breakdown,
                   total_cost_usd, tenant_id)
VALUES ('{ODD["cost"]}', NULL, '2026-12-05 09:40+00', '2026-12-05 09:41+00', 60, 'consultation', 'default',
        '{{"total_cost": 0.05}}', 0.05, '{SHOP}');
INSERT INTO call_turns (id, call_id, turn_number, speaker, content, created_at) VALUES
    (gen_random_uuid(), '{ODD["in_progress"]}', 1, 'bot', 'Добрий день! Магазин шин.', '2026-12-05 09:00:02+00'),
    (gen_random_uuid(), '{ODD["in_progress"]}', 2, 'customer', 'Де моє замовлення?', '2026-12-05 09:00:06+00'),
    (gen_random_uuid(), '{ODD["negative"]}', 1, 'bot', 'Добрий день!', '2026-12-05 09:10:02+00'),
    (gen_random_uuid(), '{ODD["speaker"]}', 1, 'bot', 'Добрий день!', '2026-12-05 09:20:02+00'),
    (gen_random_uuid(), '{ODD["speaker"]}', 2, 'operator', 'Оператор Ірина, слухаю вас.', '2026-12-05 09:20:30+00'),
    (gen_random_uuid(), '{ODD["speaker"]}', 3, NULL, NULL, '2026-12-05 09:20:40+00'),
    (gen_random_uuid(), '{ODD["args"]}', 1, 'bot', 'Добрий день!', '2026-12-05 09:30:02+00'),
    (gen_random_uuid(), '{ODD["args"]}', 2, 'customer', 'Шини 205/55 R16 є?', '2026-12-05 09:30:08+00'),
    (gen_random_uuid(), '{ODD["args"]}', 3, 'bot', 'Так, є.', '2026-12-05 09:30:15+00'),
    (gen_random_uuid(), '{ODD["cost"]}', 1, 'bot', 'Добрий день!', '2026-12-05 09:40:02+00');
INSERT INTO call_tool_calls (id, call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, success,
                             created_at) VALUES
    (gen_random_uuid(), '{ODD["args"]}', 1, 'search_tires', '"205/55 R16"', '[1, 2]', 300, true,
     '2026-12-05 09:30:10+00'),
    (gen_random_uuid(), '{ODD["args"]}', 2, 'check_stock', NULL, 'null', NULL, NULL, '2026-12-05 09:30:12+00');
"""


@pytest.fixture
def attached(empty_db_url):
    """The call processor's database (tests/test_attach.py) attached, then the odd rows written by the
    processor (one call without a tenant)."""
    build_processor_database(empty_db_url)
    engine = create_engine(empty_db_url, pool_size=2)
    migrate(engine)
    with psycopg.connect(libpq(empty_db_url), autocommit=True) as conn:
        conn.execute(BAD_ROWS)
    yield engine
    engine.dispose()


def their_rows(engine) -> list:
    """Every row of the processor's tables, all columns."""
    tables = ("calls", "call_turns", "call_tool_calls", "customers", "daily_stats", "llm_usage_log")
    with engine.connect() as conn:
        return [conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1, 2")).all() for t in tables]


def test_odd_rows_go_through_every_job_and_page_as_they_are(attached, tmp_path):
    before = their_rows(attached)
    priced = cost.compute_costs(attached, DAY, DAY)
    assert priced.unpriced == 0
    quality.enqueue(attached, date_from=DAY, date_to=DAY)
    run = quality.score_pending(attached, RulesJudge(), Rubric())
    assert run.failed == 0
    with attached.connect() as conn:
        scored = dict(
            conn.execute(
                sa.text("SELECT id::text, quality_scored FROM cca_calls WHERE id = ANY(CAST(:i AS uuid[]))"),
                {"i": list(ODD.values())},
            ).all()
        )
    assert scored == {i: name != "in_progress" for name, i in ODD.items()}  # in progress: scored once it ends
    daily = metrics.compute_daily_stats(attached, DAY, DAY)
    assert daily.days_computed == [DAY]
    quality.problems.detect(attached, DAY)
    datalake.export_day(attached, DAY, tmp_path / "lake")
    found = journal.search(attached, date_from=DAY, date_to=DAY)
    assert {r["id"] for r in found.rows} >= set(ODD.values())
    for call_id in ODD.values():
        detail = journal.call_detail(attached, call_id)
        assert detail["call"]["id"] == call_id
    args = journal.call_detail(attached, ODD["args"])
    assert [t["tool_name"] for turn in args["turns"] for t in turn["tools"]] == ["search_tires", "check_stock"]
    operator = journal.call_detail(attached, ODD["speaker"])
    assert [t["speaker"] for t in operator["turns"]] == ["bot", "operator", None]
    assert their_rows(attached) == before  # nothing was "fixed" in their rows
    with attached.connect() as conn:
        costs = conn.execute(
            sa.text("SELECT cost_priced, recorded_total_cost_usd, cost_breakdown FROM cca_calls WHERE id = :i"),
            {"i": ODD["cost"]},
        ).one()
    # a cost without usage: priced from the transcript (estimated), the processor's total kept beside it
    assert costs.cost_priced and costs.recorded_total_cost_usd == 0.05 and costs.cost_breakdown["estimated"] is True
    assert json.dumps(costs.cost_breakdown)  # a plain document, no raw keys of the processor's
    # … and counted, for the processor's team
    found = dataproblems.count(attached, DAY, DAY, now=EVENING)
    assert found.counts == {
        "unfinished": 1,  # started at 09:00, no end by 18:00
        "negative_duration": 1,
        "no_scenario": 0,  # the call without one has not ended
        "unknown_speaker": 2,  # 'operator', and one the processor left NULL
        "tool_args_not_object": 1,  # a string; absent arguments (NULL) are not counted
        "cost_without_usage": 1,  # the fixture's call of that day has its usage inside cost_breakdown
    }
    check = doctor.check_data(attached, tz="Europe/Kyiv", today=DAY, now=EVENING)
    assert check.status == "warn" and "2 turns whose speaker is neither customer nor bot" in check.detail
