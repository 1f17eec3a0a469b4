"""Russian only, everywhere a person reads the admin (issue 19, item 2): a crawl as an analyst over every
page reachable from the overview on the demo data, plus the error pages and an expired form. A page fails
on visible English words outside a short allowlist (brand and product names, units, model names, the
data's own names), on raw codes of ccanalytics.core.labels, on a decimal point inside a number, on "0.0000"-style
p-values and on a wrong plural form after a number («1 событий», «4 звонков»).

What counts as visible: text nodes and the title/placeholder/alt/aria-label attributes and button values,
except inside <code>, <pre>, <textarea>, <script>, <style> and elements marked ``translate="no"`` (HTML's
own marker for content that is data, not interface: transcripts, prompt texts, user comments)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import sqlalchemy as sa
from conftest import DEMO_END
from test_auth import csrf_of, logged_in
from werkzeug.exceptions import HTTPException

from ccanalytics.core import clock, labels, rutext
from ccanalytics.prompts import versions as prompts
from webapp import create_app

pytestmark = pytest.mark.xdist_group("reports")  # the demo template is built once

NOW = datetime.combine(date.fromisoformat(DEMO_END), datetime.min.time(), UTC).replace(hour=16)
MAX_PAGES = 260
PER_ENDPOINT = 6  # distinct addresses of one view (600 calls need not all be opened)
SKIP_PATHS = ("/logout", "/api/", "/metrics", "/static/", "/healthz", "/readyz")

# ---------------------------------------------------------------------------------- visible text
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HIDDEN_TAGS = {"script", "style", "code", "pre", "textarea", "svg", "template"}
SHOWN_ATTRS = ("title", "placeholder", "alt", "aria-label")


class VisibleText(HTMLParser):
    """The text of a page a person reads, without code and data regions; the links of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.links: list[str] = []
        self._skip: list[str] = []  # the open elements whose content is not interface text

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in VOID:
            if not self._skip:
                self._attrs(tag, a)
            return
        if self._skip or tag in HIDDEN_TAGS or a.get("translate") == "no":
            self._skip.append(tag)
            return
        self._attrs(tag, a)

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        if not self._skip:
            self._attrs(tag, a)

    def _attrs(self, tag, a):
        for name in SHOWN_ATTRS:
            if a.get(name):
                self.chunks.append(a[name])
        if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
            self.chunks.append(a["value"])

    def handle_endtag(self, tag):
        if tag in VOID or not self._skip:
            return
        # close the innermost open element of this name (browsers forgive unclosed <p>, <li>, <td>)
        for i in range(len(self._skip) - 1, -1, -1):
            if self._skip[i] == tag:
                del self._skip[i:]
                return

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.chunks.append(data)


def visible(html: str) -> tuple[str, list[str]]:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return "\n".join(c.strip() for c in parser.chunks), parser.links


