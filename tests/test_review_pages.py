"""The review queue pages (/review, /review/history) and the call page's score composition and tool
JSON, on demo data: filters against the database, taking and resolving with their audit rows written
in the action's own transaction, roles as the API enforces them, masked comments and tool arguments for
analysts, Russian 400 pages for bad input."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import DEMO_END
from factories import make_call, turn
from test_auth import csrf_of, logged_in

from ccanalytics import quality
from ccanalytics.auth import auditlog
from ccanalytics.auth import users as auth
from ccanalytics.core import labels
from ccanalytics.core.definitions import LOW_QUALITY
from ccanalytics.ingest.load import ingest_records
from ccanalytics.quality import Rubric, composition, review
from ccanalytics.quality.rubric import CriterionScore, overall
from webapp import create_app

pytestmark = pytest.mark.xdist_group("reports")  # the demo template is built once

DAY = date.fromisoformat(DEMO_END)
PHONE = "+380661234567"


@pytest.fixture
def app(demo_engine):
    return create_app({"ENGINE": demo_engine, "TESTING": True})


@pytest.fixture
def admin(app, demo_engine):
    return logged_in(app, demo_engine, "olena", "admin")


@pytest.fixture
def analyst(app, demo_engine):
    return logged_in(app, demo_engine, "ivan", "analyst")


def text(res) -> str:
    return res.get_data(as_text=True)


def visible(res) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", text(res), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def post(client, path: str, data: dict | None = None):
    return client.post(path, data={"csrf_token": csrf_of(client), **(data or {})})


def rows_of(res) -> list[str]:
    return re.findall(r'<tr data-call="([0-9a-f-]{36})"', text(res))


def db(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# ------------------------------------------------------------------------------------------ the queue
def test_the_queue_lists_what_the_database_holds_with_every_filter(demo_engine, admin, analyst):
    all_items = db(demo_engine, "SELECT call_id::text, status FROM review_items")
    assert len(all_items) > 10
    for client in (admin, analyst):
        res = client.get("/review")
        assert res.status_code == 200
        assert f"Найдено: {len(all_items)}" in visible(res).replace("\u202f", "").replace("\xa0", "")
        assert "за всё время" in visible(res)
    # lowest scores first, 50 a page, the second page holds the rest
    first = rows_of(admin.get("/review"))
    expected = [
        r[0]
        for r in db(
            demo_engine, "SELECT call_id::text FROM review_items ORDER BY score NULLS FIRST, started_at DESC, call_id"
        )
    ]
    assert first == expected[:50]
    # a failed criterion: the judge's current score for it is under LOW_QUALITY
    nonempty = 0
    for criterion in labels.CRITERIA:
        shown = set(rows_of(admin.get(f"/review?criterion={criterion}&page=1")))
        truth = {
            r[0]
            for r in db(
                demo_engine,
                "SELECT r.call_id::text FROM review_items r JOIN call_scores s ON s.current_call_id = r.call_id "
                "WHERE coalesce((s.criteria -> :c ->> 'applicable')::boolean, true) "
                "AND (s.criteria -> :c ->> 'score')::float8 < :low",
                c=criterion,
                low=LOW_QUALITY,
            )
        }
        assert shown <= truth and len(shown) == min(len(truth), 50), criterion
        nonempty += bool(truth)
    assert nonempty >= 2
    # period: the calls of one local day
    one_day = DAY - timedelta(days=1)
    shown = set(rows_of(admin.get(f"/review?from={one_day}&to={one_day}")))
    truth = {
        r[0]
        for r in db(
            demo_engine,
            "SELECT call_id::text FROM review_items WHERE (started_at AT TIME ZONE 'Europe/Kyiv')::date = :d",
            d=one_day,
        )
    }
    assert shown == truth and "за " + one_day.strftime("%d.%m.%Y") in visible(
        admin.get(f"/review?from={one_day}&to={one_day}")
    )
    # tenant: the URL's tenant, like the journal's links
    for slug in ("prokoleso", "shinservice"):
        shown = set(rows_of(admin.get(f"/review?tenant={slug}&sort=date")))
        truth = {
            r[0]
            for r in db(
                demo_engine,
                "SELECT r.call_id::text FROM review_items r JOIN cca_calls c ON c.id = r.call_id WHERE c.tenant = :t "
                "ORDER BY r.started_at DESC LIMIT 50",
                t=slug,
            )
        }
        assert shown == truth and shown, slug
    # status and reviewer
    call_id = all_items[0][0]
    review.take(demo_engine, call_id, "marta")
    assert rows_of(admin.get("/review?status=in_review&reviewer=marta")) == [call_id]
    assert rows_of(admin.get("/review?status=new&reviewer=marta")) == []


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-13-01",
        "from=yesterday",
        "to=9999-12-31",
        "from=0001-01-01",
        "from=2026-11-20&to=2026-11-10",
        "status=closed",
        "criterion=nonsense",
        "sort=random",
        "page=0",
        "page=abc",
        "page=99999999",
        "reviewer=%00",
        "tenant=nowhere",
        "reviewer=" + "x" * 300,
    ],
)
def test_bad_filters_are_a_russian_400_page(admin, query):
    for path in ("/review", "/review/history"):
        if path == "/review/history" and query.split("=")[0] in ("status", "criterion", "sort"):
            continue
        res = admin.get(f"{path}?{query}")
        assert res.status_code == 400, (path, query, res.status_code)
        assert res.mimetype == "text/html" and re.search("[А-Яа-я]", visible(res)), (path, query)


def test_taking_from_the_queue_is_audited_in_the_same_transaction(demo_engine, admin, analyst):
    call_id = db(demo_engine, "SELECT call_id::text FROM review_items WHERE status = 'new' LIMIT 1")[0][0]
    back = "/review?status=new&sort=date"
    # analysts read the queue but may not take (as in the API): 403, nothing changes
    res = analyst.post(f"/review/{call_id}/take", data={"csrf_token": csrf_of(analyst), "next": back})
    assert res.status_code == 403
    assert 'action="/review/' not in text(analyst.get("/review"))  # no take button for them
    # no CSRF token: refused
    assert admin.post(f"/review/{call_id}/take", data={"next": back}).status_code == 400
    assert not auditlog.audit_entries(demo_engine, action="review.taken")
    res = post(admin, f"/review/{call_id}/take", {"next": back})
    assert res.status_code == 303 and res.headers["Location"] == back
    assert "назначен вам" in visible(admin.get(back))
    row = db(
        demo_engine,
        "SELECT r.status, r.assigned_to, r.xmin::text AS x, a.actor, a.xmin::text AS ax FROM review_items r "
        "JOIN audit_log a ON a.object_id = r.call_id::text AND a.action = 'review.taken' WHERE r.call_id = :c",
        c=call_id,
    )
    assert len(row) == 1
    status, assigned, xmin, actor, audit_xmin = row[0]
    assert (status, assigned, actor) == ("in_review", "olena", "olena")
    assert xmin == audit_xmin  # one transaction wrote both
    # reassigning from another reviewer records whom it was taken from
    review.take(demo_engine, call_id, "marta")
    post(admin, f"/review/{call_id}/take", {"next": back})
    assert auditlog.audit_entries(demo_engine, action="review.taken")[0].details == {"from": "marta"}
    # an unknown call, a bad id, a foreign next
    assert post(admin, f"/review/{uuid.uuid4()}/take").status_code == 404
    assert post(admin, "/review/not-a-call/take").status_code == 400
    res = post(admin, f"/review/{call_id}/take", {"next": "https://evil.example/x"})
    assert res.headers["Location"] == "/"
    # a resolved call cannot be taken: a flash, no audit row
    review.resolve(demo_engine, call_id, "olena", {"bot_was_concise": 1.0})
    before = len(auditlog.audit_entries(demo_engine, action="review.taken"))
    res = post(admin, f"/review/{call_id}/take", {"next": back})
    assert res.status_code == 303 and "уже проверен" in visible(admin.get(back))
    assert len(auditlog.audit_entries(demo_engine, action="review.taken")) == before


def test_resolving_on_the_call_page_shows_in_who_reviewed_what(demo_engine, admin, analyst):
    calls = [r[0] for r in db(demo_engine, "SELECT call_id::text FROM review_items WHERE status = 'new' LIMIT 2")]
    comment = f"Клієнт {PHONE} просив передзвонити"
    assert post(admin, f"/calls/{calls[0]}/review/take").status_code == 303
    form = {"verdict_bot_was_concise": "0", "verdict_customer_seemed_satisfied": "na", "comment": comment}
    assert post(admin, f"/calls/{calls[0]}/review/resolve", form).status_code == 303
    # the library wrote the audit row with the resolution, in its transaction
    row = db(
        demo_engine,
        "SELECT r.xmin::text, a.xmin::text, a.details FROM review_items r JOIN audit_log a "
        "ON a.object_id = r.call_id::text AND a.action = 'review.resolved' WHERE r.call_id = :c",
        c=calls[0],
    )
    assert len(row) == 1 and row[0][0] == row[0][1]
    assert row[0][2] == {"verdicts": {"bot_was_concise": 0.0, "customer_seemed_satisfied": None}, "comment": comment}
    review.take(demo_engine, calls[1], "marta")
    res = admin.get("/review/history")
    page = visible(res)
    assert res.status_code == 200
    assert "olena" in page and "marta" in page and "завершил проверку" in page and "взял на проверку" in page
    assert "Краткость: 0,00" in page and "Клиент доволен: неприменимо" in page
    assert PHONE in page  # admins see the comment as written
    masked = visible(analyst.get("/review/history"))
    assert PHONE not in masked and "Клієнт +38066" in masked  # analysts: masked
    assert PHONE not in visible(analyst.get("/review?status=resolved"))
    # per reviewer and by period
    assert re.search(r"olena\s+1\s+1\b", page) and re.search(r"marta\s+1\s+0\b", page)
    only = visible(admin.get("/review/history?reviewer=marta"))
    assert "marta" in only and "завершил проверку" not in only
    today = datetime.now(UTC).date()
    assert "Действий нет" in visible(admin.get(f"/review/history?to={today - timedelta(days=400)}"))
    one = visible(admin.get(f"/review/history?call={calls[0]}"))
    assert "olena" in one and "marta" not in one.split("Действия", 1)[1]
    assert admin.get("/review/history?call=nope").status_code == 400
    # the call page links to its history
    assert f"/review/history?call={calls[0]}" in text(admin.get(f"/calls/{calls[0]}"))


def test_history_is_scoped_to_the_readers_tenants(demo_engine, app):
    theirs = db(
        demo_engine,
        "SELECT r.call_id::text FROM review_items r JOIN cca_calls c ON c.id = r.call_id "
        "WHERE c.tenant = 'shinservice' LIMIT 1",
    )[0][0]
    mine = db(
        demo_engine,
        "SELECT r.call_id::text FROM review_items r JOIN cca_calls c ON c.id = r.call_id "
        "WHERE c.tenant = 'prokoleso' LIMIT 1",
    )[0][0]
    review.take(demo_engine, theirs, "marta")
    review.take(demo_engine, mine, "marta")
    auth.add_user(demo_engine, "petro", "correct horse battery staple", "admin", tenants=["prokoleso"])
    client = app.test_client()
    from test_auth import login

    assert login(client, "petro").status_code == 302
    page = text(client.get("/review/history"))
    assert mine in page and theirs not in page
    assert theirs not in text(client.get("/review?status=in_review"))
    assert post(client, f"/review/{theirs}/take").status_code == 404  # as if it were not queued
    assert client.get("/review?tenant=shinservice").status_code == 403


# ------------------------------------------------------------------------------------ the call page
def test_every_demo_score_is_reconciled_by_its_composition(demo_engine):
    rows = db(demo_engine, "SELECT overall_score, details FROM call_scores WHERE is_current")
    assert len(rows) > 100
    for stored, details in rows:
        parts = composition.compose(details, Rubric(), stored)
        assert parts.weights_source == "stored" and parts.matches, (stored, details["rubric_version"])
        assert details["weights"] == quality.DEFAULT_WEIGHTS  # the demo scores with the default rubric
        if not parts.auto_failed:
            assert parts.computed == pytest.approx(parts.weighted_sum / parts.weight_total, abs=5e-5)


def test_composition_follows_the_judge_rule_for_weights_auto_fail_and_the_processor():
    rubric = Rubric()

    def judged(scores: dict[str, float | None]) -> dict:
        criteria = {
            name: CriterionScore(score if score is not None else 1.0, score is not None, "")
            for name, score in scores.items()
        }
        total = overall(criteria, rubric)
        return {
            "overall": total.score,
            "criteria": {n: c.to_dict() for n, c in criteria.items()},
            "rubric_version": rubric.version,
            "auto_failed": total.auto_failed,
        }

    scores = dict.fromkeys(quality.DEFAULT_WEIGHTS, 1.0) | {
        "bot_greeted_properly": 0.0,  # weight 0.5
        "bot_understood_intent": 0.5,  # weight 1.5
        "bot_confirmed_before_action": None,  # not applicable: out of the sum
    }
    parts = composition.compose(judged(scores), rubric)
    # Σw over applicable = 9.5 − 1.0 = 7.5; Σ w×s = 7.5 − 0.5 − 0.75 = 6.25; 6.25 / 7.5 = 0.8333
    assert parts.weight_total == pytest.approx(7.5) and parts.weighted_sum == pytest.approx(6.25)
    assert parts.computed == parts.stored == 0.8333 and parts.matches
    skipped = {p.criterion: p for p in parts.parts}["bot_confirmed_before_action"]
    assert not skipped.counted and skipped.contribution is None
    assert sum(p.share for p in parts.parts if p.counted) == pytest.approx(1.0)
    # an auto-fail criterion under its threshold: 0 whatever the mean
    failed = composition.compose(judged(scores | {"bot_provided_accurate_info": 0.25}), rubric)
    assert failed.auto_failed and failed.computed == 0.0 and failed.mean > 0.5 and failed.matches
    assert [p.criterion for p in failed.parts if p.failed] == ["bot_provided_accurate_info"]
    # a rubric changed since: said so, and the sum need not match
    other = Rubric(weights=quality.DEFAULT_WEIGHTS | {"bot_greeted_properly": 3.0})
    changed = composition.compose(judged(scores), other)
    assert changed.weights_source == "rubric_changed" and not changed.matches
    # the processor's evaluation: the plain mean of its criteria
    processor = {"criteria": {"a": {"score": 0.2}, "b": {"score": 0.6}}, "judge": {"kind": "processor"}}
    plain = composition.compose(processor, rubric, 0.4)
    assert plain.kind == "processor" and plain.weights_source == "equal" and plain.matches
    assert [p.weight for p in plain.parts] == [1.0, 1.0]
    assert composition.compose(None, rubric) is None and composition.compose({"x": 1}, rubric) is None


def test_the_call_page_shows_weights_and_how_the_score_is_made(demo_engine, admin, analyst):
    call_id, stored, details = db(
        demo_engine,
        "SELECT call_id::text, overall_score, details FROM call_scores WHERE is_current AND NOT auto_failed "
        "AND overall_score < 0.7 ORDER BY overall_score LIMIT 1",
    )[0]
    parts = composition.compose(details, Rubric(), stored)
    for client in (admin, analyst):
        page = visible(client.get(f"/calls/{call_id}"))
        assert "Вес × оценка" in page and "Доля веса" in page
        for p in parts.parts:
            if p.counted:
                weight = f"{p.weight:.1f}".replace(".", ",")
                contribution = f"{p.contribution:.3f}".replace(".", ",")
                assert re.search(rf"{weight}\s+\S+\s+{contribution}", page), (p.criterion, weight, contribution)
        total = f"{parts.weighted_sum:.3f}".replace(".", ",")
        weights = f"{parts.weight_total:.1f}".replace(".", ",")
        score = f"{stored:.2f}".replace(".", ",")
        assert f"{total} ÷ {weights} = {score}" in page
        assert f"совпадает с оценкой звонка {score}" in page
        assert "веса, с которыми звонок оценён" in page
    failed = db(demo_engine, "SELECT call_id::text FROM call_scores WHERE is_current AND auto_failed LIMIT 1")
    if failed:
        page = visible(admin.get(f"/calls/{failed[0][0]}"))
        assert "Провал ключевого критерия" in page and "итоговая оценка звонка — 0" in page


def test_the_call_page_keeps_the_weights_the_call_was_scored_with(engine):
    """Scored with weights A; the configured rubric changes to B: the page still shows A, and Σ gives
    the stored score."""
    call = make_call()
    ingest_records(engine, [call])
    scored_with = Rubric(
        weights=quality.DEFAULT_WEIGHTS | {"bot_greeted_properly": 4.0, "bot_was_concise": 0.0},
        auto_fail=("bot_provided_accurate_info",),
        auto_fail_below=0.3,
    )
    quality.enqueue(engine)
    quality.score_pending(engine, quality.RulesJudge(), scored_with)
    [(stored, details)] = db(engine, "SELECT overall_score, details FROM call_scores WHERE is_current")
    assert details["weights"] == dict(scored_with.weights)
    assert (details["auto_fail"], details["auto_fail_below"]) == (["bot_provided_accurate_info"], 0.3)
    now = Rubric(weights=quality.DEFAULT_WEIGHTS | {"bot_greeted_properly": 0.1, "bot_was_concise": 3.0})
    parts = composition.compose(details, now, stored)
    assert parts.weights_source == "stored" and parts.matches and parts.auto_fail_below == 0.3
    assert {p.criterion: p.weight for p in parts.parts} == dict(scored_with.weights)
    assert [p.criterion for p in parts.parts if p.auto_fail] == ["bot_provided_accurate_info"]
    # without the stored weights (a score kept before they were), the changed rubric does not reconcile
    older = {k: v for k, v in details.items() if k not in ("weights", "auto_fail", "auto_fail_below")}
    assert composition.compose(older, now, stored).weights_source == "rubric_changed"

    app = create_app({"ENGINE": engine, "TESTING": True, "QUALITY_RUBRIC": now})
    page = visible(logged_in(app, engine, "olena", "admin").get(f"/calls/{call['call_id']}"))
    greeted = {p.criterion: p for p in parts.parts}["bot_greeted_properly"]
    assert re.search(rf"Приветствие \S*\s*4,0 \S+ {greeted.contribution:.3f}".replace(".", ","), page), page
    assert re.search(r"Краткость \S*\s*0,0 \S+ не учитывается", page)
    score = f"{stored:.2f}".replace(".", ",")
    total = f"{parts.weighted_sum:.3f} ÷ {parts.weight_total:.1f} = {score}".replace(".", ",")
    assert total in page and f"совпадает с оценкой звонка {score}" in page
    assert "веса, с которыми звонок оценён" in page and "веса текущей рубрики" not in page


def test_tool_arguments_are_readable_json_masked_for_analysts(demo_engine, admin, analyst):
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    tool = {
        "name": "create_order_draft",
        "args": {"customer": {"name": "Мар'яна Коваль", "phone": PHONE}, "note": "<b>терміново</b>"},
        "result": {"order_id": "ORD-1", "message": "Замовлення для Мар'яни створено"},
        "duration_ms": 410,
        "success": True,
    }
    call = make_call(
        started_at=t0,
        tenant="prokoleso",
        turns=[
            turn("customer", "Оформіть, будь ласка.", t0 + timedelta(seconds=2)),
            turn("bot", "Оформила.", t0 + timedelta(seconds=5), tool_calls=[tool]),
        ],
    )
    ingest_records(demo_engine, [call])
    res = admin.get(f"/calls/{call['call_id']}")
    body = text(res)
    assert res.status_code == 200
    assert "\\u0027" not in body and "\\u" not in body
    blocks = re.findall(r'<pre class="json">(.*?)</pre>', body, flags=re.S)
    assert len(blocks) == 2
    args = html.unescape(blocks[0])
    assert '"name": "Мар\'яна Коваль"' in args and f'"phone": "{PHONE}"' in args
    assert '\n  "customer": {\n    "name"' in args  # indented, one key a line
    assert "&lt;b&gt;терміново&lt;/b&gt;" in blocks[0]  # escaped, not markup
    assert "Замовлення для Мар'яни створено" in html.unescape(blocks[1])
    masked = text(analyst.get(f"/calls/{call['call_id']}"))
    assert PHONE not in masked and "Мар'яна Коваль" not in html.unescape(masked)
    assert "\\u" not in masked and '<pre class="json">' in masked


def test_the_queue_pages_both_ways(demo_engine, admin, monkeypatch):
    import webapp.review

    monkeypatch.setattr(webapp.review, "PAGE_SIZE", 5)  # the demo queues a dozen calls: pages of 5
    expected = [
        r[0] for r in db(demo_engine, "SELECT call_id::text FROM review_items ORDER BY started_at DESC, call_id")
    ]
    pages = -(-len(expected) // 5)
    assert pages >= 3
    res = admin.get("/review?sort=date&page=2")
    assert rows_of(res) == expected[5:10]
    page = visible(res)
    assert f"страница 2 из {pages}" in page and "← Предыдущая" in page and "Следующая →" in page
    assert "показаны 6–10" in page
    assert 'href="/review?page=1&amp;sort=date"' in text(res) or 'href="/review?sort=date&amp;page=1"' in text(res)
    last = admin.get(f"/review?sort=date&page={pages}")
    assert rows_of(last) == expected[(pages - 1) * 5 :] and "Следующая →" not in visible(last)
    assert rows_of(admin.get(f"/review?sort=date&page={pages + 1}")) == []  # past the end: empty, not an error
