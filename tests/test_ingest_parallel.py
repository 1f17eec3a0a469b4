"""The bulk load's pipeline (worker processes, writer thread, COPY text): it changes nothing but speed.

The same file loaded with and without worker processes must leave exactly the same rows, the same
reject file, the same summary and the same progress; and the COPY text ``ingest_prepare`` writes must
store exactly what psycopg's own adaptation of ``call_row``/``turn_rows``/``tool_rows`` stores.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import count_rows
from factories import DEFAULT_START, make_call, running_ab_test, turn

from ccanalytics.cli.root import main
from ccanalytics.core.errors import IngestValidationError, InvalidArgument, RecordProblem
from ccanalytics.ingest import pipeline as ingest_pipeline
from ccanalytics.ingest.callog import validate_json
from ccanalytics.ingest.load import (
    CALL_COLUMNS,
    INGEST_COLUMNS,
    TOOL_COLUMNS,
    TURN_COLUMNS,
    TURN_EXTRA_COLUMNS,
    call_row,
    ingest,
    ingest_file,
    ingest_row,
    tool_rows,
    turn_extra_rows,
    turn_rows,
)
from ccanalytics.ingest.prepare import prepare

SNAPSHOT = {
    "calls": """
        SELECT k.id, k.caller_id, c.phone, c.tenant_id = k.tenant_id, k.started_at, k.ended_at, k.duration_seconds,
               k.scenario, k.transferred_to_operator, k.transfer_reason, k.order_id, k.fitting_booking_id,
               k.prompt_version, k.quality_score, k.cost_breakdown, k.total_cost_usd, k.tenant_id, g.test_id,
               g.variant, i.usage, i.payload_sha256, i.order_ref, i.booking_ref, k.tableoid::regclass::text
        FROM calls k LEFT JOIN customers c ON c.id = k.customer_id LEFT JOIN cca_call_ingest i ON i.call_id = k.id
        LEFT JOIN cca_ab_assignments g ON g.call_id = k.id ORDER BY k.id""",
    "call_turns": """
        SELECT t.id, t.call_id, t.turn_number, t.speaker, t.content, t.stt_confidence, t.stt_latency_ms,
               t.llm_latency_ms, t.tts_latency_ms, t.created_at, x.speech_duration_ms, x.interrupted,
               cca_search_vector(t.content)::text, t.tableoid::regclass::text
        FROM call_turns t LEFT JOIN cca_turn_extras x ON x.turn_id = t.id ORDER BY t.call_id, t.turn_number""",
    "call_tool_calls": """
        SELECT id, call_id, turn_number, tool_name, tool_args, tool_result, duration_ms, success, created_at,
               tableoid::regclass::text
        FROM call_tool_calls ORDER BY call_id, turn_number, created_at, tool_name, tool_args::text""",
    "customers": "SELECT tenant_id, phone, name, total_calls, first_call_at, last_call_at FROM customers ORDER BY phone",
    "cca_turn_extras": "SELECT turn_id, call_id, speech_duration_ms, interrupted FROM cca_turn_extras ORDER BY turn_id",
}
WEIRD_TEXT = 'таб\tі\nновий рядок\r, бекслеш \\ і \\N, \\. кінець, «лапки» "так", emoji 🚗, cafe\u0301'


def snapshot(engine, tables=SNAPSHOT):
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(sa.text(tables[t]))] for t in tables}


def assert_customer_counters_exact(engine):
    """Every customer's counters agree with its calls: true when every call came in the batch that made
    its customer (a new customer gets the counters of the calls that brought it; later deliveries never
    change a customer, whose counters are the processor's)."""
    with engine.connect() as conn:
        wrong = conn.execute(
            sa.text(
                """
                SELECT c.phone FROM customers c CROSS JOIN LATERAL (
                    SELECT count(*) AS n, min(started_at) AS f, max(started_at) AS l FROM calls k WHERE k.customer_id = c.id
                ) s
                WHERE (c.total_calls, c.first_call_at, c.last_call_at) IS DISTINCT FROM (s.n, s.f, s.l)
                """
            )
        ).scalars()
        assert list(wrong) == []


def assert_calls_linked_to_their_customers(engine):
    """One customer per tenant and phone, every call with a caller linked to its tenant's customer of
    that phone, and no customer counting more calls than it has."""
    with engine.connect() as conn:
        unlinked = conn.execute(
            sa.text(
                "SELECT k.id FROM calls k LEFT JOIN customers c ON c.id = k.customer_id "
                "WHERE k.caller_id IS NOT NULL AND (c.phone IS DISTINCT FROM k.caller_id OR c.tenant_id <> k.tenant_id)"
            )
        ).scalars()
        assert list(unlinked) == []
        overcounted = conn.execute(
            sa.text(
                "SELECT c.phone FROM customers c WHERE c.total_calls > "
                "(SELECT count(*) FROM calls k WHERE k.customer_id = c.id)"
            )
        ).scalars()
        assert list(overcounted) == []


def reset(engine):
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "TRUNCATE calls, call_turns, call_tool_calls, customers, cca_call_ingest, cca_turn_extras, "
                "cca_ab_assignments"
            )
        )


