"""Russian labels of the data's keys (scenarios, transfer reasons, quality criteria, components, problem
flags, review reasons, judges, statuses, decisions, roles, form fields): one vocabulary for the admin,
the reports, the charts and the alert messages. A page never shows a key itself: it shows its label
(the crawl test, tests/test_russian_crawl.py, refuses any key of :data:`VOCABULARIES` in a page)."""

from __future__ import annotations

from collections.abc import Mapping

from ccanalytics.core import vocabulary
from ccanalytics.core.vocabulary import labelled

# the domain's codes come from ccanalytics.core.vocabulary; ``labelled`` refuses a code without a label
SCENARIOS = labelled(
    vocabulary.SCENARIOS,
    {
        "tire_search": "подбор шин",
        "availability_check": "проверка наличия",
        "order_status": "статус заказа",
        "order_creation": "оформление заказа",
        "fitting_booking": "запись на шиномонтаж",
        "consultation": "консультация",
    },
    "scenarios",
)
# the catch-all of bounded label sets (telemetry: codes outside the known sets become "other")
OTHER = "прочее"
# scenario keys as stored in the daily figures: the scenarios, a call without one, the catch-all
SCENARIO_CODES = {**SCENARIOS, "unknown": "сценарий не определён", "other": OTHER}
TRANSFER_REASONS = {
    **labelled(
        vocabulary.TRANSFER_REASONS,
        {
            "customer_request": "по просьбе клиента",
            "cannot_help": "бот не смог помочь",
            "complex_question": "сложный вопрос",
            "negative_emotion": "негатив клиента",
        },
        "transfer reasons",
    ),
    "unknown": "причина не указана",
}
CRITERIA = labelled(
    vocabulary.CRITERIA,
    {
        "bot_greeted_properly": "Приветствие",
        "bot_understood_intent": "Понял запрос",
        "bot_used_correct_tool": "Верный инструмент",
        "bot_provided_accurate_info": "Точная информация",
        "bot_confirmed_before_action": "Подтверждение перед действием",
        "bot_was_concise": "Краткость",
        "call_resolved_without_human": "Решено без оператора",
        "customer_seemed_satisfied": "Клиент доволен",
    },
    "criteria",
)
# the agent's tools, in words a manager reads (the day's story names a failing tool by them)
TOOLS = labelled(
    vocabulary.TOOLS,
    {
        "get_vehicle_tire_sizes": "размеры шин для авто",
        "search_tires": "поиск шин",
        "check_availability": "проверка наличия",
        "create_order_draft": "оформление заказа",
        "update_order_delivery": "доставка заказа",
        "confirm_order": "подтверждение заказа",
        "get_order_status": "статус заказа",
        "get_pickup_points": "пункты выдачи",
        "get_fitting_stations": "шиномонтажи в городе",
        "get_fitting_slots": "свободное время шиномонтажа",
        "get_fitting_price": "цена шиномонтажа",
        "book_fitting": "запись на шиномонтаж",
        "cancel_fitting": "отмена записи",
        "get_customer_bookings": "записи клиента",
        "search_knowledge_base": "база знаний",
        "transfer_to_operator": "перевод на оператора",
    },
    "tools",
)
# latency components (the NFR budget) and cost components (cost_breakdown keys)
COMPONENTS = {
    "stt": "распознавание (STT)",
    "llm": "LLM (первый токен)",
    "tts": "синтез (TTS)",
    "response": "ответ целиком",
}
COST_COMPONENTS = {
    "stt": "распознавание (STT)",
    "llm": "LLM",
    "tts": "синтез (TTS)",
    "telephony": "телефония",
    "judge": "оценка качества (судья)",
}


# call outcomes, tool call statuses, the tool component of pipeline errors, "no transfer" (Prometheus labels)
OUTCOMES = {"bot": "бот", "operator": "оператор"}
TOOL_STATUSES = {"ok": "успешно", "error": "ошибка", "rejected": "отклонено"}
TOOL_COMPONENT = {"tool": "инструменты"}
NO_TRANSFER = {"none": "без перевода"}

