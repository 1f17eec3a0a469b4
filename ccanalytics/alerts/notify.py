"""Delivery channels for alerts and reports: e-mail (SMTP) and Telegram (Bot API over HTTPS).

Both are plain synchronous clients built on the standard library (smtplib, urllib). Every failure
raises ``DeliveryError`` with ``retryable`` set, so callers can decide: the alert outbox
(ccanalytics.alerts.engine) retries with backoff, direct senders use ``send_with_retries``.

Telegram messages are sent as **plain text** (no ``parse_mode``): nothing in an alert or a
transcript excerpt can break the markup or inject a link; Telegram still makes URLs clickable.
Texts longer than Telegram's 4096 characters are split at line breaks into several messages;
document captions are cut to 1024 characters.

The channels live in ccanalytics.alerts.emailchannel and telegramchannel, what they share (the answer
timeout, a delivery whose outcome is unknown) in ccanalytics.alerts.delivery; this module makes them from
the settings and sends with retries, and keeps every name it had importable (``ccanalytics.notify`` is
an old name of it, ccanalytics.MOVED).

**Sent, but no answer.** Each attempt has two phases: connecting and writing the request (``timeout``;
a failure there is retryable — nothing was delivered), then waiting for the answer (``answer_timeout``,
longer: a slow channel is waited for, not retried). When the whole request went out and no answer came
even then (or the connection broke while waiting), the message may have been delivered: re-sending it
could deliver it twice, so the error is ``DeliveryError(retryable=False, details={"outcome":
"unknown"})`` (``outcome_unknown(exc)``). E-mails carry a Message-ID derived from the caller's ``key``,
so a deliberate re-send of the same notification is recognised by mail clients as the same message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from ccanalytics.alerts.delivery import MIN_ANSWER_TIMEOUT_S, Channel, answer_timeout_for, outcome_unknown
from ccanalytics.alerts.emailchannel import EmailChannel
from ccanalytics.alerts.telegramchannel import (
    TELEGRAM_CAPTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    TelegramChannel,
    split_message,
    truncate,
)
from ccanalytics.core import retry
from ccanalytics.core.config import Settings
from ccanalytics.core.errors import ConfigError, DeliveryError, InvalidArgument

__all__ = [
    "CHANNEL_NAMES",
    "MIN_ANSWER_TIMEOUT_S",
    "TELEGRAM_CAPTION_LIMIT",
    "TELEGRAM_TEXT_LIMIT",
    "Channel",
    "EmailChannel",
    "TelegramChannel",
    "answer_timeout_for",
    "channels_from_settings",
    "outcome_unknown",
    "require_channels",
    "send_with_retries",
    "split_message",
    "tenant_settings",
    "truncate",
]

log = logging.getLogger(__name__)

CHANNEL_NAMES = ("email", "telegram")
T = TypeVar("T")


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
