"""daily_stats and per-call metrics against hand-computed values, including the Kyiv midnight
boundary and both DST change days of 2026."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import add_tenant, make_call, turn, write_as_processor

from ccanalytics.analytics import callmetrics, metrics
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.ingest.load import ingest_records


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def dialogue(start: datetime, *, reask: bool = False, greet: bool = True, gap_ms: int = 800) -> list[dict]:
    """Customer speaks 2 s; the bot answers ``gap_ms`` after the customer stops."""
    t0 = start + timedelta(seconds=1)
    first = "Добрий день! Магазин шин, чим допомогти?" if greet else "Слухаю."
    second = "Перепрошую, не розчула. Повторіть, будь ласка." if reask else "Зараз підберу варіанти."
    return [
        turn("bot", first, t0, duration_ms=3000, llm_latency_ms=600, tts_latency_ms=150),
        turn(
            "customer",
            "Шини на Шкоду",
            t0 + timedelta(seconds=4),
            duration_ms=2000,
            stt_confidence=0.55,
            stt_latency_ms=200,
        ),
        turn(
            "bot",
            second,
            t0 + timedelta(seconds=6, milliseconds=gap_ms),
            duration_ms=2500,
            llm_latency_ms=700,
            tts_latency_ms=200,
            interrupted=True,
        ),
    ]


def put(engine, *calls) -> None:
    result = ingest_records(engine, list(calls))
    assert result.rejected == 0, result.rejects


def stats_row(engine, day: date) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM cca_daily_stats WHERE stat_date = :d"), {"d": day}).one()


def test_kyiv_midnight_boundary_and_hand_computed_day(engine):
    day = date(2026, 11, 20)  # Kyiv is UTC+2 in November
    a = make_call(
        started_at=utc(2026, 11, 19, 22, 0, 0),
        seconds=60,
        turns=dialogue(utc(2026, 11, 19, 22)),
        caller_id="+380671110001",
        scenario="tire_search",
        order_created="ORD-77",  # not a uuid: ccanalytics's ingest keeps it (cca_call_ingest.order_ref)
        cost={"stt": 0.01, "llm": 0.02, "tts": 0.005},
    )
    b = make_call(
        started_at=utc(2026, 11, 20, 9, 30),
        seconds=120,
        turns=dialogue(utc(2026, 11, 20, 9, 30), reask=True, gap_ms=1800),
        caller_id="+380671110002",
        scenario="tire_search",
        transferred_to_operator=True,
        transfer_reason="cannot_help",
        order_created="5b0c2a4e-1f0e-4d7a-9a51-3c1d2e4f5a6b",  # a uuid: the processor's calls.order_id
        cost={"stt": 0.02, "llm": 0.04, "tts": 0.01},
    )
    c = make_call(
        started_at=utc(2026, 11, 20, 21, 59, 59),
        seconds=30,
        turns=dialogue(utc(2026, 11, 20, 21, 59, 59), greet=False),
        caller_id="+380671110001",
        scenario="order_status",
        order_created=None,
        fitting_booked="FIT-00042",
        cost={"stt": 0.005, "llm": 0.01, "tts": 0.0},
    )
    # outside the day on both sides
    before = make_call(started_at=utc(2026, 11, 19, 21, 59, 59), seconds=30, caller_id="+380671110003")
    after = make_call(started_at=utc(2026, 11, 20, 22, 0, 0), seconds=30, caller_id="+380671110003")
    put(engine, a, b, c, before, after)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.9 WHERE id = :id"), {"id": a["call_id"]})
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.4 WHERE id = :id"), {"id": b["call_id"]})

    run = metrics.compute_daily_stats(engine, day, day)
    assert run.days_computed == [day]
    row = stats_row(engine, day)
    assert row.total_calls == 3
    assert (row.resolved_by_bot, row.transferred) == (2, 1)
    assert row.avg_duration_seconds == pytest.approx(70.0)  # (60 + 120 + 30) / 3
    assert row.avg_quality_score == pytest.approx(0.65)  # scored calls only: (0.9 + 0.4) / 2
    assert row.scored_calls == 2
    assert row.total_cost_usd == pytest.approx(0.035 + 0.07 + 0.015)
    assert row.scenario_breakdown == {"tire_search": 2, "order_status": 1}
    assert row.scenario_transfers == {"tire_search": 1}
    assert row.transfer_reasons == {"cannot_help": 1}
    assert row.hourly_distribution == {"0": 1, "11": 1, "23": 1}
    assert (row.orders_created, row.fittings_booked) == (2, 1)  # references and ids both count
    assert row.unique_callers == 2
    # c is the same customer as a, 22 h later: a repeat call, and a is no longer a first-contact resolution
    assert row.repeat_calls_7d == 1
    assert row.first_contact_resolved == 1  # c itself (b was transferred)
    assert row.stt_reasks == 1
    assert row.barge_ins == 3
    # responses: 800, 1800, 800 ms → p50 800, p95 = 800 + 0.9 * 1000
    assert row.response_p50_ms == pytest.approx(800)
    assert row.response_p95_ms == pytest.approx(1700)
    assert row.calls_over_latency_budget == 0


def test_call_metrics_per_call(engine):
    start = utc(2026, 11, 20, 10)
    turns = dialogue(start, reask=True, greet=False, gap_ms=6500)
    turns[2]["tool_calls"] = [
        {
            "name": "create_order_draft",
            "args": {"items": [{"sku": "X", "quantity": 80, "price": 100}]},
            "result": {"error": "validation_failed: quantity"},
            "success": False,
        },
        {"name": "search_tires", "args": {"size": "205/55 R16"}, "result": {"error": "timeout"}, "success": False},
    ]
    call = make_call(started_at=start, seconds=60, turns=turns)
    put(engine, call)
    with engine.begin() as conn:
        assert callmetrics.derive(conn, start, start + timedelta(hours=1)) == 1
        m = conn.execute(sa.text("SELECT * FROM call_metrics")).one()
        assert callmetrics.derive(conn, start, start + timedelta(hours=1)) == 0  # current: nothing to do
    assert (m.turns, m.customer_turns, m.bot_turns) == (3, 1, 2)
    assert m.response_ms == [6500]
    assert m.response_estimated is False
    assert m.long_pauses == 1  # the 6.5 s gap
    assert (m.stt_reasks, m.low_confidence_turns, m.barge_ins) == (1, 1, 1)
    assert m.min_stt_confidence == pytest.approx(0.55)
    assert (m.tool_calls, m.tool_errors, m.rejected_tool_calls, m.suspicious_tool_calls) == (2, 2, 1, 1)
    assert m.greeted is False


def test_response_estimated_from_components_when_durations_missing(engine):
    start = utc(2026, 11, 20, 10)
    turns = dialogue(start)
    for t in turns:
        del t["duration_ms"]
    put(engine, make_call(started_at=start, seconds=60, turns=turns))
    with engine.begin() as conn:
        callmetrics.derive(conn, start, start + timedelta(hours=1))
        m = conn.execute(sa.text("SELECT * FROM call_metrics")).one()
    assert m.response_ms == [200 + 700 + 200]  # customer STT + bot LLM + bot TTS
    assert m.response_estimated is True
    assert m.greeted is True


def test_redelivered_call_gets_fresh_metrics(engine):
    start = utc(2026, 11, 20, 10)
    call = make_call(started_at=start, seconds=60, turns=dialogue(start))
    put(engine, call)
    metrics.compute_daily_stats(engine, date(2026, 11, 20), date(2026, 11, 20))
    call2 = {**call, "turns": dialogue(start, reask=True)}
    put(engine, call2)
    run = metrics.compute_daily_stats(engine, date(2026, 11, 20), date(2026, 11, 20))
    assert run.calls_derived == 1
    assert stats_row(engine, date(2026, 11, 20)).stt_reasks == 1


@pytest.mark.parametrize(
    ("day", "inside", "outside"),
    [
        # spring forward: 2026-03-29 lasts 23 h, 2026-03-28 22:00 UTC … 2026-03-29 21:00 UTC
        (date(2026, 3, 29), [utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 20, 59)], [utc(2026, 3, 29, 21, 0)]),
        # fall back: 2026-10-25 lasts 25 h, 2026-10-24 21:00 UTC … 2026-10-25 22:00 UTC
        (date(2026, 10, 25), [utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 21, 30)], [utc(2026, 10, 24, 20, 59)]),
    ],
)
def test_dst_days(engine, day, inside, outside):
    put(engine, *[make_call(started_at=t, seconds=30, caller_id=None) for t in inside + outside])
    metrics.compute_daily_stats(engine, day, day)
    assert stats_row(engine, day).total_calls == len(inside)


def test_fall_back_hour_counted_twice_in_the_same_local_hour(engine):
    # 00:30 UTC is 03:30 EEST and 01:30 UTC is 03:30 EET on 2026-10-25
    put(engine, *[make_call(started_at=utc(2026, 10, 25, h, 30), seconds=30, caller_id=None) for h in (0, 1)])
    metrics.compute_daily_stats(engine, date(2026, 10, 25), date(2026, 10, 25))
    assert stats_row(engine, date(2026, 10, 25)).hourly_distribution == {"3": 2}


def test_incremental_skips_unchanged_days_and_recomputes_changed(engine):
    d1, d2 = date(2026, 11, 18), date(2026, 11, 19)
    put(
        engine,
        make_call(started_at=utc(2026, 11, 18, 10), caller_id="+380501112233"),
        make_call(started_at=utc(2026, 11, 19, 10), caller_id="+380501112244"),
    )
    first = metrics.compute_daily_stats(engine, d1, d2)
    assert first.days_computed == [d1, d2]
    again = metrics.compute_daily_stats(engine, d1, d2)
    assert again.days_computed == [] and again.days_skipped == 2
    # a new call on d2 from the d1 caller: d2 changes and d1's first-contact resolution too
    put(engine, make_call(started_at=utc(2026, 11, 19, 12), caller_id="+380501112233"))
    third = metrics.compute_daily_stats(engine, d1, d2)
    assert third.days_computed == [d1, d2]
    assert stats_row(engine, d1).first_contact_resolved == 0
    assert stats_row(engine, d2).total_calls == 2
    # scoring a call changes its day
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE calls SET quality_score = 0.7 WHERE started_at = :t"), {"t": utc(2026, 11, 18, 10)}
        )
    fourth = metrics.compute_daily_stats(engine, d1, d2)
    assert fourth.days_computed == [d1]
    assert stats_row(engine, d1).avg_quality_score == pytest.approx(0.7)
    # --full recomputes everything and gives the same numbers
    before = stats_row(engine, d2)
    full = metrics.compute_daily_stats(engine, d1, d2, incremental=False)
    assert full.days_computed == [d1, d2]
    assert stats_row(engine, d2).total_calls == before.total_calls


def _age(engine, minutes: int = 60) -> None:
    """The days were computed ``minutes`` ago (past CHANGE_LAG). Only their stamp moves: the fingerprints
    cover the calls' and metrics' own stamps."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE cca_daily_stats SET computed_at = computed_at - :b"), {"b": timedelta(minutes=minutes)}
        )


