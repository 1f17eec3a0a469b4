"""The doctor's result of one check (``Check``, its statuses) and how one check runs without raising."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<11} {self.detail}"


def timed(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    """Run one check; an unexpected exception is a failure with its message, never a crash."""
    started = time.perf_counter()
    try:
        status, detail = fn()
    except Exception as exc:  # noqa: BLE001 — the doctor reports, it does not raise
        status, detail = FAIL, reason(exc)
    return Check(name, status, detail, round(time.perf_counter() - started, 3))


def reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return " ".join(str(text).strip().splitlines()[:1]) or type(exc).__name__
