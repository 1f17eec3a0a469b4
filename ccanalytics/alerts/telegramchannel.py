"""Telegram over the Bot API (HTTPS through urllib): ``TelegramChannel``, plain-text messages split at
Telegram's limit, documents with a caption, and the HTTP handlers that wait longer for an answer."""

from __future__ import annotations

import http.client
import json
import mimetypes
import urllib.error
import urllib.request
import uuid
from typing import Any

from ccanalytics.alerts.delivery import answer_timeout_for, delivery_unknown
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, DeliveryError

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024


def _utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 units, at line breaks where possible."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while _utf16_len(line) > limit:  # one line longer than a message: hard cut
            cut = limit
            while _utf16_len(line[:cut]) > limit:
                cut -= 1
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        if _utf16_len(current + line) > limit:
            parts.append(current)
            current = ""
        current += line
    if current or not parts:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts]


def truncate(text: str, limit: int) -> str:
    if _utf16_len(text) <= limit:
        return text
    while _utf16_len(text) > limit - 1:
        text = text[:-1]
    return text + "…"


class TelegramChannel:
    """Telegram Bot API: ``POST {api_url}/bot{token}/sendMessage`` and ``sendDocument``."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout: float = 20.0,
        answer_timeout: float | None = None,
    ):
        if not token or not chat_id:
            raise ConfigError("Telegram needs CCA_TELEGRAM_BOT_TOKEN and CCA_TELEGRAM_CHAT_ID")
        self._token, self.chat_id, self.api_url, self.timeout = token, str(chat_id), api_url.rstrip("/"), timeout
        self.answer_timeout = answer_timeout or answer_timeout_for(timeout)
        self._opener = urllib.request.build_opener(
            _AnswerTimeoutHTTPHandler(self.answer_timeout), _AnswerTimeoutHTTPSHandler(self.answer_timeout)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramChannel:
        if not settings.telegram_bot_token or not settings.telegram_chat_id:
            raise ConfigError("Telegram is not configured: set CCA_TELEGRAM_BOT_TOKEN and CCA_TELEGRAM_CHAT_ID")
        return cls(
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_chat_id,
            api_url=settings.telegram_api_url,
            timeout=settings.notify_timeout_s,
        )

    def __repr__(self) -> str:  # never show the token
        return f"TelegramChannel(chat_id={self.chat_id!r}, api_url={self.api_url!r})"

    def send_message(self, text: str) -> None:
        """Send plain text to the chat; longer than 4096 characters → several messages in order."""
        for part in split_message(text):
            body = json.dumps(
                {"chat_id": self.chat_id, "text": part, "disable_web_page_preview": True}, ensure_ascii=False
            ).encode()
            self._call("sendMessage", body, "application/json")

    def send_document(self, filename: str, data: bytes, caption: str = "") -> None:
        """Send a file (multipart/form-data) with an optional plain-text caption (cut to 1024 characters)."""
        boundary = uuid.uuid4().hex
        fields = [("chat_id", self.chat_id)]
        if caption:
            fields.append(("caption", truncate(caption, TELEGRAM_CAPTION_LIMIT)))
        chunks: list[bytes] = []
        for name, value in fields:
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        safe_name = filename.replace('"', "").replace("\r", "").replace("\n", "") or "file"
        mime = mimetypes.guess_type(safe_name)[0] or "application/octet-stream"
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="document"; filename="{safe_name}"\r\n'
                f"Content-Type: {mime}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
        chunks.append(f"--{boundary}--\r\n".encode())
        self._call("sendDocument", b"".join(chunks), f"multipart/form-data; boundary={boundary}")

    def send_text(self, subject: str, text: str, *, key: str | None = None) -> None:
        self.send_message(text)  # the Bot API has no idempotency key: see outcome_unknown

    def _call(self, method: str, body: bytes, content_type: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.api_url}/bot{self._token}/{method}",
            data=body,
            headers={"Content-Type": content_type},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                answer = _json_or_none(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json_or_none(exc.read()) or {}
            description = str(answer.get("description") or exc.reason)
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            if exc.code == 429:
                retry_after = retry_after or _float(exc.headers.get("Retry-After"))
            retryable = exc.code == 429 or exc.code >= 500
            raise DeliveryError(
                f"Telegram {method}: HTTP {exc.code} {description}",
                channel=self.name,
                retryable=retryable,
                retry_after=float(retry_after) if retry_after else None,
            ) from None
        except urllib.error.URLError as exc:  # refused, DNS, TLS, timeout while connecting or writing: not sent
            raise DeliveryError(f"Telegram {method}: {exc.reason}", channel=self.name, retryable=True) from None
        except (OSError, http.client.HTTPException) as exc:  # the request went out; no (whole) answer came
            raise delivery_unknown(
                self.name,
                f"Telegram {method}: no answer within {self.answer_timeout:g} s after the request was sent "
                f"({exc or type(exc).__name__}): delivery unknown, not re-sent",
            ) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            refusal = (answer or {}).get("description") if isinstance(answer, dict) else "not a Bot API answer"
            raise DeliveryError(f"Telegram {method}: {refusal}", channel=self.name, retryable=False)
        return answer


class _AnswerConnection:
    """http.client connection that waits ``answer_timeout`` (not the connect timeout) for the answer.
    urllib wraps what fails while connecting or writing in URLError; what fails from here on (the
    request is out) reaches the caller as a plain OSError or HTTPException."""

    answer_timeout: float | None = None

    def getresponse(self):
        if self.sock is not None and self.answer_timeout:
            self.sock.settimeout(self.answer_timeout)
        return super().getresponse()


class _HTTPConnection(_AnswerConnection, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_AnswerConnection, http.client.HTTPSConnection):
    pass


def _connection(cls, answer_timeout: float):
    def make(*args, **kwargs):
        conn = cls(*args, **kwargs)
        conn.answer_timeout = answer_timeout
        return conn

    return make


class _AnswerTimeoutHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, answer_timeout: float) -> None:
        super().__init__()
        self._make = _connection(_HTTPConnection, answer_timeout)

    def http_open(self, req):
        return self.do_open(self._make, req)


class _AnswerTimeoutHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, answer_timeout: float) -> None:
        super().__init__()
        self._make = _connection(_HTTPSConnection, answer_timeout)

    def https_open(self, req):
        return self.do_open(self._make, req, context=self._context)


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
