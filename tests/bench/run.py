"""Run benchmark groups and record them in docs/benchmarks.md.

python tests/bench/run.py                 # every group
python tests/bench/run.py foundation      # one group
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
]


def main(argv: list[str]) -> None:
    names = [a for a in argv if not a.startswith("-")] or GROUPS
    quick = "--quick" in argv
    for name in names:
        if name not in GROUPS:
            sys.exit(f"Error: unknown benchmark group {name!r} (known: {', '.join(GROUPS)})")
        module = importlib.import_module(f"bench_{name}")
        print(f"== {name}", flush=True)
        module.run(quick=quick)


if __name__ == "__main__":
    main(sys.argv[1:])
