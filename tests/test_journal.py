"""The journal and the call details: filters, transcript search with highlights, keyset pages,
escaping of untrusted transcripts, masked phones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import make_call, turn

from ccanalytics.analytics import journal, journalpage, journalsearch, journaltext
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.db.engine import create_engine
from ccanalytics.ingest.load import ingest_records
from webapp import create_app

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)


def calls(n=7):
    out = []
    for i in range(n):
        t = T0 + timedelta(minutes=10 * i)
        text = "Потрібні шини Мішлен 205/55" if i % 2 else "Де моє замовлення ORD-204518?"
        if i == 3:
            text = "<script>alert('x')</script> шини Мішлен"
        out.append(
            make_call(
                started_at=t,
                seconds=60 + i,
                caller_id=f"+38067123450{i}",
                transferred_to_operator=i == 5,
                transfer_reason="cannot_help" if i == 5 else None,
                scenario="order_status" if i % 2 == 0 else "tire_search",
                turns=[
                    turn("bot", "Добрий день!", t + timedelta(seconds=1)),
                    turn("customer", text, t + timedelta(seconds=5)),
                ],
            )
        )
    return out


@pytest.fixture
def data(engine):
    made = calls()
    ingest_records(engine, made)
    return made


def test_filters_search_sort_and_pages(engine, data):
    page = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", limit=3)
    assert len(page.rows) == 3 and page.next_cursor
    assert page.rows[0]["started_at"] > page.rows[1]["started_at"]  # newest first
    assert page.rows[0]["caller"].startswith("+38067") and "*" in page.rows[0]["caller"]
    seen = [r["id"] for r in page.rows]
    while page.next_cursor:
        page = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", limit=3, after=page.next_cursor)
        seen += [r["id"] for r in page.rows]
    assert sorted(seen) == sorted(c["call_id"] for c in data)  # every call once
    found = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", text="шинами")  # inflected
    assert {r["id"] for r in found.rows} == {c["call_id"] for i, c in enumerate(data) if i % 2}
    assert all("Мішлен" in r["snippet"] for r in found.rows)
    brand = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", text="мішлен")
    assert len(brand.rows) == 3
    order = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", text="ORD-204518")
    assert len(order.rows) == 4
    assert [
        r["duration_seconds"]
        for r in journal.search(
            engine, date_from="2026-11-20", date_to="2026-11-20", sort="duration", descending=False, limit=2
        ).rows
    ] == [60, 61]
    assert len(journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", transferred=True).rows) == 1
    assert len(journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", scenario="tire_search").rows) == 3
    for bad in (
        {"sort": "price; DROP TABLE calls"},
        {"limit": 0},
        {"quality_below": 2},
        {"after": "garbage"},
        {"review_status": "maybe"},
        {"text": "x" * 201},
    ):
        with pytest.raises(InvalidArgument):
            journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", **bad)
    # SQL-injection-looking text is just text
    assert journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", text="' OR 1=1 --").rows == []


def test_highlight_escapes_and_marks():
    html = str(journaltext.highlight("<script>alert(1)</script> шини Мішлен", "мішлен"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<mark>Мішлен</mark>" in html


def test_pages_render_escaped_and_masked(engine, data):
    from test_auth import logged_in

    client = logged_in(create_app({"ENGINE": engine, "TESTING": True}), engine, "admin", "admin")
    page = client.get("/calls?from=2026-11-20&to=2026-11-20&q=мішлен")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Журнал звонков" in body
    assert "<script>alert" not in body and "&lt;script&gt;" in body and "<mark>" in body
    assert "+380671234503" not in body
    detail = client.get(f"/calls/{data[3]['call_id']}")
    text = detail.get_data(as_text=True)
    assert detail.status_code == 200 and "Расшифровка" in text and "&lt;script&gt;" in text
    assert "+380671234503" not in text and "create_order_draft" not in text
    assert client.get("/calls/not-a-uuid").status_code == 400
    assert client.get("/calls/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/calls?sort=evil").status_code == 400


def test_call_detail(engine, data):
    d = journal.call_detail(engine, data[1]["call_id"])
    assert [t["speaker"] for t in d["turns"]] == ["bot", "customer"]
    assert "caller_id" not in d["call"] and "*" in d["call"]["caller"]
    with pytest.raises(NotFound):
        journal.call_detail(engine, "00000000-0000-4000-8000-000000000000")


def test_csv_export_keeps_filters_and_masks_phones(engine, data):
    import csv
    import io

    from test_auth import logged_in

    client = logged_in(create_app({"ENGINE": engine, "TESTING": True}), engine, "admin", "admin")
    res = client.get("/calls.csv?from=2026-11-20&to=2026-11-20&scenario=tire_search")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    text = res.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "Начало" and len(rows) == 1 + 3
    assert all("*" in r[2] for r in rows[1:]) and "+38067123450" not in text


# the search plans (ccanalytics.analytics.journalsearch): (PROBE_CALLS, RARE_TURNS, SLICE_DAYS)
PLANS = {
    "as shipped": (journalsearch.PROBE_CALLS, journalsearch.RARE_TURNS, journalsearch.SLICE_DAYS),
    "GIN over the window": (0, 0, 0),
    "probe first": (500, 0, 0),
    "short probe, then GIN": (2, 0, 0),
    "slices of 15 minutes and longer": (0, 0, 15 / 1440),
    "slices, probe for other orders": (2, 0, 15 / 1440),
}


@pytest.mark.parametrize(
    ("sort", "descending", "text"),
    [
        ("date", True, "ORD-204518"),
        ("date", False, "ORD-204518"),
        ("quality", True, "ORD-204518"),
        ("duration", False, "ORD-204518"),
        ("date", True, '"шини Мішлен"'),  # a phrase: the index finds the words, the filter the order
        ("duration", True, '"Мішлен шини"'),  # the same words in the other order: no call
    ],
)
def test_every_search_plan_gives_the_same_pages(engine, data, monkeypatch, sort, descending, text):
    """A search answers through the GIN index, the probe of the first calls in page order, or the GIN
    index over slices of the window (date order), by how many turns match. Every plan gives the same
    pages, cursors and snippets."""

    def pages(plan: tuple[int, int, float]) -> list[list[tuple[str, str]]]:
        for name, value in zip(("PROBE_CALLS", "RARE_TURNS", "SLICE_DAYS"), plan, strict=True):
            monkeypatch.setattr(journalsearch, name, value)
        out, cursor = [], None
        while True:
            page = journal.search(
                engine,
                date_from="2026-11-20",
                date_to="2026-11-20",
                text=text,
                sort=sort,
                descending=descending,
                limit=1,
                after=cursor,
            )
            out.append([(r["id"], r["snippet"]) for r in page.rows])
            if not (cursor := page.next_cursor):
                return out

    results = {name: pages(plan) for name, plan in PLANS.items()}
    first = results["as shipped"]
    assert all(r == first for r in results.values()), results
    found = {"ORD-204518": 4, '"шини Мішлен"': 3, '"Мішлен шини"': 0}[text]  # calls, each once
    assert sum(len(p) for p in first) == found
    assert all(snippet for p in first for _, snippet in p)


# ------------------------------------------------------------------ whole-call search, totals, pages
D = "2026-11-21"
T1 = datetime(2026, 11, 21, 8, tzinfo=UTC)


def dialogue(i: int, *lines: tuple[str, str]) -> dict:
    t = T1 + timedelta(minutes=10 * i)
    return make_call(
        started_at=t,
        seconds=60 + i,
        caller_id=f"+38050111220{i}",
        turns=[turn(speaker, text, t + timedelta(seconds=5 * (n + 1))) for n, (speaker, text) in enumerate(lines)],
    )


@pytest.fixture
def spread(engine):
    made = [
        # the words of «зимові шини Michelin» in three different turns of one call
        dialogue(0, ("bot", "Добрий день!"), ("customer", "Мені потрібні зимові шини"), ("bot", "Є Michelin Alpin")),
        dialogue(1, ("customer", "Шукаю літні шини Michelin"), ("bot", "Маємо Michelin Primacy")),
        dialogue(2, ("customer", "Зимові шини Nokian, будь ласка"), ("bot", "Доставка завтра")),
        dialogue(3, ("customer", "Де шиномонтаж на Лівому березі?"), ("bot", "Шиномонтажна станція на Березняках")),
        dialogue(4, ("customer", "Michelin"), ("bot", "Шини зимові є, доставка Новою поштою")),
    ]
    ingest_records(engine, made)
    return [c["call_id"] for c in made]


def found(engine, text, **kw):
    page = journal.search(engine, date_from=D, date_to=D, text=text, count=True, **kw)
    return page


@pytest.mark.parametrize(
    "plan", ["as shipped", "GIN over the window", "probe first", "slices of 15 minutes and longer"]
)
def test_search_matches_the_whole_call(engine, spread, monkeypatch, plan):
    for name, value in zip(("PROBE_CALLS", "RARE_TURNS", "SLICE_DAYS"), PLANS[plan], strict=True):
        monkeypatch.setattr(journalsearch, name, value)
    ids = lambda page: {r["id"] for r in page.rows}
    # every word somewhere in the call (today's issue: all words had to be in one turn)
    assert ids(found(engine, "зимові шини Michelin")) == {spread[0], spread[4]}
    # a phrase in quotes: its words in this order inside one turn
    assert ids(found(engine, '"зимові шини"')) == {spread[0], spread[2]}
    assert ids(found(engine, '"шини зимові"')) == {spread[4]}
    # a prefix
    assert ids(found(engine, "шиномонт*")) == {spread[3]}
    assert ids(found(engine, "шиномонт")) == set()  # without the star, a whole word
    # an excluded word: no turn of the call has it
    assert ids(found(engine, "шини -Michelin")) == {spread[2]}
    assert ids(found(engine, "Nokian or Primacy")) == {spread[1], spread[2]}
    page = found(engine, "зимові шини Michelin")
    assert page.total == journalpage.Total(2, "exact")
    # the snippet is the first turn that matches a term, with its speaker and number
    first = next(r for r in page.rows if r["id"] == spread[0])
    assert (first["snippet_speaker"], first["snippet_turn"]) == ("customer", 2)
    assert "зимові шини" in first["snippet"]


def test_total_and_pages_in_both_directions(engine, spread, data):
    with engine.begin() as conn:  # the processor scored some calls, ccanalytics others (its score wins)
        for n, call_id in enumerate(spread):
            conn.execute(
                sa.text("UPDATE calls SET quality_score = :q, total_cost_usd = :q WHERE id = :id"),
                {"q": n / 10, "id": call_id},
            )
        for n, c in enumerate(data):
            conn.execute(
                sa.text(
                    "INSERT INTO call_scores (call_id, started_at, judge_kind, judge_model, rubric_version, "
                    "overall_score, criteria) SELECT id, started_at, 'rules', 'rules', 'v1', :q, '{}' FROM calls "
                    "WHERE id = :id"
                ),
                {"q": 0.05 + n / 10, "id": c["call_id"]},
            )
    window = {"date_from": "2026-11-20", "date_to": "2026-11-21"}
    every = journal.search(engine, **window, limit=200, count=True)
    assert every.total == journalpage.Total(12, "exact") and len(every.rows) == 12
    for sort in ("quality", "cost", "date", "duration"):
        for descending in (True, False):
            whole = journal.search(engine, **window, sort=sort, descending=descending, limit=200).rows
            keys = [r["quality_score" if sort == "quality" else "started_at"] for r in whole]
            if sort == "quality":  # ccanalytics's scores and the processor's, merged in one order
                expected = sorted(keys, key=lambda k: -1 if k is None else k, reverse=descending)
                assert keys == expected
            # forward page by page, then back from the last page with the previous-page cursors
            pages, page = [], journal.search(engine, **window, sort=sort, descending=descending, limit=5)
            pages.append(page)
            while page.next_cursor:
                page = journal.search(
                    engine, **window, sort=sort, descending=descending, limit=5, after=page.next_cursor
                )
                pages.append(page)
            assert [r["id"] for p in pages for r in p.rows] == [r["id"] for r in whole]
            assert pages[0].prev_cursor is None and pages[-1].next_cursor is None
            back = [pages[-1]]
            while back[-1].prev_cursor:
                back.append(
                    journal.search(
                        engine, **window, sort=sort, descending=descending, limit=5, before=back[-1].prev_cursor
                    )
                )
            assert [[r["id"] for r in p.rows] for p in reversed(back)] == [[r["id"] for r in p.rows] for p in pages]
    best = journal.search(engine, **window, sort="quality", quality_above=0.3, count=True)
    assert best.total == journalpage.Total(len(best.rows), "exact")
    assert all(r["quality_score"] > 0.3 for r in best.rows) and len(best.rows) == 5


def test_total_is_capped(engine, data, monkeypatch):
    monkeypatch.setattr(journalpage, "COUNT_CAP", 5)
    page = journal.search(engine, date_from="2026-11-20", date_to="2026-11-20", count=True)
    assert page.total == journalpage.Total(5, "at_least")
    assert page.date_from.isoformat() == "2026-11-20" and page.date_to.isoformat() == "2026-11-20"


def test_journal_page_shows_period_total_pages_and_turn_links(engine, spread):
    from test_auth import logged_in

    from ccanalytics.core import clock

    client = logged_in(create_app({"ENGINE": engine, "TESTING": True}), engine, "admin", "admin")
    with clock.frozen(datetime(2026, 11, 22, 12, tzinfo=UTC)):
        body = client.get("/calls").get_data(as_text=True)
    assert "Период: 16.11.2026 — 22.11.2026 (по умолчанию — последние 7 дней)" in body
    assert "Найдено звонков: 5" in body
    body = client.get(f"/calls?from={D}&to={D}&q=зимові+шини+Michelin").get_data(as_text=True)
    assert "Найдено звонков: 2" in body and f'/calls/{spread[0]}#t2"' in body and "Клиент, реплика 2" in body
    body = client.get(f"/calls?from={D}&to={D}&sort=quality&order=asc").get_data(as_text=True)
    assert 'aria-sort="ascending"' in body and "order=desc" in body
    for bad in ("order=up", "before=garbage", "sort=quality&order=%00"):
        res = client.get(f"/calls?from={D}&to={D}&{bad}")
        assert res.status_code == 400 and "Ошибка в запросе" in res.get_data(as_text=True), bad


def test_a_search_sets_no_parallel_workers_its_session_already_has(engine, data, db_url):
    """A search turns PostgreSQL's parallel workers off for its transaction, unless its engine's
    sessions already run without them (the admin's engine): no extra statement per search there."""

    def statements(eng) -> list[str]:
        seen: list[str] = []
        sa.event.listen(eng, "before_cursor_execute", lambda *a: seen.append(a[2]))
        journal.search(eng, date_from="2026-11-20", date_to="2026-11-20", text="шини")
        return [s for s in seen if "max_parallel_workers_per_gather" in s]

    assert statements(engine) == ["SET LOCAL max_parallel_workers_per_gather = 0"]
    admin = create_engine(db_url, pool_size=1, parallel_workers=0)
    try:
        assert statements(admin) == []
        with admin.connect() as conn:
            assert conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar() == "0"
    finally:
        admin.dispose()
