"""Admin pages for prompts, A/B tests, optimizer suggestions, the dashboard and the review actions on
the call page: roles (analyst read-only), CSRF, audit with the logged-in user, the confirmation steps,
escaping of untrusted text, and the live A/B readout on demo data."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import DEMO_END
from factories import add_processor_ab_test, make_call
from test_auth import crawl, csrf_of, logged_in, login

from ccanalytics import quality
from ccanalytics.auth import auditlog
from ccanalytics.core import timeutil
from ccanalytics.core.rutext import num, signed
from ccanalytics.cost import calls as cost
from ccanalytics.experiments import abresults
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ingest.load import ingest
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts
from ccanalytics.quality import Rubric, RulesJudge
from webapp import create_app

pytestmark = pytest.mark.xdist_group("reports")  # the demo template is built once

DAY = date.fromisoformat(DEMO_END)
MINE = ("prompts.", "abtests.", "suggestions.", "dashboard.", "journal.review_")
XSS = "<script>alert('x')</script>"


def make_app(engine, **config):
    return create_app({"ENGINE": engine, "TESTING": True, **config})


def mine(app):
    return [(m, p, e) for m, p, e in crawl(app) if e.startswith(MINE)]


def post(client, path: str, data: dict | None = None):
    return client.post(path, data={"csrf_token": csrf_of(client), **(data or {})})


def text(res) -> str:
    return res.get_data(as_text=True)


def audit_of(engine, action: str) -> list[auditlog.AuditEntry]:
    return auditlog.audit_entries(engine, action=action)


def active_label(engine, name: str) -> str | None:
    found = prompts.active_version(engine, name)
    return found.label if found else None


@pytest.fixture
def app(engine):
    return make_app(engine)


@pytest.fixture
def admin(app, engine):
    return logged_in(app, engine, "olena", "admin")


@pytest.fixture
def demo_app(demo_engine):
    return make_app(demo_engine)


@pytest.fixture
def demo_admin(demo_app, demo_engine):
    return logged_in(demo_app, demo_engine, "olena", "admin")


@pytest.fixture
def demo_analyst(demo_app, demo_engine):
    return logged_in(demo_app, demo_engine, "ivan", "analyst")


def review_call(engine, status: str = "new") -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT call_id::text FROM review_items WHERE status = :s ORDER BY call_id LIMIT 1"), {"s": status}
        ).scalar_one()


# ------------------------------------------------------------------------------------- access rules
def test_anonymous_users_are_sent_to_the_login_page(app):
    client = app.test_client()
    routes = mine(app)
    assert len(routes) >= 15
    for method, path, _ in routes:
        res = client.open(path, method=method)
        assert res.status_code == 302 and res.headers["Location"].startswith("/login"), (method, path)


def test_analysts_read_every_page_but_every_write_is_403(app, engine):
    analyst = logged_in(app, engine, "ivan", "analyst")
    token = csrf_of(analyst)
    writes = 0
    for method, path, _ in mine(app):
        res = analyst.open(path, method=method, headers={"X-CSRF-Token": token}, data={"confirm": "yes"})
        if method == "GET":
            assert res.status_code not in (401, 403) and res.status_code < 500, (path, res.status_code)
        else:
            assert res.status_code == 403, (method, path, res.status_code)
            assert "Нет доступа" in res.get_data(as_text=True)  # a page in Russian (the API answers JSON)
            writes += 1
    assert writes >= 9
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log WHERE action <> 'user.created'")).scalar_one() == 0


def test_admin_reads_every_page_without_server_errors(app, admin):
    for method, path, _ in mine(app):
        if method == "GET":
            res = admin.get(path)
            assert res.status_code < 500 and res.status_code not in (401, 403), (path, res.status_code)


def test_writes_without_the_csrf_token_are_400(app, admin, engine):
    for method, path, _ in mine(app):
        if method == "POST":
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                res = admin.post(path, data={"confirm": "yes", "name": "x"}, headers=headers)
                assert res.status_code == 400 and "Форма устарела" in res.get_data(as_text=True), path
    assert prompts.list_versions(engine) == []


def test_pages_render_for_admin_and_analyst_on_demo_data(demo_engine, demo_admin, demo_analyst):
    v1, v2 = prompts.get_version(demo_engine, "tire_agent@v1"), prompts.get_version(demo_engine, "tire_agent@v2")
    test = experiments.list_tests(demo_engine, status="running")[0]
    s = optimizer.propose(demo_engine, "tire_agent", DAY - timedelta(days=6), DAY)
    pages = [
        f"/dashboard?day={DEMO_END}",
        "/prompts",
        "/prompts/tire_agent",
        "/prompts/tire_agent/v1",
        "/prompts/new",
        f"/prompts/new?from={v2.id}",
        f"/prompts/{v2.id}/diff?against={v1.id}",
        f"/prompts/{v2.id}/diff",
        f"/prompts/{v1.id}/activate" if v2.is_active else f"/prompts/{v2.id}/activate",
        "/prompts/tire_agent/rollback",
        "/ab",
        "/ab?status=running",
        "/ab/new",
        f"/ab/{test.id}",
        "/prompts/suggestions",
        f"/prompts/suggestions/{s.id}",
        f"/calls/{review_call(demo_engine)}",
    ]
    for path in pages:
        seen = {}
        for role, client in (("admin", demo_admin), ("analyst", demo_analyst)):
            res = client.get(path)
            assert res.status_code == 200, (role, path, res.status_code)
            seen[role] = text(res)
        # the analyst gets the same page without any write form (the logout form and the header's tenant
        # selector are the only POSTs)
        assert seen["analyst"].count('method="post"') - seen["analyst"].count("tenant-selector") == 1, path
        assert seen["admin"].count('method="post"') >= 1
    dashboard = text(demo_admin.get(f"/dashboard?day={DEMO_END}"))
    assert "Ключевые цифры" in dashboard and "Решено ботом" in dashboard
    assert dashboard.count('<svg class="chart"') == 2  # quality and cost trends, inline SVG (no PNG per request)
    assert "tire_agent-v1-vs-v2" in dashboard
    call = text(demo_admin.get(f"/calls/{review_call(demo_engine)}"))
    assert 'aria-label="Задержки по репликам: STT / LLM / TTS"' in call and "data:image/png" not in call
    assert "Завершить проверку" in call and "Взять себе" in call


def test_bad_page_parameters_are_clear_errors(app, admin):
    assert admin.get("/dashboard?days=5").status_code == 400
    assert admin.get("/dashboard?day=garbage").status_code == 400
    assert admin.get("/ab?status=paused").status_code == 400
    assert admin.get("/prompts/suggestions?status=maybe").status_code == 400
    assert admin.get("/prompts/Bad%20Name").status_code == 404
    assert admin.get("/prompts/nothing").status_code == 404
    assert admin.get("/prompts/999/diff").status_code == 404
    assert admin.get("/prompts/new?from=abc").status_code == 400
    assert admin.get("/ab/424242").status_code == 404


def test_ids_in_page_addresses_and_forms_are_uuids_with_clear_russian_errors(admin, engine):
    """Prompt versions and A/B tests are addressed by uuid: anything else is a 404 page (an address) or
    a 400 page (a form or query field) that says so in Russian — HTML, not the API's JSON."""
    v1 = prompts.create_version(engine, "greeting", "Привіт", author="test")
    v2 = prompts.create_version(engine, "greeting", "Добрий день", author="test")
    t = experiments.create_test(engine, "greet", [v1.id, v2.id], created_by="test")
    missing = uuid.uuid4()
    cases = [
        ("/prompts/999/diff", 404, "в адресе должен быть её идентификатор (uuid)"),
        ("/prompts/greeting@v1/diff", 404, "в адресе должен быть её идентификатор (uuid)"),
        (f"/prompts/{missing}/diff", 404, f"Версии промпта {missing} нет"),
        (f"/prompts/{missing}/activate", 404, f"Версии промпта {missing} нет"),
        ("/prompts/12/activate", 404, "идентификатор (uuid)"),
        (f"/prompts/{v2.id}/diff?against=1", 400, "«сравнить с»: нужен идентификатор версии (uuid)"),
        (f"/prompts/{v2.id}/diff?against={missing}", 404, f"Версии промпта {missing} нет"),
        ("/prompts/new?from=abc", 400, "«исходная версия»: нужен идентификатор версии (uuid)"),
        (f"/prompts/new?from={missing}", 404, f"Версии промпта {missing} нет"),
        ("/prompts/greeting/v9", 404, "У промпта «greeting» нет версии 9"),
        ("/prompts/nothing", 404, "Промпта «nothing» нет"),
        ("/ab/424242", 404, "в адресе должен быть идентификатор теста (uuid)"),
        ("/ab/greet", 404, "в адресе должен быть идентификатор теста (uuid)"),
        (f"/ab/{missing}", 404, f"A/B-теста {missing} нет"),
        ("/prompts/suggestions/424242", 404, "Предложения #424242 нет"),
        ("/prompts/suggestions/99999999999999999999", 404, "Предложения #99999999999999999999 нет"),
    ]
    for path, status, message in cases:
        res = admin.get(path)
        assert res.status_code == status, (path, res.status_code)
        assert res.mimetype == "text/html" and message in text(res), path
    # the same ids in their canonical and upper-case spellings open the pages
    assert admin.get(f"/prompts/{v2.id}/diff?against={v1.id}").status_code == 200
    assert admin.get(f"/prompts/{str(v2.id).upper()}/diff").status_code == 200
    assert admin.get(f"/ab/{str(t.id).upper()}").status_code == 200
    # writes to a malformed or unknown id change nothing
    assert post(admin, "/ab/1/start").status_code == 404
    assert post(admin, f"/ab/{missing}/stop", {"decision": "keep_a", "confirm": "yes"}).status_code == 404
    assert post(admin, "/prompts/1/activate", {"confirm": "yes", "current": ""}).status_code == 404
    res = post(admin, "/ab/new", {"test_name": "x", "variant_0": "1", "variant_1": str(v2.id)})
    assert res.status_code == 400 and "«вариант A»: нужен идентификатор версии (uuid)" in text(res)
    res = post(admin, "/ab/new", {"test_name": str(missing), "variant_0": str(v1.id), "variant_1": str(v2.id)})
    assert res.status_code == 400 and "не может быть идентификатором (uuid)" in text(res)
    assert experiments.get_test(engine, t.id).status == "draft" and len(experiments.list_tests(engine)) == 1
    assert active_label(engine, "greeting") is None


