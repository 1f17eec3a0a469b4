"""The ``ccanalytics`` command: thin wrappers that parse, call one library function, and print."""

from __future__ import annotations

import getpass
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ccanalytics.core import clock
from ccanalytics.core.errors import CCAError, DatabaseUnavailable, MigrationError
from ccanalytics.ops.logs import setup

if TYPE_CHECKING:
    from ccanalytics.ingest.write import OnConflict


class _Group(click.Group):
    """Translate library errors into a one-line ``Error: …`` and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CCAError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def _settings():
    """Settings read once per command invocation, at this edge."""
    return click.get_current_context().find_root().obj["settings"]


def _engine():
    from ccanalytics.db.engine import check_connection, engine_from_settings  # lazy: sqlalchemy

    engine = engine_from_settings(_settings(), application_name="ccanalytics-cli")
    check_connection(engine)
    return engine


def tenant_option(func):
    """``--tenant SLUG`` (repeatable): scope a list, a figure or a report to these tenants (default: all).
    The command passes the slugs to the library, which checks them (ccanalytics.db.tenants.scope)."""
    return click.option(
        "--tenant",
        "tenant",
        multiple=True,
        metavar="SLUG",
        help="Only this tenant's calls (a slug from `ccanalytics db tenants`; repeatable; default: every tenant).",
    )(func)


def _actor(by: str | None = None) -> str:
    """Who acts, for the audit log and the who-columns: ``--by NAME`` when given, else ``cli:<os user>``."""
    if by is not None and by.strip():
        return by.strip()
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in a bare container (no passwd entry for the uid)
        return "cli"


def _ensure_schema(engine) -> None:
    from ccanalytics.db.migrate import migrate  # lazy: sqlalchemy

    migrate(engine, partitions_ahead_months=_settings().partitions_ahead_months)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ccanalytics")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Analytics, quality and optimisation for the AI voice call centre.

    \b
    Examples:
      ccanalytics demo                 # embedded database, demo data, admin at http://127.0.0.1:8050
      ccanalytics db status
      ccanalytics ingest calls.jsonl --reject-file rejects.jsonl

    Configuration comes from CCA_* environment variables (see docs/configuration.md);
    without CCA_DATABASE_URL an embedded PostgreSQL in .ccanalytics/pg is used.
    """
    from ccanalytics.core.config import load_settings  # lazy: pydantic_settings

    ctx.ensure_object(dict)["settings"] = load_settings()


