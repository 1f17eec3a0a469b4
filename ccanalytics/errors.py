"""The one errors module: every error the library raises on purpose derives from CCAError.

Edges translate them: the CLI prints a one-line ``Error: …``; the API answers
``{"error": {"code", "message", "details"}}`` with ``http_status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class CCAError(Exception):
    """Base class. ``code`` is a stable machine-readable identifier."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

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


class AlreadyExists(CCAError):
    code = "already_exists"
    http_status = 409


class Conflict(CCAError):
    """The object is in a state that does not allow this (already active, not running…)."""

    code = "conflict"
    http_status = 409


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