def test_the_processors_own_ab_tests_are_listed_read_only(app, admin, engine):
    """The A/B list shows the call processor's tests (rows of its prompt_ab_tests as it writes them)
    in their own section, with its counters and status in Russian, and says that per-call results
    cannot be computed — no figure of ccanalytics's for them."""
    v1 = prompts.create_version(engine, "greeting", "Привіт", author="test")
    v2 = prompts.create_version(engine, "greeting", "Добрий день", author="test")
    ours = experiments.create_test(engine, "ours", [v1.id, v2.id], created_by="test")
    day = datetime(2026, 9, 1, tzinfo=UTC)
    with engine.begin() as conn:
        live = add_processor_ab_test(
            conn, "proc-live", v1.id, v2.id, started_at=day + timedelta(days=2), calls_a=41, calls_b=39, quality_a=0.8
        )
        add_processor_ab_test(conn, "proc-quoted", v1.id, v2.id, status=None, started_at=day + timedelta(days=1))
        done = add_processor_ab_test(
            conn, "proc-done", v1.id, v2.id, status="completed", started_at=day, ended_at=day + timedelta(days=3)
        )
    note = "результаты по звонкам посчитать нельзя: процессор не записывает вариант в звонок"
    analyst = logged_in(app, engine, "ivan", "analyst")
    for client in (admin, analyst):
        page = text(client.get("/ab"))
        ours_part, _, theirs = page.partition("Тесты процессора звонков")
        assert theirs, "the section is missing"
        assert "ours" in ours_part and "proc-live" not in ours_part  # not mixed with ccanalytics's tests
        rows = re.findall(r"<tr>(.*?)</tr>", theirs.split("</table>")[0].partition("<tbody>")[2], re.S)
        assert len(rows) == 3 and all(note in r for r in rows)
        live_row = next(r for r in rows if "proc-live" in r)
        cells = [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", live_row, re.S)]
        assert ["идёт"] in cells and ["41"] in cells and ["39"] in cells
        assert "A: 0,80; B: —" in live_row  # the processor's figure; its untouched default 0 is no figure
        quoted_row = next(r for r in rows if "proc-quoted" in r)
        assert "идёт" in quoted_row and "&#39;active&#39;" not in quoted_row and "не записано" in quoted_row
        assert "завершён" in next(r for r in rows if "proc-done" in r)
        assert "greeting@v1" in live_row and "greeting@v2" in live_row
        # read-only: no link to a page of theirs, no form
        assert f"/ab/{live}" not in page and f"/ab/{done}" not in page and f"/ab/{ours.id}" in page
    # the status filter covers their statuses too
    running = text(admin.get("/ab?status=running")).partition("Тесты процессора звонков")[2]
    assert "proc-live" in running and "proc-quoted" in running and "proc-done" not in running
    stopped = text(admin.get("/ab?status=stopped")).partition("Тесты процессора звонков")[2]
    assert "proc-done" in stopped and "proc-live" not in stopped
    assert "Тесты процессора звонков" not in text(admin.get("/ab?status=draft"))
    # their id is no page of ccanalytics's: a 404 that says why
    res = admin.get(f"/ab/{live}")
    assert res.status_code == 404 and "тест процессора звонков" in text(res) and note in text(res)
    assert post(admin, f"/ab/{live}/start").status_code == 404
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT calls_a, calls_b, status FROM prompt_ab_tests WHERE id = :i"), {"i": live})
        assert row.one() == (41, 39, "active")


# ------------------------------------------------------------------------------------------- prompts
def test_prompt_versions_editor_diff_activation_and_rollback_are_audited(admin, engine):
    res = post(admin, "/prompts/new", {"name": "greeting", "system_prompt": "Добрий день!\r\nЧим допомогти?"})
    assert res.status_code == 303 and res.headers["Location"].endswith("/prompts/greeting/v1")
    v1 = prompts.get_version(engine, "greeting@v1")
    assert v1.system_prompt == "Добрий день!\nЧим допомогти?" and v1.created_by == "olena" and not v1.is_active
    assert audit_of(engine, "prompt.created")[0].actor == "olena"
    assert "Создана версия greeting@v1" in text(admin.get(res.headers["Location"]))

    # activation needs the confirmation step
    page = text(admin.get(f"/prompts/{v1.id}/activate"))
    assert "Активировать greeting@v1?" in page and 'name="confirm" value="yes"' in page
    res = post(admin, f"/prompts/{v1.id}/activate", {"current": ""})
    assert res.status_code == 400 and "подтвердите" in text(res)
    assert active_label(engine, "greeting") is None
    res = post(admin, f"/prompts/{v1.id}/activate", {"current": "", "confirm": "yes", "reason": "перша версія"})
    assert res.status_code == 303 and active_label(engine, "greeting") == "greeting@v1"
    entry = audit_of(engine, "prompt.activated")[0]
    assert entry.actor == "olena" and entry.object_id == str(v1.id) and entry.details["reason"] == "перша версія"

    # the editor starts from a version and saves a new one
    page = text(admin.get(f"/prompts/new?from={v1.id}"))
    assert "Чим допомогти?" in page and f'name="base_id" value="{v1.id}"' in page
    same = {"name": "greeting", "system_prompt": v1.system_prompt, "base_id": str(v1.id)}
    assert post(admin, "/prompts/new", same).status_code == 400  # nothing changed
    changed = {**same, "system_prompt": "Добрий день!\nЧим можу допомогти сьогодні?", "note": "тепліше"}
    changed["tools_config"] = '{"tools": ["check_availability"]}'
    res = post(admin, "/prompts/new", changed)
    assert res.status_code == 303 and "greeting@v2" in text(admin.get(res.headers["Location"]))
    v2 = prompts.get_version(engine, "greeting@v2")
    assert v2.tools_config == {"tools": ["check_availability"]} and v2.note == "тепліше"

    # side-by-side diff
    page = text(admin.get(f"/prompts/{v2.id}/diff?against={v1.id}"))
    assert "greeting@v1 → greeting@v2" in page
    row = re.search(r'<tr class="replace">(.*?)</tr>', page, re.S).group(1)
    assert "Чим допомогти?" in row and "Чим можу допомогти сьогодні?" in row
    assert '<tr class="equal">' in page and "Добрий день!" in page and "check_availability" in page
    assert text(admin.get(f"/prompts/{v2.id}/diff")) == page  # default: against the previous version

    # a stale confirmation (someone activated meanwhile) is refused
    res = post(admin, f"/prompts/{v2.id}/activate", {"current": "", "confirm": "yes"})
    assert res.status_code == 409 and active_label(engine, "greeting") == "greeting@v1"
    res = post(admin, f"/prompts/{v2.id}/activate", {"current": str(v1.id), "confirm": "yes"})
    assert res.status_code == 303 and active_label(engine, "greeting") == "greeting@v2"
    res = post(admin, f"/prompts/{v2.id}/activate", {"current": str(v2.id), "confirm": "yes"})
    assert res.status_code == 409  # already active

    # rollback, also behind a confirmation
    page = text(admin.get("/prompts/greeting/rollback"))
    assert "Откатить greeting на greeting@v1?" in page and "Да, откатить" in page
    form = {"current": str(v2.id), "target": str(v1.id), "reason": "скарги"}
    assert post(admin, "/prompts/greeting/rollback", form).status_code == 400
    assert active_label(engine, "greeting") == "greeting@v2"
    res = post(admin, "/prompts/greeting/rollback", {**form, "confirm": "yes"})
    assert res.status_code == 303 and active_label(engine, "greeting") == "greeting@v1"
    entry = audit_of(engine, "prompt.rolled_back")[0]
    assert entry.actor == "olena" and entry.object_id == str(v1.id) and entry.details["from_version_id"] == str(v2.id)
    assert prompts.history(engine, "greeting")[0].kind == "rollback"
    versions = text(admin.get("/prompts/greeting"))
    assert "откат" in versions and "скарги" in versions and "Откатить на greeting@v2" in versions
    assert "greeting@v1" in text(admin.get("/prompts"))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "Bad Name", "system_prompt": "x"}, "имя промпта — строчные латинские буквы"),
        ({"name": "greeting", "system_prompt": "   "}, "system_prompt"),
        ({"name": "greeting", "system_prompt": "x", "tools_config": "{oops"}, "это не JSON"),
        ({"name": "greeting", "system_prompt": "x", "metadata": "[1]"}, "JSON-объект"),
        ({"name": "greeting", "system_prompt": "x", "note": "n" * 2001}, "2 000"),
    ],
)
def test_bad_prompt_forms_keep_the_input_and_change_nothing(admin, engine, form, message):
    res = post(admin, "/prompts/new", form)
    assert res.status_code == 400 and message in text(res)
    assert form["name"] in text(res)  # the form comes back filled in
    assert prompts.list_versions(engine) == []


