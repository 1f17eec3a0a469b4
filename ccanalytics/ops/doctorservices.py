"""The doctor's checks outside the database: the LLM judge endpoint, SMTP, Telegram, Prometheus, and
the lake and reports directories."""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import tempfile
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ccanalytics.core import clock
from ccanalytics.ops.doctorcheck import DEFAULT_TIMEOUT_S, FAIL, OK, WARN, Check, reason, timed


# ---------------------------------------------------------------------------------------------- judge
def check_judge(base_url: str | None, api_key: str | None, model: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    """``GET {base_url}/models`` with the key (no tokens spent). No key: the offline rule-based judge."""

    def run() -> tuple[str, str]:
        if not api_key:
            return OK, "offline rule-based judge (CCA_JUDGE_API_KEY is empty)"
        import openai  # lazy: openai

        client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        where = str(client.base_url).rstrip("/")
        try:
            models = [m.id for m in client.models.list().data]
        except openai.AuthenticationError:
            return FAIL, f"{where}: the API key was refused (401)"
        except openai.PermissionDeniedError:
            return FAIL, f"{where}: the API key may not list models (403)"
        except openai.APIConnectionError as exc:
            return FAIL, f"{where}: unreachable ({reason(exc.__cause__ or exc)})"
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405, 501):
                return WARN, f"{where}: reachable, but it has no /models (HTTP {exc.status_code}); key not verified"
            return FAIL, f"{where}: HTTP {exc.status_code}"
        if model not in models:
            return WARN, f"{where}: key accepted, but model {model} is not among its {len(models)} models"
        return OK, f"{where}: key accepted, model {model} available"

    return timed("judge", run)


