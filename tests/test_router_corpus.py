"""The router against its labelled openers (issue 17): complex calls routed to the cheaper model
≤ 2 %, simple calls routed to it ≥ 60 %, content-free openers never (without an IVR choice), each
example of the issue on its own, and ``from ccanalytics.cost.router import route`` loading no Polars,
SQLAlchemy or database code. A change to the rules that breaks a goal fails here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from router_corpus import LABELS, confusion, load

from ccanalytics.cost.router import CHEAP_MODEL, DEFAULT_MODEL, route

ROWS = load()


def test_corpus_is_large_varied_and_labelled():
    assert len(ROWS) >= 250
    assert {r["label"] for r in ROWS} == set(LABELS)
    assert all(set(r) == {"text", "scenario", "label", "note"} for r in ROWS)
    assert len({(r["text"], r["scenario"]) for r in ROWS}) == len(ROWS)  # no duplicates
    assert sum(r["scenario"] is not None for r in ROWS) >= 30  # with an IVR choice


def test_goals_on_the_corpus():
    c = confusion(ROWS)
    print("\n" + c.markdown() + f"\nprecision of cheap {c.precision:.1%}, recall {c.recall:.1%}")
    misrouted = [f"{row['label']}: {row['text']!r} ({row['scenario']}) → {d.reason}" for row, d in c.misrouted]
    assert c.cheap_share("complex") <= 0.02, misrouted
    assert c.cheap_share("simple") >= 0.60
    assert c.counts[("contentless", "cheap")] == 0, misrouted


def test_held_out_openers_meet_the_goals_too():
    held = [r for r in ROWS if "held out" in r["note"]]
    assert len(held) >= 70
    c = confusion(held)
    assert c.cheap_share("complex") <= 0.02 and c.cheap_share("simple") >= 0.60


ISSUE_EXAMPLES = [
    # (utterance, scenario, model): the complex openers issue 17 saw routed cheap, its content-free
    # openers, and the IVR choice the router ignored
    ("Статус замовлення 204518 — хочу його відмінити", None, DEFAULT_MODEL),
    ("Чи є в наявності 205/55 R16? Хочу одразу замовити 4 штуки з доставкою і записатись на монтаж", None, DEFAULT_MODEL),
    ("Номер замовлення 204518, шини прийшли порізані", None, DEFAULT_MODEL),
    ("слухайте я вже втретє дзвоню де моє замовлення 204518", None, DEFAULT_MODEL),
    ("так", None, DEFAULT_MODEL),
    ("Добрий день", None, DEFAULT_MODEL),
    ("Який статус мого замовлення?", "order_status", CHEAP_MODEL),
    # the same without punctuation, numbers in words, and under a simple IVR choice
    ("статус замовлення двісті чотири п'ятсот вісімнадцять хочу його відмінити", None, DEFAULT_MODEL),
    ("чи є в наявності 205 55 16 хочу одразу замовити чотири штуки з доставкою", None, DEFAULT_MODEL),
    ("номер замовлення 204518 шини прийшли порізані", "order_status", DEFAULT_MODEL),
    ("я вже втретє дзвоню де моє замовлення", "order_status", DEFAULT_MODEL),
    ("Статус замовлення 204518", None, CHEAP_MODEL),
    ("Чи є в наявності 205/55 R16?", None, CHEAP_MODEL),
]  # fmt: skip


@pytest.mark.parametrize(("text", "scenario", "model"), ISSUE_EXAMPLES)
def test_issue_examples(text, scenario, model):
    assert route(text, scenario).model == model


def test_import_loads_no_dataframe_or_database_code():
    code = (
        "import sys, time; t = time.perf_counter(); from ccanalytics.cost.router import route; "
        "ms = (time.perf_counter() - t) * 1000; route('Статус замовлення 204518'); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('polars', 'sqlalchemy', 'psycopg', 'psycopg2', 'pandas', 'numpy', 'pyarrow', 'duckdb') "
        "or m in ('ccanalytics.analytics.store', 'ccanalytics.db.engine', 'ccanalytics.cost.routing_replay')); "
        "import json; print(json.dumps({'ms': ms, 'heavy': heavy}))"
    )
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    print(f"\nfrom ccanalytics.cost.router import route: {out['ms']:.1f} ms (-X importtime in stderr)")
    assert out["heavy"] == []
