"""Grafana's database role may read exactly what the dashboards' SQL panels and variables read.

The relations come from the panels' own SQL (``dashqueries.sql_relations``); docs/deployment.md's grant,
its per-panel table and deploy/postgres-init/10-grafana-role.sh name the same ones, and a role created
the documented way runs every SQL panel and variable of the dashboards on the demo data (the last 7
days of it, «Все сети» and each tenant) without a permission error, and reads nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import DEMO_END

from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate
from ccanalytics.ops import dashcheck, dashqueries

ROOT = Path(__file__).resolve().parent.parent
BOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DEPLOYMENT = ROOT / "docs" / "deployment.md"
INIT_SCRIPT = ROOT / "deploy" / "postgres-init" / "10-grafana-role.sh"
KYIV = ZoneInfo("Europe/Kyiv")


def _documented_grant() -> str:
    grants = re.findall(r"GRANT SELECT ON [\w, ]+ TO grafana_ro;", DEPLOYMENT.read_text(encoding="utf-8"))
    assert len(grants) == 1, "docs/deployment.md: one GRANT SELECT … TO grafana_ro; (Grafana's database role)"
    return grants[0]


def _documented_reads() -> dict[str, set[str]]:
    """docs/deployment.md's table: dashboard, panel (or variable), what it reads."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    block = text.split("<!-- grafana-reads -->", 1)[1].split("<!-- /grafana-reads -->", 1)[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[f"{cells[0]} / {cells[1]}"] = set(re.findall(r"`(\w+)`", cells[2]))
    return rows


def _panel_key(origin: str) -> str:
    """'dashboard cca-analytics / Звонки по неделям / A' -> 'cca-analytics / Звонки по неделям'."""
    return origin.removeprefix("dashboard ").rsplit(" / ", 1)[0]


def test_the_documented_grant_is_exactly_what_the_panels_read():
    reads = dashqueries.sql_reads(BOARDS)
    assert len(reads) >= 14
    assert dashqueries.grafana_grant(BOARDS) == _documented_grant()
    # the per-panel table of docs/deployment.md says what each panel reads
    by_panel: dict[str, set[str]] = {}
    for origin, relations in reads.items():
        by_panel.setdefault(_panel_key(origin), set()).update(relations)
    assert _documented_reads() == by_panel
    # the compose init script grants the same relations as they are created
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    listed = re.search(r"ARRAY\[([^\]]*)\]", script)
    assert listed, "10-grafana-role.sh: the ARRAY[…] of relations Grafana reads"
    assert sorted(re.findall(r"'(\w+)'", listed.group(1))) == sorted(set().union(*reads.values()))


def test_sql_relations_finds_tables_and_views_only():
    sql = (
        "WITH x AS (SELECT 1 FROM a), y AS (SELECT * FROM x) "
        "SELECT extract(epoch FROM t.z), 'FROM quoted' FROM y, b AS bb, jsonb_each(q) e, (SELECT 1 FROM c) s "
        "LEFT JOIN public.d ON true JOIN LATERAL (VALUES (1)) v(k) ON true CROSS JOIN e2 "
        "WHERE f IN (SELECT 1 FROM g) -- FROM h\n/* JOIN i */"
    )
    assert dashqueries.sql_relations(sql) == {"a", "b", "c", "d", "e2", "g"}


def _create_documented_role(admin_url: str, db: str, role: str) -> None:
    """The role docs/deployment.md describes (systemd and your own PostgreSQL), under another name."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE "{db}" TO {role}')
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(_documented_grant().replace("grafana_ro", role))


def _drop_role(pg_server: str, db: str, role: str) -> None:
    with psycopg.connect(pg_server.replace("/postgres?", f"/{db}?", 1), autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")


def _readable(url: str, role: str) -> set[str]:
    """The tables and views of the schema ``role`` may SELECT from."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege(%s, oid, 'SELECT')",
                (role,),
            )
        }


def _libpq(sqlalchemy_url: str) -> str:
    return "postgresql" + sqlalchemy_url.removeprefix("postgresql+psycopg")


