"""How often a judge is right: per criterion precision, recall and F1 of its verdicts against a ground
truth, and how often it agrees on whether a criterion applies at all.

The positive class is a *failed* criterion (what a reviewer is sent to look at): a judge's verdict is
"failed" when the criterion is applicable and its score is below ``definitions.LOW_QUALITY``. A truth
is ``True`` (passed), ``False`` (failed) or ``None`` (not applicable). Calls where the truth says
"not applicable" count only as a false positive when the judge failed the criterion anyway.

Two truths exist: the demo generator's staged truth (``demo.generator.generate_calls_with_truth``) and
the hand-labelled calls in ``tests/data/judge_labelled_calls.jsonl`` (``load_labelled``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ccanalytics.core.definitions import LOW_QUALITY
from ccanalytics.core.vocabulary import CRITERIA
from ccanalytics.demo.generator import generate_calls_with_truth
from ccanalytics.quality.rubric import CriterionScore
from ccanalytics.quality.transcript import CallView, ToolUse, TurnView

Truth = Mapping[str, bool | None]


@dataclass(frozen=True)
class CriterionAccuracy:
    criterion: str
    tp: int  # truth failed, judge failed
    fp: int  # truth passed (or not applicable), judge failed
    fn: int  # truth failed, judge passed or found it not applicable
    tn: int  # truth passed, judge passed
    applicability_agreed: int
    calls: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """None when there is nothing to find and nothing was flagged (F1 is undefined)."""
        if self.tp + self.fp + self.fn == 0:
            return None
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    @property
    def applicability(self) -> float | None:
        return self.applicability_agreed / self.calls if self.calls else None

    @property
    def failures(self) -> int:
        return self.tp + self.fn


def failed(score: CriterionScore | None) -> bool:
    """A judge's verdict counts as a failure: applicable and scored under the low-quality threshold."""
    return score is not None and score.applicable and score.score < LOW_QUALITY


def evaluate(
    pairs: Iterable[tuple[Truth, Mapping[str, CriterionScore]]], criteria: Iterable[str] = CRITERIA
) -> dict[str, CriterionAccuracy]:
    """Per criterion counts over (truth, judge's criteria) pairs; a criterion absent from a truth is
    not counted for that call (the truth does not say)."""
    names = tuple(criteria)
    counts = {c: [0, 0, 0, 0, 0, 0] for c in names}  # tp fp fn tn agreed calls
    for truth, judged in pairs:
        for c in names:
            if c not in truth:
                continue
            expected, verdict = truth[c], judged.get(c)
            k = counts[c]
            k[5] += 1
            k[4] += (expected is not None) == (verdict is not None and verdict.applicable)
            flagged = failed(verdict)
            if expected is False:
                k[0 if flagged else 2] += 1
            elif flagged:
                k[1] += 1
            elif expected is True:
                k[3] += 1
    return {c: CriterionAccuracy(c, *counts[c]) for c in names}


# ------------------------------------------------------------------------------------ corpora
def callview_from_record(record: Mapping[str, Any]) -> CallView:
    """The judges' view of a call log (the call processor's format, as the demo generator writes it;
    the hand-labelled calls use the same shape with fewer fields)."""
    started = record.get("started_at")
    turns = []
    for i, t in enumerate(record.get("turns") or ()):
        tools = tuple(
            ToolUse(x["name"], x.get("args"), x.get("result"), bool(x.get("success", True)), x.get("duration_ms"))
            for x in t.get("tool_calls") or ()
        )
        at = t.get("timestamp")
        turns.append(
            TurnView(
                int(t.get("turn_number") or i + 1),
                t["speaker"],
                t.get("text") or "",
                datetime.fromisoformat(at) if at else None,
                t.get("stt_confidence"),
                t.get("interrupted"),
                tools,
            )
        )
    return CallView(
        call_id=str(record.get("call_id") or ""),
        started_at=datetime.fromisoformat(started) if started else datetime(2026, 1, 1),
        scenario=record.get("scenario"),
        transferred=bool(record.get("transferred_to_operator")),
        transfer_reason=record.get("transfer_reason"),
        order_id=record.get("order_id"),
        fitting_booking_id=record.get("fitting_booking_id"),
        customer_name=record.get("customer_name"),
        turns=tuple(turns),
    )


def load_labelled(path: str | Path) -> list[tuple[CallView, dict[str, bool | None]]]:
    """The hand-labelled calls: one JSON object a line with the call (turns with their tool calls)
    and ``labels`` (criterion → "pass" | "fail" | "n/a")."""
    out = []
    values = {"pass": True, "fail": False, "n/a": None}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        labels = record["labels"]
        unknown = set(labels) - set(CRITERIA)
        if unknown or any(v not in values for v in labels.values()):
            raise ValueError(f"{path}:{n}: bad labels {labels}")
        out.append((callview_from_record(record), {c: values[v] for c, v in labels.items()}))
    return out


# ------------------------------------------------------------------------------------ reporting
def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown_rows(source: str, judge: str, result: Mapping[str, CriterionAccuracy]) -> list[str]:
    """Table rows: source | judge | criterion | failures | TP | FP | FN | precision | recall | F1 | applicability."""
    rows = []
    for c, a in result.items():
        if not a.calls:
            continue
        rows.append(
            f"| {source} | {judge} | `{c}` | {a.failures}/{a.calls} | {a.tp} | {a.fp} | {a.fn} | "
            f"{_fmt(a.precision)} | {_fmt(a.recall)} | {_fmt(a.f1)} | {_fmt(a.applicability)} |"
        )
    return rows


TABLE_HEAD = (
    "| truth | judge | criterion | failed / calls | TP | FP | FN | precision | recall | F1 | applicability agreed |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
)


# ------------------------------------------------------------------------------------ running
LABELLED_CALLS = Path(__file__).resolve().parents[2] / "tests" / "data" / "judge_labelled_calls.jsonl"
GOALS = {"demo": 0.90, "hand-labelled": 0.80}  # issue 17: rule judge F1 on every criterion


def demo_corpus(
    *, days: int = 3, calls_per_day: int = 150, end_date: Any = None, seed: int = 42
) -> list[tuple[CallView, dict[str, bool | None]]]:
    """Demo calls with the generator's staged truth (no database needed)."""
    return [
        (callview_from_record(call), truth)
        for call, truth in generate_calls_with_truth(
            seed=seed, days=days, calls_per_day=calls_per_day, end_date=end_date
        )
    ]


def judge_corpus(judge: Any, items: Iterable[tuple[CallView, Truth]]) -> dict[str, CriterionAccuracy]:
    """Judge every call of a corpus with ``judge`` (anything with ``.judge(call) -> JudgeResult``)."""
    return evaluate((truth, judge.judge(call).criteria) for call, truth in items)
