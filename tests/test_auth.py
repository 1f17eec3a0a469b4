"""Auth: users, passwords, tokens, the audit log, login with rate limiting, sessions, CSRF, roles on
every route of the app (a crawl of Flask's url_map), and the `users`/`tokens` commands."""

from __future__ import annotations

import os
import re
import stat
import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ccanalytics.auth import auditlog, logins, passwords, secretkey
from ccanalytics.auth import users as auth
from ccanalytics.cli.root import main
from ccanalytics.core.errors import InvalidArgument, NotFound
from webapp import create_app
from webapp.auth import is_public

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r"^cca_[A-Za-z0-9_\-]{43}$")
# the routes that stay open; everything else must refuse anonymous access
OPEN_ENDPOINTS = {"health.healthz", "health.readyz", "prom.metrics", "auth.login", "api.openapi", "static"}
# ids in the crawled paths: calls, prompt versions and A/B tests are uuids; suggestions are numbered
IDS = {
    "call_id": str(uuid.uuid4()),
    "version_id": str(uuid.uuid4()),
    "test_id": str(uuid.uuid4()),
    "suggestion_id": "1",
}


# -------------------------------------------------------------------------------------- helpers
def make_app(engine, **config):
    return create_app({"ENGINE": engine, "TESTING": True, **config})


def csrf_of(client) -> str | None:
    with client.session_transaction() as s:
        return s.get("csrf")


def login(client, username: str, password: str = PASSWORD, **extra):
    client.get("/login")
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf_of(client), **extra}
    )


def logged_in(app, engine, username: str, role: str):
    auth.add_user(engine, username, PASSWORD, role)
    client = app.test_client()
    res = login(client, username)
    assert res.status_code == 302, res.get_data(as_text=True)
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def crawl(app):
    """(method, concrete path, endpoint) for every route and method of the app."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{name}>", IDS.get(name, "1"), path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path, rule.endpoint


def cli(db_url, *args, input=None):
    return CliRunner().invoke(main, list(args), env={"CCA_DATABASE_URL": db_url}, input=input, catch_exceptions=False)


# --------------------------------------------------------------------------------- the library
def test_passwords_are_salted_scrypt_and_checked_in_constant_time():
    a, b = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert passwords.check_password(PASSWORD, a) and passwords.check_password(PASSWORD, b)
    assert not passwords.check_password(PASSWORD + "!", a)
    assert not passwords.check_password(PASSWORD, "garbage") and not passwords.check_password(
        PASSWORD, "scrypt$1$2$3$%%$%%"
    )
    with pytest.raises(InvalidArgument, match="at least 10"):
        passwords.hash_password("short")


def test_users_add_verify_disable_and_password_change(engine):
    user = auth.add_user(engine, "  Olena ", PASSWORD, "admin", actor="tester")
    assert user.username == "olena" and user.role == "admin"
    with pytest.raises(auth.AlreadyExists):
        auth.add_user(engine, "OLENA", PASSWORD, "analyst")
    with pytest.raises(InvalidArgument, match="role must be one of admin, analyst"):
        auth.add_user(engine, "ivan", PASSWORD, "service")
    with pytest.raises(InvalidArgument, match="user name"):
        auth.add_user(engine, "bad name!", PASSWORD, "analyst")
    assert auth.verify_password(engine, "Olena", PASSWORD).id == user.id
    assert auth.verify_password(engine, "olena", "wrong password!") is None
    assert auth.verify_password(engine, "nobody", PASSWORD) is None
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert PASSWORD not in stored
    auth.set_password(engine, "olena", "another long password", actor="tester")
    assert auth.verify_password(engine, "olena", PASSWORD) is None
    again = auth.verify_password(engine, "olena", "another long password")
    assert again.stamp != user.stamp  # sessions made with the old password end
    auth.set_disabled(engine, "olena", actor="tester")
    assert auth.verify_password(engine, "olena", "another long password") is None
    with pytest.raises(NotFound):
        auth.set_password(engine, "ghost", PASSWORD)
    actions = [e.action for e in auditlog.audit_entries(engine, object_type="user")]
    assert actions == ["user.disabled", "user.password_changed", "user.created"]


def test_tokens_are_stored_only_as_hashes_and_can_be_revoked(engine):
    token = auth.create_token(engine, "service", "call-processor", actor="tester")
    assert TOKEN_RE.match(token)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    assert token not in [str(v) for v in row.values()] and row["token_hash"] == auth.token_hash(token)
    found = auth.check_token(engine, token)
    assert (found.name, found.role) == ("call-processor", "service")
    assert auth.list_tokens(engine)[0].last_used_at is not None
    assert auth.check_token(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert auth.check_token(engine, "not-a-token") is None
    with pytest.raises(auth.AlreadyExists):
        auth.create_token(engine, "admin", "call-processor")
    with pytest.raises(InvalidArgument, match="role must be one of"):
        auth.create_token(engine, "root", "x")
    auth.revoke_token(engine, "call-processor", actor="tester")
    assert auth.check_token(engine, token) is None
    with pytest.raises(NotFound):
        auth.revoke_token(engine, "call-processor")
    second = auth.create_token(engine, "service", "call-processor")  # the name is free again
    assert auth.check_token(engine, second).role == "service"
    assert [t.name for t in auth.list_tokens(engine, include_revoked=True)] == ["call-processor"] * 2
    entries = auditlog.audit_entries(engine, object_type="api_token")
    assert [e.action for e in entries] == ["token.created", "token.revoked", "token.created"]
    assert entries[-1].actor == "tester" and entries[-1].details["role"] == "service"


SLOW = logins.LoginPolicy(first_delay=timedelta(minutes=10))  # delays that cannot run out during a test


def age_attempts(engine, minutes: float) -> None:
    """Move every recorded login attempt ``minutes`` into the past (instead of waiting)."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE login_attempts SET at = at - make_interval(secs => :s)"), {"s": minutes * 60})


