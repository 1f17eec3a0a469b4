"""``ccanalytics report …``: render a notebook report to HTML and optionally deliver it."""

from __future__ import annotations

import json

import click

from . import definitions
from .cli import _engine, _ensure_schema, _settings, main

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _channels(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


_send = click.option(
    "--send", metavar="CHANNELS", help="Deliver the report: email, telegram or email,telegram (configured in settings)."
)
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _run(kind: str, send: str | None, as_json: bool, **kwargs) -> None:
    from . import reporting

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    run = reporting.run(engine, settings, kind, send=_channels(send), **kwargs)
    if as_json:
        click.echo(json.dumps({"data": run.to_dict()}, ensure_ascii=False, indent=2))
        return
    r = run.rendered
    click.echo(f"{kind} report: {r.html_path} ({r.html_bytes / 1024:.0f} KB, {r.seconds:.1f} s)")
    click.echo(f"executed notebook: {r.notebook_path}")
    if run.delivery:
        click.echo("delivered: " + ", ".join(f"{k} {v}" for k, v in run.delivery.items()))


@main.group()
def report() -> None:
    """HTML reports from the notebooks in notebooks/ (papermill), written to reports/<kind>/."""


@report.command("daily")
@click.option("--date", "day", type=_DATE, help="The day (default: yesterday, Kyiv).")
@_send
@_json
def report_daily(day, send, as_json) -> None:
    """The daily report: headline numbers vs the previous day and the 7-day average, and more.

    \b
    Example:
      ccanalytics report daily --date 2026-11-24 --send email,telegram
    """
    _run("daily", send, as_json, day=day.date() if day else None)


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
@_send
@_json
def report_problems(
    date_from, date_to, quality_below, reasks_min, tool_errors_min, slow_ms, no_transfers, send, as_json
) -> None:
    """The problem-call procedure over a period (docs/problem-calls.md).

    \b
    Example:
      ccanalytics report problems --from 2026-11-18 --to 2026-11-24
    """
    from .problemcalls import Thresholds

    _run(
        "problems",
        send,
        as_json,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        thresholds=Thresholds(
            quality_below=quality_below,
            reasks_min=reasks_min,
            tool_errors_min=tool_errors_min,
            response_p95_ms=slow_ms,
            include_transfers=not no_transfers,
        ),
    )


@report.command("ab")
@click.option("--test", help="Test id or name (default: the running test, else the latest).")
@_send
@_json
def report_ab(test, send, as_json) -> None:
    """A/B test readout: per-variant metrics, CIs, SRM, recommendation."""
    _run("ab", send, as_json, test=test)


@report.command("cost")
@click.option("--from", "date_from", type=_DATE, help="First day (default: 30 days up to yesterday).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: yesterday).")
@click.option("--baseline", help="Phase-1 baseline FROM:TO (default: CCA_COST_BASELINE).")
@_send
@_json
def report_cost(date_from, date_to, baseline, send, as_json) -> None:
    """Cost review: cost per call, breakdowns, baseline vs now by lever, remaining savings."""
    _run(
        "cost",
        send,
        as_json,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        baseline=baseline,
    )
