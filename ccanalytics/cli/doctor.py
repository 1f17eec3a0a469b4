"""``ccanalytics doctor``: one line per dependency of this installation (registered on the main group
by ccanalytics.cli.root)."""

from __future__ import annotations

import json
import sys

import click

from ccanalytics.cli.root import _settings, main


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 60),
    help="Seconds per network check.",
)
def doctor_cmd(as_json: bool, timeout: float) -> None:
    """Check the database, migrations, partitions, judge endpoint, SMTP, Telegram, Prometheus and the
    lake and reports directories; one line each (ok, warn, fail). Exit code 1 when anything fails.

    Nothing is changed and nothing is sent: SMTP stops after login, Telegram asks getMe and getChat,
    the judge lists its models.

    \b
    Examples:
      ccanalytics doctor
      ccanalytics doctor --json --timeout 2
    """
    from ccanalytics.ops.doctor import failed, run_checks  # lazy: sqlalchemy

    checks = run_checks(_settings(), timeout=timeout)
    if as_json:
        click.echo(json.dumps({"ok": not failed(checks), "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            click.echo(check.line())
    if failed(checks):
        sys.exit(1)
