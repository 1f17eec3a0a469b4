"""Local stand-ins for the delivery channels, real servers on 127.0.0.1: a Telegram Bot API server
(records every request — JSON, form or multipart — and can fail on purpose, answer late, or go away
entirely) and an SMTP server (aiosmtpd) with a mailbox that can also answer late."""

from __future__ import annotations

import asyncio
import email
import email.message
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from systools import free_port

TOKEN = "123456:TEST-token"
CHAT = -1001234567890


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# ------------------------------------------------------------------------------------- Telegram
@dataclass
class TelegramRequest:
    path: str
    method: str  # Bot API method: sendMessage, sendDocument, getMe…
    token: str
    payload: dict[str, Any]  # JSON body, or the form / multipart text fields
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)  # name -> (filename, data, type)
    status: int = 200  # what the server answered


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
    """Text fields and files of a multipart/form-data body (parsed by the e-mail MIME parser)."""
    msg = email.message_from_bytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body, policy=default_policy
    )
    if not msg.is_multipart():
        raise ValueError("not a multipart body")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes, str]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if part.get_filename() is not None:
            files[name] = (part.get_filename(), data, part.get_content_type())
        else:
            fields[name] = data.decode()
    return fields, files


class FakeTelegram:
    """A Bot API server. ``status`` (200 by default) is what sendMessage/sendDocument answer: 502 for
    an outage, 429 (with ``retry_after``) for a rate limit, 400/401 for bad requests. ``down()`` closes
    the port (connection refused), ``up()`` opens it again on the same port. Requests with another token
    get 401 and another chat 400, like the real API; ``getMe`` and ``getChat`` answer like it too.
    ``delay``: seconds the answer takes after the request was taken (and, with 200, the message posted):
    a slow Bot API; the answer of a client that stopped waiting goes nowhere."""

    def __init__(self, token: str = TOKEN, chat: int | str = CHAT) -> None:
        self.token, self.chat = token, str(chat)
        self.other_chats: set[str] = set()  # more chats the bot is a member of (e.g. a tenant's own)
        self.requests: list[TelegramRequest] = []
        self.status = 200
        self.retry_after: int | None = None
        self.delay = 0.0
        self._lock = threading.Lock()
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, payload) of every request."""
        return [(r.path, r.payload) for r in self.requests]

    def sent(self, method: str = "sendMessage") -> list[TelegramRequest]:
        """Requests of ``method`` the server accepted (answered 200)."""
        return [r for r in self.requests if r.method == method and r.status == 200]

    def texts(self) -> list[str]:
        return [r.payload["text"] for r in self.sent("sendMessage")]

    def up(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                files: dict = {}
                if ctype.startswith("multipart/form-data"):
                    payload, files = parse_multipart(ctype, body)
                elif ctype.startswith("application/x-www-form-urlencoded"):
                    payload = dict(urllib.parse.parse_qsl(body.decode()))
                else:
                    payload = json.loads(body or b"{}")
                _, bot, method = self.path.split("/", 2)
                fake._answer(self, TelegramRequest(self.path, method, bot.removeprefix("bot"), payload, files))

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, handler: BaseHTTPRequestHandler, req: TelegramRequest) -> None:
        status, answer = 200, None
        if req.token != self.token:
            status, answer = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        elif req.method == "getMe":
            answer = {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "cca", "username": "cca_bot"}}
        elif self.status == 429:
            status = 429
            answer = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {self.retry_after or 1}",
                "parameters": {"retry_after": self.retry_after or 1},
            }
        elif self.status != 200:
            status, answer = self.status, {"ok": False, "error_code": self.status, "description": "Bad Gateway"}
        elif str(req.payload.get("chat_id")) not in {self.chat, *self.other_chats}:
            status, answer = 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        if answer is None and req.method == "getChat":
            answer = {"ok": True, "result": {"id": int(self.chat), "type": "supergroup", "title": "ccanalytics alerts"}}
        if answer is None:
            with self._lock:
                message_id = len(self.requests) + 1
            answer = {"ok": True, "result": {"message_id": message_id, "date": int(time.time()), "chat": {"id": CHAT}}}
        req.status = status
        with self._lock:
            self.requests.append(req)
        if self.delay:
            time.sleep(self.delay)
        data = json.dumps(answer).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up waiting
            pass

    def __enter__(self) -> FakeTelegram:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


# ----------------------------------------------------------------------------------------- SMTP
class Mailbox:
    """aiosmtpd handler that keeps every message (parsed) and its envelope recipients. ``delay``:
    seconds before the server answers a message it already kept (a slow server)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[str] = []
        self.delay = 0.0

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        self.recipients.append(list(envelope.rcpt_tos))
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"


class SMTPServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1. With ``users`` it requires AUTH LOGIN/PLAIN (without
    TLS, for the test). ``down()`` / ``up()`` stop and restart it on the same port."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.mailbox = Mailbox()
        self.users = users
        self.port = free_port()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        return self.mailbox.messages

    def _auth(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == (
            auth_data.password.decode()
        )
        if ok:
            self.mailbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def up(self) -> SMTPServer:
        kwargs: dict[str, Any] = {}
        if self.users is not None:
            kwargs = {"authenticator": self._auth, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPServer:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


def channel_settings(tg: FakeTelegram | None = None, smtp: SMTPServer | None = None, **extra: Any) -> dict[str, Any]:
    """Settings values pointing the Telegram and e-mail channels at these fake servers."""
    values: dict[str, Any] = {"notify_timeout_s": 5}
    if tg is not None:
        values.update(telegram_bot_token=TOKEN, telegram_chat_id=str(CHAT), telegram_api_url=tg.url)
    if smtp is not None:
        values.update(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_from="alerts@shop.example",
            email_to=["ops@shop.example", "boss@shop.example"],
        )
    return {**values, **extra}
