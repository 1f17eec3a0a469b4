"""Judge accuracy (issue 17): per criterion precision, recall, F1 and applicability agreement of the
rule judge against the demo generator's staged truth and the hand-labelled calls
(tests/data/judge_labelled_calls.jsonl), and of the LLM judge's prompt and parsing against a local
OpenAI-compatible server replaying answers.

The positive class is a failed criterion (score under definitions.LOW_QUALITY). No answers of a real
model are recorded yet: the LLM rows replay oracle answers made from the truth, so they measure the
prompt, transport and parsing, not a model's judgement (recording real answers is left open).
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

from common import write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fake OpenAI server

COMMAND = "make bench BENCH=judge"
END = date(2026, 11, 20)  # fixed, so the table does not move with the calendar


def run(quick: bool = False) -> None:
    from judgecorpus import replay_llm_judge

    from ccanalytics.core.definitions import LOW_QUALITY
    from ccanalytics.demo.generator import TRUTH_CRITERIA
    from ccanalytics.quality import RulesJudge
    from ccanalytics.quality.accuracy import (
        GOALS,
        LABELLED_CALLS,
        TABLE_HEAD,
        demo_corpus,
        judge_corpus,
        load_labelled,
        markdown_rows,
    )

    days, per_day = (3, 150) if quick else (14, 400)
    t0 = time.perf_counter()
    demo = demo_corpus(days=days, calls_per_day=per_day, end_date=END)
    hand = load_labelled(LABELLED_CALLS)
    rules_demo = judge_corpus(RulesJudge(), demo)
    rules_demo = {c: rules_demo[c] for c in TRUTH_CRITERIA}
    rules_hand = judge_corpus(RulesJudge(), hand)
    llm_hand = replay_llm_judge(hand)
    seconds = time.perf_counter() - t0

    def worst(result):
        values = [a.f1 for a in result.values() if a.f1 is not None]
        return min(values) if values else None

    rows = [
        *markdown_rows(f"demo ({len(demo)} calls)", "rules", rules_demo),
        *markdown_rows(f"hand-labelled ({len(hand)} calls)", "rules", rules_hand),
        *markdown_rows(f"hand-labelled ({len(hand)} calls)", "LLM, oracle replay", llm_hand),
    ]
    lowest_demo, lowest_hand = worst(rules_demo), worst(rules_hand)
    body = "\n".join(
        [
            "## Judge accuracy",
            "",
            "How often a judge is right, per criterion. **Positive class: the criterion failed** (a score "
            f"under {LOW_QUALITY:g}, `definitions.LOW_QUALITY`, while applicable). Truths: the demo generator's "
            f"staged truth ({days} days × ~{per_day} calls ending {END}, seed 42; conciseness is not staged, so "
            "it has no demo row) and the hand-labelled calls in `tests/data/judge_labelled_calls.jsonl` "
            "(labelled by reading the transcripts). *Applicability agreed*: share of calls where the judge and "
            "the truth agree on whether the criterion applies.",
            "",
            f"Goals (issue 17): rule judge F1 ≥ {GOALS['demo']:.2f} on every criterion on the demo truth — lowest "
            f"**{lowest_demo:.2f}**; ≥ {GOALS['hand-labelled']:.2f} on the hand-labelled set — lowest "
            f"**{lowest_hand:.2f}**.",
            "",
            "The LLM rows replay *oracle* answers (made from the labels) through a local OpenAI-compatible "
            "server, the real SDK and `parse_answer`: they show the prompt, transport and parsing lose nothing. "
            "No real model's answers are recorded yet, so they say nothing of a model's judgement.",
            "",
            *TABLE_HEAD,
            *rows,
            "",
            f"All three evaluations together: {seconds:.1f} s.",
        ]
    )
    print(body)
    write_section("judge", COMMAND, body)