def test_rollback_without_history_offers_nothing(admin, engine):
    prompts.create_version(engine, "greeting", "Привіт", author="test", activate=True)
    page = text(admin.get("/prompts/greeting/rollback"))
    assert "откатывать некуда" in page and "Да, откатить" not in page
    assert post(admin, "/prompts/greeting/rollback", {"confirm": "yes"}).status_code == 400


def test_untrusted_text_is_escaped_everywhere(admin, engine):
    v1 = prompts.create_version(engine, "greeting", "Привіт", author="test")
    v2 = prompts.create_version(engine, "greeting", f"Привіт {XSS}", author="test", note=XSS)
    t = experiments.create_test(engine, "xss", [v1.id, v2.id], created_by="test", description=XSS)
    for path in (
        "/prompts/greeting",
        "/prompts/greeting/v2",
        f"/prompts/{v2.id}/diff",
        f"/prompts/{v2.id}/activate",
        f"/prompts/new?from={v2.id}",
        f"/ab/{t.id}",
    ):
        page = text(admin.get(path))
        assert XSS not in page and "&lt;script&gt;" in page, path


# ----------------------------------------------------------------------------------------- A/B tests
def test_ab_test_created_started_and_stopped_through_the_pages(demo_engine, demo_admin):
    engine, admin = demo_engine, demo_admin
    demo_test = experiments.list_tests(engine, status="running")[0]
    v2 = prompts.get_version(engine, "tire_agent@v2")
    v3 = prompts.create_version(engine, "tire_agent", v2.system_prompt + "\nВідповідай коротко.", author="test")

    page = text(admin.get(f"/ab/new?versions={v2.id},{v3.id}"))
    assert f'<option value="{v3.id}" selected>' in page
    form = {
        "test_name": "v2-vs-v3",
        "variant_0": str(v2.id),
        "variant_1": str(v3.id),
        "goal_metric": "quality_score",
        "description": f"коротші відповіді {XSS}",
        "min_turns": "2",
    }
    bad = post(admin, "/ab/new", {**form, "variant_1": str(v2.id)})
    assert bad.status_code == 400 and "саму с собой" in text(bad)
    bad = post(admin, "/ab/new", {**form, "weight_0": "70", "weight_1": "20"})
    assert bad.status_code == 400 and "100 %" in text(bad)
    res = post(admin, "/ab/new", {**form, "weight_0": "70", "weight_1": "30"})
    assert res.status_code == 303
    test = experiments.get_test(engine, "v2-vs-v3")
    assert res.headers["Location"].endswith(f"/ab/{test.id}")
    assert test.status == "draft" and [v.weight for v in test.variants] == pytest.approx([0.7, 0.3])
    assert test.created_by == "olena" and test.exclusions == {"min_turns": 2} and test.goal_metric == "quality_score"
    assert audit_of(engine, "ab_test.created")[0].actor == "olena"
    page = text(admin.get(f"/ab/{test.id}"))
    assert "Запустить тест" in page and XSS not in page and "&lt;script&gt;" in page
    assert XSS not in text(admin.get("/ab"))

    # one running test per prompt: the demo test has to stop first
    res = post(admin, f"/ab/{test.id}/start")
    assert res.status_code == 409 and "уже идёт тест" in text(res)  # the library's message in Russian

    # the live readout of the demo test
    readout = admin.get(f"/ab/{demo_test.id}")
    page = text(readout)
    assert "Метрики по вариантам" in page and "Решено без оператора" in page and "Качество" in page
    # the one interval the recommendation uses, as "lo…hi" (− is a minus)
    assert "Где, скорее всего, настоящая разница (95 %)" in page and re.search(r"[-−+]?[0-9][0-9,]*…[-−+]?[0-9]", page)
    assert "SRM" in page and "Сравнение B с A" in page
    assert any(word in page for word in ("продолжать тест", "переключиться", "оставить", "остановить"))
    assert "Качество по критериям" in page
    # the interval charts are inline SVG (no PNG, no <img>): a point and an interval per variant, with
    # the values in Russian format in each variant's hover title; the page still runs no inline script
    assert "<img" not in page and "data:image/png" not in page
    charts = re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S)
    assert [re.search(r"<title>(.*?)</title>", c).group(1) for c in charts] == [
        "Оценка качества: среднее и 95 % ДИ",
        "Решено без оператора, %: доля и 95 % ДИ",
    ]
    results = abresults.results(engine, demo_test.id)
    for chart, unit in zip(charts, ("", " %"), strict=True):
        tips = re.findall(r'<g class="variant"><title>(.*?)</title>', chart)
        assert [t.split(":")[0] for t in tips] == [v.variant for v in results.variants]
        assert all(re.fullmatch(rf"\w+: [0-9,]+{unit} \(95 % ДИ [0-9,−-]+…[0-9,]+{unit}\)", t) for t in tips), tips
        assert "." not in "".join(tips)  # decimal commas
    quality = [v for v in results.variants if v.quality.n]
    assert len(re.findall(r'<g class="variant">', charts[0])) == len(quality)
    policy = readout.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "img-src 'self';" in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # scripts only from files

    # stop with a decision, behind a confirmation
    res = post(admin, f"/ab/{demo_test.id}/stop", {"decision": "keep_a", "note": "мало даних"})
    assert res.status_code == 400 and experiments.get_test(engine, demo_test.id).status == "running"
    res = post(admin, f"/ab/{demo_test.id}/stop", {"decision": "ship_it", "confirm": "yes"})
    assert res.status_code == 400
    res = post(admin, f"/ab/{demo_test.id}/stop", {"decision": "keep_a", "note": "мало даних", "confirm": "yes"})
    assert res.status_code == 303
    stopped = experiments.get_test(engine, demo_test.id)
    assert (stopped.status, stopped.decision, stopped.decision_note, stopped.stopped_by) == (
        "stopped",
        "keep_a",
        "мало даних",
        "olena",
    )
    assert post(admin, f"/ab/{demo_test.id}/stop", {"decision": "keep_a", "confirm": "yes"}).status_code == 409
    page = text(admin.get(f"/ab/{demo_test.id}"))
    assert "оставить контрольный вариант A" in page and "Метрики по вариантам" in page

    res = post(admin, f"/ab/{test.id}/start")
    assert res.status_code == 303 and experiments.get_test(engine, test.id).status == "running"
    page = text(admin.get(f"/ab/{test.id}"))  # just started: no calls yet, still a page
    assert "Остановить с этим решением" in page and "SRM" in page
    actions = [e.action for e in auditlog.audit_entries(engine, object_type="ab_test")]
    assert actions == ["ab_test.started", "ab_test.stopped", "ab_test.created"]
    assert {e.actor for e in auditlog.audit_entries(engine, object_type="ab_test")} == {"olena"}


