"""Loading the demo: the tenants, prompt versions and the running A/B test, and generated calls —
through the same ingestion path the call processor uses.

The demo database stands in for the call processor's: the tenants and the first prompt version are
created the way the processor creates them (rows of its tenants and prompt_versions, only when absent);
the second prompt version is written through ccanalytics (prompts.create_version) and the A/B test is
ccanalytics's own (cca_ab_tests / cca_ab_variants). Calls carry their tenant's slug and their A/B
variant (``ab_test``), which ingest records in cca_ab_assignments."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.core import clock, timeutil
from ccanalytics.demo.generator import (
    DEMO_AB_DAYS,
    DEMO_AB_TEST,
    DEMO_PROMPT_NAME,
    DEMO_PROMPTS,
    DEMO_TENANTS,
    generate_calls,
)
from ccanalytics.ingest.load import ingest_records
from ccanalytics.ingest.write import IngestResult
from ccanalytics.prompts import versions as prompts


def ensure_demo_tenants(conn: sa.Connection) -> dict[str, uuid.UUID]:
    """The demo's tenants (``generator.DEMO_TENANTS``), inserted as the call processor creates them when
    a slug is absent; an existing tenant is left as it is. Returns slug → id."""
    slugs = [slug for slug, _name, _share in DEMO_TENANTS]
    conn.execute(
        sa.text(
            "INSERT INTO tenants (slug, name, network_id) "
            "SELECT s, n, s FROM unnest(CAST(:slugs AS varchar[]), CAST(:names AS varchar[])) AS x(s, n) "
            "WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.slug = x.s) "
            "ON CONFLICT (slug) DO NOTHING"
        ),
        {"slugs": slugs, "names": [name for _slug, name, _share in DEMO_TENANTS]},
    )
    rows = conn.execute(sa.text("SELECT slug, id FROM tenants WHERE slug = ANY(:slugs)"), {"slugs": slugs})
    return dict(rows.all())


def _version_id(conn: sa.Connection, name: str, system_prompt: str) -> uuid.UUID | None:
    """The first version of ``name`` with exactly this text (the demo's versions are found by their text:
    the processor's prompt_versions has no number or label)."""
    return conn.execute(
        sa.text(
            "SELECT id FROM prompt_versions WHERE name = CAST(:n AS varchar) AND system_prompt = :sp "
            "ORDER BY created_at, id LIMIT 1"
        ),
        {"n": name, "sp": system_prompt},
    ).scalar()


def ensure_demo_prompts(engine: Engine) -> dict[str, uuid.UUID]:
    """The demo prompt versions that are missing. v1 is the call processor's own version, active in the
    processor (a prompt_versions row, as its seed migration writes one); v2 is written through
    ccanalytics (prompts.create_version: inactive, with its author and note). Returns label → id."""
    first, *later = DEMO_PROMPTS
    ids: dict[str, uuid.UUID] = {}
    with engine.begin() as conn:
        found = _version_id(conn, first["name"], first["system_prompt"])
        if found is None:
            found = conn.execute(
                sa.text(
                    "INSERT INTO prompt_versions (id, name, system_prompt, tools_config, is_active, metadata, "
                    "created_at) VALUES (:id, :name, :sp, :tc, NOT EXISTS (SELECT 1 FROM prompt_versions "
                    "WHERE name = CAST(:name AS varchar) AND is_active), :md, "
                    "coalesce(CAST(:at AS timestamptz), now())) RETURNING id"
                ),
                {
                    "id": uuid.uuid4(),
                    "name": first["name"],
                    "sp": first["system_prompt"],
                    "tc": Jsonb(first["tools_config"]),
                    "md": Jsonb(first["metadata"]),
                    "at": first.get("created_at"),
                },
            ).scalar_one()
        ids[first["label"]] = found
    for p in later:
        with engine.connect() as conn:
            found = _version_id(conn, p["name"], p["system_prompt"])
        if found is None:
            found = prompts.create_version(
                engine,
                p["name"],
                p["system_prompt"],
                tools_config=p["tools_config"],
                metadata=p["metadata"],
                author="demo",
                note=p.get("note"),
            ).id
        ids[p["label"]] = found
    return ids


def ensure_demo_ab_test(conn: sa.Connection, prompt_ids: dict[str, uuid.UUID], started: date, tz: str) -> uuid.UUID:
    """The demo's running A/B test (v1 against v2) in ccanalytics's cca_ab_tests, created once. Its salt
    is its name, so ``generator.ab_variant`` assigns the callers as the prompt resolver does."""
    conn.execute(
        sa.text(
            "INSERT INTO cca_ab_tests (test_name, variant_a_id, variant_b_id, status, started_at, traffic_b, salt, "
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
        sa.text("SELECT id FROM cca_ab_tests WHERE test_name = :n"), {"n": DEMO_AB_TEST}
    ).scalar_one()
    for variant, label in (("A", "tire_agent@v1"), ("B", "tire_agent@v2")):
        conn.execute(
            sa.text(
                "INSERT INTO cca_ab_variants (test_id, variant, version_id, weight) VALUES (:t, :v, :i, 0.5) "
                "ON CONFLICT DO NOTHING"
            ),
            {"t": test_id, "v": variant, "i": prompt_ids[label]},
        )
    return test_id


def ensure_demo_setup(engine: Engine, ab_started: date, tz: str) -> dict[str, uuid.UUID]:
    """Everything the demo calls refer to: the tenants, the prompt versions and the A/B test. Returns
    the prompt versions' ids by label."""
    with engine.begin() as conn:
        ensure_demo_tenants(conn)
    prompt_ids = ensure_demo_prompts(engine)
    with engine.begin() as conn:
        ensure_demo_ab_test(conn, prompt_ids, ab_started, tz)
    return prompt_ids


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
    end = end_date or timeutil.today(tz)
    ensure_demo_setup(engine, end - timedelta(days=ab_days - 1), tz)
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