# problem calls: the main problem of a call (flag), its cause and the action taken (problemcalls.py)
FLAGS = {
    "auto_fail": "автопровал критерия",
    "tool_errors": "ошибки / отклонения инструментов",
    "reasks": "переспрашивания (STT)",
    "slow": "медленные ответы",
    "low_score": "низкая оценка качества",
    "transfer": "перевод на оператора",
}
CAUSES = {
    "prompt": "промпт (поведение бота)",
    "tool": "инструмент / Store API",
    "stt": "распознавание речи (STT)",
    "tts": "синтез речи (TTS)",
    "llm": "задержка LLM",
    "knowledge": "база знаний / данные",
    "customer": "запрос клиента (норма)",
    "other": "другое",
}
ACTIONS = {
    "prompt_edit": "правка промпта (новая версия + A/B-тест)",
    "stt_hint": "подсказки STT (слова и фразы)",
    "escalation": "эскалация команде (Store API, телефония, провайдер)",
    "knowledge_update": "обновить базу знаний / данные",
    "tts_cache": "предзаписать фразы в кэш TTS",
    "monitor": "наблюдать",
    "none": "ничего не делать",
}
# why a call went to manual review (quality/rubric.py) and where the review stands
REVIEW_REASONS = {"auto_fail": "автопровал критерия", "low_score": "низкая оценка качества"}
REVIEW_STATUSES = {"new": "ждёт проверки", "in_review": "на проверке", "resolved": "проверен"}
# the quality judge: its kind, and the rule-based judge's model "rules-vN" (see judge())
JUDGE_KINDS = {"rules": "правила", "llm": "LLM-судья"}
# A/B tests: ccanalytics's statuses, the call processor's, the recommendation and the recorded decision
AB_STATUSES = {"draft": "черновик", "running": "идёт", "stopped": "остановлен", "completed": "завершён"}
PROCESSOR_AB_STATUSES = {"active": "идёт", "stopped": "остановлен", "completed": "завершён"}
AB_ACTIONS = {
    "ship_b": "переключиться на вариант-претендент",
    "keep_a": "оставить контрольный вариант",
    "keep_running": "продолжать тест",
    "stop_harm": "остановить: претендент хуже",
    "investigate_srm": "разобраться с распределением трафика",
}
AB_DECISIONS = {
    "ship_b": "внедрить претендента",
    "keep_a": "оставить контрольный вариант A",
    "inconclusive": "без вывода (разницы не видно)",
    "stop_harm": "остановить: претендент хуже",
}
# optimizer suggestions, cost levers, alert events, roles
SUGGESTION_STATUSES = {"proposed": "ждёт решения", "approved": "одобрено", "rejected": "отклонено"}
SUGGESTION_SOURCES = {"rules": "правила (офлайн)", "llm": "LLM"}
LEVERS = {
    "tts_cache": "кэш фраз TTS",
    "model_routing": "маршрутизация моделей",
    "stt_provider": "провайдер STT (Whisper)",
    "prompt_length": "длина промпта",
    "other": "прочее (структура звонков, длительность, цены)",
}
ALERT_EVENTS = {"fired": "сработал", "repeated": "повтор", "resolved": "снят"}
CHANNELS = {"email": "e-mail", "telegram": "Telegram"}
DELIVERY_STATUSES = {
    "pending": "в очереди",
    "sent": "доставлено",
    "unknown": "не подтверждено",
    "dead": "не доставлено",
}
ROLES = {"admin": "администратор", "analyst": "аналитик", "service": "сервис"}
# the admin's form fields, for a form shown again after its token expired (webapp/errorpages.py)
FORM_FIELDS = {
    "name": "Имя",
    "system_prompt": "Системный промпт",
    "note": "Что изменилось и зачем",
    "tools_config": "Инструменты (JSON)",
    "metadata": "Метаданные (JSON)",
    "reason": "Причина",
    "comment": "Комментарий",
    "test_name": "Название теста",
    "description": "Описание",
    "prompt_text": "Текст промпта",
    "username": "Имя пользователя",
}


def label(mapping: Mapping[str, str], key: str | None) -> str:
    """The Russian label of a key; a combined scenario (``a + b``) labels each part."""
    if not key:
        return "—"
    return " + ".join(mapping.get(part, part) for part in key.split(" + "))


def scenario(name: str | None) -> str:
    return label(SCENARIO_CODES, name)


def reason(name: str | None) -> str:
    return label(TRANSFER_REASONS, name)


def criterion(name: str | None) -> str:
    return label(CRITERIA, name)


def flag(name: str | None) -> str:
    return label(FLAGS, name)


def review_reason(name: str | None) -> str:
    return label(REVIEW_REASONS, name)


def role(name: str | None) -> str:
    return label(ROLES, name)


def judge(kind: str | None, model: str | None = None) -> str:
    """The judge of a score for a person: ``rules`` / ``rules-v2`` → «правила, версия 2»,
    ``llm`` / ``gpt-4o-mini`` → «LLM-судья gpt-4o-mini»."""
    if kind == "rules" or (model or "").startswith("rules-v"):
        version = (model or "").removeprefix("rules-v")
        return "правила" + (f", версия {version}" if version.isdigit() else "")
    title = JUDGE_KINDS.get(kind or "", "судья")
    return f"{title} {model}" if model else title


# every vocabulary above: the crawl test refuses any of their keys in a page's visible text
VOCABULARIES: tuple[Mapping[str, str], ...] = (
    SCENARIO_CODES,
    TRANSFER_REASONS,
    CRITERIA,
    COMPONENTS,
    COST_COMPONENTS,
    OUTCOMES,
    TOOL_STATUSES,
    TOOL_COMPONENT,
    NO_TRANSFER,
    FLAGS,
    CAUSES,
    ACTIONS,
    REVIEW_REASONS,
    REVIEW_STATUSES,
    JUDGE_KINDS,
    AB_STATUSES,
    PROCESSOR_AB_STATUSES,
    AB_ACTIONS,
    AB_DECISIONS,
    SUGGESTION_STATUSES,
    SUGGESTION_SOURCES,
    LEVERS,
    ALERT_EVENTS,
    CHANNELS,
    DELIVERY_STATUSES,
    ROLES,
)
