"""The admin app as it stands: overview page, health endpoints, errors as JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import make_call

from ccanalytics.ingest.load import ingest
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


def test_bad_query_parameter_is_a_russian_400_page(client):
    res = client.get("/?days=abc")
    assert res.status_code == 400 and res.mimetype == "text/html"
    assert "Период: нужно целое число дней" in res.get_data(as_text=True)
    res = client.get("/?days=abc", headers={"Accept": "application/json"})  # a script asking for JSON
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "invalid_argument"


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_reports_an_unreachable_database(tmp_path):
    from ccanalytics.db.engine import create_engine

    engine = create_engine(f"postgresql://nobody@/nodb?host={tmp_path}")
    res = create_app({"ENGINE": engine}).test_client().get("/readyz")
    assert res.status_code == 503
    assert res.get_json()["error"]["code"] == "database_unavailable"


def test_pages_show_the_user_and_a_logout_form_with_csrf(client):
    page = client.get("/").get_data(as_text=True)
    assert 'action="/logout"' in page and 'name="csrf_token"' in page and "Выйти" in page


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Permissions-Policy")


def test_every_response_carries_the_security_headers(engine):
    from test_auth import crawl, logged_in

    app = create_app({"ENGINE": engine, "TESTING": True, "GRAFANA_URL": "http://grafana.local:3000/x"})
    client = logged_in(app, engine, "olena", "admin")
    paths = {p for m, p, e in crawl(app) if m == "GET" and e != "auth.logout"}
    paths |= {"/static/style.css", "/static/app.js", "/no-such-page", "/api/v1/no-such", "/login", "/healthz"}
    anonymous = app.test_client()
    for path in sorted(paths):
        for c in (client, anonymous):
            res = c.get(path)
            missing = [h for h in SECURITY_HEADERS if h not in res.headers]
            assert not missing, (path, res.status_code, missing)
            assert res.headers["X-Content-Type-Options"] == "nosniff"
            assert "Strict-Transport-Security" not in res.headers  # plain http, cookie not https-only
            csp = res.headers["Content-Security-Policy"]
            if path.startswith("/api/"):
                assert csp.startswith("default-src 'none'") and res.headers["X-Frame-Options"] == "DENY"
            else:
                assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
                assert "frame-src http://grafana.local:3000;" in csp and "frame-ancestors 'self'" in csp
    res = client.open("/calls", method="TRACE")
    assert res.status_code == 405 and "Content-Security-Policy" in res.headers and "GET" in res.headers["Allow"]


def test_no_page_has_an_inline_script_or_event_handler(engine):
    import re

    from test_auth import crawl, logged_in

    app = create_app({"ENGINE": engine, "TESTING": True})
    client = logged_in(app, engine, "olena", "admin")
    for method, path, endpoint in crawl(app):
        if method != "GET" or path.startswith("/api/") or endpoint in ("auth.logout", "prom.metrics"):
            continue
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "javascript:" not in html, path


def test_hsts_only_over_https_and_configurable(engine):
    app = create_app({"ENGINE": engine, "TESTING": True, "SESSION_COOKIE_SECURE": True})
    client = app.test_client()
    assert "Strict-Transport-Security" not in client.get("/healthz").headers  # http: never
    secure = client.get("/healthz", base_url="https://admin.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    off = create_app({"ENGINE": engine, "TESTING": True, "SESSION_COOKIE_SECURE": True, "HSTS_SECONDS": 0})
    assert (
        "Strict-Transport-Security" not in off.test_client().get("/healthz", base_url="https://admin.example").headers
    )
    plain = create_app({"ENGINE": engine, "TESTING": True, "SESSION_COOKIE_SECURE": False})
    assert "Strict-Transport-Security" not in plain.test_client().get("/healthz", base_url="https://a.example").headers
