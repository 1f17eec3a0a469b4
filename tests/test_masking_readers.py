"""Phone numbers and personal fields of a call as each reader sees them (ccanalytics.core.privacy's rule):
masked for analysts (and every non-admin) on the call page, in the API, in the journal's snippets and
in the notebook helpers; as recorded for admins; the caller's number masked for everyone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from factories import make_call, turn
from test_auth import bearer, logged_in

from ccanalytics.analytics import workbench
from ccanalytics.analytics.store import Store
from ccanalytics.auth import users as auth
from ccanalytics.core import privacy
from ccanalytics.ingest.load import ingest
from webapp import create_app

PHONE = "+380660965881"
SPOKEN = "0671112233"  # a number the customer dictates
NAME = "Мар'яна Коваль"


@pytest.fixture
def call_id(engine):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    tools = [
        {
            "name": "create_order_draft",
            "args": {"customer_name": NAME, "phone": PHONE, "items": [{"sku": "NOK-1", "quantity": 4}]},
            "result": {"order_id": "ORD-204518", "customer": {"phone": PHONE, "name": NAME}},
            "duration_ms": 300,
            "success": True,
        }
    ]
    turns = [
        turn("customer", f"Запишіть мій номер {SPOKEN}, зимові шини", start + timedelta(seconds=5)),
        turn("bot", "Оформлюю замовлення", start + timedelta(seconds=10), tool_calls=tools),
    ]
    call = make_call(started_at=start, caller_id=PHONE, turns=turns)
    ingest(engine, call)
    return call["call_id"]


def shows_raw(text: str) -> list[str]:
    return [s for s in (PHONE, SPOKEN, PHONE[1:], "0965881", NAME) if s in text]


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


def test_analysts_see_masked_phones_on_the_call_page_and_in_the_api(app, engine, call_id):
    analyst = logged_in(app, engine, "ivan", "analyst")
    page = analyst.get(f"/calls/{call_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert shows_raw(html) == [] and privacy.mask_phone(PHONE) in html and "М***" in html
    data = analyst.get(f"/api/v1/analytics/calls/{call_id}").get_json()["data"]
    text = json.dumps(data, ensure_ascii=False)
    assert shows_raw(text) == [], text
    assert data["tool_calls"][0]["tool_args"]["phone"] == privacy.mask_phone(PHONE)
    assert data["tool_calls"][0]["tool_result"]["order_id"] == "ORD-204518"  # not personal: as recorded
    assert data["call"]["id"] == call_id
    # an analyst token reads the same
    token = bearer(auth.create_token(engine, "analyst", "reports"))
    api = app.test_client().get(f"/api/v1/analytics/calls/{call_id}", headers=token)
    assert shows_raw(api.get_data(as_text=True)) == []
    # the journal's snippet of a transcript search
    journal = analyst.get("/calls?q=шини").get_data(as_text=True)
    assert "Запишіть мій номер" in journal and shows_raw(journal) == []
    csv = analyst.get("/calls.csv").get_data(as_text=True)
    assert call_id in csv and shows_raw(csv) == []


def test_admins_see_the_call_as_recorded_but_the_caller_masked(app, engine, call_id):
    admin = logged_in(app, engine, "olena", "admin")
    html = admin.get(f"/calls/{call_id}").get_data(as_text=True)
    assert SPOKEN in html and PHONE in html  # in the transcript and the tool arguments
    data = admin.get(f"/api/v1/analytics/calls/{call_id}").get_json()["data"]
    assert data["tool_calls"][0]["tool_args"]["phone"] == PHONE
    assert data["call"]["caller_id"] == privacy.mask_phone(PHONE)


def test_the_rule_masks_for_every_role_but_admin():
    value = {"phone": PHONE, "note": f"номер {SPOKEN}"}
    assert privacy.for_reader(value, "admin") == value
    for role in ("analyst", "service", None, "unknown"):
        assert shows_raw(json.dumps(privacy.for_reader(value, role), ensure_ascii=False)) == []


def test_notebook_helpers_mask_by_default(engine, call_id):
    store = Store(engine)
    html = str(workbench.show_call(call_id, store=store))
    assert shows_raw(html) == []
    found = workbench.search("шини", store=store)
    assert found.height == 1 and shows_raw(str(found.to_dicts())) == []
    raw = workbench.search("шини", store=store, mask_phones=False)
    assert SPOKEN in raw.get_column("snippet")[0]
