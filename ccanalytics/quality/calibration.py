"""Calibration: how well the judge agrees with human reviewers, per criterion.

Scores are binarised at 0.5 (pass/fail); a label pair counts when both the human and the judge
found the criterion applicable. Cohen's κ corrects agreement for chance; a κ under the drift
threshold (0.6, "moderate" in Landis & Koch) with enough labels raises a judge-drift signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import timeutil
from ccanalytics.core.vocabulary import CRITERIA

PASS = 0.5
DRIFT_KAPPA = 0.6
MIN_LABELS = 20


@dataclass(frozen=True)
class Agreement:
    criterion: str
    n: int
    accuracy: float | None
    kappa: float | None
    confusion: tuple[
        tuple[int, int], tuple[int, int]
    ]  # [[human fail & judge fail, h fail & j pass], [h pass & j fail, both pass]]
    drift: bool
    reason: str | None = None

    def to_dict(self) -> dict:
        return {
            "criterion": self.criterion,
            "n": self.n,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "confusion": [list(r) for r in self.confusion],
            "drift": self.drift,
            "reason": self.reason,
        }


def cohens_kappa(pairs: Iterable[tuple[bool, bool]]) -> tuple[float | None, float | None, tuple]:
    """(kappa, accuracy, confusion) for (human, judge) pass/fail pairs. κ = (p_o − p_e) / (1 − p_e);
    undefined (None) when chance agreement is 1 (both raters constant and equal)."""
    c = [[0, 0], [0, 0]]
    for human, judge in pairs:
        c[int(human)][int(judge)] += 1
    n = c[0][0] + c[0][1] + c[1][0] + c[1][1]
    if n == 0:
        return None, None, ((0, 0), (0, 0))
    po = (c[0][0] + c[1][1]) / n
    h1, j1 = (c[1][0] + c[1][1]) / n, (c[0][1] + c[1][1]) / n
    pe = h1 * j1 + (1 - h1) * (1 - j1)
    kappa = None if pe >= 1 else (po - pe) / (1 - pe)
    return kappa, po, ((c[0][0], c[0][1]), (c[1][0], c[1][1]))


def agreement(
    engine: Engine,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    *,
    judge_model: str | None = None,
    tz: str = timeutil.DEFAULT_TZ,
    drift_kappa: float = DRIFT_KAPPA,
    min_labels: int = MIN_LABELS,
) -> list[Agreement]:
    """Judge–human agreement per criterion over labels given in the period (default: 90 days)."""
    start, end = timeutil.period_bounds(date_from, date_to, tz, default_days=90)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT criterion, human_score, judge_score FROM review_labels "
                "WHERE created_at >= :start AND created_at < :end AND human_score IS NOT NULL "
                "AND judge_score IS NOT NULL AND (CAST(:model AS text) IS NULL OR judge_model = :model)"
            ),
            {"start": start, "end": end, "model": judge_model},
        ).all()
    by: dict[str, list[tuple[bool, bool]]] = {c: [] for c in CRITERIA}
    for criterion, human, judge in rows:
        if criterion in by:
            by[criterion].append((human >= PASS, judge >= PASS))
    out = []
    for criterion, pairs in by.items():
        kappa, accuracy, confusion = cohens_kappa(pairs)
        reason = None
        if not pairs:
            reason = "нет разметки"
        elif kappa is None:
            reason = "κ не определена: обе стороны всегда ставят одно и то же"
        elif len(pairs) < min_labels:
            reason = f"мало разметки ({len(pairs)} < {min_labels})"
        drift = kappa is not None and len(pairs) >= min_labels and kappa < drift_kappa
        out.append(
            Agreement(
                criterion,
                len(pairs),
                round(accuracy, 4) if accuracy is not None else None,
                round(kappa, 4) if kappa is not None else None,
                confusion,
                drift,
                reason,
            )
        )
    return out