# ------------------------------------------------------------------------------------- the checks
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.'’][A-Za-z0-9]+)*")
ALLOWED_WORDS = {
    # brands, products and standards a Russian interface names as they are
    "ccanalytics",
    "grafana",
    "prometheus",
    "alertmanager",
    "telegram",
    "openai",
    "postgresql",
    "excel",
    "json",
    "csv",
    "html",
    "api",
    "id",
    "uuid",
    "url",
    "e-mail",
    "email",
    # units and the abbreviations the house style keeps (speech recognition, synthesis, language model)
    "usd",
    "stt",
    "tts",
    "llm",
    "srm",
    "ci",
    "p",
    "n",
    "p50",
    "p90",
    "p95",
    "p99",
    # the variant letters of an A/B test, a turn number (T12) is checked below
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
}
ALLOWED_PATTERN = re.compile(r"^(T\d+|v\d+|gpt-[a-z0-9.-]+|o\d(-mini)?|claude-[a-z0-9.-]+)$", re.IGNORECASE)
# raw codes: every key of the shared vocabulary that would not read as an ordinary word
CODES = {
    key
    for mapping in labels.VOCABULARIES
    for key in mapping
    if "_" in key or "-" in key or key in ("rules", "llm_judge")
}
NUMBER_WITH_POINT = re.compile(r"(?<![\w.,])(\d+)\.(\d+)(?:\.(\d+))?(?![\w])")
# a p-value rounded to nothing: "p = 0,000", "p = 0.0000" (say "p < 0,001")
ZERO_P = re.compile(r"\bp\s*[=≈]\s*0(?:[.,]0+)?(?![.,]?\d)|(?<![$\d.,])\b0[.,]0{4,}\b")
# nouns counted on the pages: (one, few, many); a wrong form after a number is a finding
NOUNS = [
    ("событие", "события", "событий"),
    ("звонок", "звонка", "звонков"),
    ("день", "дня", "дней"),
    ("реплика", "реплики", "реплик"),
    ("версия", "версии", "версий"),
    ("вызов", "вызова", "вызовов"),
    ("символ", "символа", "символов"),
    ("строка", "строки", "строк"),
    ("оценка", "оценки", "оценок"),
    ("тест", "теста", "тестов"),
    ("вариант", "варианта", "вариантов"),
    ("предложение", "предложения", "предложений"),
    ("клиент", "клиента", "клиентов"),
    ("заказ", "заказа", "заказов"),
    ("минута", "минуты", "минут"),
    ("секунда", "секунды", "секунд"),
    ("алерт", "алерта", "алертов"),
    ("проверка", "проверки", "проверок"),
    ("запись", "записи", "записей"),
    ("перевод", "перевода", "переводов"),
    ("критерий", "критерия", "критериев"),
    ("сеть", "сети", "сетей"),
]
FORM_OF = {form: (i, nouns) for nouns in NOUNS for i, form in enumerate(nouns)}
GENITIVE = {"из", "для", "до", "от", "около", "более", "менее", "свыше", "без", "кроме", "среди", "у", "после"}
COUNTED = re.compile(
    r"(?:(\w+)[ \u00a0]+)?(?<![\w,.:])(\d{1,3}(?:[\u202f\u00a0]\d{3})+|\d+)(?![\d,.:]\d)[ \u00a0]+([а-яё]+)", re.I
)
# identifiers shown as they are: uuids and their short forms, hex digests, rubric versions (r1-34fb9e776b)
IDS = re.compile(
    r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\b(?=[0-9a-f]*\d)[0-9a-f]{6,}\b|\br\d+-[0-9a-f]{6,}\b"
)


def plural_category(n: int) -> int:
    """0: one (1, 21), 1: few (2–4, 22–24), 2: many (5–20, 25…): the form a noun takes after n."""
    n10, n100 = n % 10, n % 100
    return 0 if n10 == 1 and n100 != 11 else 1 if 2 <= n10 <= 4 and not 12 <= n100 <= 14 else 2


def wrong_plurals(text: str) -> list[str]:
    found = []
    for before, digits, word in COUNTED.findall(text):
        if word.lower() not in FORM_OF:
            continue
        n = int(re.sub(r"\D", "", digits))
        form, _ = FORM_OF[word.lower()]
        want = plural_category(n)
        genitive = before.lower() in GENITIVE
        if want == 0:  # «1 событий», «21 звонков» (but «из 21 звонка», the genitive singular)
            bad = form == 2
        elif want == 1:  # «2 звонок»; «4 звонков» unless «из 4 звонков»
            bad = form == 0 or (form == 2 and not genitive)
        else:  # «5 звонок», «5 звонка»
            bad = form != 2
        if bad:
            found.append(f"{digits} {word}")
    return found


def valid_date(day: str, month: str, year: str | None) -> bool:
    return (
        len(day) == 2
        and len(month) == 2
        and 1 <= int(day) <= 31
        and 1 <= int(month) <= 12
        and (year is None or len(year) in (2, 4))
    )


def problems(text: str, allowed_names: set[str]) -> list[str]:
    """Everything wrong with the visible text of one page."""
    out = []
    text = IDS.sub(" ", text)
    for word in WORD.findall(text):
        bare = word.strip(".'’")
        if bare in CODES:
            out.append(f"raw code {bare!r}")
        elif (
            bare.lower() not in ALLOWED_WORDS and not ALLOWED_PATTERN.match(bare) and bare.lower() not in allowed_names
        ):
            out.append(f"English word {bare!r}")
    for whole in NUMBER_WITH_POINT.finditer(text):
        if not valid_date(whole.group(1), whole.group(2), whole.group(3)):
            out.append(f"decimal point in {whole.group(0)!r}")
    out += [f"p-value shown as {m.group(0)!r}" for m in ZERO_P.finditer(text)]
    out += [f"plural form «{found}»" for found in wrong_plurals(text)]
    return out


