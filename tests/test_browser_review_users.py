"""The review queue and the users pages in a real browser (Debian Chromium through Playwright, the app
served by waitress over a copy of the demo database; fixtures of tests/test_browser.py). Screenshots go
to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_browser import PASSWORD, SHOTS, live_admin, login, page  # noqa: F401 (fixtures)

from ccanalytics.auth import auditlog, passwords
from ccanalytics.auth import users as auth

pytestmark = pytest.mark.xdist_group("reports")  # shares the demo database template with the report tests


def test_review_queue_filter_take_resolve_and_history(live_admin, page):  # noqa: F811
    base, engine = live_admin
    login(page, base)
    page.click("header nav a:has-text('Проверка')")
    page.wait_for_url(f"{base}/review")
    total = page.locator("p.total b").inner_text()
    with engine.connect() as conn:
        queued = conn.execute(sa.text("SELECT count(*) FROM review_items")).scalar_one()
    assert total.startswith(str(queued))
    # filter: waiting calls, newest first
    page.select_option("select[name=status]", "new")
    page.select_option("select[name=sort]", "date")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/review?*status=new*")
    first = page.locator("table.review-queue tbody tr[data-call]").first
    call_id = first.get_attribute("data-call")
    # take it: back on the same filtered page, with a message
    first.locator("button:has-text('Взять')").click()
    page.wait_for_url("**/review?*status=new*")
    assert "назначен вам" in page.inner_text("body")
    assert page.locator(f"tr[data-call='{call_id}']").count() == 0  # no longer waiting
    page.goto(f"{base}/review?status=in_review&reviewer=olena")
    row = page.locator(f"tr[data-call='{call_id}']")
    assert "на проверке" in row.inner_text() and "olena" in row.inner_text()
    page.screenshot(path=str(SHOTS / "review-queue.png"), full_page=True)
    # resolve it on the call page, next to the transcript and the score's composition
    row.locator("a:has-text('Проверить')").click()
    page.wait_for_url(f"**/calls/{call_id}#review")
    assert "Вес × оценка" in page.inner_text("body")
    page.select_option("select[name=verdict_bot_was_concise]", "0")
    page.select_option("select[name=verdict_customer_seemed_satisfied]", "na")
    page.fill("textarea[name=comment]", "Бот говорив задовго")
    page.click("form.review button[type=submit]")
    page.wait_for_url(f"**/calls/{call_id}#review")
    assert "Проверка завершена" in page.inner_text("body")
    page.screenshot(path=str(SHOTS / "call-composition.png"), full_page=True)
    # who reviewed what
    page.click("a:has-text('кто проверял этот звонок')")
    page.wait_for_url("**/review/history?call=*")
    history = page.inner_text("table.history")
    assert "завершил проверку" in history and "взял на проверку" in history
    assert "Краткость: 0,00" in history and "Бот говорив задовго" in history
    page.goto(f"{base}/review/history")
    assert "olena" in page.inner_text("table.reviewers")
    page.screenshot(path=str(SHOTS / "review-history.png"), full_page=True)
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM review_items WHERE call_id = :c"), {"c": call_id}
        ).scalar_one()
    assert status == "resolved"
    assert {e.action for e in auditlog.audit_entries(engine, actor="olena")} >= {"review.taken", "review.resolved"}
    # a bad filter in the address: a Russian page, not a server error
    response = page.goto(f"{base}/review?from=2026-02-30")
    assert response.status == 400 and "такой даты нет" in page.inner_text("body")


def test_users_create_disable_reset_and_tokens(live_admin, page):  # noqa: F811
    base, engine = live_admin
    login(page, base)
    page.click("header nav a:has-text('Пользователи')")
    page.wait_for_url(f"{base}/users")
    # a new analyst with a generated password, shown once
    page.fill("input[name=username]", "marta")
    page.select_option("select[name=role]", "analyst")
    page.check("input[name=tenant][value=prokoleso]")
    page.click("form.account button[type=submit]")
    page.wait_for_load_state("networkidle")
    password = page.input_value("input.secret")
    assert len(password) >= passwords.MIN_PASSWORD_LENGTH and "один раз" in page.inner_text("body")
    page.screenshot(path=str(SHOTS / "user-created.png"), full_page=True)
    page.click("a:has-text('Готово')")
    page.wait_for_url(f"{base}/users/marta")
    assert "ПроКолесо" in page.inner_text("dl.facts")
    # marta logs in in her own browser context
    other = page.context.browser.new_context(locale="ru-RU")
    marta = other.new_page()
    marta.goto(f"{base}/login")
    marta.fill("input[name=username]", "marta")
    marta.fill("input[name=password]", password)
    marta.click("button[type=submit]")
    marta.wait_for_url(f"{base}/")
    marta.goto(f"{base}/review")
    assert "Проверка" in marta.locator("header nav").inner_text()
    assert "Пользователи" not in marta.locator("header nav").inner_text()  # analysts: no users page
    assert marta.goto(f"{base}/users").status == 403
    # disabling her ends her session at once
    page.click("button:has-text('Отключить')")
    page.wait_for_url(f"{base}/users/marta")
    assert "сеансы завершены" in page.inner_text("body")
    marta.goto(f"{base}/review")
    assert "/login" in marta.url
    other.close()
    page.goto(f"{base}/users")
    assert "отключён" in page.locator("tr[data-user=marta]").inner_text()
    page.screenshot(path=str(SHOTS / "users.png"), full_page=True)
    # enable and reset her password: a new one, shown once
    page.goto(f"{base}/users/marta")
    page.click("button:has-text('Включить снова')")
    page.wait_for_url(f"{base}/users/marta")
    page.click("button:has-text('Сменить пароль')")
    page.wait_for_load_state("networkidle")
    fresh = page.input_value("input.secret")
    assert fresh != password
    assert auth.verify_password(engine, "marta", fresh) is not None
    # an API token: created, shown once, revoked after confirmation
    page.goto(f"{base}/tokens")
    page.fill("input[name=name]", "call-processor")
    page.select_option("select[name=role]", "service")
    page.click("form.account button[type=submit]")
    page.wait_for_load_state("networkidle")
    token = page.input_value("input.secret")
    assert auth.check_token(engine, token) is not None
    page.goto(f"{base}/tokens")
    row = page.locator("tr[data-token=call-processor]")
    assert "olena" in row.inner_text()
    row.locator("input[name=confirm]").check()
    row.locator("button:has-text('Отозвать')").click()
    page.wait_for_url(f"{base}/tokens")
    assert "отозван" in page.inner_text("body")
    assert auth.check_token(engine, token) is None
    page.screenshot(path=str(SHOTS / "tokens.png"), full_page=True)
    actions = {e.action for e in auditlog.audit_entries(engine, actor="olena")}
    assert {
        "user.created",
        "user.disabled",
        "user.enabled",
        "user.password_changed",
        "token.created",
        "token.revoked",
    } <= actions
    assert PASSWORD not in page.content()  # the admin's own password is never shown