def fail(engine, username: str, ip: str, times: int = 1, policy=SLOW) -> None:
    for _ in range(times):
        with pytest.raises(auth.Unauthorized):
            logins.login(engine, username, "wrong password!", ip=ip, policy=policy)


def test_login_delays_grow_per_client_and_account_and_a_success_resets(engine):
    auth.add_user(engine, "olena", PASSWORD, "admin")
    fail(engine, "olena", "10.0.0.1", 4)
    assert logins.login(engine, "olena", PASSWORD, ip="10.0.0.1", policy=SLOW).username == "olena"  # a success resets
    fail(engine, "olena", "10.0.0.2", 5)
    with pytest.raises(auth.TooManyAttempts) as refused:
        logins.login(engine, "olena", PASSWORD, ip="10.0.0.2", policy=SLOW)  # this client waits, right password or not
    assert 9 * 60 < refused.value.retry_after <= 10 * 60
    # another client, and the client the user logs in from, are not slowed down by it
    assert logins.login(engine, "olena", PASSWORD, ip="10.0.0.3", policy=SLOW).username == "olena"
    assert logins.login(engine, "olena", PASSWORD, ip="10.0.0.1", policy=SLOW).username == "olena"
    # the delay runs out: the guesser gets one more try, then waits twice as long, capped by the window
    age_attempts(engine, 11)
    fail(engine, "olena", "10.0.0.2")
    with pytest.raises(auth.TooManyAttempts) as refused:
        logins.login(engine, "olena", "wrong password!", ip="10.0.0.2", policy=SLOW)
    assert 14 * 60 < refused.value.retry_after <= 15 * 60
    # the delays never exceed the window (15 min) and are forgotten with it
    age_attempts(engine, 16)
    assert logins.login(engine, "olena", PASSWORD, ip="10.0.0.2", policy=SLOW).username == "olena"
    # one address trying many names
    policy = logins.LoginPolicy(per_client=3, first_delay=timedelta(minutes=10))
    for i in range(3):
        fail(engine, f"user{i}", "10.9.9.9", policy=policy)
    with pytest.raises(auth.TooManyAttempts):
        logins.login(engine, "someone-else", "whatever password", ip="10.9.9.9", policy=policy)


def delay_of(policy: logins.LoginPolicy, failures: int, allowed: int, cap: timedelta) -> float:
    return policy.delay(failures, allowed, cap).total_seconds()


