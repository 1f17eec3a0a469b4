"""Password logins with throttling: ``login`` records every checked attempt and ``LoginPolicy`` slows
guessing down with growing delays per client and account, never a hard lock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.auth.users import User, verify_password
from ccanalytics.core import retry
from ccanalytics.core.errors import TooManyAttempts, Unauthorized, WriteRefused

# login throttling (see :func:`login`): failures allowed before delays start, per scope
LOGIN_MAX_FAILURES = 5  # one client on one account
LOGIN_MAX_FAILURES_PER_IP = 20  # one client on any accounts (several names tried)
LOGIN_MAX_FAILURES_PER_ACCOUNT = 10  # one account from clients that never logged in to it
LOGIN_WINDOW = timedelta(minutes=15)  # failures older than this are forgotten; also the longest delay
LOGIN_FIRST_DELAY = timedelta(seconds=1)  # the first delay; each further failure doubles it
LOGIN_ACCOUNT_MAX_DELAY = timedelta(seconds=60)  # the longest delay the account-wide limit imposes
KNOWN_CLIENT_DAYS = 30  # a client that logged in to an account within this many days is known to it
_ATTEMPTS_KEPT = timedelta(days=1)  # failed attempts; successful ones are kept KNOWN_CLIENT_DAYS
# may this session record login attempts? Not in read-only mode (CCA_READ_ONLY, a replica, a SELECT-only
# role): docs/attach.md
_CAN_RECORD_LOGIN = (
    "(current_setting('transaction_read_only') = 'off' AND has_table_privilege('login_attempts', 'INSERT') "
    "AND has_table_privilege('login_attempts', 'DELETE'))"
)


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
