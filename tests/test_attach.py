"""Attach mode: ``db migrate`` on a database the call processor built and filled itself (its tables as
sql/processor/schema.sql restates them, its monthly partitions, its rows written the way it writes them)
adds ccanalytics's own objects and indexes only: no column, constraint or partition on the processor's
tables, no rewrite, no long lock; ``db check``; and the read-only role mode."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import PROCESSOR_TABLE_KEYS, make_call
from sqlalchemy.engine import make_url
from test_auth import logged_in, make_app

from ccanalytics.analytics import journal, journalsearch, metrics
from ccanalytics.analytics.store import connect
from ccanalytics.auth import logins
from ccanalytics.auth import users as auth
from ccanalytics.cli.root import main
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import IngestValidationError, InvalidArgument, MigrationError, WriteRefused
from ccanalytics.datalake import export as datalake
from ccanalytics.db import attach, attachddl, partitions, schemacheck
from ccanalytics.db.engine import create_engine, resolve_url
from ccanalytics.db.migrate import migrate
from ccanalytics.db.migrations import discover, status
from ccanalytics.db.schemacheck import SHARED_TABLES
from ccanalytics.db.sqlfiles import processor_schema, sql_dir
from ccanalytics.ingest.load import ingest, ingest_file, ingest_records
from ccanalytics.ops import doctor
from ccanalytics.prompts import versions as prompts
from ccanalytics.prompts.resolver import PromptResolver
from ccanalytics.reports import daily as dailyreport

ROOT = Path(__file__).resolve().parent.parent

# the call processor's ids (uuid everywhere); two tenants, and one phone that called both
SHOP, WHEELS = "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002"
OLEG, SHOP_SHARED, WHEELS_SHARED = (f"c0000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
SHARED_PHONE = "+380501234567"
V1, V2 = "b0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002"
CALLS = 100  # the 100th is still in progress: the processor has not written its end yet

# What the call processor writes, in the order it writes it (../shared/callcenter-schema.md).
PROCESSOR_ROWS = f"""
INSERT INTO tenants (id, slug, name, network_id) VALUES
    ('{SHOP}', 'shop', 'Інтернет-магазин шин', 'shop-net'),
    ('{WHEELS}', 'wheels', 'Диски і шини', 'wheels-net');
-- customers are per tenant and phone: the same phone is a customer of each tenant it called
INSERT INTO customers (id, tenant_id, phone, name, created_at) VALUES
    ('{OLEG}', '{SHOP}', '+380671112233', 'Олег', '2026-08-01 10:00+00'),
    ('{SHOP_SHARED}', '{SHOP}', '{SHARED_PHONE}', NULL, '2026-08-02 10:00+00'),
    ('{WHEELS_SHARED}', '{WHEELS}', '{SHARED_PHONE}', 'Ірина', '2026-08-03 10:00+00');
INSERT INTO prompt_versions (id, name, system_prompt, tools_config, is_active, metadata, created_at) VALUES
    ('{V1}', 'tire_agent', 'Ти — консультант шинного магазину.', '{{}}', true, '{{}}', '2026-08-01 09:00+00'),
    ('{V2}', 'tire_agent', 'Ти — ввічливий консультант шинного магазину.', '{{}}', false, '{{}}', '2026-08-15 09:00+00');
INSERT INTO prompt_ab_tests (test_name, variant_a_id, variant_b_id, traffic_split, status, started_at)
    VALUES ('greeting', '{V1}', '{V2}', 0.5, 'active', '2026-09-01 00:00+00');
INSERT INTO llm_model_pricing (provider_key, model_name, display_name, input_price_per_1m, output_price_per_1m)
    VALUES ('anthropic-sonnet', 'claude-sonnet-4', 'Claude Sonnet 4', 3, 15);
INSERT INTO llm_pricing_catalog (model_key, provider_type, input_price_per_1m, output_price_per_1m)
    VALUES ('anthropic/claude-sonnet-4', 'anthropic', 3, 15);

-- at call start: the call (prompt_version is always 'default'; the A/B variant is not recorded)
INSERT INTO calls (id, caller_id, customer_id, started_at, prompt_version, tenant_id)
SELECT md5('call' || g)::uuid, p.phone, p.customer,
       timestamptz '2026-09-03 07:00+00' + g * interval '23 hours 17 minutes', 'default', p.tenant
FROM generate_series(1, {CALLS}) g
CROSS JOIN LATERAL (
    SELECT CASE WHEN g % 4 = 0 THEN '{WHEELS}' ELSE '{SHOP}' END::uuid AS tenant,
           CASE WHEN g % 4 = 0 OR g % 3 = 0 THEN '{SHARED_PHONE}' ELSE '+380671112233' END AS phone,
           CASE WHEN g % 4 = 0 THEN '{WHEELS_SHARED}' WHEN g % 3 = 0 THEN '{SHOP_SHARED}' ELSE '{OLEG}' END::uuid
               AS customer
) p;
-- during the call: turns, tool calls (turn_number counts the tool calls), its LLM requests
INSERT INTO call_turns (id, call_id, turn_number, speaker, content, stt_confidence, stt_latency_ms,
                        llm_latency_ms, tts_latency_ms, created_at, language)
