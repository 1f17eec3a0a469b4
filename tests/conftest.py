"""Shared fixtures: a real PostgreSQL (the embedded pgserver) per test session, a migrated template
database, and a fresh database cloned from it for every test that asks for one."""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from factories import add_tenant

from ccanalytics.analytics.store import Store
from ccanalytics.db import embedded, partitions
from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate

TEMPLATE = "cca_template"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL server for this test session (one per xdist worker). Yields a libpq URL
    of its maintenance database."""
    root = tmp_path_factory.mktemp("pg")  # pgserver opens the path to its own user when run as root
    url = embedded.start(root / "pg", database="postgres", cleanup_mode="delete")
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        # durability is irrelevant for throw-away test databases
        for setting, value in (("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")):
            conn.execute(f"ALTER SYSTEM SET {setting} = {value}")
        conn.execute("SELECT pg_reload_conf()")
    yield libpq
    # the server's log outlives the data directory (deleted at exit): it tells why a server died
    log = root / "pg" / "log"
    if log.exists():
        shutil.copy(log, root / "postgresql.log")


def _db_url(server_url: str, name: str) -> str:
    return server_url.replace("/postgres?", f"/{name}?", 1)


@pytest.fixture(scope="session")
def template_db(pg_server):
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    engine = create_engine(_db_url(pg_server, TEMPLATE), pool_size=1)
    migrate(engine)
    with engine.begin() as conn:
        add_tenant(conn)  # the call processor's one tenant: calls without a tenant belong to it
    engine.dispose()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{TEMPLATE}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    return TEMPLATE


def new_database(pg_server: str, template: str) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return name, _db_url(pg_server, name)


def drop_database(pg_server: str, name: str) -> None:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_server, template_db):
    """A fresh, migrated database for this test (SQLAlchemy URL); dropped afterwards."""
    name, url = new_database(pg_server, template_db)
    yield "postgresql+psycopg" + url[len("postgresql") :]
    drop_database(pg_server, name)


@pytest.fixture
def engine(db_url):
    engine = create_engine(db_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine):
    return Store(engine)


@pytest.fixture
def empty_db_url(pg_server):
    """A fresh database with no schema at all."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield "postgresql+psycopg" + _db_url(pg_server, name)[len("postgresql") :]
    drop_database(pg_server, name)
    partitions.forget_cache()


def count_rows(engine: sa.Engine) -> dict[str, int]:
    """Row counts of the ingest tables: the 'nothing written' check of bad-input tests."""
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("calls", "call_turns", "call_tool_calls", "customers")
        }


DEMO_TEMPLATE = "cca_demo_template"
DEMO_END = "2026-11-24"  # the demo's last day: reports are asked for days inside 2026-11-15 … 2026-11-24


@pytest.fixture(scope="session")
def demo_template(pg_server, template_db, tmp_path_factory):
    """A template database holding ten days of demo data (60 calls/day), priced, scored, with daily
    stats and the demo A/B test — what `make demo` produces, smaller. Built once per worker."""
    from datetime import date

    from ccanalytics.core.config import Settings
    from ccanalytics.demo.run import run_demo

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DEMO_TEMPLATE}" TEMPLATE "{template_db}" STRATEGY FILE_COPY')
    url = "postgresql+psycopg" + _db_url(pg_server, DEMO_TEMPLATE)[len("postgresql") :]
    demo_db = create_engine(url, pool_size=1)
    with demo_db.begin() as conn:  # the demo's database has the demo's two tenants only
        conn.execute(sa.text("DELETE FROM tenants"))
    demo_db.dispose()
    report = run_demo(
        Settings(
            database_url=url,
            reports_dir=tmp_path_factory.mktemp("demo-reports"),
            lake_dir=tmp_path_factory.mktemp("demo-lake"),
        ),
        seed=7,
        days=10,
        calls_per_day=60,
        end_date=date.fromisoformat(DEMO_END),
        echo=lambda _line: None,
    )
    report.engine.dispose()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{DEMO_TEMPLATE}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
    return DEMO_TEMPLATE


@pytest.fixture
def demo_url(pg_server, demo_template):
    """A fresh copy of the demo database for this test (SQLAlchemy URL)."""
    name, url = new_database(pg_server, demo_template)
    yield "postgresql+psycopg" + url[len("postgresql") :]
    drop_database(pg_server, name)


@pytest.fixture
def demo_engine(demo_url):
    engine = create_engine(demo_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def telegram():
    """A local Telegram Bot API server (tests/fakechannels.py)."""
    from fakechannels import FakeTelegram

    with FakeTelegram() as tg:
        yield tg


@pytest.fixture
def smtp():
    """A local SMTP server with a mailbox (aiosmtpd)."""
    from fakechannels import SMTPServer

    with SMTPServer() as server:
        yield server