def tricky_calls() -> list[dict]:
    """Valid calls exercising every column and every escape of the COPY text format."""
    calls = []
    for i in range(12):
        calls.append(make_call(started_at=DEFAULT_START + timedelta(minutes=7 * i), caller_id=f"+38067123{i % 5:04d}"))
    start = DEFAULT_START + timedelta(hours=3)
    kyiv = start.astimezone(timezone(timedelta(hours=2)))
    calls.append(
        make_call(
            started_at=kyiv,
            caller_id="+380501112233",
            customer_name=' O"Brien \\ {Коваль}, Jr. ',
            scenario="consultation+ tire_search",
            transferred_to_operator=True,
            transfer_reason="complex_question",
            order_created=True,
            fitting_booked="FIT-\t7",
            prompt_version="tire_agent@v2\\beta",
            duration_seconds=88.6,
            turns=[
                turn("bot", WEIRD_TEXT, kyiv + timedelta(seconds=1), llm_latency_ms=700.5, tts_latency_ms=0.4),
                {**turn("customer", "  пробіли  ", kyiv + timedelta(seconds=5)), "stt_confidence": 0.1},
                {
                    **turn("bot", "інструменти", kyiv + timedelta(seconds=9), interrupted=True, duration_ms=1234.5),
                    "tool_calls": [
                        {
                            "name": "search.tires",
                            "args": {"q": 'a\tb\nc\\d "e" \\N', "nested": {"list": [1, 2.5, None, True, "ї"]}},
                            "result": ["x", {"y": "\u0001 control in JSON is fine"}],
                            "duration_ms": 12.5,
                            "success": False,
                            "timestamp": (kyiv + timedelta(seconds=8)).isoformat(),
                        },
                        {"name": "noop", "result": 42},
                        {"name": "none_at_all"},
                        {"name": "text_result", "args": {}, "result": "ok\\n"},
                    ],
                },
            ],
            usage={"llm_model": "haiku", 'weird key \\ "': ["\t"], "n": 10**20},
            cost={"stt": 0.001, "llm": 0.02, "telephony": 0.0123456789},
        )
    )
    # calls across a month boundary: a turn in the next month; only a tool call in the next month
    edge = datetime(2026, 10, 31, 23, 59, 0, tzinfo=UTC)
    calls.append(
        make_call(
            started_at=edge,
            seconds=120,
            caller_id=None,
            turns=[
                turn("bot", "жовтень", edge + timedelta(seconds=10)),
                turn("customer", "листопад", edge + timedelta(seconds=70)),
            ],
            usage={"stt_seconds": 3, "total_usd": 0.5},
            cost=None,
        )
    )
    leap = datetime(2024, 2, 29, 23, 59, 0, tzinfo=UTC)
    late_tool = {"name": "late", "timestamp": (leap + timedelta(seconds=80)).isoformat()}
    calls.append(
        make_call(
            started_at=leap,
            seconds=30,
            turns=[{**turn("bot", "лютий", leap + timedelta(seconds=20)), "tool_calls": [late_tool]}],
        )
    )
    # turn numbers left out are numbered by position
    no_numbers = make_call(started_at=DEFAULT_START + timedelta(hours=5), caller_id="+380671230000")
    for t in no_numbers["turns"]:
        t.pop("turn_number", None)
    calls.append(no_numbers)
    return calls


def tricky_lines(engine) -> list[str]:
    """A JSONL file's lines: the tricky calls, re-deliveries, invalid lines and lines the database
    refuses (an unknown A/B test, a constraint the validator does not know about)."""
    with engine.begin() as conn:
        running_ab_test(conn)
        conn.execute(sa.text("ALTER TABLE call_turns ADD CONSTRAINT no_forbidden CHECK (content <> 'FORBIDDEN')"))
    calls = tricky_calls()
    forbidden = make_call(started_at=DEFAULT_START + timedelta(hours=6))
    forbidden["turns"][1]["text"] = "FORBIDDEN"
    bad_speaker = make_call()
    bad_speaker["turns"][0]["speaker"] = "robot"
    changed = dict(calls[3], scenario="consultation")
    lines = [json.dumps(c, ensure_ascii=False) for c in calls]
    lines[5:5] = ["{broken json", "", json.dumps(bad_speaker), "   "]
    lines[9:9] = [json.dumps(forbidden, ensure_ascii=False), "[" * 5000 + "]" * 5000]
    lines += [
        json.dumps(calls[0]),  # unchanged re-delivery
        json.dumps(make_call(ab_test={"test_name": "greeting", "variant": "B"})),
        json.dumps(make_call(ab_test={"test_name": "nope", "variant": "A"})),
        json.dumps(changed, ensure_ascii=False),  # a changed re-delivery: replaces
        "42",
    ]
    lines += [json.dumps(make_call(started_at=DEFAULT_START + timedelta(days=1, minutes=i))) for i in range(40)]
    return lines


