"""The admin started on the call processor's database before `db migrate` attached it: it runs, says
what to do in Russian (pages) and JSON (API), /readyz is 503, and it recovers by itself once the
schema is in place — without writing anything to the database meanwhile."""

from __future__ import annotations

import sqlalchemy as sa
from factories import add_tenant

from ccanalytics.db import sqlfiles
from ccanalytics.db.engine import create_engine
from ccanalytics.db.migrate import migrate
from webapp import create_app


def test_the_admin_waits_for_the_attach_and_then_serves(empty_db_url):
    engine = create_engine(empty_db_url, pool_size=2)
    try:
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute(sqlfiles.processor_schema())
            raw.commit()
        finally:
            raw.close()
        with engine.begin() as conn:
            add_tenant(conn)
        app = create_app({"ENGINE": engine, "SCHEMA_GATE": True, "SECRET_KEY": "x" * 32})
        app.extensions["cca"]["schema_gate"].retry_seconds = 0.0
        client = app.test_client()

        page = client.get("/login")
        text = page.get_data(as_text=True)
        assert page.status_code == 503
        assert "ещё нет таблиц ccanalytics" in text and "ccanalytics db migrate" in text
        api = client.get("/api/v1/calls")
        assert api.status_code == 503 and api.get_json()["error"]["code"] == "schema_not_ready"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        with engine.connect() as conn:  # nothing of ccanalytics's was created by serving
            assert conn.execute(sa.text("SELECT to_regclass('cca_schema_migrations')")).scalar() is None

        migrate(engine)

        assert client.get("/readyz").status_code == 200
        assert client.get("/login").status_code == 200
        assert client.get("/api/v1/calls").status_code == 401  # the API is back: it wants a token
    finally:
        engine.dispose()