def test_delays_double_from_the_first_and_stop_at_their_cap():
    policy = logins.LoginPolicy()
    cap = timedelta(minutes=15)
    assert [delay_of(policy, n, 5, cap) for n in (0, 4, 5, 6, 7, 10, 14, 1000)] == [0, 0, 1, 2, 4, 32, 512, 900]


def test_an_outsider_cannot_lock_the_real_user_out(engine):
    """Failures from many addresses slow down new clients by a minute at most and never the clients
    the user logs in from; the right password from a client that has not been failing works."""
    auth.add_user(engine, "olena", PASSWORD, "admin")
    assert logins.login(engine, "olena", PASSWORD, ip="192.0.2.10").username == "olena"  # the user's office
    age_attempts(engine, 60 * 24 * 3)  # three days ago
    policy = logins.LoginPolicy(per_account=10, first_delay=timedelta(minutes=10))
    for i in range(10):  # a botnet: many addresses, one guess each
        fail(engine, "olena", f"203.0.113.{i}", policy=policy)
    for i in range(10, 30):  # past 10 failures on the account, new addresses wait (a minute at most)
        with pytest.raises(auth.TooManyAttempts) as refused:
            logins.login(engine, "olena", "wrong password!", ip=f"203.0.113.{i}", policy=policy)
        assert refused.value.retry_after <= 60
    assert logins.login(engine, "olena", PASSWORD, ip="192.0.2.10", policy=policy).username == "olena"
    # a client the account has never seen waits, but a minute at most, and then gets in
    with pytest.raises(auth.TooManyAttempts) as refused:
        logins.login(engine, "olena", PASSWORD, ip="198.51.100.7", policy=policy)
    assert refused.value.retry_after <= 60
    age_attempts(engine, 1.1)
    assert logins.login(engine, "olena", PASSWORD, ip="198.51.100.7", policy=policy).username == "olena"
    # the attack goes on: new addresses wait again, the two the user logged in from do not
    fail(engine, "olena", "203.0.113.200", policy=policy)
    with pytest.raises(auth.TooManyAttempts):
        logins.login(engine, "olena", PASSWORD, ip="203.0.113.201", policy=policy)
    assert logins.login(engine, "olena", PASSWORD, ip="192.0.2.10", policy=policy).username == "olena"
    assert logins.login(engine, "olena", PASSWORD, ip="198.51.100.7", policy=policy).username == "olena"


def test_successful_logins_are_kept_for_a_month_failures_for_a_day(engine):
    auth.add_user(engine, "olena", PASSWORD, "admin")
    assert logins.login(engine, "olena", PASSWORD, ip="10.0.0.1")
    fail(engine, "olena", "10.0.0.2")
    age_attempts(engine, 60 * 24 * 2)
    fail(engine, "olena", "10.0.0.2")  # prunes the old failure, keeps the old success
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT success, count(*) FROM login_attempts GROUP BY 1 ORDER BY 1")).all()
    assert [tuple(r) for r in kept] == [(False, 1), (True, 1)]


def test_parallel_guesses_cannot_overrun_the_limit(engine):
    auth.add_user(engine, "olena", PASSWORD, "admin")
    outcomes = []

    def guess():
        try:
            logins.login(engine, "olena", "wrong password!", ip="10.0.0.1", policy=SLOW)
        except (auth.Unauthorized, auth.TooManyAttempts) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("Unauthorized") == 5 and outcomes.count("TooManyAttempts") == 3


