"""Demo traffic for the live metrics: replays generated calls through ``telemetry.LiveMetrics`` the way
the call processor would record them, in accelerated time, with overlapping calls (active calls),
an operator queue, and rare STT/LLM/TTS errors. Used by ``ccanalytics demo-traffic`` and the
tests that check every dashboard and alert query against a real Prometheus.

By default the traffic is healthy: no alert rule of prometheus/alerts.yml fires on it (the generated
calls that would fire an event alert of their own — suspicious tool arguments, a validation storm —
are left out unless ``events=True``; replayed in a loop they paged every few minutes). ``incident``
stages one problem at a time, for trying the alerts and their delivery: ``component_errors`` (STT/LLM/
TTS errors on a third of the calls), ``transfers`` (every call ends with the operator), ``latency``
(every reply of the bot 3 s later), ``operators`` (callers queue, no operator is free) and ``spend``
(every call costs SPEND_FACTOR times as much: a prompt that re-sends the whole dialogue, a model
switched to a dearer one). CCAAbnormalSpend compares the pace with the days before, so Prometheus needs
24 hours of this traffic's history before it can page the spend incident (docs/alerts.md).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from ccanalytics.analytics import signals
from ccanalytics.analytics.callmetrics import reply_latency_ms
from ccanalytics.demo import generator
from ccanalytics.ops.telemetry import LiveMetrics

INCIDENTS = ("component_errors", "transfers", "latency", "operators", "spend")
# a component error per started call: healthy, about one error an hour at 120 calls a minute … and
# during the incident, a third of the calls
ERROR_RATE = {"healthy": 0.0001, "component_errors": 0.33}
SLOWER = timedelta(seconds=3)  # the latency incident
SPEND_FACTOR = 10  # the spend incident: each call costs this many times as much


def fires_event_alert(call: dict) -> bool:
    """A call that fires an event alert by itself: a tool call with suspicious arguments
    (CCASuspectedPromptInjection) or more than REJECTED_TOOLS_PER_CALL rejected ones
    (CCAValidationAnomaly)."""
    rejected = 0
    for turn in call.get("turns", []):
        for tc in turn.get("tool_calls") or []:
            if tc.get("args") is not None and signals.suspicious_args(tc["args"]):
                return True
            rejected += signals.is_rejected(tc.get("success", True), tc.get("result"))
    return rejected > signals.REJECTED_TOOLS_PER_CALL


def record_call(live: LiveMetrics, call: dict) -> None:
    """Record one finished call log's turns, tools and outcome as live metrics (call_started must
    have been recorded when it began)."""
    previous = None
    rejected = 0
    for turn in call.get("turns", []):
        if turn["speaker"] == "customer":
            live.observe_turn(stt_ms=turn.get("stt_latency_ms"))
        else:
            response = reply_latency_ms(previous, turn)[0] if previous and previous["speaker"] == "customer" else None
            live.observe_turn(
                llm_ttft_ms=turn.get("llm_latency_ms"), tts_ms=turn.get("tts_latency_ms"), response_ms=response
            )
            if signals.is_reask(turn.get("text", "")):
                live.reask()
        for tc in turn.get("tool_calls") or []:
            success = tc.get("success", True)
            live.tool_call(tc["name"], success=success, result=tc.get("result"), args=tc.get("args"))
            rejected += signals.is_rejected(success, tc.get("result"))
        previous = turn
    if rejected > signals.REJECTED_TOOLS_PER_CALL:
        live.validation_anomaly()
    cost = call.get("cost") or {}
    ab = call.get("ab_test") or {}
    live.set_last_call(time.time())
    live.call_ended(
        scenario=call.get("scenario"),
        transferred=bool(call.get("transferred_to_operator")),
        transfer_reason=call.get("transfer_reason"),
        order_created=bool(call.get("order_created") or call.get("order_id")),
        fitting_booked=bool(call.get("fitting_booked") or call.get("fitting_booking_id")),
        duration_seconds=call.get("duration_seconds"),
        cost_usd=cost.get("total_usd"),
        cost_breakdown={k: v for k, v in cost.items() if k != "total_usd" and isinstance(v, int | float)},
        ab_test=ab.get("test_name"),
        ab_variant=ab.get("variant"),
    )


class LiveSimulator:
    """Plays calls at ``calls_per_minute`` with each call lasting its duration / ``speedup``."""

    def __init__(
        self,
        live: LiveMetrics,
        calls: Iterable[dict],
        *,
        calls_per_minute: float = 120.0,
        speedup: float = 20.0,
        operators: int = 4,
        seed: int = 1,
        incident: str | None = None,
        events: bool = False,
    ) -> None:
        if incident is not None and incident not in INCIDENTS:
            raise ValueError(f"incident must be one of {', '.join(INCIDENTS)}, not {incident!r}")
        self.incident = incident
        self.live = live
        self.calls: Iterator[dict] = itertools.cycle([c for c in calls if events or not fires_event_alert(c)])
        self.interval = 60.0 / calls_per_minute
        self.speedup = speedup
        self.operators = operators
        self.rng = random.Random(seed)
        self.queue = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0
        self.ended = 0

    def step(self, in_progress: list, now: float) -> None:
        while in_progress and in_progress[0][0] <= now:
            _, _, call = heapq.heappop(in_progress)
            record_call(self.live, self._staged(call))
            self.ended += 1
            if call.get("transferred_to_operator"):
                self.queue += 1
        call = next(self.calls)
        self.live.call_started()
        self.started += 1
        end = now + max(0.5, (call.get("duration_seconds") or 60) / self.speedup)
        heapq.heappush(in_progress, (end, self.started, call))
        # operators take waiting callers; the queue drains slower than it fills at peaks
        if self.incident == "operators":
            self.queue += 1
            busy = self.operators
        else:
            busy = min(self.operators, self.queue + self.rng.randint(0, self.operators))
            self.queue = max(0, self.queue - self.rng.randint(0, 2))
        self.live.set_operators(queue=self.queue, free=self.operators - busy)
        rate = ERROR_RATE["component_errors" if self.incident == "component_errors" else "healthy"]
        if self.rng.random() < rate:
            self.live.component_error(self.rng.choice(("stt", "llm", "tts")))

    def _staged(self, call: dict) -> dict:
        """The call as the staged incident changes it (the call itself when there is none)."""
        if self.incident == "transfers":
            return {**call, "transferred_to_operator": True, "transfer_reason": "cannot_help"}
        if self.incident == "latency":  # every reply of the bot comes 3 s later: the LLM answers slowly
            slow = [
                {
                    **t,
                    "timestamp": (datetime.fromisoformat(t["timestamp"]) + SLOWER).isoformat(),
                    "llm_latency_ms": (t.get("llm_latency_ms") or 0) + SLOWER.total_seconds() * 1000,
                }
                if t["speaker"] == "bot" and t.get("timestamp")
                else t
                for t in call.get("turns", [])
            ]
            return {**call, "turns": slow}
        if self.incident == "spend":  # every part and the total alike
            cost = call.get("cost") or {}
            return {**call, "cost": {k: v * SPEND_FACTOR if isinstance(v, int | float) else v for k, v in cost.items()}}
        return call

    def run(self) -> None:
        in_progress: list = []
        while not self._stop.is_set():
            self.step(in_progress, time.monotonic())
            self._stop.wait(self.interval)

    def start(self) -> LiveSimulator:
        self._thread = threading.Thread(target=self.run, name="cca-live-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def serve_traffic(
    host: str, port: int, *, calls_per_minute: float, speedup: float, seed: int, incident: str | None
) -> LiveSimulator:
    """``ccanalytics demo-traffic``: a day of generated calls played as live metrics served at
    http://HOST:PORT/metrics; returns the running simulator (``stop()`` ends it)."""
    live = LiveMetrics(CollectorRegistry())
    calls = list(generator.generate_calls(seed=seed, days=1, calls_per_day=400, ab_test=None))
    live.serve(port, addr=host)
    return LiveSimulator(
        live, calls, calls_per_minute=calls_per_minute, speedup=speedup, seed=seed, incident=incident
    ).start()