def load(engine, path, tmp_path, workers, batch_size=4):
    reset(engine)
    rejects = tmp_path / f"rejects-{workers}.jsonl"
    progress: list[int] = []
    result = ingest_file(
        engine, path, reject_path=rejects, batch_size=batch_size, progress=progress.append, workers=workers
    )
    return result.summary(), rejects.read_text(encoding="utf-8"), progress, snapshot(engine)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_worker_processes_load_exactly_what_a_serial_load_does(engine, tmp_path, monkeypatch, start_method):
    monkeypatch.setattr(ingest_pipeline, "CHUNK_LINES", 3)  # many chunks: the workers are used
    monkeypatch.setattr(ingest_pipeline, "_start_method", lambda: start_method)
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(tricky_lines(engine)) + "\n", encoding="utf-8")

    serial = load(engine, path, tmp_path, workers=0)
    parallel = load(engine, path, tmp_path, workers=2)

    summary, rejects, progress, rows = serial
    assert summary == {
        "inserted": 57,
        "replaced": 1,
        "unchanged": 1,
        "ignored": 0,
        "rejected": 6,
        "turns": summary["turns"],
        "tool_calls": summary["tool_calls"],
    }
    assert sorted(json.loads(x)["line"] for x in rejects.splitlines()) == [6, 8, 10, 11, 25, 27]
    assert sum(progress) == path.stat().st_size and len(progress) == len(path.read_bytes().splitlines())
    assert len(rows["calls"]) == 57 and rows["customers"]
    assert parallel == serial
    assert_calls_linked_to_their_customers(engine)


def test_copy_text_stores_what_parameter_binding_stores(engine):
    """ingest_prepare's COPY text against psycopg's adaptation of call_row/ingest_row/turn_rows/
    turn_extra_rows/tool_rows, the row-by-row path of the benchmark's baseline."""
    calls = tricky_calls()
    tables = {t: SNAPSHOT[t] for t in ("calls", "call_turns", "call_tool_calls", "cca_turn_extras")}
    ingest(engine, calls)
    assert_customer_counters_exact(engine)
    copied = snapshot(engine, tables)
    reset(engine)

    def insert(table, columns):
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"

    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()
        for month in ("2024-02-01", "2026-10-01"):
            conn.execute(sa.text("SELECT cc_processor_ensure_partitions(:m, 2)"), {"m": month})
        tenant_id = conn.execute(sa.text("SELECT id FROM tenants")).scalar_one()
        for raw in calls:
            call = validate_json(json.dumps(raw), 0)
            ids = {}
            if call.caller_id:
                cur.execute(
                    "INSERT INTO customers (id, tenant_id, phone) VALUES (gen_random_uuid(), %s, %s) "
                    "ON CONFLICT (tenant_id, phone) DO UPDATE SET phone = EXCLUDED.phone RETURNING id",
                    (tenant_id, call.caller_id),
                )
                ids[call.caller_id] = cur.fetchone()[0]
            cur.execute(insert("calls", CALL_COLUMNS), call_row(call, ids, tenant_id))
            cur.execute(insert("cca_call_ingest", INGEST_COLUMNS), ingest_row(call))
            cur.executemany(insert("call_turns", TURN_COLUMNS), list(turn_rows(call)))
            cur.executemany(insert("cca_turn_extras", TURN_EXTRA_COLUMNS), list(turn_extra_rows(call)))
            cur.executemany(insert("call_tool_calls", TOOL_COLUMNS), list(tool_rows(call)))
    bound = snapshot(engine, tables)
    assert copied == bound
    assert WEIRD_TEXT.replace("e\u0301", "\u00e9") in [r[4] for r in copied["call_turns"]]  # stored NFC
    assert ("call_tool_calls_2024_03",) == tuple(r[-1] for r in copied["call_tool_calls"] if r[3] == "late")
    assert copied["cca_turn_extras"]  # the speech durations and barge-ins went through both paths


