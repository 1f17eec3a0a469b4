"""``ccanalytics score`` and ``ccanalytics review …``: thin commands over ccanalytics.quality."""

from __future__ import annotations

import json
import sys

import click

from .cli import _engine, _ensure_schema, _settings, main

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.command("score")
@click.option("--since", type=_DATE, help="Queue unscored calls from this day (default: the last 7 days).")
@click.option("--limit", type=click.IntRange(0), help="Stop after this many calls are finished.")
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent judge requests (default CCA_JUDGE_WORKERS).")
@click.option(
    "--rescore",
    type=click.Choice(["all", "rubric_change"]),
    help="Also queue calls already scored: every call since --since, or those scored under another rubric.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def score_cmd(since, limit: int | None, workers: int | None, rescore: str | None, as_json: bool) -> None:
    """Score calls with the LLM judge (or the offline rule-based judge when no API key is set).

    Queues finished calls that have no score, then scores the queue with several workers. Calls
    that keep failing end 'failed' with the reason; run again to retry them with --rescore all.

    \b
    Examples:
      ccanalytics score                                  # the last 7 days
      ccanalytics score --since 2026-11-01 --workers 8
      ccanalytics score --rescore rubric_change          # after changing CCA_QUALITY_WEIGHTS
    """
    from datetime import timedelta

    from . import quality, timeutil

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    judge, rubric = quality.from_settings(settings)
    first = since.date() if since else timeutil.today(settings.timezone) - timedelta(days=6)
    queued = quality.enqueue(engine, date_from=first, tz=settings.timezone)
    if rescore == "all":
        queued += quality.enqueue(engine, date_from=first, reason="rescore", tz=settings.timezone)
    elif rescore == "rubric_change":
        queued += quality.enqueue(engine, date_from=first, reason="rubric_change", rubric=rubric, tz=settings.timezone)
    pending = quality.queue_status(engine)["pending"]
    total = min(pending, limit) if limit is not None else pending
    label = f"scoring ({judge.kind}: {judge.model}, rubric {rubric.version})"
    with click.progressbar(length=total, label=label, file=sys.stderr, hidden=as_json or not total) as bar:
        run = quality.score_pending(
            engine,
            judge,
            rubric,
            limit=limit,
            workers=workers or settings.judge_workers,
            config=quality.scoring_config_from_settings(settings),
            progress=bar.update,
        )
    if as_json:
        click.echo(
            json.dumps(
                {"queued": queued, "judge": judge.model, "rubric_version": rubric.version, **run.to_dict()}, indent=2
            )
        )
        return
    click.echo(
        f"queued {queued}; scored {run.scored}, failed {run.failed}, retries {run.retried} "
        f"in {run.seconds:.1f} s with {judge.kind} judge {judge.model}"
    )
    for call_id, reason in run.failures[:5]:
        click.echo(f"  failed {call_id}: {reason}", err=True)
