"""The LLM model router: a simple call to the cheaper model, everything else to the default one.

The call processor imports it and routes on the caller's IVR choice (the scenario, when it knows one)
and the first customer utterance. Pure rules, standard library only (importing it loads no Polars,
SQLAlchemy or database code):

    from ccanalytics.cost.router import route
    route("Підкажіть статус замовлення 204518").model                  # 'claude-haiku-4-5'
    route("Статус замовлення 204518 — хочу його відмінити").reason     # 'cancellation'
    route("Який статус мого замовлення?", "order_status").model        # 'claude-haiku-4-5'
    route("Добрий день").reason                                         # 'no_content' (default model)

Decision, in order (``Decision.reason`` names the step that decided):

1. The scenario, when given: several parts (``a + b``) → default (``several_requests``); a complex
   scenario (tyre search, order creation, fitting booking, consultation) → default
   (``complex_scenario``). ``order_status`` and ``availability_check`` are simple: the utterance
   decides below, and may only confirm them.
2. Any risk signal anywhere in the utterance → default, with or without punctuation (``SIGNALS``):
   emotion (anger, «?!», shouting, a repeated call, waiting), complaint or claim, damage,
   cancellation, a change to an order, payment or money, placing an order, booking a fitting,
   asking for a person, consultation or selection, several requests; and more than
   ``LONG_UTTERANCE_WORDS`` words.
3. A content-free opener («так», «алло», «добрий день») → default (``no_content``), until there is
   content; with a simple scenario → cheap (``simple_scenario``).
4. Exactly one simple intent (``INTENTS``: order status, availability or price of a named tyre or
   size, hours or address) must cover the *whole* utterance: every word is a greeting or filler, a
   word of that intent, a number, a city, a tyre brand or the model name after it. One intent and
   one item (a second order number or tyre size is a second request) → cheap, reason = the intent.
   A second intent → ``several_requests``; a word no simple intent covers → ``not_covered`` (the
   words are in ``Decision.detail``); no intent → ``no_simple_intent``.

The text is normalised first (``normalise``): lowercase, ё → е, one apostrophe, punctuation dropped,
numbers said in words turned into digits («двісті чотири п'ятсот вісімнадцять» → ``204 518``,
«шістнадцятий радіус» → ``16 радіус``). The first utterance is a small signal: a call that starts
simple can turn complex, so measure the routed segment (``ccanalytics.cost.routing_replay``, which applies
this same ``route`` to every call) and confirm with an A/B test before switching. The labelled
openers in ``tests/data/router_openers.jsonl`` hold the goals (complex calls routed cheap ≤ 2 %,
simple calls routed cheap ≥ 60 %); their confusion matrix is in docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ccanalytics.core.errors import InvalidArgument

CHEAP_MODEL = "claude-haiku-4-5"
DEFAULT_MODEL = "claude-sonnet-4"
LONG_UTTERANCE_WORDS = 30
SIMPLE_SCENARIOS = {"order_status": "order_status", "availability_check": "availability"}  # → the intent
COMPLEX_SCENARIOS = frozenset({"tire_search", "order_creation", "fitting_booking", "consultation"})


@dataclass(frozen=True)
class Decision:
    """The model for a call and why: ``tier`` is "cheap" or "default"; ``reason`` the step that
    decided (a signal, an intent, or ``no_content`` / ``not_covered`` / …); ``intent`` the simple
    intent found, if any; ``detail`` the words behind the reason (the signal's match, or the words
    no simple intent covers)."""

    model: str
    tier: str
    reason: str
    intent: str | None = None
    detail: str = ""


RouteDecision = Decision  # the name before issue 17


class _Pattern:
    """A regular expression compiled on first use: importing the router compiles nothing (the rules'
    patterns take ≈ 15 ms to compile; the first ``route`` call pays it once)."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def _re(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self._re().search(text)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self._re().fullmatch(text)

    def findall(self, text: str) -> list[Any]:  # strings, or tuples of groups (as re.findall)
        return self._re().findall(text)


