"""Reports, problem calls, cost, the exploration queries, the workbench and the lake reader scoped per
tenant, on the demo's two tenants (shinservice «Шинсервіс», prokoleso «ПроКолесо»): every scoped figure
is the figure over that tenant's calls only, the tenants' figures add up to the whole, the scoped report
names its tenant and says which sections are shared, an unknown slug is a clear error. Days are the
demo's (fixed), never today."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import DEMO_END

import ccanalytics as cca
from ccanalytics.analytics import explore, metrics
from ccanalytics.analytics.store import Store
from ccanalytics.cli.root import main
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import calls as cost
from ccanalytics.cost import levers, ttscache
from ccanalytics.reports import costview, problemcalls
from ccanalytics.reports import daily as dailyreport
from ccanalytics.reports import dailyview as reportview

pytestmark = pytest.mark.xdist_group("reports")

DAY = date.fromisoformat(DEMO_END)
FIRST, LAST = "2026-11-20", DEMO_END
TENANTS = ("prokoleso", "shinservice")
KYIV_DAYS = "(c.started_at AT TIME ZONE 'Europe/Kyiv')::date BETWEEN :a AND :b"


def _calls(engine, tenant: str | None, first=FIRST, last=LAST, where: str = "true") -> set[str]:
    """The ids of the calls of ``tenant`` (None: every call) in the Kyiv days first … last."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    f"SELECT c.id::text FROM cca_calls c WHERE {KYIV_DAYS} AND {where} "
                    "AND (CAST(:t AS text) IS NULL OR c.tenant = :t)"
                ),
                {"a": date.fromisoformat(str(first)), "b": date.fromisoformat(str(last)), "t": tenant},
            ).scalars()
        )


@pytest.fixture
def demo_store(demo_engine):
    store = Store(demo_engine)
    cca.default_store(store)
    yield store
    import ccanalytics.analytics.workbench as wb

    wb._default = None


def test_the_demo_has_two_tenants_with_calls_on_the_report_days(demo_engine):
    every = _calls(demo_engine, None)
    parts = [_calls(demo_engine, t) for t in TENANTS]
    assert all(parts) and parts[0] | parts[1] == every and not parts[0] & parts[1]


def test_the_daily_report_of_a_tenant_is_that_tenants_calls(demo_engine):
    every = dailyreport.build(demo_engine, DAY, run_checks=False)
    reps = {t: dailyreport.build(demo_engine, DAY, run_checks=False, tenant=t) for t in TENANTS}
    for t, rep in reps.items():
        mine = _calls(demo_engine, t, DAY, DAY)
        assert rep.summary.total_calls == len(mine) == rep.quality["total_calls"]
        assert rep.summary == metrics.summary(demo_engine, DAY, DAY, tenant=t)
        assert rep.tenants == (t,) and rep.scoped
        # the worst calls: the lowest scores among the tenant's calls only
        with demo_engine.connect() as conn:
            worst = conn.execute(
                sa.text(
                    f"SELECT c.id::text FROM cca_calls c WHERE {KYIV_DAYS} AND c.tenant = :t "
                    "AND c.quality_score IS NOT NULL ORDER BY c.quality_score, c.started_at LIMIT 10"
                ),
                {"a": DAY, "b": DAY, "t": t},
            ).scalars()
            assert [w["call_id"] for w in rep.worst_calls] == list(worst)
            # latency: the replies of the tenant's calls
            p95 = conn.execute(
                sa.text(
                    "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY v)::float8, count(*) "
                    "FROM call_metrics m JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at, "
                    f"unnest(m.response_ms) v WHERE {KYIV_DAYS} AND c.tenant = :t"
                ),
                {"a": DAY, "b": DAY, "t": t},
            ).one()
            total_cost = conn.execute(
                sa.text(
                    f"SELECT coalesce(sum(total_cost_usd), 0)::float8 FROM cca_calls c WHERE {KYIV_DAYS} AND c.tenant = :t"
                ),
                {"a": DAY, "b": DAY, "t": t},
            ).scalar_one()
        response = next(r for r in rep.latency if r["component"] == "response")
        assert (response["p95_ms"], response["samples"]) == (pytest.approx(p95[0]), p95[1])
        assert rep.cost["total_cost_usd"] == pytest.approx(total_cost, abs=1e-6)
        assert rep.cost["period"]["tenants"] == [t] and rep.cost["fixed_cost_unallocated_usd"] is None
        assert "tenant=" + t in rep.journal_url(transferred="true")
        assert rep.summary_text() == dailyreport.summary_text(demo_engine, DAY, tenant=t)
    # the tenants add up to the whole; the shared sections are the same in every scope
    assert sum(r.summary.total_calls for r in reps.values()) == every.summary.total_calls
    for component in ("stt", "llm", "tts", "response"):
        samples = [next(x["samples"] for x in r.latency if x["component"] == component) for r in reps.values()]
        assert sum(samples) == next(x["samples"] for x in every.latency if x["component"] == component)
    assert sum(r.cost["total_cost_usd"] for r in reps.values()) == pytest.approx(every.cost["total_cost_usd"])
    assert all(r.ab_tests == every.ab_tests and r.findings == every.findings for r in reps.values())
    assert not every.scoped and every.tenants is None and every.scope_label == "все сети"
    assert "tenant=" not in every.journal_url()


