"""``ccanalytics report …``: render a notebook report to HTML and optionally deliver it."""

from __future__ import annotations

import json

import click

from ccanalytics.cli.root import _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core import definitions, timeutil

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _channels(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


_send = click.option(
    "--send", metavar="CHANNELS", help="Deliver the report: email, telegram or email,telegram (configured in settings)."
)
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_force = click.option(
    "--force", is_flag=True, help="With --send: send again to channels that already received this report."
)


def _run(kind: str, send: str | None, as_json: bool, force: bool = False, **kwargs) -> None:
    from ccanalytics.reports import run as reporting  # lazy: matplotlib
    from ccanalytics.reports import send as reportsend  # lazy: pydantic_settings

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    run = reporting.run(engine, settings, kind, send=_channels(send), skip_delivered=not force, **kwargs)
    if as_json:
        click.echo(json.dumps({"data": run.to_dict()}, ensure_ascii=False, indent=2))
        return
    r = run.rendered
    click.echo(f"{kind} report: {r.html_path} ({r.html_bytes / 1024:.0f} KB, {r.seconds:.1f} s)")
    click.echo(f"executed notebook: {r.notebook_path}")
    sent_at = reportsend.delivered_at(r.html_path)
    for channel, outcome in run.delivery.items():
        if outcome == "already sent" and channel in sent_at:
            when = sent_at[channel].astimezone(timeutil.zone(settings.timezone))
            click.echo(f"{channel}: already sent on {when:%Y-%m-%d %H:%M} — use --force to send again")
        else:
            click.echo(f"{channel}: {outcome}")


@main.group()
def report() -> None:
    """HTML reports from the notebooks in notebooks/ (papermill), written to reports/<kind>/."""


@report.command("daily")
@click.option("--date", "day", type=_DATE, help="The day (default: yesterday in CCA_TIMEZONE).")
@tenant_option
@_send
@_force
@_json
def report_daily(day, tenant, send, force, as_json) -> None:
    """The daily report: headline numbers vs the previous day and the 7-day average, and more.

    \b
    Examples:
      ccanalytics report daily --date 2026-11-24 --send email,telegram
      ccanalytics report daily --date 2026-11-24 --tenant prokoleso     # reports/daily/2026-11-24_prokoleso.html
    """
    _run("daily", send, as_json, force, day=day.date() if day else None, tenant=tenant or None)


@report.command("problems")
@click.option("--from", "date_from", type=_DATE, help="First day (default: 7 days up to yesterday).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: yesterday).")
@click.option("--quality-below", type=click.FloatRange(0, 1), default=definitions.LOW_QUALITY, show_default=True)
@click.option("--reasks-min", type=click.IntRange(1), default=2, show_default=True)
@click.option("--tool-errors-min", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--slow-ms",
    type=click.FloatRange(1),
    default=definitions.SLOW_CALL_MS,
    show_default=True,
    help="Call reply p95 above.",
)
@click.option("--no-transfers", is_flag=True, help="Do not count operator transfers as problems.")
@tenant_option
@_send
@_force
@_json
def report_problems(
    date_from, date_to, quality_below, reasks_min, tool_errors_min, slow_ms, no_transfers, tenant, send, force, as_json
) -> None:
    """The problem-call procedure over a period (docs/problem-calls.md).

    \b
    Examples:
      ccanalytics report problems --from 2026-11-18 --to 2026-11-24
      ccanalytics report problems --from 2026-11-18 --to 2026-11-24 --tenant prokoleso
    """
    from ccanalytics.reports.problemcalls import Thresholds  # lazy: sqlalchemy

    _run(
        "problems",
        send,
        as_json,
        force,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        thresholds=Thresholds(
            quality_below=quality_below,
            reasks_min=reasks_min,
            tool_errors_min=tool_errors_min,
            response_p95_ms=slow_ms,
            include_transfers=not no_transfers,
        ),
        tenant=tenant or None,
    )


@report.command("ab")
@click.option("--test", help="Test id or name (default: the running test, else the latest).")
@_send
@_force
@_json
def report_ab(test, send, force, as_json) -> None:
    """A/B test readout: per-variant metrics, CIs, SRM, recommendation (over every tenant: A/B tests and
    prompts are shared by all tenants, so this report has no --tenant)."""
    _run("ab", send, as_json, force, test=test)


@report.command("cost")
@click.option("--from", "date_from", type=_DATE, help="First day (default: 30 days up to yesterday).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: yesterday).")
@click.option("--baseline", help="Phase-1 baseline FROM:TO (default: CCA_COST_BASELINE).")
@tenant_option
@_send
@_force
@_json
def report_cost(date_from, date_to, baseline, tenant, send, force, as_json) -> None:
    """Cost review: cost per call, breakdowns, baseline vs now by lever, remaining savings.

    \b
    Examples:
      ccanalytics report cost --from 2026-11-01 --to 2026-11-30 --baseline 2026-03-01:2026-03-31
      ccanalytics report cost --from 2026-11-01 --to 2026-11-30 --tenant prokoleso
    """
    _run(
        "cost",
        send,
        as_json,
        force,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        baseline=baseline,
        tenant=tenant or None,
    )


@report.command("weekly")
@click.option(
    "--week", type=_DATE, help="Any day of the week (Monday–Sunday, CCA_TIMEZONE; default: the last full week)."
)
@tenant_option
@_send
@_force
@_json
def report_weekly(week, tenant, send, force, as_json) -> None:
    """The weekly management summary: the week against the four weeks before — volume, resolution,
    quality, cost per call and per resolved call, top problems, A/B decisions, money saved by each lever.

    \b
    Examples:
      ccanalytics report weekly                                           # the last full week
      ccanalytics report weekly --week 2026-11-25 --send email,telegram   # the week of 23.11–29.11
      ccanalytics report weekly --week 2026-11-25 --tenant prokoleso
    """
    _run("weekly", send, as_json, force, week=week.date() if week else None, tenant=tenant or None)
