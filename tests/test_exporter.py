"""The database exporter: counters seeded from the database, advanced by new calls, bounded labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from factories import make_call, record_scores, turn
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ccanalytics import exporter, telemetry
from ccanalytics.ingest import ingest_records


def scrape(registry) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(exporter.render(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    labels = {"source": "calllog", **labels}
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def recent(minutes: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)


def call_with_tools(start: datetime, **fields):
    turns = [
        turn(
            "bot",
            "Добрий день! Чим допомогти?",
            start + timedelta(seconds=1),
            duration_ms=2000,
            llm_latency_ms=500,
            tts_latency_ms=150,
        ),
        turn("customer", "Хочу замовити шини", start + timedelta(seconds=4), duration_ms=1500, stt_latency_ms=300),
        turn(
            "bot",
            "Перепрошую, повторіть?",
            start + timedelta(seconds=7),
            duration_ms=1500,
            llm_latency_ms=1600,
            tts_latency_ms=250,
            tool_calls=[
                {
                    "name": "create_order_draft",
                    "args": {"items": [{"quantity": 99, "price": 0}]},
                    "result": {"error": "validation_failed"},
                    "success": False,
                },
                {"name": "mystery_tool", "args": {}, "result": {"ok": True}, "success": True},
            ],
        ),
    ]
    return make_call(started_at=start, seconds=40, turns=turns, **fields)


def test_counters_histograms_and_increments(engine):
    ingest_records(
        engine,
        [
            call_with_tools(recent(30), scenario="tire_search + order_creation"),
            make_call(
                started_at=recent(20),
                transferred_to_operator=True,
                transfer_reason="negative_emotion",
                scenario="something_new",
                order_created=None,
                caller_id=None,
            ),
        ],
    )
    registry = exporter.make_registry(engine, lag_seconds=0)
    s = scrape(registry)
    assert (
        value(s, "cca_calls_total", scenario="tire_search + order_creation", outcome="bot", transfer_reason="none") == 1
    )
    assert value(s, "cca_calls_total", scenario="other", outcome="operator", transfer_reason="negative_emotion") == 1
    assert value(s, "cca_orders_created_total") == 1
    assert value(s, "cca_stt_reasks_total") == 1
    assert value(s, "cca_tool_calls_total", tool="create_order_draft", status="rejected") == 1
    assert value(s, "cca_tool_calls_total", tool="other", status="ok") == 1
    assert value(s, "cca_suspicious_tool_calls_total", tool="create_order_draft") == 1
    assert value(s, "cca_component_errors_total", component="tool") == 1
    # replies: 7 s - (4 s + 1.5 s) = 1.5 s in the first call; the default dialogue's two replies 12.5 s
    assert value(s, "cca_response_latency_seconds_bucket", le="1.0") == 0
    assert value(s, "cca_response_latency_seconds_bucket", le="1.5") == 1
    assert value(s, "cca_response_latency_seconds_bucket", le="20.0") == 3
    assert value(s, "cca_response_latency_seconds_count") == 3
    assert value(s, "cca_response_latency_seconds_sum") == 1.5 + 12.5 + 12.5
    assert value(s, "cca_llm_ttft_seconds_bucket", le="1.5") >= 1
    assert value(s, "cca_call_cost_usd_count") == 2
    assert value(s, "cca_cost_usd_total", component="llm") > 0
    assert value(s, "cca_scoring_backlog_calls") == 2
    assert s[("cca_exporter_up", ())] == 1.0

    # a new call and a new score advance the counters; nothing is counted twice
    ingest_records(engine, [make_call(started_at=recent(5), caller_id=None)])
    with engine.begin() as conn:
        details = {
            "criteria": {
                "bot_was_concise": {"score": 0.2, "applicable": True},
                "bot_confirmed_before_action": {"score": 1, "applicable": False},
            }
        }
        record_scores(conn, "c.scenario = 'something_new'", "0.35", details)
    s2 = scrape(registry)
    assert value(s2, "cca_calls_started_total") == 0  # live-only
    total = sum(v for (n, _), v in s2.items() if n == "cca_calls_total")
    assert total == 3
    assert value(s2, "cca_quality_score_bucket", le="0.4") == 1
    assert value(s2, "cca_quality_score_bucket", le="0.3") == 0
    assert value(s2, "cca_quality_criterion_score_count", criterion="bot_was_concise") == 1
    assert value(s2, "cca_quality_criterion_score_count", criterion="bot_confirmed_before_action") == 0
    assert value(s2, "cca_scoring_backlog_calls") == 2
    s3 = scrape(registry)
    assert sum(v for (n, _), v in s3.items() if n == "cca_calls_total") == 3


def test_labels_are_bounded():
    assert telemetry.scenario_label("tire_search + fitting_booking") == "tire_search + fitting_booking"
    assert telemetry.scenario_label("tire_search + x") == "other"
    assert telemetry.scenario_label(None) == "unknown"
    assert telemetry.reason_label(False, None) == "none"
    assert telemetry.reason_label(True, "weird") == "other"
    assert telemetry.tool_label("rm_rf") == "other"
    for d in telemetry.CATALOG:
        assert "call_id" not in d.labels and "caller_id" not in d.labels and "phone" not in d.labels
        assert (d.kind == "counter") == d.name.endswith("_total"), d.name


def test_database_down_reports_exporter_down():
    broken = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=False)
    s = scrape(exporter.make_registry(broken))
    assert s[("cca_exporter_up", ())] == 0.0


def test_live_metrics_share_names():
    registry = CollectorRegistry()
    live = telemetry.LiveMetrics(registry)
    live.call_started()
    live.observe_turn(stt_ms=250, llm_ttft_ms=700, tts_ms=200, response_ms=1400)
    live.tool_call(
        "create_order_draft", success=False, result={"error": "validation_failed"}, args={"items": [{"quantity": 60}]}
    )
    live.call_ended(
        scenario="tire_search",
        transferred=True,
        transfer_reason="cannot_help",
        cost_usd=0.08,
        cost_breakdown={"llm": 0.05, "stt": 0.03},
        ab_test="t1",
        ab_variant="B",
    )
    live.set_operators(queue=6, free=0)
    s = {}
    for fam in text_string_to_metric_families(exporter.render(registry).decode()):
        for smp in fam.samples:
            s[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    live_value = lambda n, **kw: s.get((n, tuple(sorted({"source": "live", **kw}.items()))), 0.0)  # noqa: E731
    assert live_value("cca_calls_total", scenario="tire_search", outcome="operator", transfer_reason="cannot_help") == 1
    assert live_value("cca_active_calls") == 0
    assert live_value("cca_operator_queue_length") == 6
    assert live_value("cca_tool_calls_total", tool="create_order_draft", status="rejected") == 1
    assert live_value("cca_suspicious_tool_calls_total", tool="create_order_draft") == 1
    assert live_value("cca_response_latency_seconds_bucket", le="1.5") == 1
    assert live_value("cca_ab_calls_total", test="t1", variant="B", outcome="operator") == 1
    catalog = {d.name for d in telemetry.CATALOG} | {d.base for d in telemetry.CATALOG}
    for name, _ in s:
        base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum").removesuffix("_created")
        assert base in catalog or base.removesuffix("_total") in catalog, name