# ----------------------------------------------------------------------------- optimizer suggestions
def test_optimizer_suggestion_approved_with_an_edit(demo_engine, demo_admin):
    engine, admin = demo_engine, demo_admin
    s = optimizer.propose(engine, "tire_agent", DAY - timedelta(days=6), DAY)
    listing = text(admin.get("/prompts/suggestions?status=proposed"))
    assert f"#{s.id}" in listing and "ждёт решения" in listing
    page = text(admin.get(f"/prompts/suggestions/{s.id}"))
    assert "Что не так в звонках" in page and "Одобрить" in page and "Додаткові правила" in page
    edited = (s.proposed_prompt or "") + "\nНе обіцяй знижок."
    res = post(admin, f"/prompts/suggestions/{s.id}/decide", {"decision": "approve", "prompt_text": edited})
    assert res.status_code == 303
    decided = optimizer.get_suggestion(engine, s.id)
    new = prompts.get_version(engine, decided.new_version_id)
    assert decided.status == "approved" and new.system_prompt == edited and not new.is_active
    assert res.headers["Location"].endswith(f"/prompts/{new.id}/diff?against={s.base_version_id}")
    assert "Не обіцяй знижок." in text(admin.get(res.headers["Location"]))
    assert audit_of(engine, "suggestion.approved")[0].actor == "olena"
    assert audit_of(engine, "prompt.created")[0].object_id == str(new.id)
    again = post(admin, f"/prompts/suggestions/{s.id}/decide", {"decision": "reject"})
    assert again.status_code == 409


