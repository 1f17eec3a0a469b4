"""Migrations and the schema itself, on a real PostgreSQL."""

from __future__ import annotations

import shutil
import threading
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import add_prompt_version

from ccanalytics.analytics import journalsearch
from ccanalytics.cli.root import main
from ccanalytics.core.errors import MigrationError
from ccanalytics.db import partitions
from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate
from ccanalytics.db.migrations import discover, status
from ccanalytics.db.schemacheck import SHARED_TABLES
from ccanalytics.db.sqlfiles import processor_schema, split_statements, sql_dir

SPEC_COLUMNS = {
    "calls": {
        "id",
        "caller_id",
        "customer_id",
        "started_at",
        "ended_at",
        "duration_seconds",
        "scenario",
        "transferred_to_operator",
        "transfer_reason",
        "order_id",
        "fitting_booking_id",
        "prompt_version",
        "quality_score",
        "quality_details",
        "cost_breakdown",
        "total_cost_usd",
        "tenant_id",
    },
    "call_turns": {
        "id",
        "call_id",
        "turn_number",
        "speaker",
        "content",
        "stt_confidence",
        "stt_latency_ms",
        "llm_latency_ms",
        "tts_latency_ms",
        "created_at",
        "language",
    },
    "call_tool_calls": {
        "id",
        "call_id",
        "turn_number",
        "tool_name",
        "tool_args",
        "tool_result",
        "duration_ms",
        "success",
        "created_at",
    },
    "customers": {
        "id",
        "phone",
        "name",
        "total_calls",
        "first_call_at",
        "last_call_at",
        "created_at",
        "city",
        "vehicles",
        "delivery_address",
        "tenant_id",
        "deleted_at",
    },
    "tenants": {
        "id",
        "slug",
        "name",
        "network_id",
        "agent_name",
        "enabled_tools",
        "config",
        "is_active",
        "working_hours",
    },
    "prompt_versions": {"id", "name", "system_prompt", "tools_config", "is_active", "metadata", "created_at"},
    "prompt_ab_tests": {
        "id",
        "test_name",
        "variant_a_id",
        "variant_b_id",
        "traffic_split",
        "calls_a",
        "calls_b",
        "quality_a",
        "quality_b",
        "status",
        "started_at",
        "ended_at",
    },
    "daily_stats": {
        "stat_date",
        "total_calls",
        "resolved_by_bot",
        "transferred",
        "avg_duration_seconds",
        "avg_quality_score",
        "total_cost_usd",
        "scenario_breakdown",
        "transfer_reasons",
        "hourly_distribution",
    },
    "llm_usage_log": {
        "id",
        "task_type",
        "provider_key",
        "model_name",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "latency_ms",
        "call_id",
        "tenant_id",
        "created_at",
    },
}
PARTITIONED = ("calls", "call_turns", "call_tool_calls", "llm_usage_log")
# every id of the call processor is a uuid (../shared/callcenter-schema.md)
UUID_COLUMNS = [
    ("calls", "id"),
    ("calls", "customer_id"),
    ("calls", "order_id"),
    ("calls", "fitting_booking_id"),
    ("calls", "tenant_id"),
    ("call_turns", "id"),
    ("call_turns", "call_id"),
    ("call_tool_calls", "id"),
    ("customers", "id"),
    ("customers", "tenant_id"),
    ("tenants", "id"),
    ("prompt_versions", "id"),
    ("prompt_ab_tests", "variant_a_id"),
    ("llm_usage_log", "call_id"),
]


@pytest.fixture
def fresh(empty_db_url):
    engine = create_engine(empty_db_url, pool_size=2)
    yield engine
    engine.dispose()


def test_fresh_database_gets_the_spec_schema_and_partitions_ahead(fresh):
    applied = migrate(fresh, partitions_ahead_months=2)
    assert [m.version for m in applied] == [m.version for m in discover()]
    with fresh.connect() as conn:
        for table, columns in SPEC_COLUMNS.items():
            found = set(
                conn.execute(
                    sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table}
                ).scalars()
            )
            assert columns <= found, (table, columns - found)
        kinds = dict(
            conn.execute(
                sa.text("SELECT relname, relkind FROM pg_class WHERE relname = ANY(:t)"), {"t": list(PARTITIONED)}
            ).all()
        )
        types = {
            (table, column): conn.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND table_name = :t AND column_name = :c"
                ),
                {"t": table, "c": column},
            ).scalar()
            for table, column in UUID_COLUMNS
        }
        # a fresh database is not attached: ccanalytics stands in for the processor's partition manager
        assert conn.execute(sa.text("SELECT to_regclass('cca_schema_attach')")).scalar() is None
    assert kinds == dict.fromkeys(PARTITIONED, "p")  # partitioned
    assert set(types.values()) == {"uuid"}, types
    st = status(fresh)
    assert st.up_to_date
    today = date.today()
    for table in PARTITIONED:
        expected = [f"{table}_{partitions.add_months(date(today.year, today.month, 1), i):%Y_%m}" for i in range(3)]
        assert all(name in st.partitions[table] for name in expected), (table, st.partitions[table])
    assert migrate(fresh) == []  # second run: nothing to do


