"""``ccanalytics users …`` and ``ccanalytics tokens …``: thin commands over ccanalytics.auth."""

from __future__ import annotations

import getpass
import json
import sys

import click

from .cli import _engine, _ensure_schema, main


def _ready():
    engine = _engine()
    _ensure_schema(engine)
    return engine


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


# -------------------------------------------------------------------------------------------- users
@main.group()
def users() -> None:
    """Users of the admin web app (roles: admin — everything, analyst — read only)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "analyst"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_add(username: str, role: str, password_stdin: bool) -> None:
    """Add a user; asks for the password twice (or reads it with --password-stdin).

    \b
    Example:
      ccanalytics users add olena --role admin
      printf '%s\\n' "$PASSWORD" | ccanalytics users add ivan --role analyst --password-stdin
    """
    from . import auth

    engine = _ready()
    user = auth.add_user(engine, username, _password(password_stdin), role, actor=_actor())
    click.echo(f"added user {user.username} ({user.role})")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_passwd(username: str, password_stdin: bool) -> None:
    """Set a new password (the user's open sessions end).

    \b
    Example:
      ccanalytics users passwd admin
    """
    from . import auth

    engine = _ready()
    auth.set_password(engine, username, _password(password_stdin), actor=_actor())
    click.echo(f"password of {auth.normalize_username(username)} changed")


@users.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
def users_disable(username: str, enable: bool) -> None:
    """Disable a user (cannot log in, sessions end), or enable again with --enable.

    \b
    Example:
      ccanalytics users disable ivan
    """
    from . import auth

    auth.set_disabled(_ready(), username, not enable, actor=_actor())
    click.echo(f"{auth.normalize_username(username)} {'enabled' if enable else 'disabled'}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def users_list(as_json: bool) -> None:
    """List users.

    \b
    Example:
      ccanalytics users list
    """
    from . import auth

    found = auth.list_users(_ready())
    if as_json:
        click.echo(json.dumps({"data": [u.to_dict() for u in found]}, indent=2, ensure_ascii=False))
        return
    for u in found:
        state = "disabled" if u.disabled else ""
        click.echo(f"{u.username:<30} {u.role:<8} {u.created_at:%Y-%m-%d %H:%M}  {state}")


# ------------------------------------------------------------------------------------------- tokens
@main.group()
def tokens() -> None:
    """API tokens (Bearer) for /api/v1: admin, analyst (read only) or service (ingest and prompts)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(["admin", "analyst", "service"]), required=True)
@click.option("--name", required=True, help="Who uses it, e.g. call-processor; revoke by this name.")
def tokens_create(role: str, name: str) -> None:
    """Create a token. The token is printed alone on the last line of standard output, once: it is
    not stored (only its SHA-256 is) and cannot be shown again.

    \b
    Example:
      TOKEN=$(ccanalytics tokens create --role service --name call-processor | tail -n 1)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8050/api/v1/prompts
    """
    from . import auth

    token = auth.create_token(_ready(), role, name, actor=_actor())
    click.echo(f"created token {name!r} ({role}); store it now, it is not shown again:")
    click.echo(token)


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke the live token with this name.

    \b
    Example:
      ccanalytics tokens revoke call-processor
    """
    from . import auth

    auth.revoke_token(_ready(), name, actor=_actor())
    click.echo(f"revoked token {name!r}")


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Also revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tokens_list(include_revoked: bool, as_json: bool) -> None:
    """List tokens (names, roles, dates — never the tokens themselves).

    \b
    Example:
      ccanalytics tokens list --all
    """
    from . import auth

    found = auth.list_tokens(_ready(), include_revoked=include_revoked)
    if as_json:
        click.echo(json.dumps({"data": [t.to_dict() for t in found]}, indent=2, ensure_ascii=False))
        return
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        revoked = f"  revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
        click.echo(f"{t.name:<30} {t.role:<8} created {t.created_at:%Y-%m-%d %H:%M}  last used {used}{revoked}")
