"""``ccanalytics cost …``: thin commands over ccanalytics.cost.calls."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from ccanalytics.cli.root import _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core import timeutil
from ccanalytics.cost import pricing

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
    from ccanalytics.cost import calls as c  # lazy: sqlalchemy

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
@tenant_option
@click.option("--json", "as_json", is_flag=True)
def cost_report(baseline: str | None, current: str | None, tenant: tuple[str, ...], as_json: bool) -> None:
    """Cost per call baseline → current, reduction_pct and the saving of each lever.

    \b
    Examples:
      ccanalytics cost report --baseline 2026-03-01:2026-03-31 --current 2026-11-01:2026-11-23 --json
      ccanalytics cost report --baseline 2026-03-01:2026-03-31 --current 2026-11-01:2026-11-23 --tenant prokoleso
    """
    from ccanalytics.cost import calls as c  # lazy: sqlalchemy

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
    report = c.cost_report(
        engine,
        baseline,
        current,
        book=pricing.load(settings.pricing_file),
        tz=settings.timezone,
        tenant=tenant or None,
    )
    if as_json:
        click.echo(json.dumps({"data": report}, indent=2, ensure_ascii=False))
        return
    b, cur = report["baseline"], report["current"]
    if report["tenants"] is not None:
        click.echo(f"tenants: {', '.join(report['tenants'])}")
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


def _period_options(fn):
    """--from, --to and --json (and --tenant, added by the commands that read calls per tenant)."""
    fn = click.option("--to", "date_to", type=_DATE, help="Last day (default: today).")(fn)
    fn = click.option("--from", "date_from", type=_DATE, help="First day (default: 30 days ago).")(fn)
    return click.option("--json", "as_json", is_flag=True)(fn)


def _days(date_from, date_to):
    return (date_from.date() if date_from else None), (date_to.date() if date_to else None)


@cost.command("whisper")
@_period_options
@tenant_option
def cost_whisper(date_from, date_to, as_json: bool, tenant: tuple[str, ...]) -> None:
    """Self-hosted Whisper against Google STT: break-even calls/day from actual volumes (of --tenant:
    at those tenants' volume).

    \b
    Example:
      ccanalytics cost whisper --from 2026-11-01
    """
    from ccanalytics.cost import levers  # lazy: polars

    settings = _settings()
    r = levers.whisper_break_even(
        _engine(),
        *_days(date_from, date_to),
        book=pricing.load(settings.pricing_file),
        tz=settings.timezone,
        tenant=tenant or None,
    )
    click.echo(json.dumps({"data": r.to_dict()}, indent=2, ensure_ascii=False, default=str) if as_json else r.verdict)


@cost.command("tts-cache")
@_period_options
@click.option("--max-entries", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--ttl-days", type=click.FloatRange(0, min_open=True))
@click.option("--template", is_flag=True, help="Key phrases with digits replaced by # (templated synthesis).")
@click.option("--top", default=20, show_default=True, type=click.IntRange(1, 500))
@tenant_option
def cost_tts_cache(
    date_from, date_to, as_json: bool, max_entries: int, ttl_days, template: bool, top: int, tenant: tuple[str, ...]
) -> None:
    """Replay the period's bot utterances through a TTS phrase cache: hit rate, saving, phrases to pre-cache.

    \b
    Example:
      ccanalytics cost tts-cache --from 2026-11-01 --max-entries 5000
    """
    from ccanalytics.cost import ttscache  # lazy: polars

    settings = _settings()
    r = ttscache.tts_cache_from_logs(
        _engine(),
        *_days(date_from, date_to),
        max_entries=max_entries,
        ttl_days=ttl_days,
        template=template,
        top_n=top,
        book=pricing.load(settings.pricing_file),
        tz=settings.timezone,
        tenant=tenant or None,
    )
    if as_json:
        click.echo(json.dumps({"data": r.to_dict()}, indent=2, ensure_ascii=False, default=str))
        return
    click.echo(
        f"{r.utterances} utterances: cache hit rate {r.hit_rate_chars or 0:.0%} of characters "
        f"(logged: {r.logged_hit_rate_chars or 0:.0%}, unlimited cache: {r.unbounded_hit_rate_chars or 0:.0%}), "
        f"saving ${r.usd_saved:.2f}"
    )
    click.echo("phrases to pre-cache:")
    for p in r.phrases_to_precache:
        click.echo(f"  ×{p.count:<6} {p.share_of_chars:>6.1%}  {p.example}")


@cost.command("routing")
@_period_options
def cost_routing(date_from, date_to, as_json: bool) -> None:
    """Replay the model router over the period: share routed to the cheaper model, saving, quality risk
    (over every tenant's calls: one router serves them all).

    \b
    Example:
      ccanalytics cost routing --from 2026-11-01
    """
    from ccanalytics.cost import routing_replay  # lazy: polars

    settings = _settings()
    r = routing_replay.replay_routing(
        _engine(), *_days(date_from, date_to), book=pricing.load(settings.pricing_file), tz=settings.timezone
    )
    if as_json:
        click.echo(json.dumps({"data": r.to_dict()}, indent=2, ensure_ascii=False, default=str))
        return
    click.echo(
        f"{r.routed_cheap} of {r.calls} calls to {r.cheap_model} ({r.share_cheap or 0:.0%}); "
        f"net saving ${r.net_saving_usd:.2f}"
    )
    click.echo(r.recommendation)


@cost.command("prompts")
@_period_options
@tenant_option
def cost_prompts(date_from, date_to, as_json: bool, tenant: tuple[str, ...]) -> None:
    """Prompt length and cost per prompt version (input tokens per LLM call, cached share).

    \b
    Example:
      ccanalytics cost prompts --from 2026-11-01
    """
    from ccanalytics.cost import levers  # lazy: polars

    rows = levers.prompt_length_by_version(
        _engine(), *_days(date_from, date_to), tz=_settings().timezone, tenant=tenant or None
    )
    if as_json:
        click.echo(json.dumps({"data": [r.to_dict() for r in rows]}, indent=2, ensure_ascii=False, default=str))
        return
    for r in rows:
        click.echo(
            f"{r.prompt_version:<24} calls {r.calls:>6}  input tokens/LLM call {r.input_tokens_per_llm_call}  "
            f"cached {r.cached_share}  $/call {r.cost_per_call_usd}"
        )
