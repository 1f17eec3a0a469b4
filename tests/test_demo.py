"""`ccanalytics demo`, `generate`, `stats` and the admin's /metrics, end to end on a real database."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa
from click.testing import CliRunner
from factories import TENANT

from ccanalytics.analytics import callmetrics
from ccanalytics.cli.root import main
from ccanalytics.core import clock, timeutil
from ccanalytics.core.errors import RecordProblem
from ccanalytics.ingest.callog import validate_json
from webapp import create_app


def cli(db_url, *args, reports_dir=None):
    env = {"CCA_DATABASE_URL": db_url}
    if reports_dir is not None:
        env["CCA_REPORTS_DIR"] = str(reports_dir / "reports")
        env["CCA_LAKE_DIR"] = str(reports_dir / "lake")
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_demo_no_serve_loads_data_runs_jobs_and_is_idempotent(db_url, engine, tmp_path):
    now = clock.now()
    with clock.frozen(now):  # the demo at one instant: the second run finds everything done
        res = cli(db_url, "demo", "--no-serve", "--days", "3", "--calls-per-day", "40", reports_dir=tmp_path)
    assert res.exit_code == 0, res.output
    assert "load demo calls:" in res.output and "daily stats: 3 days computed" in res.output
    assert "response latency: p50" in res.output
    networks = next(line for line in res.output.splitlines() if line.startswith("networks (tenants): "))
    assert "Шинсервіс" in networks and "ПроКолесо" in networks
    yesterday = timeutil.today() - timedelta(days=1)
    assert (tmp_path / "reports" / "daily" / f"{yesterday}.html").is_file()  # the demo writes the HTML reports
    assert (tmp_path / "reports" / "problems" / f"{yesterday - timedelta(days=1)}_{yesterday}.html").is_file()
    assert "3 days exported" in res.output and (tmp_path / "lake" / "calls").is_dir()  # and fills the lake
    with engine.connect() as conn:
        calls = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
        days = conn.execute(sa.text("SELECT count(*), sum(total_calls) FROM cca_daily_stats")).one()
        prompts = conn.execute(
            sa.text("SELECT label, is_active, processor_active FROM cca_prompt_versions ORDER BY version")
        ).all()
        tests = conn.execute(sa.text("SELECT test_name, status FROM cca_ab_tests")).all()
        variants = conn.execute(
            sa.text(
                "SELECT v.variant, p.label FROM cca_ab_variants v JOIN cca_prompt_versions p ON p.id = v.version_id "
                "ORDER BY 1"
            )
        ).all()
        ab_calls = conn.execute(
            sa.text("SELECT count(*) FROM cca_ab_assignments a JOIN cca_ab_tests t ON t.id = a.test_id")
        ).scalar_one()
        tenants = dict(
            conn.execute(
                sa.text("SELECT t.slug, count(c.id) FROM tenants t LEFT JOIN calls c ON c.tenant_id = t.id GROUP BY 1")
            ).all()
        )
        names = dict(conn.execute(sa.text("SELECT slug, name FROM tenants")).all())
        # a number that called both networks is a customer of each (customers are per tenant and phone)
        both = conn.execute(
            sa.text("SELECT count(*) FROM (SELECT phone FROM customers GROUP BY 1 HAVING count(*) > 1) x")
        ).scalar_one()
        unlinked = conn.execute(
            sa.text(
                "SELECT count(*) FROM calls c LEFT JOIN customers cu ON cu.id = c.customer_id "
                "WHERE c.caller_id IS NOT NULL AND c.caller_id <> 'anonymous' "
                "AND (cu.id IS NULL OR cu.tenant_id <> c.tenant_id OR cu.phone <> c.caller_id)"
            )
        ).scalar_one()
        orders = conn.execute(sa.text("SELECT count(order_id), count(fitting_booking_id) FROM calls")).one()
        derived = conn.execute(sa.text("SELECT count(*) FROM call_metrics")).scalar_one()
        future = conn.execute(sa.text("SELECT count(*) FROM calls WHERE ended_at > :n"), {"n": now}).scalar_one()
        days_with_calls = conn.execute(
            sa.text("SELECT count(DISTINCT (started_at AT TIME ZONE 'Europe/Kyiv')::date) FROM calls")
        ).scalar_one()
    assert calls > 60
    # stats cover all 3 days, today included even before its first call (at 00:30 it has none yet)
    assert days == (3, calls) and days_with_calls in (2, 3)
    # v1 is the processor's active version, v2 was written through ccanalytics
    assert prompts == [("tire_agent@v1", True, True), ("tire_agent@v2", False, False)]
    assert tests == [("tire_agent-v1-vs-v2", "running")]
    assert variants == [("A", "tire_agent@v1"), ("B", "tire_agent@v2")]
    assert 0 < ab_calls <= calls
    # the demo's two networks (the test database's own tenant gets no demo call)
    assert names["shinservice"] == "Шинсервіс" and names["prokoleso"] == "ПроКолесо"
    assert tenants["shinservice"] > 0 and tenants["prokoleso"] > 0
    assert tenants["shinservice"] + tenants["prokoleso"] == calls
    assert both > 0 and unlinked == 0
    assert orders[0] > 0 and orders[1] > 0  # uuids, in the processor's own columns
    assert derived == calls
    assert future == 0  # the demo ends at now

    with clock.frozen(now):
        again = cli(db_url, "demo", "--no-serve", "--days", "3", "--calls-per-day", "40", reports_dir=tmp_path)
    assert again.exit_code == 0, again.output
    assert f"0 new calls, 0 replaced, {calls} already loaded" in again.output
    assert "0 days computed, 3 unchanged" in again.output
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one() == calls
        assert conn.execute(sa.text("SELECT count(*) FROM prompt_versions")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one() == 3


def test_generate_writes_valid_jsonl_that_ingests(db_url, engine, tmp_path):
    out = tmp_path / "calls.jsonl"
    res = cli(
        db_url,
        "generate",
        "--days",
        "2",
        "--calls-per-day",
        "25",
        "--seed",
        "3",
        "--out",
        str(out),
        "--no-ab-test",
        "--tenant",
        TENANT,
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert res.output.strip() == f"wrote {len(lines)} calls to {out}"
    assert not [p for i, line in enumerate(lines) if isinstance(p := validate_json(line, i), RecordProblem)]
    assert {json.loads(line)["tenant"] for line in lines} == {TENANT}
    res = cli(db_url, "ingest", str(out))
    assert res.exit_code == 0, res.output
    assert f"inserted={len(lines)}" in res.output
    # by default the calls name the demo's tenants, which a database without them refuses
    demo = tmp_path / "demo.jsonl"
    # two days: at 00:30 Kyiv today has had no call yet (the demo ends at now)
    assert cli(db_url, "generate", "--days", "2", "--calls-per-day", "20", "--out", str(demo)).exit_code == 0
    tenants = {json.loads(line)["tenant"] for line in demo.read_text(encoding="utf-8").splitlines()}
    assert tenants and tenants <= {"shinservice", "prokoleso"}


def test_stats_commands(db_url, engine):
    # two complete days before today: today may have no call yet (run at 00:30 it has none)
    day = timeutil.today() - timedelta(days=1)
    before = day - timedelta(days=1)
    assert cli(db_url, "generate", "--days", "3", "--calls-per-day", "30").exit_code == 0
    res = cli(db_url, "stats", "daily", "--from", str(before), "--to", str(day), "--json")
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)
    assert run["days_computed"] == [str(before), str(day)]
    res = cli(db_url, "stats", "daily", "--date", str(day))
    assert res.exit_code == 0 and "0 days computed, 1 unchanged" in res.output
    res = cli(db_url, "stats", "summary", "--period", "day", "--from", str(before), "--to", str(day))
    data = json.loads(res.output)["data"]
    assert len(data) == 2 and all(d["total_calls"] > 0 for d in data)
    for key in (
        "total_calls",
        "avg_duration_seconds",
        "resolved_by_bot_pct",
        "transferred_to_operator_pct",
        "transfer_reasons",
        "scenarios",
        "orders_created",
        "fittings_booked",
        "avg_quality_score",
        "total_cost_usd",
        "avg_cost_per_call_usd",
        "period",
    ):
        assert key in data[0]
    bad = cli(db_url, "stats", "daily", "--date", str(day), "--from", str(day))
    assert bad.exit_code == 1 and bad.output.startswith("Error: give either --date or --from/--to")
    bad = cli(db_url, "stats", "daily", "--from", str(day), "--to", str(day - timedelta(days=3)))
    assert bad.exit_code == 1 and "Error:" in bad.output


def test_admin_serves_prometheus_metrics(engine):
    from ccanalytics.demo import load_demo_data

    load_demo_data(engine, days=2, calls_per_day=30)  # yesterday too: at 00:30 today has no call yet
    with engine.begin() as conn:  # the daily figures job's derivation (a scrape derives only the last hours)
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
        callmetrics.derive(conn, now - timedelta(days=3), now)
    client = create_app({"ENGINE": engine, "TESTING": True, "METRICS_LAG_SECONDS": 0}).test_client()
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.mimetype == "text/plain"
    body = res.get_data(as_text=True)
    assert 'cca_calls_total{outcome="bot",scenario=' in body
    assert "cca_exporter_up 1.0" in body


def test_quality_commands_after_the_demo(db_url, engine, tmp_path):
    assert (
        cli(db_url, "demo", "--no-serve", "--days", "2", "--calls-per-day", "60", reports_dir=tmp_path).exit_code == 0
    )
    res = cli(db_url, "quality", "report")
    report = json.loads(res.output)["data"]
    assert report["scored_calls"] == report["total_calls"] > 0
    assert report["judges"][0]["model"] == "rules-v2"
    res = cli(db_url, "quality", "calibration", "--json")
    rows = {r["criterion"]: r for r in json.loads(res.output)["data"]}
    assert rows["bot_greeted_properly"]["n"] > 0
    res = cli(db_url, "quality", "problems", "--date", str(timeutil.today()))
    assert res.exit_code == 0 and isinstance(json.loads(res.output)["data"], list)
    res = cli(db_url, "score", "--json")
    assert json.loads(res.output)["scored"] == 0  # everything was scored by the demo


def test_prompt_and_ab_commands(db_url, engine, tmp_path):
    assert (
        cli(db_url, "demo", "--no-serve", "--days", "3", "--calls-per-day", "60", reports_dir=tmp_path).exit_code == 0
    )
    listing = cli(db_url, "prompts", "list", "--name", "tire_agent").output
    assert "* " in listing and "tire_agent@v1" in listing and "tire_agent@v2" in listing
    prompt = tmp_path / "p.txt"
    prompt.write_text("Ти — помічниця магазину шин. Відповідай коротко.", encoding="utf-8")
    res = cli(db_url, "prompts", "create", "--name", "tire_agent", "--file", str(prompt), "--author", "olena")
    assert res.output.startswith("created tire_agent@v3")
    assert "+Ти — помічниця магазину шин." in cli(db_url, "prompts", "diff", "tire_agent@v2", "tire_agent@v3").output
    res = cli(
        db_url,
        "ab",
        "create",
        "v2-vs-v3",
        "--version",
        "tire_agent@v2",
        "--version",
        "tire_agent@v3",
        "--by",
        "olena",
        "--min-turns",
        "2",
    )
    assert res.exit_code == 0 and "A=tire_agent@v2 50%" in res.output
    res = cli(db_url, "ab", "start", "v2-vs-v3", "--by", "olena")
    assert res.exit_code == 1 and "already running" in res.output  # the demo test runs on this prompt
    res = cli(db_url, "ab", "results", "tire_agent-v1-vs-v2")
    assert res.exit_code == 0 and "B tire_agent@v2" in res.output
    data = json.loads(cli(db_url, "ab", "results", "tire_agent-v1-vs-v2", "--json").output)["data"]
    assert {v["variant"] for v in data["variants"]} == {"A", "B"}
    assert cli(db_url, "ab", "stop", "tire_agent-v1-vs-v2", "--by", "olena", "--decision", "ship_b").exit_code == 0
    assert "activate" not in cli(db_url, "ab", "list", "--status", "running").output
    res = cli(db_url, "prompts", "activate", "tire_agent@v2", "--by", "olena", "--reason", "A/B")
    assert res.exit_code == 0 and "→" in res.output
    assert cli(db_url, "prompts", "rollback", "tire_agent", "--by", "olena").exit_code == 0
    bad = cli(db_url, "ab", "create", "x", "--version", "tire_agent@v1", "--version", "tire_agent@v1", "--by", "o")
    assert bad.exit_code == 1 and bad.output.startswith("Error: a test cannot compare a version with itself")