DATA = (
    "SELECT DISTINCT name FROM prompt_versions",  # prompt names (tire_agent): chosen by people, like file names
    "SELECT DISTINCT tool_name FROM call_tool_calls",  # the processor's tool names, shown with their JSON
    "SELECT test_name FROM cca_ab_tests UNION SELECT test_name FROM prompt_ab_tests",
    "SELECT DISTINCT name FROM tenants",
    "SELECT DISTINCT username FROM users",
    "SELECT DISTINCT coalesce(created_by, '') FROM cca_prompt_version_notes",
    # what customers and the bot said (brands and models of tyres: Michelin X-Ice North 4, R16…), what the
    # tools were given and answered (order numbers ORD-…), the prompts' own texts and notes
    "SELECT DISTINCT content FROM call_turns",
    "SELECT DISTINCT tool_args::text || ' ' || coalesce(tool_result::text, '') FROM call_tool_calls",
    "SELECT DISTINCT coalesce(note, '') FROM cca_prompt_version_notes",
)


def data_names(engine) -> set[str]:
    """The data's own words a page may show as they are (Latin words in them): prompt, tool, test and
    tenant names, users, what was said in the calls and what the tools got and answered."""
    rows = []
    with engine.connect() as conn:
        for sql in DATA:
            try:
                with conn.begin_nested():
                    rows += conn.execute(sa.text(sql)).scalars().all()
            except sa.exc.ProgrammingError:  # a column this schema does not have
                continue
    names = set()
    for row in rows:
        for word in WORD.findall(row or ""):
            names.add(word.lower())
            names.update(part.lower() for part in re.split(r"[-_.'’]", word))
    return names


# --------------------------------------------------------------------------------------- the crawl
@pytest.fixture
def demo_app(demo_engine):
    return create_app({"ENGINE": demo_engine, "TESTING": True})