# ------------------------------------------------------------------------------------ normalisation
_UNITS = {
    "нуль": 0, "ноль": 0, "один": 1, "одна": 1, "одну": 1, "одно": 1, "два": 2, "дві": 2, "две": 2, "три": 3,
    "чотири": 4, "четыре": 4, "п'ять": 5, "пять": 5, "шість": 6, "шесть": 6, "сім": 7, "семь": 7,
    "вісім": 8, "восемь": 8, "дев'ять": 9, "девять": 9,
}  # fmt: skip
_TEENS = {
    "десять": 10, "одинадцять": 11, "одиннадцать": 11, "дванадцять": 12, "двенадцать": 12,
    "тринадцять": 13, "тринадцать": 13, "чотирнадцять": 14, "четырнадцать": 14, "п'ятнадцять": 15,
    "пятнадцять": 15, "пятнадцать": 15, "шістнадцять": 16, "шестнадцать": 16, "сімнадцять": 17,
    "семнадцать": 17, "вісімнадцять": 18, "восемнадцать": 18, "дев'ятнадцять": 19, "девятнадцать": 19,
}  # fmt: skip
_TENS = {
    "двадцять": 20, "двадцать": 20, "тридцять": 30, "тридцать": 30, "сорок": 40, "п'ятдесят": 50,
    "пятдесят": 50, "пятьдесят": 50, "шістдесят": 60, "шестьдесят": 60, "сімдесят": 70, "семьдесят": 70,
    "вісімдесят": 80, "восемьдесят": 80, "дев'яносто": 90, "девяносто": 90,
}  # fmt: skip
_HUNDREDS = {
    "сто": 100, "двісті": 200, "двести": 200, "триста": 300, "чотириста": 400, "четыреста": 400,
    "п'ятсот": 500, "пятсот": 500, "пятьсот": 500, "шістсот": 600, "шестьсот": 600, "сімсот": 700,
    "семьсот": 700, "вісімсот": 800, "восемьсот": 800, "дев'ятсот": 900, "девятьсот": 900,
}  # fmt: skip
_THOUSAND = {"тисяча", "тисячі", "тисяч", "тысяча", "тысячи", "тысяч"}
# ordinals a size or a year is said with: «шістнадцятий радіус», «вісімнадцятого року»
_ORDINAL = _Pattern(
    r"(дванадцят|тринадцят|чотирнадцят|п'?ятнадцят|шістнадцят|сімнадцят|вісімнадцят|дев'?ятнадцят|двадцят"
    r"|двенадцат|тринадцат|четырнадцат|пятнадцат|шестнадцат|семнадцат|восемнадцат|девятнадцат|двадцат)"
    r"(?:ий|ого|ому|им|ім|ый|ой|ом|ая|а|у|ою)"
)
_ORDINAL_VALUE = {
    "дванадцят": 12, "тринадцят": 13, "чотирнадцят": 14, "п'ятнадцят": 15, "пятнадцят": 15, "шістнадцят": 16,
    "сімнадцят": 17, "вісімнадцят": 18, "дев'ятнадцят": 19, "девятнадцят": 19, "двадцят": 20,
    "двенадцат": 12, "тринадцат": 13, "четырнадцат": 14, "пятнадцат": 15, "шестнадцат": 16,
    "семнадцат": 17, "восемнадцат": 18, "девятнадцат": 19, "двадцат": 20,
}  # fmt: skip
# (words, the place a word fills, the smallest place it may follow in the same number)
_PLACES = ((_HUNDREDS, 100, 1000), (_TENS, 10, 100), (_TEENS, 1, 100), (_UNITS, 1, 10))
_TOKEN = _Pattern(r"[a-zа-яіїєґ']+|\d+")


def _number_words(tokens: list[str]) -> list[str]:
    """Numbers said in words → digits. A number ends where the next word cannot continue it:
    «двісті чотири п'ятсот вісімнадцять» → 204 518, «двісті чотири тисячі п'ятсот вісімнадцять» → 204518."""
    out: list[str] = []
    value, last, thousands = 0, 0, False  # last: the place the number filled last (0 = no number open)

    def close() -> None:
        nonlocal value, last, thousands
        if last:
            out.append(str(value))
        value, last, thousands = 0, 0, False

    for tok in tokens:
        if tok in _THOUSAND:
            if last and not thousands:
                value, last, thousands = value * 1000, 1000, True
            elif not last:
                value, last, thousands = 1000, 1000, True
            else:
                close()
                out.append(tok)
            continue
        ordinal = _ORDINAL.fullmatch(tok)
        if ordinal:
            close()
            out.append(str(_ORDINAL_VALUE[ordinal.group(1)]))
            continue
        for table, place, after in _PLACES:
            if tok in table:
                if last and last < after:
                    close()
                value, last = value + table[tok], place
                break
        else:
            close()
            out.append(tok)
    close()
    return out


