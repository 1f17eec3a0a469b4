"""Prompt versions, activation under concurrency, A/B test lifecycle and bad input, sticky
assignment, and the call processor's prompt resolver with its fallbacks."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from factories import add_processor_ab_test, add_prompt_version, make_call

from ccanalytics.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ccanalytics.experiments import abresults, processortests
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.ingest.load import ingest_records
from ccanalytics.prompts import versions as prompts
from ccanalytics.prompts.resolver import PromptResolver


def three_versions(engine, name="greeter"):
    return [
        prompts.create_version(
            engine,
            name,
            f"Ти — помічниця, версія {i}.\nБудь коротка.",
            author="olena",
            tools_config={"tools": [f"t{i}"]},
            note=f"версия {i}",
        )
        for i in (1, 2, 3)
    ]


def test_versions_are_numbered_validated_and_diffed(engine):
    v1, v2, v3 = three_versions(engine)
    assert [v.version for v in (v1, v2, v3)] == [1, 2, 3] and v3.label == "greeter@v3"
    assert not any(v.is_active for v in prompts.list_versions(engine, "greeter"))
    for kwargs in (
        {"name": "Bad Name"},
        {"system_prompt": "  "},
        {"system_prompt": "x\x00"},
        {"metadata": [1]},
        {"author": ""},
    ):
        args = {"name": "greeter", "system_prompt": "ok", "author": "olena", **kwargs}
        with pytest.raises(InvalidArgument):
            prompts.create_version(engine, args.pop("name"), args.pop("system_prompt"), **args)
    assert len(prompts.list_versions(engine, "greeter")) == 3
    d = prompts.diff_versions(engine, v1.id, "greeter@v2")
    assert "-Ти — помічниця, версія 1." in d.unified and "+Ти — помічниця, версія 2." in d.unified
    assert d.tools_changed and ("replace", "Ти — помічниця, версія 1.", "Ти — помічниця, версія 2.") in d.rows
    assert ("equal", "Будь коротка.", "Будь коротка.") in d.rows
    with pytest.raises(NotFound):
        prompts.get_version(engine, "greeter@v9")


def test_activation_history_and_rollback(engine):
    v1, v2, _ = three_versions(engine)
    prompts.activate_version(engine, v1.id, by="olena")
    prompts.activate_version(engine, v2.id, by="taras", reason="коротше")
    assert prompts.active_version(engine, "greeter").id == v2.id
    with pytest.raises(Conflict):  # already active
        prompts.activate_version(engine, v2.id, by="taras")
    back = prompts.rollback(engine, "greeter", by="olena")
    assert (back.from_version_id, back.to_version_id, back.kind) == (v2.id, v1.id, "rollback")
    hist = prompts.history(engine, "greeter")
    assert [(h.kind, h.to_version_id, h.activated_by) for h in hist] == [
        ("rollback", v1.id, "olena"),
        ("activate", v2.id, "taras"),
        ("activate", v1.id, "olena"),
    ]
    with pytest.raises(InvalidArgument):
        prompts.rollback(engine, "nothing-here", by="olena")


def test_concurrent_activations_leave_exactly_one_active(engine):
    versions = [prompts.create_version(engine, "busy", f"v{i}", author="a") for i in range(8)]
    barrier = threading.Barrier(8)
    errors = []

    def go(v):
        barrier.wait()
        try:
            prompts.activate_version(engine, v.id, by="racer")
        except Conflict as exc:  # already active: fine
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        active = conn.execute(
            sa.text("SELECT count(*) FROM cca_prompt_versions WHERE name = 'busy' AND is_active")
        ).scalar()
        recorded = conn.execute(
            sa.text(
                "SELECT from_version_id, to_version_id FROM prompt_activations WHERE name = 'busy' "
                "ORDER BY activated_at, id"
            )
        ).all()
        touched = conn.execute(sa.text("SELECT count(*) FROM prompt_versions WHERE name = 'busy' AND is_active"))
    assert active == 1
    assert len(recorded) == 8 - len(errors)
    # serialised: every activation starts from the version the previous one made active
    assert [f for f, _ in recorded] == [None] + [t for _, t in recorded[:-1]]
    assert prompts.active_version(engine, "busy").id == recorded[-1][1]
    assert touched.scalar() == 0  # the processor's own flag is never changed by ccanalytics
    # whatever the processor does with its own flag, ccanalytics serves exactly one version per name
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE prompt_versions SET is_active = true WHERE name = 'busy'"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, is_active, processor_active FROM cca_prompt_versions WHERE name = 'busy'")
        ).all()
    assert [r.id for r in rows if r.is_active] == [recorded[-1][1]]
    assert all(r.processor_active for r in rows)


def test_ab_test_lifecycle_and_bad_input(engine):
    v1, v2, v3 = three_versions(engine)
    other = prompts.create_version(engine, "other", "інший", author="a")
    bad = [
        ({"version_ids": [v1.id, uuid.uuid4()]}, NotFound),
        ({"version_ids": [v1.id, 999]}, InvalidArgument),  # ids are uuids
        ({"version_ids": [v1.id, "greeter@v2"]}, InvalidArgument),  # ids, not labels
        ({"version_ids": [v1.id, v1.id]}, InvalidArgument),
        ({"version_ids": [v1.id]}, InvalidArgument),
        ({"version_ids": [v1.id, other.id]}, InvalidArgument),
        ({"version_ids": [v1.id, v2.id], "weights": [0.5, 0.6]}, InvalidArgument),
        ({"version_ids": [v1.id, v2.id], "weights": [1.0, 0.0]}, InvalidArgument),
        ({"version_ids": [v1.id, v2.id], "exclusions": {"min_turns": -1}}, InvalidArgument),
        ({"version_ids": [v1.id, v2.id], "exclusions": {"nonsense": 1}}, InvalidArgument),
        ({"version_ids": [v1.id, v2.id], "goal_metric": "vibes"}, InvalidArgument),
    ]
    for kwargs, error in bad:
        with pytest.raises(error):
            experiments.create_test(engine, "t", created_by="olena", **kwargs)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cca_ab_tests")).scalar() == 0
    with pytest.raises(InvalidArgument, match="uuid"):  # a name that reads as an id could not be looked up
        experiments.create_test(engine, str(uuid.uuid4()), [v1.id, v2.id], created_by="olena")
    t = experiments.create_test(
        engine,
        "greet-test",
        [v1.id, v2.id, v3.id],
        weights=[0.5, 0.25, 0.25],
        created_by="olena",
        exclusions={"min_turns": 2},
    )
    assert [(v.variant, v.label, v.weight) for v in t.variants] == [
        ("A", "greeter@v1", 0.5),
        ("B", "greeter@v2", 0.25),
        ("C", "greeter@v3", 0.25),
    ]
    assert t.status == "draft"
    with pytest.raises(AlreadyExists):  # a Conflict (409)
        experiments.create_test(engine, "greet-test", [v1.id, v2.id], created_by="olena")
    with pytest.raises(Conflict):
        experiments.stop_test(engine, t.id, by="olena", decision="keep_a")  # not running
    assert experiments.start_test(engine, t.id, by="olena").status == "running"
    second = experiments.create_test(engine, "greet-test-2", [v1.id, v2.id], created_by="olena")
    with pytest.raises(Conflict, match="already running"):
        experiments.start_test(engine, second.id, by="olena")
    with pytest.raises(InvalidArgument):
        experiments.stop_test(engine, t.id, by="olena", decision="maybe")
    stopped = experiments.stop_test(engine, "greet-test", by="taras", decision="ship_b", note="B краща")
    assert (stopped.status, stopped.decision, stopped.stopped_by) == ("stopped", "ship_b", "taras")
    with pytest.raises(Conflict):
        experiments.stop_test(engine, t.id, by="olena", decision="keep_a")
    assert experiments.start_test(engine, second.id, by="olena").status == "running"
    assert [x.test_name for x in experiments.list_tests(engine, status="running")] == ["greet-test-2"]
    assert experiments.get_test(engine, str(second.id)).test_name == "greet-test-2"  # by id as text
    with pytest.raises(NotFound):
        experiments.get_test(engine, uuid.uuid4())
    with pytest.raises(InvalidArgument):
        experiments.get_test(engine, 1)  # ids are uuids


def test_assignment_is_sticky_and_follows_weights():
    weights = [("A", 0.5), ("B", 0.3), ("C", 0.2)]
    first = [experiments.assign_variant("salt", f"+3806700{i:05d}", weights) for i in range(20_000)]
    again = [experiments.assign_variant("salt", f"+3806700{i:05d}", weights) for i in range(20_000)]
    assert first == again
    shares = {k: n / 20_000 for k, n in Counter(first).items()}
    assert shares["A"] == pytest.approx(0.5, abs=0.015) and shares["C"] == pytest.approx(0.2, abs=0.015)
    other_salt = [experiments.assign_variant("pepper", f"+3806700{i:05d}", weights) for i in range(2_000)]
    assert other_salt != first[:2_000]  # a new test reshuffles callers


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_resolver_active_variant_cache_and_fallbacks(engine, tmp_path):
    v1, v2, _ = three_versions(engine)
    prompts.activate_version(engine, v1.id, by="olena")
    clock = Clock()
    resolver = PromptResolver(engine, ttl_seconds=30, state_dir=tmp_path, clock=clock)
    p = resolver.resolve("greeter", caller_id="0671234567")
    assert (p.label, p.source, p.ab_test) == ("greeter@v1", "database", None)
    assert p.call_log_fields() == {"prompt_version": "greeter@v1"}

    test = experiments.create_test(engine, "g-ab", [v1.id, v2.id], created_by="olena")
    experiments.start_test(engine, test.id, by="olena")
    assert resolver.resolve("greeter", caller_id="0671234567").source == "cache"  # within the TTL
    clock.t = 31
    callers = [f"+38050{i:07d}" for i in range(200)]
    got = {c: resolver.resolve("greeter", caller_id=c) for c in callers}
    assert {p.ab_test for p in got.values()} == {"g-ab"}
    assert {p.label for p in got.values()} == {"greeter@v1", "greeter@v2"}
    for c, p in got.items():  # sticky, and the same as the library's assignment
        assert p.variant == experiments.assign_variant(test.salt, c, test.weights())
        assert resolver.resolve("greeter", caller_id=c).label == p.label
    hidden = resolver.resolve("greeter", caller_id="anonymous", call_id="0b9b8e4e-0000-4000-8000-000000000001")
    assert hidden.variant in ("A", "B")

    # the call processor logs what it used; ingestion attributes the call to the test and variant
    fields = got[callers[0]].call_log_fields()
    call = make_call(caller_id=callers[0], **fields)
    assert ingest_records(engine, [call]).inserted == 1
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT ab_test_id, ab_variant, prompt_version FROM cca_calls")).one()
    assert row == (test.id, got[callers[0]].variant, got[callers[0]].label)

    # the database goes away: last known good from memory, then from the state file after a restart
    broken = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    resolver.engine = broken
    clock.t = 100
    down = resolver.resolve("greeter", caller_id=callers[0])
    assert down.source == "last_known_good" and down.label == got[callers[0]].label
    restarted = PromptResolver(broken, state_dir=tmp_path, clock=clock)
    assert restarted.resolve("greeter", caller_id=callers[0]).label == got[callers[0]].label
    cold = PromptResolver(broken, clock=clock)
    bundled = cold.resolve("tire_agent", caller_id=callers[0])
    assert bundled.source == "bundled_default" and "шин" in bundled.system_prompt
    with pytest.raises(NotFound):
        cold.resolve("greeter")
    with pytest.raises(NotFound):
        PromptResolver(engine).resolve("no-such-prompt")


def test_the_processors_own_ab_tests_are_listed_as_stored(engine):
    """The call processor's A/B tests (its prompt_ab_tests, written as its A/B manager writes them) are
    listed read-only beside ccanalytics's: counters as stored, the quoted default status read as active,
    and no per-call result — ccanalytics cannot tell which variant a call got."""
    with engine.begin() as conn:
        a = add_prompt_version(conn, "tire_agent", "p1", is_active=True)
        b = add_prompt_version(conn, "tire_agent", "p2")
        other = add_prompt_version(conn, "greeter", "g1")
        day = datetime(2026, 9, 1, tzinfo=UTC)
        counted = add_processor_ab_test(
            conn, "greeting", a, b, started_at=day + timedelta(days=3), calls_a=41, calls_b=39, quality_a=0.8
        )
        defaulted = add_processor_ab_test(conn, "no-status", a, b, status=None, started_at=day + timedelta(days=2))
        done = add_processor_ab_test(
            conn,
            "mixed",
            a,
            other,
            status="completed",
            started_at=day + timedelta(days=1),
            ended_at=day + timedelta(days=5),
            traffic_split=0.3,
            calls_a=10,
            calls_b=4,
            quality_a=0.71,
            quality_b=0.64,
        )
        stopped = add_processor_ab_test(conn, "halted", a, b, status="stopped", started_at=day)
        stored = conn.execute(sa.text("SELECT * FROM prompt_ab_tests ORDER BY id")).all()
    found = processortests.processor_tests(engine)
    assert [t.id for t in found] == [counted, defaulted, done, stopped]  # newest first
    first, quirk, mixed, halted = found
    assert (first.test_name, first.prompt_name, first.label_a, first.label_b) == (
        "greeting",
        "tire_agent",
        "tire_agent@v1",
        "tire_agent@v2",
    )
    assert (first.calls_a, first.calls_b, first.quality_a, first.quality_b) == (41, 39, 0.8, None)  # 0: not written
    assert (first.status, first.status_ru, first.traffic_split) == ("active", "идёт", 0.5)
    assert (quirk.status, quirk.status_raw, quirk.status_ru) == ("active", "'active'", "идёт")
    assert (quirk.calls_a, quirk.calls_b, quirk.quality_a, quirk.quality_b) == (0, 0, None, None)
    assert mixed.prompt_name is None and (mixed.label_a, mixed.label_b) == ("tire_agent@v1", "greeter@v1")
    assert (mixed.status_ru, mixed.traffic_split, mixed.quality_a, mixed.quality_b) == ("завершён", 0.3, 0.71, 0.64)
    assert mixed.ended_at == day + timedelta(days=5) and halted.status_ru == "остановлен"
    assert first.results_note_ru == "результаты по звонкам посчитать нельзя: процессор не записывает вариант в звонок"
    d = first.to_dict()
    assert d["id"] == str(counted) and d["variant_a_id"] == str(a) and d["source"] == "processor"
    assert d["per_call_results"] is None
    assert d["results_note"] == (
        "per-call results cannot be computed because the processor does not record the variant on the call"
    )
    assert not any(k in d for k in ("resolved_without_operator_pct", "variants", "recommendations"))
    assert [t.id for t in processortests.processor_tests(engine, status="active")] == [counted, defaulted]
    assert [t.id for t in processortests.processor_tests(engine, status="completed")] == [done]
    with pytest.raises(InvalidArgument):
        processortests.processor_tests(engine, status="running")  # ccanalytics's word, not the processor's
    assert processortests.get_processor_test(engine, str(done)).test_name == "mixed"
    assert processortests.get_processor_test(engine, "halted").id == stopped
    with pytest.raises(NotFound):
        processortests.get_processor_test(engine, uuid.uuid4())
    # they are not ccanalytics's tests: no lookup, no results, nothing written to the processor's table
    assert experiments.list_tests(engine) == []
    with pytest.raises(NotFound):
        experiments.get_test(engine, counted)
    with pytest.raises(NotFound):
        abresults.results(engine, counted)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT * FROM prompt_ab_tests ORDER BY id")).all() == stored
    assert processortests.processor_status(" 'stopped' ") == "stopped" and processortests.processor_status(None) == ""


def test_the_resolver_records_the_variant_of_a_call_the_processor_writes_itself(engine):
    """docs/integration.md: the processor asks the resolver at call start with the call's id; the variant
    is recorded for that call (cca_ab_assignments), so the call — written into the processor's tables by
    the processor, carrying prompt_version 'default' — is attributed to its variant. The first record
    stands; a call id that is not a uuid or a database that is down never fails the call."""
    from factories import write_as_processor

    v1, v2, _ = three_versions(engine)
    prompts.activate_version(engine, v1.id, by="olena")
    test = experiments.create_test(engine, "g-record", [v1.id, v2.id], created_by="olena")
    experiments.start_test(engine, test.id, by="olena")
    resolver = PromptResolver(engine)
    call = make_call(caller_id="+380501112233")
    served = resolver.resolve("greeter", caller_id=call["caller_id"], call_id=call["call_id"])
    with engine.begin() as conn:
        write_as_processor(conn, call)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT ab_test_id, ab_variant, prompt_version FROM cca_calls WHERE id = :i"),
            {"i": call["call_id"]},
        ).one()
        source = conn.execute(
            sa.text("SELECT source FROM cca_ab_assignments WHERE call_id = :i"), {"i": call["call_id"]}
        )
    # the version it was served replaces the processor's 'default' in what ccanalytics reads
    assert row == (test.id, served.variant, served.label) and source.scalar_one() == "resolver"

    # the first answer for a call stays: recording another variant for it writes nothing
    other = next(v for v in ("A", "B") if v != served.variant)
    again = dataclasses.replace(served, variant=other)
    assert resolver.record(call["call_id"], again) is False
    assert resolver.record("not-a-uuid", served) is False
    resolver.engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert resolver.record(str(uuid.uuid4()), served) is False  # logged, not raised
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cca_ab_assignments")).scalar_one() == 1
        assert conn.execute(sa.text("SELECT variant FROM cca_ab_assignments")).scalar_one() == served.variant


def test_a_call_the_processor_writes_is_attributed_to_the_version_it_was_served(engine):
    """Outside an A/B test too, the resolver records the version a call was served, so a call the processor
    writes with prompt_version 'default' counts for that version: in cca_calls, the journal's version
    filter and the optimizer's low-score patterns. A bundled default or an unrecorded call keeps the
    processor's 'default'."""
    from factories import turn, write_as_processor

    from ccanalytics.core import timeutil
    from ccanalytics.prompts import optimizer
    from ccanalytics.quality import Rubric, RulesJudge, enqueue, score_pending

    v1, _, _ = three_versions(engine)
    prompts.activate_version(engine, v1.id, by="olena")
    resolver = PromptResolver(engine)
    t0 = timeutil.day_start(timeutil.today() - timedelta(days=1)) + timedelta(hours=11)
    served_calls, plain = [], make_call(started_at=t0 - timedelta(hours=1))
    for i in range(3):
        at = t0 + timedelta(minutes=5 * i)
        call = make_call(
            started_at=at,
            seconds=60,
            caller_id=None,
            transferred_to_operator=True,
            transfer_reason="negative_emotion",
            order_created=None,
            scenario="order_status",
            turns=[
                turn("bot", "Слухаю.", at + timedelta(seconds=1)),
                turn("customer", "Де моє замовлення", at + timedelta(seconds=4), stt_confidence=0.4),
                turn("bot", "Перепрошую, не розчула. Повторіть?", at + timedelta(seconds=8)),
                turn("customer", "Це жах", at + timedelta(seconds=12), stt_confidence=0.5),
            ],
        )
        served = resolver.resolve("greeter", call_id=call["call_id"])
        assert served.version_id == str(v1.id) and served.variant is None
        served_calls.append(call)
    with engine.begin() as conn:
        for call in [*served_calls, plain]:
            write_as_processor(conn, call)
    with engine.connect() as conn:
        versions = dict(conn.execute(sa.text("SELECT id::text, prompt_version FROM cca_calls")).all())
        processor_values = set(conn.execute(sa.text("SELECT DISTINCT prompt_version FROM calls")).scalars())
    assert {versions[c["call_id"]] for c in served_calls} == {v1.label} and versions[plain["call_id"]] == "default"
    assert processor_values == {"default"}  # the processor's column is never written

    enqueue(engine)
    score_pending(engine, RulesJudge(), Rubric())
    found = optimizer.collect_patterns(engine, "greeter", t0.date() - timedelta(days=1), timeutil.today())
    example_ids = {e for p in found for e in p.example_call_ids}
    assert found and example_ids <= {c["call_id"] for c in served_calls}
