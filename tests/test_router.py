"""The model router's rules one by one: normalisation (numbers said in words), each risk signal, the
IVR scenario, whole-utterance coverage, several requests, content-free openers, and the replay's
``route_calls`` giving the very decisions of ``route``. The labelled corpus is in test_router_corpus.py."""

from __future__ import annotations

import polars as pl
import pytest

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import router, routing_text
from ccanalytics.cost.router import CHEAP_MODEL, DEFAULT_MODEL, route
from ccanalytics.cost.routing_replay import ivr_choice, route_calls


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("Статус замовлення двісті чотири п'ятсот вісімнадцять", "статус замовлення 204 518"),
        ("двісті чотири тисячі п’ятсот вісімнадцять", "204518"),
        ("Заказ двести четыре пятьсот восемнадцать", "заказ 204 518"),
        ("сто двадцять три чотириста п'ятдесят шість", "123 456"),
        ("два нуль чотири", "2 0 4"),
        ("двісті п'ять п'ятдесят п'ять шістнадцятий радіус", "205 55 16 радіус"),
        ("205/55 R16C, 16-й радіус", "205 55 r 16 c 16 й радіус"),
        ("Ёлки, ORD-731904!", "елки ord 731904"),
        (None, ""),
    ],
)
def test_normalise(said, normalised):
    assert routing_text.normalise(said) == normalised


@pytest.mark.parametrize(
    ("text", "reason", "intent"),
    [
        ("Підкажіть статус замовлення 204518.", "order_status", "order_status"),
        ("де моє замовлення двісті чотири п'ятсот вісімнадцять", "order_status", "order_status"),
        ("Хочу дізнатися статус замовлення.", "order_status", "order_status"),
        ("Здравствуйте, где мой заказ 5551234?", "order_status", "order_status"),
        ("Чи є у вас в наявності Нокіан Хакапеліта 205/55 R16?", "availability", "availability"),
        ("Підкажіть, Мішлен Альпін 6 у розмірі 225 на 45, 17-й радіус є на складі?", "availability", "availability"),
        ("скільки коштує Continental WinterContact TS 870 205/55 R16", "availability", "availability"),
        ("До котрої ви сьогодні працюєте?", "hours_or_address", "hours_or_address"),
        ("по какому адресу пункт выдачи в Харькове", "hours_or_address", "hours_or_address"),
    ],
)
def test_simple_intent_covering_the_utterance_goes_cheap(text, reason, intent):
    d = route(text)
    assert (d.model, d.tier, d.reason, d.intent) == (CHEAP_MODEL, "cheap", reason, intent)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Ви знущаєтесь? Я вже втретє дзвоню!", "negative_emotion"),
        ("Где мой заказ?! Обещали вчера!", "negative_emotion"),  # «?!» on the raw text
        ("ДЕ МОЄ ЗАМОВЛЕННЯ", "negative_emotion"),  # shouting
        ("де моє замовлення вже тиждень чекаю", "negative_emotion"),
        ("у мене претензія до замовлення 204518", "complaint"),
        ("Номер замовлення 204518, шини прийшли порізані", "damage"),
        ("Статус замовлення 204518 — хочу його відмінити", "cancellation"),
        ("замовлення 204518 можна ще змінити адресу доставки", "change"),
        ("можна оплатити карткою при отриманні", "payment"),
        ("хочу замовити Нокіан 205/55 R16 чотири штуки", "order"),
        ("Хочу записатися на шиномонтаж.", "booking"),
        ("дайте живого человека", "operator_requested"),
        ("Що краще для міста — шипи чи липучка?", "consultation"),
        ("де моє замовлення 204518 а ще одне питання", "several_requests"),
        ("статус замовлення 204518 та 330981", "several_requests"),  # a second item
        ("чи є 205 55 16 і 195 65 15", "several_requests"),
        ("Скільки коштують Нокіан 205/55 R16 і до котрої ви працюєте", "several_requests"),  # two intents
        ("чи є 195 65 15 та коли ви працюєте в суботу", "several_requests"),  # a size is not an hours item
        (" ".join(["де моє замовлення"] * 11), "long_utterance"),
        ("Мені потрібні зимові шини на Шкоду Октавію 2017 року.", "order"),
        ("коротше там така справа статус замовлення 204518", "not_covered"),
        ("Чи є у вас шини?", "no_simple_intent"),  # availability of no named tyre: a tyre search
        ("Добрий день, дівчино.", "no_content"),
        ("так", "no_content"),
        ("", "empty"),
        (None, "empty"),
    ],
)
def test_default_model_and_its_reason(text, reason):
    d = route(text)
    assert (d.model, d.tier, d.reason) == (DEFAULT_MODEL, "default", reason)
    assert reason in router.reasons()


def test_detail_names_the_words_that_decided():
    assert (
        route("коротше там така справа статус замовлення 204518").detail == "коротше така справа"
    )  # «там» is a status word
    assert route("Номер замовлення 204518, шини прийшли порізані").detail == "поріз"


def test_scenario_decides_first():
    # issue 17: the IVR choice was ignored
    assert route("Який статус мого замовлення?", "order_status").model == CHEAP_MODEL
    assert route("204518", "order_status").reason == "order_status"  # the scenario names the intent
    assert route("204518").reason == "no_simple_intent"
    assert route("Добрий день", "order_status").reason == "simple_scenario"
    assert route("алло", "availability_check").tier == "cheap"
    assert route("Добрий день", "order_status + order_creation").reason == "several_requests"
    assert route("До котрої ви працюєте?", "consultation").reason == "complex_scenario"
    assert route("Чи є 205/55 R16?", "tire_search").reason == "complex_scenario"
    # a risk signal in the utterance wins over a simple scenario
    assert route("хочу скасувати", "order_status").reason == "cancellation"
    assert route("мені треба підібрати шини на ауді", "order_status").tier == "default"
    # an unknown scenario says nothing
    assert route("Добрий день", "something_new").reason == "no_content"
    assert route("Підкажіть статус замовлення 204518", "Order_Status ").tier == "cheap"


def test_models_and_arguments():
    assert route("Де моє замовлення 204518?", cheap_model="gpt-4o-mini").model == "gpt-4o-mini"
    assert route("Хочу скасувати", default_model="gpt-4o").model == "gpt-4o"
    assert router.RouteDecision is router.Decision
    with pytest.raises(InvalidArgument):
        route(42)
    with pytest.raises(InvalidArgument):
        route("так", 7)


def test_route_calls_gives_the_decisions_of_route():
    texts = ["Підкажіть статус замовлення 204518", "Добрий день", None, "Хочу скасувати", "алло"]
    recorded = ["order_status", "order_status", None, "order_status", "availability_check + order_creation"]
    out = route_calls(pl.DataFrame({"text": texts, "scenario": recorded}))
    expected = [route(t, ivr_choice(s)) for t, s in zip(texts, recorded, strict=True)]
    assert out.get_column("reason").to_list() == [d.reason for d in expected]
    assert out.get_column("model").to_list() == [d.model for d in expected]
    assert out.get_column("tier").to_list() == ["cheap", "cheap", "default", "default", "cheap"]
    assert ivr_choice("availability_check + order_creation") == "availability_check"
    assert ivr_choice("") is None and ivr_choice(None) is None
