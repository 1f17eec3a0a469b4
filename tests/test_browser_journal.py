"""The journal's controls in a real browser (Chromium through Playwright, as tests/test_browser.py):
the period shown, the total, sorting by a column in both directions, the next and previous pages, and
a search snippet's link to its turn on the call page."""

from __future__ import annotations

import re

import pytest
from test_browser import live_admin, login, page  # noqa: F401 — the fixtures of the browser tests

pytestmark = pytest.mark.xdist_group("reports")  # shares the demo database template with the report tests

WEEK = "from=2026-11-18&to=2026-11-24"


def scores(pg) -> list[float]:
    texts = pg.locator("table.calls tbody tr:not(.snippet) td:nth-child(6)").all_inner_texts()
    return [float(t.replace(",", ".")) for t in texts if re.match(r"^[0-9]", t.strip())]


def ids(pg) -> list[str]:
    return pg.eval_on_selector_all(
        "table.calls tbody tr:not(.snippet) td:first-child a", "els => els.map(e => e.getAttribute('href'))"
    )


def test_journal_period_total_sort_and_pages(live_admin, page):  # noqa: F811
    base, _ = live_admin
    login(page, base)
    page.goto(f"{base}/calls")
    assert "(по умолчанию — последние 7 дней)" in page.inner_text("#period")  # the default window, visible
    page.goto(f"{base}/calls?{WEEK}")
    assert "Период: 18.11.2026 — 24.11.2026" in page.inner_text("#period")
    assert re.search(r"Найдено звонков: (больше )?[0-9]", page.inner_text("#total"))
    # sort by the quality column: best first, then worst first
    with page.expect_navigation():
        page.click("th.sortable a:has-text('Оценка')")
    assert "sort=quality" in page.url and "order=desc" in page.url
    assert page.get_attribute("th.sortable:has-text('Оценка')", "aria-sort") == "descending"
    best = scores(page)
    assert best and best == sorted(best, reverse=True)
    with page.expect_navigation():
        page.click("th.sortable a:has-text('Оценка')")
    assert "order=asc" in page.url
    worst = scores(page)
    assert worst and worst == sorted(worst) and worst[0] <= best[-1]
    assert page.eval_on_selector("select[name=order]", "el => el.value") == "asc"
    # next page, then back
    first = ids(page)
    with page.expect_navigation():
        page.click("a[rel=next]")
    second = ids(page)
    assert second and not set(second) & set(first)
    with page.expect_navigation():
        page.click("a[rel=prev]")
    assert ids(page) == first
    assert page.locator("a[rel=prev]").count() == 0  # the first page has no previous one
    page.screenshot(path="test-artifacts/screenshots/journal-sorted-pages.png", full_page=True)


def test_search_snippet_links_to_its_turn(live_admin, page):  # noqa: F811
    base, _ = live_admin
    login(page, base)
    page.goto(f"{base}/calls?{WEEK}")
    page.fill("input[name=q]", "замовлення")
    with page.expect_navigation():
        page.locator("form.filters button[type=submit]").click()
    link = page.locator("tr.snippet a.turn").first
    label = link.inner_text()
    assert re.match(r"^(Клиент|Бот), реплика [0-9]+$", label)
    number = label.rsplit(" ", 1)[1]
    with page.expect_navigation():
        link.click()
    assert page.url.endswith(f"#t{number}")
    assert "замовлен" in page.inner_text(f"li#t{number}").lower()
