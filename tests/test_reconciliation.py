"""Reconciliation: every place a figure appears equals the figure recomputed directly from the calls,
with the catalogue's definitions (ccanalytics.core.definitions) and the same comparison windows.

Places: daily_stats, the library summary, the CLI (`stats summary`), the API summary, the daily
report's headline (and its comparison with a normal day), the admin dashboard's key numbers, the
notebook helper (`cca.compare`), the Parquet lake, and the Prometheus exporter (whole-database
totals, where its counters are comparable); the exporter's cost components add up to the total.
Days and periods are drawn at random (seeded) from the demo data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import DEMO_END
from test_auth import bearer, make_app
from test_exporter import scrape

from ccanalytics.analytics import metrics, workbench
from ccanalytics.analytics.store import Store
from ccanalytics.auth import users as auth
from ccanalytics.cli.root import main
from ccanalytics.core import definitions, timeutil
from ccanalytics.datalake import export as datalake
from ccanalytics.datalake import read as lakeread
from ccanalytics.ops import exporter
from ccanalytics.reports import daily as dailyreport
from ccanalytics.reports import dailyfacts

TZ = "Europe/Kyiv"
END = date.fromisoformat(DEMO_END)
DAYS = [END - timedelta(days=i) for i in range(10)]  # the demo template's days
RNG = random.Random(20261204)
SOME_DAYS = sorted(RNG.sample(DAYS[:3], 2))  # days whose comparison window lies inside the data
PERIODS = sorted({tuple(sorted(RNG.sample(DAYS, 2))) for _ in range(3)})


@dataclass(frozen=True)
class Truth:
    total_calls: int
    resolved_by_bot: int
    transferred: int
    avg_quality_score: float | None
    costed_calls: int
    total_cost_usd: float
    avg_cost_per_call_usd: float | None
    cost_per_resolved_call_usd: float | None
    response_p95_ms: float | None
    first_contact_resolution_pct: float | None

    @property
    def resolved_by_bot_pct(self) -> float | None:
        return round(100 * self.resolved_by_bot / self.total_calls, 2) if self.total_calls else None

    @property
    def transferred_to_operator_pct(self) -> float | None:
        return round(100 * self.transferred / self.total_calls, 2) if self.total_calls else None


def truth(engine, first: date, last: date, tenant: str | None = None) -> Truth:
    """The figures recomputed in Python from the raw rows of calls, call_scores, cca_call_costs and
    call_metrics; of one tenant's calls (its slug) or of every call."""
    start, end = timeutil.period_bounds(first, last, TZ)
    with engine.connect() as conn:
        everyone = conn.execute(
            sa.text(
                "SELECT c.id, c.started_at, c.customer_id, c.transferred_to_operator, t.slug AS tenant, "
                "CASE WHEN s.call_id IS NULL THEN c.quality_score ELSE s.overall_score END AS quality_score, "
                "CASE WHEN k.call_id IS NULL THEN c.total_cost_usd ELSE k.total_usd END AS total_cost_usd "
                "FROM calls c LEFT JOIN cca_call_costs k ON k.call_id = c.id AND k.started_at = c.started_at "
                "LEFT JOIN call_scores s ON s.call_id = c.id AND s.is_current LEFT JOIN tenants t ON t.id = c.tenant_id"
            )
        ).all()
        replies = (
            conn.execute(
                sa.text(
                    "SELECT x FROM call_metrics m JOIN calls c ON c.id = m.call_id "
                    "LEFT JOIN tenants t ON t.id = c.tenant_id, unnest(m.response_ms) x "
                    "WHERE c.started_at >= :s AND c.started_at < :e AND (CAST(:t AS text) IS NULL OR t.slug = :t)"
                ),
                {"s": start, "e": end, "t": tenant},
            )
            .scalars()
            .all()
        )
    calls = [c for c in everyone if start <= c.started_at < end and tenant in (None, c.tenant)]
    window = timedelta(days=definitions.FCR_WINDOW_DAYS)

    def called_again(c) -> bool:
        return c.customer_id is not None and any(
            o.customer_id == c.customer_id and c.started_at < o.started_at <= c.started_at + window for o in everyone
        )

    resolved = [c for c in calls if not c.transferred_to_operator]
    scored = [c.quality_score for c in calls if c.quality_score is not None]
    priced = [c for c in calls if c.total_cost_usd is not None]
    total = sum(c.total_cost_usd for c in priced)
    priced_resolved = [c for c in priced if not c.transferred_to_operator]
    fcr = sum(1 for c in resolved if not called_again(c))
    return Truth(
        total_calls=len(calls),
        resolved_by_bot=len(resolved),
        transferred=len(calls) - len(resolved),
        avg_quality_score=sum(scored) / len(scored) if scored else None,
        costed_calls=len(priced),
        total_cost_usd=total,
        avg_cost_per_call_usd=total / len(priced) if priced else None,
        cost_per_resolved_call_usd=total / len(priced_resolved) if priced_resolved else None,
        # PostgreSQL's percentile_cont is linear interpolation
        response_p95_ms=float(np.percentile(replies, 95, method="linear")) if replies else None,
        first_contact_resolution_pct=round(100 * fcr / len(calls), 2) if calls else None,
    )


