"""The notebook query API: filters, Kyiv days, masking, types."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from factories import make_call, turn

from ccanalytics.analytics.store import Store
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db.engine import create_engine
from ccanalytics.ingest.load import ingest


def at(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


@pytest.fixture
def loaded(store):
    calls = {
        # 2026-11-19 23:30 Kyiv (21:30 UTC) belongs to the 19th; 00:10 Kyiv on the 20th to the 20th
        "late": make_call(started_at=at(2026, 11, 19, 21, 30), scenario="consultation", order_created=None),
        "early": make_call(started_at=at(2026, 11, 19, 22, 10), caller_id="+380501112233"),
        "transfer": make_call(
            started_at=at(2026, 11, 20, 9),
            transferred_to_operator=True,
            transfer_reason="negative_emotion",
            scenario="order_status",
            order_created=None,
            prompt_version="tire_agent@v2",
        ),
        "next": make_call(started_at=at(2026, 11, 21, 9)),
    }
    ingest(store.engine, list(calls.values()))
    return calls


def ids(frame: pl.DataFrame) -> set[str]:
    return set(frame["id"].to_list())


def test_calls_are_selected_by_kyiv_days(store, loaded):
    assert ids(store.calls("2026-11-19", "2026-11-19")) == {loaded["late"]["call_id"]}
    assert ids(store.calls(date(2026, 11, 20), "2026-11-20")) == {
        loaded["early"]["call_id"],
        loaded["transfer"]["call_id"],
    }
    assert len(store.calls("2026-11-19", "2026-11-21")) == 4


def test_dst_days_have_their_real_length(store):
    # 2026-03-29: Kyiv moves to summer time (23-hour day); 2026-10-25 back (25-hour day)
    spring = [
        make_call(started_at=at(2026, 3, 28, 21, 59)),
        make_call(started_at=at(2026, 3, 28, 22, 0)),
        make_call(started_at=at(2026, 3, 29, 20, 59)),
        make_call(started_at=at(2026, 3, 29, 21, 0)),
    ]
    autumn = [
        make_call(started_at=at(2026, 10, 24, 20, 59)),
        make_call(started_at=at(2026, 10, 24, 21, 0)),
        make_call(started_at=at(2026, 10, 25, 21, 59)),
        make_call(started_at=at(2026, 10, 25, 22, 0)),
    ]
    ingest(store.engine, spring + autumn)
    assert ids(store.calls("2026-03-29", "2026-03-29")) == {spring[1]["call_id"], spring[2]["call_id"]}
    assert ids(store.calls("2026-10-25", "2026-10-25")) == {autumn[1]["call_id"], autumn[2]["call_id"]}


def test_calls_frame_has_typed_columns_in_kyiv_time(store, loaded):
    frame = store.calls("2026-11-19", "2026-11-21")
    assert frame.schema["started_at"] == pl.Datetime("us", "Europe/Kyiv")
    assert frame.schema["transferred_to_operator"] == pl.Boolean
    assert frame.schema["duration_seconds"] == pl.Int64
    row = frame.filter(pl.col("id") == loaded["late"]["call_id"]).row(0, named=True)
    assert row["started_at"].hour == 23 and row["started_at"].minute == 30
    assert row["cost_llm_usd"] == pytest.approx(0.027)
    assert row["order_id"] is None
    assert frame.filter(pl.col("id") == loaded["next"]["call_id"])["order_id"].item() == "ORD-204518"
    assert frame.to_pandas().shape == frame.shape


def test_phones_are_masked_unless_asked(store, loaded):
    masked = store.calls("2026-11-19", "2026-11-21")["caller_id"].unique().sort().to_list()
    assert masked == ["+38050*****33", "+38067*****67"]
    raw = store.calls("2026-11-19", "2026-11-21", mask_phones=False)["caller_id"].unique().sort().to_list()
    assert raw == ["+380501112233", "+380671234567"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"transferred": True}, {"transfer"}),
        ({"transferred": False}, {"late", "early", "next"}),
        ({"scenario": "order_creation"}, {"early", "next"}),  # a part of "tire_search + order_creation"
        ({"scenario": ["consultation", "order_status"]}, {"late", "transfer"}),
        ({"transfer_reason": "negative_emotion"}, {"transfer"}),
        ({"prompt_version": "tire_agent@v2"}, {"transfer"}),
        ({"caller": "050 111 22 33"}, {"early"}),
        ({"scored": False}, {"late", "early", "transfer", "next"}),
        ({"scored": True}, set()),
        ({"limit": 1}, {"late"}),
    ],
)
def test_call_filters(store, loaded, filters, expected):
    got = ids(store.calls("2026-11-19", "2026-11-21", **filters))
    assert got == {loaded[k]["call_id"] for k in expected}


def test_customers_and_tenants(store, loaded):
    frame = store.calls("2026-11-19", "2026-11-21")
    assert set(frame["tenant"]) == {"shop"} and frame.schema["customer_id"] == pl.String  # the processor's uuids
    late = frame.filter(pl.col("id") == loaded["late"]["call_id"])["customer_id"].item()
    # the same number is one customer of the tenant: its three calls
    assert ids(store.calls("2026-11-19", "2026-11-21", customer_id=late)) == {
        loaded[k]["call_id"] for k in ("late", "transfer", "next")
    }
    assert store.calls("2026-11-19", "2026-11-21", tenant="elsewhere").is_empty()
    assert len(store.calls("2026-11-19", "2026-11-21", tenant=["shop", "elsewhere"])) == 4
    with pytest.raises(InvalidArgument):
        store.calls("2026-11-19", "2026-11-21", customer_id="42")


def test_quality_filters(store, loaded):
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE calls SET quality_score = CASE WHEN scenario = 'consultation' THEN 0.3 ELSE 0.9 END"
        )
    assert ids(store.calls("2026-11-19", "2026-11-21", quality_below=0.5)) == {loaded["late"]["call_id"]}
    assert len(store.calls("2026-11-19", "2026-11-21", quality_above=0.8)) == 3


def test_turns_and_tool_calls_of_the_period(store, loaded):
    turns = store.turns("2026-11-20", "2026-11-20")
    assert set(turns["call_id"].unique()) == {loaded["early"]["call_id"], loaded["transfer"]["call_id"]}
    assert len(turns) == 10
    assert turns.schema["created_at"] == pl.Datetime("us", "Europe/Kyiv")
    assert set(store.turns("2026-11-20", "2026-11-20", speaker="customer")["speaker"]) == {"customer"}
    one = store.turns("2026-11-19", "2026-11-21", call_ids=[loaded["next"]["call_id"]])
    assert one["turn_number"].to_list() == [1, 2, 3, 4, 5]
    tools = store.tool_calls("2026-11-19", "2026-11-21", tool_name="search_tires")
    assert len(tools) == 4 and tools["success"].all()
    assert '"season": "winter"' in tools["tool_args"][0]


def test_turns_crossing_midnight_stay_with_their_call(store):
    start = at(2026, 11, 19, 21, 59)  # 23:59 Kyiv
    call = make_call(
        started_at=start,
        seconds=180,
        turns=[
            turn("bot", "Добрий вечір!", start + timedelta(seconds=5)),
            turn("customer", "Мені шини потрібні", start + timedelta(seconds=100)),  # after Kyiv midnight
        ],
    )
    ingest(store.engine, call)
    assert len(store.turns("2026-11-19", "2026-11-19")) == 2
    assert len(store.turns("2026-11-20", "2026-11-20")) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"date_from": "2026-13-01"}, "not a date"),
        ({"date_from": "2026-11-21", "date_to": "2026-11-20"}, "before date_from"),
        ({"quality_below": 2}, "between 0 and 1"),
        ({"caller": "not-a-phone"}, "not a phone number"),
        ({"call_ids": ["nope"]}, "not a call id"),
        ({"limit": 0}, "limit must be positive"),
    ],
)
def test_bad_arguments_are_clear_errors(store, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        store.calls(**kwargs)


def test_ad_hoc_sql(store, loaded):
    frame = store.sql("SELECT scenario, count(*) AS n FROM calls GROUP BY 1 ORDER BY 1")
    assert frame.to_dicts()[0] == {"scenario": "consultation", "n": 1}


def test_connect_uses_the_given_url(db_url, loaded):
    import ccanalytics as cca

    store = cca.connect(db_url)
    try:
        assert len(store.calls("2026-11-19", "2026-11-21")) == 4
        assert repr(store).startswith("Store(postgresql+psycopg://postgres") and "Europe/Kyiv" in repr(store)
    finally:
        store.engine.dispose()


def test_cost_components_are_the_views_breakdown_for_every_source(store):
    """store.calls() reads the cost components without building cca_calls.cost_breakdown (migration 013's
    cca_recorded_costs): the same numbers as the view, for a delivered call log's cost block, the
    processor's recorded keys, a breakdown with none of the components, ccanalytics's own price, and
    with cca.cost_source = 'processor'."""
    import sqlalchemy as sa
    from factories import write_as_processor

    from ccanalytics.cost import calls as cost

    delivered = make_call(started_at=at(2026, 11, 20, 9))
    ingest(store.engine, [delivered])
    with store.engine.begin() as conn:
        recorded = write_as_processor(
            conn,
            make_call(started_at=at(2026, 11, 20, 10)),
            cost_breakdown={"stt_cost": 0.011, "llm_cost": 0.022, "tts_cost": None, "llm_model": "gpt-4o-mini"},
        )
        bare = write_as_processor(conn, make_call(started_at=at(2026, 11, 20, 11)), cost_breakdown={"note": 1})

    def both(reader: Store) -> tuple[dict, dict]:
        frame = reader.calls("2026-11-20", "2026-11-20")
        ours = {r["id"]: (r["cost_stt_usd"], r["cost_llm_usd"], r["cost_tts_usd"]) for r in frame.iter_rows(named=True)}
        with reader.engine.connect() as conn:
            view = {
                str(r.id): tuple(
                    float(r.b[k]) if isinstance(r.b, dict) and r.b.get(k) is not None else None
                    for k in ("stt", "llm", "tts")
                )
                for r in conn.execute(sa.text("SELECT id, cost_breakdown AS b FROM cca_calls"))
            }
        return ours, view

    ours, view = both(store)
    assert ours == view
    assert ours[str(recorded)] == (pytest.approx(0.011), pytest.approx(0.022), None)
    assert ours[str(bare)] == (None, None, None)
    cost.compute_costs(store.engine, "2026-11-20", "2026-11-20")  # ccanalytics's own prices now
    ours, view = both(store)
    assert ours == view and ours[str(recorded)][0] != pytest.approx(0.011)
    # the configuration chooses the processor's recorded costs (CCA_COST_SOURCE: a session setting)
    url = store.engine.url.update_query_dict({"options": "-c cca.cost_source=processor"})
    processor = create_engine(url.render_as_string(hide_password=False))
    try:
        ours, view = both(Store(processor))
    finally:
        processor.dispose()
    assert ours == view and ours[str(recorded)][:2] == (pytest.approx(0.011), pytest.approx(0.022))