SELECT md5(c.id::text || '/' || t)::uuid, c.id, t, CASE WHEN t % 2 = 0 THEN 'customer' ELSE 'bot' END,
       CASE t WHEN 1 THEN 'Добрий день! Магазин шин, чим допомогти?'
              WHEN 2 THEN 'Потрібні зимові шини на Шкоду Октавію'
              ELSE 'Зараз підберу варіанти.' END,
       CASE WHEN t % 2 = 0 THEN 0.9 END, CASE WHEN t % 2 = 0 THEN 240 END,
       CASE WHEN t % 2 = 1 THEN 700 END, CASE WHEN t % 2 = 1 THEN 180 END,
       c.started_at + t * interval '10 seconds', 'uk'
FROM calls c CROSS JOIN generate_series(1, 3) t;
INSERT INTO call_tool_calls (id, call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, success,
                             created_at)
SELECT md5('tool' || c.id::text)::uuid, c.id, 1, 'search_tires', '{{"season": "winter"}}', '{{"items": 3}}', 250,
       true, c.started_at + interval '31 seconds'
FROM calls c;
INSERT INTO llm_usage_log (task_type, provider_key, model_name, input_tokens, output_tokens, cached_input_tokens,
                           latency_ms, call_id, tenant_id, created_at)
SELECT 'agent', 'anthropic-sonnet', 'claude-sonnet-4', 3000, 250, 1000, 700, c.id, c.tenant_id,
       c.started_at + interval '25 seconds'
FROM calls c;
-- at call end: the outcome and the cost (with the usage inside)
UPDATE calls c SET ended_at = c.started_at + interval '95 seconds', duration_seconds = 95,
       scenario = CASE WHEN g % 4 = 0 THEN 'order_status' ELSE 'tire_search' END,
       transferred_to_operator = g % 5 = 0, transfer_reason = CASE WHEN g % 5 = 0 THEN 'customer_request' END,
       order_id = CASE WHEN g % 4 = 1 THEN md5('order' || g)::uuid END,
       cost_breakdown = '{{"stt_cost": 0.02, "llm_cost": 0.03, "tts_cost": 0.005, "total_cost": 0.055,
           "stt_provider": "google", "llm_model": "claude-sonnet-4", "llm_input_tokens": 9000,
           "llm_output_tokens": 700, "llm_cached_input_tokens": 3000, "llm_input_price_per_1m": 3,
           "llm_output_price_per_1m": 15, "stt_seconds": 80.0, "tts_characters": 500, "tts_cached_characters": 0}}',
       total_cost_usd = 0.055
FROM generate_series(1, {CALLS - 1}) g WHERE c.id = md5('call' || g)::uuid;
-- later, its quality task: the mean of 8 criteria and the criteria
UPDATE calls c SET quality_score = 0.8,
       quality_details = '{{"bot_greeted_properly": 1.0, "bot_understood_intent": 0.8, "bot_used_correct_tool": 1.0,
           "bot_provided_accurate_info": 0.9, "bot_confirmed_before_action": 0.6, "bot_was_concise": 0.7,
           "call_resolved_without_human": 0.6, "customer_seemed_satisfied": 0.8}}'
FROM generate_series(2, {CALLS - 1}, 2) g WHERE c.id = md5('call' || g)::uuid;
-- its own counters
UPDATE customers u SET total_calls = s.n, first_call_at = s.f, last_call_at = s.l
FROM (SELECT customer_id, count(*) AS n, min(started_at) AS f, max(started_at) AS l FROM calls GROUP BY 1) s
WHERE s.customer_id = u.id;
UPDATE prompt_ab_tests SET calls_a = 51, calls_b = 49, quality_a = 0.8, quality_b = 0.78;
-- the nightly task: daily_stats by UTC day
INSERT INTO daily_stats (stat_date, total_calls, resolved_by_bot, transferred, avg_duration_seconds,
                         avg_quality_score, total_cost_usd, scenario_breakdown, transfer_reasons, hourly_distribution)
SELECT (started_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE NOT transferred_to_operator),
       count(*) FILTER (WHERE transferred_to_operator), avg(duration_seconds), coalesce(avg(quality_score), 0),
       sum(total_cost_usd),
       jsonb_build_object('tire_search', count(*) FILTER (WHERE scenario = 'tire_search'),
                          'order_status', count(*) FILTER (WHERE scenario = 'order_status')),
       jsonb_build_object('customer_request', count(*) FILTER (WHERE transferred_to_operator)),
       jsonb_build_object(extract(hour FROM min(started_at) AT TIME ZONE 'UTC')::text, count(*))
FROM calls WHERE ended_at IS NOT NULL GROUP BY 1;
"""
ORDER_KEYS = PROCESSOR_TABLE_KEYS
PARTITIONED = ("calls", "call_turns", "call_tool_calls", "llm_usage_log")
MONTHS = ("09", "10", "11", "12")


def libpq(url: str) -> str:
    return "postgresql" + url[len("postgresql+psycopg") :]


def build_processor_database(url: str) -> None:
    """A database as the call processor builds and fills it: its tables from sql/processor/schema.sql,
    its partitions for September to December 2026 (made by the stand-in for its partition manager,
    which is then dropped: the real processor's database has no such function), and four months of its
    rows. No ccanalytics object at all."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(processor_schema())
        conn.execute("SELECT cc_processor_ensure_partitions('2026-09-01', 4)")
        conn.execute("DROP FUNCTION cc_processor_ensure_partitions(date, integer)")
        conn.execute(PROCESSOR_ROWS)
    partitions.forget_cache()


@pytest.fixture
def cp_url(empty_db_url):
    """A database as the call processor builds it, with four months of its data."""
    build_processor_database(empty_db_url)
    return empty_db_url


@pytest.fixture
def cp_engine(cp_url):
    engine = create_engine(cp_url, pool_size=2)
    yield engine
    engine.dispose()


def their_columns(engine) -> dict[str, list[tuple]]:
    """Every column of the processor's tables, with its type, nullability and default."""
    with engine.connect() as conn:
        return {
            t: [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
                        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = :t "
                        "ORDER BY ordinal_position"
                    ),
                    {"t": t},
                )
            ]
            for t in ORDER_KEYS
        }


