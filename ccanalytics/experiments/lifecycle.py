"""A/B tests of prompt versions: create, start, stop with a recorded decision; deterministic sticky
assignment (hash of the test's salt and the caller); exclusion rules; results per variant with sound
statistics (``ccanalytics.experiments.abtest``) computed from sufficient statistics in SQL.

ccanalytics's tests live in cca_ab_tests / cca_ab_variants (uuid ids). The call processor's own tests
(its prompt_ab_tests) are listed beside them read-only by ``processor_tests``."""

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

from ccanalytics.auth.users import audit
from ccanalytics.core import clock, labels
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
    if not isinstance(test_name, str) or not test_name.strip() or len(test_name) > 100:
        raise InvalidArgument(
            "test_name is required (at most 100 characters)", ru="задайте название теста (не длиннее 100 символов)"
        )
    if as_uuid(test_name.strip()) is not None:
        raise InvalidArgument(
            "test_name must not be a uuid: a test is looked up by its id or by its name",
            ru="название теста не может быть идентификатором (uuid): тесты ищут и по названию",
        )
    test_name = test_name.strip()
    if not isinstance(created_by, str) or not created_by.strip():
        raise InvalidArgument("created_by is required", ru="не указано, кто создаёт тест")
    created_by = created_by.strip()
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
    weights = list(weights) if weights is not None else [1 / len(ids)] * len(ids)
    if len(weights) != len(ids):
        raise InvalidArgument(f"{len(weights)} weights for {len(ids)} versions")
    if any(isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1 for w in weights):
        raise InvalidArgument("weights must be numbers in (0, 1]", ru="доли трафика — числа от 0 до 100 %")
    if not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise InvalidArgument(
            f"weights must sum to 1, not {sum(weights):g}", ru="доли трафика в сумме должны давать 100 %"
        )
    if goal_metric not in GOAL_METRICS:
        raise InvalidArgument(f"goal_metric must be one of {', '.join(GOAL_METRICS)}")
    exclusions = _validate_exclusions(exclusions)
    names = [chr(ord("A") + i) for i in range(len(ids))]
    with engine.begin() as conn:
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
                ru="все версии теста должны быть версиями одного промпта, а выбраны: "
                + ", ".join(sorted(prompt_names)),
            )
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
                "pn": prompt_names.pop(),
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


# ------------------------------------------------------------------------- the call processor's tests
PROCESSOR_STATUSES = ("active", "stopped", "completed")
PROCESSOR_STATUS_RU = labels.PROCESSOR_AB_STATUSES
PROCESSOR_RESULTS_NOTE_RU = "результаты по звонкам посчитать нельзя: процессор не записывает вариант в звонок"
PROCESSOR_RESULTS_NOTE_EN = (
    "per-call results cannot be computed because the processor does not record the variant on the call"
)