def endpoint_of(app, path: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        return adapter.match(urlsplit(path).path)[0]
    except HTTPException:  # no route (404, 405) or a redirect
        return None


def crawl(app, client, start: list[str]) -> dict[str, tuple[int, str]]:
    """path → (status, html) for every page reachable from ``start`` (bounded per view and in total)."""
    seen: dict[str, tuple[int, str]] = {}
    per_endpoint: Counter[str] = Counter()
    queue = list(start)
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        endpoint = endpoint_of(app, path) or path
        if per_endpoint[endpoint] >= PER_ENDPOINT and path not in start:
            continue
        per_endpoint[endpoint] += 1
        res = client.get(path)
        html = res.get_data(as_text=True) if res.mimetype == "text/html" else ""
        seen[path] = (res.status_code, html)
        if res.status_code in (301, 302, 303):
            queue.append(res.headers["Location"])
            continue
        for href in visible(html)[1]:
            target = urljoin(path, href.split("#")[0])
            parts = urlsplit(target)
            if parts.netloc or not parts.path.startswith("/") or parts.path.startswith(SKIP_PATHS):
                continue
            if parts.path.endswith(".csv"):
                continue
            queue.append(target.replace("http://localhost", ""))
    return seen


START = [
    "/",
    "/?days=30",
    f"/dashboard?day={DEMO_END}",
    "/calls",
    f"/calls?from=2026-11-15&to={DEMO_END}&sort=quality&order=asc",
    f"/calls?from=2026-11-15&to={DEMO_END}&transferred=yes",
    f"/calls?from=2026-11-15&to={DEMO_END}&q=Michelin",
    "/prompts",
    "/ab",
    "/prompts/suggestions",
]
ERRORS = [
    ("/no-such-page", 404),
    ("/calls?to=not-a-date", 400),
    ("/calls?to=9999-12-31", 400),
    ("/calls/00000000-0000-0000-0000-000000000000", 404),
    ("/calls/garbage", 400),
    ("/prompts/nope", 404),
    ("/prompts/00000000-0000-0000-0000-000000000000/diff", 404),
    ("/ab/garbage", 404),
    ("/ab/00000000-0000-0000-0000-000000000000", 404),
    ("/prompts/suggestions/999999", 404),
    ("/?days=abc", 400),
    ("/dashboard?day=not-a-day", 400),
    ("/dashboard?days=1", 400),
    ("/ab?status=nope", 400),
    ("/prompts/suggestions?status=nope", 400),
]


def test_every_page_an_analyst_reads_is_russian(demo_app, demo_engine):
    analyst = logged_in(demo_app, demo_engine, "ivan", "analyst")
    allowed = data_names(demo_engine)
    with clock.frozen(NOW):
        pages = crawl(demo_app, analyst, START)
        for path, status in ERRORS:
            res = analyst.get(path)
            assert res.status_code == status, (path, res.status_code)
            assert res.mimetype == "text/html", (path, res.mimetype)
            pages[path] = (res.status_code, res.get_data(as_text=True))
    endpoints = {endpoint_of(demo_app, p) for p in pages}
    # the crawl reached every kind of page: journal, call, prompts, versions, diff, A/B, suggestions…
    for needed in (
        "overview.index",
        "dashboard.index",
        "journal.index",
        "journal.detail",
        "prompts.index",
        "prompts.versions",
        "prompts.version",
        "prompts.diff",
        "abtests.index",
        "abtests.detail",
        "suggestions.index",
    ):
        assert needed in endpoints, (needed, sorted(e for e in endpoints if e))
    found: dict[str, list[str]] = defaultdict(list)
    for path, (status, html) in pages.items():
        assert status < 500, (path, status)
        if not html:
            continue
        assert 'class="top"' in html, f"{path}: not in the site's layout"
        text, _ = visible(html)
        own = {w.lower() for w in WORD.findall(unquote(path))}  # the address's own words echoed back («nope»)
        for problem in problems(text, allowed | own):
            found[problem].append(path)
    report = "\n".join(f"{p}  ({len(paths)} pages, e.g. {paths[0]})" for p, paths in sorted(found.items()))
    assert not found, f"{len(pages)} pages crawled; not Russian:\n{report}"


# ------------------------------------------------------------------------------------ the checker
def test_the_checker_finds_what_the_issue_saw():
    """The checks themselves: each of the issue's examples is found, and correct Russian passes."""
    bad = (
        "Not Found. The requested URL was not found on the server.\n"
        "причины: low_score, negative_emotion\nсудья: rules / rules-v1\nкачество 0.883, p = 0.122, 13.6 дн.\n"
        "p = 0.0000\n(последние 1 событий) 4 звонков, оценено 2 звонок, 5 звонка"
    )
    found = problems(bad, set())
    assert "English word 'Not'" in found and "English word 'requested'" in found
    assert {"raw code 'low_score'", "raw code 'negative_emotion'", "raw code 'rules'"} <= set(found)
    assert "English word 'rules-v1'" in found
    assert {"decimal point in '0.883'", "decimal point in '0.122'", "decimal point in '13.6'"} <= set(found)
    assert any(f.startswith("p-value") for f in found)
    assert {"plural form «1 событий»", "plural form «4 звонков»", "plural form «2 звонок»"} <= set(found)
    assert "plural form «5 звонка»" in found
    good = (
        "Звонок 24.11.2026 14:05 · качество 0,883, p = 0,122, p < 0,001, 13,6 дн.\n"
        "последние 1 событие, 21 звонок, 4 звонка, из 4 звонков, оценено 22 звонка из 25 звонков, "
        "1 013 вызовов, 11 дней; STT 420 мс, LLM, gpt-4o-mini, T12, tire_agent@v2"
    )
    assert problems(good, {"tire_agent"}) == []


def test_visible_text_skips_code_and_data():
    html = (
        '<p title="Подсказка">Текст <code>ccanalytics ingest calls.jsonl</code></p>'
        '<span translate="no">Hello <b>world</b></span><p>после</p><textarea>system prompt</textarea>'
        '<input type="submit" value="Показать"><input placeholder="Поиск"><br>'
    )
    text, _ = visible(html)
    assert text.split("\n") == ["Подсказка", "Текст", "после", "Показать", "Поиск"]


# -------------------------------------------------------------------------------- expired forms
def test_an_expired_form_comes_back_with_what_was_typed(engine):
    app = create_app({"ENGINE": engine, "TESTING": True})
    admin = logged_in(app, engine, "olena", "admin")
    typed = {
        "name": "greeting",
        "system_prompt": "Добрий день! Ви зателефонували в «Шинний двір».",
        "note": "коротше привітання",
        "csrf_token": "expired-" + (csrf_of(admin) or ""),
    }
    res = admin.post("/prompts/new", data=typed)
    assert res.status_code == 400 and res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert "Форма устарела" in html
    assert "Добрий день! Ви зателефонували в «Шинний двір»." in html.replace("&#34;", '"').replace("&#39;", "'")
    assert "коротше привітання" in html
    assert f'value="{csrf_of(admin)}"' in html  # a fresh token: sending it again works
    assert prompts.list_versions(engine) == []
    text, _ = visible(html)
    assert problems(text, {"olena", "tire_agent"}) == [], text  # the user; the name field's example
    again = {**typed, "csrf_token": csrf_of(admin)}
    assert admin.post("/prompts/new", data=again).status_code == 303
    assert [v.name for v in prompts.list_versions(engine)] == ["greeting"]


def test_rutext_is_used_for_the_issue_examples():
    assert rutext.pvalue(0.0000001) == "p < 0,001"
    assert rutext.num(13.6, 1) == "13,6"