def _as_role(url: str, role: str) -> str:
    out = re.sub(r"://postgres:?@", f"://{role}@", url, count=1)
    assert out != url, url
    return out


def _last_days(end: date, days: int) -> tuple[datetime, datetime]:
    """Grafana's «Last N days» ending at the end of ``end`` (Kyiv), not today."""
    to = datetime.combine(end + timedelta(days=1), time(), KYIV)
    return to - timedelta(days=days), to


def test_the_documented_role_runs_every_sql_panel_on_the_demo_data(pg_server, demo_url):
    db = demo_url.split("@/", 1)[1].split("?", 1)[0]
    role = f"grafana_t{uuid.uuid4().hex[:10]}"
    _create_documented_role(_libpq(demo_url), db, role)
    engine = create_engine(_as_role(demo_url, role), pool_size=1)
    try:
        expected = set(re.search(r"ON ([\w, ]+) TO", _documented_grant()).group(1).split(", "))
        assert _readable(_libpq(demo_url), role) == expected  # and nothing else: not calls, not users
        with psycopg.connect(_libpq(_as_role(demo_url, role)), autocommit=True) as conn:
            for forbidden in ("calls", "users", "cca_daily_stats", "prompt_ab_tests"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT 1 FROM {forbidden} LIMIT 1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM cca_ab_tests")
        variable = next(q for q in dashqueries.dashboard_queries(BOARDS) if q.role == "variable")
        with engine.connect() as conn:
            tenants = [v for v, _t in conn.connection.driver_connection.execute(variable.text).fetchall()]
        assert tenants[0] == "*" and len(tenants) == 3, tenants
        start, end = _last_days(date.fromisoformat(DEMO_END), 7)
        ran = 0
        for tenant in tenants:
            queries = [q for q in dashqueries.dashboard_queries(BOARDS, {"tenant": tenant}) if q.kind == "sql"]
            # every panel has rows over the demo's last 7 days, for every tenant and for all of them
            assert dashcheck.check_sql(engine, queries, start, end) == [], tenant
            ran += len(queries)
        print(f"{ran} SQL panel and variable queries ran as {role} over {start:%Y-%m-%d} … {end:%Y-%m-%d}")
    finally:
        engine.dispose()
        _drop_role(pg_server, db, role)


def _pg_bin(name: str) -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)


def test_the_compose_init_script_grants_exactly_what_the_panels_read(pg_server, empty_db_url):
    """The script runs on an empty data volume, before ccanalytics migrates: as the owner creates the
    tables and views Grafana reads, grafana_ro may read them, and nothing else."""
    host = empty_db_url.split("?host=", 1)[1]
    db = empty_db_url.split("@/", 1)[1].split("?", 1)[0]
    env = {
        **os.environ,
        "PGHOST": host,
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": db,
        "CCA_GRAFANA_PG_PASSWORD": "grafana-test",
        "PATH": str(Path(_pg_bin("psql")).parent) + os.pathsep + os.environ["PATH"],
    }
    res = subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
    try:
        assert res.returncode == 0, res.stderr
        engine = create_engine(empty_db_url, pool_size=1)
        migrate(engine)  # the tables come later, created by the owner
        engine.dispose()
        expected = set().union(*dashqueries.sql_reads(BOARDS).values())
        assert _readable(_libpq(empty_db_url), "grafana_ro") == expected
        problems = []
        ro = create_engine(_as_role(empty_db_url, "grafana_ro"), pool_size=1)
        try:
            start, end = _last_days(date.fromisoformat(DEMO_END), 7)
            for tenant in ("*", "shop"):
                queries = [q for q in dashqueries.dashboard_queries(BOARDS, {"tenant": tenant}) if q.kind == "sql"]
                problems += dashcheck.check_sql(ro, queries, start, end, require_data=False)
        finally:
            ro.dispose()
        assert [str(p) for p in problems] == []
        with psycopg.connect(_libpq(_as_role(empty_db_url, "grafana_ro")), autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO cca_ab_tests (prompt_name) VALUES ('x')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM cca_daily_stats")
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute("DROP ROLE IF EXISTS grafana_ro")
