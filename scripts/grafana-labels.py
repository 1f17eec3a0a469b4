#!/usr/bin/env python3
"""Write the Russian labels of ccanalytics.core.labels into the Grafana dashboards.

Regenerates, in grafana/dashboards/*.json, the SQL label expressions (``/* labels.X(key) */ …
/* end labels */``) and the Prometheus panels' label overrides from ccanalytics.core.labels (the one
vocabulary): run it after changing a label or adding a panel that shows codes. ``--check`` changes
nothing and exits 1 when a dashboard is not current (tests/test_grafana_dashboards.py does the same).

    .venv/bin/python scripts/grafana-labels.py [--check] [DASHBOARD.json …]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ccanalytics.ops import dashlabels

BOARDS = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"


def render(dashboard: dict) -> str:
    """A dashboard as the repository keeps it: two-space indent, UTF-8 text, a final newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when not current")
    parser.add_argument("paths", nargs="*", type=Path, help="dashboards (default: grafana/dashboards/*.json)")
    args = parser.parse_args(argv)
    stale = []
    for path in args.paths or sorted(BOARDS.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        fresh = render(dashlabels.labelled(json.loads(text)))
        if fresh != text:
            stale.append(path)
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    for path in stale:
        print(f"{path}: {'not current' if args.check else 'labels rewritten'}")
    problems = dashlabels.label_problems(args.paths or sorted(BOARDS.glob("*.json")))
    for problem in problems if not args.check else []:
        print(problem, file=sys.stderr)
    return 1 if (args.check and stale) or (not args.check and problems) else 0


if __name__ == "__main__":
    sys.exit(main())