def test_the_migrations_leave_the_processors_tables_exactly_as_the_processor_creates_them(fresh):
    """sql/processor/schema.sql makes the processor's tables; our migrations then add indexes to them
    and nothing else: every column (name, type, nullability, default) and every constraint is the
    processor's own, compared with the same file run alone in a scratch schema."""
    migrate(fresh)

    def shape(conn, schema):
        columns = conn.execute(
            sa.text(
                "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = :s AND table_name = ANY(:t) ORDER BY 1, 2"
            ),
            {"s": schema, "t": list(SHARED_TABLES)},
        ).all()
        constraints = conn.execute(
            sa.text(
                "SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) FROM pg_constraint k "
                "JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = to_regnamespace(:s) "
                "AND c.relname = ANY(:t) ORDER BY 1, 2"
            ),
            {"s": schema, "t": list(SHARED_TABLES)},
        ).all()
        triggers = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE c.relnamespace = to_regnamespace(:s) AND c.relname = ANY(:t) AND NOT g.tgisinternal"
            ),
            {"s": schema, "t": list(SHARED_TABLES)},
        ).scalar()
        # column defaults of the scratch copy name no schema: compare them without it
        columns = [(*r[:5], r[5].replace(f"{schema}.", "") if r[5] else r[5]) for r in columns]
        return columns, [tuple(r) for r in constraints], triggers

    with fresh.connect() as conn:
        ours = shape(conn, "public")
        conn.execute(sa.text("CREATE SCHEMA processor_only"))
        conn.execute(sa.text("SET LOCAL search_path = processor_only"))
        conn.connection.driver_connection.execute(processor_schema())
        theirs = shape(conn, "processor_only")
        conn.rollback()
    assert {r[0] for r in ours[0]} == set(SHARED_TABLES)
    assert ours == theirs


def test_concurrent_migrations_apply_each_file_once(fresh):
    errors = []

    def run():
        try:
            migrate(fresh)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with fresh.connect() as conn:
        versions = conn.execute(sa.text("SELECT version FROM cca_schema_migrations ORDER BY version")).scalars().all()
    assert versions == [m.version for m in discover()]