@dataclass(frozen=True)
class ProcessorTest:
    """An A/B test of the call processor's own (a row of its table prompt_ab_tests), read-only.

    The processor picks a variant at random per call, only counts calls per variant, and does not record
    the variant on the call: ccanalytics cannot attribute a call to a variant, so no per-call result
    (resolved, quality, cost per variant) exists for these tests. What is shown is what the processor
    stored, nothing computed: its counters, and its quality figures only when it wrote one (the columns'
    default 0 is no figure: None)."""

    id: uuid.UUID
    test_name: str
    prompt_name: str | None  # the name of both versions (None when they differ)
    status: str  # active | stopped | completed (the quoted default 'active' read as active)
    status_raw: str  # as stored
    variant_a_id: uuid.UUID
    variant_b_id: uuid.UUID
    label_a: str | None
    label_b: str | None
    traffic_split: float  # as the processor stored it
    calls_a: int
    calls_b: int
    quality_a: float | None
    quality_b: float | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def status_ru(self) -> str:
        return PROCESSOR_STATUS_RU.get(self.status, self.status)

    @property
    def results_note(self) -> str:
        return PROCESSOR_RESULTS_NOTE_EN

    @property
    def results_note_ru(self) -> str:
        return PROCESSOR_RESULTS_NOTE_RU

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("id", "variant_a_id", "variant_b_id"):
            out[key] = str(out[key])
        for key in ("started_at", "ended_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["source"] = "processor"
        out["per_call_results"] = None
        out["results_note"] = PROCESSOR_RESULTS_NOTE_EN
        return out


def processor_status(raw: str | None) -> str:
    """A status of prompt_ab_tests as the processor means it: surrounding quotes dropped (the column's
    default is the quoted text 'active', quotes included), case and spaces kept as they are otherwise."""
    text = (raw or "").strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text


_PROCESSOR_TESTS_SQL = """
SELECT t.id, t.test_name, t.status, t.variant_a_id, t.variant_b_id, t.traffic_split, t.calls_a, t.calls_b,
       t.quality_a, t.quality_b, t.started_at, t.ended_at,
       a.name AS name_a, a.label AS label_a, b.name AS name_b, b.label AS label_b
FROM prompt_ab_tests t
LEFT JOIN cca_prompt_versions a ON a.id = t.variant_a_id
LEFT JOIN cca_prompt_versions b ON b.id = t.variant_b_id
ORDER BY t.started_at DESC NULLS LAST, t.test_name, t.id
"""


def processor_tests(engine: Engine, *, status: str | None = None) -> list[ProcessorTest]:
    """The call processor's own A/B tests (prompt_ab_tests), newest first, read-only: ccanalytics never
    writes to that table and computes nothing for these tests (see ProcessorTest)."""
    if status is not None and status not in PROCESSOR_STATUSES:
        raise InvalidArgument(f"a processor test's status is one of {', '.join(PROCESSOR_STATUSES)}, not {status!r}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_PROCESSOR_TESTS_SQL)).all()
    out = []
    for r in rows:
        normal = processor_status(r.status)
        if status is not None and normal != status:
            continue
        out.append(
            ProcessorTest(
                id=r.id,
                test_name=r.test_name,
                prompt_name=r.name_a if r.name_a is not None and r.name_a == r.name_b else None,
                status=normal,
                status_raw=r.status,
                variant_a_id=r.variant_a_id,
                variant_b_id=r.variant_b_id,
                label_a=r.label_a,
                label_b=r.label_b,
                traffic_split=r.traffic_split,
                calls_a=r.calls_a,
                calls_b=r.calls_b,
                quality_a=_recorded(r.quality_a),
                quality_b=_recorded(r.quality_b),
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
        )
    return out


def get_processor_test(engine: Engine, test: uuid.UUID | str) -> ProcessorTest:
    """One of the call processor's tests by id (a uuid) or name (the first of that name, newest first)."""
    as_id = as_uuid(test) if isinstance(test, uuid.UUID | str) else None
    for found in processor_tests(engine):
        if found.id == as_id or (as_id is None and found.test_name == test):
            return found
    raise NotFound(f"the call processor has no A/B test {test}")


def _recorded(quality: float | None) -> float | None:
    """The processor's quality figure, or None while the column holds its default 0 (never written)."""
    return None if quality is None or quality == 0 else float(quality)


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


# ------------------------------------------------------------------------------------------ results
METRICS: dict[str, dict[str, Any]] = {
    "resolved_without_operator": {
        "kind": "proportion",
        "higher_is_better": True,
        "min_effect": 0.03,
        "label": "Доля решённых без оператора",
    },
    "quality_score": {"kind": "mean", "higher_is_better": True, "min_effect": 0.03, "label": "Оценка качества"},
    "cost_per_call": {"kind": "mean", "higher_is_better": False, "min_effect": 0.005, "label": "Стоимость звонка"},
    "duration_seconds": {"kind": "mean", "higher_is_better": False, "min_effect": 10.0, "label": "Длительность звонка"},
}


@dataclass(frozen=True)
class VariantStats:
    variant: str
    label: str
    weight: float
    n: int
    excluded: int
    resolved: int
    quality: Any  # SampleStats
    duration: Any
    cost: Any
    cost_per_resolved_usd: float | None
    response_p95_ms: float | None
    criteria: dict[str, Any]  # criterion -> SampleStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "label": self.label,
            "weight": self.weight,
            "calls": self.n,
            "excluded": self.excluded,
            "resolved_without_operator_pct": round(100 * self.resolved / self.n, 2) if self.n else None,
            "transfer_rate_pct": round(100 * (self.n - self.resolved) / self.n, 2) if self.n else None,
            "avg_quality_score": _mean(self.quality, 4),
            "avg_duration_seconds": _mean(self.duration, 1),
            "avg_cost_per_call_usd": _mean(self.cost, 6),
            "cost_per_resolved_call_usd": self.cost_per_resolved_usd,
            "response_p95_ms": round(self.response_p95_ms, 1) if self.response_p95_ms is not None else None,
            "criteria": {k: _mean(v, 4) for k, v in sorted(self.criteria.items())},
        }


def _mean(stats: Any, digits: int) -> float | None:
    return round(stats.mean, digits) if stats.n else None


@dataclass(frozen=True)
class TestResults:
    test: ABTest
    variants: tuple[VariantStats, ...]
    srm: Any  # SRMResult
    comparisons: dict[str, dict[str, Any]]  # challenger variant -> metric -> Comparison
    criteria_comparisons: dict[str, dict[str, Any]]  # challenger -> criterion -> Comparison
    recommendations: dict[str, Any]  # challenger variant -> Recommendation
    days_running: float
    calls_per_day: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test.to_dict(),
            "days_running": round(self.days_running, 2),
            "calls_per_day": round(self.calls_per_day, 1),
            "variants": [v.to_dict() for v in self.variants],
            "srm": self.srm.to_dict(),
            "comparisons": {ch: {m: c.to_dict() for m, c in ms.items()} for ch, ms in self.comparisons.items()},
            "criteria_comparisons": {
                ch: {m: c.to_dict() for m, c in ms.items()} for ch, ms in self.criteria_comparisons.items()
            },
            "recommendations": {ch: r.to_dict() for ch, r in self.recommendations.items()},
        }


def results(engine: Engine, test: uuid.UUID | str, *, now: datetime | None = None, alpha: float = 0.05) -> TestResults:
    """Per-variant metrics, comparisons of every challenger with A (B − A), the SRM check, and a
    recommendation per challenger — from sufficient statistics computed in SQL."""
    from ccanalytics.db import sqlfiles
    from ccanalytics.experiments import abtest

    t = get_test(engine, test)
    if t.started_at is None:
        raise InvalidArgument(f"test {t.test_name!r} has not started")
    with engine.connect() as conn:
        # as of ``now`` (a dated report), never past the test's end
        end = min(t.ended_at, now) if t.ended_at and now else t.ended_at or now or clock.now()
        ex = t.exclusions
        rows = {
            r.variant: r
            for r in conn.execute(
                sa.text(sqlfiles.query("ab_results")),
                {
                    "test_id": t.id,
                    "start": t.started_at,
                    "end": end,
                    "min_turns": ex.get("min_turns", 0),
                    "min_duration": ex.get("min_duration_seconds", 0),
                    "transferred_before": ex.get("exclude_transferred_before_seconds", 0),
                },
            )
        }
    variants = []
    for v in t.variants:
        r = rows.get(v.variant)
        if r is None:
            empty = abtest.SampleStats(0, 0.0, 0.0)
            variants.append(VariantStats(v.variant, v.label, v.weight, 0, 0, 0, empty, empty, empty, None, None, {}))
            continue
        criteria = {k: abtest.SampleStats(int(n), float(s), float(sq)) for k, (n, s, sq) in r.criteria.items()}
        resolved_cost = float(r.c_sum_resolved) / r.resolved if r.resolved and r.c_n else None
        variants.append(
            VariantStats(
                v.variant,
                v.label,
                v.weight,
                r.n,
                r.excluded,
                r.resolved,
                abtest.SampleStats(r.q_n, float(r.q_sum), float(r.q_sq)),
                abtest.SampleStats(r.d_n, float(r.d_sum), float(r.d_sq)),
                abtest.SampleStats(r.c_n, float(r.c_sum), float(r.c_sq)),
                round(resolved_cost, 6) if resolved_cost is not None else None,
                r.response_p95_ms,
                criteria,
            )
        )
    total = sum(v.n for v in variants)
    days = max((end - t.started_at).total_seconds() / 86400, 1 / 24)
    srm = abtest.srm_check([v.n for v in variants], [v.weight for v in variants])
    control = variants[0]
    comparisons, by_criterion, recommendations = {}, {}, {}
    for ch in variants[1:]:
        cmp = {
            "resolved_without_operator": abtest.compare_proportions(
                control.resolved, control.n, ch.resolved, ch.n, alpha=alpha, metric="resolved_without_operator"
            ),
            "quality_score": abtest.compare_means(control.quality, ch.quality, alpha=alpha, metric="quality_score"),
            "cost_per_call": abtest.compare_means(control.cost, ch.cost, alpha=alpha, metric="cost_per_call"),
            "duration_seconds": abtest.compare_means(
                control.duration, ch.duration, alpha=alpha, metric="duration_seconds"
            ),
        }
        comparisons[ch.variant] = cmp
        by_criterion[ch.variant] = {
            k: abtest.compare_means(control.criteria[k], ch.criteria[k], alpha=alpha, metric=k)
            for k in sorted(set(control.criteria) & set(ch.criteria))
        }
        specs = [
            (
                abtest.MetricSpec(
                    name,
                    METRICS[name]["kind"],
                    METRICS[name]["higher_is_better"],
                    "goal" if name == t.goal_metric else "guardrail",
                    min_effect=METRICS[name]["min_effect"],
                    label=METRICS[name]["label"],
                ),
                cmp[name],
            )
            for name in METRICS
        ]
        recommendations[ch.variant] = abtest.recommend(
            specs, srm=srm, days_running=days, calls_per_day=total / days, alpha=alpha
        )
    return TestResults(t, tuple(variants), srm, comparisons, by_criterion, recommendations, days, total / days)
