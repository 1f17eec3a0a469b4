"""Bad input to the admin and the API is a 400/405/422 with a Russian message on pages and a JSON error
under /api/ — never a 500 (the inputs a fuzz run and a manual probe found, issue 19)."""

from __future__ import annotations

import json
import re

import pytest
from test_auth import csrf_of, logged_in

from ccanalytics.prompts import versions as prompts
from webapp import create_app

CYRILLIC = re.compile(r"[А-Яа-яЁё]")
NUL_JSON = json.dumps({"key": "a\u0000b"})  # the JSON text carries the escape \u0000


@pytest.fixture
def admin(engine):
    app = create_app({"ENGINE": engine, "TESTING": True})
    return logged_in(app, engine, "olena", "admin")


PAGES = [
    "/calls?to=9999-12-31",
    "/calls?from=0001-01-01",
    "/calls?from=2026-13-45",
    "/calls?to=not-a-date",
    "/calls.csv?to=9999-12-31",
    "/calls.csv?from=0001-01-01",
    "/calls?q=%00",
    "/calls?q=a%00b",
    "/calls?scenario=tire%00search",
    "/calls?prompt_version=tire_agent%00%40v1",
    "/calls.csv?q=%00",
    "/calls.csv?scenario=%00",
    "/calls.csv?prompt_version=%00",
    "/calls?quality_below=abc",
    "/calls?quality_below=nan",
    "/calls?transferred=maybe",
    "/calls?sort=nope",
    "/calls?review=nope",
    "/calls?after=garbage",
    "/calls?q=" + "x" * 300,
]


@pytest.mark.parametrize("path", PAGES)
def test_bad_journal_filters_are_a_russian_400_page(admin, path):
    res = admin.get(path)
    assert res.status_code == 400, (path, res.status_code)
    assert res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert "Ошибка в запросе" in html and CYRILLIC.search(html.split('role="alert"')[1][:300]), html[-600:]


API = [
    ("GET", "/api/v1/analytics/calls?date_to=9999-12-31", None, 400),
    ("GET", "/api/v1/analytics/calls?date_from=0001-01-01", None, 400),
    ("GET", "/api/v1/analytics/calls?scenario=%00", None, 400),
    ("GET", "/api/v1/analytics/calls?prompt_version=%00", None, 400),
    ("GET", "/api/v1/analytics/summary?date_to=9999-12-31", None, 400),
    ("POST", "/api/v1/prompts", {"name": "p", "system_prompt": "x", "tools_config": {"a": "\u0000"}}, 400),
    ("POST", "/api/v1/prompts", {"name": "p", "system_prompt": "x", "metadata": {"\u0000": 1}}, 400),
    ("POST", "/api/v1/prompts", {"name": "p", "system_prompt": "x", "metadata": {"a": ["ok", {"b": "\u0000"}]}}, 400),
    ("PATCH", "/api/v1/prompts/tire_agent@v1/activate", "null", 400),
    ("PATCH", "/api/v1/prompts/tire_agent@v1/activate", "[]", 400),
    ("POST", "/api/v1/prompts/ab-tests", {"test_name": "t\u0000", "versions": ["a@v1", "a@v2"]}, 400),
    ("TRACE", "/api/v1/prompts", None, 405),
    ("TRACE", "/calls", None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), API)
def test_bad_api_input_is_a_json_error(admin, engine, method, path, body, status):
    prompts.create_version(engine, "tire_agent", "Добрий день!", author="test")
    data = body if isinstance(body, str) else (json.dumps(body) if body is not None else None)
    res = admin.open(
        path, method=method, data=data, content_type="application/json", headers={"X-CSRF-Token": csrf_of(admin)}
    )
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:300])
    if status == 405:
        assert "GET" in res.headers["Allow"] and "TRACE" not in res.headers["Allow"]
    if path.startswith("/api/"):
        assert res.get_json()["error"]["code"] and res.get_json()["error"]["message"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM prompt_versions").scalar_one() == 1


@pytest.mark.parametrize("field", ["tools_config", "metadata"])
def test_the_prompt_editor_refuses_nul_in_json_with_a_russian_message(admin, engine, field):
    form = {"name": "tire_agent", "system_prompt": "Добрий день!", field: NUL_JSON, "csrf_token": csrf_of(admin)}
    res = admin.post("/prompts/new", data=form)
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    assert "недопустимый символ" in html
    assert "a\\u0000b" in html  # what was typed is kept in the form
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM prompt_versions").scalar_one() == 0