# ---------------------------------------------------------------------------------- review actions
def test_review_taken_and_resolved_from_the_call_page(demo_engine, demo_admin):
    engine, admin = demo_engine, demo_admin
    call_id = review_call(engine)
    res = post(admin, f"/calls/{call_id}/review/take")
    assert res.status_code == 303 and res.headers["Location"].endswith(f"/calls/{call_id}#review")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, assigned_to FROM review_items WHERE call_id = :c"), {"c": call_id})
        assert tuple(row.one()) == ("in_review", "olena")
    assert audit_of(engine, "review.taken")[0].object_id == call_id
    page = text(admin.get(f"/calls/{call_id}"))
    assert "на проверке" in page and "Взять себе" not in page

    bad = post(admin, f"/calls/{call_id}/review/resolve", {"verdict_bot_was_concise": "2"})
    assert bad.status_code == 400
    assert post(admin, f"/calls/{call_id}/review/resolve", {}).status_code == 400
    form = {"verdict_bot_was_concise": "0", "verdict_customer_seemed_satisfied": "na", "comment": f"довго {XSS}"}
    res = post(admin, f"/calls/{call_id}/review/resolve", form)
    assert res.status_code == 303
    with engine.connect() as conn:
        labels = dict(
            conn.execute(
                sa.text("SELECT criterion, human_score FROM review_labels WHERE call_id = :c AND reviewer = 'olena'"),
                {"c": call_id},
            ).all()
        )
        status = conn.execute(sa.text("SELECT status FROM review_items WHERE call_id = :c"), {"c": call_id}).scalar()
    assert labels == {"bot_was_concise": 0.0, "customer_seemed_satisfied": None} and status == "resolved"
    entry = audit_of(engine, "review.resolved")[0]
    assert entry.actor == "olena" and entry.object_id == call_id
    assert entry.details == {
        "verdicts": {"bot_was_concise": 0.0, "customer_seemed_satisfied": None},
        "comment": form["comment"],
    }
    page = text(admin.get(f"/calls/{call_id}"))
    assert "проверен" in page and "сохранено вердиктов — 2" in page and "Изменить вердикт" in page
    assert XSS not in page and "&lt;script&gt;" in page

    # a call that is not in the queue
    with engine.connect() as conn:
        other = conn.execute(
            sa.text("SELECT id::text FROM calls WHERE id NOT IN (SELECT call_id FROM review_items) LIMIT 1")
        ).scalar_one()
    assert "Звонка нет в очереди ручной проверки" in text(admin.get(f"/calls/{other}"))
    assert post(admin, f"/calls/{other}/review/take").status_code == 404
    assert post(admin, f"/calls/{uuid.uuid4()}/review/resolve", form).status_code == 404
    assert post(admin, "/calls/not-a-uuid/review/take").status_code == 400