# ----------------------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database schema: migrate and inspect."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations and create partitions ahead.

    \b
    Example:
      CCA_DATABASE_URL=postgresql://cca@db/calls ccanalytics db migrate
    """
    from ccanalytics.db.engine import safe_url  # lazy: sqlalchemy
    from ccanalytics.db.migrate import migrate  # lazy: sqlalchemy

    engine = _engine()
    applied = migrate(
        engine,
        partitions_ahead_months=_settings().partitions_ahead_months,
        on_applied=lambda m: click.echo(f"applied {m.path.name}"),
        on_step=lambda step: click.echo(f"attach: {step}"),  # attaching to the call processor's tables
    )
    click.echo(f"{safe_url(engine.url)}: schema is current" + (f" ({len(applied)} applied)" if applied else ""))


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def db_status(as_json: bool) -> None:
    """Show the database, applied and pending migrations, and partitions.

    \b
    Example:
      ccanalytics db status --json
    """
    from ccanalytics.db.engine import safe_url  # lazy: sqlalchemy
    from ccanalytics.db.migrations import status  # lazy: sqlalchemy

    engine = _engine()
    st = status(engine)
    pending = [m.path.name for m in st.pending]
    info = {
        "database": safe_url(engine.url),
        "up_to_date": st.up_to_date,
        "applied": [{"version": a.version, "name": a.name, "applied_at": a.applied_at.isoformat()} for a in st.applied],
        "pending": pending,
        "changed_after_apply": st.changed,
        "partitions": st.partitions,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    click.echo(f"database:   {info['database']}")
    click.echo(f"migrations: {len(st.applied)} applied, {len(st.pending)} pending")
    for name in pending:
        click.echo(f"  pending   {name}")
    for version in st.changed:
        click.echo(f"  CHANGED   migration {version:03d} differs from the applied one")
    for table, parts in st.partitions.items():
        span = f"{parts[0]} … {parts[-1]}" if parts else "none"
        click.echo(f"partitions: {table:<16} {len(parts):>3}  {span}")
    if not st.up_to_date:
        sys.exit(1)


# ------------------------------------------------------------------------------------- ingest
@main.command("ingest")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str))
@click.option(
    "--reject-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where invalid records go (JSONL with reasons). Default: <SOURCE>.rejects.jsonl",
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--on-conflict",
    type=click.Choice(["replace", "ignore", "error"]),
    default="replace",
    show_default=True,
    help="What a changed re-delivery of a stored call_id does.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    help="Processes validating JSONL lines while this one writes (default: one per core but one; 0: none).",
)
def ingest_cmd(
    source: str, reject_file: Path | None, batch_size: int, on_conflict: OnConflict, workers: int | None
) -> None:
    """Load call logs: a JSONL file (one call per line) in bulk, or a JSON file (a call or an array).

    \b
    JSONL loads with COPY in batches, validated by worker processes; invalid lines go to the reject
    file and the rest loads.
    A .json file is all-or-nothing. SOURCE may be '-' for JSONL on standard input.
    \b
    Example:
      ccanalytics ingest calls-2026-11-23.jsonl --reject-file rejects.jsonl
    """
    from ccanalytics.ingest.load import ingest, ingest_file  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    if source.endswith(".json"):
        result = ingest(engine, Path(source).read_bytes(), on_conflict=on_conflict)
    else:
        is_stdin = source == "-"
        rejects = reject_file or (Path("rejects.jsonl") if is_stdin else Path(source + ".rejects.jsonl"))
        size = 0 if is_stdin else Path(source).stat().st_size
        handle = click.open_file("-", "rb") if is_stdin else source
        with click.progressbar(length=size, label="ingesting", file=sys.stderr, show_pos=False, hidden=is_stdin) as bar:
            result = ingest_file(
                engine,
                handle,
                reject_path=rejects,
                batch_size=batch_size,
                on_conflict=on_conflict,
                progress=bar.update,
                workers=workers,
            )
        if result.rejected:
            click.echo(f"{result.rejected} invalid records written to {rejects}", err=True)
            for problem in result.rejects[:5]:
                click.echo("  " + problem.describe("line"), err=True)
        elif rejects.exists() and rejects.stat().st_size == 0:
            rejects.unlink()
    click.echo(" ".join(f"{k}={v}" for k, v in result.summary().items()))
    if result.rejected:
        sys.exit(2)


# ----------------------------------------------------------------------------------- generate
@main.command("generate")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 400))
@click.option("--calls-per-day", default=400, show_default=True, type=click.IntRange(1, 20_000))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--end-date", type=click.DateTime(formats=["%Y-%m-%d"]), help="Last day (default: today in CCA_TIMEZONE)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    help="Write JSONL here instead of loading into the database ('-' for stdout).",
)
@click.option(
    "--no-ab-test",
    is_flag=True,
    help="Leave out the demo A/B assignment (for loading into a database without the demo's prompts).",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    metavar="SLUG",
    help="With --out: split the calls between these tenants (repeatable) instead of the demo's shinservice and "
    "prokoleso, for a database without the demo's tenants.",
)
def generate_cmd(
    days: int, calls_per_day: int, seed: int, end_date, out: str | None, no_ab_test: bool, tenants: tuple[str, ...]
) -> None:
    """Generate realistic synthetic calls (Ukrainian dialogues), deterministic for a seed.

    \b
    Example:
      ccanalytics generate --days 7 --calls-per-day 200 --seed 1 --out week.jsonl --no-ab-test --tenant shop
      ccanalytics generate --days 30            # straight into the database, with the demo tenants and prompts
    """
    from ccanalytics.demo import generator  # lazy: sqlalchemy

    if tenants and not out:
        raise click.UsageError("--tenant goes with --out (the database load uses the demo's tenants)")
    end = end_date.date() if end_date else None
    ab_test = None if no_ab_test else generator.DEMO_AB_TEST
    calls = generator.generate_calls(
        seed=seed,
        days=days,
        calls_per_day=calls_per_day,
        end_date=end,
        ab_test=ab_test,
        until=clock.now(),
        tenants=tenants or generator.DEMO_TENANT_SLUGS,
    )
    if out:
        stream = click.open_file("-", "w") if out == "-" else open(out, "w", encoding="utf-8")
        n = 0
        try:
            for call in calls:
                stream.write(json.dumps(call, ensure_ascii=False) + "\n")
                n += 1
        finally:
            if stream is not sys.stdout and out != "-":
                stream.close()
        if out != "-":
            click.echo(f"wrote {n} calls to {out}")
        return
    from ccanalytics.demo import load_demo_data  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    result = load_demo_data(engine, seed=seed, days=days, calls_per_day=calls_per_day, end_date=end)
    click.echo(" ".join(f"{k}={v}" for k, v in result.summary().items()))


# --------------------------------------------------------------------------------------- demo
@main.command("demo")
@click.option("--no-serve", is_flag=True, help="Prepare everything, print it, and exit.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 400))
@click.option("--calls-per-day", default=400, show_default=True, type=click.IntRange(1, 20_000))
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--reset", is_flag=True, help="Drop the demo database first (embedded server only).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
def demo_cmd(no_serve: bool, days: int, calls_per_day: int, seed: int, reset: bool, host: str, port: int) -> None:
    """Set up a working demo: embedded database, demo data, jobs; then serve the admin.

    \b
    Example:
      ccanalytics demo --no-serve --days 7 --calls-per-day 100
    """
    from ccanalytics.demo import run_demo  # lazy: sqlalchemy

    report = run_demo(_settings(), seed=seed, days=days, calls_per_day=calls_per_day, reset=reset, echo=click.echo)
    report.engine.dispose()  # the workers build their own engines
    if no_serve:
        return
    _serve(host, port, prepared=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes (default: CCA_SERVE_WORKERS, else one per core, at least 2, at most 8).",
)
@click.option(
    "--threads", type=click.IntRange(1, 256), help="Threads per worker process (default: CCA_SERVE_THREADS, 2)."
)
def serve_cmd(host: str, port: int, workers: int | None, threads: int | None) -> None:
    """Serve the admin web app (gunicorn: several worker processes), logging JSON lines to stderr.

    Starts even when the database is down: pages then show a banner and recover by themselves.
    With the embedded database it also runs the scheduler in a child process. SIGTERM stops it
    gracefully (requests in flight finish), Ctrl-C at once.

    \b
    Example:
      ccanalytics serve --host 0.0.0.0 --port 8050 --workers 4 --threads 4
    """
    _serve(host, port, workers=workers, threads=threads)


SCHEMA_NOT_READY = (
    "the database has no ccanalytics schema yet (run `ccanalytics db check`, then `ccanalytics db migrate`)"
)
SCHEDULER_CHILD = ("-c", "from ccanalytics.cli.root import main; main(['scheduler'], prog_name='ccanalytics')")


def _serve(
    host: str, port: int, *, workers: int | None = None, threads: int | None = None, prepared: bool = False
) -> None:
    """Serve the admin (webapp.serving). ``prepared``: the demo has migrated the database. Else start
    even when the database is unreachable (migrations then wait for the scheduler or
    ``ccanalytics db migrate``)."""
    import sqlalchemy as sa  # lazy: sqlalchemy

    from ccanalytics.db.engine import check_connection, engine_from_settings, resolve_url, safe_url  # lazy: sqlalchemy
    from ccanalytics.db.migrations import status  # lazy: sqlalchemy
    from webapp import create_app  # lazy: flask
    from webapp.db import admin_engine  # lazy: flask
    from webapp.serving import ServeOptions, default_workers, serve  # lazy: flask

    setup(logging.INFO)  # JSON lines on stderr: one per request, with request_id (docs/operations.md)
    log = logging.getLogger("ccanalytics.serve")
    settings = _settings()
    url = resolve_url(settings)  # the embedded server starts here and stays while this process runs
    schema_problem = None
    schema_ready = prepared  # seen in place here: the workers need not ask again (webapp.db.SchemaGate)
    if not prepared:
        engine = engine_from_settings(settings, url=url, pool_size=1, application_name="ccanalytics-admin")
        try:
            check_connection(engine)
            if settings.database_url:
                # someone else's database (the call processor's): attaching is the operator's decision
                # (`ccanalytics db migrate`); until then the pages say what to do
                if not status(engine).up_to_date:
                    schema_problem = SCHEMA_NOT_READY
            else:
                _ensure_schema(engine)  # the embedded database is ccanalytics's own
            schema_ready = schema_problem is None
        except (DatabaseUnavailable, sa.exc.OperationalError) as exc:
            reason = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
            log.error("database unavailable at start: %s; serving with a banner until it is back", reason)
            click.echo(f"warning: database {safe_url(engine.url)} is unavailable; pages show a banner", err=True)
        except MigrationError as exc:
            schema_problem = exc.message
        finally:
            engine.dispose()  # no connection may cross the fork into the workers
        if schema_problem:
            log.error("ccanalytics schema not in place: %s; pages say what to do", schema_problem)
            click.echo(f"warning: {schema_problem}; the admin explains it until `ccanalytics db migrate` ran", err=True)

    def make_app():  # in each worker process, after the fork; the app gets this process's one Settings
        engine = admin_engine(settings, url=url)
        return create_app(
            {"ENGINE": engine, "SCHEMA_GATE": True, "SCHEMA_PROBLEM": schema_problem, "SCHEMA_READY": schema_ready},
            settings=settings,
        )

    # the embedded single-machine set-up runs its jobs beside the admin, in a process of their own
    child = None if settings.database_url else (sys.executable, *SCHEDULER_CHILD)
    options = ServeOptions(
        host=host,
        port=port,
        workers=workers or settings.serve_workers or default_workers(),
        threads=threads or settings.serve_threads,
        child=child,
    )
    if child:
        click.echo("scheduler: running in a child process (scoring, daily stats, problems, partitions)")
    click.echo(f"admin: http://{host}:{port}/   Prometheus metrics: http://{host}:{port}/metrics  (Ctrl-C stops)")
    click.echo(f"serving with {options.workers} worker processes × {options.threads} threads (gunicorn)")
    click.echo("log in: user admin with the password the demo printed, or: ccanalytics users add NAME --role admin")
    serve(make_app, options)


if __name__ == "__main__":  # pragma: no cover
    main()
