"""The analyst workbench: cca.show_call / search / compare / lake / plot_* on the demo data, the
exploration queries, and every exploratory notebook executed (papermill) on the demo data and on an
empty period."""

from __future__ import annotations

from datetime import date

import nbformat
import papermill
import polars as pl
import pytest
import sqlalchemy as sa
from conftest import DEMO_END

import ccanalytics as cca
from ccanalytics.analytics import explore, metrics
from ccanalytics.analytics.store import Store
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.reports import render as reports
from ccanalytics.reports.charts import Chart

pytestmark = pytest.mark.xdist_group("reports")

FIRST, LAST = "2026-11-18", DEMO_END


@pytest.fixture
def demo_store(demo_engine):
    store = Store(demo_engine)
    cca.default_store(store)
    yield store
    import ccanalytics.analytics.workbench as wb

    wb._default = None


def test_search_finds_calls_by_transcript_words(demo_store):
    found = cca.search("шини", FIRST, LAST, limit=30)
    assert 0 < found.height <= 30
    assert {"call_id", "started_at", "scenario", "quality_score", "snippet"} <= set(found.columns)
    assert all("шин" in s.lower() for s in found["snippet"])  # the matching turn, word forms included
    with demo_store.engine.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT count(DISTINCT c.id) FROM cca_calls c JOIN call_turns t ON t.call_id = c.id "
                "WHERE cca_search_vector(t.content) @@ cca_search_query('оператор') AND c.transferred_to_operator "
                "AND (c.started_at AT TIME ZONE 'Europe/Kyiv')::date BETWEEN :a AND :b"
            ),
            {"a": date.fromisoformat(FIRST), "b": date.fromisoformat(LAST)},
        ).scalar_one()
    assert cca.search("оператор", FIRST, LAST, limit=10_000, transferred=True).height == expected
    with pytest.raises(InvalidArgument):
        cca.search("  ")


def test_compare_two_periods_uses_weighted_summaries(demo_store):
    a, b = ("2026-11-15", "2026-11-19"), ("2026-11-20", DEMO_END)
    frame = cca.compare(a, b)
    row = frame.filter(pl.col("metric") == "resolved_by_bot_pct").row(0, named=True)
    sa_, sb = metrics.summary(demo_store.engine, *a), metrics.summary(demo_store.engine, *b)
    assert (row["a"], row["b"]) == (sa_.resolved_by_bot_pct, sb.resolved_by_bot_pct)
    assert row["change"] == pytest.approx(sb.resolved_by_bot_pct - sa_.resolved_by_bot_pct)
    calls = frame.filter(pl.col("metric") == "total_calls").row(0, named=True)
    assert calls["change_pct"] == pytest.approx(100 * (sb.total_calls - sa_.total_calls) / sa_.total_calls)
    mix = cca.compare_scenarios(a, b)
    assert mix["calls_b"].sum() == sb.total_calls and mix["share_b"].sum() == pytest.approx(100.0)


def test_show_call_and_standard_charts(demo_store):
    call_id = demo_store.calls(LAST, LAST, limit=1)["id"][0]
    html = cca.show_call(call_id)._repr_html_()
    assert "Клиент" in html and "Бот" in html and "Качество" in html
    for chart in (
        cca.plot_calls_by_hour(FIRST, LAST),
        cca.plot_scenario_mix(FIRST, LAST),
        cca.plot_latency("response", FIRST, LAST),
        cca.plot_quality(FIRST, LAST),
        cca.plot_cost_trend(FIRST, LAST),
    ):
        assert isinstance(chart, Chart)
        assert chart.png()[:8] == b"\x89PNG\r\n\x1a\n"
        assert chart._repr_html_().startswith('<img alt="')
    assert len(cca.latencies("stt", LAST, LAST)) > 0
    with pytest.raises(InvalidArgument):
        cca.latencies("dns", LAST, LAST)


