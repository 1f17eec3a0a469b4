"""``ccanalytics score``, ``ccanalytics quality …`` and ``ccanalytics review …``: thin commands over
ccanalytics.quality."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import timedelta

import click

from ccanalytics.cli.root import _actor, _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core import timeutil

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@main.command("score")
@click.option("--since", type=_DATE, help="Queue unscored calls from this day (default: the last 7 days).")
@click.option("--limit", type=click.IntRange(0), help="Stop after this many calls are finished.")
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent judge requests (default CCA_JUDGE_WORKERS).")
@click.option(
    "--rescore",
    type=click.Choice(["all", "rubric_change"]),
    help="Also queue calls already scored: every call since --since, or those scored under another rubric "
    "or by another judge model.",
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
    from ccanalytics import quality  # lazy: sqlalchemy

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    judge, rubric = quality.from_settings(settings)
    first = since.date() if since else timeutil.today(settings.timezone) - timedelta(days=6)
    queued = quality.enqueue(engine, date_from=first, tz=settings.timezone)
    if rescore == "all":
        queued += quality.enqueue(engine, date_from=first, reason="rescore", tz=settings.timezone)
    elif rescore == "rubric_change":
        queued += quality.enqueue(
            engine,
            date_from=first,
            reason="rubric_change",
            rubric=rubric,
            judge_model=judge.model,
            tz=settings.timezone,
        )
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


@main.group("quality")
def quality_group() -> None:
    """Quality figures, calibration against reviewers, and problem findings."""


@quality_group.command("report")
@click.option("--from", "date_from", type=_DATE, help="First day (default: 7 days ago).")
@click.option("--to", "date_to", type=_DATE, help="Last day (default: today).")
@tenant_option
def quality_report_cmd(date_from, date_to, tenant) -> None:
    """The quality report of a period as JSON (what GET /api/v1/analytics/quality returns).

    \b
    Examples:
      ccanalytics quality report --from 2026-11-16 --to 2026-11-22
      ccanalytics quality report --from 2026-11-16 --to 2026-11-22 --tenant prokoleso
    """
    from ccanalytics.quality.report import quality_report  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    data = quality_report(
        engine,
        date_from.date() if date_from else None,
        date_to.date() if date_to else None,
        tz=_settings().timezone,
        tenant=tenant or None,
    )
    click.echo(json.dumps({"data": data}, indent=2, ensure_ascii=False))


@quality_group.command("calibration")
@click.option("--from", "date_from", type=_DATE, help="Labels given from this day (default: 90 days ago).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def calibration_cmd(date_from, as_json: bool) -> None:
    """Agreement between the judge and human reviewers per criterion (Cohen's κ, accuracy).

    \b
    Example:
      ccanalytics quality calibration
    """
    from ccanalytics.quality.calibration import agreement  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    found = agreement(engine, date_from.date() if date_from else None, tz=_settings().timezone)
    if as_json:
        click.echo(json.dumps({"data": [a.to_dict() for a in found]}, indent=2, ensure_ascii=False))
        return
    for a in found:
        kappa = f"{a.kappa:.2f}" if a.kappa is not None else "—"
        accuracy = f"{a.accuracy:.0%}" if a.accuracy is not None else "—"
        flag = "  DRIFT" if a.drift else (f"  ({a.reason})" if a.reason else "")
        click.echo(f"{a.criterion:<30} n={a.n:<5} κ={kappa:<6} accuracy={accuracy}{flag}")


@quality_group.command("problems")
@click.option("--date", "day", type=_DATE, help="The day (default: yesterday).")
def problems_cmd(day) -> None:
    """Find and store the day's problems: transfer rate per scenario, re-asks, re-asked words.

    \b
    Example:
      ccanalytics quality problems --date 2026-11-23
    """
    from ccanalytics.quality.problems import detect  # lazy: sqlalchemy

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    target = day.date() if day else timeutil.to_date("yesterday", settings.timezone)
    found = detect(engine, target, tz=settings.timezone)
    click.echo(json.dumps({"data": [f.to_dict() for f in found]}, indent=2, ensure_ascii=False))


# ------------------------------------------------------------------------------------------- review
@main.group("review")
def review_group() -> None:
    """The manual review queue: list it, take a call, resolve it with verdicts (the same library actions,
    rules and audit rows as the admin's review page and POST /api/v1/review/…)."""


@review_group.command("list")
@click.option("--status", type=click.Choice(["new", "in_review", "resolved"]), help="Only items in this status.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@tenant_option
def review_list_cmd(status: str | None, limit: int, tenant) -> None:
    """The queue as JSON (lowest scores first) with its counts per status, as GET /api/v1/review returns.

    \b
    Examples:
      ccanalytics review list --status new
      ccanalytics review list --tenant prokoleso --limit 10
    """
    from ccanalytics.quality import review  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    items = review.list_items(engine, status=status, limit=limit, tenant=tenant or None)
    data = {"items": [asdict(i) for i in items], "counts": review.counts(engine, tenant=tenant or None)}
    click.echo(json.dumps({"data": data}, indent=2, ensure_ascii=False, default=str))


@review_group.command("take")
@click.argument("call_id")
@click.option("--by", help="Reviewer for the audit log (default: cli:<os user>).")
def review_take_cmd(call_id: str, by: str | None) -> None:
    """Start reviewing a call (new → in review, assigned to the reviewer).

    \b
    Example:
      ccanalytics review take 3f1c…  --by olena
    """
    from ccanalytics.quality import review  # lazy: sqlalchemy

    engine = _engine()
    _ensure_schema(engine)
    review.take(engine, call_id, _actor(by))
    click.echo(f"{call_id}: in review")


def _verdict(text: str) -> tuple[str, float | None]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r}: expected CRITERION=SCORE (0–1) or CRITERION=na")
    if value.strip().lower() == "na":
        return name.strip(), None
    try:
        return name.strip(), float(value)
    except ValueError:
        raise click.BadParameter(f"{text!r}: the score must be a number from 0 to 1, or na") from None


@review_group.command("resolve")
@click.argument("call_id")
@click.option(
    "--verdict", "verdicts", multiple=True, help="CRITERION=SCORE (0–1) or CRITERION=na; repeat per criterion."
)
@click.option("--comment", help="The reviewer's comment.")
@click.option("--by", help="Reviewer for the audit log (default: cli:<os user>).")
def review_resolve_cmd(call_id: str, verdicts: tuple[str, ...], comment: str | None, by: str | None) -> None:
    """Resolve a review with a verdict per criterion (stored as labels for the judge's calibration).

    \b
    Example:
      ccanalytics review resolve 3f1c… --verdict bot_provided_accurate_info=0 --comment "неверная цена"
    """
    from ccanalytics.quality import review  # lazy: sqlalchemy

    parsed = dict(_verdict(v) for v in verdicts)
    engine = _engine()
    _ensure_schema(engine)
    stored = review.resolve(engine, call_id, _actor(by), parsed, comment)
    click.echo(f"{call_id}: resolved, {stored} verdict(s) stored")
