"""The router's labelled openers (tests/data/router_openers.jsonl) and their confusion matrix: one
implementation for the corpus test (test_router_corpus.py) and the benchmark (BENCH=router).

Each row: ``text`` (the caller's first utterance as STT wrote it), ``scenario`` (the IVR choice, or
null), ``label`` by meaning — "simple" (one simple intent and no risk), "complex" (anything the
cheaper model should not take: orders, bookings, cancellations, complaints, damage, payment,
several requests, emotion, consultation, a complex IVR choice) or "contentless" (a greeting or «так»
with no IVR choice) — and a ``note``. Rows noted "held out" were written after the rules and measured
before any rule was tuned on them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ccanalytics.cost.router import route

CORPUS = Path(__file__).resolve().parent / "data" / "router_openers.jsonl"
LABELS = ("simple", "complex", "contentless")
TIERS = ("cheap", "default")


def load(path: Path = CORPUS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Confusion:
    counts: Counter = field(default_factory=Counter)  # (label, tier) → openers
    misrouted: list[tuple[dict, object]] = field(default_factory=list)  # complex or contentless → cheap

    def total(self, label: str) -> int:
        return sum(self.counts[(label, t)] for t in TIERS)

    def cheap_share(self, label: str) -> float:
        return self.counts[(label, "cheap")] / self.total(label) if self.total(label) else 0.0

    @property
    def precision(self) -> float:
        """Of the openers routed cheap, the share labelled simple."""
        cheap = sum(self.counts[(label, "cheap")] for label in LABELS)
        return self.counts[("simple", "cheap")] / cheap if cheap else 0.0

    @property
    def recall(self) -> float:
        """Of the simple openers, the share routed cheap."""
        return self.cheap_share("simple")

    def markdown(self) -> str:
        rows = ["| label | openers | routed cheap | routed default | cheap share |", "|---|---:|---:|---:|---:|"]
        for label in LABELS:
            rows.append(
                f"| {label} | {self.total(label)} | {self.counts[(label, 'cheap')]} | "
                f"{self.counts[(label, 'default')]} | {self.cheap_share(label):.1%} |"
            )
        return "\n".join(rows)


def confusion(rows: list[dict]) -> Confusion:
    result = Confusion()
    for row in rows:
        d = route(row["text"], row["scenario"])
        result.counts[(row["label"], d.tier)] += 1
        if d.tier == "cheap" and row["label"] != "simple":
            result.misrouted.append((row, d))
    return result
