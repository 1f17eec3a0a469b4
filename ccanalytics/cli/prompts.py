"""``ccanalytics prompts …`` and ``ccanalytics ab …``: thin commands over ccanalytics.prompts.versions,
ccanalytics.experiments.lifecycle and ccanalytics.prompts.optimizer. The library checks every action's rules
and audits it; who acts is ``--by`` (``--author``) or, by default, ``cli:<os user>``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ccanalytics.cli.root import _actor, _engine, _ensure_schema, _settings, main
from ccanalytics.core.errors import InvalidArgument, NotFound


def _ready():
    engine = _engine()
    _ensure_schema(engine)
    return engine


def _echo_json(data) -> None:
    click.echo(json.dumps({"data": data}, indent=2, ensure_ascii=False))


@main.group()
def prompts() -> None:
    """Prompt versions: list, show, create, diff, activate, roll back."""


@prompts.command("list")
@click.option("--name", help="Only this prompt.")
def prompts_list(name: str | None) -> None:
    """List versions (newest first): label, id (uuid), created; * marks the active one.

    \b
    Example:
      ccanalytics prompts list --name tire_agent
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    for v in p.list_versions(_ready(), name):
        mark = "*" if v.is_active else " "
        click.echo(
            f"{mark} {v.label:<28} {v.id}  {v.created_at:%Y-%m-%d %H:%M}  {v.created_by or '':<12} {v.note or ''}"
        )