def test_the_scoped_daily_report_names_its_tenant_and_says_what_is_shared(demo_engine):
    rep = dailyreport.build(demo_engine, DAY, tenant="prokoleso")
    every = dailyreport.build(demo_engine, DAY)
    assert reportview.heading(rep) == "Ежедневный отчёт колл-центра — «ПроКолесо» — 24.11.2026"
    assert reportview.heading(every) == "Ежедневный отчёт колл-центра — 24.11.2026"
    assert "Сети: «ПроКолесо»." in reportview.title(rep).html and "Сети: все сети." in reportview.title(every).html
    shared = "".join(b.html for b in reportview.ab_tests(rep))
    assert "A/B-тесты и промпты общие для всех сетей" in shared
    assert "A/B-тесты и промпты общие" not in "".join(b.html for b in reportview.ab_tests(every))
    assert "Алерты вычисляются по всем сетям" in reportview.alerts(rep).html
    assert "по всем сетям" not in reportview.alerts(every).html
    assert "Автоматический поиск проблем идёт по всем сетям" in reportview.problems(rep).html
    if rep.findings:
        assert "Найдено проблем (по всем сетям):" in rep.summary_text()


def test_an_unknown_tenant_is_a_clear_error_everywhere(demo_engine, demo_store):
    calls = [
        lambda: dailyreport.build(demo_engine, DAY, tenant="nope"),
        lambda: dailyreport.summary_text(demo_engine, DAY, tenant="nope"),
        lambda: problemcalls.find(demo_engine, FIRST, LAST, tenant="nope"),
        lambda: cost.cost_summary(demo_engine, FIRST, LAST, tenant="nope"),
        lambda: cost.cost_report(demo_engine, ("2026-11-15", "2026-11-19"), (FIRST, LAST), tenant="nope"),
        lambda: costview.daily(demo_engine, date(2026, 11, 20), DAY, "Europe/Kyiv", tenant="nope"),
        lambda: levers.prompt_length_by_version(demo_engine, FIRST, LAST, tenant="nope"),
        lambda: explore.funnel(demo_engine, FIRST, LAST, tenant="nope"),
        lambda: cca.compare((FIRST, FIRST), (LAST, LAST), tenant="nope"),
        lambda: cca.latencies("response", FIRST, LAST, tenant="nope"),
        lambda: cca.search("шини", FIRST, LAST, tenant="nope"),
        lambda: cca.lake("/nonexistent", tenant="nope"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument, match="unknown tenant 'nope': the database has prokoleso, shinservice"):
            call()


def test_problem_calls_of_a_tenant(demo_engine):
    every = problemcalls.find(demo_engine, FIRST, LAST)
    assert {p["tenant"] for p in every} == set(TENANTS)
    for t in TENANTS:
        mine = problemcalls.find(demo_engine, FIRST, LAST, tenant=t)
        assert mine == [p for p in every if p["tenant"] == t]
        assert {p["call_id"] for p in mine} <= _calls(demo_engine, t)
        patterns = problemcalls.patterns(mine)
        assert sum(p.calls for p in patterns) == len(mine)
    both = problemcalls.find(demo_engine, FIRST, LAST, tenant=list(TENANTS))
    assert both == every  # both tenants are every call (the demo has no call without a tenant)


def test_cost_of_a_tenant(demo_engine):
    every = cost.cost_summary(demo_engine, FIRST, LAST)
    parts = {t: cost.cost_summary(demo_engine, FIRST, LAST, tenant=t) for t in TENANTS}
    with demo_engine.connect() as conn:
        for t, s in parts.items():
            row = conn.execute(
                sa.text(
                    "SELECT count(*), count(total_cost_usd), coalesce(sum(total_cost_usd), 0)::float8 "
                    f"FROM cca_calls c WHERE {KYIV_DAYS} AND c.tenant = :t"
                ),
                {"a": date.fromisoformat(FIRST), "b": DAY, "t": t},
            ).one()
            assert (s["calls"], s["priced_calls"]) == (row[0], row[1])
            assert s["total_cost_usd"] == pytest.approx(row[2], abs=1e-6)
            assert s["cost_per_call_usd"] == pytest.approx(row[2] / row[1], abs=1e-6)
            assert sum(r["calls"] for r in s["by_scenario"]) == row[0]
    assert sum(s["calls"] for s in parts.values()) == every["calls"]
    assert sum(s["total_cost_usd"] for s in parts.values()) == pytest.approx(every["total_cost_usd"])
    assert every["period"]["tenants"] is None and every["fixed_cost_unallocated_usd"] is not None
    # baseline vs now over the tenant's calls in both periods
    report = cost.cost_report(demo_engine, "2026-11-15:2026-11-19", (FIRST, LAST), tenant="prokoleso")
    assert report["tenants"] == ["prokoleso"] and report["current"]["period"]["tenants"] == ["prokoleso"]
    assert report["current"]["calls"] == parts["prokoleso"]["calls"]
    assert report["current"]["total_cost_usd"] == parts["prokoleso"]["total_cost_usd"]
    assert (
        report["baseline"]["calls"]
        == cost.cost_summary(demo_engine, "2026-11-15", "2026-11-19", tenant="prokoleso")["calls"]
    )
    # the cost review's views
    days = {t: costview.daily(demo_engine, date(2026, 11, 20), DAY, "Europe/Kyiv", tenant=t) for t in TENANTS}
    all_days = costview.daily(demo_engine, date(2026, 11, 20), DAY, "Europe/Kyiv")
    assert [sum(d[i]["calls"] for d in days.values()) for i in range(len(all_days))] == [d["calls"] for d in all_days]
    assert costview.heading(date(2026, 11, 20), DAY, "«ПроКолесо»") == (
        "Обзор стоимости звонков — «ПроКолесо» — 20.11.2026 … 24.11.2026"
    )
    assert costview.heading(date(2026, 11, 20), DAY, "все сети") == "Обзор стоимости звонков — 20.11.2026 … 24.11.2026"


def test_cost_levers_of_a_tenant(demo_engine):
    versions = {t: levers.prompt_length_by_version(demo_engine, FIRST, LAST, tenant=t) for t in TENANTS}
    every = levers.prompt_length_by_version(demo_engine, FIRST, LAST)
    assert sum(v.calls for vs in versions.values() for v in vs) == sum(v.calls for v in every)
    whisper = {t: levers.whisper_break_even(demo_engine, FIRST, LAST, tenant=t) for t in TENANTS}
    assert sum(w.calls for w in whisper.values()) == levers.whisper_break_even(demo_engine, FIRST, LAST).calls
    cache = ttscache.tts_cache_from_logs(demo_engine, FIRST, LAST, tenant="prokoleso")
    mine = _calls(demo_engine, "prokoleso")
    bot_turns = Store(demo_engine).turns(FIRST, LAST, speaker="bot")
    assert cache.utterances == bot_turns.filter(pl.col("call_id").is_in(list(mine))).height


def test_exploration_queries_of_a_tenant(demo_engine):
    for t in TENANTS:
        total = metrics.summary(demo_engine, FIRST, LAST, tenant=t)
        funnel = explore.funnel(demo_engine, FIRST, LAST, tenant=t)
        assert funnel["calls"].sum() == total.total_calls and funnel["transferred"].sum() == total.transferred
        assert explore.transfers(demo_engine, FIRST, LAST, tenant=t)["transfers"].sum() == total.transferred
        assert explore.repeat_callers(demo_engine, FIRST, LAST, tenant=t)["calls"].sum() == total.total_calls
        mine = _calls(demo_engine, t)
        slow = explore.slowest_calls(demo_engine, FIRST, LAST, n=50, tenant=t)
        assert set(slow["call_id"]) <= mine
        per_customer = explore.calls_per_customer(demo_engine, FIRST, LAST, tenant=t)
        with_customer = _calls(demo_engine, t, where="c.customer_id IS NOT NULL")
        assert (per_customer["calls_in_period"] * per_customer["customers"]).sum() == len(with_customer)
    by_hour = {t: explore.latency_by_hour(demo_engine, FIRST, LAST, tenant=t)["replies"].sum() for t in TENANTS}
    assert sum(by_hour.values()) == explore.latency_by_hour(demo_engine, FIRST, LAST)["replies"].sum()
    bot_words = {t: explore.last_bot_turns(demo_engine, FIRST, LAST, n=1000, tenant=t) for t in TENANTS}
    every = explore.last_bot_turns(demo_engine, FIRST, LAST, n=1000)
    assert sum(f["transfers"].sum() for f in bot_words.values()) == every["transfers"].sum()
    version = explore.latency_by_version(demo_engine, FIRST, LAST, tenant="prokoleso")
    assert set(version["component"]) == {"stt", "llm", "tts", "response"}


def test_workbench_of_a_tenant(demo_store):
    engine = demo_store.engine
    assert cca.list_tenants().to_dicts() == [
        {"slug": "prokoleso", "name": "ПроКолесо", "is_active": True},
        {"slug": "shinservice", "name": "Шинсервіс", "is_active": True},
    ]
    a, b = ("2026-11-15", "2026-11-19"), (FIRST, LAST)
    frame = cca.compare(a, b, tenant="prokoleso")
    calls = frame.filter(pl.col("metric") == "total_calls").row(0, named=True)
    assert (calls["a"], calls["b"]) == (
        metrics.summary(engine, *a, tenant="prokoleso").total_calls,
        metrics.summary(engine, *b, tenant="prokoleso").total_calls,
    )
    mix = {t: cca.compare_scenarios(a, b, tenant=t) for t in TENANTS}
    assert sum(m["calls_b"].sum() for m in mix.values()) == cca.compare_scenarios(a, b)["calls_b"].sum()
    lengths = {t: len(cca.latencies("response", FIRST, LAST, tenant=t)) for t in TENANTS}
    assert sum(lengths.values()) == len(cca.latencies("response", FIRST, LAST)) and all(lengths.values())
    found = cca.search("шини", FIRST, LAST, limit=10_000, tenant="prokoleso")
    assert found.height and set(found["tenant"]) == {"prokoleso"}
    assert set(found["call_id"]) <= _calls(engine, "prokoleso")
    every = cca.search("шини", FIRST, LAST, limit=10_000)
    assert found.height == every.filter(pl.col("tenant") == "prokoleso").height
    for chart in (
        cca.plot_calls_by_hour(FIRST, LAST, tenant="prokoleso"),
        cca.plot_scenario_mix(FIRST, LAST, tenant="prokoleso"),
        cca.plot_latency("response", FIRST, LAST, tenant="prokoleso"),
        cca.plot_quality(FIRST, LAST, tenant="prokoleso"),
        cca.plot_cost_trend(FIRST, LAST, tenant="prokoleso"),
    ):
        assert chart.png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_lake_reader_of_a_tenant(demo_store, demo_url, tmp_path):
    from ccanalytics.datalake import export as datalake

    engine = demo_store.engine
    datalake.export_range(engine, "2026-11-23", DEMO_END, tmp_path)
    every = cca.lake(tmp_path)
    lakes = {t: cca.lake(tmp_path, tenant=t) for t in TENANTS}
    for t, lake in lakes.items():
        mine = _calls(engine, t, "2026-11-23", DEMO_END)
        ids = lake.sql("SELECT id FROM calls")["id"].to_list()
        assert sorted(ids) == sorted(mine)
        turns = lake.sql("SELECT DISTINCT call_id FROM turns")["call_id"].to_list()
        assert turns and set(turns) <= mine
        scores = lake.sql("SELECT call_id FROM scores")["call_id"].to_list()
        assert set(scores) <= mine
        loaded = lake.load("calls", "2026-11-23", DEMO_END, columns=["id", "scenario"])
        assert loaded.columns == ["id", "scenario"] and sorted(loaded["id"]) == sorted(mine)
        tools = lake.load("tool_calls", "2026-11-24", DEMO_END)
        assert set(tools["call_id"]) <= mine
        with lake.duckdb() as con:
            assert con.execute("SELECT count(DISTINCT tenant) FROM calls").fetchone()[0] == 1
    for table in ("calls", "turns", "tool_calls", "scores"):
        n = {t: lake.sql(f"SELECT count(*) AS n FROM {table}")["n"][0] for t, lake in lakes.items()}
        assert sum(n.values()) == every.sql(f"SELECT count(*) AS n FROM {table}")["n"][0], table
    with pytest.raises(InvalidArgument, match="unknown column"):
        lakes["prokoleso"].load("calls", columns=["nope"])
    # the command line: --tenant scopes the views; an unknown slug is one line
    env = {"CCA_DATABASE_URL": demo_url, "CCA_LAKE_DIR": str(tmp_path)}
    res = CliRunner().invoke(
        main, ["lake", "query", "SELECT count(*) AS n FROM calls", "--json", "--tenant", "prokoleso"], env=env
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [{"n": len(_calls(engine, "prokoleso", "2026-11-23", DEMO_END))}]
    res = CliRunner().invoke(main, ["lake", "query", "SELECT 1", "--tenant", "nope"], env=env)
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        "Error: unknown tenant 'nope': the database has prokoleso, shinservice"
    ]


def test_list_and_figure_commands_take_a_tenant(demo_url, demo_engine, tmp_path):
    env = {"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)}
    runner = CliRunner()
    res = runner.invoke(main, ["quality", "report", "--from", FIRST, "--to", LAST, "--tenant", "prokoleso"], env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)["data"]
    assert data["period"]["tenants"] == ["prokoleso"] and data["total_calls"] == len(_calls(demo_engine, "prokoleso"))
    res = runner.invoke(
        main,
        [
            "cost",
            "report",
            "--baseline",
            "2026-11-15:2026-11-19",
            "--current",
            f"{FIRST}:{LAST}",
            "--tenant",
            "prokoleso",
            "--json",
        ],
        env=env,
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)["data"]
    assert report["tenants"] == ["prokoleso"] and report["current"]["calls"] == len(_calls(demo_engine, "prokoleso"))
    res = runner.invoke(
        main, ["cost", "prompts", "--from", FIRST, "--to", LAST, "--tenant", "shinservice", "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    assert sum(r["calls"] for r in json.loads(res.output)["data"]) == len(_calls(demo_engine, "shinservice"))
    res = runner.invoke(
        main, ["cost", "whisper", "--from", FIRST, "--to", LAST, "--tenant", "shinservice", "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["data"]["calls"] == len(_calls(demo_engine, "shinservice"))
    for args in (
        ["quality", "report", "--tenant", "nope"],
        ["cost", "report", "--tenant", "nope"],
        ["cost", "whisper", "--tenant", "nope"],
        ["cost", "tts-cache", "--tenant", "nope"],
        ["cost", "prompts", "--tenant", "nope"],
        ["report", "daily", "--date", DEMO_END, "--tenant", "nope"],
        ["report", "problems", "--tenant", "nope"],
        ["report", "cost", "--tenant", "nope"],
    ):
        res = runner.invoke(main, args, env=env)
        assert res.exit_code == 1, (args, res.output)
        assert res.output.strip().splitlines() == [
            "Error: unknown tenant 'nope': the database has prokoleso, shinservice"
        ], args
    assert not any(tmp_path.iterdir())  # nothing rendered


# ------------------------------------------------------------------------------------ rendered reports
def _ids_in(html: str, ids: set[str]) -> set[str]:
    return {i for i in ids if i in html}


def test_a_tenants_rendered_reports_hold_only_its_calls_and_each_scope_is_delivered_once(
    demo_url, demo_engine, tmp_path
):
    from fakechannels import FakeTelegram, channel_settings

    from ccanalytics.core.config import Settings
    from ccanalytics.reports import run as reporting

    every_day = _calls(demo_engine, None, "2026-11-15", DEMO_END)
    theirs = _calls(demo_engine, "shinservice", "2026-11-15", DEMO_END)
    with FakeTelegram() as tg:
        settings = Settings(
            database_url=demo_url,
            reports_dir=tmp_path,
            admin_base_url="https://admin.shop.example",
            **channel_settings(tg),
        )
        mine = reporting.run(demo_engine, settings, "daily", day=DAY, tenant="prokoleso", send=["telegram"])
        assert mine.delivery == {"telegram": "sent"} and mine.tenants == ("prokoleso",)
        assert mine.rendered.html_path == tmp_path / "daily" / f"{DEMO_END}_prokoleso.html"
        assert mine.subject == "Ежедневный отчёт колл-центра за 24.11.2026 — «ПроКолесо»"
        html = mine.rendered.html_path.read_text(encoding="utf-8")
        assert "Ежедневный отчёт колл-центра — «ПроКолесо» — 24.11.2026" in html and "Сети: «ПроКолесо»." in html
        assert "A/B-тесты и промпты общие для всех сетей" in html
        worst = dailyreport.build(demo_engine, DAY, tenant="prokoleso").worst_calls
        assert f"/calls/{worst[0]['call_id']}" in html  # the tenant's worst call is linked …
        assert not _ids_in(html, theirs)  # … and no call of the other tenant is in the report
        n = metrics.summary(demo_engine, DAY, DAY, tenant="prokoleso").total_calls
        assert f"Коротко: звонков: {n};" in mine.summary
        # the report of every tenant on the same day is another report, delivered on its own
        every = reporting.run(demo_engine, settings, "daily", day=DAY, send=["telegram"])
        assert every.delivery == {"telegram": "sent"} and every.tenants is None
        assert every.rendered.html_path == tmp_path / "daily" / f"{DEMO_END}.html"
        assert [d.files["document"][0] for d in tg.sent("sendDocument")] == [
            f"daily-{DEMO_END}_prokoleso.html",
            f"daily-{DEMO_END}.html",
        ]
        assert [m.payload["text"].splitlines()[0] for m in tg.sent("sendMessage")] == [
            "Ежедневный отчёт колл-центра за 24.11.2026 — «ПроКолесо»",
            "Ежедневный отчёт колл-центра за 24.11.2026",
        ]
        # running either again re-renders it in place and sends nothing
        for tenant in ("prokoleso", None):
            again = reporting.run(
                demo_engine, settings, "daily", day=DAY, tenant=tenant, send=["telegram"], skip_delivered=True
            )
            assert again.delivery == {"telegram": "already sent"}
        assert len(tg.sent("sendMessage")) == 2 and len(tg.sent("sendDocument")) == 2
        assert sorted(p.name for p in (tmp_path / "daily").glob("*.html")) == [
            f"{DEMO_END}.html",
            f"{DEMO_END}_prokoleso.html",
        ]
    # the problem-call procedure of a tenant: its calls only, its name in the header and the file name
    problems = reporting.run(
        demo_engine, settings, "problems", date_from=date(2026, 11, 18), date_to=DAY, tenant="prokoleso"
    )
    assert problems.rendered.name == f"2026-11-18_{DEMO_END}_prokoleso"
    html = problems.rendered.html_path.read_text(encoding="utf-8")
    assert "Разбор проблемных звонков — «ПроКолесо» — 18.11.2026 … 24.11.2026" in html
    assert "Сети: «ПроКолесо»." in html and "tenant=prokoleso" in html
    found = problemcalls.find(demo_engine, "2026-11-18", DEMO_END, tenant="prokoleso")
    assert f"Проблемных звонков: {len(found)} " in html
    assert _ids_in(html, every_day) and not _ids_in(html, theirs)  # transcripts of its own calls only
    with pytest.raises(InvalidArgument, match="A/B tests and prompts are shared by every tenant"):
        reporting.run(demo_engine, settings, "ab", tenant="prokoleso")


def test_the_cost_review_of_a_tenant_from_the_command_line(demo_url, demo_engine, tmp_path):
    env = {"CCA_DATABASE_URL": demo_url, "CCA_REPORTS_DIR": str(tmp_path)}
    args = ["report", "cost", "--from", FIRST, "--to", LAST, "--baseline", "2026-11-15:2026-11-19"]
    res = CliRunner().invoke(main, [*args, "--tenant", "shinservice", "--json"], env=env)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)["data"]
    assert data["tenants"] == ["shinservice"] and data["name"] == f"{FIRST}_{LAST}_shinservice"
    assert data["subject"] == "Обзор стоимости звонков за 20.11.2026 — 24.11.2026 — «Шинсервіс»"
    html = (tmp_path / "cost" / f"{FIRST}_{LAST}_shinservice.html").read_text(encoding="utf-8")
    assert "Обзор стоимости звонков — «Шинсервіс» — 20.11.2026 … 24.11.2026" in html
    assert "Маршрутизатор общий для всех сетей" in html and "Traceback" not in html
    summary = cost.cost_summary(demo_engine, FIRST, LAST, tenant="shinservice")
    assert f"Звонков: {summary['calls']}, " in html
