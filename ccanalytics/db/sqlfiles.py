"""Access to the SQL shipped with the project: migrations and named analytical queries (``sql/``)."""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from ccanalytics.core.errors import ConfigError


@lru_cache(maxsize=1)
def sql_dir() -> Path:
    """The ``sql/`` directory: beside the package in a checkout, or packaged as ``ccanalytics/sql``."""
    here = Path(__file__).resolve().parents[1]  # the ccanalytics package
    for candidate in (here.parent / "sql", here / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise ConfigError(f"cannot find the sql/ directory next to {here}")


def processor_schema() -> str:
    """The call processor's tables as its own migrations create them (``sql/processor/schema.sql``): a
    fresh database (the embedded demo, the tests) gets them before ccanalytics's migrations run."""
    return (sql_dir() / "processor" / "schema.sql").read_text(encoding="utf-8")


@cache
def query(name: str) -> str:
    """The text of a named query ``sql/queries/<name>.sql``."""
    path = sql_dir() / "queries" / f"{name}.sql"
    if not path.is_file():
        raise ConfigError(f"no named query {name!r} ({path})")
    return path.read_text(encoding="utf-8")


def split_statements(sql: str) -> list[str]:
    """Split a SQL script into statements on top-level semicolons.

    Understands single-quoted strings, double-quoted identifiers, dollar quoting and comments, which
    is all our migration files use.
    """
    statements: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            buf.append(sql[i:end])
            i = end
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            buf.append(sql[i:end])
            i = end
            continue
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            buf.append(sql[i : end + 1])
            i = end + 1
            continue
        if ch == "$":
            close = sql.find("$", i + 1)
            tag = sql[i : close + 1] if close != -1 else ""
            if tag and (tag == "$$" or tag[1:-1].replace("_", "a").isalnum()):
                end = sql.find(tag, close + 1)
                end = n if end == -1 else end + len(tag)
                buf.append(sql[i:end])
                i = end
                continue
        if ch == ";":
            statement = "".join(buf).strip()
            if _has_code(statement):
                statements.append(statement)
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    tail = "".join(buf).strip()
    if _has_code(tail):
        statements.append(tail)
    return statements


def _has_code(statement: str) -> bool:
    lines = [ln for ln in statement.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    return bool(lines)
