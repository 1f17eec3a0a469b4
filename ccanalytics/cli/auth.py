"""``ccanalytics users …`` and ``ccanalytics tokens …``: thin commands over ccanalytics.auth.users."""

from __future__ import annotations

import json
import sys

import click

from ccanalytics.cli.root import _actor, _engine, _ensure_schema, main
from ccanalytics.core.errors import InvalidArgument


def _ready():
    engine = _engine()
    _ensure_schema(engine)
    return engine


def _limit_option(what: str):
    """``--tenant SLUG`` (repeatable): the tenants a user or token may read (default: every tenant)."""
    return click.option(
        "--tenant",
        "tenant",
        multiple=True,
        metavar="SLUG",
        help=f"Limit the {what} to this tenant (a slug from `ccanalytics db tenants`; repeatable; "
        "default: every tenant).",
    )


def _tenants_text(tenants: tuple[str, ...] | None) -> str:
    return "all tenants" if tenants is None else "tenants " + ",".join(tenants)


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
@_limit_option("user")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_add(username: str, role: str, tenant: tuple[str, ...], password_stdin: bool) -> None:
    """Add a user; asks for the password twice (or reads it with --password-stdin). With --tenant the
    user sees only those tenants' calls and figures.

    \b
    Example:
      ccanalytics users add olena --role admin
      printf '%s\\n' "$PASSWORD" | ccanalytics users add ivan --role analyst --password-stdin
      ccanalytics users add petro --role analyst --tenant prokoleso
    """
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

    engine = _ready()
    user = auth.add_user(engine, username, _password(password_stdin), role, tenants=tenant or None, actor=_actor())
    limited = f", {_tenants_text(user.tenants)}" if user.tenants is not None else ""
    click.echo(f"added user {user.username} ({user.role}{limited})")


@users.command("tenants")
@click.argument("username")
@_limit_option("user")
@click.option("--all", "every", is_flag=True, help="Let the user read every tenant again.")
def users_tenants(username: str, tenant: tuple[str, ...], every: bool) -> None:
    """Set the tenants a user may read (--tenant, repeatable; replaces the list) or clear the limit
    (--all). Takes effect on the user's next page, open sessions included.

    \b
    Example:
      ccanalytics users tenants ivan --tenant prokoleso --tenant shinservice
      ccanalytics users tenants ivan --all
    """
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

    if bool(tenant) == every:
        raise InvalidArgument("give --tenant SLUG (repeatable) to limit the user, or --all to clear the limit")
    user = auth.set_user_tenants(_ready(), username, None if every else tenant, actor=_actor())
    click.echo(f"{user.username}: {_tenants_text(user.tenants)}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_passwd(username: str, password_stdin: bool) -> None:
    """Set a new password (the user's open sessions end).

    \b
    Example:
      ccanalytics users passwd admin
    """
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

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
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

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
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

    found = auth.list_users(_ready())
    if as_json:
        click.echo(json.dumps({"data": [u.to_dict() for u in found]}, indent=2, ensure_ascii=False))
        return
    for u in found:
        state = "  disabled" if u.disabled else ""
        click.echo(f"{u.username:<30} {u.role:<8} {u.created_at:%Y-%m-%d %H:%M}  {_tenants_text(u.tenants)}{state}")


# ------------------------------------------------------------------------------------------- tokens
@main.group()
def tokens() -> None:
    """API tokens (Bearer) for /api/v1: admin, analyst (read only) or service (ingest and prompts)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(["admin", "analyst", "service"]), required=True)
@click.option("--name", required=True, help="Who uses it, e.g. call-processor; revoke by this name.")
@_limit_option("token")
def tokens_create(role: str, name: str, tenant: tuple[str, ...]) -> None:
    """Create a token. The token is printed alone on the last line of standard output, once: it is
    not stored (only its SHA-256 is) and cannot be shown again. With --tenant the token reads only
    those tenants' calls and figures (to change them, revoke the token and create another).

    \b
    Example:
      TOKEN=$(ccanalytics tokens create --role service --name call-processor | tail -n 1)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8050/api/v1/prompts
      ccanalytics tokens create --role analyst --name prokoleso-bi --tenant prokoleso
    """
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

    token = auth.create_token(_ready(), role, name, tenants=tenant or None, actor=_actor())
    limited = f", {_tenants_text(tuple(dict.fromkeys(s.strip().lower() for s in tenant)))}" if tenant else ""
    click.echo(f"created token {name!r} ({role}{limited}); store it now, it is not shown again:")
    click.echo(token)


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke the live token with this name.

    \b
    Example:
      ccanalytics tokens revoke call-processor
    """
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

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
    from ccanalytics.auth import users as auth  # lazy: sqlalchemy

    found = auth.list_tokens(_ready(), include_revoked=include_revoked)
    if as_json:
        click.echo(json.dumps({"data": [t.to_dict() for t in found]}, indent=2, ensure_ascii=False))
        return
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        revoked = f"  revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
        click.echo(
            f"{t.name:<30} {t.role:<8} created {t.created_at:%Y-%m-%d %H:%M}  last used {used}  "
            f"{_tenants_text(t.tenants)}{revoked}"
        )
