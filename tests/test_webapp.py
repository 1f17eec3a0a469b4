"""The admin app as it stands: overview page, health endpoints, errors as JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import make_call

from ccanalytics.ingest import ingest
from webapp import create_app


@pytest.fixture
def client(engine):
    """A browser logged in as an admin (every page but health and metrics needs a login)."""
    from test_auth import logged_in

    app = create_app({"ENGINE": engine, "TESTING": True})
    return logged_in(app, engine, "admin", "admin")


def test_overview_shows_todays_numbers_and_latest_calls_masked(client, engine):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    ingest(
        engine,
        [
            make_call(started_at=now, seconds=60),
            make_call(
                started_at=now - timedelta(minutes=5),
                seconds=60,
                transferred_to_operator=True,
                transfer_reason="negative_emotion",
                order_created=None,
            ),
        ],
    )
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Обзор" in html and "Последние звонки" in html
    assert "подбор шин + оформление заказа" in html
    assert "оператор (негатив клиента)" in html
    assert "+38067*****67" in html and "+380671234567" not in html
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_overview_of_an_empty_database(client):
    html = client.get("/").get_data(as_text=True)
    assert "За период звонков нет" in html


def test_bad_query_parameter_is_a_json_400(client):
    res = client.get("/?days=abc")
    assert res.status_code == 400
    assert res.get_json()["error"]["code"] == "invalid_argument"


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_reports_an_unreachable_database(tmp_path):
    from ccanalytics.database import create_engine

    engine = create_engine(f"postgresql://nobody@/nodb?host={tmp_path}")
    res = create_app({"ENGINE": engine}).test_client().get("/readyz")
    assert res.status_code == 503
    assert res.get_json()["error"]["code"] == "database_unavailable"


def test_pages_show_the_user_and_a_logout_form_with_csrf(client):
    page = client.get("/").get_data(as_text=True)
    assert 'action="/logout"' in page and 'name="csrf_token"' in page and "Выйти" in page