def normalise(text: str | None) -> str:
    """The router's view of an utterance: lowercase, ё → е, one apostrophe, numbers in words as
    digits, punctuation dropped, single spaces."""
    text = re.sub(r"[’ʼ`ʻ‘]", "'", (text or "").lower().replace("ё", "е"))
    tokens = [t.strip("'") for t in _TOKEN.findall(text)]
    return " ".join(_number_words([t for t in tokens if t]))


# ------------------------------------------------------------------------------------ risk signals
@dataclass(frozen=True)
class Signal:
    """A risk signal: where ``pattern`` matches the normalised utterance, the call stays on the default."""

    reason: str
    description: str
    pattern: _Pattern


def _signal(reason: str, description: str, *stems: str) -> Signal:
    return Signal(reason, description, _Pattern(r"\b(?:" + "|".join(stems) + ")"))


SIGNALS: tuple[Signal, ...] = (
    _signal(
        "negative_emotion",
        "anger, swearing, a repeated call, waiting too long",
        r"знущ|жах|безлад|чорт|дурн|ідіот|идиот|придур|дебіл|дебил|набрид|надоел|неподобств|бісит|бесит|дістал",
        r"достал|задовбал|задолбал|издева|ужас|бардак|безобраз|кошмар|хамств|хами|хамло|відстій|отстой|ганьб|позор",
        r"блін|блин|бля|капец|капець|трындец|хрін|хрен|фігн|фигн|жесть|обурен|возмущ|возмут|нарешті|наконец",
        r"знову|снова|опять|досі|до сих|досих|все ще|все еще|скільки можна|сколько можно|скільки чекати",
        r"сколько ждать|скільки ще|сколько еще|чека(?:ю|ємо|єм|ла|в|ли)\b|жду\b|ждем\b|ждала\b|ждал\b|втрет|вчетверт",
        r"(?:трет|четверт|п'ят|пят)\w* раз|(?:вже|уже) (?:\w+ )?(?:дзвон|звон|телефону)|додзвон|дозвон",
        r"ніхто не|никто не|ніяк|никак|що ж таке|що за|что за|какого|якого біса|терміново|срочно|негайно",
        r"немедленно|довго\b|долго\b|взагалі|вообще|(?:вже|уже) (?:\d+ )?(?:тиж|недел|місяц|месяц|дн[іяе]|днів)",
    ),
    _signal(
        "complaint",
        "complaint, claim, return, warranty, delay, wrong or missing goods",
        r"скарг|жалоб|жалу|претенз|рекламац|поверн|возвр|верн|обмін|обмен|обміня|гаранті|гаранти|компенс",
        r"відшкод|возмещ|суд\b|юрист|адвокат|споживач|потребител|обман|обдур|шахра|мошен|вимагаю|требую",
        r"розберіться|разберитесь|відгук|отзыв|керівн|руковод|директор|начальн|обіця|обеща|проблем|помилк",
        r"ошибк|затрим|задерж|запізн|опозд|не приїха|не приеха|не прийшл|не пришл|не доставил|не привез",
        r"не отрима|не получ|не вистача|не хвата|не повністю|не полностью|неповн|загуб|потерял|зник|пропал",
        r"прийшл\w* не|пришл\w* не|не ті\b|не те\b|не ту\b|не та\b|не тот|не той|не такі|не такие|не туд",
        r"не того|не відповід|не соответ|інш\w* розмір|друг\w* размер|замість|вместо|(?<!по )чому|почему",
        r"не підійшл|не подошл|не підтвердж|не подтвержд|не бере|не берет|передзвон|перезвон|смс|sms",
    ),
    _signal(
        "damage",
        "damaged, defective or worn goods",
        r"поріз|порез|пошкод|поврежд|брак|дефект|гриж|грыж|злама|слома|тріщ|трещ|подряп|царап|дірк|дыр",
        r"прокол|пробит|пробил|пробив|спуска|бит[аіиы]\b|биті|деформ|вздут|здут|лопн|розірв|порван|зношен",
        r"стерт|неякісн|некачеств|гуд[еуя]т|гудуть|шумл|вібрац|вибрац|б'є|бьет|биття|биени|вм'ятин|вмятин",
        r"погнут|зігнут|якості|качеств",
    ),
    _signal(
        "cancellation",
        "cancelling an order or a booking",
        r"скасу|скасов|відмін(?:и|і|я|ю|ен)|отмен|отказ|відмов|передума|не потрібн|не нужн|анулю|аннулир",
        r"відклик|отозв",
    ),
    _signal(
        "change",
        "changing an order, a delivery or a booking",
        r"змін|измен|поміня|поменя|переоформ|перенес|перенест|перезапис|докуп|добав|прибрат|убрат|виправ",
        r"исправ|переадрес|продовж|продл|на адресу|на адрес|інш\w* (?:адрес|відділ|номер|дат)",
        r"друг\w* (?:адрес|отделен|номер|дат)|не я\b",
    ),
    _signal(
        "payment",
        "payment, money, invoices, discounts",
        r"оплат|сплат|заплат|сплач|оплач|платі|плате|платн|плачу|переказ|перевод|переве|рахун|сч[её]т",
        r"рассроч|розстроч|частинам|частями|кредит|гроші|грош|деньг|кошт(?:и|ів|ами)\b|карт(?:ою|ой|ка|ку|ці|е|а)\b",
        r"картк|налож|післяплат|предоплат|передоплат|передплат|чек\b|квитан|списа|зняли|сняли|безгот|безнал",
        r"фоп\b|юрособ|юр особ|юридич|пдв|ндс|кешбек|знижк|скидк|промокод|бонус|дорого|дешевш|дешевл",
    ),
    _signal(
        "order",
        "placing or reserving an order",
        r"замов(?:ити|лю|ляю|ляємо|те|іть|имо)\b|закаж|заказат|заказыва(?:ю|ем|ть)\b|оформ|купи(?:ти|ть|мо)\b",
        r"куплю|придба|беру\b|беремо|візьм|возьм|взяти|взять|бронюв|заброн|бронир|резерв|відклад|отлож",
        r"з доставк|с доставк|відправте|отправьте|надішліть|пришлите|потрібн|нужн|треба|надо\b",
    ),
    _signal(
        "booking",
        "booking a fitting, a tyre service or storage",
        r"запис|запиш|монтаж|переобу|перевзу|перебу|балансу|балансир|розвал|развал|сход|сервіс|сервис",
        r"замін\w* (?:шин|коліс|резин)|замен\w* (?:шин|колес|резин)|поставит|поставил|постав(?:те|ьте)\b",
        r"зберіга|зберіг|хранен|вільн\w* (?:час|віконц|місц)|свободн|віконц|окошк|талон|утиліз",
    ),
    _signal(
        "operator_requested",
        "the caller asks for a person",
        r"оператор|менеджер|людин|человек|консультант|співробітник|сотрудник|переключ|з'єдна|соедин",
        r"перевед(?:іть|ите)|живи|живо|живу",
    ),
    _signal(
        "consultation",
        "advice, comparison, selection for a car, fitment",
        r"порад|посовет|порівн|сравн|різниц|разниц|відрізня|отлича|консульт|кращ|лучш|краще|лучше|варто",
        r"стоит ли|не розбира|не разбира|підійд|подойд|підход|подход|підбер|подбер|підібр|подобр|підбір",
        r"подбор|вибрат|вибер|обрат|оберу|выбрат|выбер|рекоменд|допоможіть|помогите|шукаю|ищу|тих(?:і|ие|ше)",
        r"зносост|износост|гальм|тормоз|економн|экономн|машин|авто|кросовер|кроссовер|джип|бус\b|року\b",
        r"года\b|диск|розболтов|разболтов|виліт|вылет|ступиц|їздити|ездить|недорог|бюджетн|запропон|предлож",
    ),
    _signal(
        "several_requests",
        "several requests said in one breath",
        r"і ще|й ще|а ще|та ще|і також|а також|також|крім того|и ещ?е|а ещ?е|а также|также|кроме того",
        r"по-перше|по перше|во-первых|во первых|по-друге|по друге|во-вторых|заодно|одразу|сразу|щоб|чтобы",
        r"ще одне|ще питання|еще вопрос|еще один|два питання|два вопроса|кілька питань|несколько вопрос",
    ),
)

