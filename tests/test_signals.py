"""The rule-based signals mean the same in Python and in PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ccanalytics.analytics import signals

TEXTS = [
    "Перепрошую, не розчула. Повторіть, будь ласка, марку авто.",
    "ПЕРЕПРОШУЮ, погано чути",
    "Вибачте, не зрозуміла ваше питання",
    "Извините, не расслышала, повторите пожалуйста",
    "Оформила замовлення ORD-204518.",
    "Добрий день! Інтернет-магазин шин, мене звати Олена.",
    "Доброго ранку!",
    "Вітаю, чим можу допомогти?",
    "Слухаю вас.",
    "Перепрошую, у нас технічні неполадки з базою замовлень. Переключаю вас на менеджера.",
    "Розумію вас і перепрошую за незручності.",
    "Перепрошую?",
    "Вітаємо у «ШинаМаркеті»!",
    "",
]
ARGS = [
    {"items": [{"sku": "X", "quantity": 4, "price": 4150}]},
    {"items": [{"sku": "X", "quantity": 80, "price": 4150}]},
    {"items": [{"sku": "X", "quantity": 2, "price": 0}]},
    {"price_uah": -1},
    {"qty": 51},
    {"quantity": 50, "price": 0.01},
    {"nested": {"deeper": [{"unit_price": 0}]}},
    {"price": "0"},
    {"quantity": True},
    {"quantity": [51]},
    {"quantity": [[51]]},
    {"items": [{"price": [0, 5]}]},
    {},
]


def sql_bool(engine, expr: str, **params) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT {expr}"), params).scalar_one()


@pytest.mark.parametrize("text", TEXTS)
def test_reask_and_greeting_agree(engine, text):
    assert signals.is_reask(text) == sql_bool(engine, "CAST(:t AS text) ~* :r", t=text, r=signals.REASK_REGEX)
    assert signals.is_greeting(text) == sql_bool(engine, "CAST(:t AS text) ~* :r", t=text, r=signals.GREETING_REGEX)


def test_examples():
    assert signals.is_reask(TEXTS[0]) and not signals.is_reask(TEXTS[4])
    assert signals.is_greeting(TEXTS[5]) and not signals.is_greeting(TEXTS[8])
    # an apology is not a re-ask (issue 17); a bare "Перепрошую?" is
    assert not signals.is_reask(TEXTS[9]) and not signals.is_reask(TEXTS[10]) and signals.is_reask(TEXTS[11])
    assert signals.is_greeting(TEXTS[12])
    assert signals.suspicious_args(ARGS[1]) and signals.suspicious_args(ARGS[2])
    assert not signals.suspicious_args(ARGS[0]) and not signals.suspicious_args(ARGS[5])
    assert signals.is_rejected(False, {"error": "validation_failed"})
    assert not signals.is_rejected(False, {"error": "timeout"})
    assert not signals.is_rejected(True, {"error": "validation_failed"})


@pytest.mark.parametrize("args", ARGS)
def test_suspicious_args_agree(engine, args):
    in_sql = sql_bool(
        engine, "CAST(:a AS jsonb) @? CAST(:p AS jsonpath)", a=json.dumps(args), p=signals.SUSPICIOUS_ARGS_JSONPATH
    )
    assert signals.suspicious_args(args) == in_sql


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.sampled_from(["0", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["price", "quantity", "qty", "sku", "items", "count"]), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(args=json_values)
def test_suspicious_args_agree_on_random_json(pg_server, template_db, args):
    from conftest import _db_url

    from ccanalytics.db.engine import create_engine

    engine = create_engine(_db_url(pg_server, "postgres"), pool_size=1)
    try:
        in_sql = sql_bool(
            engine, "CAST(:a AS jsonb) @? CAST(:p AS jsonpath)", a=json.dumps(args), p=signals.SUSPICIOUS_ARGS_JSONPATH
        )
    finally:
        engine.dispose()
    assert signals.suspicious_args(args) == in_sql
