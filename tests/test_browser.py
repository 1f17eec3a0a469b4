"""The admin in a real browser: Debian Chromium driven by Playwright against the app served by waitress
on 127.0.0.1 over a copy of the demo database. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import make_call, turn
from systools import free_port, real_clock_env, require

from ccanalytics.auth import users as auth
from ccanalytics.ingest.load import ingest_records
from webapp import create_app

pytestmark = pytest.mark.xdist_group("reports")  # shares the demo database template with the report tests

SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
PASSWORD = "browser-pass-1234"


@pytest.fixture
def live_admin(demo_engine):
    """(base URL, engine): the admin app served by waitress in a thread."""
    from waitress import create_server

    app = create_app({"ENGINE": demo_engine})
    auth.add_user(demo_engine, "olena", PASSWORD, "admin")
    server = create_server(app, host="127.0.0.1", port=free_port(), threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", demo_engine
    server.close()
    thread.join(timeout=10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    chromium = require("chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"], env=real_clock_env()
        )
        context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        refused = []  # the Content-Security-Policy blocked something the page needs
        pg.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        yield pg
        assert refused == [], refused
        context.close()
        browser.close()


def login(page, base: str) -> None:
    page.goto(f"{base}/calls")
    assert "/login" in page.url  # anonymous users are sent to the login page
    page.fill("input[name=username]", "olena")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/calls**")


def test_login_filter_search_the_journal_and_open_a_call(live_admin, page):
    base, _ = live_admin
    login(page, base)
    page.fill("input[name=from]", "2026-11-18")
    page.fill("input[name=to]", "2026-11-24")
    page.select_option("select[name=scenario]", "order_status")
    page.fill("input[name=q]", "замовлення")
    page.locator("form:has(input[name=q])").locator("button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")
    assert "scenario=order_status" in page.url and "q=" in page.url  # filters are kept in the URL
    rows = page.locator("table tbody tr")
    assert rows.count() > 0
    assert page.locator("mark").count() > 0  # the matches are highlighted
    page.screenshot(path=str(SHOTS / "journal-search.png"), full_page=True)
    page.locator("table tbody tr a[href*='/calls/']").first.click()
    page.wait_for_url("**/calls/*")
    body = page.inner_text("body")
    assert "Клиент" in body or "клиент" in body
    assert "Бот" in body or "бот" in body
    page.screenshot(path=str(SHOTS / "call-details.png"), full_page=True)


def test_a_transcript_with_script_renders_as_text(live_admin, page):
    base, engine = live_admin
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    payload = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    call = make_call(
        started_at=t0,
        tenant="shinservice",  # the demo's database has two tenants
        turns=[
            turn("customer", payload, t0 + timedelta(seconds=2), duration_ms=1500),
            turn("bot", "Дякую, передаю менеджеру.", t0 + timedelta(seconds=5), duration_ms=1500),
        ],
    )
    ingest_records(engine, [call])
    login(page, base)
    page.goto(f"{base}/calls/{call['call_id']}")
    assert page.evaluate("window.__xss") is None  # nothing ran
    assert "<script>window.__xss = 1</script>" in page.inner_text("body")  # shown as text
    page.screenshot(path=str(SHOTS / "xss-as-text.png"), full_page=True)


def _option_value(page, select: str, label: str) -> str:
    """The value of the option of ``select`` whose text starts with ``label``."""
    return page.eval_on_selector(
        select,
        "(el, label) => [...el.options].find(o => o.textContent.trim().startsWith(label)).value",
        label,
    )


def test_new_prompt_version_activate_it_and_run_an_ab_test(live_admin, page):
    base, engine = live_admin
    login(page, base)
    # a new version of the demo prompt
    page.goto(f"{base}/prompts/new")
    page.fill("input[name=name]", "tire_agent")
    page.fill("textarea[name=system_prompt]", "Ти — Олена, помічниця «ШинаМаркет». Відповідай коротко.")
    page.fill("input[name=note]", "коротші відповіді")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/prompts/tire_agent/v3")
    # activate it, with the confirmation step
    page.click("a:has-text('Активировать')")
    page.wait_for_url("**/activate")
    page.screenshot(path=str(SHOTS / "prompt-activate-confirm.png"), full_page=True)
    page.click("button[name=confirm][value=yes]")
    page.wait_for_url("**/prompts/tire_agent")
    active = page.locator("tr.active").inner_text()
    assert "tire_agent@v3" in active and "активна" in active
    # the demo's running test on this prompt must stop before another can start
    page.goto(f"{base}/ab")
    page.click("a:has-text('tire_agent-v1-vs-v2')")
    page.check("input[name=confirm]")
    page.click("button.danger")
    page.wait_for_load_state("networkidle")
    assert "остановлен" in page.inner_text("body").lower()
    # a new test v2 vs v3: create, start, see the live results
    page.goto(f"{base}/ab/new")
    page.fill("input[name=test_name]", "v2-vs-v3")
    page.select_option("select[name=variant_0]", _option_value(page, "select[name=variant_0]", "tire_agent@v2"))
    page.select_option("select[name=variant_1]", _option_value(page, "select[name=variant_1]", "tire_agent@v3"))
    page.fill("textarea[name=description]", "<b>коротші відповіді</b>")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/ab/*")
    page.click("button:has-text('Запустить тест')")
    page.wait_for_load_state("networkidle")
    body = page.inner_text("body")
    assert "v2-vs-v3" in body and "<b>коротші відповіді</b>" in body  # the description shows as text
    assert "Распределение трафика" in body or "SRM" in body
    page.screenshot(path=str(SHOTS / "ab-results.png"), full_page=True)
    with engine.connect() as conn:
        import sqlalchemy as sa

        status = conn.execute(sa.text("SELECT status FROM cca_ab_tests WHERE test_name = 'v2-vs-v3'")).scalar_one()
        audited = {r[0] for r in conn.execute(sa.text("SELECT action FROM audit_log WHERE actor = 'olena'"))}
    assert status == "running"
    assert {"prompt.created", "prompt.activated", "ab_test.stopped", "ab_test.created", "ab_test.started"} <= audited


def test_the_tenant_selector_scopes_the_journal(live_admin, page):
    base, engine = live_admin
    login(page, base)
    page.goto(f"{base}/calls?from=2026-11-24&to=2026-11-24")
    assert "Все сети" in page.inner_text("p.scope")
    assert page.locator("table.calls thead th", has_text="Сеть").count() == 1  # several tenants: a column
    with page.expect_navigation():
        page.select_option("header select[name=tenant]", "prokoleso")  # submits itself
    assert page.url.endswith("/calls?from=2026-11-24&to=2026-11-24")  # back where it was chosen
    assert page.inner_text("p.scope") == "Сеть «ПроКолесо»"
    assert page.eval_on_selector("header select[name=tenant]", "el => el.value") == "prokoleso"
    assert page.locator("table.calls thead th", has_text="Сеть").count() == 0
    scoped = page.locator("table.calls tbody tr a[href*='/calls/']").count()
    with engine.connect() as conn:
        import sqlalchemy as sa

        expected = conn.execute(
            sa.text(
                "SELECT count(*) FROM cca_calls c WHERE c.tenant = 'prokoleso' "
                "AND c.started_at >= :a AND c.started_at < :b"
            ),
            {"a": "2026-11-24T00:00:00+02:00", "b": "2026-11-25T00:00:00+02:00"},
        ).scalar_one()
    assert expected > 0 and scoped == min(expected, 50)  # the journal's first page of that tenant's calls
    page.screenshot(path=str(SHOTS / "tenant-selector.png"), full_page=True)
    page.goto(f"{base}/prompts")  # shared by every tenant: the header says so
    assert "общее для всех сетей" in page.inner_text("header")
