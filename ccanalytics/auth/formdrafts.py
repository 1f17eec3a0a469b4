"""Forms kept across an ended session: what a user typed into an admin form whose session had ended
(12 h, a logout elsewhere, a new password) when they sent it.

The web layer keeps the posted fields here instead of dropping them at the login redirect, under a
random key that only the redirect carries; after logging in, the same user — and no other — gets the
form back filled in, and sends it again (never automatically: the CSRF token is new and the user
confirms). Stored in ``cca_form_drafts`` (migration 027) under the key's SHA-256: bounded in size, never
a password or the CSRF token, for :data:`TTL`, at most :data:`PER_USER` per user.

    key = formdrafts.keep(engine, user_id, page="/calls/…", action="/calls/…/review/resolve",
                          fields=[("comment", "…")])
    draft = formdrafts.get(engine, key, user_id)   # None: unknown, expired, or another user's
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from ccanalytics.core import clock
from ccanalytics.core.errors import PayloadTooLarge

TTL = timedelta(minutes=30)
PER_USER = 10  # the newest drafts of a user kept; older ones are dropped
MAX_FIELDS = 300
MAX_CHARS = 200_000  # names and values together: a whole prompt (100 000 characters) and its note fit
MAX_PATH = 2000
# never kept, never shown again
SECRET_FIELDS = frozenset({"password", "password2", "new_password", "current_password", "csrf_token"})
TOO_LARGE_RU = (
    "Форма слишком большая, чтобы сохранить её до входа: введённое не сохранено. "
    "Скопируйте текст из формы, войдите и отправьте её ещё раз."
)
# may this session keep a draft? Not in read-only mode (CCA_READ_ONLY, a replica, a SELECT-only role)
_CAN_KEEP = (
    "(current_setting('transaction_read_only') = 'off' AND has_table_privilege('cca_form_drafts', 'INSERT') "
    "AND has_table_privilege('cca_form_drafts', 'DELETE'))"
)


@dataclass(frozen=True)
class Draft:
    user_id: int
    page: str  # the page the form was on
    action: str  # where the form was posted
    fields: tuple[tuple[str, str], ...]
    created_at: datetime
    expires_at: datetime


def is_secret(name: str) -> bool:
    """A field that is never kept nor shown again: a password, the CSRF token."""
    return name in SECRET_FIELDS or "password" in name


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def kept_fields(fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields a draft keeps (secrets left out); too many or too long → PayloadTooLarge (413)."""
    kept = [(str(name), str(value)) for name, value in fields if not is_secret(str(name))]
    size = sum(len(name) + len(value) for name, value in kept)
    if len(kept) > MAX_FIELDS or size > MAX_CHARS:
        raise PayloadTooLarge(
            f"the form is too large to keep until login ({len(kept)} fields, {size} characters; "
            f"at most {MAX_FIELDS} fields and {MAX_CHARS} characters)",
            ru=TOO_LARGE_RU,
        )
    return kept


def keep(
    engine: Engine, user_id: int, *, page: str, action: str, fields: Iterable[tuple[str, str]], ttl: timedelta = TTL
) -> str | None:
    """Keep the posted ``fields`` for ``user_id``; the random key to give back (in the login redirect),
    or None when the database takes no writes (read-only mode) or the user is gone or disabled. Too
    large → PayloadTooLarge."""
    kept = kept_fields(fields)
    if len(page) > MAX_PATH or len(action) > MAX_PATH:
        raise PayloadTooLarge("the form's address is too long to keep", ru=TOO_LARGE_RU)
    now = clock.now()
    key = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        if not conn.execute(sa.text(f"SELECT {_CAN_KEEP}")).scalar_one():
            return None
        conn.execute(sa.text("DELETE FROM cca_form_drafts WHERE expires_at <= :now"), {"now": now})
        kept_rows = conn.execute(
            sa.text(
                "INSERT INTO cca_form_drafts (key_hash, user_id, page, action, fields, created_at, expires_at) "
                "SELECT :k, id, :page, :action, :fields, :now, :expires FROM users WHERE id = :u AND NOT disabled"
            ),
            {
                "k": _hash(key),
                "u": int(user_id),
                "page": page,
                "action": action,
                "fields": Jsonb([list(f) for f in kept]),
                "now": now,
                "expires": now + ttl,
            },
        ).rowcount
        if not kept_rows:  # no such user (any more), or disabled: nobody could log in to get it
            return None
        conn.execute(
            sa.text(
                "DELETE FROM cca_form_drafts WHERE user_id = :u AND key_hash NOT IN "
                "(SELECT key_hash FROM cca_form_drafts WHERE user_id = :u ORDER BY created_at DESC LIMIT :n)"
            ),
            {"u": int(user_id), "n": PER_USER},
        )
    return key


def get(engine: Engine, key: str | None, user_id: int) -> Draft | None:
    """The draft under ``key`` if it is ``user_id``'s and has not expired; else None."""
    if not key or not isinstance(key, str) or len(key) > 100:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT user_id, page, action, fields, created_at, expires_at FROM cca_form_drafts "
                "WHERE key_hash = :k AND user_id = :u AND expires_at > :now"
            ),
            {"k": _hash(key), "u": int(user_id), "now": clock.now()},
        ).one_or_none()
    if row is None:
        return None
    fields = tuple((str(name), str(value)) for name, value in row.fields)
    return Draft(row.user_id, row.page, row.action, fields, row.created_at, row.expires_at)