def test_secret_key_is_generated_once_with_private_permissions(tmp_path):
    path = tmp_path / "state" / "secret_key"
    keys = []
    threads = [
        threading.Thread(target=lambda: keys.append(secretkey.load_or_create_secret_key(path))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secretkey.load_or_create_secret_key(path) == keys[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret_key"]


def test_the_app_takes_its_secret_key_from_settings_or_the_data_dir(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("CCA_DATA_DIR", str(tmp_path))
    app = create_app({"ENGINE": engine})
    assert app.config["SECRET_KEY"] == (tmp_path / "secret_key").read_text().strip()
    assert create_app({"ENGINE": engine}).config["SECRET_KEY"] == app.config["SECRET_KEY"]
    monkeypatch.setenv("CCA_SECRET_KEY", "from-the-environment")
    assert create_app({"ENGINE": engine}).config["SECRET_KEY"] == "from-the-environment"
    monkeypatch.setenv("CCA_COOKIE_SECURE", "true")
    monkeypatch.setenv("CCA_SESSION_HOURS", "2")
    app = create_app({"ENGINE": engine})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=2)


def test_demo_admin_is_created_once(engine):
    password = auth.ensure_demo_admin(engine)
    assert password and len(password) >= 16
    assert auth.verify_password(engine, "admin", password).role == "admin"
    assert auth.ensure_demo_admin(engine) is None


# ----------------------------------------------------------------------------- the login pages
def test_login_page_is_russian_and_sets_a_safe_session_cookie(engine):
    app = make_app(engine, SESSION_COOKIE_SECURE=True)
    auth.add_user(engine, "olena", PASSWORD, "admin")
    client = app.test_client()
    page = client.get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Вход в админку" in html and "Имя пользователя" in html
    assert 'name="csrf_token"' in html
    res = login(client, "olena", next="/?days=3")
    assert res.status_code == 302 and res.headers["Location"] == "/?days=3"
    cookies = {c.partition("=")[0]: c for c in res.headers.getlist("Set-Cookie")}
    cookie = cookies["cca_session"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    # the browser's user, for a form posted after the session ended (webapp/drafts.py): signed, no session
    owner = cookies["cca_who"]
    assert "HttpOnly" in owner and "SameSite=Lax" in owner and "Secure" in owner
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me").get_json()["data"] == {
        "kind": "user",
        "name": "olena",
        "role": "admin",
        "actor": "olena",
        "tenants": None,
    }


def test_wrong_password_rate_limit_and_csrf_on_the_login_form(engine):
    app = make_app(engine, LOGIN_FIRST_DELAY_SECONDS=600)
    auth.add_user(engine, "olena", PASSWORD, "admin")
    client = app.test_client()
    res = login(client, "olena", "wrong password!")
    assert res.status_code == 401 and "Неверное имя пользователя или пароль" in res.get_data(as_text=True)
    res = client.post("/login", data={"username": "olena", "password": PASSWORD})  # no CSRF token
    assert res.status_code == 400 and "Форма устарела" in res.get_data(as_text=True)
    res = client.post("/login", data={"username": "olena", "password": PASSWORD, "csrf_token": "forged"})
    assert res.status_code == 400
    for _ in range(4):
        assert login(client, "olena", "wrong password!").status_code == 401
    res = login(client, "olena")  # right password, but this client failed 5 times: it waits
    assert res.status_code == 429 and "Слишком много неудачных попыток" in res.get_data(as_text=True)
    assert "Попробуйте снова через 10 мин." in res.get_data(as_text=True)
    assert 540 < int(res.headers["Retry-After"]) <= 600
    assert client.get("/").status_code == 302
    other = app.test_client()  # the user, from elsewhere
    other.environ_base["REMOTE_ADDR"] = "192.0.2.44"
    assert login(other, "olena").status_code == 302
    with engine.connect() as conn:
        attempts = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE success) FROM login_attempts")).one()
    assert tuple(attempts) == (6, 1)


def test_login_redirects_only_to_local_paths(engine):
    app = make_app(engine)
    auth.add_user(engine, "olena", PASSWORD, "admin")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client = app.test_client()
        assert login(client, "olena", next=target).headers["Location"] == "/"


def copy_session(app, client):
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("cca_session", client.get_cookie("cca_session").value)
    return thief


def test_logout_needs_csrf_and_ends_every_session_of_the_user(engine):
    app = make_app(engine)
    client = logged_in(app, engine, "ivan", "analyst")
    second = app.test_client()  # the same user in another browser
    assert login(second, "ivan").status_code == 302
    copied = copy_session(app, client)
    assert copied.get("/api/v1/me").status_code == 200
    assert "Выйти из админки?" in client.get("/logout").get_data(as_text=True)
    res = client.post("/logout")
    assert res.status_code == 400 and "Форма устарела" in res.get_data(as_text=True)
    assert client.get("/").status_code == 200
    res = client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert res.status_code == 302 and res.headers["Location"].endswith("/login")
    assert client.get("/").status_code == 302
    # the cookie copied before the logout, and the other browser's session, stopped working too
    assert copied.get("/api/v1/me").status_code == 401 and copied.get("/").status_code == 302
    assert second.get("/").status_code == 302
    assert login(client, "ivan").status_code == 302 and client.get("/").status_code == 200
    assert copied.get("/").status_code == 302  # logging in again does not revive the old cookie


def test_a_password_change_or_disabling_ends_open_sessions(engine):
    app = make_app(engine)
    client = logged_in(app, engine, "olena", "admin")
    copied = copy_session(app, client)
    assert client.get("/").status_code == 200
    auth.set_password(engine, "olena", "a brand new password")
    assert client.get("/").status_code == 302 and copied.get("/").status_code == 302
    assert login(client, "olena", "a brand new password").status_code == 302
    assert client.get("/").status_code == 200
    copied = copy_session(app, client)
    auth.set_disabled(engine, "olena")
    assert client.get("/api/v1/me").status_code == 401 and copied.get("/api/v1/me").status_code == 401
    auth.set_disabled(engine, "olena", False)  # enabling again does not bring the old sessions back
    assert copied.get("/api/v1/me").status_code == 401
    assert login(client, "olena", "a brand new password").status_code == 302
    assert client.get("/api/v1/me").status_code == 200


# ------------------------------------------------------------------------------------ route crawl
def test_only_health_metrics_login_and_openapi_are_public(engine):
    app = make_app(engine)
    found = {r.endpoint for r in app.url_map.iter_rules() if is_public(r.endpoint, app)}
    assert {e for e in found if not e.endswith(".static")} == OPEN_ENDPOINTS
    client = app.test_client()
    for path in ("/healthz", "/readyz", "/metrics", "/login", "/api/v1/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_every_route_refuses_anonymous_access(engine):
    app = make_app(engine)
    client = app.test_client()
    checked = 0
    for method, path, endpoint in crawl(app):
        if endpoint in OPEN_ENDPOINTS:
            continue
        res = client.open(path, method=method)
        if path.startswith("/api/"):
            assert res.status_code == 401, (method, path, res.status_code)
            assert res.get_json()["error"]["code"] == "unauthorized"
            assert res.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert res.status_code == 302, (method, path, res.status_code)
            assert res.headers["Location"].startswith("/login")
        checked += 1
    assert checked >= 20
    # a forged or revoked token is no better than none
    for header in ("Bearer cca_forged", "Basic b2xlbmE6eA==", "Bearer"):
        res = client.get("/api/v1/analytics/calls", headers={"Authorization": header})
        assert res.status_code == 401


def test_analysts_can_read_but_every_write_is_forbidden(engine):
    app = make_app(engine)
    client = logged_in(app, engine, "ivan", "analyst")
    token = csrf_of(client)
    writes = 0
    for method, path, endpoint in crawl(app):
        if endpoint in OPEN_ENDPOINTS or endpoint in ("auth.logout", "tenancy.choose"):  # readers choose their view
            continue
        res = client.open(path, method=method, headers={"X-CSRF-Token": token}, json={})
        if method == "GET" and (endpoint == "api.audit_log" or endpoint.startswith("users.")):
            assert res.status_code == 403  # the audit log, users and tokens are for admins
        elif method == "GET":
            assert res.status_code not in (401, 403) and res.status_code < 500, (method, path, res.status_code)
        else:
            assert res.status_code == 403, (method, path, res.status_code)
            assert res.get_json()["error"]["code"] == "forbidden"
            writes += 1
    assert writes >= 8
    # the same with an analyst token
    headers = bearer(auth.create_token(engine, "analyst", "reports"))
    assert client.post("/api/v1/prompts", json={}, headers=headers).status_code == 403
    assert app.test_client().get("/api/v1/analytics/quality", headers=headers).status_code == 200


def test_admin_reads_every_route_without_server_errors(engine):
    app = make_app(engine)
    client = logged_in(app, engine, "olena", "admin")
    for method, path, endpoint in crawl(app):
        if method == "GET" and endpoint != "auth.logout":
            res = client.get(path)
            assert res.status_code < 500 and res.status_code not in (401, 403), (path, res.status_code)


def test_service_tokens_only_ingest_and_fetch_prompts(engine):
    app = make_app(engine)
    client = app.test_client()
    headers = bearer(auth.create_token(engine, "service", "call-processor"))
    allowed = {"api.ingest_calls", "api.list_prompts", "api.get_prompt", "api.resolve_prompt", "api.list_ab_tests"}
    for method, path, endpoint in crawl(app):
        if endpoint in OPEN_ENDPOINTS or endpoint == "api.me":
            continue
        res = client.open(path, method=method, headers=headers, json={})
        if not path.startswith("/api/"):
            assert res.status_code == 302, path  # tokens do not open the browser admin
        elif endpoint in allowed:
            assert res.status_code not in (401, 403), (method, path, res.status_code)
        else:
            assert res.status_code == 403, (method, path, res.status_code)


def test_browser_writes_need_the_csrf_token(engine):
    app = make_app(engine)
    client = logged_in(app, engine, "olena", "admin")
    body = {"name": "greeting", "system_prompt": "Добрий день!"}
    res = client.post("/api/v1/prompts", json=body)
    assert res.status_code == 400 and res.get_json()["error"]["code"] == "csrf_failed"
    res = client.post("/api/v1/prompts", json=body, headers={"X-CSRF-Token": "forged"})
    assert res.status_code == 400
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM prompt_versions")).scalar_one() == 0
    res = client.post("/api/v1/prompts", json=body, headers={"X-CSRF-Token": csrf_of(client)})
    assert res.status_code == 201 and res.get_json()["data"]["created_by"] == "olena"
    # a Bearer token needs no CSRF token: browsers never send one by themselves
    headers = bearer(auth.create_token(engine, "admin", "ops"))
    res = app.test_client().post("/api/v1/prompts", json=body, headers=headers)
    assert res.status_code == 201 and res.get_json()["data"]["created_by"] == "token:ops"


# -------------------------------------------------------------------------------------------- CLI
def test_tokens_create_prints_the_token_alone_on_the_last_line(db_url, engine):
    res = cli(db_url, "tokens", "create", "--role", "service", "--name", "call-processor")
    assert res.exit_code == 0, res.output
    token = res.stdout.rstrip("\n").splitlines()[-1]
    assert TOKEN_RE.match(token)
    assert auth.check_token(engine, token).role == "service"
    listing = cli(db_url, "tokens", "list").stdout
    assert "call-processor" in listing and "service" in listing and token not in listing
    bad = cli(db_url, "tokens", "create", "--role", "service", "--name", "call-processor")
    assert bad.exit_code == 1 and bad.output.startswith("Error: a live token named 'call-processor' exists")
    assert cli(db_url, "tokens", "revoke", "call-processor").exit_code == 0
    assert auth.check_token(engine, token) is None
    bad = cli(db_url, "tokens", "revoke", "call-processor")
    assert bad.exit_code == 1 and bad.output.startswith("Error: no live token named")
    assert cli(db_url, "tokens", "create", "--role", "root", "--name", "x").exit_code == 2


def test_users_commands(db_url, engine):
    res = cli(db_url, "users", "add", "Olena", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    assert res.exit_code == 0 and res.stdout.strip() == "added user olena (admin)"
    assert auth.verify_password(engine, "olena", PASSWORD).role == "admin"
    res = cli(db_url, "users", "add", "ivan", "--role", "analyst", input="short\nshort\n")
    assert res.exit_code == 1 and "Error: the password must have at least 10 characters" in res.output
    res = cli(db_url, "users", "add", "ivan", "--role", "analyst", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert res.exit_code == 0, res.output
    res = cli(db_url, "users", "add", "olena", "--role", "analyst", "--password-stdin", input=PASSWORD + "\n")
    assert res.exit_code == 1 and res.output.startswith("Error: user 'olena' already exists")
    assert cli(db_url, "users", "passwd", "ivan", "--password-stdin", input="new long password\n").exit_code == 0
    assert auth.verify_password(engine, "ivan", "new long password")
    assert cli(db_url, "users", "disable", "ivan").exit_code == 0
    listing = cli(db_url, "users", "list").stdout
    assert re.search(r"ivan\s+analyst .* disabled", listing) and "olena" in listing
    actors = {e.actor for e in auditlog.audit_entries(engine)}
    assert len(actors) == 1 and actors.pop().startswith("cli")