def test_funnel_and_transfers_add_up(demo_store):
    engine = demo_store.engine
    funnel = explore.funnel(engine, FIRST, LAST)
    total = metrics.summary(engine, FIRST, LAST)
    assert funnel["calls"].sum() == total.total_calls
    assert funnel["transferred"].sum() == total.transferred
    assert funnel["orders"].sum() == total.orders_created
    assert (funnel["used_tool"] >= funnel["found_answer"]).all() and (funnel["calls"] >= funnel["completed"]).all()
    transfers = explore.transfers(engine, FIRST, LAST)
    assert transfers["transfers"].sum() == total.transferred
    repeat = explore.repeat_callers(engine, FIRST, LAST)
    assert repeat["calls"].sum() == total.total_calls
    assert repeat["fcr"].sum() == pytest.approx(total.first_contact_resolution_pct * total.total_calls / 100, abs=1)
    latency = explore.latency_by_version(engine, FIRST, LAST)
    assert set(latency["component"]) == {"stt", "llm", "tts", "response"}
    assert (latency["p95_ms"] >= latency["p50_ms"]).all()


EXPLORE = ["explore_funnel", "explore_repeat_callers", "explore_latency", "explore_transfers"]


@pytest.mark.parametrize(
    ("period", "tenant"),
    [((FIRST, LAST), None), (("2020-01-01", "2020-01-07"), None), ((FIRST, LAST), "prokoleso")],
    ids=["demo", "empty", "one-tenant"],
)
def test_exploratory_notebooks_run_on_demo_data(demo_url, tmp_path, monkeypatch, period, tenant):
    monkeypatch.setenv("CCA_DATABASE_URL", demo_url)
    for name in EXPLORE:
        out = tmp_path / f"{name}.ipynb"
        papermill.execute_notebook(
            str(reports.notebooks_dir() / f"{name}.ipynb"),
            str(out),
            parameters={"date_from": period[0], "date_to": period[1], "tenant": tenant},
            kernel_name="python3",
            cwd=str(reports.notebooks_dir()),
            progress_bar=False,
        )
        nb = nbformat.read(out, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], name
        covered = "Сети: «ПроКолесо»." if tenant else "Сети: все сети."
        assert any(covered in "".join(o.get("text", "")) for o in outputs), name
        assert any("Период:" in "".join(o.get("text", "")) for o in outputs), name


def test_lake_from_the_workbench_matches_the_database(demo_store, tmp_path):
    from ccanalytics.datalake import export as datalake

    datalake.export_range(demo_store.engine, "2026-11-22", DEMO_END, tmp_path)
    lake = cca.lake(tmp_path)  # works whether or not ccanalytics.datalake.export was imported first
    assert lake.days() == [date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24)]
    per_day = lake.sql("SELECT date, count(*) AS calls FROM calls GROUP BY 1 ORDER BY 1")
    expected = [metrics.summary(demo_store.engine, d, d).total_calls for d in lake.days()]
    assert per_day["calls"].to_list() == expected
    calls = lake.load("calls", "2026-11-23", "2026-11-23", columns=["id", "scenario"])
    assert calls.height == expected[1] and calls.columns == ["id", "scenario"]
    with lake.duckdb() as con:
        assert con.execute("SELECT count(*) FROM turns").fetchone()[0] > 0


def test_exploratory_notebooks_pass_nbval(demo_url, tmp_path):
    """nbval (lax: no stored outputs to compare) runs every cell of the exploratory notebooks with
    their default parameters against the demo database: no cell may fail."""
    import os
    import subprocess
    import sys

    notebooks = [str(reports.notebooks_dir() / f"{name}.ipynb") for name in EXPLORE]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"--basetemp={tmp_path / 'nbval'}",
            "--rootdir",
            str(reports.notebooks_dir()),
            *notebooks,
        ],
        cwd=reports.notebooks_dir(),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CCA_DATABASE_URL": demo_url},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout
