"""daily_stats per tenant: each tenant that had calls on a day gets its own row (cca_daily_stats_tenants),
the row over every tenant (cca_daily_stats) stays the whole, and the incremental run keeps the tenants'
rows right — a re-delivered or scored call of one tenant, a customer's lookback, days computed before
the tenant rows existed. Plus `stats summary --tenant` and `stats daily` on the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from factories import add_tenant, make_call, turn

from ccanalytics.analytics import metrics
from ccanalytics.cli.root import main
from ccanalytics.ingest.load import ingest_records

DAY = date(2026, 11, 20)  # Kyiv is UTC+2 in November


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def replies(start: datetime, gaps_ms: list[int]) -> list[dict]:
    """A dialogue whose bot replies come ``gaps_ms`` after the customer stops speaking."""
    turns, t = [], start + timedelta(seconds=1)
    for gap in gaps_ms:
        turns.append(turn("customer", "Шини на Шкоду", t, duration_ms=2000, stt_latency_ms=200))
        t += timedelta(seconds=2, milliseconds=gap)
        turns.append(turn("bot", "Зараз підберу варіанти.", t, duration_ms=1500, llm_latency_ms=600))
        t += timedelta(seconds=2)
    return turns


def call(tenant: str, at: datetime, gaps: list[int], **fields) -> dict:
    return make_call(tenant=tenant, started_at=at, seconds=120, turns=replies(at, gaps), **fields)


def put(engine, *calls) -> None:
    result = ingest_records(engine, list(calls))
    assert result.rejected == 0, result.rejects


def rows(engine, day: date = DAY) -> dict[str, sa.Row]:
    """The day's rows by scope: '*' (every tenant) and each tenant's slug."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM cca_daily_stats_by_tenant WHERE stat_date = :d"), {"d": day})
        return {r.tenant: r for r in found}


def table_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT s.stat_date, t.slug FROM cca_daily_stats_tenants s LEFT JOIN tenants t ON t.id = s.tenant_id "
                "ORDER BY 1, 2"
            )
        ).all()


def age(engine, minutes: int = 60) -> None:
    """The days were computed ``minutes`` ago (past CHANGE_LAG)."""
    with engine.begin() as conn:
        for table in ("cca_daily_stats", "cca_daily_stats_tenants"):
            conn.execute(
                sa.text(f"UPDATE {table} SET computed_at = computed_at - :b"), {"b": timedelta(minutes=minutes)}
            )


@pytest.fixture
def tenants(engine):
    """The test database's tenant shop and two more: other (with calls) and quiet (without)."""
    with engine.begin() as conn:
        add_tenant(conn, "other", "Інша мережа")
        add_tenant(conn, "quiet", "Тиха мережа")
    return engine


