"""A local OpenAI-compatible chat-completions server for tests (real SDK, real HTTP).

The behaviour for a request is chosen by a marker in the judged transcript, ``[[mode:NAME]]``
(put in a turn's text), or by ``FakeOpenAI.default_mode``. Modes: valid, low, invalid_json,
truncated, missing_criteria, slow, 429, 500, 401, and "<mode>-then-valid" (fail once per distinct
transcript, then answer validly).

Recorded answers: ``FakeOpenAI(recorded={transcript_key(user_message): answer_json})`` answers a
transcript it has a recording for with that recording (the judge benchmark replays answers this way).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ccanalytics.ops.telemetry import CRITERIA

MARK = re.compile(r"\[\[mode:([a-z0-9_\-]+)\]\]")


def answer(score: float) -> str:
    return json.dumps(
        {
            "criteria": {
                c: {
                    "score": score,
                    "applicable": c != "bot_confirmed_before_action",
                    "reason": f"оценка {c}",
                    "evidence": [1, 2, 999],
                }
                for c in CRITERIA
            }
        },
        ensure_ascii=False,
    )


def transcript_key(user_message: str) -> str:
    """The key of a recorded answer: the SHA-256 of the judged transcript (the user message)."""
    return hashlib.sha256(user_message.encode()).hexdigest()


class FakeOpenAI:
    def __init__(
        self,
        *,
        delay: float = 0.0,
        default_mode: str = "valid",
        slow_seconds: float = 3.0,
        recorded: dict[str, str] | None = None,
    ):
        self.recorded = recorded or {}
        self.delay = delay
        self.default_mode = default_mode
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []
        self.seen: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                status, headers, payload = server.respond(body, self.headers.get("Authorization", ""))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(self, body: dict, auth: str) -> tuple[int, dict, dict]:
        user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
        with self.lock:
            self.requests.append(body)
            key = transcript_key(user)
            self.seen[key] += 1
            nth = self.seen[key]
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("name")
        if schema == "prompt_suggestion":
            suggestion = {
                "summary": "Бот не подтверждает заказ",
                "proposed_prompt": "Новий промпт: підтверджуй.",
                "edits": [
                    {
                        "criterion": "bot_confirmed_before_action",
                        "instruction": "Підтверджуй",
                        "example_dialogue": "Бот: Оформити 4 шини?",
                    }
                ],
            }
            with self.lock:
                self.requests.append(body)
            return (
                200,
                {},
                {
                    "id": "chatcmpl-s",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": "fake-judge-1",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": json.dumps(suggestion, ensure_ascii=False)},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                },
            )
        found = MARK.search(user)
        mode = found.group(1) if found else self.default_mode
        if key in self.recorded:
            mode = "recorded"
        if mode.endswith("-then-valid"):
            mode = mode.removesuffix("-then-valid") if nth == 1 else "valid"
        if self.delay:
            time.sleep(self.delay)
        if auth != "Bearer test-key" or mode == "401":
            return 401, {}, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        if mode == "429":
            return 429, {"Retry-After": "0"}, {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
        if mode == "500":
            return 500, {}, {"error": {"message": "internal error", "type": "server_error"}}
        if mode == "slow":
            time.sleep(self.slow_seconds)
        content, finish = {
            "valid": (answer(0.9), "stop"),
            "slow": (answer(0.9), "stop"),
            "low": (answer(0.2), "stop"),
            "invalid_json": ("Оценка: всё хорошо {", "stop"),
            "truncated": (answer(0.9)[:120], "length"),
            "missing_criteria": (json.dumps({"criteria": {"bot_was_concise": {"score": 1}}}), "stop"),
            "recorded": (self.recorded.get(key, ""), "stop"),
        }[mode]
        prompt_tokens = max(1, len(json.dumps(body["messages"], ensure_ascii=False)) // 4)
        return (
            200,
            {},
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "fake-judge-1",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": 400,
                    "total_tokens": prompt_tokens + 400,
                },
            },
        )
