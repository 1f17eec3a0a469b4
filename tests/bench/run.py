"""Run benchmark groups and record them in docs/benchmarks.md.

python tests/bench/run.py                 # every group
python tests/bench/run.py foundation      # one group
python tests/bench/run.py journal --quick # a small size: reports, checks no goal

Every group's data is dated relative to the one clock (it runs on any day). A missed goal is a real
regression: the group's section is written, the other groups run, and the run exits non-zero.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import GoalMissed

GROUPS = [
    "foundation",
    "metrics",
    "quality",
    "judge",
    "prompts",
    "levers",
    "router",
    "cost",
    "lake",
    "reports",
    "journal",
    "freshness",
    "serving",
]


def main(argv: list[str]) -> None:
    names = [a for a in argv if not a.startswith("-")] or GROUPS
    quick = "--quick" in argv
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        sys.exit(f"Error: unknown benchmark group {unknown[0]!r} (known: {', '.join(GROUPS)})")
    missed = []
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        print(f"== {name}", flush=True)
        try:
            module.run(quick=quick)
        except GoalMissed as exc:  # a real regression: the other groups still run, the run fails at the end
            print(f"!! {exc}", flush=True)
            missed.append(str(exc))
    if missed:
        sys.exit("Error: benchmark goals missed (docs/benchmarks.md has the figures):\n  " + "\n  ".join(missed))


if __name__ == "__main__":
    main(sys.argv[1:])