def test_each_tenant_has_its_row_and_every_tenant_the_whole(tenants):
    engine = tenants
    with engine.begin() as conn:
        add_tenant(conn, "gone", "Закрита мережа")
    put(
        engine,
        # shop: two customers, one transferred
        call("shop", utc(2026, 11, 20, 9), [800, 1800], caller_id="+380671110001", scenario="tire_search"),
        call(
            "shop",
            utc(2026, 11, 20, 10),
            [400],
            caller_id="+380671110002",
            scenario="tire_search",
            transferred_to_operator=True,
            transfer_reason="cannot_help",
        ),
        # other: the first shop customer's number — another tenant's customer, not a repeat call
        call("other", utc(2026, 11, 20, 11), [3000, 3000, 200], caller_id="+380671110001", scenario="order_status"),
        # a tenant that will be deleted: its call then counts only over every tenant
        call("gone", utc(2026, 11, 20, 12), [5000], caller_id=None, scenario="order_status"),
    )
    run = metrics.compute_daily_stats(engine, DAY, DAY)
    assert run.days_computed == [DAY] and run.tenant_rows == 3
    assert sorted(rows(engine)) == ["*", "gone", "other", "shop"]  # quiet had no call: no row

    with engine.begin() as conn:  # the processor deletes a tenant: its calls keep no tenant
        conn.execute(sa.text("DELETE FROM tenants WHERE slug = 'gone'"))
    assert sorted(rows(engine)) == ["*", "other", "shop"]  # its stale row is not shown
    assert metrics.compute_daily_stats(engine, DAY, DAY).days_computed == []  # nothing the run can see
    assert metrics.compute_daily_stats(engine, DAY, DAY, incremental=False).tenant_rows == 2
    assert table_rows(engine) == [(DAY, "other"), (DAY, "shop")]  # and the recomputation removed it

    every, shop, other = (rows(engine)[k] for k in ("*", "shop", "other"))
    assert (shop.total_calls, shop.resolved_by_bot, shop.transferred) == (2, 1, 1)
    assert shop.scenario_breakdown == {"tire_search": 2} and shop.scenario_transfers == {"tire_search": 1}
    assert shop.transfer_reasons == {"cannot_help": 1} and shop.hourly_distribution == {"11": 1, "12": 1}
    assert (shop.unique_callers, shop.repeat_calls_7d, shop.first_contact_resolved) == (2, 0, 1)
    # replies 800, 1800, 400 → p50 800, p95 = 800 + 0.9 × 1000
    assert (shop.response_p50_ms, shop.response_p95_ms) == (800, pytest.approx(1700))
    assert (other.total_calls, other.transferred, other.unique_callers, other.first_contact_resolved) == (1, 0, 1, 1)
    assert other.scenario_breakdown == {"order_status": 1} and other.transfer_reasons == {}
    assert (other.response_p50_ms, other.response_p95_ms) == (3000, 3000)  # 200, 3000, 3000
    # every tenant: the four calls (the deleted tenant's too), percentiles over all seven replies
    # (200, 400, 800, 1800, 3000, 3000, 5000: p95 = 3000 + 0.7 × 2000), not from the tenants' rows
    assert (every.total_calls, every.transferred, every.unique_callers, every.first_contact_resolved) == (4, 1, 3, 3)
    assert every.scenario_breakdown == {"tire_search": 2, "order_status": 2}
    assert (every.response_p50_ms, every.response_p95_ms) == (1800, pytest.approx(4400))
    assert every.tenant_id is None and shop.tenant_id is not None
    with engine.connect() as conn:  # the view's row over every tenant is cca_daily_stats's
        whole = conn.execute(sa.text("SELECT * FROM cca_daily_stats WHERE stat_date = :d"), {"d": DAY}).one()
    assert whole._asdict() == {k: v for k, v in every._asdict().items() if k not in ("tenant", "tenant_id")}
    # additive figures of the tenants add up to the whole but for the deleted tenant's call
    assert shop.total_calls + other.total_calls == every.total_calls - 1
    assert shop.total_cost_usd + other.total_cost_usd < every.total_cost_usd
    # and the summary of each scope shows the same
    for slug, r in (("shop", shop), ("other", other), (None, every)):
        s = metrics.summary(engine, DAY, DAY, tenant=slug)
        assert (s.total_calls, s.transferred, s.customers) == (r.total_calls, r.transferred, r.unique_callers)
        assert s.response_p95_ms == round(r.response_p95_ms, 1)
        assert s.total_cost_usd == pytest.approx(r.total_cost_usd)


def test_a_change_to_one_tenants_call_recomputes_its_day_and_only_that_tenants_figures_move(tenants):
    engine = tenants
    a = call("shop", utc(2026, 11, 20, 9), [800], caller_id="+380671110001")
    b = call("other", utc(2026, 11, 20, 10), [900], caller_id="+380671110002")
    put(engine, a, b, call("other", utc(2026, 11, 19, 10), [700], caller_id="+380671110003"))
    first = metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY)
    assert first.days_computed == [DAY - timedelta(days=1), DAY] and first.tenant_rows == 3
    before = rows(engine)
    assert metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY).days_computed == []
    age(engine)

    # shop's call is delivered again, longer: its day is recomputed, shop's figures and fingerprint move
    longer = {**a, "duration_seconds": 300, "ended_at": (utc(2026, 11, 20, 9) + timedelta(seconds=300)).isoformat()}
    put(engine, longer)
    run = metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY)
    assert run.days_computed == [DAY] and run.tenant_rows == 2
    after = rows(engine)
    assert after["shop"].avg_duration_seconds == 300 and before["shop"].avg_duration_seconds == 120
    assert after["shop"].source_fingerprint != before["shop"].source_fingerprint
    assert after["*"].source_fingerprint != before["*"].source_fingerprint
    assert after["*"].avg_duration_seconds == pytest.approx((300 + 120) / 2)
    unchanged = ("source_fingerprint", "total_calls", "avg_duration_seconds", "response_p95_ms", "unique_callers")
    assert [getattr(after["other"], k) for k in unchanged] == [getattr(before["other"], k) for k in unchanged]
    age(engine)

    # other's call is scored: other's figures move, shop's stay
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE calls SET quality_score = 0.6 WHERE id = :id"), {"id": b["call_id"]})
    assert metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY).days_computed == [DAY]
    scored = rows(engine)
    assert scored["other"].avg_quality_score == pytest.approx(0.6) and scored["other"].scored_calls == 1
    assert scored["other"].source_fingerprint != after["other"].source_fingerprint
    assert scored["shop"].source_fingerprint == after["shop"].source_fingerprint
    assert scored["shop"].avg_quality_score is None


