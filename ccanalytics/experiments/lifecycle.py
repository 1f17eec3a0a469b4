"""A/B tests of prompt versions: create, start, stop with a recorded decision; deterministic sticky
assignment (hash of the test's salt and the caller); exclusion rules. Results per variant are
``ccanalytics.experiments.abresults``.

ccanalytics's tests live in cca_ab_tests / cca_ab_variants (uuid ids). The call processor's own tests
(its prompt_ab_tests) are listed beside them read-only by ``ccanalytics.experiments.processortests``."""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.core import labels
from ccanalytics.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ccanalytics.prompts.versions import as_uuid

DECISIONS = ("ship_b", "keep_a", "inconclusive", "stop_harm")
EXCLUSION_KEYS: dict[str, type[int] | tuple[type[int], type[float]]] = {
    "min_turns": int,
    "min_duration_seconds": (int, float),
    "exclude_transferred_before_seconds": (int, float),
}
GOAL_METRICS = ("resolved_without_operator", "quality_score", "cost_per_call", "duration_seconds")


def assign_variant(salt: str, caller_key: str, variants: Sequence[tuple[str, float]]) -> str:
    """The variant of a caller: sticky and deterministic. SHA-256 of ``"{salt}:{caller_key}"`` gives a
    uniform number in [0, 1) that falls into one variant's share of the (normalised) weights."""
    if not variants:
        raise InvalidArgument("a test needs variants")
    total = sum(w for _, w in variants)
    u = int.from_bytes(hashlib.sha256(f"{salt}:{caller_key}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, weight in variants:
        edge += weight / total
        if u < edge:
            return name
    return variants[-1][0]


@dataclass(frozen=True)
class Variant:
    variant: str
    version_id: uuid.UUID
    label: str
    weight: float


@dataclass(frozen=True)
class ABTest:
    id: uuid.UUID
    test_name: str
    prompt_name: str | None
    status: str
    salt: str
    variants: tuple[Variant, ...]
    goal_metric: str
    exclusions: dict[str, Any]
    description: str | None
    started_at: datetime | None
    ended_at: datetime | None
    decision: str | None
    decision_note: str | None
    created_by: str | None
    stopped_by: str | None
    created_at: datetime

    def weights(self) -> list[tuple[str, float]]:
        return [(v.variant, v.weight) for v in self.variants]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "ended_at", "created_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["id"] = str(self.id)
        for v in out["variants"]:
            v["version_id"] = str(v["version_id"])
        out.pop("salt")
        return out


def _validate_exclusions(exclusions: dict[str, Any] | None) -> dict[str, Any]:
    exclusions = exclusions or {}
    if not isinstance(exclusions, dict):
        raise InvalidArgument("exclusions must be an object")
    for key, value in exclusions.items():
        if key not in EXCLUSION_KEYS:
            raise InvalidArgument(f"unknown exclusion rule {key!r} (known: {', '.join(EXCLUSION_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, EXCLUSION_KEYS[key]) or value < 0:
            raise InvalidArgument(f"exclusion {key} must be a non-negative number")
    return exclusions


def _check_name(test_name: Any) -> str:
    if not isinstance(test_name, str) or not test_name.strip() or len(test_name) > 100:
        raise InvalidArgument(
            "test_name is required (at most 100 characters)", ru="задайте название теста (не длиннее 100 символов)"
        )
    if as_uuid(test_name.strip()) is not None:
        raise InvalidArgument(
            "test_name must not be a uuid: a test is looked up by its id or by its name",
            ru="название теста не может быть идентификатором (uuid): тесты ищут и по названию",
        )
    return test_name.strip()


def _check_versions(version_ids: Sequence[uuid.UUID | str]) -> list[uuid.UUID]:
    """The versions' ids: two to six, each a uuid, no version twice."""
    ids = []
    for given in version_ids:
        as_id = as_uuid(given)
        if as_id is None:
            raise InvalidArgument(
                f"{given!r} is not a prompt version id", ru=f"«{str(given)[:40]}» — не идентификатор версии промпта"
            )
        ids.append(as_id)
    if len(ids) < 2:
        raise InvalidArgument(
            "a test needs at least two prompt versions",
            ru="выберите хотя бы две версии промпта: контроль A и претендента B",
        )
    if len(set(ids)) != len(ids):
        raise InvalidArgument(
            "a test cannot compare a version with itself",
            ru="тест не может сравнивать версию саму с собой: выберите разные версии",
        )
    if len(ids) > 6:
        raise InvalidArgument("at most 6 variants", ru="не больше 6 вариантов")
    return ids


def _check_weights(weights: Sequence[float] | None, versions: int) -> list[float]:
    """The variants' shares of traffic, each in (0, 1], summing to 1 (default: equal)."""
    weights = list(weights) if weights is not None else [1 / versions] * versions
    if len(weights) != versions:
        raise InvalidArgument(f"{len(weights)} weights for {versions} versions")
    if any(isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1 for w in weights):
        raise InvalidArgument("weights must be numbers in (0, 1]", ru="доли трафика — числа от 0 до 100 %")
    if not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise InvalidArgument(
            f"weights must sum to 1, not {sum(weights):g}", ru="доли трафика в сумме должны давать 100 %"
        )
    return weights


def _prompt_of(conn: sa.Connection, ids: list[uuid.UUID]) -> str:
    """The one prompt every version belongs to (NotFound for a version that does not exist)."""
    rows = conn.execute(sa.text("SELECT id, name FROM prompt_versions WHERE id = ANY(:ids)"), {"ids": ids}).all()
    found: dict[uuid.UUID, str] = dict(rows)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(
            f"prompt versions do not exist: {', '.join(map(str, missing))}",
            ru="выбранных версий промпта нет: обновите страницу",
        )
    prompt_names = {found[i] for i in ids}
    if len(prompt_names) != 1:
        raise InvalidArgument(
            f"all versions must belong to one prompt, got {', '.join(sorted(prompt_names))}",
            ru="все версии теста должны быть версиями одного промпта, а выбраны: " + ", ".join(sorted(prompt_names)),
        )
    return prompt_names.pop()


def create_test(
    engine: Engine,
    test_name: str,
    version_ids: Sequence[uuid.UUID | str],
    *,
    weights: Sequence[float] | None = None,
    created_by: str,
    description: str | None = None,
    goal_metric: str = "resolved_without_operator",
    exclusions: dict[str, Any] | None = None,
) -> ABTest:
    """A draft test over two or more versions of the same prompt (first = control A). Weights must
    sum to 1 (default: equal)."""
    test_name = _check_name(test_name)
    if not isinstance(created_by, str) or not created_by.strip():
        raise InvalidArgument("created_by is required", ru="не указано, кто создаёт тест")
    created_by = created_by.strip()
    ids = _check_versions(version_ids)
    weights = _check_weights(weights, len(ids))
    if goal_metric not in GOAL_METRICS:
        raise InvalidArgument(f"goal_metric must be one of {', '.join(GOAL_METRICS)}")
    exclusions = _validate_exclusions(exclusions)
    names = [chr(ord("A") + i) for i in range(len(ids))]
    with engine.begin() as conn:
        prompt_name = _prompt_of(conn, ids)
        if conn.execute(sa.text("SELECT 1 FROM cca_ab_tests WHERE test_name = :n"), {"n": test_name}).first():
            raise AlreadyExists(
                f"a test named {test_name!r} already exists",
                ru=f"тест с названием «{test_name}» уже есть: выберите другое название",
            )
        test_id = conn.execute(
            sa.text(
                "INSERT INTO cca_ab_tests (test_name, variant_a_id, variant_b_id, status, traffic_b, salt, "
                "prompt_name, description, goal_metric, exclusions, created_by) "
                "VALUES (:n, :a, :b, 'draft', :tb, :salt, :pn, :d, :g, :ex, :by) RETURNING id"
            ),
            {
                "n": test_name,
                "a": ids[0],
                "b": ids[1],
                "tb": min(max(weights[1] / (weights[0] + weights[1]), 0.001), 0.999),
                "salt": secrets.token_hex(8),
                "pn": prompt_name,
                "d": description,
                "g": goal_metric,
                "ex": Jsonb(exclusions),
                "by": created_by.strip(),
            },
        ).scalar_one()
        for name, vid, w in zip(names, ids, weights, strict=True):
            conn.execute(
                sa.text("INSERT INTO cca_ab_variants (test_id, variant, version_id, weight) VALUES (:t, :v, :i, :w)"),
                {"t": test_id, "v": name, "i": vid, "w": w},
            )
        audit(conn, created_by, "ab_test.created", "ab_test", test_id, {"test_name": test_name, "versions": ids})
    return get_test(engine, test_id)


_TEST_SQL = """
SELECT t.id, t.test_name, t.prompt_name, t.status, t.salt, t.goal_metric, t.exclusions, t.description, t.started_at,
       t.ended_at, t.decision, t.decision_note, t.created_by, t.stopped_by, t.created_at, t.variant_a_id,
       t.variant_b_id, t.traffic_b,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(v.variant, v.version_id, pv.label, v.weight)
                                  ORDER BY v.variant), '[]')
          FROM cca_ab_variants v JOIN cca_prompt_versions pv ON pv.id = v.version_id
         WHERE v.test_id = t.id) AS variants,
       (SELECT label FROM cca_prompt_versions WHERE id = t.variant_a_id) AS label_a,
       (SELECT label FROM cca_prompt_versions WHERE id = t.variant_b_id) AS label_b
FROM cca_ab_tests t
"""


def _test(row) -> ABTest:
    variants = tuple(Variant(v, uuid.UUID(i), label, w) for v, i, label, w in row.variants)
    if not variants:  # a test without variant rows (A/B columns only)
        variants = (
            Variant("A", row.variant_a_id, row.label_a, 1 - row.traffic_b),
            Variant("B", row.variant_b_id, row.label_b, row.traffic_b),
        )
    return ABTest(
        row.id,
        row.test_name,
        row.prompt_name,
        row.status,
        row.salt,
        variants,
        row.goal_metric,
        row.exclusions,
        row.description,
        row.started_at,
        row.ended_at,
        row.decision,
        row.decision_note,
        row.created_by,
        row.stopped_by,
        row.created_at,
    )


def get_test(engine: Engine, test: uuid.UUID | str) -> ABTest:
    """A test of ccanalytics's by id (a uuid) or by name."""
    if not isinstance(test, uuid.UUID | str):
        raise InvalidArgument(f"an A/B test is a uuid or a name, not {test!r}")
    as_id = as_uuid(test)
    with engine.connect() as conn:
        if as_id is not None:
            row = conn.execute(sa.text(_TEST_SQL + " WHERE t.id = :i"), {"i": as_id}).one_or_none()
        else:
            row = conn.execute(sa.text(_TEST_SQL + " WHERE t.test_name = :n"), {"n": test}).one_or_none()
    if row is None:
        raise NotFound(f"A/B test {test} does not exist")
    return _test(row)


def list_tests(engine: Engine, *, status: str | None = None) -> list[ABTest]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(_TEST_SQL + " WHERE CAST(:s AS text) IS NULL OR t.status = :s ORDER BY t.created_at DESC"),
            {"s": status},
        ).all()
    return [_test(r) for r in rows]


def _locked(conn: sa.Connection, test_id: uuid.UUID) -> Any:
    """The test's row, locked until the transaction ends (status changes are serialised)."""
    return conn.execute(
        sa.text("SELECT test_name, prompt_name, status FROM cca_ab_tests WHERE id = :i FOR UPDATE"), {"i": test_id}
    ).one()


def _check_actor(by: Any, what: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise InvalidArgument(f"who {what} the test is required", ru="не указано, кто меняет тест")
    return by.strip()


def start_test(engine: Engine, test: uuid.UUID | str, *, by: str) -> ABTest:
    """Start a draft test; ``by`` is who acts. Conflict when it is not a draft, or another test is
    running on the same prompt (at most one per prompt name). Audited (``ab_test.started``) in the
    same transaction."""
    by = _check_actor(by, "starts")
    current = get_test(engine, test)
    with engine.begin() as conn:
        row = _locked(conn, current.id)
        if row.status != "draft":
            raise Conflict(
                f"test {row.test_name!r} is {row.status}; only a draft can start",
                ru=f"тест «{row.test_name}» уже {labels.label(labels.AB_STATUSES, row.status)}: "
                "запустить можно только черновик",
            )
        running = conn.execute(
            sa.text("SELECT test_name FROM cca_ab_tests WHERE prompt_name = :p AND status = 'running'"),
            {"p": row.prompt_name},
        ).scalar()
        if running:
            raise Conflict(
                f"test {running!r} is already running on prompt {row.prompt_name!r}",
                ru=f"на промпте {row.prompt_name} уже идёт тест «{running}»: сначала остановите его",
            )
        conn.execute(
            sa.text("UPDATE cca_ab_tests SET status = 'running', started_at = now() WHERE id = :i"), {"i": current.id}
        )
        audit(conn, by, "ab_test.started", "ab_test", str(current.id), {"test_name": row.test_name})
    return get_test(engine, current.id)


def stop_test(engine: Engine, test: uuid.UUID | str, *, by: str, decision: str, note: str | None = None) -> ABTest:
    """Stop a running test with a recorded decision (ship_b, keep_a, inconclusive, stop_harm); ``by`` is
    who acts. Conflict when it is not running. Audited (``ab_test.stopped``) in the same transaction."""
    if decision not in DECISIONS:
        raise InvalidArgument(f"decision must be one of {', '.join(DECISIONS)}", ru="выберите решение из списка")
    by = _check_actor(by, "stops")
    current = get_test(engine, test)
    with engine.begin() as conn:
        row = _locked(conn, current.id)
        if row.status != "running":
            raise Conflict(
                f"test {row.test_name!r} is {row.status}; only a running test can stop",
                ru=f"тест «{row.test_name}» не идёт ({labels.label(labels.AB_STATUSES, row.status)}): "
                "остановить можно только идущий тест",
            )
        conn.execute(
            sa.text(
                "UPDATE cca_ab_tests SET status = 'stopped', ended_at = now(), stopped_by = :by, decision = :d, "
                "decision_note = :note WHERE id = :i"
            ),
            {"i": current.id, "by": by, "d": decision, "note": note},
        )
        details = {"test_name": row.test_name, "decision": decision, "note": note}
        audit(conn, by, "ab_test.stopped", "ab_test", str(current.id), details)
    return get_test(engine, current.id)