@prompts.command("show")
@click.argument("version")
def prompts_show(version: str) -> None:
    """Show one version (its uuid or label) as JSON.

    \b
    Example:
      ccanalytics prompts show tire_agent@v2
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    _echo_json(p.get_version(_ready(), version).to_dict())


@prompts.command("create")
@click.option("--name", required=True)
@click.option(
    "--file",
    "prompt_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The system prompt (UTF-8 text).",
)
@click.option("--tools", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="tools_config JSON.")
@click.option("--author", help="Who creates it (audit log); default: cli:<os user>.")
@click.option("--note")
@click.option("--from", "base", help="The version (uuid or label) it was edited from: the new one must differ.")
@click.option("--activate", is_flag=True, help="Make it the active version at once.")
def prompts_create(
    name: str,
    prompt_file: Path,
    tools: Path | None,
    author: str | None,
    note: str | None,
    base: str | None,
    activate: bool,
) -> None:
    """Create a new version of a prompt (not active unless --activate).

    \b
    Example:
      ccanalytics prompts create --name tire_agent --file prompt.txt --author olena --note "коротше"
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    tools_config = None
    if tools:
        try:
            tools_config = json.loads(tools.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidArgument(f"{tools}: not JSON ({exc})") from None
    v = p.create_version(
        _ready(),
        name,
        prompt_file.read_text(encoding="utf-8"),
        tools_config=tools_config,
        author=_actor(author),
        note=note,
        activate=activate,
        base=base,
    )
    click.echo(f"created {v.label} (id {v.id}){' — active' if v.is_active else ''}")


@prompts.command("diff")
@click.argument("old")
@click.argument("new")
def prompts_diff(old: str, new: str) -> None:
    """Unified diff of two versions' system prompts (and tools).

    \b
    Example:
      ccanalytics prompts diff tire_agent@v1 tire_agent@v2
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    d = p.diff_versions(_ready(), old, new)
    click.echo(d.unified or "system prompts are identical")
    if d.tools_changed:
        click.echo(d.tools_unified)


@prompts.command("activate")
@click.argument("version")
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
@click.option("--reason")
def prompts_activate(version: str, by: str | None, reason: str | None) -> None:
    """Make a version the active one of its prompt.

    \b
    Example:
      ccanalytics prompts activate tire_agent@v2 --by olena --reason "A/B: B краща"
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    engine = _ready()
    a = p.activate_version(engine, version, by=_actor(by), reason=reason)
    click.echo(f"{a.name}: active version {_label(engine, a.from_version_id)} → {_label(engine, a.to_version_id)}")


def _label(engine, version_id) -> str:
    """A version's label for a message (its id when it is gone; — for none)."""
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    if version_id is None:
        return "—"
    try:
        return p.get_version(engine, version_id).label
    except NotFound:
        return str(version_id)


@prompts.command("rollback")
@click.argument("name")
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
@click.option("--reason")
def prompts_rollback(name: str, by: str | None, reason: str | None) -> None:
    """Re-activate the version that was active before the current one.

    \b
    Example:
      ccanalytics prompts rollback tire_agent --by olena
    """
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    engine = _ready()
    a = p.rollback(engine, name, by=_actor(by), reason=reason)
    click.echo(f"{a.name}: rolled back {_label(engine, a.from_version_id)} → {_label(engine, a.to_version_id)}")


@main.group()
def ab() -> None:
    """A/B tests of prompt versions: create, start, stop, results."""


@ab.command("list")
@click.option(
    "--status",
    type=click.Choice(["draft", "running", "stopped", "completed", "active"]),
    help="ccanalytics's tests: draft, running, stopped, completed; the processor's: active, stopped, completed.",
)
@click.option(
    "--processor",
    is_flag=True,
    help="The call processor's own tests (its prompt_ab_tests, read-only: counters only, no per-call results).",
)
def ab_list(status: str | None, processor: bool) -> None:
    """List tests as JSON (ccanalytics's, or with --processor the call processor's own).

    \b
    Example:
      ccanalytics ab list --status running
      ccanalytics ab list --processor
    """
    from ccanalytics.experiments import lifecycle as experiments  # lazy: sqlalchemy
    from ccanalytics.experiments import processortests  # lazy: sqlalchemy

    if processor:
        _echo_json([t.to_dict() for t in processortests.processor_tests(_ready(), status=status)])
        return
    if status == "active":
        raise InvalidArgument("status active belongs to the call processor's tests: add --processor")
    _echo_json([t.to_dict() for t in experiments.list_tests(_ready(), status=status)])


@ab.command("create")
@click.argument("test_name")
@click.option("--version", "versions", multiple=True, required=True, help="Version uuid or label; first is A.")
@click.option("--weight", "weights", multiple=True, type=float, help="Traffic share per version (sum 1).")
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
@click.option("--description")
@click.option("--goal", default="resolved_without_operator", show_default=True)
@click.option("--min-turns", type=click.IntRange(0), help="Exclude calls with fewer turns.")
@click.option("--min-duration", type=click.FloatRange(0), help="Exclude calls shorter than this (seconds).")
def ab_create(test_name, versions, weights, by, description, goal, min_turns, min_duration) -> None:
    """Create a draft test.

    \b
    Example:
      ccanalytics ab create greet-v3 --version tire_agent@v2 --version tire_agent@v3 --by olena --min-turns 2
    """
    from ccanalytics.experiments import lifecycle as experiments  # lazy: sqlalchemy
    from ccanalytics.prompts import versions as p  # lazy: sqlalchemy

    engine = _ready()
    ids = [p.get_version(engine, v).id for v in versions]
    exclusions = {k: v for k, v in (("min_turns", min_turns), ("min_duration_seconds", min_duration)) if v is not None}
    t = experiments.create_test(
        engine,
        test_name,
        ids,
        weights=list(weights) or None,
        created_by=_actor(by),
        description=description,
        goal_metric=goal,
        exclusions=exclusions,
    )
    click.echo(
        f"created test {t.test_name} (id {t.id}, draft): "
        + ", ".join(f"{v.variant}={v.label} {v.weight:.0%}" for v in t.variants)
    )


@ab.command("start")
@click.argument("test")
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
def ab_start(test: str, by: str | None) -> None:
    """Start a draft test.

    \b
    Example:
      ccanalytics ab start greet-v3 --by olena
    """
    from ccanalytics.experiments import lifecycle as experiments  # lazy: sqlalchemy

    t = experiments.start_test(_ready(), test, by=_actor(by))
    click.echo(f"test {t.test_name} running since {t.started_at:%Y-%m-%d %H:%M}")


@ab.command("stop")
@click.argument("test")
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
@click.option("--decision", type=click.Choice(["ship_b", "keep_a", "inconclusive", "stop_harm"]), required=True)
@click.option("--note")
def ab_stop(test: str, by: str | None, decision: str, note: str | None) -> None:
    """Stop a running test with a recorded decision.

    \b
    Example:
      ccanalytics ab stop greet-v3 --by olena --decision ship_b --note "+4 п.п. решённых"
    """
    from ccanalytics.experiments import lifecycle as experiments  # lazy: sqlalchemy

    t = experiments.stop_test(_ready(), test, by=_actor(by), decision=decision, note=note)
    click.echo(f"test {t.test_name} stopped: {t.decision}")


@ab.command("results")
@click.argument("test")
@click.option("--json", "as_json", is_flag=True)
def ab_results(test: str, as_json: bool) -> None:
    """Per-variant metrics, comparisons with CIs, SRM and the recommendation.

    \b
    Example:
      ccanalytics ab results tire_agent-v1-vs-v2
    """
    from ccanalytics.experiments import abresults  # lazy: sqlalchemy

    r = abresults.results(_ready(), test)
    if as_json:
        _echo_json(r.to_dict())
        return
    click.echo(f"{r.test.test_name}: {r.days_running:.1f} days, {r.calls_per_day:.0f} calls/day")
    for v in r.variants:
        d = v.to_dict()
        click.echo(
            f"  {v.variant} {v.label:<24} calls {d['calls']:>6}  resolved {d['resolved_without_operator_pct']}%  "
            f"quality {d['avg_quality_score']}  cost ${d['avg_cost_per_call_usd']}"
        )
    if r.srm.mismatch:
        click.echo(f"  SRM: traffic split does not match the weights (p = {r.srm.p_value:.2g})")
    for variant, rec in r.recommendations.items():
        click.echo(f"  {variant}: {rec.action} — {rec.reason}")


@prompts.command("suggest")
@click.option("--name", required=True, help="The prompt to improve (its active version).")
@click.option("--from", "date_from", type=click.DateTime(formats=["%Y-%m-%d"]), help="Default: 14 days ago.")
@click.option("--to", "date_to", type=click.DateTime(formats=["%Y-%m-%d"]), help="Default: today.")
def prompts_suggest(name: str, date_from, date_to) -> None:
    """Propose prompt edits from the failure patterns of low-scoring calls (LLM when a judge key is set).

    \b
    Example:
      ccanalytics prompts suggest --name tire_agent --from 2026-11-01
    """
    from ccanalytics.prompts import optimizer  # lazy: sqlalchemy

    settings = _settings()
    llm = None
    if settings.judge_api_key is not None and settings.judge_api_key.get_secret_value():
        from openai import OpenAI  # lazy: openai

        llm = OpenAI(
            base_url=settings.judge_base_url,
            api_key=settings.judge_api_key.get_secret_value(),
            timeout=settings.judge_timeout_s,
        )
    engine = _ready()
    s = optimizer.propose(
        engine,
        name,
        date_from.date() if date_from else None,
        date_to.date() if date_to else None,
        llm=llm,
        model=settings.judge_model,
        tz=settings.timezone,
    )
    click.echo(f"suggestion #{s.id} ({s.source}) for version {_label(engine, s.base_version_id)}:\n{s.summary}")


@prompts.command("decide")
@click.argument("suggestion_id", type=int)
@click.option("--by", help="Who acts (audit log, who-columns); default: cli:<os user>.")
@click.option("--approve/--reject", required=True)
def prompts_decide(suggestion_id: int, by: str | None, approve: bool) -> None:
    """Approve a suggestion into a new (inactive) version, or reject it.

    \b
    Example:
      ccanalytics prompts decide 3 --by olena --approve
    """
    from ccanalytics.prompts import optimizer  # lazy: sqlalchemy

    engine = _ready()
    s = optimizer.decide(engine, suggestion_id, by=_actor(by), approve=approve)
    created = f": new version {_label(engine, s.new_version_id)} (id {s.new_version_id})" if s.new_version_id else ""
    click.echo(f"suggestion #{s.id} {s.status}{created}")