def test_the_lookback_follows_each_tenants_customers(tenants):
    """A customer is one tenant's: a number calling another tenant does not change the first tenant's
    first-contact resolution; calling the same tenant again does, on the earlier day's tenant row."""
    engine = tenants
    d1, d2 = DAY - timedelta(days=1), DAY
    put(engine, call("shop", utc(2026, 11, 19, 10), [800], caller_id="+380501112233"))
    assert metrics.compute_daily_stats(engine, d1, d2).days_computed == [d1, d2]
    assert rows(engine, d1)["shop"].first_contact_resolved == 1
    age(engine)
    put(engine, call("other", utc(2026, 11, 20, 9), [800], caller_id="+380501112233"))
    assert metrics.compute_daily_stats(engine, d1, d2).days_computed == [d2]
    assert rows(engine, d2)["other"].repeat_calls_7d == 0 and rows(engine, d1)["shop"].first_contact_resolved == 1
    age(engine)
    put(engine, call("shop", utc(2026, 11, 20, 12), [800], caller_id="+380501112233"))
    assert metrics.compute_daily_stats(engine, d1, d2).days_computed == [d1, d2]
    assert rows(engine, d1)["shop"].first_contact_resolved == 0 and rows(engine, d1)["*"].first_contact_resolved == 0
    day2 = rows(engine, d2)
    assert (day2["shop"].repeat_calls_7d, day2["other"].repeat_calls_7d, day2["*"].repeat_calls_7d) == (1, 0, 1)
    assert (day2["shop"].unique_callers, day2["other"].unique_callers, day2["*"].unique_callers) == (1, 1, 2)


def test_days_computed_before_the_tenant_rows_existed_are_recomputed_once(tenants):
    """A row of cca_daily_stats written before migration 016 has no tenant rows and an unprefixed
    fingerprint: the next run over its day recomputes it, incremental or not; a day without calls needs
    nothing."""
    engine = tenants
    put(engine, call("shop", utc(2026, 11, 20, 9), [800], caller_id=None))
    metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY)
    with engine.begin() as conn:  # as an older ccanalytics left them
        conn.execute(sa.text("DELETE FROM cca_daily_stats_tenants"))
        conn.execute(sa.text("UPDATE cca_daily_stats SET source_fingerprint = substr(source_fingerprint, 3)"))
    age(engine)
    run = metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY)
    assert run.days_computed == [DAY] and run.tenant_rows == 1
    assert rows(engine)["shop"].total_calls == 1
    assert rows(engine)["*"].source_fingerprint.startswith(metrics.PRINT_FORMAT)
    assert metrics.compute_daily_stats(engine, DAY - timedelta(days=1), DAY).days_computed == []


def cli(db_url: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"CCA_DATABASE_URL": db_url})


def test_stats_summary_per_tenant_on_the_command_line(tenants, db_url):
    engine = tenants
    put(
        engine,
        call("shop", utc(2026, 11, 20, 9), [800], caller_id="+380671110001"),
        call("shop", utc(2026, 11, 20, 10), [800], caller_id=None, transferred_to_operator=True),
        call("other", utc(2026, 11, 20, 11), [800], caller_id="+380671110001"),
    )
    day = ["--from", DAY.isoformat(), "--to", DAY.isoformat()]
    res = cli(db_url, "stats", "daily", "--date", DAY.isoformat())
    assert res.exit_code == 0, res.output
    assert "1 days computed" in res.output and "2 tenant rows" in res.output
    res = cli(db_url, "stats", "daily", "--date", DAY.isoformat(), "--json")
    assert json.loads(res.output)["tenant_rows"] == 0  # nothing changed

    shown = {}
    for slug in ("shop", "other", None):
        res = cli(db_url, "stats", "summary", *day, *(["--tenant", slug] if slug else []))
        assert res.exit_code == 0, res.output
        shown[slug] = json.loads(res.stdout)
        expected = metrics.summary(engine, DAY, DAY, tenant=slug).to_dict()
        assert shown[slug]["data"] == [expected]
    assert shown["shop"]["scope"] == {"tenants": ["shop"], "label": "«Інтернет-магазин шин»"}
    assert shown["other"]["scope"] == {"tenants": ["other"], "label": "«Інша мережа»"}
    assert shown[None]["scope"] == {"tenants": None, "label": "все сети"}
    assert [shown[k]["data"][0]["total_calls"] for k in ("shop", "other", None)] == [2, 1, 3]
    assert shown["shop"]["data"][0]["transferred_to_operator_pct"] == 50.0
    both = json.loads(cli(db_url, "stats", "summary", *day, "--tenant", "shop", "--tenant", "other").stdout)
    assert both["scope"]["tenants"] == ["shop", "other"] and both["data"][0]["total_calls"] == 3

    res = cli(db_url, "stats", "summary", *day, "--tenant", "nope")
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith("Error: unknown tenant 'nope': the database has ")
    assert len(res.stderr.strip().splitlines()) == 1
