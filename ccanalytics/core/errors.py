"""The one errors module: every error the library raises on purpose derives from CCAError.

Edges translate them: the CLI prints a one-line ``Error: …``; the API answers
``{"error": {"code", "message", "details"}}`` with ``http_status`` (plus ``message_ru`` when the error
has a Russian text); the admin's pages show :attr:`CCAError.message_ru` in the site's layout.

A message for people is Russian: raise with ``ru="…"`` beside the English ``message`` (which stays for
logs, the CLI and API clients), or with a Russian ``message`` alone; without either a page falls back
to the Russian text of the error's kind (:data:`RU_BY_CODE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_CYRILLIC = re.compile(r"[А-Яа-яЁёІіЇїЄєҐґ]")


class CCAError(Exception):
    """Base class. ``code`` is a stable machine-readable identifier."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None, ru: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.ru = ru

    @property
    def message_ru(self) -> str:
        """The message for a person: ``ru``, else ``message`` when it is Russian, else the Russian text
        of the error's kind."""
        if self.ru:
            return self.ru
        if _CYRILLIC.search(self.message):
            return self.message
        return RU_BY_CODE.get(self.code) or RU_BY_STATUS.get(self.http_status) or RU_BY_STATUS[500]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(CCAError):
    code = "config_error"
    http_status = 500


class DatabaseUnavailable(CCAError):
    code = "database_unavailable"
    http_status = 503


class MigrationError(CCAError):
    code = "migration_error"
    http_status = 500


class OldSchemaError(MigrationError):
    """The database was made by ccanalytics 0.1 (its own copy of the call processor's tables)."""

    code = "old_schema"


class WriteRefused(CCAError):
    """The database refused a change: the connection is read-only (``CCA_READ_ONLY``, a read replica)
    or the role lacks the privilege (a SELECT-only role). See docs/attach.md."""

    code = "write_refused"
    http_status = 403


class NotFound(CCAError):
    code = "not_found"
    http_status = 404


class InvalidArgument(CCAError):
    """A caller passed an argument the function cannot work with (bad date, unknown filter…)."""

    code = "invalid_argument"
    http_status = 400


@dataclass(frozen=True)
class FieldProblem:
    """One problem in one record: ``field`` is a dotted path such as ``turns.3.speaker``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class RecordProblem:
    """All problems of one input record (a call log)."""

    record: int | str  # 1-based line number in a file, or 0-based index in a batch
    call_id: str | None
    problems: tuple[FieldProblem, ...] = field(default_factory=tuple)

    def describe(self, record_word: str = "record") -> str:
        who = f"{record_word} {self.record}"
        if self.call_id:
            who += f" (call_id {self.call_id})"
        return f"{who}: " + "; ".join(str(p) for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "call_id": self.call_id,
            "problems": [{"field": p.field, "message": p.message} for p in self.problems],
        }


class IngestValidationError(CCAError):
    """One or more call logs are invalid; nothing was written for them."""

    code = "invalid_call_log"
    http_status = 422

    def __init__(self, records: list[RecordProblem], *, record_word: str = "record") -> None:
        self.records = records
        first = records[0].describe(record_word) if records else "invalid input"
        more = f" (and {len(records) - 1} more invalid records)" if len(records) > 1 else ""
        super().__init__(first + more, details=[r.to_dict() for r in records])


# -- authentication and the web API
class Unauthorized(CCAError):
    """No credentials, or wrong ones (HTTP 401)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(CCAError):
    """Authenticated, but the role does not allow this (HTTP 403)."""

    code = "forbidden"
    http_status = 403


class TooManyAttempts(CCAError):
    """Login refused by the rate limit (HTTP 429); ``retry_after`` seconds until it lifts."""

    code = "too_many_attempts"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after})
        self.retry_after = retry_after


class Conflict(CCAError):
    """The object is in a state that does not allow this (already active, already running, not running,
    already decided, changed meanwhile…): HTTP 409 in the API and the admin alike."""

    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict):
    """A name is taken (a user, a live token, an A/B test)."""

    code = "already_exists"