def test_a_changed_applied_migration_is_refused(fresh, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    migrate(fresh, directory=directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    assert status(fresh, directory).changed == [1]
    with pytest.raises(MigrationError, match="was changed after it was applied"):
        migrate(fresh, directory=directory)


def test_a_failing_migration_leaves_nothing_half_applied(fresh, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    (directory / "900_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n")
    with pytest.raises(MigrationError, match=r'900_broken.sql failed: relation "no_such_table" does not exist'):
        migrate(fresh, directory=directory)
    with fresh.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('half_done')")).scalar() is None
        assert 900 not in conn.execute(sa.text("SELECT version FROM cca_schema_migrations")).scalars().all()
    (directory / "900_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert [m.version for m in migrate(fresh, directory=directory)] == [900]


def test_bad_migration_file_names_are_refused(tmp_path):
    (tmp_path / "1-init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"must look like 001_name.sql"):
        discover(tmp_path)


def test_no_transaction_migrations_run_statement_by_statement(fresh, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", directory)
    (directory / "901_concurrently.sql").write_text(
        "-- cca:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS calls_x_idx ON customers (name);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_y_idx ON customers (created_at);\n"
    )
    migrate(fresh, directory=directory)
    with fresh.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM pg_indexes WHERE indexname IN ('calls_x_idx', 'calls_y_idx')")
            ).scalar()
            == 2
        )


def test_split_statements_respects_quotes_and_dollar_quoting():
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x text DEFAULT 'a;b');
    CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;
    /* block; comment */ SELECT "we;ird" FROM a;
    """
    parts = split_statements(sql)
    assert len(parts) == 3
    assert parts[1].endswith("$$") and "RETURN 1; END;" in parts[1]


def test_partition_maintenance_cooperates_with_foreign_partitions(engine):
    with engine.begin() as conn:
        # the call processor made this month's partition under its own name
        conn.execute(
            sa.text(
                "CREATE TABLE calls_legacy_2031_05 PARTITION OF calls "
                "FOR VALUES FROM ('2031-05-01 00:00+00') TO ('2031-06-01 00:00+00')"
            )
        )
        created = partitions.ensure_months(conn, [date(2031, 5, 1), date(2031, 6, 1)])
    # calls: only June (May is covered); turns, tool calls and the LLM usage log: both months
    assert created == 1 + 2 + 2 + 2
    with engine.connect() as conn:
        parts = partitions.list_partitions(conn)
    assert "calls_legacy_2031_05" in parts["calls"] and "calls_2031_05" not in parts["calls"]
    assert "calls_2031_06" in parts["calls"] and "call_turns_2031_05" in parts["call_turns"]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO cca_turn_extras (turn_id, call_id, speech_duration_ms) VALUES (:id, :id, -1)",
        "INSERT INTO cca_ab_assignments (call_id, test_id, variant) VALUES (:id, :id, '')",
        "INSERT INTO cca_ab_assignments (call_id, test_id, variant, source) VALUES (:id, :id, 'A', 'guess')",
        "INSERT INTO cca_call_ingest (call_id, started_at, payload_sha256) VALUES (:id, now(), NULL)",
        "INSERT INTO call_scores (call_id, started_at, judge_kind, judge_model, rubric_version, overall_score, criteria) "
        "VALUES (:id, now(), 'llm', 'm', 'r', 1.01, '{}')",
        "INSERT INTO scoring_queue (call_id, started_at, status) VALUES (:id, now(), 'lost')",
        "INSERT INTO cca_daily_stats (stat_date, total_calls, resolved_by_bot, transferred) VALUES ('2026-01-01', 5, 4, 3)",
        "INSERT INTO cca_daily_stats_tenants (stat_date, tenant_id, total_calls, resolved_by_bot, transferred) "
        "VALUES ('2026-01-01', :id, 5, 4, 3)",
        "INSERT INTO cca_daily_stats_tenants (stat_date, tenant_id, stt_reasks) VALUES ('2026-01-01', NULL, 1)",
    ],
)
def test_constraints_keep_ccanalyticss_own_data_sane_even_for_direct_writers(engine, sql):
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(sql), {"id": uuid.uuid4()})


def test_the_tenants_daily_rows_have_the_figure_columns_of_the_whole_and_the_view_shows_both(engine):
    """cca_daily_stats_tenants (migration 016) holds the same figures as cca_daily_stats, with the same
    types, defaults and checks: a column added to one must be added to the other and to the view."""
    columns = (
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
    )
    checks = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'c'"
    with engine.connect() as conn:
        whole = conn.execute(sa.text(columns), {"t": "cca_daily_stats"}).all()
        tenants = conn.execute(sa.text(columns), {"t": "cca_daily_stats_tenants"}).all()
        view = [r[0] for r in conn.execute(sa.text(columns), {"t": "cca_daily_stats_by_tenant"})]
        whole_checks = sorted(conn.execute(sa.text(checks), {"t": "cca_daily_stats"}).scalars())
        tenant_checks = sorted(conn.execute(sa.text(checks), {"t": "cca_daily_stats_tenants"}).scalars())
        key = conn.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'p'"
            ),
            {"t": "cca_daily_stats_tenants"},
        ).scalar_one()
    assert tenants == [*whole, ("tenant_id", "uuid", True, None)]
    assert tenant_checks == whole_checks and len(whole_checks) > 10
    assert key == "PRIMARY KEY (stat_date, tenant_id)"
    assert view == ["tenant", "tenant_id", *[r[0] for r in whole]]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO call_turns (id, call_id, turn_number, speaker, content, created_at) "
        "VALUES (:id, :id, 1, 'agent', NULL, now())",
        "INSERT INTO call_turns (id, call_id, speaker, content, created_at, stt_confidence, llm_latency_ms) "
        "VALUES (:id, :id, NULL, 'x', now(), 1.2, -1)",
        "INSERT INTO calls (id, started_at, ended_at, duration_seconds) VALUES (:id, now(), now() - interval '1 minute', -3)",
        "INSERT INTO calls (id, started_at, quality_score, transferred_to_operator, transfer_reason) "
        "VALUES (:id, now(), 1.01, NULL, 'cannot_help')",
        "INSERT INTO call_tool_calls (id, call_id, turn_number, tool_name, created_at, duration_ms, success) "
        "VALUES (:id, :id, 1, 't', now(), -5, NULL)",
        "INSERT INTO prompt_versions (name, system_prompt, is_active) VALUES ('a', 'x', true), ('a', 'y', true)",
    ],
)
def test_the_processors_own_writes_are_never_refused_by_a_constraint_of_ours(engine, sql):
    """The processor's tables keep only the processor's constraints: ccanalytics adds no CHECK, unique
    index or foreign key to them, so none of the processor's statements can fail because of ccanalytics,
    however odd its rows (the readers cope with them: tests/test_processor_rows.py)."""
    with engine.begin() as conn:
        partitions.ensure_months(conn, [date.today()])
        conn.execute(sa.text(sql), {"id": uuid.uuid4()})


def test_one_version_per_prompt_name_is_active_once_ccanalytics_activates_one(engine):
    """The processor's prompt_versions may flag several versions of a name active (ccanalytics adds no
    unique index there and never UPDATEs it); what ccanalytics serves is the latest activation done
    through ccanalytics (cca_prompt_versions.is_active), one version per name, and the processor's flags
    stay beside as processor_active."""
    with engine.begin() as conn:
        a1 = add_prompt_version(conn, "a", "x", is_active=True)
        a2 = add_prompt_version(conn, "a", "z", is_active=True)
        b1 = add_prompt_version(conn, "b", "y", is_active=True)

    def active():
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT name, id, processor_active FROM cca_prompt_versions WHERE is_active ORDER BY name, version"
                )
            ).all()

    assert [(r.name, r.id) for r in active()] == [("a", a1), ("a", a2), ("b", b1)]  # as the processor says
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO prompt_activations (name, to_version_id, kind, activated_by) VALUES ('a', :v, 'activate', 't')"
            ),
            {"v": a1},
        )
    assert [(r.name, r.id, r.processor_active) for r in active()] == [("a", a1, True), ("b", b1, True)]
    with engine.connect() as conn:
        flags = conn.execute(sa.text("SELECT count(*) FROM prompt_versions WHERE is_active")).scalar()
    assert flags == 3  # the processor's own flags are untouched


def test_full_text_search_can_use_the_gin_index(engine):
    """Search predicates must be answerable from ccanalytics's GIN index on cca_search_vector(content)
    (no column is added to the processor's call_turns), not by evaluating to_tsvector per row (the plan
    that took 3.3 s on 1M turns)."""
    with engine.begin() as conn:
        partitions.ensure_months(conn, [date.today()])
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    f"EXPLAIN SELECT call_id FROM call_turns t WHERE {journalsearch.turn_vector()} @@ cca_search_query('шини') "
                    "AND created_at >= now() - interval '7 days'"
                )
            ).scalars()
        )
    assert "cca_search_vector_idx" in plan and "Seq Scan" not in plan, plan
    # the match is an index condition on every partition, never a filter evaluated per row
    assert plan.count("Index Cond: (to_tsvector") == plan.count("Bitmap Heap Scan") > 0, plan
    assert not [line for line in plan.splitlines() if "Filter" in line and "to_tsvector" in line], plan


def test_cli_db_migrate_and_status(empty_db_url):
    runner = CliRunner()
    env = {"CCA_DATABASE_URL": empty_db_url}
    res = runner.invoke(main, ["db", "status"], env=env)
    assert res.exit_code == 1 and "pending   001_core_schema.sql" in res.stdout
    res = runner.invoke(main, ["db", "migrate"], env=env)
    assert res.exit_code == 0, res.output
    assert "applied 001_core_schema.sql" in res.stdout and "schema is current" in res.stdout
    res = runner.invoke(main, ["db", "status", "--json"], env=env)
    assert res.exit_code == 0 and '"up_to_date": true' in res.stdout


def test_invalid_setting_is_a_one_line_error():
    res = CliRunner().invoke(main, ["db", "status"], env={"CCA_DB_POOL_SIZE": "lots"})
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: invalid setting CCA_DB_POOL_SIZE")


def test_non_postgres_url_is_refused():
    res = CliRunner().invoke(main, ["db", "status"], env={"CCA_DATABASE_URL": "sqlite:///x.db"})
    assert res.exit_code == 1 and "must point at PostgreSQL" in res.stderr
