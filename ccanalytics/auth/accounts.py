"""The administrator's view of users and API tokens: who they are, when they last logged in or were
used, who created and revoked each token, and password resets with a generated password.

Every change goes through :mod:`ccanalytics.auth.users`, which writes the audit log in the transaction that
makes it; this module only reads, and generates passwords.

    from ccanalytics.auth import accounts
    for row in accounts.users(engine):
        print(row.user.username, row.last_login_at)
    password = accounts.reset_password(engine, "ivan", actor="olena")   # show it once
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.auth import logins
from ccanalytics.auth import users as auth

# how long successful logins are kept (ccanalytics.auth.logins.login prunes older ones): "last login" is
# known only within this many days
LAST_LOGIN_DAYS = logins.KNOWN_CLIENT_DAYS
GENERATED_PASSWORD_BYTES = 12  # 16 URL-safe characters, ~96 bits


@dataclass(frozen=True)
class UserRow:
    user: auth.User
    last_login_at: datetime | None  # None: no login within LAST_LOGIN_DAYS


@dataclass(frozen=True)
class TokenRow:
    token: auth.Token
    created_by: str | None  # from the audit log (None: created before it recorded token ids)
    revoked_by: str | None


def users(engine: Engine) -> list[UserRow]:
    """Every user by name, with the last successful login recorded."""
    found = auth.list_users(engine)
    with engine.connect() as conn:
        last: dict[str, datetime] = dict(
            conn.execute(sa.text("SELECT username, max(at) FROM login_attempts WHERE success GROUP BY username")).all()
        )
    return [UserRow(u, last.get(u.username)) for u in found]


def user(engine: Engine, username: str) -> UserRow:
    """One user with their last login; NotFound when there is none."""
    found = auth.get_user_by_name(engine, username)
    if found is None:
        raise auth.NotFound(f"user {username!r} does not exist")
    with engine.connect() as conn:
        last = conn.execute(
            sa.text("SELECT max(at) FROM login_attempts WHERE success AND username = :u"), {"u": found.username}
        ).scalar()
    return UserRow(found, last)


def tokens(engine: Engine, *, include_revoked: bool = False) -> list[TokenRow]:
    """API tokens (live ones, or every one) oldest first, with who created and revoked each."""
    found = auth.list_tokens(engine, include_revoked=include_revoked)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT DISTINCT ON (action, details ->> 'token_id') action, details ->> 'token_id' AS token_id, actor "
                "FROM audit_log WHERE object_type = 'api_token' AND action IN ('token.created', 'token.revoked') "
                "AND details ? 'token_id' ORDER BY action, details ->> 'token_id', at DESC, id DESC"
            )
        ).all()
    by = {(r.action, r.token_id): r.actor for r in rows}
    return [TokenRow(t, by.get(("token.created", str(t.id))), by.get(("token.revoked", str(t.id)))) for t in found]


def generate_password() -> str:
    """A random password for a new user or a reset (meets auth's length rule)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def reset_password(engine: Engine, username: str, *, actor: str) -> str:
    """Give the user a generated password and return it (show it once); every session of theirs
    ends. Audited by :func:`ccanalytics.auth.users.set_password`."""
    password = generate_password()
    auth.set_password(engine, username, password, actor=actor, generated=True)
    return password
