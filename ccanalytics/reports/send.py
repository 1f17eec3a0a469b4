"""Delivering rendered reports: e-mail (summary in the body, the full HTML report attached) and
Telegram (the summary as a message, the HTML report as a document).

Every channel is tried even when another fails; retryable failures are retried. A delivery marker
``<name>.sent.json`` beside the report records the channels that received it, so a scheduled job
that runs again (or a second scheduler) does not send the same report twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

from ccanalytics.alerts.delivery import Channel
from ccanalytics.alerts.emailchannel import EmailChannel
from ccanalytics.alerts.notify import send_with_retries
from ccanalytics.alerts.telegramchannel import TelegramChannel
from ccanalytics.core import clock, privacy
from ccanalytics.core.errors import DeliveryError
from ccanalytics.reports.render import Rendered

log = logging.getLogger(__name__)


def _marker(html_path: Path) -> Path:
    return html_path.with_suffix(".sent.json")


def _delivered(html_path: Path) -> dict[str, str]:
    """Channel → when it first received the report at ``html_path`` (ISO text), from its record."""
    try:
        return dict(json.loads(_marker(html_path).read_text(encoding="utf-8")).get("channels", {}))
    except (OSError, ValueError):
        return {}


def delivered_channels(html_path: Path) -> set[str]:
    """The channels that already received the report at ``html_path``."""
    return set(_delivered(html_path))


def delivered_at(html_path: Path) -> dict[str, datetime]:
    """When each channel first received the report at ``html_path``."""
    try:
        return {k: datetime.fromisoformat(v) for k, v in _delivered(html_path).items()}
    except (ValueError, TypeError):
        return {}


def _record(rendered: Rendered, channel: str) -> None:
    """Note a delivery: the first one per channel stays in ``channels``; every one is in ``sends``."""
    path = _marker(rendered.html_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {"channels": {}}
    at = clock.now().isoformat(timespec="seconds")
    data["channels"].setdefault(channel, at)
    data.setdefault("sends", []).append({"channel": channel, "at": at})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def summary_html(subject: str, text: str) -> str:
    lines = "".join(f'<p style="margin:2px 0">{escape(line)}</p>' for line in text.splitlines())
    return (
        f'<div style="font-family:Arial,sans-serif;font-size:14px"><h2 style="font-size:18px">{escape(subject)}</h2>'
        f'{lines}<p style="color:#616161;margin-top:12px">Полный отчёт с графиками — во вложении (HTML-файл, '
        "откройте в браузере).</p></div>"
    )


def deliver(
    rendered: Rendered,
    channels: Mapping[str, Channel],
    *,
    subject: str,
    summary: str,
    attempts: int = 3,
    backoff_s: float = 2.0,
    skip_delivered: bool = False,
) -> dict[str, str]:
    """Send the report through ``channels``; returns channel → "sent" | "already sent" | error text.

    Raises DeliveryError (after trying every channel) when any channel failed."""
    summary = privacy.mask_phones_in_text(summary)
    data = rendered.html_path.read_bytes()
    filename = f"{rendered.kind}-{rendered.name}.html"
    done = delivered_channels(rendered.html_path) if skip_delivered else set()
    outcome: dict[str, str] = {}
    for name, channel in channels.items():
        if name in done:
            outcome[name] = "already sent"
            continue
        try:
            if isinstance(channel, EmailChannel):  # the "email" channel
                send_with_retries(
                    partial(
                        channel.send,
                        subject,
                        summary + "\n\nПолный отчёт — во вложении.",
                        html=summary_html(subject, summary),
                        attachments=[(filename, data, "text/html")],
                    ),
                    attempts,
                    backoff_s,
                )
            elif isinstance(channel, TelegramChannel):  # the "telegram" channel
                send_with_retries(partial(channel.send_message, f"{subject}\n\n{summary}"), attempts, backoff_s)
                send_with_retries(partial(channel.send_document, filename, data, caption=subject), attempts, backoff_s)
            else:
                send_with_retries(partial(channel.send_text, subject, summary), attempts, backoff_s)
        except DeliveryError as exc:
            log.error("report %s/%s not delivered by %s: %s", rendered.kind, rendered.name, name, exc.message)
            outcome[name] = exc.message
            continue
        _record(rendered, name)
        outcome[name] = "sent"
    failed = {k: v for k, v in outcome.items() if v not in ("sent", "already sent")}
    if failed:
        raise DeliveryError(
            "report not delivered: " + "; ".join(f"{k}: {v}" for k, v in failed.items()),
            channel=",".join(failed),
            retryable=True,
            details={"outcome": outcome},
        )
    return outcome


def outcome_line(outcome: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in outcome.items())