def close(a, b, rel=1e-6, abs_=1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=rel, abs=abs_)


COMPARED = (
    "total_calls",
    "resolved_by_bot_pct",
    "transferred_to_operator_pct",
    "avg_quality_score",
    "avg_cost_per_call_usd",
    "cost_per_resolved_call_usd",
    "response_p95_ms",
    "first_contact_resolution_pct",
)


def assert_matches(where: str, values: dict, t: Truth, keys=COMPARED) -> None:
    for key in keys:
        expected = getattr(t, key)
        got = values[key]
        # shown to 2 decimals (percent), 1 (milliseconds), 4 (quality), 6 (dollars)
        tolerance = (
            0.0051 if key.endswith("_pct") else 0.051 if key.endswith("_ms") else 5.1e-5 if "quality" in key else 1e-6
        )
        assert close(got, expected, rel=0, abs_=tolerance), f"{where}: {key} = {got}, recomputed {expected}"


@pytest.fixture
def demo(demo_engine):
    metrics.compute_daily_stats(demo_engine, DAYS[-1], END, tz=TZ, incremental=False)
    return demo_engine


def test_every_place_shows_the_figures_recomputed_from_the_calls(demo, demo_url, tmp_path):
    periods = [(d, d) for d in SOME_DAYS] + list(PERIODS)
    truths = {p: truth(demo, *p) for p in periods}
    assert all(t.total_calls for t in truths.values())

    # the library summary (API, CLI, reports and notebooks are built on it)
    for p, t in truths.items():
        assert_matches(f"summary {p}", metrics.summary(demo, *p, tz=TZ).to_dict(), t)

    # daily_stats, one row per day
    with demo.connect() as conn:
        rows = {r.stat_date: r for r in conn.execute(sa.text("SELECT * FROM cca_daily_stats"))}
    for d in DAYS:
        r, t = rows[d], truth(demo, d, d)
        stored = {
            "total_calls": r.total_calls,
            "resolved_by_bot_pct": definitions.rate_pct(r.resolved_by_bot, r.total_calls),
            "transferred_to_operator_pct": definitions.rate_pct(r.transferred, r.total_calls),
            "avg_quality_score": r.avg_quality_score,
            "avg_cost_per_call_usd": definitions.cost_per_call(r.total_cost_usd, r.costed_calls),
            "response_p95_ms": r.response_p95_ms,
            "first_contact_resolution_pct": definitions.rate_pct(r.first_contact_resolved, r.total_calls),
        }
        assert_matches(f"daily_stats {d}", stored, t, keys=tuple(stored))

    # the CLI and the API: one summary per day
    runner = CliRunner()
    app = make_app(demo)
    client = app.test_client()
    token = bearer(auth.create_token(demo, "analyst", "reconciliation"))
    for d in SOME_DAYS:
        t = truths[(d, d)]
        res = runner.invoke(
            main,
            ["stats", "summary", "--period", "day", "--from", d.isoformat(), "--to", d.isoformat()],
            env={"CCA_DATABASE_URL": demo_url},
        )
        assert res.exit_code == 0, res.output
        assert_matches(f"CLI {d}", json.loads(res.stdout)["data"][0], t)
        api = client.get(f"/api/v1/analytics/summary?period=day&date_from={d}&date_to={d}", headers=token)
        assert api.status_code == 200, api.get_data(as_text=True)
        assert_matches(f"API {d}", api.get_json()["data"][0], t)

    # the daily report's headline, the dashboard's key numbers: the day, and a normal day = the
    # catalogue's comparison window (the days before the day), the same in both
    for d in SOME_DAYS:
        t, window = truths[(d, d)], definitions.comparison_window(d)
        normal = truth(demo, *window)
        report = dailyreport.build(demo, d, tz=TZ, run_checks=False)
        shown = {h.key: h.value for h in report.headline}
        assert_matches(f"report headline {d}", shown, t, keys=tuple(k for k in COMPARED if k in shown))
        reference = {h.key: h.week for h in report.headline}
        expected_calls = normal.total_calls / definitions.COMPARISON_DAYS
        assert reference["total_calls"] == pytest.approx(expected_calls)
        assert_matches(f"report normal day {d}", reference, normal, keys=tuple(k for k in COMPARED[1:] if k in shown))
        dash = {r["key"]: r for r in dailyreport.day_against_normal(demo, d, tz=TZ)}
        assert {k: r["value"] for k, r in dash.items()} == shown, "dashboard and report differ"
        assert {k: r["reference"] for k, r in dash.items()} == reference, "dashboard and report compare differently"

    # the admin dashboard page shows those numbers
    auth.add_user(demo, "olga", "a-long-password-1", "analyst")
    web = app.test_client()
    web.get("/login")
    with web.session_transaction() as s:
        csrf = s.get("csrf")
    web.post("/login", data={"username": "olga", "password": "a-long-password-1", "csrf_token": csrf})
    d = SOME_DAYS[0]
    page = web.get(f"/dashboard?day={d}").get_data(as_text=True)
    for r in dailyreport.day_against_normal(demo, d, tz=TZ):
        assert r["day"].replace("\u00a0", " ") in page.replace("\u00a0", " ").replace("&nbsp;", " "), r

    # the notebook helper
    store = Store(demo, tz=TZ)
    for (a, b), t in list(truths.items())[:2]:
        frame = workbench.compare((a, b), (a, b), store=store)
        values = dict(zip(frame["metric"].to_list(), frame["a"].to_list(), strict=True))
        values["total_calls"] = int(values["total_calls"])
        assert_matches(f"cca.compare {a}…{b}", values, t)

    # the lake
    datalake.export_range(demo, DAYS[-1], END, tmp_path / "lake", TZ)
    for row in lakeread.daily_figures(tmp_path / "lake", DAYS[-1], END, tz=TZ):
        t = truth(demo, row["day"], row["day"])
        keys = (
            "total_calls",
            "resolved_by_bot_pct",
            "transferred_to_operator_pct",
            "avg_quality_score",
            "avg_cost_per_call_usd",
            "cost_per_resolved_call_usd",
        )
        assert_matches(f"lake {row['day']}", row, t, keys=keys)