_ANGRY_PUNCTUATION = _Pattern(r"\?\s*!|!\s*\?|!\s*!")
_CAPS_WORD = _Pattern(r"\b[A-ZА-ЯІЇЄҐЁ]{2,}\b")


def _shouting(raw: str) -> str:
    """«?!», «!!», or a run of capitals (two or more words, eight letters or more) — on the raw text."""
    m = _ANGRY_PUNCTUATION.search(raw)
    if m:
        return m.group(0)
    caps = _CAPS_WORD.findall(raw)
    return " ".join(caps) if len(caps) >= 2 and sum(map(len, caps)) >= 8 else ""


# ------------------------------------------------------------------------------------ simple intents
def _words(*alternatives: str) -> _Pattern:
    return _Pattern("|".join(alternatives))


# greetings, politeness, confirmations, fillers and function words: content-free on their own
_FILLER = _words(
    r"алл?[оёе]|але|добр\w*|день|дня|ранку|ранок|утро|утра|вечір|вечора|вечер|вечера|здра\w*|привіт|привет",
    r"вітаю|приветствую|так|да|ага|чі|угу|мгм|ну|е+|э+|а+|ем|эм|м+|хм+|слухаю|слушаю|дякую|спасибо|будь|ласка",
    r"пожалуйста|пожалуста|плиз|пліз|дівчино|девушка|жіночко|женщина|скажіть|скажите|підкажіть|подскажите",
    r"підкажи|подскажи|підскажіть|підкажете|подскажете|скажете|хотів|хотіла|хотіли|хотел|хотела|хотели",
    r"хочу|хочемо|хотим|хотілося|хотелось|б|би|бы|я|ми|мы|мені|мне|мене|меня|нам|нас|у|в|вас|ви|вы|вам",
    r"від|от|з|із|зі|с|со|на|це|то|это|ось|вот|ж|же|і|й|и|та|ще|еще|вже|уже|ли|чи|дізнатися|дізнатись",
    r"узнать|узнати|уточнити|уточнить|можна|можно|можете|можливо|цікавить|интересует|цікавлять|интересуют",
    r"тут|питання|вопрос|значить|отже|итак|ок|окей|ok|хорошо|добре|ясно|понятно|зрозуміло|зараз|сейчас",
    r"дзвоню|звоню|телефоную|щодо|стосовно|насчет|по|поводу|приводу|що|що|шо|что|чо|мм|ой|ну-ну|слышите",
    r"ні|нет|він|вона|воно|вони|он|она|оно|они|чути|слышно|чуєте|спитати|спросить|запитати|спитать|такое|таке|шинамаркет|алло-алло",
)
_STATUS = _words(
    r"статус\w*|замовлен\w*|заказ\w*|мо[їяєй]\w*|мій|мой|мое|мои|моего|моим|моей|мого|де|где|до|коли|когда|привез\w*",
    r"буде|будуть|будет|будут|приїд\w*|приед\w*|прийд\w*|прийшл\w*|прийшов|придет|придут|пришел|пришло",
    r"пришли|доставл\w*|достав(?:ят|ка|ки|ку|ці|ке)|відправ\w*|отправ\w*|відстеж\w*|отслед\w*|посилк\w*",
    r"посылк\w*|ттн|накладн\w*|номер\w*|шин\w*|резин\w*|товар\w*|який|яке|яка|якому|какой|какое",
    r"какая|каком|етап\w*|этап\w*|стаді\w*|стади\w*|дороз\w*|дорог\w*|пошт\w*|почт\w*|відділен\w*",
    r"отделен\w*|нов\w*|дні|днів|дней|тому|назад|кілька|несколько|пару|сьогодні|сегодня|завтра|телефон\w*",
    r"замовля\w*|замовив|замовила|заказыва\w*|заказал\w*|інформац\w*|информац\w*|за|готов\w*|відомо",
    r"путі|пути|чекати|ждать|очікувати|ожидать|известно|забрати|забрать|отримати|получить|видач\w*|выдач\w*|пункт\w*|там|з|с|ним|ним|нього|него",
)
_AVAILABILITY = _words(
    r"є|есть|имеется|маєте|имеете|наявн\w*|наличи\w*|склад\w*|залишк\w*|остат\w*|шин\w*|резин\w*",
    r"покрышк\w*|зимов\w*|зимн\w*|літн\w*|летн\w*|всесезон\w*|шипован\w*|розмір\w*|размер\w*|радіус\w*",
    r"радиус\w*|r|р|c|с|xl|штук\w*|шт|комплект\w*|скільки|сколько|скильки|кошту\w*|стоит|стоят|стоїть",
    r"продаж\w*|гум\w*|щось|що-небудь|что-то|что-нибудь|ціна|ціну|ціни|цін|цена|цену|цены|почем|почому|чому|модел\w*|бренд\w*|марк\w*|фірм\w*|які|какие",
    r"яка|какая|який|какой|такі|такие|такий|такой|для|за|цей|ці|эти|магазин\w*|пункт\w*|бу|нов\w*|ваш\w*",
)
_HOURS = _words(
    r"графік\w*|график\w*|годин\w*|час\w*|режим\w*|робот\w*|работ\w*|працю\w*|відкрит\w*|открыт\w*",
    r"відкрива\w*|открыва\w*|відчин\w*|зачин\w*|закрива\w*|закрыва\w*|до|з|с|котр\w*|котор\w*|скольки",
    r"скількох|скільки|коли|когда|сьогодн\w*|сегодн\w*|завтра|понеділ\w*|вівтор\w*|серед\w*|четвер\w*",
    r"п'ятниц\w*|пятниц\w*|субот\w*|суббот\w*|неділ\w*|воскрес\w*|понедельн\w*|вторник\w*|сред\w*|вихідн\w*",
    r"выходн\w*|святк\w*|праздн\w*|свят\w*|адрес\w*|ваш\w*|магазин\w*|пункт\w*|видач\w*|выдач\w*|точк\w*",
    r"філі\w*|филиал\w*|офіс\w*|офис\w*|склад\w*|де|где|знаход\w*|наход\w*|розташован\w*|расположен\w*",
    r"як|как|доїхати|доехать|дістатися|добраться|проїхати|проехать|дійти|дойти|к|місто|город|телефон\w*",
    r"номер\w*|контакт\w*|сайт\w*|обід\w*|обед\w*|перерв\w*|цілодобово|круглосуточно|о|об|який|яка|какой",
    r"якої|якою|какой|знайти|найти|какая|какому|вулиц\w*|улиц\w*|самовивіз\w*|самовывоз\w*|є|есть",
)
_CITY = _Pattern(
    r"(?:києв|київ|киев|львов|львів|одес|харк|харьк|дніпр|днепр|запор|вінниц|винниц|полтав|житомир|черкас"
    r"|чернігів|чернігов|чернигов|сум|рівн|ровн|луцьк|луцк|тернопол|тернопіл|франків|франков|ужгород|хмельниц"
    r"|кропивниц|кривий|кривом|кривог|кривой|ріг|розі|рогу|миколаїв|миколаєв|николаев|херсон|чернівц|черновц|кременчу|біл|бел|церкв|церков|іван|иван"
    r"|місті|городе)\w*"
)
_BRAND = _Pattern(
    r"michelin|мішлен|мишлен|nokian|нокіан|нокиан|continental|континенталь|континентал|bridgestone|бріджстоун"
    r"|бриджстоун|goodyear|гудієр|гудиер|pirelli|піреллі|пирелли|hankook|ханкук|yokohama|йокогама|йокохама"
    r"|dunlop|данлоп|toyo|тойо|kumho|кумхо|nexen|нексен|matador|матадор|premiorri|преміорі|премиорри|rosava"
    r"|росава|barum|барум|kleber|клебер|falken|фалкен|gislaved|гіславед|nordman|нордман|laufenn|лауфен|sailun"
    r"|сайлун|tigar|тігар|тигар|sava|сава|fulda|фульда|hakkapeliitta|хакапеліта|хаккапеліта|хакапелита"
)
_MODEL_WORDS = 3  # words after a brand taken as its model name («Мішлен Альпін 6», «WinterContact TS 870»)