class PayloadTooLarge(CCAError):
    code = "payload_too_large"
    http_status = 413


class CSRFError(CCAError):
    code = "csrf_failed"
    http_status = 400


class ReportFailed(CCAError):
    """A report notebook failed; the executed notebook with the error is kept at ``notebook``."""

    code = "report_failed"
    http_status = 500

    def __init__(self, kind: str, notebook: Any, error: str) -> None:
        super().__init__(
            f"{kind} report failed: {error} (executed notebook: {notebook})", details={"notebook": str(notebook)}
        )
        self.notebook = notebook


class DeliveryError(CCAError):
    """A notification (e-mail, Telegram) was not delivered.

    ``retryable``: a later attempt may succeed (network error, timeout, HTTP 5xx, 429, SMTP 4xx);
    otherwise the request itself is wrong (bad token, unknown chat, refused recipient) and retrying is
    pointless. ``retry_after``: seconds the server asked to wait (Telegram 429), if any.
    """

    code = "delivery_failed"
    http_status = 502

    def __init__(
        self, message: str, *, channel: str, retryable: bool, retry_after: float | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.channel = channel
        self.retryable = retryable
        self.retry_after = retry_after


# -- the Russian texts of pages: a title per HTTP status, a message per error kind (when the error has
# no Russian text of its own) and per status (errors that are not CCAErrors: 404 of an unknown address…)
RU_TITLES = {
    400: "Ошибка в запросе",
    401: "Нужно войти",
    403: "Нет доступа",
    404: "Не найдено",
    405: "Действие недоступно",
    409: "Конфликт",
    413: "Слишком большой запрос",
    422: "Данные не приняты",
    429: "Слишком много запросов",
    500: "Внутренняя ошибка",
    502: "Внешняя служба не ответила",
    503: "Сервис временно недоступен",
}
RU_BY_STATUS = {
    400: "Запрос не удалось разобрать: проверьте адрес и параметры.",
    401: "Войдите в админку, чтобы открыть эту страницу.",
    403: "Вашей роли это действие недоступно.",
    404: "Такой страницы нет: проверьте адрес или перейдите по ссылкам ниже.",
    405: "По этому адресу нельзя выполнить такой запрос: откройте страницу по ссылке и воспользуйтесь её кнопками.",
    409: "Объект сейчас в состоянии, которое не позволяет это действие: обновите страницу и проверьте ещё раз.",
    413: "Запрос слишком большой: уменьшите объём данных.",
    422: "Данные не приняты: проверьте их и отправьте снова.",
    429: "Слишком много запросов подряд: подождите немного и попробуйте снова.",
    500: "На сервере произошла ошибка; она записана в журнал. Попробуйте ещё раз или сообщите администратору.",
    502: "Внешняя служба не ответила: попробуйте позже.",
    503: "Сервис временно недоступен: попробуйте через минуту.",
}
RU_BY_CODE = {
    "invalid_argument": "Параметры запроса не подходят: проверьте их и попробуйте снова.",
    "not_found": "Такого объекта нет: возможно, он удалён или в адресе ошибка.",
    "already_exists": "Такой объект уже есть: выберите другое имя.",
    "conflict": RU_BY_STATUS[409],
    "unauthorized": RU_BY_STATUS[401],
    "forbidden": RU_BY_STATUS[403],
    "write_refused": "База данных не приняла изменение: админка подключена только для чтения.",
    "csrf_failed": "Форма устарела: страница была открыта слишком долго или вы выходили из админки. "
    "Ничего не сохранено — проверьте данные и отправьте форму ещё раз.",
    "too_many_attempts": RU_BY_STATUS[429],
    "payload_too_large": RU_BY_STATUS[413],
    "database_unavailable": "База данных недоступна: админка восстановится сама, когда база снова будет доступна.",
    "invalid_call_log": RU_BY_STATUS[422],
}
