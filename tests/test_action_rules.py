"""Actions are library functions that check their rules and audit in their own transaction: the CLI, the
JSON API and the admin give the same answer to a rule violation and write the same audit row for a
success (only the actor differs); a failing action writes nothing; an action from the CLI is audited.

Each case runs in two fresh databases set up alike (one driven through the CLI, one through the API or
the admin), so the audit rows compare field by field once ids are replaced by the labels they name."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import drop_database, new_database
from factories import make_call
from test_auth import bearer, login, make_app

from ccanalytics.auth import auditlog
from ccanalytics.auth import users as auth
from ccanalytics.cli.root import main
from ccanalytics.core.errors import Conflict
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ingest.load import ingest_records
from ccanalytics.prompts import versions as prompts

ADMIN = "olena"
PASSWORD = "correct horse battery"


class World:
    """One database, its prompt greet (v1 active, v2 inactive) and a way to act on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_size=2)
        self.v1 = prompts.create_version(self.engine, "greet", "Добрий день!", author="setup")
        self.v2 = prompts.create_version(self.engine, "greet", "Добрий день! Чим допомогти?", author="setup")
        prompts.activate_version(self.engine, self.v1.id, by="setup")
        self.app = make_app(self.engine)
        self.token = bearer(auth.create_token(self.engine, "admin", "ops", actor="setup"))
        auth.add_user(self.engine, ADMIN, PASSWORD, "admin", actor="setup")
        self.mark = self.last_audit_id()

    def last_audit_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar()

    def cli(self, *args: str):
        return CliRunner().invoke(main, list(args), env={"CCA_DATABASE_URL": self.url}, catch_exceptions=False)

    def api(self, method: str, path: str, body: dict | None = None):
        return self.app.test_client().open(f"/api/v1{path}", method=method, json=body, headers=self.token)

    def admin(self):
        client = self.app.test_client()
        assert login(client, ADMIN, PASSWORD).status_code == 302
        return client

    def names(self) -> dict[str, str]:
        """Every prompt version's and A/B test's id → its label or name."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id::text, label FROM cca_prompt_versions UNION ALL SELECT id::text, test_name FROM cca_ab_tests"
                )
            ).all()
        return dict(rows)

    def new_audit(self) -> list[tuple[str, dict]]:
        """Audit rows since the last call: (actor, the rest with ids replaced by labels); moves the mark."""
        names = self.names()

        def norm(value):
            if isinstance(value, dict):
                return {k: norm(v) for k, v in value.items()}
            if isinstance(value, list):
                return [norm(v) for v in value]
            return f"<{names[value]}>" if isinstance(value, str) and value in names else value

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT actor, action, object_type, object_id, details FROM audit_log WHERE id > :m ORDER BY id"
                ),
                {"m": self.mark},
            ).all()
        self.mark = self.last_audit_id()
        return [
            (r.actor, {"action": r.action, "type": r.object_type, "id": norm(r.object_id), "details": norm(r.details)})
            for r in rows
        ]


@pytest.fixture
def worlds(pg_server, template_db):
    made = []
    for _ in range(2):
        name, url = new_database(pg_server, template_db)
        made.append((name, World("postgresql+psycopg" + url[len("postgresql") :])))
    yield made[0][1], made[1][1]
    for name, world in made:
        world.engine.dispose()
        drop_database(pg_server, name)


def cli_error(result) -> str:
    assert result.exit_code == 1, result.output
    return re.fullmatch(r"Error: (.*)\n", result.stderr).group(1)


def api_error(res, status: int, code: str) -> str:
    assert res.status_code == status, res.get_data(as_text=True)
    error = res.get_json()["error"]
    assert error["code"] == code
    return error["message"]


def same_rows(cli_rows, other_rows, other_actor: str) -> list[dict]:
    """The rows match but for the actor: cli:<os user> from the CLI, the user or token elsewhere."""
    assert [a for a, _ in other_rows] == [other_actor] * len(other_rows)
    assert all(a.startswith("cli:") or a == "cli" for a, _ in cli_rows), cli_rows
    assert [r for _, r in cli_rows] == [r for _, r in other_rows]
    return [r for _, r in cli_rows]


# ------------------------------------------------------------------------------------------- prompts
def test_activate_same_row_and_same_answer(worlds):
    cli, api = worlds
    assert cli.cli("prompts", "activate", "greet@v2", "--reason", "тепліше").exit_code == 0
    assert api.api("PATCH", "/prompts/greet@v2/activate", {"reason": "тепліше"}).status_code == 200
    rows = same_rows(cli.new_audit(), api.new_audit(), "token:ops")
    assert rows == [
        {
            "action": "prompt.activated",
            "type": "prompt_version",
            "id": "<greet@v2>",
            "details": {"label": "greet@v2", "from_version_id": "<greet@v1>", "reason": "тепліше"},
        }
    ]
    # activating the active version again: Conflict in both, nothing audited
    message = cli_error(cli.cli("prompts", "activate", "greet@v2"))
    assert api_error(api.api("PATCH", "/prompts/greet@v2/activate"), 409, "conflict") == message
    assert message == "greet@v2 is already the active version"
    assert cli.new_audit() == api.new_audit() == []


def test_rollback_cli_and_admin_page(worlds):
    cli, page = worlds
    for w in worlds:
        prompts.activate_version(w.engine, w.v2.id, by="setup")
        w.mark = w.last_audit_id()
    assert cli.cli("prompts", "rollback", "greet", "--reason", "скарги").exit_code == 0
    admin = page.admin()
    form = {"current": str(page.v2.id), "target": str(page.v1.id), "reason": "скарги", "confirm": "yes"}
    with admin.session_transaction() as s:
        form["csrf_token"] = s["csrf"]
    assert admin.post("/prompts/greet/rollback", data=form).status_code == 303
    rows = same_rows(cli.new_audit(), page.new_audit(), ADMIN)
    assert [(r["action"], r["id"], r["details"]["from_version_id"]) for r in rows] == [
        ("prompt.rolled_back", "<greet@v1>", "<greet@v2>")
    ]
    # v1 is active again and the latest activation's predecessor is v2: a second rollback goes back to v2;
    # a prompt with no earlier version refuses in the CLI as in the library
    assert "no earlier active version" in cli_error(cli.cli("prompts", "rollback", "nothing"))
    assert cli.new_audit() == []


def test_create_version_must_differ_from_its_base(worlds, tmp_path):
    cli, page = worlds
    same = tmp_path / "same.txt"
    same.write_text(cli.v1.system_prompt, encoding="utf-8")
    assert "does not differ" in cli_error(
        cli.cli("prompts", "create", "--name", "greet", "--file", str(same), "--from", "greet@v1")
    )
    admin = page.admin()
    with admin.session_transaction() as s:
        csrf = s["csrf"]
    form = {"name": "greet", "system_prompt": page.v1.system_prompt, "base_id": str(page.v1.id), "csrf_token": csrf}
    res = admin.post("/prompts/new", data=form)
    assert res.status_code == 400 and "не отличается от исходной" in res.get_data(as_text=True)
    assert cli.new_audit() == page.new_audit() == []
    assert len(prompts.list_versions(cli.engine, "greet")) == len(prompts.list_versions(page.engine, "greet")) == 2


def test_create_version_same_rows(worlds, tmp_path):
    cli, api = worlds
    text = tmp_path / "v3.txt"
    text.write_text("Вітаю! Слухаю вас.", encoding="utf-8")
    assert (
        cli.cli(
            "prompts", "create", "--name", "greet", "--file", str(text), "--note", "коротше", "--activate"
        ).exit_code
        == 0
    )
    body = {"name": "greet", "system_prompt": "Вітаю! Слухаю вас.", "note": "коротше", "activate": True}
    assert api.api("POST", "/prompts", body).status_code == 201
    rows = same_rows(cli.new_audit(), api.new_audit(), "token:ops")
    assert [(r["action"], r["id"]) for r in rows] == [
        ("prompt.created", "<greet@v3>"),
        ("prompt.activated", "<greet@v3>"),
    ]
    assert rows[0]["details"] == {"label": "greet@v3", "note": "коротше", "from_version_id": None}
    assert rows[1]["details"]["from_version_id"] == "<greet@v1>"


# ----------------------------------------------------------------------------------------- A/B tests
def test_ab_create_start_stop_same_rows_and_answers(worlds):
    cli, api = worlds
    assert cli.cli("ab", "create", "greet-ab", "--version", "greet@v1", "--version", "greet@v2").exit_code == 0
    body = {"test_name": "greet-ab", "versions": ["greet@v1", "greet@v2"]}
    assert api.api("POST", "/prompts/ab-tests", body).status_code == 201
    # the name is taken: the same 409 in both
    message = cli_error(cli.cli("ab", "create", "greet-ab", "--version", "greet@v1", "--version", "greet@v2"))
    assert api_error(api.api("POST", "/prompts/ab-tests", body), 409, "already_exists") == message
    # stopping a draft: Conflict in both (the API used to say 409, the library InvalidArgument)
    message = cli_error(cli.cli("ab", "stop", "greet-ab", "--decision", "keep_a"))
    stop = api.api("POST", "/prompts/ab-tests/greet-ab/stop", {"decision": "keep_a"})
    assert api_error(stop, 409, "conflict") == message and "only a running test can stop" in message

    assert cli.cli("ab", "start", "greet-ab").exit_code == 0
    assert api.api("POST", "/prompts/ab-tests/greet-ab/start").status_code == 200
    message = cli_error(cli.cli("ab", "start", "greet-ab"))
    assert api_error(api.api("POST", "/prompts/ab-tests/greet-ab/start"), 409, "conflict") == message

    created_and_started = same_rows(cli.new_audit(), api.new_audit(), "token:ops")

    # a second test on the same prompt cannot start while one runs
    for w in worlds:
        experiments.create_test(w.engine, "greet-ab2", [w.v2.id, w.v1.id], created_by="setup")
        w.new_audit()
    message = cli_error(cli.cli("ab", "start", "greet-ab2"))
    assert api_error(api.api("POST", "/prompts/ab-tests/greet-ab2/start"), 409, "conflict") == message
    assert "already running on prompt 'greet'" in message

    assert cli.cli("ab", "stop", "greet-ab", "--decision", "ship_b", "--note", "+4 п.п.").exit_code == 0
    stop = api.api("POST", "/prompts/ab-tests/greet-ab/stop", {"decision": "ship_b", "note": "+4 п.п."})
    assert stop.status_code == 200
    rows = created_and_started + same_rows(cli.new_audit(), api.new_audit(), "token:ops")
    assert rows == [
        {"action": "ab_test.created", "type": "ab_test", "id": "<greet-ab>",
         "details": {"test_name": "greet-ab", "versions": ["<greet@v1>", "<greet@v2>"]}},
        {"action": "ab_test.started", "type": "ab_test", "id": "<greet-ab>", "details": {"test_name": "greet-ab"}},
        {"action": "ab_test.stopped", "type": "ab_test", "id": "<greet-ab>",
         "details": {"test_name": "greet-ab", "decision": "ship_b", "note": "+4 п.п."}},
    ]  # fmt: skip


def test_ab_start_and_stop_from_admin_pages_answer_like_the_api(worlds):
    page, api = worlds
    for w in worlds:
        experiments.create_test(w.engine, "greet-ab", [w.v1.id, w.v2.id], created_by="setup")
        w.new_audit()
    test = experiments.get_test(page.engine, "greet-ab")
    admin = page.admin()
    with admin.session_transaction() as s:
        csrf = s["csrf"]
    stop = {"decision": "keep_a", "confirm": "yes", "csrf_token": csrf}
    assert admin.post(f"/ab/{test.id}/stop", data=stop).status_code == 409  # a draft: as the API
    assert api.api("POST", "/prompts/ab-tests/greet-ab/stop", {"decision": "keep_a"}).status_code == 409
    assert admin.post(f"/ab/{test.id}/start", data={"csrf_token": csrf}).status_code == 303
    assert api.api("POST", "/prompts/ab-tests/greet-ab/start").status_code == 200
    res = admin.post(f"/ab/{test.id}/start", data={"csrf_token": csrf})
    assert res.status_code == 409 and "запустить можно только черновик" in res.get_data(as_text=True)
    page_rows, api_rows = page.new_audit(), api.new_audit()
    assert [a for a, _ in page_rows] == [ADMIN] and [r for _, r in page_rows] == [r for _, r in api_rows]


# ------------------------------------------------------------------------------------ transactions
def test_a_failing_audit_undoes_the_action(engine):
    """The audit row is written in the action's transaction: when it fails, the action is undone."""
    v1 = prompts.create_version(engine, "greet", "Добрий день!", author="setup")
    v2 = prompts.create_version(engine, "greet", "Вітаю!", author="setup")
    prompts.activate_version(engine, v1.id, by="setup")
    test = experiments.create_test(engine, "greet-ab", [v1.id, v2.id], created_by="setup")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
            )
        )
        conn.execute(
            sa.text("CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()")
        )
    with pytest.raises(sa.exc.DBAPIError, match="audit refused"):
        prompts.activate_version(engine, v2.id, by="olena")
    with pytest.raises(sa.exc.DBAPIError, match="audit refused"):
        experiments.start_test(engine, test.id, by="olena")
    with pytest.raises(sa.exc.DBAPIError, match="audit refused"):
        prompts.create_version(engine, "greet", "Третя", author="olena")
    assert prompts.active_version(engine, "greet").id == v1.id
    assert experiments.get_test(engine, test.id).status == "draft"
    assert len(prompts.list_versions(engine, "greet")) == 2