def stored_figures(r) -> dict:
    """The compared figures of a daily_stats row (cca_daily_stats, cca_daily_stats_tenants)."""
    return {
        "total_calls": r.total_calls,
        "resolved_by_bot_pct": definitions.rate_pct(r.resolved_by_bot, r.total_calls),
        "transferred_to_operator_pct": definitions.rate_pct(r.transferred, r.total_calls),
        "avg_quality_score": r.avg_quality_score,
        "avg_cost_per_call_usd": definitions.cost_per_call(r.total_cost_usd, r.costed_calls),
        "response_p95_ms": r.response_p95_ms,
        "first_contact_resolution_pct": definitions.rate_pct(r.first_contact_resolved, r.total_calls),
    }


def test_each_tenants_daily_row_equals_its_summary_and_all_equals_the_whole(demo):
    """Per tenant: its row of each day (cca_daily_stats_by_tenant) shows what metrics.summary(tenant=) and
    the calls recomputed directly show for that tenant's calls only; the row over every tenant shows the
    whole. Unique callers too (a number that called both tenants is a customer of each)."""
    with demo.connect() as conn:
        slugs = conn.execute(sa.text("SELECT slug FROM tenants ORDER BY slug")).scalars().all()
        rows = {(r.stat_date, r.tenant): r for r in conn.execute(sa.text("SELECT * FROM cca_daily_stats_by_tenant"))}
    assert slugs == ["prokoleso", "shinservice"]
    for d in DAYS:
        totals = []
        for slug in [*slugs, None]:
            r = rows[(d, slug or metrics.ALL_TENANTS)]
            s = metrics.summary(demo, d, d, tz=TZ, tenant=slug).to_dict()
            stored = stored_figures(r)
            assert_matches(f"daily_stats {d} {slug}", stored, truth(demo, d, d, slug), keys=tuple(stored))
            assert_matches(f"summary {d} {slug}", s, truth(demo, d, d, slug), keys=tuple(stored))
            for key, value in stored.items():  # the summary is rounded as shown (2 decimals %, 1 ms, 4 quality)
                tolerance = 0.0051 if key.endswith("_pct") else 0.051 if key.endswith("_ms") else 5.1e-5
                assert close(value, s[key], rel=0, abs_=tolerance), (d, slug, key, value, s[key])
            assert r.unique_callers == s["customers"], (d, slug)
            totals.append(r.total_calls)
        assert totals[0] and totals[1] and totals[0] + totals[1] == totals[2], (d, totals)
        # the tenants' percentiles are their own: not the day's, and not an average of theirs
        ps = [rows[(d, t)].response_p95_ms for t in [*slugs, metrics.ALL_TENANTS]]
        assert len(set(ps)) == 3, (d, ps)


