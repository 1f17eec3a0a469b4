"""A small labelled set for the demo, so calibration (judge vs human agreement) works out of the box.

A simulated reviewer labels a deterministic sample of scored calls: she mostly agrees with the judge,
but disagrees more often on customer satisfaction — which the calibration then flags as drift, as
a real reviewer would see it. Labels are stored like real ones (reviewer "demo-reviewer").

The κ this gives is *simulated*: it only reflects ``DISAGREE``, and the demo says so. How often the
judge is really right is measured against the generator's staged truth and the hand-labelled calls
(``ccanalytics.quality.accuracy``, ``make bench BENCH=judge``)."""

from __future__ import annotations

import random
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.quality.review import store_labels

REVIEWER = "demo-reviewer"
SAMPLE = 120
DISAGREE = {"customer_seemed_satisfied": 0.30}  # other criteria: 0.01
DEFAULT_DISAGREE = 0.01


def label_demo_calls(engine: Engine, *, seed: int = 42, sample: int = SAMPLE) -> int:
    """Label ``sample`` scored calls once (idempotent). Returns the number of calls labelled now."""
    rng = random.Random(f"labels:{seed}")
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT count(*) FROM review_labels WHERE reviewer = :r"), {"r": REVIEWER}).scalar():
            return 0
        # reviewers look at the review queue (low scores) as much as at random calls: both outcomes
        # of every criterion get labels, which κ needs
        rows = conn.execute(
            sa.text(
                "(SELECT call_id, criteria FROM call_scores WHERE is_current AND overall_score < 0.5 "
                " ORDER BY md5(call_id::text || :seed) LIMIT :half) UNION ALL "
                "(SELECT call_id, criteria FROM call_scores WHERE is_current AND overall_score >= 0.5 "
                " ORDER BY md5(call_id::text || :seed) LIMIT :half)"
            ),
            {"seed": str(seed), "half": sample // 2},
        ).all()
    with engine.begin() as conn:
        for call_id, criteria in rows:
            verdicts: dict[str, float | None] = {}
            for name, c in criteria.items():
                if not c.get("applicable", True):
                    verdicts[name] = None
                    continue
                passed = c["score"] >= 0.5
                if rng.random() < DISAGREE.get(name, DEFAULT_DISAGREE):
                    passed = not passed
                verdicts[name] = 1.0 if passed else 0.0
            store_labels(conn, uuid.UUID(str(call_id)), REVIEWER, verdicts)
    return len(rows)