# ----------------------------------------------------------------------------------------------- SMTP
def check_smtp(
    host: str | None,
    port: int,
    *,
    user: str | None = None,
    password: str | None = None,
    starttls: bool = True,
    recipients: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Check:
    """Connect, EHLO, STARTTLS when configured and offered, log in when a user is set. No mail is sent."""

    def run() -> tuple[str, str]:
        if not host:
            return WARN, "not configured (CCA_SMTP_HOST is empty): e-mail reports and alerts are off"
        steps: list[str] = []
        warnings: list[str] = []
        smtp_cls = smtplib.SMTP_SSL if port == 465 else smtplib.SMTP
        try:
            with smtp_cls(host, port, timeout=timeout) as smtp:
                code, _ = smtp.ehlo()
                if code != 250:
                    return FAIL, f"{host}:{port}: EHLO answered {code}"
                steps.append("EHLO")
                encrypted = smtp_cls is smtplib.SMTP_SSL
                if encrypted:
                    steps.append("TLS")
                elif starttls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                    encrypted = True
                    steps.append("STARTTLS")
                elif starttls:
                    warnings.append("the server offers no STARTTLS: mail goes unencrypted")
                if user:
                    if not encrypted:
                        warnings.append("the password is sent without TLS")
                    smtp.login(user, password or "")
                    steps.append(f"login as {user}")
        except smtplib.SMTPAuthenticationError as exc:
            return FAIL, f"{host}:{port}: login as {user} refused ({exc.smtp_code})"
        except smtplib.SMTPNotSupportedError:
            return FAIL, f"{host}:{port}: the server does not support AUTH (CCA_SMTP_USER is set)"
        except (smtplib.SMTPException, OSError) as exc:
            return FAIL, f"{host}:{port}: {reason(exc)}"
        if not recipients:
            warnings.append("CCA_EMAIL_TO is empty: nothing is sent")
        detail = f"{host}:{port}: " + ", ".join(steps) + (f"; {'; '.join(warnings)}" if warnings else "")
        return (WARN if warnings else OK), detail

    return timed("smtp", run)


# ------------------------------------------------------------------------------------------- Telegram
def check_telegram(
    api_url: str, token: str | None, chat_id: str | None, *, timeout: float = DEFAULT_TIMEOUT_S
) -> Check:
    """``getMe`` (is the token valid?) and ``getChat`` (can the bot see the chat?). No message is sent."""

    def run() -> tuple[str, str]:
        if not token or not chat_id:
            missing = " and ".join(
                n for n, v in (("CCA_TELEGRAM_BOT_TOKEN", token), ("CCA_TELEGRAM_CHAT_ID", chat_id)) if not v
            )
            return WARN, f"not configured ({missing} empty): Telegram alerts and reports are off"
        base = api_url.rstrip("/")
        ok, answer = _telegram(f"{base}/bot{token}/getMe", {}, timeout)
        if not ok:
            return FAIL, f"{base}: getMe: {answer}"
        bot = "@" + str((answer or {}).get("username") or (answer or {}).get("first_name") or "bot")
        ok, chat = _telegram(f"{base}/bot{token}/getChat", {"chat_id": chat_id}, timeout)
        if not ok:
            return FAIL, f"{base}: bot {bot}; chat {chat_id}: {chat}"
        title = (chat or {}).get("title") or (chat or {}).get("username") or (chat or {}).get("type") or ""
        return OK, f"{base}: bot {bot}, chat {chat_id}" + (f" ({title})" if title else "")

    return timed("telegram", run)


def _telegram(url: str, payload: dict[str, Any], timeout: float) -> tuple[bool, Any]:
    """(True, result) or (False, a readable reason without the token)."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            description = json.loads(exc.read() or b"{}").get("description")
        except ValueError:
            description = None
        return False, f"HTTP {exc.code} {description or exc.reason}"
    except (OSError, ValueError) as exc:
        return False, reason(getattr(exc, "reason", exc))
    if not isinstance(answer, dict) or not answer.get("ok"):
        return False, "not a Bot API answer"
    return True, answer.get("result")


# ----------------------------------------------------------------------------------------- Prometheus
def check_prometheus(url: str | None, *, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    """``GET {url}/-/ready``, then the health of its active scrape targets."""

    def run() -> tuple[str, str]:
        if not url:
            return WARN, "not configured (CCA_PROMETHEUS_URL is empty): reachability not checked"
        base = url.rstrip("/")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return FAIL, f"{base}: not ready (HTTP {exc.code})"
        except OSError as exc:
            return FAIL, f"{base}: unreachable ({reason(getattr(exc, 'reason', exc))})"
        try:
            with urllib.request.urlopen(f"{base}/api/v1/targets?state=active", timeout=timeout) as response:
                targets = json.loads(response.read())["data"]["activeTargets"]
        except (OSError, ValueError, KeyError, TypeError):
            return OK, f"{base}: ready (targets not readable)"
        down = sorted({t.get("labels", {}).get("job", "?") for t in targets if t.get("health") == "down"})
        up = sum(1 for t in targets if t.get("health") == "up")
        if down:
            return WARN, f"{base}: ready; {up} of {len(targets)} targets up, down: {', '.join(down)}"
        return OK, f"{base}: ready; {up} of {len(targets)} targets up"

    return timed("prometheus", run)


# ---------------------------------------------------------------------------------------- directories
_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def check_directory(name: str, path: Path, *, lake: bool = False, today: date | None = None) -> Check:
    """Writable (a temporary file is created and removed), or creatable when it does not exist yet.
    For the lake: the last exported day (a warning when the nightly export is more than 2 days behind)."""

    def run() -> tuple[str, str]:
        if path.exists() and not path.is_dir():
            return FAIL, f"{path} is not a directory"
        if not path.exists():
            parent = next((p for p in path.parents if p.exists()), None)
            if parent is None or not os.access(parent, os.W_OK | os.X_OK):
                return FAIL, f"{path} does not exist and {parent} is not writable"
            return OK, f"{path} will be created (in {parent}, writable)"
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True):
                pass
        except OSError as exc:
            return FAIL, f"{path} is not writable: {reason(exc)}"
        if not lake:
            return OK, f"{path} writable"
        days = sorted(m.group(1) for p in _list(path / "calls") if (m := _DAY_DIR.match(p.name)))
        if not days:
            return OK, f"{path} writable; nothing exported yet"
        last = date.fromisoformat(days[-1])
        detail = f"{path} writable; {len(days)} days exported, the last {last}"
        if (today or clock.now().date()) - last > timedelta(days=2):
            return WARN, detail + ": the nightly lake export is behind"
        return OK, detail

    return timed(name, run)


def _list(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []
