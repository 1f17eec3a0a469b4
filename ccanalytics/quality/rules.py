"""Rule-based signals of a call, computed without an LLM and stored beside every score; the
deterministic judge that scores from them is ``ccanalytics.quality.rulesjudge``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ccanalytics.analytics import signals
from ccanalytics.quality.transcript import CallView

RESPONSE_BUDGET_MS = 2000.0

# The customer is irritated, rude or complains (Ukrainian, Russian, surzhyk). Asking for a person is
# not by itself dissatisfaction.
NEGATIVE = re.compile(
    r"жах|дурн|ідіот|идиот|знущ|издева|набрид|надоел|скільки можна|сколько можно|безглузд|кошмар|обман"
    r"|ненормальн|тупа |тупий|тупой|тупая|бред|маячн|безлад|бардак|чорт|черт возьми|відстій|отстой|ганьба"
    r"|позор|задовбал|достал|безобраз|неподобств|скаржи|скаргу|жалоб|де мої гроші|где мои деньги|досі нічого"
    r"|до сих пор ничего|що за сервіс|что за сервис|жахлив|ужасн|огидн|отвратит|мені набридло|хамств"
    r"|що це таке|что это такое|я ж сказа|я же сказа",
    re.IGNORECASE,
)
THANKS = re.compile(
    r"дякую|дякуємо|спасибі|спасибо|пасиб|чудово|супер|відмінно|отлично|дуже допомогли|очень помогли|благодарю",
    re.IGNORECASE,
)
# A bot question that reads the details back or asks for a yes before acting.
CONFIRM = re.compile(
    r"підтвердж|підтверд|подтвержд|подтверд|все вірно|усе вірно|все правильно|усе правильно|все верно"
    r"|вірно\?|верно\?|правильно\?|оформ\w*\?|оформ\w* замовлення\?|оформ\w* заказ\?|запис\w*[^.?!]*\?"
    r"|бронюю\?|бронирую\?|згодні|погоджуєте|согласны|так\?|да\?|підходить\?|подходит\?|домовились\?"
    r"|договорились\?|залишаємо так\?|оставляем\?|можна оформлювати\?|можно оформлять\?",
    re.IGNORECASE,
)
# The customer says yes (and nothing else that changes the deal).
AFFIRM = re.compile(
    r"(?:^|\W)(?:так|да|ага|угу|авжеж|звісно|звичайно|конечно|канєшно|ок|окей|добре|хорошо|давайте|давай"
    r"|підтверджую|подтверждаю|вірно|верно|правильно|згоден|згодна|согласен|согласна|оформлюйте"
    r"|оформляйте|оформлюй|оформляй|записуйте|запишіть|запишите|бронюйте|годиться|підходить|подходит"
    r"|саме так|именно так|все чотко|норм|yes)(?:\W|$)",
    re.IGNORECASE,
)
NEGATE = re.compile(
    r"(?:^|\W)(?:ні|нет|неа|не треба|не надо|не потрібно|не нужно|стоп|зачекайте|подождите|почекайте|не так"
    r"|неправильно|невірно|не вірно|не верно|скасуйте|отмените|передумав|передумала|передумал)(?:\W|$)"
    r"|(?:^|\W)(?:але|тільки|только|но|а не|замість|вместо|змініть|поміняйте|поменяйте|исправьте|виправте)(?:\W|$)",
    re.IGNORECASE,
)
# A bot question asking only who the customer is (name, phone, car): it does not change the deal.
CONTACT = re.compile(
    r"звати|звертатися|ім'я|ім’я|імя|прізвищ|как вас зовут|как к вам обращаться|ваше имя|фамили|номер телефон"
    r"|контактн|яке у вас авто|який у вас автомобіль|марка авто|марку авто|какая у вас машина|марка машины",
    re.IGNORECASE,
)
# The customer says the bot took the request for another one.
CORRECTED = re.compile(
    r"мене не зрозумі|меня не понял|меня не поняли|не так зрозумі|не так понял"
    r"|я не про |я не о |не про це|не об этом|не про то|не то спрашиваю|не те питаю|я про інше"
    r"|я о другом|про другое|про інше|не це мав|не це мала|не это имел|я не просил|я не просила|я не питав"
    r"|я не питала|я не спрашивал|я не спрашивала|не це питаю|не это спрашива|не це пита|при чому тут|при чем тут",
    re.IGNORECASE,
)
# Amounts of money a bot says ("4 150 гривень", "3200 грн", "₴ 900").
MONEY = re.compile(r"(\d[\d \u00a0]*\d|\d)\s*(?:грн|гривень|гривні|гривня|гривен|гривны|₴|uah)", re.IGNORECASE)
# Tools that place an order or a booking: the customer must have said yes to them (a draft, a delivery
# change or a lookup needs no yes).
COMMITTING_TOOLS = ("confirm_order", "book_fitting")
# the tools each scenario calls for (a price named with none of them called is made up)
SCENARIO_TOOLS: dict[str, tuple[str, ...]] = {
    "tire_search": ("search_tires", "get_vehicle_tire_sizes", "check_availability"),
    "availability_check": ("check_availability", "search_tires"),
    "order_status": ("get_order_status",),
    "order_creation": ("create_order_draft", "confirm_order", "check_availability", "search_tires"),
    "fitting_booking": (
        "get_fitting_slots",
        "book_fitting",
        "get_fitting_stations",
        "get_customer_bookings",
        "get_fitting_price",
    ),
    "consultation": ("search_knowledge_base",),
}
# a tool that needs another one's answer first (a slot nobody looked up, an order with no draft)
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "book_fitting": ("get_fitting_slots",),
    "confirm_order": ("create_order_draft",),
    "create_order_draft": ("check_availability", "search_tires"),
}
SEASONS = (
    ("winter", re.compile(r"зимов|зимн|зиму|зима|winter", re.IGNORECASE)),
    ("summer", re.compile(r"літн|летн|літо|лето|summer", re.IGNORECASE)),
    ("all_season", re.compile(r"всесезон|all.?season", re.IGNORECASE)),
)
ORDER_NUMBER = re.compile(r"\d{5,}")


@dataclass(frozen=True)
class Signals:
    greeted: bool
    bot_turns: int
    customer_turns: int
    mean_bot_chars: float
    max_bot_chars: int
    reasks: int
    repeated_bot_questions: int
    low_confidence_turns: int
    tool_calls: int
    tool_errors: int
    rejected_tool_calls: int
    suspicious_tool_calls: int
    transferred: bool
    long_pauses: int
    response_p95_ms: float | None
    latency_over_budget: bool
    negative_turns: int
    thanked_at_end: bool
    confirmed_before_action: bool | None  # None: no order or booking placed
    corrections: int = 0  # customer turns saying the bot misunderstood
    ungrounded_amounts: int = 0  # sums of money the bot said that no tool returned

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def is_consent(text: str) -> bool:
    """A customer's yes that changes nothing: affirmative, no "no"/"but", not a question."""
    text = text.strip()
    return bool(AFFIRM.search(text)) and not NEGATE.search(text) and not text.endswith("?")


def _confirm_question(text: str) -> bool:
    return "?" in text and bool(CONFIRM.search(text))


def confirmed_before(turns: tuple, index: int, since: int = 0) -> bool:
    """Whether the committing action in ``turns[index]`` was agreed to: walking back from it, the
    customer's last reply (skipping exchanges about who the customer is) is a yes to a bot question
    that asked for one. Nothing before ``since`` (the previous committing action) counts."""
    k = index - 1
    while k >= since:
        while k >= since and turns[k].speaker != "customer":
            k -= 1
        if k < since:
            return False
        reply, j = turns[k], k - 1
        replies = [reply]
        while j >= since and turns[j].speaker == "customer":  # one reply said in several turns
            replies.append(turns[j])
            j -= 1
        if j < since:
            return False
        question = turns[j]
        if CONTACT.search(question.text) and not _confirm_question(question.text):
            k = j - 1  # a name or a phone changes nothing: look further back
            continue
        return (
            _confirm_question(question.text)
            and is_consent(reply.text)
            and not any(NEGATE.search(r.text) for r in replies)
        )
    return False


def confirmation(call: CallView) -> bool | None:
    """Every order or booking placed in the call was agreed to (None: none was placed)."""
    verdicts, since = [], 0
    for i, t in enumerate(call.turns):
        if any(tool.name in COMMITTING_TOOLS for tool in t.tools):
            verdicts.append(confirmed_before(call.turns, i, since))
            since = i + 1
    return all(verdicts) if verdicts else None


def _amount(text: str) -> int:
    return int(re.sub(r"\D", "", text))


MONEY_KEY = re.compile(r"price|total|cost|sum|uah|amount|fee|ціна|вартість|сума", re.IGNORECASE)


def _numbers(value: Any, money: set[int], other: set[int], key: str = "") -> None:
    """Collect the numbers of a tool's arguments or result: under a money-like key (or inside a text,
    e.g. an error message naming the catalogue price) into ``money``, the rest into ``other``."""
    if isinstance(value, dict):
        for k, v in value.items():
            _numbers(v, money, other, str(k))
    elif isinstance(value, list):
        for v in value:
            _numbers(v, money, other, key)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        (money if MONEY_KEY.search(key) else other).add(int(value))
    elif isinstance(value, str):
        money.update(int(x) for x in re.findall(r"\d+", value) if len(x) <= 7)


