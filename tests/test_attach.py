"""Attach mode: ``db migrate`` on a database the call processor built itself (its partitioned tables,
its partition and index names, its data) adds only what is missing, without rewriting or long locks;
``db check``; and the read-only role mode."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import make_call
from sqlalchemy.engine import make_url
from test_auth import logged_in, make_app

import ccanalytics.cli_db  # noqa: F401 (registers `db check` until ccanalytics.cli imports it)
from ccanalytics import (
    attach,
    auth,
    dailyreport,
    datalake,
    doctor,
    journal,
    metrics,
    partitions,
    prompts,
    schemacheck,
)
from ccanalytics.cli import main
from ccanalytics.config import Settings
from ccanalytics.database import create_engine, resolve_url
from ccanalytics.errors import MigrationError, WriteRefused
from ccanalytics.ingest import ingest_records
from ccanalytics.migrate import discover, migrate, status
from ccanalytics.promptlib import PromptResolver
from ccanalytics.sqlfiles import sql_dir
from ccanalytics.store import connect

# The call processor's own schema, as it creates it: the spec's columns only (no quality_details,
# search_tsv, ingested_at…), serial ids, prompt_version varchar(50), monthly partitions named
# <table>_yYYYYmMM, its own index names, one index made per partition only (no parent index).
CALL_PROCESSOR_SCHEMA = """
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    phone varchar(20) NOT NULL UNIQUE,
    name varchar(200),
    total_calls integer NOT NULL DEFAULT 0,
    first_call_at timestamptz,
    last_call_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE prompt_versions (
    id serial PRIMARY KEY,
    name varchar(100) NOT NULL,
    system_prompt text NOT NULL,
    tools_config jsonb NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE prompt_ab_tests (
    id serial PRIMARY KEY,
    test_name varchar(100) NOT NULL UNIQUE,
    variant_a_id integer NOT NULL REFERENCES prompt_versions (id),
    variant_b_id integer NOT NULL REFERENCES prompt_versions (id),
    calls_a integer NOT NULL DEFAULT 0,
    calls_b integer NOT NULL DEFAULT 0,
    quality_a double precision,
    quality_b double precision,
    status varchar(20) NOT NULL DEFAULT 'draft',
    started_at timestamptz,
    ended_at timestamptz
);
CREATE TABLE calls (
    id uuid NOT NULL,
    caller_id varchar(20),
    customer_id bigint,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    duration_seconds integer,
    scenario varchar(50),
    transferred_to_operator boolean NOT NULL DEFAULT false,
    transfer_reason varchar(50),
    order_id varchar(50),
    fitting_booking_id varchar(50),
    prompt_version varchar(50),
    quality_score double precision,
    cost_breakdown jsonb,
    total_cost_usd double precision,
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX calls_started_idx ON calls (started_at);
CREATE TABLE call_turns (
    id bigserial,
    call_id uuid NOT NULL,
    turn_number integer NOT NULL,
    speaker varchar(10) NOT NULL,
    content text NOT NULL,
    stt_confidence real,
    stt_latency_ms integer,
    llm_latency_ms integer,
    tts_latency_ms integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX call_turns_by_call ON call_turns (call_id, turn_number);
CREATE TABLE call_tool_calls (
    id bigserial,
    call_id uuid NOT NULL,
    turn_number integer NOT NULL,
    tool_name varchar(100) NOT NULL,
    tool_args jsonb,
    tool_result jsonb,
    duration_ms integer,
    success boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE daily_stats (
    stat_date date PRIMARY KEY,
    total_calls integer NOT NULL DEFAULT 0,
    resolved_by_bot integer NOT NULL DEFAULT 0,
    transferred integer NOT NULL DEFAULT 0,
    avg_duration_seconds double precision,
    avg_quality_score double precision,
    total_cost_usd numeric(12, 6),
    scenario_breakdown jsonb,
    transfer_reasons jsonb,
    hourly_distribution jsonb
);
DO $$
DECLARE
    m date;
    t text;
BEGIN
    FOR m IN SELECT generate_series(date '2026-09-01', date '2026-12-01', interval '1 month')::date LOOP
        FOREACH t IN ARRAY ARRAY['calls', 'call_turns', 'call_tool_calls'] LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           t || to_char(m, '"_y"YYYY"m"MM'), t, m::timestamp AT TIME ZONE 'UTC',
                           (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        END LOOP;
        -- made per partition only; equal to our calls_scenario_idx, so attach reuses it
        EXECUTE format('CREATE INDEX %I ON %I (scenario, started_at)',
                       to_char(m, '"calls_y"YYYY"m"MM"_scn"'), to_char(m, '"calls_y"YYYY"m"MM'));
    END LOOP;
END $$;
INSERT INTO customers (phone, name, total_calls) VALUES ('+380671112233', 'Олег', 67), ('+380501234567', NULL, 33);
INSERT INTO prompt_versions (name, system_prompt, is_active) VALUES
    ('tire_agent', 'Ти — консультант шинного магазину.', true),
    ('tire_agent', 'Ти — ввічливий консультант шинного магазину.', false);
INSERT INTO prompt_ab_tests (test_name, variant_a_id, variant_b_id, status, started_at)
    VALUES ('greeting', 1, 2, 'running', '2026-10-01');
INSERT INTO calls (id, caller_id, customer_id, started_at, ended_at, duration_seconds, scenario,
                   transferred_to_operator, transfer_reason, order_id, prompt_version, quality_score,
                   cost_breakdown, total_cost_usd)
SELECT md5('call' || g)::uuid,
       CASE WHEN g % 3 = 0 THEN '+380501234567' ELSE '+380671112233' END,
       CASE WHEN g % 3 = 0 THEN 2 ELSE 1 END,
       timestamptz '2026-09-03 07:00+00' + g * interval '23 hours 17 minutes',
       timestamptz '2026-09-03 07:00+00' + g * interval '23 hours 17 minutes' + interval '95 seconds',
       95, CASE WHEN g % 4 = 0 THEN 'order_status' ELSE 'tire_search' END, g % 5 = 0,
       CASE WHEN g % 5 = 0 THEN 'customer_request' END, CASE WHEN g % 4 = 1 THEN 'ORD-' || g END, 'v3',
       0.8, '{"stt": 0.04, "llm": 0.05, "tts": 0.01}', 0.1
FROM generate_series(1, 100) g;
INSERT INTO call_turns (call_id, turn_number, speaker, content, created_at, stt_confidence)
SELECT c.id, t, CASE WHEN t % 2 = 0 THEN 'customer' ELSE 'bot' END,
       CASE t WHEN 1 THEN 'Добрий день! Магазин шин, чим допомогти?'
              WHEN 2 THEN 'Потрібні зимові шини на Шкоду Октавію'
              ELSE 'Зараз підберу варіанти.' END,
       c.started_at + t * interval '10 seconds', CASE WHEN t % 2 = 0 THEN 0.9 END
FROM calls c CROSS JOIN generate_series(1, 3) t;
INSERT INTO call_tool_calls (call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, created_at)
SELECT c.id, 3, 'search_tires', '{"season": "winter"}', '{"items": 3}', 250, c.started_at + interval '31 seconds'
FROM calls c;
INSERT INTO daily_stats (stat_date, total_calls, resolved_by_bot, transferred, total_cost_usd)
    VALUES ('2026-09-04', 1, 1, 0, 0.1);
"""
ORDER_KEYS = {
    "calls": "id, started_at",
    "call_turns": "id, created_at",
    "call_tool_calls": "id, created_at",
    "customers": "id",
    "prompt_versions": "id",
    "prompt_ab_tests": "id",
    "daily_stats": "stat_date",
}


def libpq(url: str) -> str:
    return "postgresql" + url[len("postgresql+psycopg") :]


@pytest.fixture
def cp_url(empty_db_url):
    """A database as the call processor builds it, with four months of data."""
    with psycopg.connect(libpq(empty_db_url), autocommit=True) as conn:
        conn.execute(CALL_PROCESSOR_SCHEMA)
    partitions.forget_cache()
    return empty_db_url


@pytest.fixture
def cp_engine(cp_url):
    engine = create_engine(cp_url, pool_size=2)
    yield engine
    engine.dispose()


def their_columns(engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {
            t: conn.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = :t ORDER BY ordinal_position"
                ),
                {"t": t},
            )
            .scalars()
            .all()
            for t in ORDER_KEYS
        }


def fingerprint(engine, columns: dict[str, list[str]]) -> dict[str, tuple]:
    """Row count and checksum of the call processor's own columns, per table."""
    out = {}
    with engine.connect() as conn:
        for table, key in ORDER_KEYS.items():
            cols = ", ".join(columns[table])
            out[table] = tuple(
                conn.execute(
                    sa.text(f"SELECT count(*), md5(string_agg(ROW({cols})::text, '|' ORDER BY {key})) FROM {table}")
                ).one()
            )
    return out


def storage(engine) -> dict[str, int]:
    """relfilenode of every table: a rewrite gives a table a new one."""
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text(
                    "SELECT relname, relfilenode FROM pg_class WHERE relkind = 'r' "
                    "AND relnamespace = 'public'::regnamespace AND (relname = ANY(:t) OR relname ~ '_y2026m\\d\\d$')"
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
def test_attach_adds_only_what_is_missing_and_keeps_their_data(cp_engine):
    columns = their_columns(cp_engine)
    before, files = fingerprint(cp_engine, columns), storage(cp_engine)
    steps: list[str] = []

    applied = migrate(cp_engine, on_step=steps.append)

    assert [m.version for m in applied] == [m.version for m in discover()]
    assert fingerprint(cp_engine, columns) == before  # every row of theirs, unchanged
    assert storage(cp_engine) == files  # no table was rewritten
    assert "create ccanalytics tables and functions" in steps
    with cp_engine.connect() as conn:
        found = set(
            conn.execute(
                sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'calls'")
            ).scalars()
        )
        assert {"quality_details", "ingested_at", "payload_sha256"} <= found and "scored_at" not in found
        assert conn.execute(sa.text("SELECT to_regclass('call_scores')")).scalar() is not None
        # the processor's daily_stats keeps exactly its own columns (ours are in cca_daily_stats)
        daily = set(
            conn.execute(
                sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'daily_stats'")
            ).scalars()
        )
        assert "orders_created" not in daily and "computed_at" not in daily and "total_calls" in daily
        assert conn.execute(sa.text("SELECT to_regclass('cca_daily_stats')")).scalar() is not None
        # prompt_version stays varchar(50)
        assert conn.execute(sa.text("SELECT count(*) FROM calls WHERE ingested_at IS NULL")).scalar() == 0
        assert (
            conn.execute(
                sa.text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'calls'::regclass AND attname = 'prompt_version'"
                )
            ).scalar()
            == "character varying(50)"
        )
        # their partitions keep their names; their per-partition index joined our parent index
        assert partitions.list_partitions(conn)["calls"] == [f"calls_y2026m{m}" for m in ("09", "10", "11", "12")]
        parent = conn.execute(
            sa.text(
                "SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = 'calls_y2026m10_scn'::regclass"
            )
        ).scalar()
        assert parent == "calls_scenario_idx"
        invalid = conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
        assert invalid == 0
        # volatile default (md5(random())) set for new rows only; the existing test keeps NULL
        assert conn.execute(sa.text("SELECT salt IS NULL FROM prompt_ab_tests")).scalar() is True
    st = status(cp_engine)
    assert st.up_to_date and not st.attach_pending
    report = attach.check(cp_engine)
    assert report.ok, [f.line() for f in report.findings]
    kinds = {f.kind for f in report.findings}
    assert kinds == {"compatible_type", "search_expression"}

    # a second run is a no-op: no step, no migration, nothing rewritten
    steps.clear()
    assert migrate(cp_engine, on_step=steps.append) == [] and steps == []
    assert storage(cp_engine) == files and fingerprint(cp_engine, columns) == before


def test_search_ingest_and_daily_stats_work_on_the_attached_database(cp_engine):
    migrate(cp_engine)
    page = journal.search(cp_engine, date_from="2026-09-01", date_to="2026-12-31", text="зимова", limit=200)
    assert len(page.rows) == 100 and "Шкоду" in page.rows[0]["snippet"]
    with cp_engine.connect() as conn:
        assert journal.turn_vector(conn) == "cca_search_vector(t.content)"
        conn.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "EXPLAIN SELECT call_id FROM call_turns t WHERE cca_search_vector(t.content) @@ cca_search_query('шини')"
                )
            ).scalars()
        )
    assert "search_vector_idx" in plan, plan

    # ingestion: a covered month goes into their partition; an uncovered one gets our partition
    november, march = datetime(2026, 11, 20, 8, tzinfo=UTC), datetime(2027, 3, 5, 9, tzinfo=UTC)
    result = ingest_records(cp_engine, [make_call(started_at=november), make_call(started_at=march)])
    assert result.inserted == 2
    with cp_engine.begin() as conn:
        where = dict(
            conn.execute(
                sa.text(
                    "SELECT date_trunc('month', started_at)::date, tableoid::regclass::text FROM calls WHERE payload_sha256 IS NOT NULL"
                )
            ).all()
        )
        assert where == {date(2026, 11, 1): "calls_y2026m11", date(2027, 3, 1): "calls_2027_03"}
        # the call processor owns partition upkeep here: nothing is created ahead
        assert partitions.ensure_ahead(conn, months_ahead=3, today=date(2027, 6, 1)) == 0
    # … and the doctor says whose job the missing months are, instead of advising a migration
    advice = doctor.check_partitions(cp_engine, 3, today=date(2027, 6, 1))
    assert advice.status == "fail" and "call processor's partition manager creates them" in advice.detail
    assert "db migrate" not in advice.detail
    found = journal.search(cp_engine, date_from="2026-11-20", date_to="2026-11-20", text="Нокіан")
    assert len(found.rows) == 1 and "Нокіан" in found.rows[0]["snippet"]

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


def test_the_call_processors_prompt_versions_work_after_attach(cp_engine):
    """Their rows have no version number or label (attach never rewrites their data): they read as
    version = id (label name@v<id>), and our next version of the prompt is numbered after theirs."""
    migrate(cp_engine)
    theirs = prompts.list_versions(cp_engine, "tire_agent")
    assert [(v.id, v.version, v.label) for v in sorted(theirs, key=lambda v: v.id)] == [
        (1, 1, "tire_agent@v1"),
        (2, 2, "tire_agent@v2"),
    ]
    assert prompts.active_version(cp_engine, "tire_agent").id == 1
    assert prompts.get_version(cp_engine, 2).system_prompt.startswith("Ти — ввічливий")
    diff = prompts.diff_versions(cp_engine, 1, 2)
    assert "tire_agent@v1" in diff.unified and "+Ти — ввічливий" in diff.unified
    assert prompts.get_version(cp_engine, "tire_agent@v2").id == 2  # by label too
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
    labels = [v.label for v in prompts.list_versions(cp_engine, "tire_agent")]
    assert labels == [f"tire_agent@v{theirs_next}", "tire_agent@v3", "tire_agent@v2", "tire_agent@v1"]
    prompts.activate_version(cp_engine, 2, by="analyst")  # back to one of theirs, by id
    resolved = PromptResolver(cp_engine, ttl_seconds=0).resolve("tire_agent", caller_id="+380671112233")
    # their running A/B test (version 1 against 2) answers, with labels for their rows
    assert (
        resolved.ab_test == "greeting"
        and resolved.label == {"A": "tire_agent@v1", "B": "tire_agent@v2"}[resolved.variant]
    )
    admin = logged_in(make_app(cp_engine), cp_engine, "olena", "admin")  # the admin's prompt pages
    page = admin.get("/prompts").get_data(as_text=True)
    assert "tire_agent@v2" in page and f"tire_agent@v{theirs_next}" in page
    assert admin.get("/prompts/tire_agent/v2").status_code == 200


@pytest.mark.parametrize("stop_after", [1, 6, 30])
def test_an_interrupted_attach_completes_on_the_next_run(cp_engine, stop_after):
    columns = their_columns(cp_engine)
    before = fingerprint(cp_engine, columns)
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
    # (for started_at: the variant name, as the call processor's own index took the plain one)
    started_ix = schemacheck.Index("calls", "calls_started_at_idx", False, "USING btree (started_at, id)")
    variant = attach._names("calls_y2026m12_started_at_idx", started_ix)[1]
    leftovers = {
        "calls_y2026m12_transferred_idx": "(started_at) WHERE transferred_to_operator",
        variant: "(started_at, id)",
    }
    with cp_engine.begin() as conn:
        for name, definition in leftovers.items():
            if conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
                conn.execute(sa.text(f"CREATE INDEX {name} ON calls_y2026m12 {definition}"))
                conn.execute(sa.text(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{name}'::regclass"))
    report = attach.check(cp_engine)
    assert not report.ok
    assert any(
        f.kind == "invalid_partition_index" and f.target == "calls_y2026m12_transferred_idx" for f in report.findings
    )

    rerun: list[str] = []
    migrate(cp_engine, on_step=rerun.append)

    assert "drop invalid index calls_y2026m12_transferred_idx" in rerun and f"drop invalid index {variant}" in rerun
    assert ("create ccanalytics tables and functions" in rerun) == (stop_after < 6)
    assert status(cp_engine).up_to_date
    assert fingerprint(cp_engine, columns) == before
    report = attach.check(cp_engine)
    assert report.ok and {f.kind for f in report.findings} == {"compatible_type", "search_expression"}
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


def test_duplicates_against_a_unique_index_stop_the_attach_clearly_and_resume_after_the_fix(cp_engine):
    with cp_engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_versions SET is_active = true"))  # two active versions of one name
    with pytest.raises(MigrationError, match=r"cannot build the unique index prompt_versions_one_active .*duplicates"):
        migrate(cp_engine)
    with cp_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar() == 0
    with cp_engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_versions SET is_active = false WHERE id = 2"))
    migrate(cp_engine)
    assert status(cp_engine).up_to_date and attach.check(cp_engine).ok


def test_a_migration_writing_to_a_shared_table_is_refused_before_any_change(cp_engine, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    (directory / "900_backfill.sql").write_text("UPDATE calls SET scenario = lower(scenario);\n")
    before = catalog(cp_engine)
    with pytest.raises(MigrationError, match="900_backfill.sql runs UPDATE calls SET … on the call processor's table"):
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
    assert "missing: column calls.quality_details jsonb is missing" in lines
    assert "missing: table call_scores is missing" in lines
    assert "missing: migration 001_core_schema.sql is not applied" in lines
    assert (
        "note: calls.prompt_version is character varying(50), expected character varying(100) (compatible; values must fit)"
        in lines
    )
    assert any(line.startswith("missing: index call_turns_search_vector_idx on call_turns USING gin") for line in lines)
    res = runner.invoke(main, ["db", "check", "--json"], env=cp_env)
    data = json.loads(res.stdout)
    assert res.exit_code == 1 and data["ok"] is False
    assert {
        "severity": "missing",
        "kind": "missing_column",
        "target": "calls.ingested_at",
        "table": "calls",
    }.items() <= next(f for f in data["findings"] if f["target"] == "calls.ingested_at").items()

    migrate(cp_engine)
    res = runner.invoke(main, ["db", "check"], env=cp_env)
    assert res.exit_code == 0, res.output
    assert all(line.startswith("note: ") for line in res.stdout.splitlines()[:-1])

    # a database migrated from scratch matches exactly
    res = runner.invoke(main, ["db", "check", "--json"], env={"CCA_DATABASE_URL": engine.url.render_as_string(False)})
    assert res.exit_code == 0 and json.loads(res.stdout)["findings"] == []
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX calls_quality_idx"))
        conn.execute(sa.text("ALTER TABLE prompt_ab_tests DROP COLUMN salt"))
    res = runner.invoke(main, ["db", "check"], env={"CCA_DATABASE_URL": engine.url.render_as_string(False)})
    assert res.exit_code == 1
    assert "missing: column prompt_ab_tests.salt character varying(64) is missing" in res.stdout
    assert "missing: index calls_quality_idx on calls USING btree (quality_score, started_at) is missing" in res.stdout


def test_a_busy_table_gives_a_clean_retryable_error_not_a_hang(cp_engine, cp_url):
    # a long analytical query holds calls (ACCESS SHARE): ADD COLUMN must not queue behind it
    holder = psycopg.connect(libpq(cp_url))
    holder.execute("SELECT count(*) FROM calls").fetchone()
    try:
        started = time.monotonic()
        with pytest.raises(
            MigrationError, match=r"could not get its lock within 100 ms \(\d+ attempts in 2 s\).*re-run"
        ) as err:
            migrate(cp_engine, lock_timeout_ms=100, lock_wait_s=2)
        assert "add columns calls" in err.value.message
        assert time.monotonic() - started < 15
        # meanwhile nobody else was blocked: writers of other tables and readers of calls go on
        with cp_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar() == 100
    finally:
        holder.rollback()
        holder.close()
    migrate(cp_engine, lock_timeout_ms=100)
    assert status(cp_engine).up_to_date and attach.check(cp_engine).ok


def test_attach_never_makes_the_processors_writes_wait_long(cp_engine, cp_url):
    """While a long report reads calls, attach's ALTER TABLE waits for its lock at most lock_timeout
    (100 ms) at a time and steps aside between attempts, so the processor's INSERTs queued behind it are
    never held for long; attach completes once the report ends."""
    reader = psycopg.connect(libpq(cp_url))
    reader.execute("SELECT count(*) FROM calls").fetchone()  # ACCESS SHARE on calls until it ends
    release = threading.Timer(1.5, reader.rollback)
    waits: list[float] = []
    done = threading.Event()

    def processor_writes() -> None:  # the call processor inserting calls as they start
        with psycopg.connect(libpq(cp_url), autocommit=True) as conn:
            i = 0
            while not done.is_set():
                started = time.monotonic()
                conn.execute(
                    "INSERT INTO calls (id, caller_id, started_at) VALUES (%s, NULL, timestamptz '2026-12-10 10:00+00')",
                    (uuid.uuid4(),),
                )
                waits.append(time.monotonic() - started)
                i += 1
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
        reader.close()
    assert status(cp_engine).up_to_date and took >= 1.0  # it had to wait for the report
    assert len(waits) > 20
    # an INSERT waits behind a queued ALTER TABLE for at most its lock_timeout (100 ms), plus scheduling;
    # with the old 3 s timeout it waited up to 3 s
    assert max(waits) < 0.6, sorted(waits)[-5:]


def test_concurrent_migrate_runs_attach_once(cp_engine):
    errors: list[Exception] = []

    def run() -> None:
        try:
            migrate(cp_engine)
        except Exception as exc:  # pragma: no cover - reported by the assertion
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
    (directory / "900_later.sql").write_text("ALTER TABLE calls ADD COLUMN IF NOT EXISTS later_flag boolean;\n")
    assert [m.version for m in migrate(cp_engine, directory=directory)] == [900]
    assert one(cp_engine, "SELECT count(*) FROM calls WHERE later_flag IS NULL") == 100


# --------------------------------------------------------------------------------------- read-only
@pytest.fixture
def reader_url(cp_engine):
    """The attached database with data, and a role with SELECT-only grants (docs/attach.md)."""
    migrate(cp_engine)
    ingest_records(cp_engine, [make_call(started_at=datetime(2026, 11, 20, 8, tzinfo=UTC))])
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
        assert calls.height == 32
        assert store.turns(call_ids=[calls["id"][0]]).height >= 3
        assert metrics.summary(engine, "2026-11-01", "2026-11-30").total_calls == 32
        page = journal.search(engine, date_from="2026-11-01", date_to="2026-11-30", text="зимові шини")
        assert page.rows and journal.call_detail(engine, page.rows[0]["id"])["turns"]
        report = dailyreport.build(engine, "2026-11-20")
        assert report.summary.total_calls >= 1
        exported = datalake.export_day(engine, "2026-11-20", tmp_path / "lake")
        assert exported.rows()["calls"] >= 1
        with pytest.raises(MigrationError, match="needs CREATE on the database"):
            attach.check(engine)  # db check builds its scratch schema: not for a SELECT-only role
        # a write path says so in one line
        with pytest.raises(WriteRefused, match="^the database refused: permission denied for table"):
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
            auth.login(reader, "olena", "a-long-password")
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
        with pytest.raises(MigrationError, match="may not change the schema .*schema owner's role"):
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
        with pytest.raises(WriteRefused, match="read-only transaction.*CCA_READ_ONLY"), engine.begin() as conn:
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