# ----------------------------------------------------------------------------------------- dashboard
def test_dashboard_shows_todays_numbers_and_the_alerts(admin, engine):
    now = datetime.now(UTC).replace(microsecond=0)
    start = max(now - timedelta(minutes=30), timeutil.day_start(timeutil.today()) + timedelta(seconds=1))
    ingest(
        engine,
        [
            make_call(started_at=start, seconds=60),
            make_call(
                started_at=start + timedelta(seconds=5),
                seconds=60,
                transferred_to_operator=True,
                transfer_reason="cannot_help",
                order_created=None,
            ),
        ],
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO alert_events (rule, key, event, severity, title, message, value, threshold, "
                "episode_started_at, created_at) VALUES ('transfer_rate', 'order_status', 'fired', 'warning', "
                ":title, 'Доля переводов 45 % при пороге 30 %', 0.45, 0.3, now(), now())"
            ),
            {"title": f"Переводы выросли {XSS}"},
        )
    page = text(admin.get("/dashboard"))
    numbers = re.search(r'<table class="numbers">(.*?)</table>', page, re.S).group(1)
    assert re.search(r"<td>Звонков</td><td class=\"num\"><b>2</b></td>", numbers)
    assert "50,0 %" in numbers  # resolved by the bot today
    assert "день ещё идёт" in numbers
    assert "Переводы выросли" in page and XSS not in page and "&lt;script&gt;" in page
    assert "сработал" in page and "Доля переводов 45 %" in page