def test_a_refused_action_writes_no_audit_row(engine):
    v1 = prompts.create_version(engine, "greet", "Добрий день!", author="setup")
    prompts.activate_version(engine, v1.id, by="setup")
    before = len(auditlog.audit_entries(engine, limit=10_000))
    with pytest.raises(Conflict):
        prompts.activate_version(engine, v1.id, by="olena")
    with pytest.raises(Conflict):
        prompts.activate_version(engine, v1.id, by="olena", expected_current=uuid.uuid4())
    assert len(auditlog.audit_entries(engine, limit=10_000)) == before


# -------------------------------------------------------------------------------------------- review
CALL_ID = "7c6b1f0e-3d2a-4f5b-8c9d-0e1f2a3b4c5d"  # the same call in both worlds, so their audit rows compare


def queue_a_call(world: World) -> None:
    call = make_call(call_id=CALL_ID)  # of the template's tenant
    ingest_records(world.engine, [call])
    with world.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO review_items (call_id, started_at, reasons, score) "
                "SELECT id, started_at, '{low_score}', 0.3 FROM calls WHERE id = :id"
            ),
            {"id": CALL_ID},
        )
    world.mark = world.last_audit_id()


def test_review_take_and_resolve_same_rows_and_answers(worlds):
    cli, api = worlds
    for world in worlds:
        queue_a_call(world)
    assert cli.cli("review", "take", CALL_ID).exit_code == 0
    assert api.api("POST", f"/review/{CALL_ID}/take").status_code == 200
    resolved = cli.cli(
        "review", "resolve", CALL_ID, "--verdict", "bot_provided_accurate_info=0", "--comment", "неверная цена"
    )
    assert resolved.exit_code == 0, resolved.output
    body = {"verdicts": {"bot_provided_accurate_info": 0}, "comment": "неверная цена"}
    assert api.api("POST", f"/review/{CALL_ID}/resolve", body).status_code == 200
    rows = same_rows(cli.new_audit(), api.new_audit(), "token:ops")
    assert [r["action"] for r in rows] == ["review.taken", "review.resolved"]
    assert rows[1]["details"] == {"verdicts": {"bot_provided_accurate_info": 0}, "comment": "неверная цена"}
    # taking a resolved call: Conflict in both, with the same message, nothing audited
    message = cli_error(cli.cli("review", "take", CALL_ID))
    assert api_error(api.api("POST", f"/review/{CALL_ID}/take"), 409, "conflict") == message
    # a bad verdict: the same refusal, nothing audited
    message = cli_error(cli.cli("review", "resolve", CALL_ID, "--verdict", "bot_provided_accurate_info=2"))
    bad = {"verdicts": {"bot_provided_accurate_info": 2}}
    assert api_error(api.api("POST", f"/review/{CALL_ID}/resolve", bad), 400, "invalid_argument") == message
    assert cli.new_audit() == api.new_audit() == []
