"""The model router's simple intents (order status, availability, hours or address) and the words
that may cover an utterance with them: fillers, cities, tyre brands and model names, sizes, order numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ccanalytics.cost.routing_text import LazyPattern


def _words(*alternatives: str) -> LazyPattern:
    return LazyPattern("|".join(alternatives))


# greetings, politeness, confirmations, fillers and function words: content-free on their own
FILLER = _words(
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
_CITY = LazyPattern(
    r"(?:києв|київ|киев|львов|львів|одес|харк|харьк|дніпр|днепр|запор|вінниц|винниц|полтав|житомир|черкас"
    r"|чернігів|чернігов|чернигов|сум|рівн|ровн|луцьк|луцк|тернопол|тернопіл|франків|франков|ужгород|хмельниц"
    r"|кропивниц|кривий|кривом|кривог|кривой|ріг|розі|рогу|миколаїв|миколаєв|николаев|херсон|чернівц|черновц|кременчу|біл|бел|церкв|церков|іван|иван"
    r"|місті|городе)\w*"
)
_BRAND = LazyPattern(
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
    anchor: LazyPattern
    words: LazyPattern
    needs_item: bool = False  # availability: a tyre size or a brand must be named


INTENTS: tuple[Intent, ...] = (
    Intent(
        "order_status",
        "where an order is, when it comes, its tracking number",
        LazyPattern(
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
        LazyPattern(
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
        LazyPattern(
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
SIZE = LazyPattern(
    r"\b[1-3]\d\d (?:на )?[2-9][05]\b|\b[rр] ?(?:1[2-9]|2[0-4])\b|\b(?:1[2-9]|2[0-4]) (?:\w{1,2} )?(?:радіус|радиус)"
    r"|(?:радіус|радиус) (?:1[2-9]|2[0-4])\b"
)
_WIDTH_PROFILE = LazyPattern(r"\b([1-3]\d\d) (?:на )?([2-9][05])\b")
_ORDER_NUMBER = LazyPattern(r"\b\d{5,}\b|\b\d{3} \d{3}\b(?! (?:на )?[2-9][05]\b)")  # not «870 205 55»
_LATIN = LazyPattern(r"[a-z][a-z0-9']*")


def uncovered(tokens: list[str], intent: Intent) -> list[str]:
    """The words neither the intent nor a filler, number, city, brand or model name covers."""
    left: list[str] = []
    model_words = 0  # how many more words may be a model name (after a brand)
    for tok in tokens:
        if _BRAND.fullmatch(tok):
            model_words = _MODEL_WORDS
            continue
        if tok.isdigit():
            continue
        if intent.words.fullmatch(tok) or FILLER.fullmatch(tok) or _CITY.fullmatch(tok):
            model_words = 0  # a model name follows its brand directly
            continue
        if model_words > 0 or _LATIN.fullmatch(tok):  # a model name or a code (ORD-…, XL), said in Latin
            model_words -= 1
            continue
        left.append(tok)
    return left


def several_items(text: str) -> str:
    """A second order number or a second tyre size is a second request."""
    numbers = {n.replace(" ", "") for n in _ORDER_NUMBER.findall(text)}
    sizes = set(_WIDTH_PROFILE.findall(text))
    if len(numbers) > 1:
        return " ".join(sorted(numbers))
    if len(sizes) > 1:
        return " ".join("/".join(s) for s in sorted(sizes))
    return ""


def other_items(text: str, intent: Intent) -> str:
    """An item that belongs to another intent: a tyre size outside availability, an order number outside
    order status («чи є 195 65 15 та коли ви працюєте» asks two things)."""
    if intent.name != "availability":
        m = SIZE.search(text)
        if m:
            return m.group(0)
    if intent.name != "order_status":
        m = _ORDER_NUMBER.search(text)
        if m:
            return m.group(0)
    return ""


def has_brand(tokens: list[str]) -> bool:
    return any(_BRAND.fullmatch(t) for t in tokens)