def their_constraints(engine) -> list[tuple]:
    """Constraints and triggers on the processor's tables and their partitions."""
    with engine.connect() as conn:
        constraints = conn.execute(
            sa.text(
                "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
                "JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = 'public'::regnamespace "
                "AND (c.relname = ANY(:t) OR c.relname ~ '^(calls|call_turns|call_tool_calls|llm_usage_log)_\\d{4}_\\d{2}$') "
                "ORDER BY 1, 2"
            ),
            {"t": list(ORDER_KEYS)},
        ).all()
        triggers = conn.execute(
            sa.text(
                "SELECT c.relname, g.tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE c.relnamespace = 'public'::regnamespace AND NOT g.tgisinternal ORDER BY 1, 2"
            )
        ).all()
    return [tuple(r) for r in constraints] + [tuple(r) for r in triggers]


def fingerprint(engine) -> dict[str, tuple]:
    """Row count and checksum of every row of the processor's tables, all columns."""
    out = {}
    with engine.connect() as conn:
        for table, key in ORDER_KEYS.items():
            out[table] = tuple(
                conn.execute(
                    sa.text(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY {key})) FROM {table} t")
                ).one()
            )
    return out


def storage(engine) -> dict[str, int]:
    """relfilenode of every table of the processor's and every partition: a rewrite gives a table a new one."""
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "SELECT relname, relfilenode FROM pg_class WHERE relkind = 'r' "
                    "AND relnamespace = 'public'::regnamespace AND (relname = ANY(:t) OR relname ~ '_2026_\\d\\d$')"
                ),
                {"t": list(ORDER_KEYS)},
            ).all()
        )


