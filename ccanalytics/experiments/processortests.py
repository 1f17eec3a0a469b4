"""The call processor's own A/B tests (its table prompt_ab_tests), listed read-only beside ccanalytics's."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import labels
from ccanalytics.core.errors import InvalidArgument, NotFound
from ccanalytics.prompts.versions import as_uuid

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
