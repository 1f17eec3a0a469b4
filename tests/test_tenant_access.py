"""Users and API tokens limited to tenants, and the tenant scope of the admin and the JSON API: two
tenants with different calls; a reader limited to one sees only its calls in the journal, the CSV, the
call page, the API's lists, summary, quality and review queue, gets 403 for the other tenant and 404 for
its calls; ``?tenant=`` gives the library's figure for that tenant; an unknown slug is a 400; the
header's selector changes what the admin shows; the CLI's user and token commands write audit rows.
Dates are relative to today (ccanalytics.core.timeutil)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from factories import TENANT, add_tenant, make_call, turn
from test_auth import PASSWORD, bearer, cli, csrf_of, login

from ccanalytics.analytics import journal, metrics
from ccanalytics.analytics.store import Store
from ccanalytics.auth import auditlog
from ccanalytics.auth import users as auth
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality import Rubric, RulesJudge, enqueue, review, score_pending
from ccanalytics.quality.report import quality_report
from webapp import create_app
from webapp.apiparams import clean

OTHER = "kolo"  # the second tenant; TENANT ("shop") is the first
OTHER_NAME = "ПроКолесо"
SHARED_PHONE = "+380671112233"  # a customer of both tenants


def _good(t0, tenant: str, phone: str) -> dict:
    return make_call(started_at=t0, tenant=tenant, caller_id=phone)


def _failed(t0, tenant: str, phone: str | None) -> dict:
    """A caller the bot did not hear, sent to an operator: the rule judge scores it low (review queue)."""
    return make_call(
        started_at=t0,
        tenant=tenant,
        seconds=60,
        caller_id=phone,
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


@pytest.fixture
def day():
    return timeutil.today() - timedelta(days=1)


@pytest.fixture
def two(engine, day):
    """Two tenants with different calls yesterday, scored (the failed ones wait for review): shop has
    three calls (one failed), kolo two (one failed); a phone called both. Returns {slug: [call ids]}."""
    with engine.begin() as conn:
        add_tenant(conn, OTHER, OTHER_NAME)
    t0 = timeutil.day_start(day) + timedelta(hours=10)
    made = {
        TENANT: [
            _good(t0, TENANT, SHARED_PHONE),
            _good(t0 + timedelta(minutes=5), TENANT, "+380501234567"),
            _failed(t0 + timedelta(minutes=10), TENANT, "+380509999999"),
        ],
        OTHER: [
            _good(t0 + timedelta(minutes=15), OTHER, SHARED_PHONE),
            _failed(t0 + timedelta(minutes=20), OTHER, "+380638888888"),
        ],
    }
    ingest_records(engine, [c for calls in made.values() for c in calls])
    enqueue(engine)
    score_pending(engine, RulesJudge(), Rubric())
    queued = {r.call_id for r in review.list_items(engine)}
    assert any(c["call_id"] in queued for c in made[TENANT]) and any(c["call_id"] in queued for c in made[OTHER])
    return {slug: [c["call_id"] for c in calls] for slug, calls in made.items()}


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


def browser(app, engine, username: str, role: str, tenants=None):
    auth.add_user(engine, username, PASSWORD, role, tenants=tenants)
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def token(engine, role: str, name: str, tenants=None) -> dict[str, str]:
    return bearer(auth.create_token(engine, role, name, tenants=tenants))


def data_of(res, status: int = 200):
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:500])
    return res.get_json()["data"]


def error_of(res, status: int, code: str) -> dict:
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:500])
    body = res.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]


def as_json(value):
    """What the API makes of a library result."""
    return json.loads(json.dumps(clean(value)))


def text(res) -> str:
    return res.get_data(as_text=True)


def ids_on(page: str) -> set[str]:
    return set(re.findall(r'href="/calls/([0-9a-f-]{36})"', page))


def queued(engine, slug: str) -> str:
    """A call of ``slug`` waiting in the review queue."""
    return review.list_items(engine, status="new", tenant=slug)[0].call_id


# ------------------------------------------------------------------------------------------ library
def test_users_and_tokens_carry_their_tenants_and_changes_are_audited(engine):
    with engine.begin() as conn:
        add_tenant(conn, OTHER, OTHER_NAME)
    user = auth.add_user(engine, "ivan", PASSWORD, "analyst", tenants=["KOLO", "kolo"], actor="olena")
    assert user.tenants == (OTHER,) and user.to_dict()["tenants"] == [OTHER]
    assert auth.add_user(engine, "olena", PASSWORD, "admin").tenants is None
    created = auditlog.audit_entries(engine, action="user.created", object_id="ivan")[0]
    assert created.actor == "olena" and created.details == {"role": "analyst", "tenants": [OTHER]}

    changed = auth.set_user_tenants(engine, "ivan", [TENANT, OTHER], actor="olena")
    assert changed.tenants == (TENANT, OTHER) and auth.get_user(engine, user.id).tenants == (TENANT, OTHER)
    cleared = auth.set_user_tenants(engine, "ivan", None, actor="olena")
    assert cleared.tenants is None
    history = auditlog.audit_entries(engine, action="user.tenants_changed")
    assert [e.details for e in history] == [
        {"from": [TENANT, OTHER], "to": None},
        {"from": [OTHER], "to": [TENANT, OTHER]},
    ]
    assert {u.username: u.tenants for u in auth.list_users(engine)} == {"ivan": None, "olena": None}

    # refused changes write nothing: neither the change nor an audit row
    before = len(auditlog.audit_entries(engine))
    with pytest.raises(InvalidArgument, match="unknown tenant 'nope'"):
        auth.set_user_tenants(engine, "ivan", ["nope"])
    with pytest.raises(InvalidArgument, match="at least one tenant"):
        auth.set_user_tenants(engine, "ivan", [])
    with pytest.raises(NotFound):
        auth.set_user_tenants(engine, "nobody", [OTHER])
    with pytest.raises(InvalidArgument, match="unknown tenant"):
        auth.add_user(engine, "petro", PASSWORD, "analyst", tenants=["nope"])
    with pytest.raises(InvalidArgument, match="unknown tenant"):
        auth.create_token(engine, "analyst", "bi", tenants="nope")
    assert len(auditlog.audit_entries(engine)) == before and auth.get_user_by_name(engine, "petro") is None
    assert auth.get_user_by_name(engine, "ivan").tenants is None

    secret = auth.create_token(engine, "analyst", "bi", tenants=OTHER, actor="olena")
    assert auth.check_token(engine, secret).tenants == (OTHER,)
    assert [t.to_dict()["tenants"] for t in auth.list_tokens(engine)] == [[OTHER]]
    entry = auditlog.audit_entries(engine, action="token.created")[0]
    assert entry.details["tenants"] == [OTHER] and entry.actor == "olena"
    with engine.connect() as conn:  # the database refuses an empty list too
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE users SET tenants = '{}' WHERE username = 'ivan'"))


def test_journal_and_review_queue_take_a_tenant_scope(engine, two, day):
    every = journal.search(engine, date_from=day, date_to=day, limit=50)
    assert {r["id"] for r in every.rows} == set(two[TENANT] + two[OTHER])
    for slug in (TENANT, OTHER):
        page = journal.search(engine, date_from=day, date_to=day, tenant=slug)
        assert {r["id"] for r in page.rows} == set(two[slug]) and {r["tenant"] for r in page.rows} == {slug}
        found = journal.search(engine, date_from=day, date_to=day, tenant=(slug,), text="Мішлен")
        assert len(found.rows) == 1 and found.rows[0]["id"] in two[slug]
        assert journal.call_detail(engine, two[slug][0], tenant=slug)["call"]["tenant"] == slug
        items = review.list_items(engine, tenant=slug)
        assert items and {i.call_id for i in items} <= set(two[slug])
        assert sum(review.counts(engine, tenant=slug).values()) == len(items)
    assert sum(review.counts(engine).values()) == len(review.list_items(engine))
    with pytest.raises(NotFound):
        journal.call_detail(engine, two[TENANT][0], tenant=OTHER)
    with pytest.raises(InvalidArgument, match="unknown tenant 'nope'"):
        journal.search(engine, tenant="nope")
    # the same phone is a customer of each tenant: the other calls of a call are its tenant's only
    detail = journal.call_detail(engine, two[OTHER][0])
    assert detail["other_calls"] == [] and "*" in detail["call"]["caller"]

    theirs = queued(engine, TENANT)
    with pytest.raises(NotFound):
        review.take(engine, theirs, "petro", tenant=OTHER)
    with pytest.raises(NotFound):
        review.resolve(engine, theirs, "petro", {"bot_was_concise": 1.0}, tenant=OTHER)
    assert review.list_items(engine, status="new", tenant=TENANT)[0].call_id == theirs  # untouched
    mine = queued(engine, OTHER)
    review.take(engine, mine, "petro", tenant=OTHER)
    assert review.resolve(engine, mine, "petro", {"bot_was_concise": 1.0}, tenant=[OTHER]) == 1


# ---------------------------------------------------------------------------------------------- API
def test_api_reader_limited_to_a_tenant(engine, two, day, app):
    client = app.test_client()
    limited = token(engine, "analyst", "kolo-bi", tenants=[OTHER])
    period = f"date_from={day}&date_to={day}"

    me = data_of(client.get("/api/v1/me", headers=limited))
    assert me["tenants"] == [OTHER] and me["role"] == "analyst"
    assert data_of(client.get("/api/v1/tenants", headers=limited)) == [{"slug": OTHER, "name": OTHER_NAME}]

    calls = data_of(client.get(f"/api/v1/analytics/calls?{period}", headers=limited))["calls"]
    assert {c["id"] for c in calls} == set(two[OTHER])
    assert all("*" in c["caller_id"] for c in calls) and SHARED_PHONE not in json.dumps(calls)
    assert data_of(client.get(f"/api/v1/analytics/calls/{two[OTHER][0]}", headers=limited))["call"]["tenant"] == OTHER
    error_of(client.get(f"/api/v1/analytics/calls/{two[TENANT][0]}", headers=limited), 404, "not_found")

    summary = data_of(client.get(f"/api/v1/analytics/summary?{period}", headers=limited))
    assert summary == as_json([s.to_dict() for s in metrics.summaries(engine, "day", day, day, tenant=OTHER)])
    assert summary[0]["total_calls"] == 2
    quality = data_of(client.get(f"/api/v1/analytics/quality?{period}", headers=limited))
    assert quality == as_json(quality_report(engine, day, day, tenant=OTHER))
    assert quality["total_calls"] == 2
    queue = data_of(client.get("/api/v1/review", headers=limited))
    assert queue["counts"] == review.counts(engine, tenant=OTHER)
    assert queue["items"] and {i["call_id"] for i in queue["items"]} <= set(two[OTHER])

    # asking for the other tenant is a 403 on every endpoint, an unknown one a 400
    for path in (
        f"/api/v1/analytics/calls?{period}",
        f"/api/v1/analytics/calls/{two[OTHER][0]}?",
        f"/api/v1/analytics/summary?{period}",
        f"/api/v1/analytics/quality?{period}",
        "/api/v1/review?",
    ):
        join = "&" if not path.endswith("?") else ""
        error = error_of(client.get(f"{path}{join}tenant={TENANT}", headers=limited), 403, "forbidden")
        assert TENANT in error["message"]
        error = error_of(client.get(f"{path}{join}tenant=nope", headers=limited), 400, "invalid_argument")
        assert "unknown tenant 'nope'" in error["message"]
        assert client.get(f"{path}{join}tenant={OTHER}", headers=limited).status_code == 200


def test_api_tenant_parameter_gives_the_library_figures(engine, two, day, app):
    client = app.test_client()
    admin = token(engine, "admin", "ops")
    period = f"date_from={day}&date_to={day}"
    store = Store(engine)
    assert len(data_of(client.get("/api/v1/tenants", headers=admin))) == 2
    assert data_of(client.get("/api/v1/me", headers=admin))["tenants"] is None
    for asked, scope in (
        (f"tenant={TENANT}", TENANT),
        (f"tenant={OTHER}", OTHER),
        (f"tenant={TENANT}&tenant={OTHER}", (TENANT, OTHER)),
        ("", None),
    ):
        query = f"{period}&{asked}" if asked else period
        calls = data_of(client.get(f"/api/v1/analytics/calls?{query}", headers=admin))["calls"]
        assert {c["id"] for c in calls} == set(store.calls(day, day, tenant=scope)["id"].to_list())
        summary = data_of(client.get(f"/api/v1/analytics/summary?{query}", headers=admin))
        assert summary == as_json([s.to_dict() for s in metrics.summaries(engine, "day", day, day, tenant=scope)])
        quality = data_of(client.get(f"/api/v1/analytics/quality?{query}", headers=admin))
        assert quality == as_json(quality_report(engine, day, day, tenant=scope))
        queue = data_of(client.get(f"/api/v1/review?{asked}", headers=admin))
        assert queue["counts"] == review.counts(engine, tenant=scope)
        assert [i["call_id"] for i in queue["items"]] == [i.call_id for i in review.list_items(engine, tenant=scope)]
    assert len(calls) == 5  # all: both tenants
    error_of(client.get(f"/api/v1/analytics/calls/{two[TENANT][0]}?tenant={OTHER}", headers=admin), 404, "not_found")
    for path in ("/api/v1/analytics/calls", "/api/v1/analytics/summary", "/api/v1/analytics/quality", "/api/v1/review"):
        error_of(client.get(f"{path}?tenant=nope", headers=admin), 400, "invalid_argument")
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in (
        "/analytics/calls",
        "/analytics/calls/{call_id}",
        "/analytics/summary",
        "/analytics/quality",
        "/review",
    ):
        assert "tenant" in {p["name"] for p in spec["paths"][path]["get"]["parameters"]}, path
    assert spec["paths"]["/tenants"]["get"]["x-roles"] == ["admin", "analyst"]


def test_api_review_actions_of_another_tenant_are_404(engine, two, app):
    client = app.test_client()
    limited = token(engine, "admin", "kolo-ops", tenants=[OTHER])
    theirs, mine = queued(engine, TENANT), queued(engine, OTHER)
    before = auditlog.audit_entries(engine, limit=1000)
    error_of(client.post(f"/api/v1/review/{theirs}/take", headers=limited), 404, "not_found")
    body = {"verdicts": {"bot_was_concise": 1.0}, "comment": None}
    error_of(client.post(f"/api/v1/review/{theirs}/resolve", json=body, headers=limited), 404, "not_found")
    assert auditlog.audit_entries(engine, limit=1000) == before
    assert review.list_items(engine, status="new", tenant=TENANT)[0].call_id == theirs
    assert data_of(client.post(f"/api/v1/review/{mine}/take", headers=limited))["status"] == "in_review"
    assert data_of(client.post(f"/api/v1/review/{mine}/resolve", json=body, headers=limited))["labels_stored"] == 1


def test_a_service_token_limited_to_a_tenant_ingests_only_its_calls(engine, two, app, day):
    client = app.test_client()
    service = token(engine, "service", "kolo-processor", tenants=[OTHER])
    t0 = timeutil.day_start(day) + timedelta(hours=15)
    error_of(client.post("/api/v1/calls", json=_good(t0, TENANT, SHARED_PHONE), headers=service), 403, "forbidden")
    error_of(client.post("/api/v1/calls", json=[_good(t0, OTHER, None), {"x": 1}], headers=service), 403, "forbidden")
    assert len(Store(engine).calls(day, day)) == 5  # nothing written
    assert data_of(client.post("/api/v1/calls", json=_good(t0, OTHER, None), headers=service))["inserted"] == 1


# -------------------------------------------------------------------------------------------- admin
def test_admin_analyst_limited_to_a_tenant(engine, two, day, app):
    ivan = browser(app, engine, "ivan", "analyst", tenants=[OTHER])
    period = f"from={day}&to={day}"
    page = text(ivan.get(f"/calls?{period}"))
    assert ids_on(page) == set(two[OTHER]) and f"Сеть «{OTHER_NAME}»" in page
    assert SHARED_PHONE not in page and "+380638888888" not in page  # phones stay masked
    assert "Сеть: <b>ПроКолесо</b>" in page and 'name="tenant"' not in page  # one tenant: its name, no select

    res = ivan.get(f"/calls.csv?{period}")
    rows = list(csv.DictReader(io.StringIO(text(res).lstrip("\ufeff"))))
    assert {r["ID звонка"] for r in rows} == set(two[OTHER]) and {r["Сеть"] for r in rows} == {OTHER}
    assert all("*" in r["Клиент"] for r in rows) and SHARED_PHONE not in text(res)

    call = ivan.get(f"/calls/{two[OTHER][0]}")
    assert call.status_code == 200 and OTHER_NAME in text(call) and SHARED_PHONE not in text(call)
    missing = ivan.get(f"/calls/{two[TENANT][0]}")
    assert missing.status_code == 404 and f"Звонка {two[TENANT][0]} нет." in text(missing)

    overview = text(ivan.get("/"))
    assert f"Сеть «{OTHER_NAME}»" in overview and ids_on(overview) == set(two[OTHER])
    dashboard = ivan.get(f"/dashboard?day={day}")
    assert dashboard.status_code == 200 and f"Сеть «{OTHER_NAME}»" in text(dashboard)
    assert "при выборе отдельных сетей не показываются" in text(dashboard)  # alerts cover every tenant

    # choosing the other tenant: a 403 page in Russian; an unknown one: a 400 page; nothing changes
    token_ = csrf_of(ivan)
    res = ivan.post("/tenant", data={"tenant": TENANT, "next": "/calls", "csrf_token": token_})
    assert res.status_code == 403 and f"Сеть «{TENANT}» вам недоступна" in text(res) and OTHER_NAME in text(res)
    res = ivan.post("/tenant", data={"tenant": "nope", "next": "/calls", "csrf_token": token_})
    assert res.status_code == 400 and "Сети «nope» нет" in text(res)
    assert ids_on(text(ivan.get(f"/calls?{period}"))) == set(two[OTHER])


def test_the_selector_scopes_every_page_and_stays_in_the_session(engine, two, day, app):
    olena = browser(app, engine, "olena", "admin")
    period = f"from={day}&to={day}"
    page = text(olena.get(f"/calls?{period}"))
    assert ids_on(page) == set(two[TENANT] + two[OTHER]) and "Все сети" in page
    assert f">{OTHER_NAME}</option>" in page and "Алерты считаются" not in text(olena.get("/dashboard"))

    res = olena.post("/tenant", data={"tenant": OTHER, "next": f"/calls?{period}", "csrf_token": csrf_of(olena)})
    assert res.status_code == 303 and res.headers["Location"] == f"/calls?{period}"
    page = text(olena.get(f"/calls?{period}"))
    assert ids_on(page) == set(two[OTHER]) and f"Сеть «{OTHER_NAME}»" in page
    assert f'<option value="{OTHER}" selected>' in page
    csv_ids = {r["ID звонка"] for r in csv.DictReader(io.StringIO(text(olena.get(f"/calls.csv?{period}"))[1:]))}
    assert csv_ids == set(two[OTHER])
    assert olena.get(f"/calls/{two[TENANT][0]}").status_code == 404
    assert f"Сеть «{OTHER_NAME}»" in text(olena.get("/")) and f"Сеть «{OTHER_NAME}»" in text(olena.get("/dashboard"))
    # review actions follow the choice: another tenant's call is not found
    theirs = queued(engine, TENANT)
    res = olena.post(f"/calls/{theirs}/review/take", data={"csrf_token": csrf_of(olena)})
    assert res.status_code == 404 and not auditlog.audit_entries(engine, action="review.taken")
    mine = queued(engine, OTHER)
    assert olena.post(f"/calls/{mine}/review/take", data={"csrf_token": csrf_of(olena)}).status_code == 303
    # shared pages do not filter, and say so
    prompts_page = text(olena.get("/prompts"))
    assert "общее для всех сетей" in prompts_page and f"Сеть «{OTHER_NAME}»" not in prompts_page

    # the API of the same session reads ?tenant=, not the admin's choice
    assert len(data_of(olena.get(f"/api/v1/analytics/calls?date_from={day}&date_to={day}"))["calls"]) == 5

    # back to every tenant; a foreign redirect target is not followed
    res = olena.post("/tenant", data={"tenant": "", "next": "https://evil.example/", "csrf_token": csrf_of(olena)})
    assert res.status_code == 303 and res.headers["Location"] == "/"
    assert ids_on(text(olena.get(f"/calls?{period}"))) == set(two[TENANT] + two[OTHER])
    # a link that names its tenant (a report's link to the journal) shows that tenant's calls
    assert ids_on(text(olena.get(f"/calls?{period}&tenant={OTHER}"))) == set(two[OTHER])
    assert olena.get(f"/calls?{period}&tenant=nope").status_code == 400
    # the selector needs the CSRF token
    assert olena.post("/tenant", data={"tenant": OTHER}).status_code == 400


def test_a_changed_limit_applies_to_open_sessions(engine, two, day, app):
    ivan = browser(app, engine, "ivan", "analyst")
    period = f"from={day}&to={day}"
    ivan.post("/tenant", data={"tenant": TENANT, "next": "/", "csrf_token": csrf_of(ivan)})
    assert ids_on(text(ivan.get(f"/calls?{period}"))) == set(two[TENANT])
    auth.set_user_tenants(engine, "ivan", [OTHER], actor="olena")
    page = text(ivan.get(f"/calls?{period}"))  # the old choice is no longer allowed: back to his tenants
    assert ids_on(page) == set(two[OTHER]) and "Выбранная раньше сеть вам больше недоступна" in page
    assert "Выбранная раньше сеть" not in text(ivan.get(f"/calls?{period}"))  # said once
    assert data_of(ivan.get("/api/v1/me"))["tenants"] == [OTHER]


def test_one_tenant_shows_no_selector(engine, app):
    olena = browser(app, engine, "olena", "admin")
    page = text(olena.get("/calls"))
    assert "tenant-selector" not in page and "Все сети" in page


# ---------------------------------------------------------------------------------------------- CLI
def test_user_and_token_tenant_commands(db_url, engine):
    with engine.begin() as conn:
        add_tenant(conn, OTHER, OTHER_NAME)
    res = cli(
        db_url, "users", "add", "ivan", "--role", "analyst", "--tenant", OTHER, "--password-stdin", input=PASSWORD
    )
    assert res.exit_code == 0 and res.stdout.strip() == f"added user ivan (analyst, tenants {OTHER})"
    assert auth.get_user_by_name(engine, "ivan").tenants == (OTHER,)
    res = cli(db_url, "users", "tenants", "ivan", "--tenant", TENANT, "--tenant", OTHER)
    assert res.exit_code == 0 and res.stdout.strip() == f"ivan: tenants {TENANT},{OTHER}"
    assert re.search(rf"ivan\s+analyst .* tenants {TENANT},{OTHER}", cli(db_url, "users", "list").stdout)
    listed = json.loads(cli(db_url, "users", "list", "--json").stdout)["data"]
    assert listed[0]["tenants"] == [TENANT, OTHER]
    res = cli(db_url, "users", "tenants", "ivan", "--all")
    assert res.exit_code == 0 and res.stdout.strip() == "ivan: all tenants"
    assert auth.get_user_by_name(engine, "ivan").tenants is None

    for args, message in (
        (("users", "tenants", "ivan"), "Error: give --tenant SLUG"),
        (("users", "tenants", "ivan", "--all", "--tenant", OTHER), "Error: give --tenant SLUG"),
        (("users", "tenants", "ivan", "--tenant", "nope"), "Error: unknown tenant 'nope'"),
        (("users", "tenants", "nobody", "--tenant", OTHER), "Error: user 'nobody' does not exist"),
        (("tokens", "create", "--role", "analyst", "--name", "bi", "--tenant", "nope"), "Error: unknown tenant"),
    ):
        res = cli(db_url, *args)
        assert res.exit_code == 1 and res.output.startswith(message), (args, res.output)

    res = cli(db_url, "tokens", "create", "--role", "analyst", "--name", "kolo-bi", "--tenant", OTHER)
    assert res.exit_code == 0 and f"(analyst, tenants {OTHER})" in res.stdout
    assert auth.check_token(engine, res.stdout.strip().splitlines()[-1]).tenants == (OTHER,)
    assert re.search(rf"kolo-bi\s+analyst .* tenants {OTHER}", cli(db_url, "tokens", "list").stdout)
    assert json.loads(cli(db_url, "tokens", "list", "--json").stdout)["data"][0]["tenants"] == [OTHER]

    changes = auditlog.audit_entries(engine, action="user.tenants_changed")
    assert [e.details["to"] for e in changes] == [None, [TENANT, OTHER]]
    assert all(e.actor.startswith("cli") for e in auditlog.audit_entries(engine))
    assert auditlog.audit_entries(engine, action="token.created")[0].details["tenants"] == [OTHER]


def test_a_new_tenant_reaches_the_header_within_the_tenants_interval(engine, app, monkeypatch):
    """The tenants every page shows are read at most every TENANTS_SECONDS per worker: a tenant the
    call processor adds appears in the header once that interval has passed, and a user's tenants are
    checked against the database as it is now."""
    from webapp import tenancy

    olena = browser(app, engine, "olena", "admin")
    assert "tenant-selector" not in text(olena.get("/calls"))  # one tenant: no selector
    with engine.begin() as conn:
        add_tenant(conn, OTHER, OTHER_NAME)
    assert "tenant-selector" not in text(olena.get("/calls"))  # read a moment ago: the list stands
    res = olena.post(  # but a user's tenants are checked against the database now
        "/users",
        data={"username": "ivan", "role": "analyst", "tenant": OTHER, "csrf_token": csrf_of(olena)},
    )
    assert res.status_code == 200 and "создан" in text(res), text(res)[:500]
    assert auth.get_user_by_name(engine, "ivan").tenants == (OTHER,)
    monkeypatch.setattr(tenancy, "TENANTS_SECONDS", 0.0)  # the interval has passed
    page = text(olena.get("/calls"))
    assert "tenant-selector" in page and f">{OTHER_NAME}</option>" in page