def catalog(engine) -> list[tuple]:
    """Every relation and column of the public schema: 'nothing changed' checks."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
                "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1, 3"
            )
        ).all()


def one(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


# ------------------------------------------------------------------------------------------ attach
def test_attach_adds_ccanalyticss_objects_and_never_touches_the_processors(cp_engine):
    with cp_engine.begin() as conn:  # a DBA of the processor made an index on one partition, equal to one of ours
        conn.execute(sa.text("CREATE INDEX calls_2026_10_scn ON calls_2026_10 (scenario, started_at)"))
    columns, constraints = their_columns(cp_engine), their_constraints(cp_engine)
    before, files = fingerprint(cp_engine), storage(cp_engine)
    with cp_engine.connect() as conn:
        parts = partitions.list_partitions(conn)
    steps: list[str] = []

    applied = migrate(cp_engine, on_step=steps.append)

    assert [m.version for m in applied] == [m.version for m in discover()]
    assert fingerprint(cp_engine) == before  # every row of theirs, unchanged
    assert storage(cp_engine) == files  # no table was rewritten
    # not a column, constraint or trigger added to their tables: only indexes
    assert their_columns(cp_engine) == columns and their_constraints(cp_engine) == constraints
    assert steps[0] == "create ccanalytics tables and functions"
    assert all(s.startswith(("index ", "attach ", "attach complete")) for s in steps[1:]), steps
    assert not any(s.startswith("add columns") for s in steps)
    with cp_engine.connect() as conn:
        for ours in ("cca_call_ingest", "cca_turn_extras", "cca_ab_assignments", "call_scores", "cca_daily_stats"):
            assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": ours}).scalar() is not None, ours
        # their partitions are theirs: none added, none renamed; their per-partition index joined our parent index
        assert partitions.list_partitions(conn) == parts
        assert parts["calls"] == [f"calls_2026_{m}" for m in MONTHS]
        parent = conn.execute(
            sa.text(
                "SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = 'calls_2026_10_scn'::regclass"
            )
        ).scalar()
        assert parent == "cca_calls_scenario_idx"
        assert conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar() == 0
        # ccanalytics reads their calls through its view, as they are
        row = conn.execute(
            sa.text(
                "SELECT count(*) AS n, count(*) FILTER (WHERE ingested_at IS NULL) AS theirs, "
                "count(DISTINCT tenant) AS tenants, count(*) FILTER (WHERE quality_source = 'processor') AS scored "
                "FROM cca_calls"
            )
        ).one()
        assert tuple(row) == (CALLS, CALLS, 2, (CALLS - 1) // 2)
    st = status(cp_engine)
    assert st.up_to_date and not st.attach_pending
    report = attach.check(cp_engine)
    assert report.ok and report.findings == [], [f.line() for f in report.findings]

    # a second run is a no-op: no step, no migration, nothing rewritten
    steps.clear()
    assert migrate(cp_engine, on_step=steps.append) == [] and steps == []
    assert storage(cp_engine) == files and fingerprint(cp_engine) == before


def test_search_ingest_and_daily_stats_work_on_the_attached_database(cp_engine, tmp_path):
    migrate(cp_engine)
    customers = fingerprint(cp_engine)["customers"]
    page = journal.search(cp_engine, date_from="2026-09-01", date_to="2026-12-31", text="зимова", limit=200)
    assert len(page.rows) == CALLS and "Шкоду" in page.rows[0]["snippet"]
    with cp_engine.connect() as conn:
        assert journalsearch.turn_vector() == "cca_search_vector(t.content)"
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT call_id FROM call_turns t WHERE cca_search_vector(t.content) @@ cca_search_query('шини')"
                )
            ).scalars()
        )
    assert "Index Cond: (to_tsvector('cca_text'" in plan and "cca_call_turns_search_idx" in plan, plan

    # ingestion: a delivered call goes into the processor's partition of its month, for the tenant it names,
    # linked to that tenant's customer of its phone (the same phone is another customer at the other tenant)
    november = datetime(2026, 11, 20, 8, tzinfo=UTC)
    delivered = make_call(started_at=november, caller_id=SHARED_PHONE, tenant="wheels", customer_name="Хтось")
    assert ingest(cp_engine, delivered).inserted == 1
    with cp_engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT tableoid::regclass::text AS part, tenant_id, customer_id FROM calls WHERE id = :i"),
            {"i": delivered["call_id"]},
        ).one()
    assert (row.part, str(row.tenant_id), str(row.customer_id)) == ("calls_2026_11", WHEELS, WHEELS_SHARED)
    assert fingerprint(cp_engine)["customers"] == customers  # the processor's customer, unchanged
    # with two tenants a call log must name its tenant
    with pytest.raises(IngestValidationError, match="tenant: is required: the database has 2 tenants"):
        ingest(cp_engine, make_call(started_at=november))
    # a month no partition covers: the processor's partition manager makes partitions here, ccanalytics never does
    with cp_engine.connect() as conn:
        parts = partitions.list_partitions(conn)
    march = make_call(started_at=datetime(2027, 3, 5, 9, tzinfo=UTC), tenant="shop")
    with pytest.raises(
        IngestValidationError,
        match=r"started_at: no partition of the call processor's tables covers 2027-03: its partition manager",
    ):
        ingest_records(cp_engine, [march])
    # in a bulk load it is a reject of that call, and the others load
    source = tmp_path / "calls.jsonl"
    later = make_call(started_at=november + timedelta(hours=1), tenant="shop")
    source.write_text("\n".join(json.dumps(c) for c in (march, later)) + "\n", encoding="utf-8")
    loaded = ingest_file(cp_engine, source, workers=0)
    assert (loaded.inserted, loaded.rejected) == (1, 1) and "2027-03" in loaded.rejects[0].describe()
    with pytest.raises(InvalidArgument, match="2027-03: its partition manager creates them"), cp_engine.begin() as conn:
        partitions.ensure_months(conn, [date(2027, 3, 1)])
    with cp_engine.begin() as conn:
        assert partitions.list_partitions(conn) == parts
        assert partitions.ensure_ahead(conn, months_ahead=3, today=date(2027, 6, 1)) == 0
    assert one(cp_engine, "SELECT count(*) FROM calls") == CALLS + 2
    # only the tables a delivered call is written to must cover its month: the processor's partition
    # manager makes calls, call_turns and call_tool_calls ahead, not llm_usage_log
    with cp_engine.begin() as conn:
        for table in ("calls", "call_turns", "call_tool_calls"):
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table}_2027_01 PARTITION OF {table} "
                    "FOR VALUES FROM ('2027-01-01 00:00+00') TO ('2027-02-01 00:00+00')"
                )
            )
    january = make_call(started_at=datetime(2027, 1, 10, 9, tzinfo=UTC), tenant="shop")
    assert ingest(cp_engine, january).inserted == 1
    assert one(cp_engine, "SELECT count(*) FROM calls") == CALLS + 3
    # … and the doctor says whose job the missing months are, instead of advising a migration
    advice = doctor.check_partitions(cp_engine, 3, today=date(2027, 6, 1))
    assert advice.status == "fail" and "call processor's partition manager creates them" in advice.detail
    assert "db migrate" not in advice.detail
    found = journal.search(cp_engine, date_from="2026-11-20", date_to="2026-11-20", text="Нокіан")
    assert len(found.rows) == 2 and "Нокіан" in found.rows[0]["snippet"]  # the two delivered calls

    daily_stats = fingerprint(cp_engine)["daily_stats"]
    run = metrics.compute_daily_stats(cp_engine, date(2026, 11, 1), date(2026, 11, 30))
    assert run.days_computed
    summary = metrics.summary(cp_engine, "2026-11-01", "2026-11-30")
    stored = one(
        cp_engine, "SELECT sum(total_calls) FROM cca_daily_stats WHERE stat_date BETWEEN '2026-11-01' AND '2026-11-30'"
    )
    assert (
        summary.total_calls
        == stored
        == one(
            cp_engine,
            "SELECT count(*) FROM calls WHERE started_at >= '2026-10-31 22:00+00' AND started_at < '2026-11-30 22:00+00'",
        )
    )
    assert fingerprint(cp_engine)["daily_stats"] == daily_stats  # the processor's UTC days are only read


def test_the_call_processors_prompt_versions_work_after_attach(cp_engine):
    """Their rows have no version number or label and are never changed: they are numbered by creation
    (v1, v2), our next version of the prompt comes after theirs, and the processor's own A/B test (random
    per call, counters only) is listed, not served."""
    migrate(cp_engine)
    theirs = prompts.list_versions(cp_engine, "tire_agent")
    assert sorted((str(v.id), v.version, v.label) for v in theirs) == [
        (V1, 1, "tire_agent@v1"),
        (V2, 2, "tire_agent@v2"),
    ]
    assert str(prompts.active_version(cp_engine, "tire_agent").id) == V1  # the processor's flag
    assert prompts.get_version(cp_engine, V2).system_prompt.startswith("Ти — ввічливий")
    diff = prompts.diff_versions(cp_engine, V1, V2)
    assert "tire_agent@v1" in diff.unified and "+Ти — ввічливий" in diff.unified
    assert str(prompts.get_version(cp_engine, "tire_agent@v2").id) == V2  # by label too
    ours = prompts.create_version(cp_engine, "tire_agent", "Ти — уважний консультант.", author="analyst")
    assert (ours.version, ours.label) == (3, "tire_agent@v3")
    prompts.activate_version(cp_engine, ours.id, by="analyst")
    assert prompts.active_version(cp_engine, "tire_agent").label == "tire_agent@v3"
    with cp_engine.begin() as conn:  # the call processor adds another version of its own
        theirs_next = conn.execute(
            sa.text(
                "INSERT INTO prompt_versions (name, system_prompt) VALUES ('tire_agent', 'Ти — новий.') RETURNING id"
            )
        ).scalar_one()
    assert prompts.get_version(cp_engine, theirs_next).label == "tire_agent@v4"
    labels = sorted(v.label for v in prompts.list_versions(cp_engine, "tire_agent"))
    assert labels == ["tire_agent@v1", "tire_agent@v2", "tire_agent@v3", "tire_agent@v4"]
    prompts.activate_version(cp_engine, V2, by="analyst")  # back to one of theirs, by id
    resolved = PromptResolver(cp_engine, ttl_seconds=0).resolve("tire_agent", caller_id="+380671112233")
    assert resolved.label == "tire_agent@v2" and resolved.ab_test is None
    with cp_engine.connect() as conn:  # activations are ccanalytics's: the processor's flags are as they were
        flags = dict(conn.execute(sa.text("SELECT id::text, is_active FROM prompt_versions")).all())
    assert flags == {V1: True, V2: False, str(ours.id): False, str(theirs_next): False}
    admin = logged_in(make_app(cp_engine), cp_engine, "olena", "admin")  # the admin's prompt pages
    page = admin.get("/prompts").get_data(as_text=True)
    assert "tire_agent@v2" in page and "tire_agent@v4" in page
    assert admin.get("/prompts/tire_agent/v2").status_code == 200


@pytest.mark.parametrize("stop_after", [1, 6, 30])
def test_an_interrupted_attach_completes_on_the_next_run(cp_engine, stop_after):
    before, columns = fingerprint(cp_engine), their_columns(cp_engine)
    done: list[str] = []

    class Killed(Exception):
        pass

    def step(what: str) -> None:
        done.append(what)
        if len(done) == stop_after:
            raise Killed(what)

    with pytest.raises(Killed):
        migrate(cp_engine, on_step=step)
    assert not status(cp_engine).up_to_date
    # a concurrent index build that was killed leaves an INVALID index under the name attach gives it
    leftovers = {
        attachddl._child_name("calls_2026_12", "calls", "cca_calls_started_idx"): "(started_at, id)",
        attachddl._child_name("calls_2026_12", "calls", "cca_calls_tenant_idx"): "(tenant_id, started_at)",
    }
    with cp_engine.begin() as conn:
        for name, definition in leftovers.items():
            if conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
                conn.execute(sa.text(f"CREATE INDEX {name} ON calls_2026_12 {definition}"))
                conn.execute(sa.text(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{name}'::regclass"))
    report = attach.check(cp_engine)
    assert not report.ok
    first = next(iter(leftovers))
    assert any(f.kind == "invalid_partition_index" and f.target == first for f in report.findings)

    rerun: list[str] = []
    migrate(cp_engine, on_step=rerun.append)

    assert all(f"drop invalid index {name}" in rerun for name in leftovers), rerun
    assert "create ccanalytics tables and functions" not in rerun  # done before the kill, not again
    assert status(cp_engine).up_to_date
    assert fingerprint(cp_engine) == before and their_columns(cp_engine) == columns
    report = attach.check(cp_engine)
    assert report.ok and report.findings == [], [f.line() for f in report.findings]
    with cp_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar() == 0
        versions = conn.execute(sa.text("SELECT version FROM cca_schema_migrations ORDER BY 1")).scalars().all()
    assert versions == [m.version for m in discover()]


def test_an_incompatible_column_type_is_refused_and_nothing_changes(cp_engine):
    with cp_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE calls ALTER COLUMN duration_seconds TYPE text"))
    before = catalog(cp_engine)
    with pytest.raises(MigrationError, match=r"calls\.duration_seconds is text, expected integer") as err:
        migrate(cp_engine)
    assert "nothing was changed" in err.value.message
    assert catalog(cp_engine) == before
    res = CliRunner().invoke(
        main, ["db", "check"], env={"CCA_DATABASE_URL": str(cp_engine.url.render_as_string(False))}
    )
    assert res.exit_code == 1
    assert "incompatible: calls.duration_seconds is text, expected integer" in res.stdout.splitlines()
    res = CliRunner().invoke(main, ["db", "migrate"], env={"CCA_DATABASE_URL": cp_engine.url.render_as_string(False)})
    assert res.exit_code == 1 and res.stderr.startswith("Error: cannot attach to this database")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "ALTER TABLE call_turns DROP COLUMN language",
            "the call processor's column call_turns.language is missing (ccanalytics needs its schema at head 058; "
            "it never adds columns to the processor's tables)",
        ),
        (
            "ALTER TABLE calls DROP COLUMN tenant_id",
            "the call processor's column calls.tenant_id is missing",
        ),
        (
            "DROP TABLE llm_usage_log",
            "the call processor's table llm_usage_log is missing (ccanalytics needs its schema at head 058)",
        ),
    ],
)
def test_an_older_processor_schema_is_refused_and_no_column_is_added(cp_engine, change, message):
    """ccanalytics never adds a column or a table of the processor's: a processor schema older than the one
    ccanalytics knows (a column or table it reads is missing) is refused before any change."""
    with cp_engine.begin() as conn:
        conn.execute(sa.text(change))
    before, data = catalog(cp_engine), fingerprint_without(cp_engine, "llm_usage_log")
    with pytest.raises(MigrationError, match="cannot attach to this database, nothing was changed") as err:
        migrate(cp_engine)
    assert message in err.value.message
    assert {d["kind"] for d in err.value.details} == {"processor_missing"}
    assert catalog(cp_engine) == before and fingerprint_without(cp_engine, "llm_usage_log") == data
    res = CliRunner().invoke(
        main, ["db", "check", "--json"], env={"CCA_DATABASE_URL": cp_engine.url.render_as_string(False)}
    )
    assert res.exit_code == 1
    found = [f for f in json.loads(res.stdout)["findings"] if f["kind"] == "processor_missing"]
    assert len(found) == 1 and found[0]["severity"] == "incompatible" and message in found[0]["message"]


def fingerprint_without(engine, table: str) -> dict[str, tuple]:
    keys = {t: k for t, k in ORDER_KEYS.items() if t != table}
    out = {}
    with engine.connect() as conn:
        for t, key in keys.items():
            out[t] = tuple(
                conn.execute(sa.text(f"SELECT count(*), md5(string_agg(x::text, '|' ORDER BY {key})) FROM {t} x")).one()
            )
    return out


def test_duplicates_the_processor_allows_never_stop_an_attach(cp_engine):
    """ccanalytics adds no unique index, CHECK or foreign key to the processor's tables, so no data of
    the processor's can make an attach fail: two active versions of one prompt, one phone as a customer
    of two tenants, a call whose end is not written yet."""
    with cp_engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_versions SET is_active = true"))  # two active versions of one name
    unique_sql = sa.text(
        "SELECT x.indexrelid::regclass::text FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace AND (t.relname = ANY(:t) OR t.relispartition)"
    )
    with cp_engine.connect() as conn:
        theirs = set(conn.execute(unique_sql, {"t": list(SHARED_TABLES)}).scalars())
    migrate(cp_engine)
    assert status(cp_engine).up_to_date and attach.check(cp_engine).ok
    with cp_engine.connect() as conn:
        assert set(conn.execute(unique_sql, {"t": list(SHARED_TABLES)}).scalars()) == theirs


def test_a_migration_writing_to_a_shared_table_is_refused_before_any_change(cp_engine, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    (directory / "900_backfill.sql").write_text("UPDATE calls SET scenario = lower(scenario);\n")
    before = catalog(cp_engine)
    with pytest.raises(MigrationError, match=r"900_backfill.sql runs UPDATE calls SET … on the call processor's table"):
        migrate(cp_engine, directory=directory)
    assert catalog(cp_engine) == before


def test_a_table_of_ours_that_the_call_processor_already_has_is_refused(cp_engine):
    with cp_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id serial PRIMARY KEY, login text)"))
    with pytest.raises(MigrationError, match="table users exists but is not one of the call processor's"):
        migrate(cp_engine)


def test_db_check_reports_differences_and_exit_codes(cp_engine, engine):
    runner = CliRunner()
    cp_env = {"CCA_DATABASE_URL": cp_engine.url.render_as_string(False)}
    res = runner.invoke(main, ["db", "check"], env=cp_env)
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert "missing: table call_scores is missing" in lines
    assert "missing: table cca_call_ingest is missing" in lines
    assert "missing: migration 001_core_schema.sql is not applied" in lines
    assert any(line.startswith("missing: index cca_call_turns_search_idx on call_turns USING gin") for line in lines)
    assert not any("column" in line for line in lines), lines  # the processor's columns are all there
    res = runner.invoke(main, ["db", "check", "--json"], env=cp_env)
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and data["ok"] is False
    assert {
        "severity": "missing",
        "kind": "missing_index",
        "target": "cca_calls_tenant_idx",
        "table": "calls",
    }.items() <= next(f for f in data["findings"] if f["target"] == "cca_calls_tenant_idx").items()

    migrate(cp_engine)
    res = runner.invoke(main, ["db", "check"], env=cp_env)
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1].endswith("matches the expected schema (0 missing, 0 incompatible, 0 note)")

    # a database migrated from scratch matches exactly
    res = runner.invoke(main, ["db", "check", "--json"], env={"CCA_DATABASE_URL": engine.url.render_as_string(False)})
    assert res.exit_code == 0 and json.loads(res.stdout)["findings"] == []
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX cca_calls_scenario_idx"))
        conn.execute(sa.text("ALTER TABLE cca_ab_tests DROP COLUMN salt"))
        conn.execute(sa.text("ALTER TABLE calls DROP COLUMN quality_details CASCADE"))
    res = runner.invoke(main, ["db", "check"], env={"CCA_DATABASE_URL": engine.url.render_as_string(False)})
    assert res.exit_code == 1
    assert "missing: column cca_ab_tests.salt character varying(64) is missing" in res.stdout
    assert "missing: index cca_calls_scenario_idx on calls USING btree (scenario, started_at) is missing" in res.stdout
    assert "incompatible: the call processor's column calls.quality_details is missing" in res.stdout
    assert "missing: view cca_calls is missing" in res.stdout.splitlines()  # the drop cascaded to it
    # a view of ours replaced by hand (the tenants' rows left out) reads something else
    migration = (ROOT / "sql/migrations/016_cca_daily_stats_tenants.sql").read_text()
    whole_only = migration[migration.index("CREATE VIEW cca_daily_stats_by_tenant") : migration.index("UNION ALL")]
    with engine.begin() as conn:
        conn.execute(sa.text(whole_only.replace("CREATE VIEW", "CREATE OR REPLACE VIEW")))
    res = runner.invoke(main, ["db", "check"], env={"CCA_DATABASE_URL": engine.url.render_as_string(False)})
    assert (
        "incompatible: view cca_daily_stats_by_tenant reads something other than its migration defines "
        "(replaced by hand?): its figures cannot be trusted"
    ) in res.stdout.splitlines()


def test_a_busy_table_gives_a_clean_retryable_error_not_a_hang(cp_engine, cp_url):
    # a long transaction of the processor holds calls (it has inserted a call and not committed): our index
    # builds on calls must not queue behind it (and make every later INSERT of the processor queue too)
    holder = psycopg.connect(libpq(cp_url))
    holder.execute(
        "INSERT INTO calls (id, caller_id, started_at, prompt_version, tenant_id) VALUES (%s, NULL, "
        "timestamptz '2026-12-10 10:00+00', 'default', %s)",
        (uuid.uuid4(), SHOP),
    )
    try:
        started = time.monotonic()
        with pytest.raises(
            MigrationError, match=r"could not get its lock within 100 ms \(\d+ attempts in 2 s\).*re-run"
        ) as err:
            migrate(cp_engine, lock_timeout_ms=100, lock_wait_s=2)
        assert "on calls" in err.value.message
        assert time.monotonic() - started < 30
        # meanwhile nobody else was blocked: readers of calls go on
        with cp_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar() == CALLS
    finally:
        holder.rollback()
        holder.close()
    migrate(cp_engine, lock_timeout_ms=100)
    assert status(cp_engine).up_to_date and attach.check(cp_engine).ok


def test_attach_never_makes_the_processors_writes_wait_long(cp_engine, cp_url):
    """While a long transaction of the processor holds calls, attach's index build on calls waits for its
    lock at most lock_timeout (100 ms) at a time and steps aside between attempts, so the processor's
    INSERTs queued behind it are never held for long; attach completes once that transaction ends."""
    long_tx = psycopg.connect(libpq(cp_url))
    long_tx.execute(
        "INSERT INTO calls (id, caller_id, started_at, prompt_version, tenant_id) VALUES (%s, NULL, "
        "timestamptz '2026-12-10 09:00+00', 'default', %s)",
        (uuid.uuid4(), SHOP),
    )  # ROW EXCLUSIVE on calls until it ends
    release = threading.Timer(1.5, long_tx.commit)
    waits: list[float] = []
    done = threading.Event()

    def processor_writes() -> None:  # the call processor inserting calls as they start
        with psycopg.connect(libpq(cp_url), autocommit=True) as conn:
            while not done.is_set():
                started = time.monotonic()
                conn.execute(
                    "INSERT INTO calls (id, caller_id, started_at, prompt_version, tenant_id) VALUES (%s, NULL, "
                    "timestamptz '2026-12-10 10:00+00', 'default', %s)",
                    (uuid.uuid4(), SHOP),
                )
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    writer = threading.Thread(target=processor_writes)
    writer.start()
    release.start()
    try:
        started = time.monotonic()
        migrate(cp_engine)  # the defaults: 100 ms per attempt, jittered retries
        took = time.monotonic() - started
    finally:
        done.set()
        writer.join()
        release.join()
        long_tx.close()
    assert status(cp_engine).up_to_date and took >= 1.0  # it had to wait for the long transaction
    assert len(waits) > 20
    # an INSERT waits behind a queued index build for at most its lock_timeout (100 ms), plus scheduling
    assert max(waits) < 0.6, sorted(waits)[-5:]


def test_concurrent_migrate_runs_attach_once(cp_engine):
    errors: list[Exception] = []

    def run() -> None:
        try:
            migrate(cp_engine)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and status(cp_engine).up_to_date


def test_later_migrations_apply_normally_after_attach(cp_engine, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    migrate(cp_engine, directory=directory)
    (directory / "900_later.sql").write_text(
        "CREATE TABLE cca_later_notes (call_id uuid PRIMARY KEY, note text);\n"
        "INSERT INTO cca_later_notes SELECT id, 'seen' FROM calls;\n"
    )
    assert [m.version for m in migrate(cp_engine, directory=directory)] == [900]
    assert one(cp_engine, "SELECT count(*) FROM cca_later_notes") == CALLS


# --------------------------------------------------------------------------------------- read-only
@pytest.fixture
def reader_url(cp_engine):
    """The attached database with data, and a role with SELECT-only grants (docs/attach.md)."""
    migrate(cp_engine)
    ingest_records(cp_engine, [make_call(started_at=datetime(2026, 11, 20, 8, tzinfo=UTC), tenant="shop")])
    metrics.compute_daily_stats(cp_engine, date(2026, 11, 1), date(2026, 11, 30))
    role = f"cca_reader_{uuid.uuid4().hex[:8]}"
    with cp_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    yield make_url(cp_engine.url).set(username=role).render_as_string(False)
    with cp_engine.begin() as conn:
        conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
        conn.execute(sa.text(f'DROP ROLE "{role}"'))


def test_reading_works_with_select_only_grants(reader_url, tmp_path):
    settings = Settings(database_url=reader_url)
    store = connect(settings=settings)
    try:
        engine = store.engine
        assert one(engine, "SELECT has_table_privilege('calls', 'INSERT')") is False
        migrate(engine)  # a current schema is not written to: passes for a reader
        calls = store.calls("2026-11-01", "2026-11-30")
        november = one(
            engine,
            "SELECT count(*) FROM calls WHERE started_at >= '2026-10-31 22:00+00' AND started_at < '2026-11-30 22:00+00'",
        )
        assert calls.height == november == 32  # 31 of the processor's and the delivered one
        assert store.turns(call_ids=[calls["id"][0]]).height >= 3
        assert metrics.summary(engine, "2026-11-01", "2026-11-30").total_calls == november
        page = journal.search(engine, date_from="2026-11-01", date_to="2026-11-30", text="зимові шини")
        assert page.rows and journal.call_detail(engine, page.rows[0]["id"])["turns"]
        report = dailyreport.build(engine, "2026-11-20")
        assert report.summary.total_calls >= 1
        exported = datalake.export_day(engine, "2026-11-20", tmp_path / "lake")
        assert exported.rows()["calls"] >= 1
        with pytest.raises(MigrationError, match="needs CREATE on the database"):
            attach.check(engine)  # db check builds its scratch schema: not for a SELECT-only role
        # a write path says so in one line
        with pytest.raises(WriteRefused, match=r"^the database refused: permission denied for table"):
            metrics.compute_daily_stats(engine, date(2026, 11, 20), date(2026, 11, 20), incremental=False)
    finally:
        store.engine.dispose()

    runner = CliRunner()
    env = {"CCA_DATABASE_URL": reader_url}
    res = runner.invoke(main, ["stats", "summary", "--from", "2026-11-01", "--to", "2026-11-30"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["data"][-1]["total_calls"] >= 1
    res = runner.invoke(main, ["stats", "daily", "--date", "2026-11-20", "--full"], env=env)
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: the database refused: permission denied for table")
    assert len(res.stderr.strip().splitlines()) == 1


def test_api_tokens_work_and_logins_refuse_clearly_for_a_reader(reader_url, cp_engine):
    token = auth.create_token(cp_engine, "analyst", "notebook")
    auth.add_user(cp_engine, "olena", "a-long-password", "analyst")
    reader = create_engine(reader_url, pool_size=1)
    try:
        found = auth.check_token(reader, token)
        assert found is not None and found.name == "notebook"
        assert one(cp_engine, "SELECT last_used_at FROM api_tokens") is None  # not recorded, not an error
        with pytest.raises(WriteRefused, match="password logins need to record login attempts"):
            logins.login(reader, "olena", "a-long-password")
        # the optional grant of docs/attach.md: the reader records token use, and only that
        with cp_engine.begin() as conn:
            conn.execute(sa.text(f'GRANT UPDATE (last_used_at) ON api_tokens TO "{reader.url.username}"'))
        assert auth.check_token(reader, token) is not None
        assert one(cp_engine, "SELECT last_used_at FROM api_tokens") is not None
    finally:
        reader.dispose()


def test_a_reader_cannot_migrate_and_says_why(reader_url, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    (directory / "900_more.sql").write_text("CREATE TABLE more_things (id int);\n")
    reader = create_engine(reader_url, pool_size=1)
    try:
        with pytest.raises(MigrationError, match=r"may not change the schema .*schema owner's role"):
            migrate(reader, directory=directory)
    finally:
        reader.dispose()


def test_read_only_setting_makes_sessions_read_only(cp_engine):
    migrate(cp_engine)
    url = resolve_url(Settings(database_url=cp_engine.url.render_as_string(False), read_only=True))
    engine = create_engine(url, pool_size=1)
    try:
        assert one(engine, "SHOW default_transaction_read_only") == "on"
        assert one(engine, "SHOW timezone") == "UTC"  # the engine's own options still apply
        migrate(engine)  # current: nothing to write
        with pytest.raises(WriteRefused, match=r"read-only transaction.*CCA_READ_ONLY"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE customers SET name = name"))
        assert attach.check(engine).ok  # the scratch schema is rolled back, so db check runs too
    finally:
        engine.dispose()
    env = {"CCA_DATABASE_URL": cp_engine.url.render_as_string(False), "CCA_READ_ONLY": "true"}
    res = CliRunner().invoke(main, ["stats", "daily", "--date", "2026-11-20"], env=env)
    assert res.exit_code == 1 and "read-only transaction" in res.stderr
    res = CliRunner().invoke(main, ["stats", "summary", "--from", "2026-11-01", "--to", "2026-11-02"], env=env)
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------------------------ pieces
@pytest.mark.parametrize(
    ("expected", "found", "fit"),
    [
        ("integer", "integer", "same"),
        ("integer", "bigint", "same"),
        ("bigint", "integer", "compatible"),
        ("integer", "text", "incompatible"),
        ("character varying(100)", "character varying(50)", "compatible"),
        ("character varying(20)", "character varying(32)", "same"),
        ("character varying(20)", "text", "same"),
        ("text", "character varying(200)", "compatible"),
        ("double precision", "numeric(12,6)", "compatible"),
        ("double precision", "real", "compatible"),
        ("timestamp with time zone", "timestamp without time zone", "incompatible"),
        ("jsonb", "json", "incompatible"),
        ("uuid", "character varying(64)", "incompatible"),
        ("integer[]", "integer[]", "same"),
        ("integer[]", "bigint", "incompatible"),
    ],
)
def test_type_fit(expected, found, fit):
    assert schemacheck.type_fit(expected, found) == fit
