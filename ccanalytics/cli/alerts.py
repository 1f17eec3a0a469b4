"""``ccanalytics alerts …``: thin commands over ccanalytics.alerts.engine and ccanalytics.alerts.notify."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from ccanalytics.cli.root import _engine, _ensure_schema, _settings, main, tenant_option
from ccanalytics.core import clock, timeutil
from ccanalytics.core.errors import InvalidArgument


def _at(value: str | None, tz: str) -> datetime:
    if not value:
        return clock.now()
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            f"--at must be an ISO date-time (2026-11-20T14:00 or with +02:00), not {value!r}"
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=timeutil.zone(tz))).astimezone(UTC)


@main.group()
def alerts() -> None:
    """Alerts evaluated from the database: check, history, delivery to Telegram and e-mail."""


@alerts.command("check")
@click.option("--dry-run", is_flag=True, help="Only evaluate and print; change nothing, send nothing.")
@click.option("--at", "at", help="Evaluate at this time (ISO, local time zone when no offset). Default: now.")
@tenant_option
def alerts_check(dry_run: bool, at: str | None, tenant: tuple[str, ...]) -> None:
    """Evaluate the alert rules, per tenant; print one line per firing alert. Without --dry-run, also
    record fired / repeated / resolved events and deliver the notifications (what the scheduler does
    every minute). With --tenant only that tenant's alerts are evaluated, fire or resolve.

    \b
    Examples:
      ccanalytics alerts check --dry-run
      ccanalytics alerts check --dry-run --at 2026-11-20T14:00
      ccanalytics alerts check --tenant prokoleso
    """
    from ccanalytics.alerts import engine as a  # lazy: sqlalchemy
    from ccanalytics.alerts import outbox  # lazy: sqlalchemy
    from ccanalytics.alerts.notify import channels_from_settings  # lazy: pydantic_settings
    from ccanalytics.db import tenants  # lazy: sqlalchemy

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    now = _at(at, settings.timezone)
    if dry_run:
        ev = a.evaluate_all(engine, settings, now, tenant=tenant or None)
        firings, errors = ev.firings, ev.errors
    else:
        tenants.scope(engine, tenant or None)  # an unknown tenant is an error before anything changes
        a.derive_recent_metrics(engine, now)
        summary = a.run(engine, settings, now, tenant=tenant or None)
        firings, errors = summary.firings, summary.errors
    for f in firings:
        first = f.text.splitlines()[0]
        click.echo(f"{a.RULES_BY_NAME[f.rule].severity:<8} {f.rule:<22} {f.key[:48]:<16} {first}")
    for name, error in errors.items():
        click.echo(f"error    {name:<22} {error}", err=True)
    if dry_run:
        click.echo(f"{len(firings)} firing (dry run: nothing recorded or sent)")
        return
    out = outbox.deliver(engine, channels_from_settings(settings), now, tz=settings.timezone)
    click.echo(
        f"{len(firings)} firing; fired {summary.fired}, repeated {summary.repeated}, resolved {summary.resolved}; "
        f"delivered {out.sent}, pending {out.pending}, dead {out.dead}, unknown {out.unknown}"
        + (
            f"; {summary.upgraded} alert(s) of before the per-tenant keys took their tenant's key"
            if summary.upgraded
            else ""
        )
    )


@alerts.command("history")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (with the full messages).")
@tenant_option
def alerts_history(limit: int, as_json: bool, tenant: tuple[str, ...]) -> None:
    """The latest alert events (fired, repeated, resolved) and their delivery per channel.

    \b
    Examples:
      ccanalytics alerts history --limit 50
      ccanalytics alerts history --tenant prokoleso
    """
    from ccanalytics.alerts import engine as a  # lazy: sqlalchemy

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    rows = a.history(engine, limit=limit, tenant=tenant or None)
    if as_json:
        click.echo(json.dumps({"data": rows}, indent=2, ensure_ascii=False, default=str))
        return
    zone = timeutil.zone(settings.timezone)
    for r in rows:
        delivery = ", ".join(f"{c}:{s}" for c, s in sorted(r["delivery"].items())) or "no channel"
        click.echo(
            f"{r['created_at'].astimezone(zone):%Y-%m-%d %H:%M}  {r['event']:<8} {r['rule']:<22} {r['key']:<16} "
            f"{r['title']}  [{delivery}]"
        )


@alerts.command("deliver")
def alerts_deliver() -> None:
    """Send the due notifications of the outbox (retries of earlier failures included).

    \b
    Example:
      ccanalytics alerts deliver
    """
    from ccanalytics.alerts import outbox  # lazy: sqlalchemy
    from ccanalytics.alerts.notify import channels_from_settings  # lazy: pydantic_settings

    settings = _settings()
    engine = _engine()
    _ensure_schema(engine)
    out = outbox.deliver(engine, channels_from_settings(settings), clock.now(), tz=settings.timezone)
    click.echo(
        f"sent {out.sent}, failed and retrying later {out.retried}, dead {out.dead}, "
        f"sent without an answer (not re-sent) {out.unknown}; pending {out.pending}"
    )


@alerts.command("test")
@click.option("--channel", "channel", type=click.Choice(["email", "telegram"]), required=True)
def alerts_test(channel: str) -> None:
    """Send a test message through one channel (checks its settings end to end).

    \b
    Example:
      ccanalytics alerts test --channel telegram
    """
    from ccanalytics.alerts.notify import require_channels, send_with_retries  # lazy: pydantic_settings

    settings = _settings()
    ch = require_channels(settings, [channel])[channel]
    subject = "[ccanalytics] Тестовое сообщение"
    text = f"Тестовое сообщение ccanalytics: канал {channel} настроен. Журнал: {settings.admin_base_url}/calls"
    send_with_retries(lambda: ch.send_text(subject, text))
    click.echo(f"test message sent by {channel}")
