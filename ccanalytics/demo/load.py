"""Loading the demo: prompt versions, the running A/B test, and generated calls — through the same
ingestion path the call processor uses."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from .. import clock, timeutil
from ..ingest import IngestResult, ingest_records
from .generator import DEMO_AB_DAYS


def ensure_demo_prompts(conn: sa.Connection) -> dict[str, int]:
    """Insert the demo prompt versions that are missing; v1 is the active one. Returns label → id."""
    from .generator import DEMO_PROMPTS

    for p in DEMO_PROMPTS:
        conn.execute(
            sa.text(
                "INSERT INTO prompt_versions (name, version, label, system_prompt, tools_config, metadata, "
                "note, created_by, is_active, created_at) "
                "SELECT CAST(:name AS varchar), :version, CAST(:label AS varchar), :system_prompt, :tools_config, "
                "       :metadata, :note, 'demo', "
                "       CAST(:active AS boolean) AND NOT EXISTS "
                "           (SELECT 1 FROM prompt_versions WHERE name = CAST(:name AS varchar) AND is_active), "
                "       coalesce(CAST(:created_at AS timestamptz), now()) "
                "WHERE NOT EXISTS (SELECT 1 FROM prompt_versions WHERE label = CAST(:label AS varchar))"
            ),
            {
                "name": p["name"],
                "version": p["version"],
                "label": p["label"],
                "system_prompt": p["system_prompt"],
                "tools_config": Jsonb(p["tools_config"]),
                "metadata": Jsonb(p["metadata"]),
                "note": p.get("note"),
                "active": p["version"] == 1,
                "created_at": p.get("created_at"),
            },
        )
    rows = conn.execute(
        sa.text("SELECT label, id FROM prompt_versions WHERE label = ANY(:labels)"),
        {"labels": [p["label"] for p in DEMO_PROMPTS]},
    )
    return dict(rows.all())


def ensure_demo_ab_test(conn: sa.Connection, prompt_ids: dict[str, int], started: date, tz: str) -> int:
    """The demo's running A/B test (v1 against v2), created once."""
    from .generator import DEMO_AB_TEST, DEMO_PROMPT_NAME

    conn.execute(
        sa.text(
            "INSERT INTO prompt_ab_tests (test_name, variant_a_id, variant_b_id, status, started_at, traffic_b, salt, "
            "prompt_name, description, created_by) VALUES (:name, :a, :b, 'running', :started, 0.5, :name, "
            ":prompt, 'Демо: v2 — короче реплики, подтверждение размера, чёткие правила перевода', 'demo') "
            "ON CONFLICT (test_name) DO NOTHING"
        ),
        {
            "name": DEMO_AB_TEST,
            "a": prompt_ids["tire_agent@v1"],
            "b": prompt_ids["tire_agent@v2"],
            "started": timeutil.day_start(started, tz),
            "prompt": DEMO_PROMPT_NAME,
        },
    )
    test_id = conn.execute(
        sa.text("SELECT id FROM prompt_ab_tests WHERE test_name = :n"), {"n": DEMO_AB_TEST}
    ).scalar_one()
    for variant, label in (("A", "tire_agent@v1"), ("B", "tire_agent@v2")):
        conn.execute(
            sa.text(
                "INSERT INTO prompt_ab_variants (test_id, variant, version_id, weight) VALUES (:t, :v, :i, 0.5) "
                "ON CONFLICT DO NOTHING"
            ),
            {"t": test_id, "v": variant, "i": prompt_ids[label]},
        )
    return test_id


def load_demo_data(
    engine: Engine,
    *,
    seed: int = 42,
    days: int = 30,
    calls_per_day: int = 400,
    end_date: date | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    ab_days: int = DEMO_AB_DAYS,
    batch_size: int = 500,
    progress=None,
    until: datetime | None = None,
) -> IngestResult:
    """Load ``days`` days of demo calls ending on ``end_date`` (default: today), only those that have
    ended by ``until`` (an aware instant; default: the clock's now — never a call in the future).
    Idempotent: the generator is deterministic per day, so reloading leaves existing calls unchanged."""
    from .generator import DEMO_AB_TEST, generate_calls

    end = end_date or timeutil.today(tz)
    with engine.begin() as conn:
        prompt_ids = ensure_demo_prompts(conn)
        ensure_demo_ab_test(conn, prompt_ids, end - timedelta(days=ab_days - 1), tz)
    calls = generate_calls(
        seed=seed,
        days=days,
        calls_per_day=calls_per_day,
        end_date=end,
        tz=tz,
        ab_test=DEMO_AB_TEST,
        ab_days=ab_days,
        until=until or clock.now(),
    )
    if progress is not None:
        calls = _counting(calls, progress)
    return ingest_records(engine, calls, batch_size=batch_size)


def _counting(items, progress):
    for item in items:
        progress(1)
        yield item
