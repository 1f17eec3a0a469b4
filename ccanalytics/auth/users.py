"""Users and API tokens (the library side of the admin's auth, with logins, passwords and the audit log).

Roles:
    admin    everything (browser and API)
    analyst  read only (browser and API)
    service  API tokens only: ingest (POST /api/v1/calls) and prompt fetch (GET /api/v1/prompts…)

Passwords are hashed with scrypt and a per-user random salt (ccanalytics.auth.passwords); API tokens
are ``cca_`` + 43 random URL-safe characters and only their SHA-256 is stored. Changes to users and
tokens write the audit log (ccanalytics.auth.auditlog) in the same transaction; the web layer audits the
changes it makes through other library functions with its ``audit``. Password logins and their
throttling: ccanalytics.auth.logins; the session cookies' key: ccanalytics.auth.secretkey.

    from ccanalytics.auth import users as auth
    auth.add_user(engine, "olena", "a long passphrase", "admin", actor="cli")
    auth.add_user(engine, "ivan", "another passphrase", "analyst", tenants=["prokoleso"])
    auth.set_user_tenants(engine, "ivan", None)   # every tenant again
    token = auth.create_token(engine, "service", "call-processor")
    auth.check_token(engine, token)   # -> Token(name='call-processor', role='service', …)

Users and tokens may be limited to tenants (``tenants``: slugs of the call processor's tenants; None, the
default, is every tenant). The web layer passes them as ``allowed`` to :func:`ccanalytics.db.tenants.scope`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.auth.passwords import MAX_PASSWORD_LENGTH, check_password, dummy_hash, hash_password
from ccanalytics.core.errors import (  # noqa: F401 (re-exported: the web layer imports them from here)
    AlreadyExists,
    CCAError,
    ConfigError,
    Forbidden,
    InvalidArgument,
    NotFound,
    TooManyAttempts,
    Unauthorized,
    WriteRefused,
)
from ccanalytics.db import tenants as tenancy

ROLES = ("admin", "analyst", "service")
USER_ROLES = ("admin", "analyst")
TOKEN_PREFIX = "cca_"
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.@\-]{0,99}$")
TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$")

_TOKEN_TOUCH_SECONDS = 60  # last_used_at is written at most once a minute per token
# may this session record token use? Not in read-only mode (CCA_READ_ONLY, a replica, a SELECT-only role):
# docs/attach.md
_CAN_TOUCH_TOKEN = (
    "(current_setting('transaction_read_only') = 'off' "
    "AND has_column_privilege('api_tokens', 'last_used_at', 'UPDATE'))"
)


# ------------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    created_at: datetime
    disabled: bool
    # changes with the password and with the session epoch (logout, disabling): sessions carry it and
    # end when it changes
    stamp: str
    tenants: tuple[str, ...] | None = None  # the tenants (slugs) the user may read; None: every tenant

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("stamp")
        out["created_at"] = self.created_at.isoformat()
        out["tenants"] = list(self.tenants) if self.tenants is not None else None
        return out


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    tenants: tuple[str, ...] | None = None  # the tenants (slugs) the token may read; None: every tenant

    def to_dict(self) -> dict[str, Any]:
        out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        out["tenants"] = list(self.tenants) if self.tenants is not None else None
        return out


def normalize_username(username: str) -> str:
    if not isinstance(username, str):
        raise InvalidArgument("the user name must be text")
    name = username.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise InvalidArgument(
            "the user name must be 1–100 characters: latin letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or a digit"
        )
    return name


def _check_role(role: str, allowed: tuple[str, ...]) -> str:
    if role not in allowed:
        raise InvalidArgument(f"role must be one of {', '.join(allowed)}, not {role!r}")
    return role


def check_tenants(bind: Engine | Connection, tenants: str | Sequence[str] | None) -> list[str] | None:
    """The tenants a user or token is limited to, checked: None (every tenant) or slugs the database
    has (lowercased, without repeats). An unknown slug or an empty list is InvalidArgument."""
    if tenants is None:
        return None
    if not isinstance(tenants, str) and not list(tenants):
        raise InvalidArgument("give at least one tenant, or none at all for every tenant")
    found = tenancy.scope(bind, tenants)
    if not found:
        raise InvalidArgument("give at least one tenant, or none at all for every tenant")
    return list(found)


def _tenants(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


# -------------------------------------------------------------------------------------------- users
_USER_COLUMNS = "id, username, role, created_at, disabled, password_hash, tenants, session_epoch"
# may this connection end sessions (add one to users.session_epoch)? Not in read-only mode
_CAN_END_SESSIONS = (
    "(current_setting('transaction_read_only') = 'off' AND has_column_privilege('users', 'session_epoch', 'UPDATE'))"
)


def _user(row) -> User:
    stamp = hashlib.sha256(f"{row.password_hash}\n{row.session_epoch}".encode()).hexdigest()[:16]
    return User(row.id, row.username, row.role, row.created_at, row.disabled, stamp, _tenants(row.tenants))


def add_user(
    engine: Engine,
    username: str,
    password: str,
    role: str,
    *,
    tenants: str | Sequence[str] | None = None,
    actor: str = "system",
) -> User:
    """A new user (admin or analyst), limited to ``tenants`` (slugs; default None: every tenant).
    Refuses an existing name with AlreadyExists and an unknown tenant with InvalidArgument."""
    name = normalize_username(username)
    _check_role(role, USER_ROLES)
    encoded = hash_password(password)
    with engine.begin() as conn:
        limit = check_tenants(conn, tenants)
        row = conn.execute(
            sa.text(
                f"INSERT INTO users "  # noqa: S608 — _USER_COLUMNS is a constant; values bound
                f"(username, password_hash, role, tenants) VALUES (:u, :h, :r, :t) "
                f"ON CONFLICT (username) DO NOTHING RETURNING {_USER_COLUMNS}"
            ),
            {"u": name, "h": encoded, "r": role, "t": limit},
        ).one_or_none()
        if row is None:
            raise AlreadyExists(f"user {name!r} already exists")
        audit(conn, actor, "user.created", "user", name, {"role": role, "tenants": limit})
    return _user(row)


def set_user_tenants(
    engine: Engine, username: str, tenants: str | Sequence[str] | None, *, actor: str = "system"
) -> User:
    """Limit a user to ``tenants`` (slugs), or with None let them read every tenant again. Takes effect
    on the user's next request (open sessions included). Returns the user."""
    name = normalize_username(username)
    with engine.begin() as conn:
        limit = check_tenants(conn, tenants)
        before = conn.execute(
            sa.text("SELECT tenants FROM users WHERE username = :u FOR UPDATE"), {"u": name}
        ).one_or_none()
        if before is None:
            raise NotFound(f"user {name!r} does not exist")
        row = conn.execute(
            sa.text(
                f"UPDATE users SET tenants = :t "  # noqa: S608 — _USER_COLUMNS is a constant
                f"WHERE username = :u RETURNING {_USER_COLUMNS}"
            ),
            {"u": name, "t": limit},
        ).one()
        audit(conn, actor, "user.tenants_changed", "user", name, {"from": before.tenants, "to": limit})
    return _user(row)


