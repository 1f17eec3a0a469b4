"""E-mail over SMTP (the standard library's smtplib): ``EmailChannel``, with a stable Message-ID per
notification and the client that knows when the message body went out."""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ccanalytics.alerts.delivery import answer_timeout_for, delivery_unknown
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)


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
                raise delivery_unknown(
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
