"""Reading the lake: DuckDB views over its partitions, queries, a table's rows for some days, the daily figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ccanalytics.core import definitions, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.datalake.schema import PART_FILE, TABLES, _table, schema


def connect(lake_dir: str | Path, *, tz: str = timeutil.DEFAULT_TZ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views ``calls``, ``turns``, ``tool_calls`` and
    ``scores`` over the lake (plus the partition column ``date``); timestamps show in ``tz``.

    A table without files yet is an empty view with its schema, so queries work on a new lake.
    Filters on ``date`` prune partitions: only the files of those days are opened.
    """
    timeutil.zone(tz)  # InvalidArgument for an unknown zone
    lake = Path(lake_dir)
    con = duckdb.connect()
    con.execute(f"SET TimeZone = {_literal(tz)}")
    for name in TABLES:
        if any((lake / name).glob(f"date=*/{PART_FILE}")):
            glob = str(lake / name / "*" / "*.parquet")
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM "  # noqa: S608 — name from TABLES; the path quoted by _literal
                f"{_read_parquet(_literal(glob))}"
            )
        else:
            con.register(f"_empty_{name}", schema(name, with_date=True).empty_table())
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")  # noqa: S608 — name is from TABLES
    return con


def query(
    lake_dir: str | Path,
    sql: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
) -> pl.DataFrame:
    """Run a DuckDB query over the lake's views and return a Polars DataFrame.

    lake.query(lake_dir, "SELECT scenario, count(*) FROM calls WHERE date >= DATE '2026-09-01' GROUP BY 1")
    """
    con = None
    try:
        con = connect(lake_dir, tz=tz)
        rel = con.sql(sql, params=params)
        return rel.pl() if rel is not None else pl.DataFrame()
    except duckdb.Error as exc:
        raise InvalidArgument(f"lake query failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        if con is not None:
            con.close()


# the catalogue's figures (ccanalytics.core.definitions) per business day, computed from the lake's calls
_DAILY_FIGURES = """
SELECT date AS day,
       count(*) AS total_calls,
       count(*) FILTER (WHERE NOT transferred_to_operator) AS resolved_by_bot,
       count(*) FILTER (WHERE transferred_to_operator) AS transferred,
       avg(quality_score) AS avg_quality_score,
       count(quality_score) AS scored_calls,
       coalesce(sum(total_cost_usd), 0) AS total_cost_usd,
       count(total_cost_usd) AS costed_calls,
       count(total_cost_usd) FILTER (WHERE NOT transferred_to_operator) AS costed_resolved_calls
FROM calls WHERE date BETWEEN ? AND ? GROUP BY 1 ORDER BY 1
"""


def daily_figures(
    lake_dir: str | Path, date_from: date | str, date_to: date | str, *, tz: str = timeutil.DEFAULT_TZ
) -> list[dict[str, Any]]:
    """The catalogue's call figures per day from the lake (calls, resolved, transferred, quality, cost
    per call and per resolved call) — the same definitions as daily_stats and the summaries."""
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    out = []
    for row in query(lake_dir, _DAILY_FIGURES, [first, last], tz=tz).to_dicts():
        row["resolved_by_bot_pct"] = definitions.rate_pct(row["resolved_by_bot"], row["total_calls"])
        row["transferred_to_operator_pct"] = definitions.rate_pct(row["transferred"], row["total_calls"])
        row["avg_cost_per_call_usd"] = definitions.cost_per_call(row["total_cost_usd"], row["costed_calls"])
        row["cost_per_resolved_call_usd"] = definitions.cost_per_resolved_call(
            row["total_cost_usd"], row["costed_resolved_calls"]
        )
        out.append(row)
    return out


def load(
    lake_dir: str | Path,
    table: str,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    columns: Sequence[str] | None = None,
    *,
    tz: str = timeutil.DEFAULT_TZ,
) -> pl.DataFrame:
    """Rows of one lake table for the local days date_from … date_to (default: the last 30 days),
    reading only those days' files. ``columns`` picks columns (``date`` is the partition)."""
    spec_schema = schema(table, with_date=True)
    first, last = timeutil.resolve_days(date_from, date_to, tz)
    wanted = list(columns) if columns is not None else spec_schema.names
    unknown = [c for c in wanted if c not in spec_schema.names]
    if unknown or not wanted:
        raise InvalidArgument(f"unknown column {unknown[0]!r} of lake table {table}" if unknown else "no column given")
    files = [str(path / PART_FILE) for day, path in partitions(lake_dir, table) if first <= day <= last]
    select = ", ".join(_ident(c) for c in wanted)
    con = duckdb.connect()
    try:
        con.execute(f"SET TimeZone = {_literal(tz)}")
        if files:
            sql = f"SELECT {select} FROM {_read_parquet('$files')}"  # noqa: S608 — checked, quoted columns; files bound
            return con.sql(sql, params={"files": files}).pl()
        con.register("_empty", spec_schema.empty_table())
        return con.sql(f"SELECT {select} FROM _empty").pl()  # noqa: S608 — columns checked against the schema, quoted
    finally:
        con.close()


def partitions(lake_dir: str | Path, table: str) -> list[tuple[date, Path]]:
    """The written partitions of a table, oldest first (directories without a data file are skipped)."""
    root = Path(lake_dir) / _table(table)
    out = []
    if root.is_dir():
        for path in root.iterdir():
            day = partition_day(path.name)
            if day is not None and (path / PART_FILE).is_file():
                out.append((day, path))
    return sorted(out)


def partition_day(name: str) -> date | None:
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name[5:])
    except ValueError:
        return None


def _read_parquet(files: str) -> str:
    return f"read_parquet({files}, hive_partitioning = true, hive_types = {{'date': 'DATE'}}, union_by_name = true)"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