def set_password(
    engine: Engine, username: str, password: str, *, actor: str = "system", generated: bool = False
) -> None:
    """A new password; every open session of the user ends (their stamp no longer matches).
    ``generated``: the password was generated for a reset (recorded in the audit entry)."""
    name = normalize_username(username)
    encoded = hash_password(password)
    with engine.begin() as conn:
        if not conn.execute(
            sa.text("UPDATE users SET password_hash = :h, session_epoch = session_epoch + 1 WHERE username = :u"),
            {"u": name, "h": encoded},
        ).rowcount:
            raise NotFound(f"user {name!r} does not exist")
        audit(conn, actor, "user.password_changed", "user", name, {"generated": True} if generated else None)


def set_disabled(engine: Engine, username: str, disabled: bool = True, *, actor: str = "system") -> None:
    """Disable (or enable again) a user: a disabled user cannot log in and every session of theirs ends
    (enabling does not bring them back)."""
    name = normalize_username(username)
    with engine.begin() as conn:
        if not conn.execute(
            sa.text("UPDATE users SET disabled = :d, session_epoch = session_epoch + 1 WHERE username = :u"),
            {"u": name, "d": disabled},
        ).rowcount:
            raise NotFound(f"user {name!r} does not exist")
        audit(conn, actor, "user.disabled" if disabled else "user.enabled", "user", name)


def end_sessions(engine: Engine, user_id: int) -> bool:
    """End every session of the user at once (logout): their session stamps stop matching, copied
    cookies included. False when nothing changed (no such user, or a read-only connection, where the
    browser's cookie is simply dropped)."""
    with engine.begin() as conn:
        if not conn.execute(sa.text(f"SELECT {_CAN_END_SESSIONS}")).scalar_one():
            return False
        return bool(
            conn.execute(
                sa.text("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = :i"), {"i": int(user_id)}
            ).rowcount
        )


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_USER_COLUMNS} FROM users WHERE id = :i"  # noqa: S608 — _USER_COLUMNS is a constant
            ),
            {"i": int(user_id)},
        ).one_or_none()
    return _user(row) if row else None


