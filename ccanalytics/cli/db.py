"""``ccanalytics db check``: what differs between the database and what ccanalytics expects (registered
on the ``db`` group by ccanalytics.cli.root)."""

from __future__ import annotations

import json
import sys

import click

from ccanalytics.cli.root import _engine, _ensure_schema, db


@db.command("check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def db_check(as_json: bool) -> None:
    """Compare the database with what the migration files expect; one line per finding.

    \b
    missing       db migrate adds it (a table, column, index or function of ccanalytics's, a migration)
    incompatible  db migrate refuses (a missing table or column of the call processor's, a column type
                  or partitioning ccanalytics cannot work with)
    note          an accepted difference (e.g. the call processor's narrower varchar)
    Exit code 1 when anything is missing or incompatible. Changes nothing (the expected schema is built
    in a scratch schema inside a transaction that is rolled back; this needs CREATE on the database).
    \b
    Examples:
      ccanalytics db check
      ccanalytics db check --json
    """
    from ccanalytics.db.attach import check  # lazy: sqlalchemy
    from ccanalytics.db.engine import safe_url  # lazy: sqlalchemy

    engine = _engine()
    report = check(engine)
    database = safe_url(engine.url)
    if as_json:
        click.echo(json.dumps({"database": database, **report.to_dict()}, indent=2, ensure_ascii=False))
    else:
        for finding in report.findings:
            click.echo(finding.line())
        counts = {s: sum(f.severity == s for f in report.findings) for s in ("missing", "incompatible", "note")}
        verdict = "matches the expected schema" if report.ok else "differs from the expected schema"
        click.echo(f"{database}: {verdict} ({', '.join(f'{n} {s}' for s, n in counts.items())})")
    if not report.ok:
        sys.exit(1)


@db.command("tenants")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def db_tenants(as_json: bool) -> None:
    """The call processor's tenants (retail networks): the slugs `--tenant` takes.

    \b
    Examples:
      ccanalytics db tenants
      ccanalytics stats summary --tenant prokoleso
    """
    from ccanalytics.db.tenants import list_tenants  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    found = list_tenants(engine)
    if as_json:
        rows = [{"id": str(t.id), "slug": t.slug, "name": t.name, "is_active": t.is_active} for t in found]
        click.echo(json.dumps({"data": rows}, indent=2, ensure_ascii=False))
        return
    for t in found:
        click.echo("\t".join([t.slug, t.name] + ([] if t.is_active else ["(inactive)"])))
    if not found:
        click.echo("no tenants")
