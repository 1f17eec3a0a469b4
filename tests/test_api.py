"""The JSON API /api/v1 on a real database: envelope and errors, every endpoint, roles, the audit log,
bad input (4xx and nothing changed), fuzzed query strings (never 5xx), idempotent ingest, and the
OpenAPI document kept in sync with the routes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from factories import TENANT, add_processor_ab_test, make_call, turn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_auth import bearer, make_app

from ccanalytics.analytics import metrics
from ccanalytics.auth import auditlog
from ccanalytics.auth import users as auth
from ccanalytics.core import timeutil
from ccanalytics.demo import load_demo_data
from ccanalytics.ingest.load import ingest_records
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import Rubric, RulesJudge, enqueue, score_pending
from webapp.openapi import OPERATIONS, flask_operations, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app(engine):
    return make_app(engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(engine):
    return bearer(auth.create_token(engine, "admin", "ops"))


@pytest.fixture
def analyst(engine):
    return bearer(auth.create_token(engine, "analyst", "reports"))


@pytest.fixture
def service(engine):
    return bearer(auth.create_token(engine, "service", "call-processor"))


@pytest.fixture
def demo(engine):
    """The two whole days before today of demo calls (prompts v1/v2 and the running A/B test) and three
    failed calls of tire_agent@v1 yesterday, scored by the rule judge. The generated calls differ from
    date to date; the failed ones make sure, on any day, the review queue and the optimizer have work."""
    yesterday = timeutil.today() - timedelta(days=1)
    load_demo_data(engine, days=2, calls_per_day=40, end_date=yesterday)
    ingest_records(
        engine, [_failed_call(timeutil.day_start(yesterday) + timedelta(hours=10, minutes=9 * i)) for i in range(3)]
    )
    enqueue(engine)
    score_pending(engine, RulesJudge(), Rubric())
    return engine


def _failed_call(t0: datetime) -> dict:
    """A caller the bot did not hear, sent to an operator angry: the rule judge scores it low."""
    return make_call(
        started_at=t0,
        tenant=TENANT,
        seconds=60,
        caller_id=None,
        transferred_to_operator=True,
        transfer_reason="negative_emotion",
        order_created=None,
        scenario="order_status",
        turns=[
            turn("bot", "Слухаю.", t0 + timedelta(seconds=1)),
            turn("customer", "Де моє замовлення Мішлен", t0 + timedelta(seconds=4), stt_confidence=0.4),
            turn("bot", "Перепрошую, не розчула. Повторіть, будь ласка?", t0 + timedelta(seconds=8)),
            turn("customer", "Мішлен, це жах", t0 + timedelta(seconds=12), stt_confidence=0.5),
        ],
    )


def snapshot(engine) -> dict[str, int | str]:
    """Row counts of everything the API can change."""
    tables = (
        "calls",
        "call_turns",
        "customers",
        "prompt_versions",
        "prompt_activations",
        "cca_prompt_version_notes",
        "prompt_ab_tests",
        "cca_ab_tests",
        "cca_ab_variants",
        "review_items",
        "review_labels",
        "prompt_suggestions",
        "audit_log",
    )
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
        counts["active"] = conn.execute(
            sa.text(
                "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM cca_prompt_versions WHERE is_active"
            )
        ).scalar_one()
        counts["running"] = conn.execute(
            sa.text("SELECT count(*) FROM cca_ab_tests WHERE status = 'running'")
        ).scalar_one()
        counts["resolved"] = conn.execute(
            sa.text("SELECT count(*) FROM review_items WHERE status = 'resolved'")
        ).scalar_one()
    return counts


def error_of(res, status: int, code: str | None = None) -> dict:
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:500])
    body = res.get_json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def data_of(res, status: int = 200):
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:500])
    body = res.get_json()
    assert set(body) == {"data"}
    return body["data"]


# ------------------------------------------------------------------------------------------ OpenAPI
def test_openapi_document_matches_the_registered_routes(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(flask_operations(app))
    assert len(documented) == len(OPERATIONS)
    for (method, path), endpoint in flask_operations(app).items():
        op = doc["paths"][path][method]
        view = app.view_functions[endpoint]
        query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        assert query == {p.name for p in getattr(view, "_cca_params", ())}, endpoint
        assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == set(
            a for r in app.url_map.iter_rules() if r.endpoint == endpoint for a in r.arguments
        )
        assert "x-roles" in op and op["summary"]
        if method in ("post", "patch") and endpoint != "api.openapi":
            assert "requestBody" in op, endpoint
    assert doc["paths"]["/calls"]["post"]["x-roles"] == ["admin", "service"]
    assert doc["paths"]["/prompts"]["post"]["x-roles"] == ["admin"]
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_docs_openapi_json_is_current(app):
    assert (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8") == render(app), (
        "run: python -m webapp.openapi > docs/openapi.json"
    )


def test_unknown_endpoints_methods_and_huge_bodies_are_json_errors(engine, client, admin):
    error_of(client.get("/api/v1/nothing-here", headers=admin), 404)
    error_of(client.delete("/api/v1/prompts", headers=admin), 405)
    before = snapshot(engine)
    huge = b'{"name": "x", "system_prompt": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    res = client.post("/api/v1/prompts", data=huge, headers={**admin, "Content-Type": "application/json"})
    error_of(res, 413, "payload_too_large")
    assert snapshot(engine) == before


# -------------------------------------------------------------------------------------- analytics
def test_calls_list_pages_filters_and_masks_phones(demo, client, analyst):
    today = timeutil.today()
    first = data_of(client.get("/api/v1/analytics/calls?page_size=30", headers=analyst))
    assert first["page"] == 1 and first["has_more"] and first["next_page"] == 2 and len(first["calls"]) == 30
    second = data_of(client.get("/api/v1/analytics/calls?page_size=30&page=2", headers=analyst))
    ids = [c["id"] for c in first["calls"] + second["calls"]]
    assert len(set(ids)) == len(ids)
    started = [c["started_at"] for c in first["calls"] + second["calls"]]
    assert started == sorted(started, reverse=True)  # newest first, ISO strings with offset
    assert "+02:00" in started[0] or "+03:00" in started[0]
    assert all(c["caller_id"] is None or "*" in c["caller_id"] for c in first["calls"])
    transferred = data_of(
        client.get(f"/api/v1/analytics/calls?transferred=true&date_from={today - timedelta(days=1)}", headers=analyst)
    )["calls"]
    assert transferred and all(c["transferred_to_operator"] for c in transferred)
    low = data_of(client.get("/api/v1/analytics/calls?quality_below=0.5&page_size=200", headers=analyst))["calls"]
    assert all(c["quality_score"] < 0.5 for c in low)
    scen = data_of(client.get("/api/v1/analytics/calls?scenario=tire_search&scenario=order_status", headers=analyst))
    assert all("tire_search" in c["scenario"] or "order_status" in c["scenario"] for c in scen["calls"])
    empty = data_of(client.get("/api/v1/analytics/calls?date_from=2001-01-01&date_to=2001-01-31", headers=analyst))
    assert empty["calls"] == [] and empty["has_more"] is False and empty["next_page"] is None


def test_call_details_with_turns_and_tool_calls(engine, client, analyst):
    call = make_call(started_at=timeutil.day_start(timeutil.today()) + timedelta(hours=8))
    from ccanalytics.ingest.load import ingest

    ingest(engine, call)
    got = data_of(client.get(f"/api/v1/analytics/calls/{call['call_id']}", headers=analyst))
    assert got["call"]["id"] == call["call_id"] and got["call"]["caller_id"] == "+38067*****67"
    assert isinstance(got["call"]["cost_breakdown"], dict) and got["call"]["cost_breakdown"]["stt"] == 0.018
    assert [t["speaker"] for t in got["turns"]] == ["bot", "customer", "bot", "customer", "bot"]
    assert [t["tool_name"] for t in got["tool_calls"]] == [
        "get_vehicle_tire_sizes",
        "search_tires",
        "create_order_draft",
    ]
    assert got["tool_calls"][0]["tool_args"] == {"make": "Skoda", "model": "Octavia", "year": 2017}
    error_of(client.get(f"/api/v1/analytics/calls/{uuid.uuid4()}", headers=analyst), 404, "not_found")
    error_of(client.get("/api/v1/analytics/calls/not-a-uuid", headers=analyst), 400, "invalid_argument")
    error_of(client.get("/api/v1/analytics/calls/' OR 1=1 --", headers=analyst), 400)


def test_summary_per_period_equals_the_library(demo, client, analyst):
    today = timeutil.today()
    start = today - timedelta(days=1)
    got = data_of(
        client.get(f"/api/v1/analytics/summary?period=day&date_from={start}&date_to={today}", headers=analyst)
    )
    expected = json.loads(json.dumps([s.to_dict() for s in metrics.summaries(demo, "day", start, today)]))
    # yesterday is a whole day of demo calls; today may have none yet (at 00:30)
    assert got == expected and len(got) == 2 and got[0]["total_calls"] > 30
    for key in ("total_calls", "resolved_by_bot_pct", "transfer_reasons", "avg_cost_per_call_usd", "period"):
        assert key in got[0]
    month = data_of(client.get("/api/v1/analytics/summary?period=month", headers=analyst))
    assert len(month) == 1 and month[0]["period"]["date_to"] == str(today)
    quality = data_of(client.get("/api/v1/analytics/quality", headers=analyst))
    assert quality["scored_calls"] == quality["total_calls"] > 0 and "bot_greeted_properly" in quality["criteria"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/analytics/calls?date_from=2026-13-01", "not a calendar date"),
        ("/analytics/calls?date_from=yesterday-ish", "YYYY-MM-DD"),
        ("/analytics/calls?date_from=2026-11-20&date_to=2026-11-01", "before"),
        ("/analytics/calls?date_from=1990-01-01", "between"),
        ("/analytics/calls?date_from=2020-01-01&date_to=2026-01-01", "at most 400"),
        ("/analytics/calls?page=0", "between"),
        ("/analytics/calls?page=abc", "integer"),
        ("/analytics/calls?page_size=201", "between"),
        ("/analytics/calls?page=100&page_size=200", "out of range"),
        ("/analytics/calls?quality_below=1.5", "between"),
        ("/analytics/calls?quality_below=nan", "number"),
        ("/analytics/calls?transferred=maybe", "true or false"),
        ("/analytics/calls?transfered=true", "unknown query parameter"),
        ("/analytics/calls?page=1&page=2", "more than once"),
        ("/analytics/calls?scenario=%00", "NUL"),
        ("/analytics/summary?period=year", "one of day, week, month"),
        ("/analytics/summary?period=day&date_from=2024-01-01&date_to=2026-01-01", "at most 366"),
        ("/analytics/quality?date_to=2026-02-30", "calendar date"),
        ("/review?status=done", "one of new, in_review, resolved"),
        ("/review?limit=100000", "between"),
        ("/prompts/ab-tests?status=paused", "one of"),
        ("/prompts/ab-tests?source=elsewhere", "one of ccanalytics, processor"),
        ("/prompts/ab-tests?status=active", "source=processor"),
        ("/prompts/ab-tests?source=processor&status=running", "active, stopped, completed"),
        ("/prompts/ab-tests/" + "x" * 101 + "/results", "uuid or a test name"),
        ("/prompts/ab-tests/%09tab/results", "uuid or a test name"),
        ("/prompts/12abc", "uuid or a label like"),
        ("/prompts/12", "uuid or a label like"),
        ("/prompts/456beb53-7792-455c-b2ad-092f559328a", "uuid or a label like"),  # one digit short
        ("/prompts/resolve", "required"),
        ("/prompts/resolve?name=Bad%20Name", "lowercase"),
    ],
)
def test_bad_query_parameters_are_clear_400s(client, admin, query, message):
    error = error_of(client.get("/api/v1" + query, headers=admin), 400, "invalid_argument")
    assert message in error["message"]


# ---------------------------------------------------------------------------------------- prompts
def test_prompt_create_get_activate_with_audit(demo, client, admin, analyst):
    versions = data_of(client.get("/api/v1/prompts?name=tire_agent", headers=analyst))
    assert [v["label"] for v in versions] == ["tire_agent@v2", "tire_agent@v1"]
    assert data_of(client.get("/api/v1/prompts?active=true", headers=analyst))[0]["label"] == "tire_agent@v1"
    body = {"name": "tire_agent", "system_prompt": "Ти — помічниця магазину шин.", "note": "коротше"}
    created = data_of(client.post("/api/v1/prompts", json=body, headers=admin), 201)
    assert created["label"] == "tire_agent@v3" and not created["is_active"] and created["created_by"] == "token:ops"
    assert data_of(client.get("/api/v1/prompts/tire_agent@v3", headers=analyst))["id"] == created["id"]
    assert data_of(client.get(f"/api/v1/prompts/{created['id']}", headers=analyst))["note"] == "коротше"
    error_of(client.get("/api/v1/prompts/tire_agent@v99", headers=analyst), 404)
    res = client.patch(f"/api/v1/prompts/{created['id']}/activate", json={"reason": "A/B"}, headers=admin)
    activation = data_of(res)
    assert activation["to_version_id"] == created["id"] and activation["activated_by"] == "token:ops"
    assert str(prompts.active_version(demo, "tire_agent").id) == created["id"]
    before = snapshot(demo)
    error_of(client.patch(f"/api/v1/prompts/{created['id']}/activate", headers=admin), 409, "conflict")
    assert snapshot(demo) == before
    log = data_of(client.get("/api/v1/audit?object_type=prompt_version", headers=admin))
    assert [(e["action"], e["object_id"], e["actor"]) for e in log if e["actor"] != "demo"] == [
        ("prompt.activated", str(created["id"]), "token:ops"),
        ("prompt.created", str(created["id"]), "token:ops"),
    ]  # the demo's own versions and activation are audited too (actor "demo")
    assert log[0]["details"]["reason"] == "A/B"
    error_of(client.get("/api/v1/audit", headers=analyst), 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "JSON body is required"),
        (b"[1, 2]", "must be an object"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (json.dumps({"name": "x"}).encode(), "missing field system_prompt"),
        (json.dumps({"name": "x", "system_prompt": "y", "extra": 1}).encode(), "unknown field 'extra'"),
        (json.dumps({"name": 5, "system_prompt": "y"}).encode(), "name must be a string"),
        (json.dumps({"name": "x", "system_prompt": "y", "activate": "yes"}).encode(), "activate must be a boolean"),
        (
            json.dumps({"name": "x", "system_prompt": "y", "tools_config": [1]}).encode(),
            "tools_config must be an object",
        ),
        (json.dumps({"name": "Bad Name", "system_prompt": "y"}).encode(), "prompt name must be lowercase"),
        (json.dumps({"name": "x", "system_prompt": "   "}).encode(), "non-empty"),
        (json.dumps({"name": "x", "system_prompt": "a\u0000b"}).encode(), "NUL"),
    ],
)
def test_bad_prompt_bodies_change_nothing(engine, client, admin, body, message):
    before = snapshot(engine)
    error = error_of(
        client.post("/api/v1/prompts", data=body, headers={**admin, "Content-Type": "application/json"}), 400
    )
    assert message in error["message"]
    assert snapshot(engine) == before


def test_resolve_gives_the_callers_ab_variant_to_the_call_processor(demo, client, service):
    got = data_of(client.get("/api/v1/prompts/resolve?name=tire_agent&caller_id=0671234567", headers=service))
    assert got["ab_test"] == "tire_agent-v1-vs-v2" and got["variant"] in ("A", "B") and got["system_prompt"]
    again = data_of(client.get("/api/v1/prompts/resolve?name=tire_agent&caller_id=+380671234567", headers=service))
    assert again["variant"] == got["variant"]  # sticky
    error_of(client.get("/api/v1/prompts/resolve?name=nothing", headers=service), 404)
    assert data_of(client.get("/api/v1/prompts?name=tire_agent", headers=service))
    error_of(client.post("/api/v1/prompts", json={"name": "x", "system_prompt": "y"}, headers=service), 403)
    error_of(client.get("/api/v1/analytics/calls", headers=service), 403)


# -------------------------------------------------------------------------------------- A/B tests
def test_ab_test_lifecycle_with_conflicts_and_audit(demo, client, admin, analyst):
    tests = data_of(client.get("/api/v1/prompts/ab-tests?status=running", headers=analyst))
    assert [t["test_name"] for t in tests] == ["tire_agent-v1-vs-v2"]
    demo_id = tests[0]["id"]
    results = data_of(client.get(f"/api/v1/prompts/ab-tests/{demo_id}/results", headers=analyst))
    assert {v["variant"] for v in results["variants"]} == {"A", "B"} and "B" in results["recommendations"]
    json.dumps(results, allow_nan=False)  # strictly valid JSON
    v3 = data_of(
        client.post("/api/v1/prompts", json={"name": "tire_agent", "system_prompt": "Коротко."}, headers=admin), 201
    )
    body = {"test_name": "v2-vs-v3", "versions": ["tire_agent@v2", v3["id"]], "description": "коротші відповіді"}
    created = data_of(client.post("/api/v1/prompts/ab-tests", json=body, headers=admin), 201)
    assert created["status"] == "draft" and [v["label"] for v in created["variants"]] == [
        "tire_agent@v2",
        "tire_agent@v3",
    ]
    before = snapshot(demo)
    error_of(client.post("/api/v1/prompts/ab-tests", json=body, headers=admin), 409)
    error_of(client.get(f"/api/v1/prompts/ab-tests/{created['id']}/results", headers=analyst), 409)
    error_of(client.post(f"/api/v1/prompts/ab-tests/{created['id']}/start", headers=admin), 409)  # demo test runs
    error_of(client.post(f"/api/v1/prompts/ab-tests/{demo_id}/stop", json={"decision": "ship_it"}, headers=admin), 400)
    error_of(client.post(f"/api/v1/prompts/ab-tests/{demo_id}/stop", json={}, headers=admin), 400)
    error_of(client.post("/api/v1/prompts/ab-tests/999999/start", headers=admin), 404)
    bad = {**body, "test_name": "other", "versions": ["tire_agent@v2"]}
    error_of(client.post("/api/v1/prompts/ab-tests", json=bad, headers=admin), 400)
    bad = {**body, "test_name": "other", "versions": ["tire_agent@v2", "tire_agent@v2"]}
    error_of(client.post("/api/v1/prompts/ab-tests", json=bad, headers=admin), 400)
    bad = {**body, "test_name": "other", "versions": ["tire_agent@v2", True]}
    error_of(client.post("/api/v1/prompts/ab-tests", json=bad, headers=admin), 400)
    assert snapshot(demo) == before
    stopped = data_of(
        client.post(
            f"/api/v1/prompts/ab-tests/{demo_id}/stop", json={"decision": "keep_a", "note": "мало даних"}, headers=admin
        )
    )
    assert stopped["status"] == "stopped" and stopped["decision"] == "keep_a" and stopped["stopped_by"] == "token:ops"
    error_of(client.post(f"/api/v1/prompts/ab-tests/{demo_id}/stop", json={"decision": "keep_a"}, headers=admin), 409)
    started = data_of(client.post(f"/api/v1/prompts/ab-tests/{created['id']}/start", headers=admin))
    assert started["status"] == "running"
    actions = [e.action for e in auditlog.audit_entries(demo, object_type="ab_test")]
    assert actions == ["ab_test.started", "ab_test.stopped", "ab_test.created"]


def test_ids_are_uuids_and_tests_are_found_by_id_or_name(engine, client, admin, analyst):
    v1 = prompts.create_version(engine, "greeting", "Привіт", author="test")
    v2 = prompts.create_version(engine, "greeting", "Добрий день", author="test")
    got = data_of(client.get(f"/api/v1/prompts/{v1.id}", headers=analyst))
    assert got["id"] == str(v1.id) and uuid.UUID(got["id"]) == v1.id
    assert data_of(client.get(f"/api/v1/prompts/{str(v1.id).upper()}", headers=analyst))["label"] == "greeting@v1"
    error_of(client.get(f"/api/v1/prompts/{uuid.uuid4()}", headers=analyst), 404, "not_found")
    before = snapshot(engine)
    for versions in ([v1.id.int, str(v2.id)], [1, 2], ["greeting@v1", None]):
        error = error_of(
            client.post("/api/v1/prompts/ab-tests", json={"test_name": "t", "versions": versions}, headers=admin), 400
        )
        assert "uuid" in error["message"]
    body = {"test_name": str(uuid.uuid4()), "versions": [str(v1.id), str(v2.id)]}
    assert "uuid" in error_of(client.post("/api/v1/prompts/ab-tests", json=body, headers=admin), 400)["message"]
    missing = {"test_name": "t", "versions": [str(v1.id), str(uuid.uuid4())]}
    error_of(client.post("/api/v1/prompts/ab-tests", json=missing, headers=admin), 404)
    error_of(client.patch("/api/v1/prompts/7/activate", headers=admin), 400, "invalid_argument")
    error_of(client.patch(f"/api/v1/prompts/{uuid.uuid4()}/activate", headers=admin), 404)
    assert snapshot(engine) == before
    body = {"test_name": "greet 2026", "versions": [str(v1.id), "greeting@v2"]}
    created = data_of(client.post("/api/v1/prompts/ab-tests", json=body, headers=admin), 201)
    assert uuid.UUID(created["id"]) and [v["version_id"] for v in created["variants"]] == [str(v1.id), str(v2.id)]
    started = data_of(client.post("/api/v1/prompts/ab-tests/greet%202026/start", headers=admin))  # by name
    assert started["id"] == created["id"] and started["status"] == "running"
    results = data_of(client.get(f"/api/v1/prompts/ab-tests/{created['id']}/results", headers=analyst))
    assert results["test"]["id"] == created["id"]
    error_of(
        client.post(f"/api/v1/prompts/ab-tests/{uuid.uuid4()}/stop", json={"decision": "keep_a"}, headers=admin), 404
    )
    error_of(client.post("/api/v1/prompts/ab-tests/123/stop", json={"decision": "keep_a"}, headers=admin), 404)
    entry = auditlog.audit_entries(engine, action="ab_test.created")[0]
    assert entry.object_id == created["id"] and entry.details["versions"] == [str(v1.id), str(v2.id)]


def test_the_processors_own_ab_tests_are_listed_read_only(engine, client, admin, analyst, service):
    """GET /prompts/ab-tests?source=processor: the call processor's tests as it stored them (rows of its
    prompt_ab_tests), no per-call results, and the reason why; they cannot be started, stopped or read
    for results here."""
    v1 = prompts.create_version(engine, "greeting", "Привіт", author="test")
    v2 = prompts.create_version(engine, "greeting", "Добрий день", author="test")
    day = datetime(2026, 9, 1, tzinfo=UTC)
    with engine.begin() as conn:
        live = add_processor_ab_test(
            conn, "proc-live", v1.id, v2.id, started_at=day + timedelta(days=1), calls_a=41, calls_b=39, quality_a=0.8
        )
        quoted = add_processor_ab_test(conn, "proc-quoted", v1.id, v2.id, status=None, started_at=day)
    assert data_of(client.get("/api/v1/prompts/ab-tests", headers=analyst)) == []  # ccanalytics's: none
    theirs = data_of(client.get("/api/v1/prompts/ab-tests?source=processor", headers=analyst))
    assert [t["id"] for t in theirs] == [str(live), str(quoted)]
    first = theirs[0]
    assert first["source"] == "processor" and first["test_name"] == "proc-live" and first["status"] == "active"
    assert (first["calls_a"], first["calls_b"], first["quality_a"], first["quality_b"]) == (41, 39, 0.8, None)
    assert (first["label_a"], first["label_b"], first["prompt_name"]) == ("greeting@v1", "greeting@v2", "greeting")
    assert first["variant_a_id"] == str(v1.id) and first["per_call_results"] is None
    expected = "per-call results cannot be computed because the processor does not record the variant on the call"
    assert all(t["results_note"] == expected for t in theirs)
    assert (theirs[1]["status"], theirs[1]["status_raw"]) == ("active", "'active'")
    assert data_of(client.get("/api/v1/prompts/ab-tests?source=processor&status=completed", headers=analyst)) == []
    assert len(data_of(client.get("/api/v1/prompts/ab-tests?source=processor", headers=service))) == 2
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert set(first) == set(schemas["ProcessorABTest"]["properties"])
    # not ccanalytics's tests: a 409 that says why, and nothing changes
    before = snapshot(engine)
    error = error_of(client.get(f"/api/v1/prompts/ab-tests/{live}/results", headers=analyst), 409, "conflict")
    assert expected in error["message"] and error["details"] == {"source": "processor", "id": str(live)}
    error_of(client.post(f"/api/v1/prompts/ab-tests/{live}/start", headers=admin), 409)
    error_of(client.post("/api/v1/prompts/ab-tests/proc-live/stop", json={"decision": "keep_a"}, headers=admin), 409)
    assert snapshot(engine) == before
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT calls_a, calls_b, quality_b, status FROM prompt_ab_tests WHERE id = :i"), {"i": live}
        )
        assert row.one() == (41, 39, 0.0, "active")


# ----------------------------------------------------------------------------------------- review
def test_review_queue_take_and_resolve(demo, client, admin, analyst):
    queue = data_of(client.get("/api/v1/review?status=new&limit=5", headers=analyst))
    assert queue["counts"]["new"] > 0 and 0 < len(queue["items"]) <= 5
    call_id = queue["items"][0]["call_id"]
    taken = data_of(client.post(f"/api/v1/review/{call_id}/take", headers=admin))
    assert taken == {"call_id": call_id, "status": "in_review", "assigned_to": "token:ops"}
    before = snapshot(demo)
    error_of(client.post(f"/api/v1/review/{call_id}/resolve", json={"verdicts": {"nonsense": 1}}, headers=admin), 400)
    error_of(
        client.post(f"/api/v1/review/{call_id}/resolve", json={"verdicts": {"bot_was_concise": 2}}, headers=admin), 400
    )
    error_of(client.post(f"/api/v1/review/{call_id}/resolve", json={"verdicts": []}, headers=admin), 400)
    error_of(client.post(f"/api/v1/review/{uuid.uuid4()}/resolve", json={"verdicts": {}}, headers=admin), 404)
    error_of(client.post("/api/v1/review/123/resolve", json={"verdicts": {}}, headers=admin), 400)
    assert snapshot(demo) == before
    verdicts = {"bot_was_concise": 0.0, "customer_seemed_satisfied": None}
    body = {"verdicts": verdicts, "comment": "бот говорив задовго"}
    resolved = data_of(client.post(f"/api/v1/review/{call_id}/resolve", json=body, headers=admin))
    assert resolved == {"call_id": call_id, "status": "resolved", "labels_stored": 2}
    entry = auditlog.audit_entries(demo, action="review.resolved")[0]
    assert entry.object_id == call_id and entry.details["verdicts"] == verdicts and entry.actor == "token:ops"
    counts = data_of(client.get("/api/v1/review", headers=analyst))["counts"]
    assert counts["resolved"] == 1


def test_optimizer_suggestion_decided_through_the_api(demo, client, admin, analyst):
    today = timeutil.today()
    s = optimizer.propose(demo, "tire_agent", today - timedelta(days=1), today)
    listed = data_of(client.get("/api/v1/prompts/suggestions?status=proposed", headers=analyst))
    assert [x["id"] for x in listed] == [s.id]
    decided = data_of(client.post(f"/api/v1/prompts/suggestions/{s.id}/decide", json={"approve": True}, headers=admin))
    assert decided["status"] == "approved" and decided["new_version_id"]
    error_of(client.post(f"/api/v1/prompts/suggestions/{s.id}/decide", json={"approve": False}, headers=admin), 409)
    error_of(client.post("/api/v1/prompts/suggestions/424242/decide", json={"approve": True}, headers=admin), 404)
    assert auditlog.audit_entries(demo, action="suggestion.approved")[0].object_id == str(s.id)


# ----------------------------------------------------------------------------------------- ingest
def test_ingest_via_api_is_idempotent_and_atomic(engine, client, service):
    call = make_call()
    first = data_of(client.post("/api/v1/calls", json=call, headers=service))
    assert first["inserted"] == 1 and first["turns"] == 5
    after_first = snapshot(engine)
    again = data_of(client.post("/api/v1/calls", json=call, headers=service))
    assert again["inserted"] == 0 and again["unchanged"] == 1
    assert snapshot(engine) == after_first
    batch = [make_call(), make_call()]
    assert data_of(client.post("/api/v1/calls", json=batch, headers=service))["inserted"] == 2
    # one bad record rejects the whole batch, naming it
    before = snapshot(engine)
    bad = [make_call(), make_call(turns=[{"speaker": "robot", "text": "x", "timestamp": "2026-11-20T08:00:05Z"}])]
    error = error_of(client.post("/api/v1/calls", json=bad, headers=service), 422, "invalid_call_log")
    assert error["details"][0]["record"] == 1 and "turns.0.speaker" in error["message"]
    changed = {**call, "scenario": "consultation"}
    error_of(client.post("/api/v1/calls?on_conflict=error", json=changed, headers=service), 422)
    error_of(client.post("/api/v1/calls", data=b"{oops", headers=service), 400, "invalid_argument")
    error_of(client.post("/api/v1/calls", json="a string", headers=service), 400)
    error_of(client.post("/api/v1/calls?on_conflict=merge", json=call, headers=service), 400)
    assert snapshot(engine) == before


# ----------------------------------------------------------------------------------------- fuzzing
KEYS = st.sampled_from(
    [
        "date_from",
        "date_to",
        "scenario",
        "transferred",
        "quality_below",
        "quality_above",
        "page",
        "page_size",
        "period",
        "status",
        "limit",
        "name",
        "active",
        "prompt_version",
        "x",
    ]
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.dates().map(str),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["true", "false", "day", "week", "month", "new", "running", "9999-12-31", "0001-01-01", "%00"]),
)
ENDPOINTS = st.sampled_from(
    ["/analytics/calls", "/analytics/summary", "/analytics/quality", "/review", "/prompts", "/prompts/ab-tests"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=ENDPOINTS, params=st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_fuzzed_query_strings_never_cause_server_errors(client, admin, endpoint, params):
    res = client.get("/api/v1" + endpoint, query_string=params, headers=admin)
    assert res.status_code in (200, 400), (endpoint, params, res.status_code, res.get_data(as_text=True)[:300])
    body = res.get_json()
    assert ("data" in body) if res.status_code == 200 else (body["error"]["code"] == "invalid_argument")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# (Hypothesis may try string literals of the code under test: the routes' own words are not ids)
@given(
    segment=st.text(min_size=1, max_size=40).filter(
        lambda s: "/" not in s and s not in (".", "..", "resolve", "ab-tests", "suggestions")
    )
)
def test_fuzzed_path_ids_never_cause_server_errors(client, admin, segment):
    for template in ("/analytics/calls/{}", "/prompts/{}", "/prompts/ab-tests/{}/results"):
        res = client.get("/api/v1" + template.format(segment), headers=admin)
        assert res.status_code in (400, 404, 409), (template, segment, res.status_code)


def test_documented_shapes_match_the_answers(demo, app, client, admin):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]

    def keys(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    calls = data_of(client.get("/api/v1/analytics/calls?page_size=1", headers=admin))
    assert set(calls) == keys("CallPage") and set(calls["calls"][0]) == keys("Call")
    detail = data_of(client.get(f"/api/v1/analytics/calls/{calls['calls'][0]['id']}", headers=admin))
    assert set(detail["call"]) == set(schemas["CallDetail"]["properties"]["call"]["properties"])
    assert set(detail["turns"][0]) == keys("Turn") and set(detail["tool_calls"][0]) == keys("ToolCall")
    assert set(data_of(client.get("/api/v1/analytics/summary", headers=admin))[0]) == keys("Summary")
    assert set(data_of(client.get("/api/v1/analytics/quality", headers=admin))) == keys("QualityReport")
    assert set(data_of(client.get("/api/v1/prompts", headers=admin))[0]) == keys("PromptVersion")
    resolved = data_of(client.get("/api/v1/prompts/resolve?name=tire_agent", headers=admin))
    assert set(resolved) == keys("ResolvedPrompt")
    tests = data_of(client.get("/api/v1/prompts/ab-tests", headers=admin))
    assert set(tests[0]) == keys("ABTest")
    results = data_of(client.get(f"/api/v1/prompts/ab-tests/{tests[0]['id']}/results", headers=admin))
    assert set(results) == keys("ABResults")
    queue = data_of(client.get("/api/v1/review", headers=admin))
    assert set(queue) == keys("ReviewQueue")
    assert set(queue["items"][0]) == set(schemas["ReviewQueue"]["properties"]["items"]["items"]["properties"])
    call = make_call(tenant=TENANT)  # the demo has several tenants: a call log names its own
    assert set(data_of(client.post("/api/v1/calls", json=call, headers=admin))) == keys("IngestResult")
    assert set(data_of(client.get("/api/v1/me", headers=admin))) == keys("Principal")
    auditlog.audit(demo, "tester", "test.done", "test")
    assert set(data_of(client.get("/api/v1/audit", headers=admin))[0]) == keys("AuditEntry")