def get_user_by_name(engine: Engine, username: str) -> User | None:
    name = normalize_username(username)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = :u"  # noqa: S608 — _USER_COLUMNS is a constant
            ),
            {"u": name},
        ).one_or_none()
    return _user(row) if row else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")  # noqa: S608 — _USER_COLUMNS is a constant
        ).all()
    return [_user(r) for r in rows]


def verify_password(engine: Engine | Connection, username: str, password: str) -> User | None:
    """The user when the name and password match and the user is enabled; else None. No rate limit:
    the login form goes through :func:`login`. Unknown names take as long as known ones."""
    try:
        name = normalize_username(username)
    except InvalidArgument:
        name = None
    row = None
    if name is not None:
        statement = sa.text(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = :u"  # noqa: S608 — _USER_COLUMNS is a constant
        )
        if isinstance(engine, Connection):
            row = engine.execute(statement, {"u": name}).one_or_none()
        else:
            with engine.connect() as conn:
                row = conn.execute(statement, {"u": name}).one_or_none()
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        password = ""  # never matches; still hashed so that it takes the usual time
    ok = check_password(password, row.password_hash if row else dummy_hash())
    if row is None or not ok or row.disabled:
        return None
    return _user(row)


def ensure_demo_admin(engine: Engine, username: str = "admin") -> str | None:
    """For the demo only: when the database has no users at all, create an admin with a random
    password and return the password (show it once). None when users exist already."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM users)")).scalar_one():
            return None
    password = secrets.token_urlsafe(12)
    try:
        add_user(engine, username, password, "admin", actor="demo")
    except AlreadyExists:  # another demo process won the race
        return None
    return password


# ------------------------------------------------------------------------------------------- tokens
_TOKEN_COLUMNS = "id, name, role, created_at, last_used_at, revoked_at, tenants"


def _token(row) -> Token:
    return Token(row.id, row.name, row.role, row.created_at, row.last_used_at, row.revoked_at, _tenants(row.tenants))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    engine: Engine,
    role: str,
    name: str,
    *,
    tenants: str | Sequence[str] | None = None,
    actor: str = "system",
) -> str:
    """A new API token for ``role``, limited to ``tenants`` (slugs; default None: every tenant); returns
    the token itself, which is not stored and cannot be shown again. ``name`` identifies the live token
    (for revoking); a live name is refused. To change a token's tenants, revoke it and create another."""
    _check_role(role, ROLES)
    if not isinstance(name, str) or not TOKEN_NAME_PATTERN.match(name):
        raise InvalidArgument(
            "the token name must be 1–100 characters: latin letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or a digit"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        limit = check_tenants(conn, tenants)
        row = conn.execute(
            sa.text(
                "INSERT INTO api_tokens (name, role, token_hash, tenants) VALUES (:n, :r, :h, :t) "
                "ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING id"
            ),
            {"n": name, "r": role, "h": token_hash(token), "t": limit},
        ).one_or_none()
        if row is None:
            raise AlreadyExists(f"a live token named {name!r} exists; revoke it first or choose another name")
        audit(conn, actor, "token.created", "api_token", name, {"role": role, "token_id": row.id, "tenants": limit})
    return token


def check_token(engine: Engine, token: str) -> Token | None:
    """The live token matching ``token``, or None (unknown, malformed or revoked)."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or not 20 <= len(token) <= 200:
        return None
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_TOKEN_COLUMNS}, now() AS now, {_CAN_TOUCH_TOKEN} "  # noqa: S608 — constants; values bound
                "AS can_touch FROM api_tokens WHERE token_hash = :h"
            ),
            {"h": token_hash(token)},
        ).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        stale = row.last_used_at is None or (row.now - row.last_used_at).total_seconds() > _TOKEN_TOUCH_SECONDS
        if stale and row.can_touch:  # read-only mode: the token works, its last use is not recorded
            conn.execute(sa.text("UPDATE api_tokens SET last_used_at = now() WHERE id = :i"), {"i": row.id})
    return _token(row)


def revoke_token(engine: Engine, name: str, *, actor: str = "system") -> int:
    """Revoke the live token named ``name``; NotFound when there is none. Returns its id."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "UPDATE api_tokens SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL RETURNING id, role"
            ),
            {"n": name},
        ).one_or_none()
        if row is None:
            raise NotFound(f"no live token named {name!r}")
        audit(conn, actor, "token.revoked", "api_token", name, {"role": row.role, "token_id": row.id})
    return row.id


def list_tokens(engine: Engine, *, include_revoked: bool = False) -> list[Token]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens "  # noqa: S608 — _TOKEN_COLUMNS is a constant; values bound
                "WHERE :all OR revoked_at IS NULL ORDER BY created_at, id"
            ),
            {"all": include_revoked},
        ).all()
    return [_token(r) for r in rows]
