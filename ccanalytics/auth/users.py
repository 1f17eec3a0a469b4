"""Users, API tokens, login rate limiting and the audit log (the library side of the admin's auth).

Roles:
    admin    everything (browser and API)
    analyst  read only (browser and API)
    service  API tokens only: ingest (POST /api/v1/calls) and prompt fetch (GET /api/v1/prompts…)

Passwords are hashed with scrypt and a per-user random salt (``scrypt$n$r$p$salt$hash``); API tokens
are ``cca_`` + 43 random URL-safe characters and only their SHA-256 is stored. Changes to users and
tokens write the audit log in the same transaction; the web layer audits the changes it makes
through other library functions with :func:`audit`.

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

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection, Engine

from ccanalytics.core import retry
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
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

# scrypt: 16 MiB and ~50 ms per hash on a current core (OWASP's minimum is n=2**17 with r=8, p=1 for
# 128 MiB; this keeps 8 concurrent logins of a small admin well under a gigabyte)
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024

# login throttling (see :func:`login`): failures allowed before delays start, per scope
LOGIN_MAX_FAILURES = 5  # one client on one account
LOGIN_MAX_FAILURES_PER_IP = 20  # one client on any accounts (several names tried)
LOGIN_MAX_FAILURES_PER_ACCOUNT = 10  # one account from clients that never logged in to it
LOGIN_WINDOW = timedelta(minutes=15)  # failures older than this are forgotten; also the longest delay
LOGIN_FIRST_DELAY = timedelta(seconds=1)  # the first delay; each further failure doubles it
LOGIN_ACCOUNT_MAX_DELAY = timedelta(seconds=60)  # the longest delay the account-wide limit imposes
KNOWN_CLIENT_DAYS = 30  # a client that logged in to an account within this many days is known to it
_ATTEMPTS_KEPT = timedelta(days=1)  # failed attempts; successful ones are kept KNOWN_CLIENT_DAYS
_TOKEN_TOUCH_SECONDS = 60  # last_used_at is written at most once a minute per token
# may this session record token use / login attempts? Not in read-only mode (CCA_READ_ONLY, a replica,
# a SELECT-only role): docs/attach.md
_CAN_TOUCH_TOKEN = (
    "(current_setting('transaction_read_only') = 'off' "
    "AND has_column_privilege('api_tokens', 'last_used_at', 'UPDATE'))"
)
_CAN_RECORD_LOGIN = (
    "(current_setting('transaction_read_only') = 'off' AND has_table_privilege('login_attempts', 'INSERT') "
    "AND has_table_privilege('login_attempts', 'DELETE'))"
)


# ------------------------------------------------------------------------------------------ errors
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


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


# ---------------------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt."""
    _check_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison)."""
    try:
        kind, n, r, p, salt, digest = encoded.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        found = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_SCRYPT_MAXMEM)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    """A hash to check unknown user names against, so they take as long as known ones."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def _check_password(password: str) -> None:
    if not isinstance(password, str):
        raise InvalidArgument("the password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if "\x00" in password:
        raise InvalidArgument("the password contains a NUL character")


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
    ok = check_password(password, row.password_hash if row else _dummy_hash())
    if row is None or not ok or row.disabled:
        return None
    return _user(row)


@dataclass(frozen=True)
class LoginPolicy:
    """How :func:`login` throttles failed logins: growing delays, never a hard lock.

    Three counters of recent failures (within ``window``), each with the failures it allows before
    its delays start; past that, the next attempt in the same scope waits ``first_delay`` after the
    scope's last failure, doubling with every further failure, up to a cap:

    * one client on one account (``per_client_account``, reset by that client's successful login to
      that account; cap ``window``): a guesser slows down only itself;
    * one client on any accounts (``per_client``, cap ``window``): one address trying many names;
    * one account from every client (``per_account``, not reset by a success; cap
      ``account_max_delay``, a minute by default): many addresses guessing one password. It does not
      apply to a client that logged in to that account within ``known_client_days``, and to anyone
      else it only adds a short wait — an outsider can slow a new device of the real user down by
      a minute at most, and cannot stop the devices the user logs in from at all.

    A refused attempt (TooManyAttempts with ``retry_after``) is not checked and not counted.
    """

    per_client_account: int = LOGIN_MAX_FAILURES
    per_client: int = LOGIN_MAX_FAILURES_PER_IP
    per_account: int = LOGIN_MAX_FAILURES_PER_ACCOUNT
    window: timedelta = LOGIN_WINDOW
    first_delay: timedelta = LOGIN_FIRST_DELAY
    account_max_delay: timedelta = LOGIN_ACCOUNT_MAX_DELAY
    known_client_days: int = KNOWN_CLIENT_DAYS

    def delay(self, failures: int, allowed: int, cap: timedelta) -> timedelta:
        """The wait after the last of ``failures`` recent failures in a scope allowing ``allowed``."""
        if failures < allowed:
            return timedelta(0)
        seconds = retry.delay(failures - allowed + 1, base=self.first_delay.total_seconds(), cap=cap.total_seconds())
        return timedelta(seconds=seconds)


def login(
    engine: Engine,
    username: str,
    password: str,
    *,
    ip: str | None = None,
    max_failures: int = LOGIN_MAX_FAILURES,
    max_failures_per_ip: int = LOGIN_MAX_FAILURES_PER_IP,
    window: timedelta = LOGIN_WINDOW,
    policy: LoginPolicy | None = None,
) -> User:
    """Check a login with throttling (:class:`LoginPolicy`); every checked attempt is recorded.

    ``max_failures``, ``max_failures_per_ip`` and ``window`` are the policy's ``per_client_account``,
    ``per_client`` and ``window`` (used when no ``policy`` is given). Refused with TooManyAttempts
    (without checking the password) while a delay runs; a wrong name or password is Unauthorized (the
    same message for both). Attempts on one name, and from one address, are serialised, so parallel
    guesses cannot overrun the limits.
    """
    if policy is None:
        policy = LoginPolicy(per_client_account=max_failures, per_client=max_failures_per_ip, window=window)
    key = (username.strip().lower() if isinstance(username, str) else "")[:100]
    ip = (ip or "")[:64] or None
    with engine.begin() as conn:
        can_record = conn.execute(sa.text(f"SELECT {_CAN_RECORD_LOGIN}")).scalar_one()
        if not can_record:
            raise WriteRefused(
                "password logins need to record login attempts (rate limiting) and this database connection is "
                "read-only: use an API token, or grant INSERT, DELETE on login_attempts (docs/attach.md)"
            )
        # the name first, then the address: every attempt takes them in this order (no deadlock)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('cca-login:' || :u, 0))"), {"u": key})
        if ip is not None:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended('cca-login-ip:' || :ip, 0))"), {"ip": ip}
            )
        seen = conn.execute(
            sa.text(
                """
                WITH last_ok AS (
                    SELECT coalesce(max(at) FILTER (WHERE ip IS NOT DISTINCT FROM CAST(:ip AS text)), '-infinity')
                               AS pair,
                           bool_or(ip IS NOT DISTINCT FROM CAST(:ip AS text)
                                   AND at > now() - make_interval(days => :known)) AS known
                    FROM login_attempts WHERE username = :u AND success
                ), failed AS (
                    SELECT username, ip, at FROM login_attempts
                    WHERE NOT success AND at > now() - make_interval(secs => :w)
                      AND (username = :u OR ip = CAST(:ip AS text))
                )
                SELECT count(*) FILTER (WHERE f.username = :u AND f.ip IS NOT DISTINCT FROM CAST(:ip AS text)
                                        AND f.at > o.pair) AS pair_n,
                       max(f.at) FILTER (WHERE f.username = :u AND f.ip IS NOT DISTINCT FROM CAST(:ip AS text)
                                         AND f.at > o.pair) AS pair_last,
                       count(*) FILTER (WHERE f.ip = CAST(:ip AS text)) AS client_n,
                       max(f.at) FILTER (WHERE f.ip = CAST(:ip AS text)) AS client_last,
                       count(*) FILTER (WHERE f.username = :u) AS account_n,
                       max(f.at) FILTER (WHERE f.username = :u) AS account_last,
                       coalesce(bool_or(o.known), false) AS known,
                       now() AS now
                FROM last_ok o LEFT JOIN failed f ON true
                """
            ),
            {"u": key, "ip": ip, "w": policy.window.total_seconds(), "known": policy.known_client_days},
        ).one()
        waits = [
            (seen.pair_last, policy.delay(seen.pair_n, policy.per_client_account, policy.window)),
            (seen.client_last, policy.delay(seen.client_n, policy.per_client, policy.window)),
        ]
        if not (seen.known and ip is not None):
            waits.append(
                (seen.account_last, policy.delay(seen.account_n, policy.per_account, policy.account_max_delay))
            )
        until = max((last + wait for last, wait in waits if last is not None and wait), default=None)
        if until is not None and until > seen.now:
            retry = max(1, math.ceil((until - seen.now).total_seconds()))
            raise TooManyAttempts(f"too many failed logins; try again in {retry} s", retry_after=retry)
        user = verify_password(conn, username, password)
        conn.execute(
            sa.text("INSERT INTO login_attempts (username, ip, success) VALUES (:u, :ip, :s)"),
            {"u": key, "ip": ip, "s": user is not None},
        )
        conn.execute(
            sa.text(
                "DELETE FROM login_attempts WHERE at < now() - make_interval(secs => :keep) "
                "AND (NOT success OR at < now() - make_interval(days => :known))"
            ),
            {"keep": _ATTEMPTS_KEPT.total_seconds(), "known": policy.known_client_days},
        )
    if user is None:
        raise Unauthorized("wrong user name or password")
    return user


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