GRAFANA_PANELS = {  # panel title of grafana/dashboards/cca-analytics.json -> (column, figure, scale)
    "Средняя стоимость звонка по дням": ("$ за звонок", "avg_cost_per_call_usd", 1.0),
    "Качество по дням": ("средняя оценка", "avg_quality_score", 1.0),
    "Бот / оператор, % по дням": ("бот, %", "resolved_by_bot_pct", 1.0),
    "Задержка ответа по дням (p50, p95)": ("p95", "response_p95_ms", 1000.0),
    "Решение с первого обращения и повторные звонки, %": ("FCR, %", "first_contact_resolution_pct", 1.0),
}


def test_grafana_panels_show_the_recomputed_figures(demo):
    from pathlib import Path

    from ccanalytics.ops import dashcheck, dashqueries

    board = Path(__file__).parent.parent / "grafana" / "dashboards" / "cca-analytics.json"
    queries = {
        q.origin.split(" / ", 1)[1].rsplit(" / ", 1)[0]: q.text
        for q in dashqueries.dashboard_queries([board])
        if q.kind == "sql"
    }
    missing = set(GRAFANA_PANELS) - set(queries)
    assert not missing, f"panels renamed? {missing}; panels: {sorted(queries)}"
    # the tenant variable («Сеть»): «Все сети» and each tenant, as its query lists them
    variable = next(q for q in dashqueries.dashboard_queries([board]) if q.role == "variable")
    with demo.connect() as conn:
        options = conn.connection.driver_connection.execute(variable.text).fetchall()
    assert options == [("*", "Все сети"), ("prokoleso", "ПроКолесо"), ("shinservice", "Шинсервіс")]
    for value, _text in options:
        queries = {
            q.origin.split(" / ", 1)[1].rsplit(" / ", 1)[0]: q.text
            for q in dashqueries.dashboard_queries([board], {"tenant": value})
            if q.kind == "sql"
        }
        for d in SOME_DAYS:
            t = truth(demo, d, d, None if value == metrics.ALL_TENANTS else value)
            start, end = timeutil.period_bounds(d, d, TZ)
            for title, (column, key, scale) in GRAFANA_PANELS.items():
                sql = dashcheck.expand_sql_macros(queries[title], start, end - timedelta(seconds=1))
                with demo.connect() as conn:  # Grafana SQL is not a DB-API template: the driver's own execute
                    cur = conn.connection.driver_connection.execute(sql)
                    names = [c.name for c in cur.description]
                    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
                of_day = [r[column] for r in rows if r["time"].date() == d]
                assert len(of_day) == 1, (title, value, d, rows)  # one scope's row, not the tenants' and all's
                value_shown = of_day[0]
                expected = getattr(t, key)
                # the panels round percentages to one decimal
                tolerance = 0.051 if key.endswith("_pct") or key.endswith("_ms") else 1e-6
                assert close(float(value_shown) * scale, expected, rel=0, abs_=tolerance), (
                    title,
                    value,
                    d,
                    value_shown,
                    expected,
                )
        # the A/B panel counts the tenant's calls of the running test only
        start, end = timeutil.period_bounds(DAYS[-1], END, TZ)
        sql = dashcheck.expand_sql_macros(queries["A/B-тесты: сравнение вариантов за период"], start, end)
        with demo.connect() as conn:
            shown = sum(r[2] for r in conn.connection.driver_connection.execute(sql).fetchall())
            expected = conn.execute(
                sa.text(
                    "SELECT count(*) FROM cca_calls c WHERE c.ab_test_id IS NOT NULL AND c.started_at >= :s "
                    "AND c.started_at <= :e AND (:t = '*' OR c.tenant = :t)"
                ),
                {"s": start, "e": end, "t": value},
            ).scalar_one()
        assert shown == expected and shown > 0, (value, shown, expected)


