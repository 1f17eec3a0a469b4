"""Forms that survive an ended session (webapp/drafts.py, ccanalytics.auth.formdrafts): a review comment or a
prompt edit posted after the session ended server-side (logout elsewhere, a new password, an expired
cookie) comes back filled in after the login — to the same user only, never sent on its own — and
an oversized form is a Russian 413 page."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from factories import make_call
from test_auth import PASSWORD, csrf_of, logged_in, login

from ccanalytics import quality
from ccanalytics.auth import formdrafts
from ccanalytics.auth import users as auth
from ccanalytics.core import clock
from ccanalytics.ingest.load import ingest_records
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import Rubric, RulesJudge
from webapp import create_app
from webapp.drafts import LOGIN_NOTICE, NOTICE

COMMENT = (
    "Бот двічі перепитав розмір «205/55 R16», хоча клієнт назвав його чітко; "
    "далі все правильно.\nПеревірити підказки STT для розмірів шин & <b>сезонів</b>."
)
PROMPT_TEXT = "Ти — помічник «Шинного двору».\nВідповідай коротко, не більше двох речень. " * 40


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def call_id(engine) -> str:
    """A call in the review queue (every score is under review_below=1)."""
    call = make_call()
    ingest_records(engine, [call])
    quality.enqueue(engine)
    quality.score_pending(engine, RulesJudge(), Rubric(review_below=1.0))
    return call["call_id"]


def text(res) -> str:
    return html.unescape(res.get_data(as_text=True))


def uid(engine, name: str) -> int:
    return auth.get_user_by_name(engine, name).id


def draft_key(res) -> str:
    """The draft key of a redirect to the login page."""
    assert res.status_code == 302, res.get_data(as_text=True)
    location = urlsplit(res.headers["Location"])
    assert location.path == "/login"
    return parse_qs(location.query)["draft"][0]


def stored_drafts(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT user_id, page, action, fields FROM cca_form_drafts")).all()


def review_status(engine, call: str) -> tuple:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT status, comment FROM review_items WHERE call_id = :c"), {"c": uuid.UUID(call)}
        ).one()


def resolve_after_the_session_ended(client, call: str):
    """The review form posted with the token of a session that has ended meanwhile."""
    return client.post(
        f"/calls/{call}/review/resolve",
        data={"csrf_token": csrf_of(client), "comment": COMMENT, "verdict_bot_was_concise": "0.5"},
        headers={"Referer": f"http://localhost/calls/{call}"},
    )


def test_a_review_comment_survives_a_session_ended_elsewhere(engine, app, call_id):
    admin = logged_in(app, engine, "olena", "admin")
    assert 'name="comment"' in text(admin.get(f"/calls/{call_id}"))
    auth.end_sessions(engine, uid(engine, "olena"))  # a logout in another browser
    res = resolve_after_the_session_ended(admin, call_id)
    key = draft_key(res)
    assert parse_qs(urlsplit(res.headers["Location"]).query)["next"] == [f"/calls/{call_id}"]
    assert review_status(engine, call_id) == ("new", None)  # nothing was sent
    [(owner, page, action, fields)] = stored_drafts(engine)
    assert (owner, page, action) == (uid(engine, "olena"), f"/calls/{call_id}", f"/calls/{call_id}/review/resolve")
    assert dict(fields) == {"comment": COMMENT, "verdict_bot_was_concise": "0.5"}  # no CSRF token kept
    assert key not in str(stored_drafts(engine))  # only its hash is stored

    assert LOGIN_NOTICE in text(admin.get(res.headers["Location"]))
    back = login(admin, "olena", next=f"/calls/{call_id}", draft=key)
    assert back.status_code == 302 and back.headers["Location"] == f"/drafts/{key}"
    page = admin.get(back.headers["Location"])
    body = text(page)
    assert page.status_code == 200 and NOTICE in body
    assert "Ручная проверка" in body and f'action="/calls/{call_id}/review/resolve"' in body  # the call page
    assert re.search(r'<textarea name="comment"[^>]*>' + re.escape(COMMENT) + "</textarea>", body)
    assert re.search(r'name="verdict_bot_was_concise">.*?<option value="0.5" selected>', body, flags=re.S)
    assert "&lt;b&gt;" in page.get_data(as_text=True)  # the comment is text, not markup
    fresh = csrf_of(admin)
    assert f'value="{fresh}"' in body
    assert review_status(engine, call_id) == ("new", None)  # still not sent: the user confirms

    again = admin.post(
        f"/calls/{call_id}/review/resolve",
        data={"csrf_token": fresh, "comment": COMMENT, "verdict_bot_was_concise": "0.5"},
    )
    assert again.status_code == 303
    assert review_status(engine, call_id) == ("resolved", COMMENT.strip())


def test_another_user_logging_in_does_not_get_the_form(engine, app, call_id):
    admin = logged_in(app, engine, "olena", "admin")
    auth.add_user(engine, "marta", PASSWORD, "admin")
    auth.end_sessions(engine, uid(engine, "olena"))
    key = draft_key(resolve_after_the_session_ended(admin, call_id))
    # someone else logs in at the same browser, with the same link
    res = login(admin, "marta", next=f"/calls/{call_id}", draft=key)
    assert res.status_code == 302 and res.headers["Location"] == f"/calls/{call_id}"
    assert COMMENT.splitlines()[0] not in text(admin.get(f"/calls/{call_id}"))
    refused = admin.get(f"/drafts/{key}")
    assert refused.status_code == 404 and "Сохранённой формы нет" in text(refused)
    assert COMMENT.splitlines()[0] not in text(refused)
    # the user it belongs to still gets it, from another browser
    other = app.test_client()
    assert login(other, "olena", draft=key).headers["Location"] == f"/drafts/{key}"
    assert COMMENT in text(other.get(f"/drafts/{key}"))


def test_a_prompt_edit_survives_a_password_change_and_an_expired_cookie(engine, app):
    admin = logged_in(app, engine, "olena", "admin")
    typed = {"name": "greeting", "system_prompt": PROMPT_TEXT, "note": "коротше", "csrf_token": csrf_of(admin)}
    auth.set_password(engine, "olena", "another correct horse battery")
    key = draft_key(admin.post("/prompts/new", data=typed))
    assert stored_drafts(engine)[0].page == "/prompts/new"  # no Referer: the form's own page
    assert login(admin, "olena", "another correct horse battery", draft=key).headers["Location"] == f"/drafts/{key}"
    page = admin.get(f"/drafts/{key}")
    body = text(page)
    assert page.status_code == 200 and NOTICE in body and 'action="/prompts/new"' in body
    assert PROMPT_TEXT in body and 'value="greeting"' in body and "коротше" in body
    assert prompts.list_versions(engine) == []

    # 12 hours later the browser has dropped the session cookie; the signed cca_who cookie names the user
    admin.delete_cookie("cca_session")
    assert admin.get("/prompts/new").status_code == 302
    key = draft_key(admin.post("/prompts/new", data={**typed, "csrf_token": "from-a-dead-session"}))
    assert key and len(stored_drafts(engine)) == 2
    assert login(admin, "olena", "another correct horse battery", draft=key).headers["Location"] == f"/drafts/{key}"
    assert PROMPT_TEXT in text(admin.get(f"/drafts/{key}"))


def test_a_browser_that_names_no_user_keeps_nothing(engine, app, call_id):
    stranger = app.test_client()
    res = stranger.post(f"/calls/{call_id}/review/resolve", data={"comment": COMMENT})
    assert res.status_code == 302 and res.headers["Location"] == "/login"
    forged = app.test_client()
    forged.set_cookie("cca_who", "1.forged.signature")
    assert forged.post("/prompts/new", data={"system_prompt": "x"}).headers["Location"] == "/login"
    # logging out in this browser forgets its user too
    admin = logged_in(app, engine, "olena", "admin")
    assert admin.post("/logout", data={"csrf_token": csrf_of(admin)}).status_code == 302
    assert admin.post("/prompts/new", data={"system_prompt": "x"}).headers["Location"] == "/login"
    # the JSON API is never redirected nor kept; nor is a form posted where no page answers
    assert app.test_client().post("/api/v1/prompts", json={"name": "x"}).status_code == 401
    login(admin, "olena")
    auth.end_sessions(engine, uid(engine, "olena"))
    assert admin.post("/no/such/form", data={"comment": "x"}).headers["Location"] == "/login"
    assert stored_drafts(engine) == []
    assert draft_key(admin.post("/prompts/new", data={"system_prompt": "x"}))  # a form page: kept
    auth.set_disabled(engine, "olena")  # a disabled user could not log in to get it back
    assert admin.post("/prompts/new", data={"system_prompt": "y"}).headers["Location"] == "/login"
    assert len(stored_drafts(engine)) == 1


def test_passwords_are_never_kept_and_drafts_expire(engine, app):
    admin = logged_in(app, engine, "olena", "admin")
    auth.end_sessions(engine, uid(engine, "olena"))
    form = {"username": "petro", "password": "s3cret-s3cret", "password2": "s3cret-s3cret", "role": "analyst"}
    key = draft_key(admin.post("/users", data={**form, "csrf_token": csrf_of(admin)}))
    assert dict(stored_drafts(engine)[0].fields) == {"username": "petro", "role": "analyst"}
    login(admin, "olena")
    assert "s3cret" not in text(admin.get(f"/drafts/{key}"))
    assert admin.get(f"/drafts/{key}").status_code == 200
    with clock.frozen(clock.now() + formdrafts.TTL + timedelta(seconds=1)):
        expired = admin.get(f"/drafts/{key}")
    assert expired.status_code == 404 and "30 минут" in text(expired)
    assert admin.get("/drafts/not-a-key").status_code == 404


def test_an_oversized_form_is_a_russian_413_page_and_nothing_is_kept(engine, app):
    admin = logged_in(app, engine, "olena", "admin")
    auth.end_sessions(engine, uid(engine, "olena"))
    huge = "ш" * (formdrafts.MAX_CHARS + 1)  # under the body limit in bytes, over the kept characters
    res = admin.post("/prompts/new", data={"system_prompt": huge, "csrf_token": csrf_of(admin)})
    assert res.status_code == 413 and res.mimetype == "text/html"
    assert "Форма слишком большая" in text(res) and "<h1>Слишком большой запрос</h1>" in text(res)
    body = "system_prompt=" + "x" * (2 * 1024 * 1024)  # over the body limit
    res = admin.post("/prompts/new", data=body, content_type="application/x-www-form-urlencoded")
    assert res.status_code == 413 and "Форма слишком большая" in text(res)
    assert stored_drafts(engine) == []
