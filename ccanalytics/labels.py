"""Russian labels of the data's keys (scenarios, transfer reasons, quality criteria, components):
one vocabulary for the admin, the reports, the charts and the alert messages."""

from __future__ import annotations

from collections.abc import Mapping

SCENARIOS = {
    "tire_search": "подбор шин",
    "availability_check": "проверка наличия",
    "order_status": "статус заказа",
    "order_creation": "оформление заказа",
    "fitting_booking": "запись на шиномонтаж",
    "consultation": "консультация",
}
# the catch-all of bounded label sets (telemetry: codes outside the known sets become "other")
OTHER = "прочее"
# scenario keys as stored in the daily figures: the scenarios, a call without one, the catch-all
SCENARIO_CODES = {**SCENARIOS, "unknown": "сценарий не определён", "other": OTHER}
TRANSFER_REASONS = {
    "customer_request": "по просьбе клиента",
    "cannot_help": "бот не смог помочь",
    "complex_question": "сложный вопрос",
    "negative_emotion": "негатив клиента",
    "unknown": "причина не указана",
}
CRITERIA = {
    "bot_greeted_properly": "Приветствие",
    "bot_understood_intent": "Понял запрос",
    "bot_used_correct_tool": "Верный инструмент",
    "bot_provided_accurate_info": "Точная информация",
    "bot_confirmed_before_action": "Подтверждение перед действием",
    "bot_was_concise": "Краткость",
    "call_resolved_without_human": "Решено без оператора",
    "customer_seemed_satisfied": "Клиент доволен",
}
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
