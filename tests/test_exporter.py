"""The database exporter: counters seeded from the database, advanced by new calls, bounded labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from factories import TENANT, add_tenant, make_call, record_scores, turn, write_as_processor
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ccanalytics import quality
from ccanalytics.analytics import callmetrics
from ccanalytics.core import timeutil
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ops import exporter, retention, telemetry


def scrape(registry) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(exporter.render(registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels) -> float:
    labels = {"source": "calllog", "tenant": TENANT, **labels}
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
    live_value = lambda n, **kw: s.get((n, tuple(sorted({"source": "live", "tenant": "", **kw}.items()))), 0.0)
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


def calls_total(samples, tenant: str | None = None) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == "cca_calls_total" and (tenant is None or ("tenant", tenant) in labels)
    )


def counters(samples) -> dict:
    """Every counter and histogram sample (what must never go down)."""
    return {k: v for k, v in samples.items() if k[0].endswith(("_total", "_bucket", "_count", "_sum"))}


def test_restart_redelivery_and_purge_never_lower_a_counter(engine):
    """A re-delivered call is not counted again; a restarted exporter (a new process) continues from
    the checkpoint; retention checkpoints before it deletes, so even a read-only exporter that never
    saved comes back with the counters it had."""
    old = make_call(started_at=datetime.now(UTC) - timedelta(days=400), caller_id=None)
    fresh = [make_call(started_at=recent(30), caller_id=None), call_with_tools(recent(20))]
    ingest_records(engine, [old, *fresh])
    with engine.begin() as conn:
        callmetrics.derive(conn, datetime.now(UTC) - timedelta(days=401), datetime.now(UTC))  # the daily job's work
        record_scores(conn, "true", "0.8", {"criteria": {"bot_was_concise": {"score": 0.8}}})
        # derived and scored a minute ago: before the lag of retention's checkpoint
        conn.execute(sa.text("UPDATE call_metrics SET final_at = final_at - interval '1 minute'"))
        conn.execute(sa.text("UPDATE call_scores SET created_at = created_at - interval '1 minute'"))
    reader = exporter.make_registry(engine, derive=False, lag_seconds=0)  # a read-only role: never saves
    before = counters(scrape(reader))
    assert calls_total(before) == 3
    assert value(before, "cca_quality_score_count") == 3

    ingest_records(engine, [fresh[0]])  # the same call delivered again, and rescored
    with engine.begin() as conn:
        record_scores(conn, "true", "0.1", {"criteria": {"bot_was_concise": {"score": 0.1}}})
    again = counters(scrape(reader))
    assert again == before

    retention.purge(engine, timeutil.today(), aggregates_days=365, transcripts_days=90)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one() == 2  # the old call is gone
    restarted = counters(scrape(exporter.make_registry(engine, derive=False, lag_seconds=0)))
    assert restarted == before
    # without the checkpoint a fresh count of the database is lower: the test can tell
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cca_exporter_state"))
    assert calls_total(scrape(exporter.make_registry(engine, derive=False, lag_seconds=0))) == 2


def test_checkpoint_moves_forward_only(engine):
    ingest_records(engine, [make_call(started_at=recent(30), caller_id=None)])
    late = exporter.CallLogCollector(engine, lag_seconds=0)
    late.refresh()
    ingest_records(engine, [make_call(started_at=recent(20), caller_id=None)])
    exporter.checkpoint(engine, lag_seconds=0)
    late.refresh(checkpoint=True)  # its watermark is newer too: it may save, with the same totals
    with engine.connect() as conn:
        saved = conn.execute(sa.text("SELECT counters FROM cca_exporter_state")).scalar_one()
    assert sum(v for n, _labels, v in saved if n == "cca_calls_total") == 2
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cca_exporter_state SET metrics_watermark = now() + interval '1 hour'"))
    late.refresh(checkpoint=True)  # an older state never overwrites a newer checkpoint
    with engine.connect() as conn:
        ahead = conn.execute(sa.text("SELECT metrics_watermark > now() FROM cca_exporter_state")).scalar_one()
    assert ahead


def test_a_call_in_progress_counts_once_it_ends(engine):
    """The processor writes a call at its start and completes it at its end: the exporter counts it
    once, after it ended, with the turns it had at the end."""
    call = call_with_tools(recent(10))
    with engine.begin() as conn:
        call_id = write_as_processor(conn, call, ended=False)
    registry = exporter.make_registry(engine, lag_seconds=0)
    assert calls_total(scrape(registry)) == 0
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE calls SET ended_at = started_at + interval '40 seconds', duration_seconds = 40, "
                "scenario = 'tire_search', transferred_to_operator = false WHERE id = :id"
            ),
            {"id": call_id},
        )
    s = scrape(registry)
    assert calls_total(s) == 1
    assert value(s, "cca_calls_total", scenario="tire_search", outcome="bot", transfer_reason="none") == 1
    assert value(s, "cca_stt_reasks_total") == 1
    assert calls_total(scrape(registry)) == 1


def test_series_carry_the_tenant(engine):
    with engine.begin() as conn:
        add_tenant(conn, "north", "Північ")
    ingest_records(
        engine,
        [
            make_call(started_at=recent(30), caller_id=None, tenant=TENANT),
            make_call(started_at=recent(25), caller_id=None, tenant="north", transferred_to_operator=True),
            make_call(started_at=recent(20), caller_id=None, tenant="north"),
        ],
    )
    s = scrape(exporter.make_registry(engine, lag_seconds=0))
    assert calls_total(s, TENANT) == 1
    assert calls_total(s, "north") == 2
    assert value(s, "cca_call_duration_seconds_count", tenant="north") == 2
    assert value(s, "cca_scoring_backlog_calls", tenant="north") == 2
    assert value(s, "cca_scoring_backlog_calls", tenant=TENANT) == 1
    # counters of rare events exist at 0 for every tenant before the first event: Prometheus sees the
    # first one as an increase (a series that appears at 1 is none)
    zero = ("cca_suspicious_tool_calls_total", (("source", "calllog"), ("tenant", "north"), ("tool", "search_tires")))
    assert s[zero] == 0
    assert s[("cca_validation_anomaly_calls_total", (("source", "calllog"), ("tenant", "north")))] == 0


def test_gauges_count_what_the_scheduler_owes_and_the_newest_call_of_each_tenant(engine):
    """The scoring backlog is the finished, unscored calls of the days the scheduler scores (a call in
    progress or of an earlier day is not owed); the last call is each tenant's latest end — a long call
    that ended after the newest one started counts — and calls without a tenant have their own."""
    now = datetime.now(UTC).replace(microsecond=0)
    since = quality.scheduled_since(now, timeutil.DEFAULT_TZ)
    long_call = make_call(started_at=recent(40), seconds=39 * 60, caller_id=None)  # ends a minute ago
    orphan = make_call(started_at=recent(50), seconds=60, caller_id=None)
    ingest_records(
        engine,
        [
            make_call(started_at=since - timedelta(minutes=10), seconds=60, caller_id=None),  # the day before
            long_call,
            orphan,
        ],
    )
    with engine.begin() as conn:
        write_as_processor(conn, make_call(started_at=recent(3), caller_id=None), ended=False)  # in progress
        conn.execute(sa.text("UPDATE calls SET tenant_id = NULL WHERE id = :id"), {"id": orphan["call_id"]})
    s = scrape(exporter.make_registry(engine, lag_seconds=0))
    assert value(s, "cca_scoring_backlog_calls") == 1  # the long call
    assert value(s, "cca_scoring_backlog_calls", tenant="") == 1  # the call without a tenant
    assert value(s, "cca_last_call_timestamp_seconds") == datetime.fromisoformat(long_call["ended_at"]).timestamp()
    assert (
        value(s, "cca_last_call_timestamp_seconds", tenant="") == datetime.fromisoformat(orphan["ended_at"]).timestamp()
    )


def test_live_metrics_per_tenant():
    registry = CollectorRegistry()
    live = telemetry.LiveMetrics(registry)
    live.for_tenant("north").call_ended(scenario="tire_search", transferred=False)
    live.call_ended(scenario="tire_search", transferred=False)
    s = {}
    for fam in text_string_to_metric_families(exporter.render(registry).decode()):
        for smp in fam.samples:
            s[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    key = {"source": "live", "scenario": "tire_search", "outcome": "bot", "transfer_reason": "none"}
    assert s[("cca_calls_total", tuple(sorted({**key, "tenant": "north"}.items())))] == 1
    assert s[("cca_calls_total", tuple(sorted({**key, "tenant": ""}.items())))] == 1
    assert s[("cca_component_errors_total", (("component", "tool"), ("source", "live"), ("tenant", "north")))] == 0
