"""Delivery channels for alerts and reports: e-mail (SMTP) and Telegram (Bot API over HTTPS).

Both are plain synchronous clients built on the standard library (smtplib, urllib). Every failure
raises ``DeliveryError`` with ``retryable`` set, so callers can decide: the alert outbox
(ccanalytics.alerts.engine) retries with backoff, direct senders use ``send_with_retries``.

Telegram messages are sent as **plain text** (no ``parse_mode``): nothing in an alert or a
transcript excerpt can break the markup or inject a link; Telegram still makes URLs clickable.
Texts longer than Telegram's 4096 characters are split at line breaks into several messages;
document captions are cut to 1024 characters.

**Sent, but no answer.** Each attempt has two phases: connecting and writing the request (``timeout``;
a failure there is retryable — nothing was delivered), then waiting for the answer (``answer_timeout``,
longer: a slow channel is waited for, not retried). When the whole request went out and no answer came
even then (or the connection broke while waiting), the message may have been delivered: re-sending it
could deliver it twice, so the error is ``DeliveryError(retryable=False, details={"outcome":
"unknown"})`` (``outcome_unknown(exc)``). E-mails carry a Message-ID derived from the caller's ``key``,
so a deliberate re-send of the same notification is recognised by mail clients as the same message.
"""

from __future__ import annotations

import http.client
import json
import logging
import mimetypes
import smtplib
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol, TypeVar

from ccanalytics.core import retry
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, DeliveryError, InvalidArgument

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
MIN_ANSWER_TIMEOUT_S = 60.0  # how long a request that went out is waited for, at least
TELEGRAM_CAPTION_LIMIT = 1024
CHANNEL_NAMES = ("email", "telegram")
T = TypeVar("T")


class Channel(Protocol):
    """What the alert outbox needs from a channel."""

    name: str

    def send_text(self, subject: str, text: str, *, key: str | None = None) -> None: ...


def answer_timeout_for(timeout: float) -> float:
    """The default time to wait for an answer once the request is out: 3 × the connect timeout, at
    least a minute."""
    return max(MIN_ANSWER_TIMEOUT_S, 3 * timeout)


def outcome_unknown(exc: BaseException) -> bool:
    """The request went out and no answer came: the message may or may not have been delivered."""
    return isinstance(exc, DeliveryError) and isinstance(exc.details, dict) and exc.details.get("outcome") == "unknown"


def _unknown(channel: str, message: str) -> DeliveryError:
    return DeliveryError(message, channel=channel, retryable=False, details={"outcome": "unknown"})


# ------------------------------------------------------------------------------------------ e-mail
class EmailChannel:
    """SMTP to every address of ``to``. STARTTLS when the server offers it and ``starttls`` is set
    (port 465: TLS from the start); login when ``user`` is set."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = 20.0,
        answer_timeout: float | None = None,
    ) -> None:
        if not to:
            raise ConfigError("e-mail has no recipients: set CCA_EMAIL_TO")
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout
        self.answer_timeout = answer_timeout or answer_timeout_for(timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailChannel:
        if not settings.smtp_host:
            raise ConfigError("e-mail is not configured: set CCA_SMTP_HOST and CCA_EMAIL_TO")
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.email_to,
            user=settings.smtp_user or None,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.notify_timeout_s,
        )

    def message_id(self, key: str | None = None) -> str:
        """A new Message-ID, or the stable one of ``key`` (every attempt of one notification: the same)."""
        domain = self.sender.rpartition("@")[2] or "localhost"
        if key is None:
            return make_msgid(domain=domain)
        return f"<{''.join(c if c.isalnum() or c in '.-_' else '-' for c in key)}@{domain}>"

    def message(
        self,
        subject: str,
        text: str,
        html: str | None = None,
        attachments: Sequence[tuple[str, bytes, str]] = (),
        *,
        key: str | None = None,
    ) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = " ".join(subject.split())  # no header injection through line breaks
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = self.message_id(key)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for filename, data, mime in attachments:
            mime = mime or mimetypes.guess_type(filename)[0] or "application/octet-stream"
            maintype, _, subtype = mime.partition("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=filename)
        return msg

    def send(
        self,
        subject: str,
        text: str,
        html: str | None = None,
        attachments: Sequence[tuple[str, bytes, str]] = (),
        *,
        key: str | None = None,
    ) -> None:
        """Send one e-mail (text, optional HTML alternative, attachments as (filename, data, mime type)).
        ``key`` makes the Message-ID stable (``<key@sender-domain>``)."""
        msg = self.message(subject, text, html, attachments, key=key)
        refused: dict = {}
        accepted = False
        smtp_cls = _SMTPSSL if self.port == 465 else _SMTP
        smtp = None
        try:
            with smtp_cls(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.answer_timeout = self.answer_timeout
                smtp.ehlo()
                if self.starttls and smtp_cls is smtplib.SMTP and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(msg, to_addrs=self.to)
                accepted = True
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused ({exc.smtp_code})", channel=self.name, retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"SMTP refused all recipients: {', '.join(exc.recipients)}", channel=self.name, retryable=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            text_ = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise DeliveryError(
                f"SMTP error {exc.smtp_code}: {text_}", channel=self.name, retryable=400 <= exc.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # connection refused, timeout, TLS, disconnects
            if accepted:  # the server took the message; only the goodbye failed
                log.warning("SMTP server %s:%s: %s after the message was accepted", self.host, self.port, exc)
                return
            if smtp is not None and smtp.body_sent:  # the whole message went out, the answer did not come
                raise _unknown(
                    self.name,
                    f"SMTP server {self.host}:{self.port}: no answer to the sent message "
                    f"({exc or type(exc).__name__}): delivery unknown, not re-sent",
                ) from None
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port}: {exc}", channel=self.name, retryable=True
            ) from None
        if refused:
            log.warning("e-mail not accepted for %s", ", ".join(refused))

    def send_text(self, subject: str, text: str, *, key: str | None = None) -> None:
        self.send(subject, text, key=key)


class _AnswerTimeout:
    """smtplib client that knows when the message body went out (``body_sent``) and then waits
    ``answer_timeout`` for the server's verdict on it."""

    answer_timeout: float | None = None
    body_sent = False
    _in_data = False

    def data(self, msg):  # smtplib API
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s):  # smtplib API: data() sends the whole body, ending with CRLF.CRLF, in one call
        super().send(s)
        if self._in_data and isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.body_sent = True
            if self.sock is not None and self.answer_timeout:
                self.sock.settimeout(self.answer_timeout)