def test_read_ahead_is_bounded(monkeypatch):
    monkeypatch.setattr(ingest_pipeline, "CHUNK_LINES", 4)
    lines = [json.dumps(make_call()).encode() + b"\n" for _ in range(200)]
    pulled = 0

    def source():
        nonlocal pulled
        for number, line in enumerate(lines, start=1):
            pulled += 1
            yield number, line

    outcomes = ingest_pipeline.prepared_lines(source(), workers=2)
    first = next(outcomes)
    assert first[0] == 1 and pulled <= (2 * ingest_pipeline.IN_FLIGHT_PER_WORKER + 1) * 4
    rest = list(outcomes)
    assert [n for n, _line, _outcome in rest] == list(range(2, 201))
    assert all(outcome.call_id == uuid.UUID(json.loads(line)["call_id"]) for _n, line, outcome in rest)


def test_an_error_in_a_worker_stops_the_load(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_pipeline, "CHUNK_LINES", 2)
    monkeypatch.setattr(ingest_pipeline, "_start_method", lambda: "fork")  # the workers inherit the patch

    def broken(valid, record=0):
        raise RuntimeError(f"bug while preparing line {record}")

    monkeypatch.setattr("ccanalytics.ingest.prepare.prepare", broken)
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(make_call()) + "\n" for _ in range(10)))
    with pytest.raises(RuntimeError, match="bug while preparing line"):
        ingest_file(engine, path, workers=2)


def test_an_error_in_the_writer_stops_the_load(engine, tmp_path, monkeypatch):
    written = []

    def broken(engine_, batch, on_conflict):
        written.append(len(batch))
        raise RuntimeError("writer failed")

    monkeypatch.setattr("ccanalytics.ingest.load._write_batch_isolating", broken)
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(make_call()) + "\n" for _ in range(50)))
    with pytest.raises(RuntimeError, match="writer failed"):
        ingest_file(engine, path, batch_size=2, workers=0)
    assert written == [2]  # nothing handed over after the failure was written


def test_workers_must_not_be_negative(engine, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(make_call()) + "\n")
    with pytest.raises(InvalidArgument, match="workers"):
        ingest_file(engine, path, workers=-1)


def test_deeply_nested_json_is_a_reject_not_a_crash(engine, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(IngestValidationError, match="nested too deeply"):
        ingest(engine, deep)
    path = tmp_path / "calls.jsonl"
    path.write_text(deep + "\n" + json.dumps(make_call()) + "\n")
    result = ingest_file(engine, path, workers=0)
    assert (result.inserted, result.rejected) == (1, 1)
    assert result.rejects[0].problems[0].message == "malformed JSON: nested too deeply"


def test_text_that_cannot_be_encoded_is_a_problem_of_its_record():
    # validation refuses lone surrogates everywhere it looks; prepare() still never crashes on one
    valid = validate_json(json.dumps(make_call()), 7)
    problem = prepare(dataclasses.replace(valid, order_id="ORD-\ud800"), 7)
    assert isinstance(problem, RecordProblem) and problem.record == 7
    assert problem.problems[0].message == "contains invalid Unicode (a lone surrogate)"


def test_cli_ingest_with_worker_processes(db_url, engine, tmp_path):
    path = tmp_path / "calls.jsonl"
    calls = [json.dumps(make_call(started_at=DEFAULT_START + timedelta(minutes=i))) for i in range(300)]
    path.write_text("\n".join([*calls[:100], "nope", *calls[100:]]) + "\n")
    res = CliRunner().invoke(main, ["ingest", str(path), "--workers", "2"], env={"CCA_DATABASE_URL": db_url})
    assert res.exit_code == 2, res.output
    assert "inserted=300" in res.stdout and "rejected=1" in res.stdout
    assert "line 101: malformed JSON" in res.stderr
    assert count_rows(engine)["calls"] == 300


def test_a_large_load_refreshes_the_statistics_of_every_call_table(engine, tmp_path, monkeypatch):
    monkeypatch.setattr("ccanalytics.ingest.load.ANALYZE_AFTER_CALLS", 2)
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(make_call(caller_id=f"+3806712300{i:02d}")) + "\n" for i in range(3)))
    ingest_file(engine, path, workers=0)
    with engine.connect() as conn:
        analyzed = conn.execute(
            sa.text(
                "SELECT DISTINCT tablename FROM pg_stats WHERE tablename = ANY(:t) AND inherited = (tablename <> 'customers')"
            ),
            {"t": ["calls", "call_turns", "call_tool_calls", "customers"]},
        ).scalars()
        assert sorted(analyzed) == ["call_tool_calls", "call_turns", "calls", "customers"]
