"""``ccanalytics cost …``: thin commands over ccanalytics.cost."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from .cli import _engine, _ensure_schema, _settings, main

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.group()
def cost() -> None:
    """Cost per call: pricing from usage at dated prices, and baseline-vs-current reports."""


@cost.command("compute")
@click.option("--from", "date_from", type=_DATE, help="First day (default: 30 days ago).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: today).")
def cost_compute(date_from, date_to) -> None:
    """Price the calls of a period from their usage (idempotent).

    \b
    Example:
      ccanalytics cost compute --from 2026-11-01 --to 2026-11-23
    """
    from . import cost as c
    from . import pricing

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    run = c.compute_costs(
        engine,
        date_from.date() if date_from else None,
        date_to.date() if date_to else None,
        book=pricing.load(settings.pricing_file),
        tz=settings.timezone,
    )
    click.echo(
        f"priced {run.priced} calls ({run.estimated} estimated from transcripts); {run.unpriced} without a price"
    )


@cost.command("report")
@click.option("--baseline", help="FROM:TO (default: CCA_COST_BASELINE, else the 14 days before --current).")
@click.option("--current", help="FROM:TO (default: the last 14 days).")
@click.option("--json", "as_json", is_flag=True)
def cost_report(baseline: str | None, current: str | None, as_json: bool) -> None:
    """Cost per call baseline → current, reduction_pct and the saving of each lever.

    \b
    Example:
      ccanalytics cost report --baseline 2026-03-01:2026-03-31 --current 2026-11-01:2026-11-23 --json
    """
    from . import cost as c
    from . import pricing, timeutil

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    today = timeutil.today(settings.timezone)
    current = current or f"{today - timedelta(days=13)}:{today}"
    if baseline is None:
        baseline = settings.cost_baseline
    if baseline is None:
        start = timeutil.to_date(current.split(":")[0], settings.timezone)
        baseline = f"{start - timedelta(days=14)}:{start - timedelta(days=1)}"
    report = c.cost_report(engine, baseline, current, book=pricing.load(settings.pricing_file), tz=settings.timezone)
    if as_json:
        click.echo(json.dumps({"data": report}, indent=2, ensure_ascii=False))
        return
    b, cur = report["baseline"], report["current"]
    click.echo(
        f"baseline {b['period']['date_from']} … {b['period']['date_to']}: ${b['cost_per_call_usd']:.4f} per call"
    )
    click.echo(
        f"current  {cur['period']['date_from']} … {cur['period']['date_to']}: ${cur['cost_per_call_usd']:.4f} per call"
    )
    per_resolved = report["reduction_per_resolved_call_pct"]
    click.echo(f"reduction: {report['reduction_pct']}% per call, {per_resolved}% per resolved call")
    for lever in report["levers"]:
        click.echo(
            f"  {lever['lever']:<14} {lever['saving_per_call_usd']:+.4f} $/call ({lever['saving_pct_of_baseline']}%)  "
            f"{lever['detail']}"
        )