class _SMTP(_AnswerTimeout, smtplib.SMTP):
    pass


class _SMTPSSL(_AnswerTimeout, smtplib.SMTP_SSL):
    pass


# ---------------------------------------------------------------------------------------- Telegram
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
            raise _unknown(
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


# ---------------------------------------------------------------------------------------- settings
def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The configured channels only: "email" when SMTP host and recipients are set, "telegram" when
    the bot token and chat are set."""
    out: dict[str, Channel] = {}
    if settings.smtp_host and settings.email_to:
        out["email"] = EmailChannel.from_settings(settings)
    if settings.telegram_bot_token and settings.telegram_chat_id:
        out["telegram"] = TelegramChannel.from_settings(settings)
    return out


def tenant_settings(settings: Settings, slug: str) -> Settings:
    """``settings`` addressed to one tenant's own recipients (CCA_TENANT_REPORTS): its e-mail addresses
    and Telegram chat, through the global SMTP server and bot; a channel it gives no recipient for is
    off. ConfigError when a channel it asks for has no server or bot."""
    target = settings.tenant_reports[slug]
    missing = [
        need
        for asked, have, need in (
            (target.emails, settings.smtp_host, "e-mail needs CCA_SMTP_HOST"),
            (target.telegram_chat_id, settings.telegram_bot_token, "Telegram needs CCA_TELEGRAM_BOT_TOKEN"),
        )
        if asked and not have
    ]
    if missing:
        raise ConfigError(f"reports of tenant {slug!r}: {'; '.join(missing)}")
    return settings.model_copy(update={"email_to": list(target.emails), "telegram_chat_id": target.telegram_chat_id})


def require_channels(settings: Settings, names: Iterable[str]) -> dict[str, Channel]:
    """The channels ``names`` (e.g. ["email", "telegram"]); ConfigError naming what is missing."""
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in CHANNEL_NAMES]
    if unknown:
        raise ConfigError(f"unknown channel {', '.join(unknown)}: use {' or '.join(CHANNEL_NAMES)}")
    configured = channels_from_settings(settings)
    hints = {
        "email": "set CCA_SMTP_HOST and CCA_EMAIL_TO",
        "telegram": "set CCA_TELEGRAM_BOT_TOKEN and CCA_TELEGRAM_CHAT_ID",
    }
    missing = [n for n in names if n not in configured]
    if missing:
        raise ConfigError(
            "channel not configured: " + "; ".join(f"{n} ({hints[n]})" for n in missing), details={"missing": missing}
        )
    return {n: configured[n] for n in names}


def send_with_retries(
    fn: Callable[[], T], attempts: int = 3, backoff_s: float = 2.0, *, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call ``fn`` until it succeeds; retry retryable DeliveryErrors up to ``attempts`` times in all,
    waiting ``backoff_s``, 2×, 4×… (or the server's retry_after when longer). Re-raises the last error."""
    if attempts < 1:
        raise InvalidArgument("attempts must be at least 1")

    def told(exc: BaseException, attempt: int, wait: float) -> None:
        log.warning("%s; retrying in %.1f s (attempt %d of %d)", getattr(exc, "message", exc), wait, attempt, attempts)

    return retry.retry(
        fn,
        attempts=attempts,
        base=backoff_s,
        retry_on=DeliveryError,
        retryable=lambda exc: getattr(exc, "retryable", False),
        at_least=lambda exc: getattr(exc, "retry_after", None),
        on_retry=told,
        sleep=sleep,
    )