def test_the_exporter_counts_the_calls_and_its_cost_components_add_up(demo):
    registry = exporter.make_registry(demo, lag_seconds=0, derive=False)
    samples = scrape(registry)
    with demo.connect() as conn:
        counted = conn.execute(
            sa.text(
                "SELECT count(*), count(*) FILTER (WHERE c.transferred_to_operator), coalesce(sum(c.total_cost_usd), 0) "
                "FROM cca_calls c JOIN call_metrics m ON m.call_id = c.id AND m.started_at = c.started_at"
            )
        ).one()
    calls = sum(v for (name, _), v in samples.items() if name == "cca_calls_total")
    transferred = sum(
        v for (name, labels), v in samples.items() if name == "cca_calls_total" and ("outcome", "operator") in labels
    )
    spend: dict[str, float] = {}
    for (name, labels), v in samples.items():
        if name == "cca_cost_usd_total":  # one series per tenant and component
            component = dict(labels)["component"]
            spend[component] = spend.get(component, 0.0) + v
    assert {dict(labels)["tenant"] for (name, labels) in samples if name == "cca_calls_total"} == {
        "shinservice",
        "prokoleso",
    }
    assert (calls, transferred) == (counted[0], counted[1])
    assert set(spend) <= set(definitions.PRICED_COMPONENTS), spend  # nothing counted twice as "other"
    assert sum(spend.values()) == pytest.approx(counted[2], rel=1e-6)


def test_thresholds_are_the_catalogues_in_prometheus_rules_and_alerts():
    """The Prometheus rules (a YAML file of their own) use the catalogue's latency thresholds."""
    from pathlib import Path

    import yaml

    from ccanalytics.alerts.rulemodel import Thresholds

    rules = yaml.safe_load((Path(__file__).parent.parent / "prometheus" / "alerts.yml").read_text())
    exprs = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    warning_s = definitions.RESPONSE_ALERT_MS / 1000
    critical_s = definitions.RESPONSE_CRITICAL_MS / 1000
    assert any(f"> {critical_s:g}" in e and "response_latency" in e for e in exprs.values()), exprs
    assert any(f"> {warning_s:g}" in e and "response_latency" in e for e in exprs.values()), exprs
    for component in ("stt", "tts"):
        limit = definitions.LATENCY_ALERT_MS[component] / 1000
        assert any(f"{component}_latency" in e and f"> {limit:g}" in e for e in exprs.values()), component
    assert Thresholds().latency_p95_s == critical_s
    assert Thresholds().scenario_transfer_rate == definitions.SCENARIO_TRANSFER_RATE
    assert dailyfacts.LATENCY_BUDGETS["response"] == (definitions.RESPONSE_BUDGET_MS, definitions.RESPONSE_ALERT_MS)
