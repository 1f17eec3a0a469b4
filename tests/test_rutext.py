"""The one Russian formatter (ccanalytics.core.rutext, Babel's ru locale): numbers, p-values, word forms, dates.
Expected strings are written out by hand from the Russian rules (CLDR plural categories: one 1, 21, 101…;
few 2–4, 22–24…; many 0, 5–20, 25…; a fraction takes the genitive singular)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from babel.numbers import format_decimal

from ccanalytics.core import labels, rutext
from ccanalytics.core.errors import Conflict, CSRFError, InvalidArgument

T = "\u202f"  # the thin no-break space between thousands
CALL = ("звонок", "звонка", "звонков")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 звонков"),
        (1, "1 звонок"),
        (2, "2 звонка"),
        (4, "4 звонка"),
        (5, "5 звонков"),
        (11, "11 звонков"),
        (12, "12 звонков"),
        (14, "14 звонков"),
        (21, "21 звонок"),
        (22, "22 звонка"),
        (25, "25 звонков"),
        (101, "101 звонок"),
        (111, "111 звонков"),
        (1013, f"1{T}013 звонков"),
        (12741, f"12{T}741 звонок"),
        (1.5, "1,5 звонка"),
        (-1, "−1 звонок"),
    ],
)
def test_word_forms_after_a_number(n, expected):
    assert rutext.count(n, *CALL) == expected
    assert rutext.plural(n, *CALL) == expected  # the old name answers the same


def test_word_alone_and_the_call_cases():
    assert [rutext.word(n, "событие", "события", "событий") for n in (1, 3, 7, 21)] == [
        "событие",
        "события",
        "событий",
        "событие",
    ]
    assert rutext.calls_gen(21) == "21 звонка" and rutext.calls_gen(5) == "5 звонков"
    assert rutext.calls_loc(1) == "1 звонке" and rutext.calls_loc(3) == "3 звонках"
    assert rutext.calls_acc(22) == "22 звонка"
    assert rutext.days(1) == "1 день" and rutext.days(13.6) == "13,6 дня" and rutext.days(11) == "11 дней"


def test_numbers_have_a_decimal_comma_thin_thousands_and_a_real_minus():
    assert rutext.num(1234.5, 1) == f"1{T}234,5"
    assert rutext.num(1234567) == f"1{T}234{T}567"
    assert rutext.num(0.883, 3) == "0,883"
    assert rutext.num(-1234.5, 2) == f"−1{T}234,50"
    assert rutext.num(-0.0001, 2) == "0,00"  # no sign on a value that rounds to zero
    assert rutext.num(2.675, 2) == "2,68" and rutext.num(0.125, 2) == "0,13"  # as people round, not binary floats
    assert rutext.num(None) == "—" and rutext.num(float("nan"), 2) == "—"
    assert "." not in rutext.num(13.6, 1) and rutext.num(13.6, 1) == "13,6"


def test_signed_compact_percent_money_seconds():
    assert rutext.signed(1.5, 1) == "+1,5" and rutext.signed(-0.03, 2) == "−0,03" and rutext.signed(0.001, 2) == "0,00"
    assert rutext.compact(84.26) == "84,3" and rutext.compact(50.0) == "50" and rutext.compact(1013) == f"1{T}013"
    assert rutext.compact(-0.01) == "0"
    assert rutext.pct(12.34) == "12,3 %" and rutext.share(0.8426) == "84,3 %" and rutext.share(0.5) == "50 %"
    assert rutext.usd(0.0123) == "$0,0123" and rutext.usd(-1.5, 2) == "−$1,50" and rutext.usd(None) == "—"
    assert rutext.seconds(4.93) == "4,9 с" and rutext.seconds(3.0) == "3 с" and rutext.ms(1234) == f"1{T}234 мс"
    assert rutext.sig(0.012345) == "0,0123" and rutext.sig(1234.5) == f"1{T}235" and rutext.sig(0) == "0"


@pytest.mark.parametrize(
    ("p", "expected", "bare"),
    [
        (0.0, "p < 0,001", "< 0,001"),
        (0.00004, "p < 0,001", "< 0,001"),
        (0.001, "p = 0,001", "0,001"),
        (0.0123, "p = 0,012", "0,012"),
        (0.122, "p = 0,122", "0,122"),
        (0.5, "p = 0,500", "0,500"),
        (0.99995, "p > 0,999", "> 0,999"),
        (None, "—", "—"),
    ],
)
def test_p_values_never_read_as_zero(p, expected, bare):
    assert rutext.pvalue(p) == expected
    assert rutext.pvalue(p, prefix=False) == bare


def test_dates():
    day = date(2026, 11, 24)
    assert rutext.date_(day) == "24.11.2026" and rutext.date_("2026-11-24") == "24.11.2026"
    assert rutext.day_month(day) == "24 ноября" and rutext.day_month(day, year=True) == "24 ноября 2026 г."
    assert rutext.weekday(day) == "вторник"
    assert rutext.datetime_(datetime(2026, 3, 1, 9, 5, 7, tzinfo=UTC), seconds=True) == "01.03.2026 09:05:07"
    assert rutext.period(day, day) == "24.11.2026"
    assert rutext.period(date(2026, 11, 15), day) == "15.11.2026 — 24.11.2026"


def test_labels_give_every_code_a_russian_name():
    assert labels.flag("low_score") == "низкая оценка качества"
    assert (
        labels.reason("negative_emotion") == "негатив клиента" and labels.reason("cannot_help") == "бот не смог помочь"
    )
    assert labels.scenario("tire_search + order_creation") == "подбор шин + оформление заказа"
    assert labels.judge("rules", "rules-v1") == "правила, версия 1"
    assert labels.judge("llm", "gpt-4o-mini") == "LLM-судья gpt-4o-mini"
    for vocabulary in labels.VOCABULARIES:
        for key, name in vocabulary.items():
            assert name and name != key, (key, name)


def test_errors_carry_a_russian_message_for_pages():
    assert InvalidArgument("bad date", ru="«С»: нужна дата").message_ru == "«С»: нужна дата"
    assert Conflict("версия уже активна").message_ru == "версия уже активна"  # already Russian
    assert InvalidArgument("status must be one of a, b").message_ru.startswith("Параметры запроса")
    assert CSRFError("the CSRF token is missing").message_ru.startswith("Форма устарела")
    assert InvalidArgument("x", ru="у").to_dict() == {"code": "invalid_argument", "message": "x", "details": None}


def test_numbers_are_babels_ru_format_with_the_house_marks():
    """num() formats without Babel's per-call pattern parsing (the journal formats ~90 numbers a page):
    on a large sample it equals Babel's ru format_decimal, with a thin space between thousands and a
    real minus."""
    rng = random.Random(7)
    values = [0, 1, -1, 999, 1000, -1000, 999999.995, 0.5, 2.675, 0.125, -0.004, 1e9, 12345678.9, 10**15]
    values += [rng.uniform(-1e7, 1e7) * rng.choice((1, 1e-3, 1e-6)) for _ in range(3000)]
    values += [rng.randint(-(10**9), 10**9) for _ in range(1000)]
    for value in values:
        for digits in (0, 1, 2, 3, 4):
            rounded = rutext._round(value, digits)
            rounded = abs(rounded) if rounded == 0 else rounded
            babel = format_decimal(
                rounded, "#,##0" + ("." + "0" * digits if digits else ""), locale="ru", decimal_quantization=True
            )
            assert rutext.num(value, digits) == babel.replace("\u00a0", T).replace("-", "−"), (value, digits)
    assert rutext.num(Decimal("-0.0001"), 2) == "0,00"
