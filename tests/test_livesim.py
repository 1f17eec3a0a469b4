"""The demo traffic is healthy by default (no alert rule's condition holds on it) and stages each
incident on demand, so the alerts and their delivery can be tried (issue 18)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from ccanalytics.cli.metrics import demo_traffic_cmd
from ccanalytics.demo import generator
from ccanalytics.demo.livesim import INCIDENTS, LiveSimulator
from ccanalytics.ops.telemetry import LiveMetrics

CALLS = list(generator.generate_calls(seed=5, days=1, calls_per_day=300, ab_test=None))


def spend(registry: CollectorRegistry) -> float:
    return total(registry, "cca_cost_usd_total")


def ten_minutes(incident: str | None, calls_per_minute: float = 120.0) -> CollectorRegistry:
    """Ten simulated minutes of traffic (20× speed-up), stepped with a fake clock."""
    registry = CollectorRegistry()
    sim = LiveSimulator(LiveMetrics(registry), CALLS, calls_per_minute=calls_per_minute, seed=3, incident=incident)
    in_progress: list = []
    steps = int(10 * calls_per_minute)
    for i in range(steps):
        sim.step(in_progress, i * 60.0 / calls_per_minute)
    return registry


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def conditions(registry: CollectorRegistry, healthy_spend: float) -> dict[str, bool]:
    """The conditions of the live alert rules (prometheus/alerts.yml) over the ten minutes."""
    calls = total(registry, "cca_calls_total")
    latency = total(registry, "cca_response_latency_seconds_sum") / total(
        registry, "cca_response_latency_seconds_count"
    )
    return {
        "component_errors": sum(  # CCAComponentErrors: stt, llm, tts (tool errors have their own rules)
            total(registry, "cca_component_errors_total", component=c) for c in ("stt", "llm", "tts")
        )
        > 5,
        "transfers": calls >= 10 and total(registry, "cca_calls_total", outcome="operator") / calls > 0.5,
        "latency": latency > 3.0,  # CCAResponseLatencyHigh reads the p95; the mean above 3 s implies it
        "operators": total(registry, "cca_operator_queue_length") > 5 and total(registry, "cca_operators_free") == 0,
        # CCAAbnormalSpend: the pace more than twice the usual (the days before, here the healthy traffic)
        "spend": spend(registry) > 2 * healthy_spend,
    }


def test_the_default_traffic_is_healthy():
    healthy = ten_minutes(None)
    assert spend(healthy) > 0
    assert conditions(healthy, spend(healthy)) == dict.fromkeys(INCIDENTS, False)


@pytest.mark.parametrize("incident", INCIDENTS)
def test_each_incident_is_staged_alone(incident):
    healthy_spend = spend(ten_minutes(None))
    assert conditions(ten_minutes(incident), healthy_spend) == {k: k == incident for k in INCIDENTS}


def test_the_command_offers_every_incident():
    [option] = [p for p in demo_traffic_cmd.params if p.name == "incident"]
    assert tuple(option.type.choices) == INCIDENTS


def test_an_unknown_incident_is_refused():
    with pytest.raises(ValueError, match="incident must be one of"):
        LiveSimulator(LiveMetrics(CollectorRegistry()), CALLS, incident="fire")
