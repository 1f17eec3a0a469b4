"""The domain packages of ccanalytics and the imports allowed between them (issue 21,
docs/architecture.md): every import of a ccanalytics module — at the top of a module or inside a
function — goes to the importer's own package or to one this table allows; the documented tables are
these; the library never imports the web app or the scheduler (but the CLI, which starts them), and
those two never import each other; the old flat module names still import, with a warning."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import ccanalytics

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "ccanalytics"
DOC = ROOT / "docs" / "architecture.md"

# package → the packages its modules may import (besides its own). Lower layers first.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "db": {"core"},
    "auth": {"core", "db"},
    "ingest": {"core", "db"},
    "datalake": {"core"},
    "analytics": {"core", "db", "ingest"},
    "quality": {"analytics", "auth", "core", "db", "ingest"},
    "experiments": {"auth", "core", "db", "prompts"},
    "prompts": {"auth", "core", "db", "experiments", "quality"},
    "cost": {"analytics", "core", "db", "experiments"},
    "alerts": {"analytics", "core", "db", "quality"},
    "reports": {"alerts", "analytics", "auth", "core", "cost", "db", "experiments", "quality"},
    "ops": {"alerts", "analytics", "core", "cost", "datalake", "db", "quality", "reports"},
    "demo": {
        "analytics",
        "auth",
        "core",
        "cost",
        "datalake",
        "db",
        "experiments",
        "ingest",
        "ops",
        "prompts",
        "quality",
        "reports",
    },
    "cli": {
        "alerts",
        "analytics",
        "auth",
        "core",
        "cost",
        "datalake",
        "db",
        "demo",
        "experiments",
        "ingest",
        "ops",
        "prompts",
        "quality",
        "reports",
    },
}
# modules that reach higher than their package, on purpose (docs/architecture.md)
EXCEPTIONS: dict[str, set[str]] = {
    "analytics/workbench.py": {"datalake", "quality", "reports"},  # the notebook API fronts them all
    "quality/accuracy.py": {"demo"},  # the judge's accuracy against the demo generator's truth
}


def python_files(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def package_of(path: Path) -> str:
    """The top package of a module under ccanalytics/ ("" for ccanalytics/__init__.py)."""
    parts = path.relative_to(PKG).parts
    return parts[0] if len(parts) > 1 else ""


def imported(path: Path, root: Path = PKG, name: str = "ccanalytics") -> set[str]:
    """Dotted names of every module or name ``path`` imports, relative imports resolved."""
    here = [name, *path.relative_to(root).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def package_imports() -> dict[tuple[str, str], list[str]]:
    """(importer's package, imported package) → the modules that import across, for every pair."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in python_files(PKG):
        source = package_of(path)
        for dotted in imported(path):
            parts = dotted.split(".")
            if parts[0] != "ccanalytics" or len(parts) < 2 or not (PKG / parts[1]).is_dir():
                continue
            if parts[1] != source and source:
                edges.setdefault((source, parts[1]), []).append(path.relative_to(PKG).as_posix())
    return edges


def test_the_package_holds_only_domain_packages_each_saying_what_it_owns():
    assert [p.name for p in PKG.glob("*.py")] == ["__init__.py"]
    packages = sorted(p for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert {p.name for p in packages} == set(ALLOWED)
    for package in packages:
        init = package / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"
        assert len(doc.split("\n\n")[0].splitlines()) <= 3, f"{init}: what it owns, in two lines"


def allowed(source: str, module: str, target: str) -> bool:
    return target in ALLOWED[source] or target in EXCEPTIONS.get(module, set())


def test_imports_between_packages_follow_the_table():
    wrong = {
        f"{source} → {target}": sorted({m for m in modules if not allowed(source, m, target)})
        for (source, target), modules in package_imports().items()
    }
    assert {k: v for k, v in wrong.items() if v} == {}, (
        "an import the table does not allow (docs/architecture.md, 'Imports between packages')"
    )


def test_every_arrow_of_the_table_is_used():
    edges = package_imports()
    unused = [f"{s} → {t}" for s, targets in ALLOWED.items() for t in targets if (s, t) not in edges]
    unused += [
        f"{module} → {t}"
        for module, targets in EXCEPTIONS.items()
        for t in targets
        if module not in edges.get((module.split("/")[0], t), [])
    ]
    assert sorted(unused) == [], "the table allows what nothing needs: remove the arrow"


def documented(marker: str) -> dict[str, set[str]]:
    """The first two columns of the table between ``<!-- marker:begin/end -->`` in docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split(f"<!-- {marker}:begin -->")[1].split(f"<!-- {marker}:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        key, targets = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows[key.strip("`")] = {t.strip("` ") for t in targets.split(",") if t.strip("` —")}
    return rows


def test_the_documented_tables_are_these():
    assert documented("imports") == ALLOWED
    assert documented("exceptions") == EXCEPTIONS


def test_no_package_hides_a_name_of_the_notebook_api():
    """``cca.lake()`` is a function: a package ``ccanalytics.lake`` would replace it once imported."""
    api = set(ccanalytics.__all__)
    assert api & set(ALLOWED) == set()


def test_the_library_never_imports_the_web_app_or_the_scheduler_but_to_start_them():
    started: set[str] = set()
    for path in python_files(PKG):
        edges = {d.split(".")[0] for d in imported(path)} & {"webapp", "scheduler"}
        if package_of(path) == "cli":  # `ccanalytics serve` and `ccanalytics scheduler` start them
            started |= edges
        else:
            assert edges == set(), path
    assert started == {"webapp", "scheduler"}
    for top, other in (("webapp", "scheduler"), ("scheduler", "webapp")):
        for path in python_files(ROOT / top):
            assert other not in {d.split(".")[0] for d in imported(path, ROOT / top, top)}, path


def test_the_old_module_names_still_import_with_a_warning():
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('always')\n"
        "import ccanalytics\n"
        "for old, new in sorted(ccanalytics.MOVED.items()):\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module('ccanalytics.' + old)\n"
        "    assert module is importlib.import_module('ccanalytics.' + new), old\n"
        "    assert [str(w.message) for w in caught] == [f'ccanalytics.{old} is now ccanalytics.{new}'], (old, caught)\n"
        "from ccanalytics.telemetry import LiveMetrics\n"
        "from ccanalytics.ops.telemetry import LiveMetrics as New\n"
        "assert LiveMetrics is New\n"
        "print('ok', len(ccanalytics.MOVED))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ok {len(ccanalytics.MOVED)}"
    for old, new in ccanalytics.MOVED.items():
        assert not (PKG / f"{old}.py").exists() and (PKG / (new.replace(".", "/") + ".py")).is_file(), old
        assert re.fullmatch(r"[a-z_]+", old)


def test_the_packages_table_names_every_module():
    """docs/architecture.md's packages table names every module of each package (a new module is
    placed in the map a newcomer reads)."""
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", DOC.read_text(encoding="utf-8"), re.M)
        if (PKG / m.group(1)).is_dir()
    }
    missing = {
        f"{package}/{p.stem}"
        for package, text in rows.items()
        for p in (PKG / package).rglob("*.py")
        if p.stem != "__init__" and f"`{p.stem}`" not in text
    }
    assert set(rows) == {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert not missing, f"modules the packages table of docs/architecture.md does not name: {sorted(missing)}"
