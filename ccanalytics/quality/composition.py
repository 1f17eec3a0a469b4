"""How a call's overall quality score is made of its criteria, for people to check it (the call page).

ccanalytics's judge (:func:`ccanalytics.quality.rubric.overall`): the weighted mean of the applicable
criteria, ``Σ weight × score / Σ weight``, rounded to 4 digits; a criterion that does not apply or
weighs 0 takes no part; no applicable criterion gives 1; an auto-fail criterion under its threshold
sets the score to 0. The call processor's own evaluation is the plain mean of its criteria
(../shared/callcenter-schema.md). :func:`compose` redoes the sum from the stored criteria and says
whether it gives the stored score, so a 0.42 can be reconciled line by line.

A score ccanalytics's judge stores keeps the weights and the auto-fail rule it was computed with
(``weights``, ``auto_fail``, ``auto_fail_below`` in its details, quality/store.py): those are used,
whatever the configured rubric is now ("stored"). Older scores, without them, fall back to the
current rubric and say whether it is the one they were scored with.

    from ccanalytics.quality import composition, rubric_from_settings
    parts = composition.compose(call["quality_details"], rubric_from_settings(settings), call["quality_score"])
    parts.computed, parts.matches, [(p.criterion, p.weight, p.contribution) for p in parts.parts]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.quality.rubric import Rubric

TOLERANCE = 0.0005  # the stored score is rounded to 4 digits


@dataclass(frozen=True)
class Part:
    """One criterion's place in the overall score."""

    criterion: str
    weight: float
    score: float | None  # None: the judge gave none
    applicable: bool
    counted: bool  # takes part in the mean (applicable, scored, weight > 0)
    contribution: float | None  # weight × score when counted
    share: float | None  # weight / Σ counted weights when counted
    auto_fail: bool  # an auto-fail criterion of the rubric
    failed: bool  # … and it failed this call (applicable, under the rubric's threshold)


@dataclass(frozen=True)
class Composition:
    kind: str  # "ccanalytics" (weighted mean, rubric weights) | "processor" (plain mean)
    parts: tuple[Part, ...]
    weight_total: float  # Σ weight of the counted criteria
    weighted_sum: float  # Σ weight × score of the counted criteria
    mean: float  # weighted_sum / weight_total, rounded to 4 digits (1 when nothing counts)
    auto_failed: bool
    computed: float  # the score the formula gives: 0 when auto-failed, else the mean
    stored: float | None  # the score recorded for the call
    # where the weights come from: "stored" (kept with the score), "rubric" (the rubric the call was
    # scored with), "rubric_changed" (the current rubric, which differs from the one the call was scored
    # with: the sum may not give the stored score), "equal" (the processor's plain mean)
    weights_source: str
    auto_fail_below: float

    @property
    def matches(self) -> bool | None:
        """Whether the sum gives the stored score (None: no score stored)."""
        if self.stored is None:
            return None
        return abs(self.computed - self.stored) <= TOLERANCE


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def compose(details: Mapping[str, Any] | None, rubric: Rubric, stored: float | None = None) -> Composition | None:
    """The composition of the score in ``details`` (a call's quality_details: ccanalytics's document or
    the processor's in ccanalytics's shape) with ``rubric`` (the current one); None when it holds no
    criteria. ``stored`` is the call's recorded score (default: the document's own ``overall``)."""
    if not isinstance(details, Mapping) or not isinstance(details.get("criteria"), Mapping):
        return None
    criteria: Mapping[str, Any] = details["criteria"]
    judge_doc = details.get("judge")
    judge: Mapping[str, Any] = judge_doc if isinstance(judge_doc, Mapping) else {}
    processor = judge.get("kind") == "processor"
    if stored is None:
        stored = _number(details.get("overall"))
    stored_weights = details.get("weights") if isinstance(details.get("weights"), Mapping) else None
    auto_fail = set() if processor else set(rubric.auto_fail)
    auto_fail_below = rubric.auto_fail_below
    if processor:
        weights = {name: 1.0 for name in criteria}
        source = "equal"
    elif stored_weights is not None:
        weights = {name: _number(stored_weights.get(name)) or 0.0 for name in CRITERIA}
        source = "stored"
        if isinstance(details.get("auto_fail"), list):
            auto_fail = {name for name in details["auto_fail"] if isinstance(name, str)}
        below = _number(details.get("auto_fail_below"))
        auto_fail_below = below if below is not None else auto_fail_below
    else:
        weights = {name: float(rubric.weights.get(name, 0.0)) for name in CRITERIA}
        source = "rubric" if details.get("rubric_version") == rubric.version else "rubric_changed"
    names = list(CRITERIA) + [n for n in criteria if n not in CRITERIA] if processor else list(CRITERIA)
    rows = []
    for name in names:
        item = criteria.get(name)
        item = item if isinstance(item, Mapping) else {}
        score = _number(item.get("score"))
        applicable = bool(item.get("applicable", True)) and bool(item)
        weight = weights.get(name, 0.0)
        counted = applicable and score is not None and weight > 0
        failed = name in auto_fail and applicable and score is not None and score < auto_fail_below
        rows.append((name, weight, score, applicable, counted, failed))
    total = sum(w for _, w, _, _, counted, _ in rows if counted)
    weighted = sum(w * s for _, w, s, _, counted, _ in rows if counted and s is not None)  # counted: s is set
    mean = round(weighted / total, 4) if total else 1.0
    if processor:
        auto_failed = False
    elif isinstance(details.get("auto_failed"), bool) and source != "rubric_changed":
        auto_failed = details["auto_failed"]
    else:
        auto_failed = any(r[5] for r in rows)
    parts = tuple(
        Part(
            criterion=name,
            weight=weight,
            score=score,
            applicable=applicable,
            counted=counted,
            contribution=weight * score if counted and score is not None else None,
            share=weight / total if counted and total else None,
            auto_fail=name in auto_fail,
            failed=failed,
        )
        for name, weight, score, applicable, counted, failed in rows
        if processor is False or name in criteria
    )
    return Composition(
        kind="processor" if processor else "ccanalytics",
        parts=parts,
        weight_total=total,
        weighted_sum=weighted,
        mean=mean,
        auto_failed=auto_failed,
        computed=0.0 if auto_failed else mean,
        stored=stored,
        weights_source=source,
        auto_fail_below=auto_fail_below,
    )