@dataclass(frozen=True)
class Intent:
    """A simple intent: ``anchor`` finds it in the normalised utterance; ``words`` (with the fillers,
    numbers, cities, brands and model names) must cover every other word."""

    name: str
    description: str
    anchor: _Pattern
    words: _Pattern
    needs_item: bool = False  # availability: a tyre size or a brand must be named


INTENTS: tuple[Intent, ...] = (
    Intent(
        "order_status",
        "where an order is, when it comes, its tracking number",
        _Pattern(
            r"\bстатус|\b(?:де|где|шо|що|что) (?:там )?(?:з |с )?(?:мо\w+ |мой |мое )?(?:замовлен|заказ|посилк|посылк)"
            r"|\b(?:коли|когда) (?:\w+ ){0,3}(?:привез|буде|будет|приїд|приед|прийд|прийш|придет|доставл|доставят"
            r"|відправ|отправ)|відстеж|отслед|\bттн\b|накладн|(?:номер\w* )?(?:замовлен|заказ)\w* (?:номер \d|\d)"
            r"|(?:замовлен|заказ)\w* (?:\w+ )?(?:вже |уже )?(?:відправ|отправ|готов|прийш|пришл|в дороз)"
            r"|(?:відправ|отправ)\w* (?:вже |уже |ли )?(?:мо\w+ )?(?:замовлен|заказ)"
            r"|(?:замовлен|заказ)\w* (?:\w+ )?(?:де|где)\b|прийшло мо|по (?:замовлен|заказ)"
        ),
        _STATUS,
    ),
    Intent(
        "availability",
        "whether a named tyre or size is in stock, and its price",
        _Pattern(
            r"\b(?:наявн|наличи|залишк|остат|на склад|имеется|маєте|почем|по чому|по чем)|\b(?:чи|чі) є\b"
            r"|\bє (?:\w+ )?(?:у вас|в наявн|на склад)|\bесть (?:ли|у вас|в налич)"
            r"|\b(?:що|шо|что) (?:у вас )?(?:є|есть)\b"
            r"|\b(?:скільки|сколько) (?:\w+ )?(?:кошту|стоит|стоят|стоїть)|\bцін[аиу]\b|\bцен[аыу]\b|\bє\b|\bесть\b"
        ),
        _AVAILABILITY,
        needs_item=True,
    ),
    Intent(
        "hours_or_address",
        "working hours, the shop's address or phone, pickup",
        _Pattern(
            r"\b(?:графік|график|години роботи|годин роботи|режим|до котр|до котор|до скольк|до скільк|з котр|с котор"
            r"|часы работы|працюєте|працює|работаете|работает|работаєте|відкрит|открыт|відкрива|открыва|вихідн"
            r"|выходн|адрес|знаходит|находит|розташов|располож|доїхати|доехать|дістатися|добраться|проїхати"
            r"|проехать|обідн|обеденн|перерв|самовив|самовыв)"
            r"|\b(?:де|где|знайти|найти) (?:\w+ ){0,2}(?:магазин|пункт|філі|филиал|офіс|офис|точк)"
            r"|телефон\w* (?:магазин|філі|филиал|пункт)|(?:ваш|у вас)\w* (?:номер\w* )?телефон"
        ),
        _HOURS,
    ),
)
_SIZE = _Pattern(
    r"\b[1-3]\d\d (?:на )?[2-9][05]\b|\b[rр] ?(?:1[2-9]|2[0-4])\b|\b(?:1[2-9]|2[0-4]) (?:\w{1,2} )?(?:радіус|радиус)"
    r"|(?:радіус|радиус) (?:1[2-9]|2[0-4])\b"
)
_WIDTH_PROFILE = _Pattern(r"\b([1-3]\d\d) (?:на )?([2-9][05])\b")
_ORDER_NUMBER = _Pattern(r"\b\d{5,}\b|\b\d{3} \d{3}\b(?! (?:на )?[2-9][05]\b)")  # not «870 205 55»
_LATIN = _Pattern(r"[a-z][a-z0-9']*")


