"""House gates that ruff and mypy do not check (issue 21, docs/architecture.md "Gates"):

- no module of the library, the web app or the scheduler above MAX_LINES lines (the demo generator
  and its phrase book excepted: they are data);
- no import inside a function unless it keeps a heavy dependency out of the importer's import time,
  and says which one: ``from ccanalytics.reports import charts  # lazy: matplotlib``. What a module
  pulls in is read statically from every module-level import, transitively.

(Complexity ≤ 15 per function is ruff's C90, in ``make lint``.)"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("ccanalytics", "webapp", "scheduler")
MAX_LINES = 450
LONG_ON_PURPOSE = {"ccanalytics/demo/generator.py", "ccanalytics/demo/phrases.py"}
# third-party packages whose import costs ≥ 0.1 s here (measured: papermill 1.3 s, nbformat 1.0 s,
# matplotlib 0.43 s, openai 0.43 s, pandas 0.30 s, polars 0.24 s, sqlalchemy 0.21 s, pyarrow 0.18 s,
# flask 0.13 s, psycopg 0.13 s, duckdb 0.12 s, httpx 0.11 s, pydantic_settings 0.10 s), plus the two applications the CLI starts,
# and pgserver, which reads XDG_RUNTIME_DIR when imported (db.embedded prepares that directory first)
HEAVY = {
    "pgserver",
    "papermill",
    "nbformat",
    "nbconvert",
    "matplotlib",
    "openai",
    "pandas",
    "polars",
    "sqlalchemy",
    "pyarrow",
    "flask",
    "psycopg",
    "duckdb",
    "httpx",
    "pydantic_settings",
    "webapp",
    "scheduler",
}
LAZY = re.compile(r"#\s*lazy:\s*(?P<deps>[\w., ]+)")


def files() -> list[Path]:
    return sorted(p for top in TOPS for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in files()}


def resolve(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The modules an import statement loads (a name imported from a package may be a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".")
        if not MODULES[importer].name == "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return [base, *found]


def with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(node.test)


def top_level_imports(module: str) -> list[str]:
    """Modules loaded when ``module`` is imported: its module-level imports (``if TYPE_CHECKING``
    blocks excepted), wherever they sit outside functions and classes' methods."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out: list[str] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                out.extend(resolve(node, module))
            elif isinstance(node, ast.If):
                if not type_checking_only(node):
                    walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for handler in node.handlers:
                    walk(handler.body)
                walk(node.orelse)
                walk(node.finalbody)
            elif isinstance(node, ast.ClassDef | ast.With):
                walk(node.body)

    walk(tree.body)
    return out


@cache
def heavy_reach(module: str) -> frozenset[str]:
    """The heavy packages importing ``module`` loads, transitively."""
    reach: set[str] = set()
    seen: set[str] = set()
    todo = with_parents(module)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        top = current.split(".")[0]
        if top in HEAVY:
            reach.add(top)
        if current in MODULES:
            for target in top_level_imports(current):
                todo.extend(with_parents(target))
    return frozenset(reach)


def function_imports() -> list[tuple[str, int, ast.Import | ast.ImportFrom]]:
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                out.extend((module, n.lineno, n) for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom))
    return sorted(out, key=lambda item: (item[0], item[1]))


def test_no_module_is_longer_than_the_limit():
    long = {
        str(p.relative_to(ROOT)): n
        for p in files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(p.relative_to(ROOT)) not in LONG_ON_PURPOSE
    }
    assert not long, f"modules above {MAX_LINES} lines — split them by concept: {long}"


def test_imports_inside_functions_only_defer_a_heavy_dependency_and_say_which():
    wrong = []
    for module, line, node in function_imports():
        source = MODULES[module].read_text(encoding="utf-8").splitlines()
        text = " ".join(source[node.lineno - 1 : (node.end_lineno or node.lineno)])
        importer = heavy_reach(module)
        gained: set[str] = set()
        for target in resolve(node, module):
            gained |= heavy_reach(target) - importer
        where = f"{MODULES[module].relative_to(ROOT)}:{line}"
        if not gained:
            wrong.append(f"{where}: defers nothing heavy — import it at the top of the module")
            continue
        said = LAZY.search(text)
        named = {d.strip() for d in said.group("deps").replace(",", " ").split()} if said else set()
        if not named & gained:
            wrong.append(f"{where}: say what it defers, e.g. '# lazy: {', '.join(sorted(gained))}'")
    assert not wrong, "\n".join(wrong)


def test_the_gate_reads_imports_right():
    """The static reading agrees with what Python loads, on modules whose imports are known."""
    assert "sqlalchemy" in heavy_reach("ccanalytics.db.engine")
    assert "matplotlib" in heavy_reach("ccanalytics.reports.charts")
    assert heavy_reach("ccanalytics.core.errors") == frozenset()
    assert heavy_reach("ccanalytics") == frozenset()  # `import ccanalytics as cca` stays light
    assert "flask" in heavy_reach("webapp")
