"""What every delivery channel shares: the ``Channel`` protocol, how long an answer is waited for once
the request is out, and a delivery whose outcome is unknown (sent, but no answer: never re-sent; the two
phases of an attempt are described in ccanalytics.alerts.notify).
"""

from __future__ import annotations

from typing import Protocol

from ccanalytics.core.errors import DeliveryError

MIN_ANSWER_TIMEOUT_S = 60.0  # how long a request that went out is waited for, at least


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


def delivery_unknown(channel: str, message: str) -> DeliveryError:
    """The error of a request that went out without an answer: not retryable, outcome unknown."""
    return DeliveryError(message, channel=channel, retryable=False, details={"outcome": "unknown"})
