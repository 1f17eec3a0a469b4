"""The users and API tokens pages (/users, /tokens): administrators only, every change written to the
audit log in the change's own transaction (same xmin), sessions of a disabled user or of a reset
password end, secrets shown once, Russian 400 pages and kept form input for bad input."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa
from test_auth import PASSWORD, bearer, crawl, csrf_of, logged_in, login

from ccanalytics.auth import auditlog, passwords
from ccanalytics.auth import users as auth
from webapp import create_app

PAGES = ("users.", "review.")


@pytest.fixture
def app(engine):
    return create_app({"ENGINE": engine, "TESTING": True})


@pytest.fixture
def admin(app, engine):
    return logged_in(app, engine, "olena", "admin")


def text(res) -> str:
    return res.get_data(as_text=True)


def visible(res) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text(res))))


def post(client, path: str, data: dict | None = None):
    return client.post(path, data={"csrf_token": csrf_of(client), **(data or {})})


def secret_of(res) -> str:
    found = re.search(r'<input class="secret" readonly value="([^"]+)"', text(res))
    assert found, text(res)
    return html.unescape(found.group(1))


def same_transaction(engine, table: str, key: str, value, action: str) -> bool:
    """Whether the newest audit row of ``action`` was written by the transaction that last wrote the row
    of ``table`` (PostgreSQL's xmin: the id of the writing transaction)."""
    with engine.connect() as conn:
        row_xmin = conn.execute(sa.text(f"SELECT xmin::text FROM {table} WHERE {key} = :v"), {"v": value}).scalar_one()
        audit_xmin = conn.execute(
            sa.text("SELECT xmin::text FROM audit_log WHERE action = :a ORDER BY id DESC LIMIT 1"), {"a": action}
        ).scalar_one()
    return row_xmin == audit_xmin


def audited(engine, action: str) -> list[auditlog.AuditEntry]:
    return auditlog.audit_entries(engine, action=action)


# ------------------------------------------------------------------------------------------- roles
def test_only_admins_reach_the_users_and_tokens_pages(app, engine):
    analyst = logged_in(app, engine, "ivan", "analyst")
    token = csrf_of(analyst)
    routes = [(m, p, e) for m, p, e in crawl(app) if e.startswith("users.")]
    assert len(routes) >= 10
    for method, path, _ in routes:
        res = analyst.open(path, method=method, headers={"X-CSRF-Token": token}, data={"confirm": "yes"})
        assert res.status_code == 403, (method, path, res.status_code)
    anonymous = app.test_client()
    for method, path, _ in routes:
        res = anonymous.open(path, method=method)
        assert res.status_code == 302 and res.headers["Location"].startswith("/login"), (method, path)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action <> 'user.created'")).scalar_one() == 0
    # the navigation: admins see «Пользователи», analysts do not; both see the review queue
    assert "Пользователи" not in visible(analyst.get("/review")) and "Проверка" in visible(analyst.get("/review"))
    admin = logged_in(app, engine, "olena", "admin")
    assert 'href="/users"' in text(admin.get("/review"))
    # an admin token opens the API, not these pages
    headers = bearer(auth.create_token(engine, "admin", "ops"))
    assert app.test_client().get("/users", headers=headers).status_code == 302


def test_every_review_and_users_page_renders_for_admins(app, engine, admin):
    for method, path, endpoint in crawl(app):
        if method == "GET" and endpoint.startswith(PAGES):
            res = admin.get(path)
            assert res.status_code in (200, 404), (path, res.status_code)
            assert re.search("[А-Яа-я]", visible(res))


# ------------------------------------------------------------------------------------------- users
def test_create_a_user_with_a_generated_password_shown_once(app, engine, admin):
    res = post(admin, "/users", {"username": "Marta", "role": "analyst", "password_mode": "generate"})
    assert res.status_code == 200 and "показывается один раз" in visible(res)
    password = secret_of(res)
    assert len(password) >= passwords.MIN_PASSWORD_LENGTH
    assert res.headers["Cache-Control"] == "no-store"
    user = auth.get_user_by_name(engine, "marta")
    assert user.role == "analyst" and user.tenants is None and not user.disabled
    entry = audited(engine, "user.created")[0]
    assert entry.actor == "olena" and entry.object_id == "marta" and entry.details["role"] == "analyst"
    assert same_transaction(engine, "users", "username", "marta", "user.created")
    # the password works, and is not on the list page afterwards
    assert login(app.test_client(), "marta", password).status_code == 302
    listing = text(admin.get("/users"))
    assert password not in listing and "marta" in listing and "аналитик" in listing
    assert "нет входов" not in visible(admin.get("/users/marta"))  # the login was recorded


def test_create_a_user_with_a_given_password_and_tenants(app, engine, admin):
    form = {
        "username": "petro",
        "role": "admin",
        "tenant": "shop",
        "password_mode": "set",
        "password": "petro's long passphrase",
        "password2": "petro's long passphrase",
    }
    res = post(admin, "/users", form)
    assert res.status_code == 303 and res.headers["Location"].endswith("/users/petro")
    user = auth.get_user_by_name(engine, "petro")
    assert user.role == "admin" and user.tenants == ("shop",)
    assert login(app.test_client(), "petro", "petro's long passphrase").status_code == 302
    assert "создан" in visible(admin.get("/users/petro"))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"username": "bad name!", "role": "analyst"}, "Имя пользователя"),
        ({"username": "", "role": "analyst"}, "Имя пользователя"),
        ({"username": "x" * 101, "role": "analyst"}, "слишком длинное"),
        ({"username": "nul\x00", "role": "analyst"}, "недопустимый символ"),
        ({"username": "anna", "role": "service"}, "Выберите роль"),
        ({"username": "anna", "role": "analyst", "tenant": "nowhere"}, "Сети «nowhere» нет"),
        (
            {"username": "anna", "role": "analyst", "password_mode": "set", "password": "short", "password2": "short"},
            "не короче 10",
        ),
        (
            {
                "username": "anna",
                "role": "analyst",
                "password_mode": "set",
                "password": "a" * 12,
                "password2": "b" * 12,
            },
            "Пароли не совпадают",
        ),
        ({"username": "anna", "role": "analyst", "password_mode": "maybe"}, "сгенерировать пароль или задать"),
        ({"username": "olena", "role": "analyst"}, "Пользователь «olena» уже есть"),
    ],
)
def test_bad_user_forms_are_400_in_russian_and_keep_the_input(engine, admin, form, message):
    res = post(admin, "/users", {"password_mode": "generate", **form})
    assert res.status_code == 400 and message in visible(res), visible(res)
    if form["username"] and len(form["username"]) <= 100 and "\x00" not in form["username"]:
        assert f'value="{html.escape(form["username"])}"' in text(res)  # what was typed stays
    assert not re.search(r'name="password2?"[^>]*value=', text(res))  # passwords are never shown back
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 1  # olena only