def test_calls_the_processor_writes_itself_are_followed_incrementally(engine):
    """A call the call processor wrote into its own tables has no delivery time (no cca_call_ingest row):
    the incremental run still derives its metrics, recomputes its day and the days of its customer's
    earlier calls. A customer is one tenant's: the same number calling another tenant is another customer."""
    d1, d2 = date(2026, 11, 18), date(2026, 11, 19)
    put(engine, make_call(started_at=utc(2026, 11, 18, 10), caller_id="+380501112233"))
    assert metrics.compute_daily_stats(engine, d1, d2).days_computed == [d1, d2]
    assert stats_row(engine, d1).first_contact_resolved == 1
    _age(engine)
    with engine.begin() as conn:
        add_tenant(conn, "other", "Інша мережа")
        # the same number calls another network the next day: that tenant's customer, not a repeat call
        write_as_processor(conn, make_call(started_at=utc(2026, 11, 19, 9), caller_id="+380501112233"), tenant="other")
    run = metrics.compute_daily_stats(engine, d1, d2)
    assert run.calls_derived == 1 and run.days_computed == [d2]
    assert stats_row(engine, d2).total_calls == 1 and stats_row(engine, d2).unique_callers == 1
    assert stats_row(engine, d1).first_contact_resolved == 1
    _age(engine)
    with engine.begin() as conn:
        # and the shop's own customer calls again: d1's call was not resolved at the first contact
        write_as_processor(conn, make_call(started_at=utc(2026, 11, 19, 12), caller_id="+380501112233"))
    run = metrics.compute_daily_stats(engine, d1, d2)
    assert run.calls_derived == 1 and run.days_computed == [d1, d2]
    assert stats_row(engine, d2).total_calls == 2 and stats_row(engine, d2).repeat_calls_7d == 1
    assert stats_row(engine, d1).first_contact_resolved == 0
    with engine.connect() as conn:
        derived = conn.execute(sa.text("SELECT count(*) FROM call_metrics")).scalar_one()
    assert derived == 3