def _uncovered(tokens: list[str], intent: Intent) -> list[str]:
    """The words neither the intent nor a filler, number, city, brand or model name covers."""
    left: list[str] = []
    model_words = 0  # how many more words may be a model name (after a brand)
    for tok in tokens:
        if _BRAND.fullmatch(tok):
            model_words = _MODEL_WORDS
            continue
        if tok.isdigit():
            continue
        if intent.words.fullmatch(tok) or _FILLER.fullmatch(tok) or _CITY.fullmatch(tok):
            model_words = 0  # a model name follows its brand directly
            continue
        if model_words > 0 or _LATIN.fullmatch(tok):  # a model name or a code (ORD-…, XL), said in Latin
            model_words -= 1
            continue
        left.append(tok)
    return left


def _several_items(text: str) -> str:
    """A second order number or a second tyre size is a second request."""
    numbers = {n.replace(" ", "") for n in _ORDER_NUMBER.findall(text)}
    sizes = set(_WIDTH_PROFILE.findall(text))
    if len(numbers) > 1:
        return " ".join(sorted(numbers))
    if len(sizes) > 1:
        return " ".join("/".join(s) for s in sorted(sizes))
    return ""


def _other_items(text: str, intent: Intent) -> str:
    """An item that belongs to another intent: a tyre size outside availability, an order number outside
    order status («чи є 195 65 15 та коли ви працюєте» asks two things)."""
    if intent.name != "availability":
        m = _SIZE.search(text)
        if m:
            return m.group(0)
    if intent.name != "order_status":
        m = _ORDER_NUMBER.search(text)
        if m:
            return m.group(0)
    return ""


