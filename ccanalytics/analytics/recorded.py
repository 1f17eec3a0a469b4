"""ccanalytics's figures of a call beside what the call processor recorded for it.

The processor writes its own quality score (its LLM evaluation) and cost into the call; ccanalytics
computes its own into its own tables (docs/attach.md). ``cca_calls`` carries the figure in use
(``CCA_QUALITY_SOURCE`` / ``CCA_COST_SOURCE``; ``quality_source`` / ``cost_source`` tell whose),
ccanalytics's as ``computed_*`` and the processor's as ``recorded_*``. This module pairs them for
people, with the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Beside:
    figure: str  # quality_score | total_cost_usd
    ours: float | None  # computed by ccanalytics; None: not (yet) computed
    recorded: float | None  # recorded by the call processor; None: it recorded none

    @property
    def difference(self) -> float | None:
        """ccanalytics's minus the processor's, when both exist."""
        if self.ours is None or self.recorded is None:
            return None
        return self.ours - self.recorded


def beside(call: Mapping[str, Any]) -> list[Beside]:
    """Quality score and cost of a ``cca_calls`` row: ccanalytics's and the processor's."""

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return [
        Beside("quality_score", number(call.get("computed_quality_score")), number(call.get("recorded_quality_score"))),
        Beside(
            "total_cost_usd", number(call.get("computed_total_cost_usd")), number(call.get("recorded_total_cost_usd"))
        ),
    ]