def test_days_without_calls_get_zero_rows(engine):
    metrics.compute_daily_stats(engine, date(2026, 11, 1), date(2026, 11, 3))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT stat_date, total_calls FROM cca_daily_stats ORDER BY 1")).all()
    assert rows == [(date(2026, 11, d), 0) for d in (1, 2, 3)]


def test_summary_weighted_and_buckets(engine):
    # day 1: 1 call transferred of 1; day 2: 0 of 3 → weighted 25 %, not the 50 % mean of daily rates
    put(
        engine,
        make_call(
            started_at=utc(2026, 11, 16, 10),
            transferred_to_operator=True,
            transfer_reason="customer_request",
            caller_id=None,
            order_created=None,
        ),
        *[make_call(started_at=utc(2026, 11, 17, 10 + i), caller_id=None) for i in range(3)],
    )
    s = metrics.summary(engine, date(2026, 11, 16), date(2026, 11, 17))
    assert s.total_calls == 4
    assert s.transferred_to_operator_pct == 25.0
    assert s.transfer_reasons_pct == {"customer_request": 25.0}
    assert s.orders_created_pct == 75.0
    weeks = metrics.summaries(engine, "week", "2026-11-10", "2026-11-22")
    assert [(w.period["date_from"], w.period["date_to"], w.total_calls) for w in weeks] == [
        ("2026-11-10", "2026-11-15", 0),
        ("2026-11-16", "2026-11-22", 4),
    ]
    months = metrics.summaries(engine, "month", "2026-10-30", "2026-11-17")
    assert [m.total_calls for m in months] == [0, 4]
    with pytest.raises(InvalidArgument):
        metrics.summaries(engine, "year", "2026-11-01", "2026-11-02")