# ------------------------------------------------------------------------------------ the router
def route(
    first_customer_utterance: str | None,
    scenario: str | None = None,
    *,
    cheap_model: str = CHEAP_MODEL,
    default_model: str = DEFAULT_MODEL,
) -> Decision:
    """The model for a call from the caller's IVR choice (``scenario``, if known) and first utterance.
    Deterministic; the cheaper model only when a simple intent covers the whole utterance and no risk
    signal is present (see the module's docstring)."""
    if first_customer_utterance is not None and not isinstance(first_customer_utterance, str):
        raise InvalidArgument(f"the utterance must be a string, got {type(first_customer_utterance).__name__}")
    if scenario is not None and not isinstance(scenario, str):
        raise InvalidArgument(f"the scenario must be a string, got {type(scenario).__name__}")

    def cheap(reason: str, intent: str | None, detail: str = "") -> Decision:
        return Decision(cheap_model, "cheap", reason, intent, detail)

    def default(reason: str, detail: str = "", intent: str | None = None) -> Decision:
        return Decision(default_model, "default", reason, intent, detail)

    parts = [p.strip().lower() for p in (scenario or "").split("+") if p.strip()]
    if len(parts) > 1:
        return default("several_requests", scenario or "")
    if parts and parts[0] in COMPLEX_SCENARIOS:
        return default("complex_scenario", parts[0])
    scenario_intent = SIMPLE_SCENARIOS.get(parts[0]) if parts else None  # an unknown scenario says nothing

    raw = first_customer_utterance or ""
    text = normalise(raw)
    tokens = text.split()
    shout = _shouting(raw)
    if shout:
        return default("negative_emotion", shout)
    for signal in SIGNALS:
        m = signal.pattern.search(text)
        if m:
            return default(signal.reason, m.group(0))
    if len(tokens) > LONG_UTTERANCE_WORDS:
        return default("long_utterance", f"{len(tokens)} words")
    if all(_FILLER.fullmatch(t) for t in tokens):
        if scenario_intent:
            return cheap("simple_scenario", scenario_intent, parts[0])
        return default("empty" if not tokens else "no_content", text)

    several = _several_items(text)
    if several:
        return default("several_requests", several)
    found = [i for i in INTENTS if i.anchor.search(text)]
    if not found and scenario_intent:  # the IVR choice names the intent: «204518» after «order status»
        found = [i for i in INTENTS if i.name == scenario_intent]
    if not found:
        return default("no_simple_intent", text)
    # the intent that covers every word; two intents found and neither covers the other's words: two requests
    left = {i.name: _uncovered(tokens, i) for i in found}
    covering = [i for i in found if not left[i.name]]
    if not covering:
        if len(found) > 1:
            return default("several_requests", " + ".join(i.name for i in found))
        return default("not_covered", " ".join(left[found[0].name]), found[0].name)
    intent = covering[0]
    other = _other_items(text, intent)
    if other:
        return default("several_requests", other, intent.name)
    if intent.needs_item and intent.name != scenario_intent and not (_SIZE.search(text) or _has_brand(tokens)):
        return default("no_simple_intent", "no tyre size or brand named", intent.name)
    return cheap(intent.name, intent.name)


def _has_brand(tokens: list[str]) -> bool:
    return any(_BRAND.fullmatch(t) for t in tokens)


def reasons() -> dict[str, str]:
    """Every reason code ``route`` can give, with its meaning (for reports and docs)."""
    out = {
        "several_requests": "several requests (a multi-part scenario, a second intent or item, «і ще»)",
        "complex_scenario": "the IVR scenario is a complex one",
    }
    out.update({s.reason: s.description for s in SIGNALS if s.reason not in out})
    out.update(
        {
            "long_utterance": f"more than {LONG_UTTERANCE_WORDS} words",
            "empty": "no utterance (silence)",
            "no_content": "a content-free opener (greeting, «так», «алло») and no simple scenario",
            "simple_scenario": "a simple IVR scenario and a content-free opener",
            "no_simple_intent": "no simple intent found (or no tyre named for availability)",
            "not_covered": "words no simple intent covers",
        }
    )
    out.update({i.name: f"simple: {i.description}" for i in INTENTS})
    return out
