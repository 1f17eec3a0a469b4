"""``ccanalytics lake …`` and ``ccanalytics retention …``: thin commands over ccanalytics.datalake.export and
ccanalytics.ops.retention (registered on the main group by ccanalytics.cli.root)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click

from ccanalytics.cli.root import _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core import timeutil
from ccanalytics.core.errors import InvalidArgument

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.group()
def lake() -> None:
    """The Parquet lake: nightly export and DuckDB queries (docs/lake-and-retention.md)."""


@lake.command("export")
@click.option("--date", "day", type=_DATE, help="Export one local day (CCA_TIMEZONE).")
@click.option("--from", "date_from", type=_DATE, help="First day of a backfill.")
@click.option("--to", "date_to", type=_DATE, help="Last day of a backfill (default: yesterday).")
@click.option(
    "--changed",
    is_flag=True,
    help="The nightly export (the default): the last --days-back days, changed partitions only.",
)
@click.option("--days-back", default=7, show_default=True, type=click.IntRange(1, 400), help="With --changed.")
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(["calls", "turns", "tool_calls", "scores"]),
    help="Only these tables (repeatable; default: all four).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lake_export(day, date_from, date_to, changed: bool, days_back: int, tables: tuple[str, ...], as_json: bool) -> None:
    """Export calls, turns, tool calls and scores into the lake (idempotent; files replaced atomically).

    \b
    Examples:
      ccanalytics lake export                                  # = --changed: last 7 days, changed only
      ccanalytics lake export --date 2026-11-23
      ccanalytics lake export --from 2026-09-01 --to 2026-11-23 --table calls --table scores
    """
    from ccanalytics.datalake.export import TABLES, ExportRun, export_changed, export_day, export_range  # lazy: pyarrow

    settings = _settings()
    if sum(bool(x) for x in (day, date_from or date_to, changed)) > 1:
        raise InvalidArgument("give one of --date, --from/--to or --changed")
    chosen = tables or TABLES
    lake_dir = settings.resolved_lake_dir()
    engine = _engine()
    _ensure_schema(engine)
    if day:
        run = ExportRun([day.date()], [export_day(engine, day.date(), lake_dir, settings.timezone, tables=chosen)])
    elif date_from or date_to:
        last = date_to.date() if date_to else timeutil.today(settings.timezone) - timedelta(days=1)
        first = date_from.date() if date_from else last
        days = (last - first).days + 1
        with click.progressbar(
            length=max(days, 0), label="exporting", file=sys.stderr, hidden=as_json or days < 2
        ) as bar:
            run = export_range(
                engine, first, last, lake_dir, settings.timezone, tables=chosen, progress=lambda _d: bar.update(1)
            )
    else:
        run = export_changed(engine, lake_dir, settings.timezone, days_back, tables=chosen)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
        return
    click.echo(
        f"lake export: {len(run.days_checked)} days checked, {len(run.exported)} days written "
        f"({run.partitions_written} partitions, {run.rows} rows) in {lake_dir}"
    )


@lake.command("query")
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON list of objects.")
@click.option(
    "--max-rows", default=50, show_default=True, type=click.IntRange(1, 100_000), help="Rows printed as a table."
)
@tenant_option
def lake_query(sql: str, as_json: bool, max_rows: int, tenant: tuple[str, ...]) -> None:
    """Run a DuckDB SQL query over the lake's views calls, turns, tool_calls and scores.

    Filter on the partition column "date" to read only those days' files. With --tenant the views hold
    those tenants' calls only, and the turns, tool calls and scores of them (the slugs are checked
    against the database).

    \b
    Examples:
      ccanalytics lake query "SELECT date, count(*) AS calls FROM calls GROUP BY 1 ORDER BY 1"
      ccanalytics lake query "SELECT tool_name, count(*) AS n FROM tool_calls GROUP BY 1" --json
      ccanalytics lake query "SELECT date, count(*) AS calls FROM calls GROUP BY 1" --tenant prokoleso
    """
    import polars as pl  # lazy: polars

    from ccanalytics.analytics.workbench import Lake  # lazy: matplotlib
    from ccanalytics.db import tenants  # lazy: sqlalchemy

    settings = _settings()
    scope = tenants.scope(_engine(), tenant) if tenant else None
    frame = Lake(settings.resolved_lake_dir(), settings.timezone, scope).sql(sql)
    if as_json:
        click.echo(json.dumps(frame.to_dicts(), default=str, ensure_ascii=False, indent=1))
        return
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        click.echo(str(frame))


@main.group()
def retention() -> None:
    """Retention: purge transcripts after 90 days and aggregates after a year (database and lake)."""


@retention.command("purge")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def retention_purge(dry_run: bool, as_json: bool) -> None:
    """Purge data past retention (CCA_RETENTION_TRANSCRIPTS_DAYS, CCA_RETENTION_AGGREGATES_DAYS).

    Old monthly partitions are dropped whole; the boundary month is deleted row by row; the current
    month is never touched. daily_stats already computed stay as they are.

    \b
    Examples:
      ccanalytics retention purge --dry-run
      ccanalytics retention purge
    """
    from ccanalytics.ops import retention as retention_mod  # lazy: polars

    engine = _engine()
    _ensure_schema(engine)
    out = retention_mod.purge_job(engine, _settings(), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"retention: transcripts before {out['database']['transcripts_cutoff']}, "
        f"aggregates before {out['database']['aggregates_cutoff']}"
    )
    for step in out["database"]["steps"]:
        click.echo(f"  {verb} {step['rows']:>9} rows  {step['action']:<6} {step['target']}")
    if not out["database"]["steps"]:
        click.echo("  database: nothing past retention")
    click.echo(f"  alert history: {verb} {out['alert_events']} events")
    lake_removed = sum(len(days) for days in out["lake"]["removed"].values())
    click.echo(f"  lake: {verb} {lake_removed} partitions")