def test_long_range_runs_on_three_connections_with_one_snapshot(engine):
    # 40 days: the call side, the latency side and the customers run concurrently on three connections
    put(
        engine,
        make_call(started_at=utc(2026, 10, 20, 10), turns=dialogue(utc(2026, 10, 20, 10)), caller_id=None),
        make_call(started_at=utc(2026, 11, 20, 10), turns=dialogue(utc(2026, 11, 20, 10), gap_ms=1500), caller_id=None),
    )
    run = metrics.compute_daily_stats(engine, date(2026, 10, 15), date(2026, 11, 23))
    assert len(run.days_computed) == 40 and metrics.PARALLEL_FROM_DAYS <= 40
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT stat_date, total_calls, response_p50_ms, source_fingerprint FROM cca_daily_stats "
                "WHERE total_calls > 0 ORDER BY 1"
            )
        ).all()
    assert [(r.stat_date, r.total_calls, r.response_p50_ms) for r in rows] == [
        (date(2026, 10, 20), 1, 800.0),
        (date(2026, 11, 20), 1, 1500.0),
    ]
    assert all(r.source_fingerprint for r in rows)
    assert metrics.compute_daily_stats(engine, date(2026, 10, 15), date(2026, 11, 23)).days_computed == []


def test_customer_figures_are_the_same_computed_for_a_few_days_and_for_a_long_range(engine):
    """daily_customers.sql reads the customers' calls two ways: for a few days (the near-real-time
    job) each of the days' customers through the index, for a long range one pass over the window.
    Both give the same unique callers, repeat calls and first-contact resolution, per day and tenant —
    customers who call again within 7 days, across a month's end and the 7-day edge, at two tenants."""
    with engine.begin() as conn:
        add_tenant(conn, "north", "Північ")
    calls = []
    for i in range(60):  # 12 numbers, each calling every 1–9 days at varying hours
        caller = f"+3806712300{i % 12:02d}"
        start = utc(2026, 10, 20, 7) + timedelta(days=(i * 7) % 41, hours=(i * 5) % 11, minutes=i)
        calls.append(
            make_call(
                started_at=start,
                caller_id=caller,
                transferred_to_operator=i % 4 == 0,
                **({"transfer_reason": "customer_request"} if i % 4 == 0 else {}),
                tenant="north" if i % 3 == 0 else "shop",
            )
        )
    put(engine, *calls)
    first, last = date(2026, 10, 18), date(2026, 12, 2)
    assert (last - first).days + 1 >= metrics.PARALLEL_FROM_DAYS  # one pass over the window

    def figures() -> set[tuple]:
        with engine.connect() as conn:
            every = conn.execute(
                sa.text(
                    "SELECT stat_date, unique_callers, repeat_calls_7d, first_contact_resolved "
                    "FROM cca_daily_stats WHERE total_calls > 0"
                )
            ).all()
            tenants = conn.execute(
                sa.text(
                    "SELECT stat_date, tenant_id, unique_callers, repeat_calls_7d, first_contact_resolved "
                    "FROM cca_daily_stats_tenants"
                )
            ).all()
        return {tuple(r) for r in every} | {tuple(r) for r in tenants}

    metrics.compute_daily_stats(engine, first, last, incremental=False)
    wide = figures()
    assert any(r[2] for r in wide) and any(r[3] for r in wide)  # repeats and resolutions are there
    day = first
    while day <= last:  # the same days, two at a time
        metrics.compute_daily_stats(engine, day, min(day + timedelta(days=1), last), incremental=False)
        day += timedelta(days=2)
    assert figures() == wide