def test_dashboard_links_and_embeds_grafana_when_configured(engine):
    app = make_app(engine, GRAFANA_URL="http://grafana.local:3000/")
    page = text(logged_in(app, engine, "olena", "admin").get("/dashboard"))
    assert 'href="http://grafana.local:3000/d/cca-analytics"' in page
    assert '<iframe class="grafana" src="http://grafana.local:3000/d/cca-realtime?kiosk&amp;refresh=30s"' in page
    for bad in ("javascript:alert(1)", "grafana.local", 'http://x"onload="alert(1)'):
        app = make_app(engine, GRAFANA_URL=bad)
        client = app.test_client()
        login(client, "olena")
        page = text(client.get("/dashboard"))
        assert "<iframe" not in page and "Адрес Grafana не задан" in page, bad


def test_call_page_shows_ccanalytics_figures_beside_the_processors(admin, engine):
    """The call processor's own score and cost stay in the call; the page shows ccanalytics's beside
    them, with the difference, in Russian number format; an unknown speaker is shown as written."""
    call = make_call(caller_id=None)
    ingest(engine, call)
    with engine.begin() as conn:  # the processor's quality task and end-of-call cost
        conn.execute(
            sa.text("UPDATE calls SET quality_score = 0.5, total_cost_usd = 0.02 WHERE id = :i"),
            {"i": call["call_id"]},
        )
    page = " ".join(text(admin.get(f"/calls/{call['call_id']}")).split())
    assert "ccanalytics: ещё не оценён · по данным процессора: 0,50" in page
    assert "ccanalytics: ещё не рассчитана · по данным процессора: 0,0200 $" in page
    quality.enqueue(engine, date_from="2026-11-20", date_to="2026-11-20")
    quality.score_pending(engine, RulesJudge(), Rubric())
    cost.compute_costs(engine, "2026-11-20", "2026-11-20")
    with engine.connect() as conn:
        ours = conn.execute(
            sa.text("SELECT quality_score, total_cost_usd FROM cca_calls WHERE id = :i"), {"i": call["call_id"]}
        ).one()
    page = " ".join(text(admin.get(f"/calls/{call['call_id']}")).split())
    assert (
        f"ccanalytics: {num(ours.quality_score, 2)} · по данным процессора: 0,50 · разница {signed(ours.quality_score - 0.5, 2)}"
        in page
    )
    assert f"по данным процессора: 0,0200 $ · разница {signed(ours.total_cost_usd - 0.02, 4)} $" in page