def test_disabling_a_user_ends_their_sessions_and_is_audited(app, engine, admin):
    ivan = logged_in(app, engine, "ivan", "analyst")
    assert ivan.get("/review").status_code == 200
    res = post(admin, "/users/ivan/disable")
    assert res.status_code == 303
    assert auth.get_user_by_name(engine, "ivan").disabled
    assert same_transaction(engine, "users", "username", "ivan", "user.disabled")
    assert audited(engine, "user.disabled")[0].actor == "olena"
    res = ivan.get("/review")  # the open session ended at once
    assert res.status_code == 302 and res.headers["Location"].startswith("/login")
    assert login(app.test_client(), "ivan").status_code == 401  # and no new one
    page = visible(admin.get("/users/ivan"))
    assert "отключён" in page and "Включить снова" in page
    assert post(admin, "/users/ivan/enable").status_code == 303
    assert not auth.get_user_by_name(engine, "ivan").disabled
    assert same_transaction(engine, "users", "username", "ivan", "user.enabled")
    assert login(app.test_client(), "ivan").status_code == 302
    # nobody disables themselves; unknown users are a 404 page
    res = post(admin, "/users/olena/disable")
    assert res.status_code == 400 and "собственную" in visible(res)
    assert not auth.get_user_by_name(engine, "olena").disabled
    assert post(admin, "/users/nobody/disable").status_code == 404
    assert admin.get("/users/NO%20SUCH").status_code == 404


def test_password_reset_generated_or_given_ends_the_users_sessions(app, engine, admin):
    ivan = logged_in(app, engine, "ivan", "analyst")
    res = post(admin, "/users/ivan/password", {"password_mode": "generate"})
    assert res.status_code == 200
    password = secret_of(res)
    assert ivan.get("/review").status_code == 302  # ended
    assert login(app.test_client(), "ivan", PASSWORD).status_code == 401
    assert login(app.test_client(), "ivan", password).status_code == 302
    entry = audited(engine, "user.password_changed")[0]
    assert entry.details == {"generated": True} and entry.actor == "olena"
    assert same_transaction(engine, "users", "username", "ivan", "user.password_changed")
    res = post(admin, "/users/ivan/password", {"password_mode": "set", "password": "x" * 9, "password2": "x" * 9})
    assert res.status_code == 400 and "не короче 10" in visible(res)
    given = "a brand new passphrase"
    res = post(admin, "/users/ivan/password", {"password_mode": "set", "password": given, "password2": given})
    assert res.status_code == 303 and audited(engine, "user.password_changed")[0].details == {}
    assert login(app.test_client(), "ivan", given).status_code == 302
    # my own password: this session goes on, my other sessions end
    other = app.test_client()
    login(other, "olena")
    res = post(admin, "/users/olena/password", {"password_mode": "generate"})
    assert res.status_code == 200 and admin.get("/users").status_code == 200
    assert other.get("/users").status_code == 302