def ungrounded_amounts(call: CallView) -> tuple[int, ...]:
    """Bot turns naming a sum of money that no tool returned so far (a money figure, a multiple of
    one up to ten, or the sum of two): the bot made a price up."""
    money: set[int] = set()
    other: set[int] = set()
    out = []
    for t in call.turns:
        for tool in t.tools:
            _numbers(tool.args, money, other)
            _numbers(tool.result, money, other)
        if t.speaker != "bot":
            continue
        for found in MONEY.finditer(t.text):
            value = _amount(found.group(1))
            if value and not _grounded(value, money, other):
                out.append(t.number)
                break
    return tuple(out)


def _grounded(value: int, money: set[int], other: set[int]) -> bool:
    if value in money or value in other or any(value == k * q for k in money for q in range(2, 11)):
        return True
    return any(value - k in money for k in money if 0 < k < value)


def wrong_arguments(call: CallView) -> tuple[int, ...]:
    """Bot turns whose tool calls contradict the conversation: a tool run before the one it needs, a
    season other than the one the customer asked for, a size the vehicle lookup did not return (and
    the customer did not say), an order number the customer did not give."""
    seen: set[str] = set()
    season: str | None = None
    sizes: set[str] | None = None
    said_numbers: set[str] = set()
    said = ""
    out = []
    for t in call.turns:
        if t.speaker == "customer":
            said += " " + t.text
            said_numbers.update(ORDER_NUMBER.findall(t.text))
            for name, pattern in SEASONS:
                if pattern.search(t.text):
                    season = name
            continue
        wrong = False
        for tool in t.tools:
            args = tool.args if isinstance(tool.args, dict) else {}
            needs = PREREQUISITES.get(tool.name)
            if needs and not seen.intersection(needs):
                wrong = True
            if tool.name == "search_tires":
                if season and args.get("season") and args["season"] != season:
                    wrong = True
                size = str(args.get("size") or "")
                digits = re.findall(r"\d+", size)
                if sizes is not None and size and size not in sizes and not all(d in said for d in digits):
                    wrong = True
            order_id = str(args.get("order_id") or "")
            number = "".join(ORDER_NUMBER.findall(order_id))
            if tool.name == "get_order_status" and number and said_numbers and number not in said_numbers:
                wrong = True
            if tool.name == "get_vehicle_tire_sizes" and tool.success and isinstance(tool.result, dict):
                sizes = {str(x) for x in tool.result.get("sizes") or ()}
            seen.add(tool.name)
        if wrong:
            out.append(t.number)
    return tuple(out)


def unanswered_failures(call: CallView) -> tuple[int, ...]:
    """Bot turns after a tool failure (not a refusal) that the bot neither recovered from (the same tool
    later succeeded) nor handed to an operator: whatever it said was not from the system."""
    if call.transferred:
        return ()
    out = []
    for i, t in enumerate(call.turns):
        for tool in t.tools:
            if tool.success or signals.is_rejected(tool.success, tool.result):
                continue
            later = [x for turn in call.turns[i:] for x in turn.tools]
            if not any(x.name == tool.name and x.success for x in later):
                out.append(t.number)
    return tuple(out)


def compute_signals(call: CallView) -> Signals:
    bot = [t for t in call.turns if t.speaker == "bot"]
    customer = [t for t in call.turns if t.speaker == "customer"]
    lengths = [len(t.text) for t in bot]
    # a question, or any longer line, that the bot says again word for word
    questions = [_norm(t.text) for t in bot if t.text.rstrip().endswith("?") or len(t.text) >= 25]
    tools = [tool for t in call.turns for tool in t.tools]
    last_customer = customer[-2:] if customer else []
    m = call.metrics or {}
    p95 = m.get("response_p95_ms")
    return Signals(
        greeted=bool(bot) and signals.is_greeting(bot[0].text),
        bot_turns=len(bot),
        customer_turns=len(customer),
        mean_bot_chars=round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        max_bot_chars=max(lengths, default=0),
        reasks=sum(signals.is_reask(t.text) for t in bot),
        repeated_bot_questions=len(questions) - len(set(questions)),
        low_confidence_turns=sum(
            1 for t in customer if t.stt_confidence is not None and t.stt_confidence < signals.LOW_CONFIDENCE
        ),
        tool_calls=len(tools),
        tool_errors=sum(not tool.success for tool in tools),
        rejected_tool_calls=sum(signals.is_rejected(tool.success, tool.result) for tool in tools),
        suspicious_tool_calls=sum(signals.suspicious_args(tool.args) for tool in tools),
        transferred=call.transferred,
        long_pauses=int(m.get("long_pauses") or 0),
        response_p95_ms=p95,
        latency_over_budget=p95 is not None and p95 > RESPONSE_BUDGET_MS,
        negative_turns=sum(bool(NEGATIVE.search(t.text)) for t in customer),
        thanked_at_end=any(THANKS.search(t.text) for t in last_customer),
        confirmed_before_action=confirmation(call),
        corrections=sum(bool(CORRECTED.search(t.text)) for t in customer),
        ungrounded_amounts=len(ungrounded_amounts(call)),
    )