# ---------------------------------------------------------------------------------------- audit log
def _audit_json(details: Any) -> str:
    """Details as JSON: ids (uuids) and other values JSON lacks written as their text."""
    return json.dumps(details, ensure_ascii=False, default=str)


def audit(
    target: Engine | Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a change. Pass a Connection to write inside the transaction that made the change."""
    if not actor or not action or not object_type:
        raise InvalidArgument("audit entries need an actor, an action and an object type")
    params = {
        "actor": str(actor)[:200],
        "action": action[:100],
        "type": object_type[:50],
        "id": None if object_id is None else str(object_id)[:200],
        "details": Jsonb(details or {}, dumps=_audit_json),
    }
    statement = sa.text(
        "INSERT INTO audit_log (actor, action, object_type, object_id, details) "
        "VALUES (:actor, :action, :type, :id, :details)"
    )
    if isinstance(target, Connection):
        target.execute(statement, params)
    else:
        with target.begin() as conn:
            conn.execute(statement, params)


def audit_entries(
    engine: Engine,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest audit entries first, optionally filtered."""
    if not 1 <= int(limit) <= 10_000:
        raise InvalidArgument("limit must be between 1 and 10000")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, at, actor, action, object_type, object_id, details FROM audit_log "
                "WHERE (CAST(:action AS text) IS NULL OR action = :action) "
                "AND (CAST(:type AS text) IS NULL OR object_type = :type) "
                "AND (CAST(:oid AS text) IS NULL OR object_id = :oid) "
                "AND (CAST(:actor AS text) IS NULL OR actor = :actor) "
                "ORDER BY at DESC, id DESC LIMIT :limit"
            ),
            {"action": action, "type": object_type, "oid": object_id, "actor": actor, "limit": int(limit)},
        ).all()
    return [AuditEntry(*r) for r in rows]


# ---------------------------------------------------------------------------------------- secret key
def load_or_create_secret_key(path: Path | str) -> str:
    """The key that signs session cookies, kept in ``path`` (mode 0600): read when it exists, else
    generated and written atomically (several processes starting at once agree on one key)."""
    path = Path(path)
    key = _read_key(path)
    if key is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic; fails when another process wrote the key first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = _read_key(path)
    if not key:
        raise ConfigError(f"{path} holds no secret key: delete the file or set CCA_SECRET_KEY")
    return key


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the secret key in {path}: {exc}") from None