def test_changing_tenants_is_audited_and_limited_admins_stay_in_their_tenants(app, engine, admin):
    with engine.begin() as conn:
        from factories import add_tenant

        add_tenant(conn, "other", "Інша мережа")
    auth.add_user(engine, "ivan", PASSWORD, "analyst")
    assert post(admin, "/users/ivan/tenants", {"tenant": "shop"}).status_code == 303
    assert auth.get_user_by_name(engine, "ivan").tenants == ("shop",)
    entry = audited(engine, "user.tenants_changed")[0]
    assert entry.details == {"from": None, "to": ["shop"]} and entry.actor == "olena"
    assert same_transaction(engine, "users", "username", "ivan", "user.tenants_changed")
    assert post(admin, "/users/ivan/tenants", {}).status_code == 303  # none ticked: every tenant
    assert auth.get_user_by_name(engine, "ivan").tenants is None
    # an administrator limited to "shop" grants only "shop" and manages only accounts within it
    auth.add_user(engine, "sasha", PASSWORD, "admin", tenants=["shop"])
    sasha = app.test_client()
    assert login(sasha, "sasha").status_code == 302
    res = post(sasha, "/users", {"username": "nina", "role": "analyst", "password_mode": "generate"})
    assert res.status_code == 400 and "отметьте сети" in visible(res)
    res = post(sasha, "/users", {"username": "nina", "role": "analyst", "tenant": "other"})
    assert res.status_code == 400 and "вам недоступна" in visible(res)
    assert post(sasha, "/users", {"username": "nina", "role": "analyst", "tenant": "shop"}).status_code == 200
    for path in ("/users/ivan/disable", "/users/ivan/password", "/users/olena/tenants"):
        res = post(sasha, path, {"tenant": "shop", "password_mode": "generate"})
        assert res.status_code == 400 and "другим сетям" in visible(res), path
    assert not auth.get_user_by_name(engine, "ivan").disabled
    assert "эту учётную запись менять не можете" in visible(sasha.get("/users/olena"))


# ------------------------------------------------------------------------------------------ tokens
def test_tokens_created_shown_once_used_and_revoked(app, engine, admin):
    res = post(admin, "/tokens", {"name": "call-processor", "role": "service", "tenant": "shop"})
    assert res.status_code == 200 and "показывается один раз" in visible(res)
    token = secret_of(res)
    assert same_transaction(engine, "api_tokens", "name", "call-processor", "token.created")
    entry = audited(engine, "token.created")[0]
    assert entry.actor == "olena" and entry.details["role"] == "service"
    assert token.startswith("cca_") and auth.check_token(engine, token).tenants == ("shop",)  # it works
    listing = text(admin.get("/tokens"))
    assert token not in listing and "call-processor" in listing and "сервис" in listing
    row = re.search(r'<tr class="" data-token="call-processor">(.*?)</tr>', listing, flags=re.S).group(1)
    assert "olena" in row  # who created it
    assert "не использовался" not in row  # check_token above used it
    # the same live name again, a bad name, a bad role: 400 in Russian with the input kept
    res = post(admin, "/tokens", {"name": "call-processor", "role": "service"})
    assert res.status_code == 400 and "уже есть" in visible(res) and 'value="call-processor"' in text(res)
    assert post(admin, "/tokens", {"name": "bad name", "role": "service"}).status_code == 400
    res = post(admin, "/tokens", {"name": "ok", "role": "root"})
    assert res.status_code == 400 and "Выберите роль" in visible(res)
    # revoking asks for confirmation
    res = post(admin, "/tokens/call-processor/revoke")
    assert res.status_code == 400 and "Подтвердите" in visible(res)
    assert auth.check_token(engine, token) is not None
    res = post(admin, "/tokens/call-processor/revoke", {"confirm": "yes"})
    assert res.status_code == 303 and auth.check_token(engine, token) is None
    assert app.test_client().get("/api/v1/me", headers=bearer(token)).status_code == 401
    entry = audited(engine, "token.revoked")[0]
    assert entry.actor == "olena" and entry.object_id == "call-processor"
    with engine.connect() as conn:
        token_xmin = conn.execute(sa.text("SELECT xmin::text FROM api_tokens WHERE name = 'call-processor'")).scalar()
        audit_xmin = conn.execute(
            sa.text("SELECT xmin::text FROM audit_log WHERE action = 'token.revoked' ORDER BY id DESC LIMIT 1")
        ).scalar()
    assert token_xmin == audit_xmin
    assert 'data-token="call-processor"' not in text(admin.get("/tokens"))
    revoked = visible(admin.get("/tokens?revoked=1"))
    assert "call-processor" in revoked and "отозван" in revoked and "(olena)" in revoked
    assert post(admin, "/tokens/call-processor/revoke", {"confirm": "yes"}).status_code == 404
