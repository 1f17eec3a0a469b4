"""Bulk JSONL loading: good records load, bad ones go to the reject file, re-runs are idempotent."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa
from click.testing import CliRunner
from conftest import count_rows
from factories import DEFAULT_START, make_call

from ccanalytics.cli.root import main
from ccanalytics.ingest.load import ingest_file


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


def test_bad_lines_go_to_the_reject_file_and_good_ones_load(engine, tmp_path):
    good = [make_call(started_at=DEFAULT_START + timedelta(minutes=i)) for i in range(7)]
    bad_speaker = make_call()
    bad_speaker["turns"][0]["speaker"] = "robot"
    records = [good[0], "{broken json", good[1], bad_speaker, "", good[2], *good[3:]]
    source = write_jsonl(tmp_path / "calls.jsonl", records)
    rejects = tmp_path / "rejects.jsonl"
    progress = []
    result = ingest_file(engine, source, reject_path=rejects, batch_size=3, progress=progress.append)
    assert (result.inserted, result.rejected) == (7, 2)
    assert sum(progress) == source.stat().st_size
    assert count_rows(engine)["calls"] == 7
    lines = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert [x["line"] for x in lines] == [2, 4]
    assert "malformed JSON" in lines[0]["problems"][0]["message"]
    assert lines[0]["raw"] == "{broken json"
    assert lines[1]["call_id"] == bad_speaker["call_id"]
    assert lines[1]["problems"][0]["field"] == "turns.0.speaker"

    again = ingest_file(engine, source, reject_path=rejects, batch_size=3)
    assert (again.inserted, again.unchanged, again.rejected) == (0, 7, 2)
    assert count_rows(engine)["calls"] == 7


def test_a_later_redelivery_in_the_same_file_wins(engine, tmp_path):
    first = make_call()
    second = dict(first, scenario="consultation")
    source = write_jsonl(tmp_path / "calls.jsonl", [first, make_call(), second])
    result = ingest_file(engine, source, batch_size=100)
    assert (result.inserted, result.replaced) == (2, 1)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT scenario FROM calls WHERE id = :i"), {"i": first["call_id"]}).scalar()
            == "consultation"
        )


def test_a_call_the_database_refuses_is_isolated_from_its_batch(engine, tmp_path):
    # a constraint the validator does not know about stands in for any database-side refusal
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE call_turns ADD CONSTRAINT no_forbidden CHECK (content <> 'FORBIDDEN')"))
    calls = [make_call(started_at=DEFAULT_START + timedelta(minutes=i)) for i in range(5)]
    calls[2]["turns"][1]["text"] = "FORBIDDEN"
    rejects = tmp_path / "rejects.jsonl"
    result = ingest_file(engine, write_jsonl(tmp_path / "c.jsonl", calls), reject_path=rejects, batch_size=10)
    assert (result.inserted, result.rejected) == (4, 1)
    entry = json.loads(rejects.read_text())
    assert entry["call_id"] == calls[2]["call_id"] and "no_forbidden" in entry["problems"][0]["message"]
    assert entry["line"] == 3 and json.loads(entry["raw"])["call_id"] == calls[2]["call_id"]
    assert count_rows(engine) == {"calls": 4, "call_turns": 20, "call_tool_calls": 12, "customers": 1}
    with engine.connect() as conn:  # nothing of the refused call stays in ccanalytics's tables either
        received = conn.execute(sa.text("SELECT call_id::text FROM cca_call_ingest")).scalars().all()
        extras = conn.execute(sa.text("SELECT count(DISTINCT call_id) FROM cca_turn_extras")).scalar()
    assert calls[2]["call_id"] not in received and len(received) == 4 and extras == 4


def test_cli_ingest_reports_and_exits_2_on_rejects(db_url, engine, tmp_path):
    source = write_jsonl(tmp_path / "calls.jsonl", [make_call(), "nope", make_call()])
    runner = CliRunner()
    env = {"CCA_DATABASE_URL": db_url}
    res = runner.invoke(main, ["ingest", str(source)], env=env)
    assert res.exit_code == 2, res.output
    assert "inserted=2" in res.stdout and "rejected=1" in res.stdout
    assert "line 2: malformed JSON" in res.stderr
    assert (tmp_path / "calls.jsonl.rejects.jsonl").exists()

    clean = write_jsonl(tmp_path / "clean.jsonl", [make_call()])
    res = runner.invoke(main, ["ingest", str(clean)], env=env)
    assert res.exit_code == 0 and "inserted=1" in res.stdout
    assert not (tmp_path / "clean.jsonl.rejects.jsonl").exists()


def test_cli_ingest_reads_standard_input(db_url, engine, tmp_path):
    """``ccanalytics ingest -`` (a pipe): it crashed in the progress bar, which had no length."""
    lines = "".join(json.dumps(make_call(started_at=DEFAULT_START + timedelta(minutes=i))) + "\n" for i in range(3))
    rejects = tmp_path / "stdin.rejects.jsonl"
    res = CliRunner().invoke(
        main,
        ["ingest", "-", "--reject-file", str(rejects)],
        input=lines.encode() + b"nope\n",
        env={"CCA_DATABASE_URL": db_url},
    )
    assert res.exit_code == 2, res.output
    assert "inserted=3" in res.stdout and "rejected=1" in res.stdout and rejects.exists()
    assert count_rows(engine)["calls"] == 3


def test_cli_ingest_json_file_is_atomic_and_errors_in_one_line(db_url, engine, tmp_path):
    bad = make_call()
    bad["ended_at"] = "2020-01-01T00:00:00+00:00"
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([make_call(), bad]))
    res = CliRunner().invoke(main, ["ingest", str(path)], env={"CCA_DATABASE_URL": db_url})
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: record 1 (call_id ") and "ended_at: is before started_at" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert count_rows(engine)["calls"] == 0


def test_cli_ingest_missing_file_is_a_usage_error(db_url):
    res = CliRunner().invoke(main, ["ingest", "/nonexistent/calls.jsonl"], env={"CCA_DATABASE_URL": db_url})
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_cli_unreachable_database_is_one_line(tmp_path):
    url = f"postgresql://nobody@/nodb?host={tmp_path}"
    res = CliRunner().invoke(main, ["db", "status"], env={"CCA_DATABASE_URL": url})
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: cannot connect to postgresql+psycopg://nobody@/nodb")
    assert len(res.stderr.strip().splitlines()) == 1
