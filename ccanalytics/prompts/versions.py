"""Prompt versions: create, list, show, diff, activate and roll back, with every activation recorded
(who, when, from, to).

A version is a row of the call processor's prompt_versions (uuid id, no number, no label): a new one is
inserted there, inactive, and its author and note go to cca_prompt_version_notes. ccanalytics never
changes a row of prompt_versions, its is_active flag included: the version ccanalytics's prompt
resolver serves for a name is the latest activation recorded in prompt_activations (exactly one per
name by construction; activations of a name are serialised), or the processor's own flag for a name
never activated through ccanalytics. Numbers and labels (``name@vN``) are derived by the view
cca_prompt_versions (migration 009)."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection, Engine

from ccanalytics.auth.auditlog import audit
from ccanalytics.core import rutext
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
MAX_PROMPT_CHARS = 100_000


@dataclass(frozen=True)
class PromptVersion:
    id: uuid.UUID
    name: str
    version: int
    label: str
    system_prompt: str
    tools_config: Any
    metadata: dict[str, Any]
    is_active: bool
    created_at: datetime
    created_by: str | None
    note: str | None
    processor_active: bool = False  # the call processor's own is_active flag

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["id"] = str(self.id)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class Activation:
    name: str
    from_version_id: uuid.UUID | None
    to_version_id: uuid.UUID
    kind: str
    activated_by: str
    reason: str | None
    activated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "from_version_id": str(self.from_version_id) if self.from_version_id else None,
            "to_version_id": str(self.to_version_id),
            "activated_at": self.activated_at.isoformat(),
        }


_COLUMNS = (
    "id, name, version, label, system_prompt, tools_config, metadata, is_active, created_at, created_by, note, "
    "processor_active"
)
_SELECT = f"SELECT {_COLUMNS} FROM cca_prompt_versions "  # noqa: S608 — _COLUMNS is a constant column list


def _row(r) -> PromptVersion:
    return PromptVersion(*r)


def _check_version(name: Any, system_prompt: Any, tools_config: Any, metadata: Any, author: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            "prompt name must be lowercase letters, digits, '_' or '-', starting with a letter",
            ru="имя промпта — строчные латинские буквы, цифры, «_» и «-», первой должна быть буква",
        )
    if not isinstance(system_prompt, str) or not system_prompt.strip():
        raise InvalidArgument("system_prompt must be a non-empty text", ru="текст промпта не может быть пустым")
    if len(system_prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            f"system_prompt is {len(system_prompt):,} characters, the limit is {MAX_PROMPT_CHARS:,}",
            ru=f"текст промпта длиннее {rutext.count(MAX_PROMPT_CHARS, 'символа', 'символов', 'символов')}",
        )
    if "\x00" in system_prompt:
        raise InvalidArgument(
            "system_prompt contains a NUL character", ru="текст промпта содержит недопустимый символ (NUL)"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidArgument("metadata must be a JSON object", ru="метаданные должны быть JSON-объектом")
    if tools_config is not None and not isinstance(tools_config, dict | list):
        raise InvalidArgument(
            "tools_config must be a JSON object or array", ru="инструменты должны быть JSON-объектом или массивом"
        )
    if not isinstance(author, str) or not author.strip():
        raise InvalidArgument("author is required", ru="не указано, кто создаёт версию")


def _same_as(base: PromptVersion, name: str, system_prompt: str, tools_config: Any, metadata: Any) -> bool:
    return (
        base.name == name
        and base.system_prompt == system_prompt
        and (tools_config or {}) == (base.tools_config or {})
        and (metadata or {}) == (base.metadata or {})
    )


def write_version(
    conn: Connection,
    name: str,
    system_prompt: str,
    *,
    tools_config: Any = None,
    metadata: dict[str, Any] | None = None,
    author: str,
    note: str | None = None,
    base: PromptVersion | None = None,
) -> PromptVersion:
    """Insert a new (inactive) version inside the caller's transaction ``conn`` and audit it
    (``prompt.created``). ``base``: the version it was edited from — the new one must differ from it
    (text, tools or metadata), else InvalidArgument."""
    _check_version(name, system_prompt, tools_config, metadata, author)
    if base is not None and _same_as(base, name, system_prompt, tools_config, metadata):
        raise InvalidArgument(
            f"the new version does not differ from {base.label}",
            ru="версия не отличается от исходной: измените текст, инструменты или метаданные",
        )
    # serialise versions of a name: their numbers follow the order of creation
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('cca-prompt:' || :n, 0))"), {"n": name})
    new_id = uuid.uuid4()
    conn.execute(
        sa.text(
            "INSERT INTO prompt_versions (id, name, system_prompt, tools_config, is_active, metadata, created_at) "
            "VALUES (:id, CAST(:n AS varchar), :sp, :tc, false, :md, greatest(now(), "
            "(SELECT max(created_at) + interval '1 microsecond' FROM prompt_versions "
            "WHERE name = CAST(:n AS varchar))))"
        ),
        {
            "id": new_id,
            "n": name,
            "sp": system_prompt,
            "tc": Jsonb(tools_config if tools_config is not None else {}),
            "md": Jsonb(metadata or {}),
        },
    )
    conn.execute(
        sa.text("INSERT INTO cca_prompt_version_notes (version_id, created_by, note) VALUES (:id, :by, :note)"),
        {"id": new_id, "by": author.strip(), "note": note},
    )
    version = _row(
        conn.execute(
            sa.text(_SELECT + "WHERE id = :id"),
            {"id": new_id},
        ).one()
    )
    details = {"label": version.label, "note": note, "from_version_id": base.id if base else None}
    audit(conn, author.strip(), "prompt.created", "prompt_version", str(version.id), details)
    return version


def create_version(
    engine: Engine,
    name: str,
    system_prompt: str,
    *,
    tools_config: Any = None,
    metadata: dict[str, Any] | None = None,
    author: str,
    note: str | None = None,
    activate: bool = False,
    base: uuid.UUID | str | None = None,
) -> PromptVersion:
    """A new version (number = previous + 1, label ``name@vN``). Never active unless ``activate``.
    ``base`` (id or label): the version it was edited from; the new one must differ from it.
    ``author`` is who acts (a user, a token's name, ``cli:<os user>``): the version, its activation and
    the audit entries (``prompt.created``, ``prompt.activated``) are written in one transaction."""
    _check_version(name, system_prompt, tools_config, metadata, author)
    edited_from = get_version(engine, base) if base is not None else None
    with engine.begin() as conn:
        version = write_version(
            conn,
            name,
            system_prompt,
            tools_config=tools_config,
            metadata=metadata,
            author=author,
            note=note,
            base=edited_from,
        )
        if activate:
            _activate(conn, version, by=author.strip(), reason="created and activated", kind="activate")
    return get_version(engine, version.id) if activate else version


def as_uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    """``value`` as a uuid (a version's or a test's id), or None when it is not one (then it may be a
    label or a name)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def get_version(engine: Engine, version_id: uuid.UUID | str) -> PromptVersion:
    """A version by id or by label (``tire_agent@v3``)."""
    as_id = as_uuid(version_id)
    with engine.connect() as conn:
        if as_id is None:
            row = conn.execute(
                sa.text(_SELECT + "WHERE label = :l"),
                {"l": str(version_id)},
            )
        else:
            row = conn.execute(
                sa.text(_SELECT + "WHERE id = :i"),
                {"i": as_id},
            )
        found = row.one_or_none()
    if found is None:
        raise NotFound(f"prompt version {version_id} does not exist")
    return _row(found)


def list_versions(engine: Engine, name: str | None = None) -> list[PromptVersion]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(_SELECT + "WHERE CAST(:n AS text) IS NULL OR name = :n ORDER BY name, version DESC"),
            {"n": name},
        ).all()
    return [_row(r) for r in rows]


def active_version(engine: Engine, name: str) -> PromptVersion | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(_SELECT + "WHERE name = :n AND is_active ORDER BY created_at DESC LIMIT 1"),
            {"n": name},
        ).one_or_none()
    return _row(row) if row else None


_ANY = object()  # "whatever version is active": no expectation to check


def _lock_name(conn: Connection, name: str) -> uuid.UUID | None:
    """Serialise activations of a name; the version active now (None: none)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('cca-prompt:' || :n, 0))"), {"n": name})
    return conn.execute(
        sa.text("SELECT id FROM cca_prompt_versions WHERE name = :n AND is_active ORDER BY created_at DESC LIMIT 1"),
        {"n": name},
    ).scalar()


def _activate(
    conn: Connection,
    target: PromptVersion,
    *,
    by: str,
    reason: str | None,
    kind: str,
    expected_current: Any = _ANY,
) -> Activation:
    current = _lock_name(conn, target.name)
    if expected_current is not _ANY and current != as_uuid_or_none(expected_current):
        raise Conflict(
            f"the active version of {target.name} changed meanwhile",
            ru="активная версия изменилась, пока открыта эта страница: проверьте ещё раз",
        )
    if current == target.id:
        raise Conflict(f"{target.label} is already the active version", ru=f"{target.label} уже активна")
    row = conn.execute(
        sa.text(
            # the time the lock was held, not the transaction's start (now()): activations of a name
            # are ordered by it, and the latest one is the active version
            "INSERT INTO prompt_activations (name, from_version_id, to_version_id, kind, activated_by, reason, "
            "activated_at) VALUES (:n, :f, :t, :k, :by, :r, clock_timestamp()) "
            "RETURNING name, from_version_id, to_version_id, kind, activated_by, reason, activated_at"
        ),
        {"n": target.name, "f": current, "t": target.id, "k": kind, "by": by, "r": reason},
    ).one()
    action = "prompt.rolled_back" if kind == "rollback" else "prompt.activated"
    details = {
        "label": target.label,
        "from_version_id": current,
        "reason": reason,
    }
    audit(conn, by, action, "prompt_version", str(target.id), details)
    return Activation(*row)


def as_uuid_or_none(value: Any) -> uuid.UUID | None:
    """An expected version id as given by a form or a caller: None, '' or a uuid."""
    if value is None or value == "":
        return None
    found = as_uuid(value)
    if found is None:
        raise InvalidArgument(f"{str(value)[:40]!r} is not a version id", ru="нужен идентификатор версии (uuid)")
    return found


def _check_by(by: Any) -> str:
    if not isinstance(by, str) or not by.strip():
        raise InvalidArgument("who activates is required", ru="не указано, кто активирует версию")
    return by.strip()


def activate_version(
    engine: Engine,
    version_id: uuid.UUID | str,
    *,
    by: str,
    reason: str | None = None,
    kind: str = "activate",
    expected_current: Any = _ANY,
) -> Activation:
    """Make a version the one ccanalytics serves for its name: an activation recorded in
    prompt_activations (the processor's prompt_versions.is_active is not touched) and audited
    (``prompt.activated``) in the same transaction, ``by`` being who acts. Concurrent activations of the
    same name are serialised. Conflict when the version is already active, or when
    ``expected_current`` (the active version's id the caller saw, None for none) is no longer active."""
    by = _check_by(by)
    target = get_version(engine, version_id)
    with engine.begin() as conn:
        return _activate(conn, target, by=by, reason=reason, kind=kind, expected_current=expected_current)


def rollback_target(conn: Connection | Engine, name: str) -> uuid.UUID | None:
    """The version a rollback re-activates: the one active before the latest activation (None: none)."""
    statement = sa.text(
        "SELECT from_version_id FROM prompt_activations WHERE name = :n AND from_version_id IS NOT NULL "
        "ORDER BY activated_at DESC, id DESC LIMIT 1"
    )
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return c.execute(statement, {"n": name}).scalar()
    return conn.execute(statement, {"n": name}).scalar()


def rollback(
    engine: Engine,
    name: str,
    *,
    by: str,
    reason: str | None = None,
    expected_current: Any = _ANY,
    expected_target: Any = _ANY,
) -> Activation:
    """Re-activate the version that was active before the current one; audited (``prompt.rolled_back``)
    in the same transaction. InvalidArgument when there is none; Conflict when ``expected_current`` or
    ``expected_target`` (what the caller saw) changed meanwhile."""
    by = _check_by(by)
    with engine.begin() as conn:
        current = _lock_name(conn, name)
        last = rollback_target(conn, name)
        if last is None or last == current:
            raise InvalidArgument(
                f"prompt {name!r} has no earlier active version to roll back to",
                ru=f"у промпта {name} нет предыдущей активной версии: откатывать некуда",
            )
        target_moved = expected_target is not _ANY and last != as_uuid_or_none(expected_target)
        if target_moved or (expected_current is not _ANY and current != as_uuid_or_none(expected_current)):
            raise Conflict(
                f"the versions of {name} changed meanwhile",
                ru="версии изменились, пока открыта эта страница: проверьте ещё раз",
            )
        target = _row(
            conn.execute(
                sa.text(_SELECT + "WHERE id = :i"),
                {"i": last},
            ).one()
        )
        return _activate(conn, target, by=by, reason=reason or "rollback", kind="rollback")


def history(engine: Engine, name: str) -> list[Activation]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT name, from_version_id, to_version_id, kind, activated_by, reason, activated_at "
                "FROM prompt_activations WHERE name = :n ORDER BY activated_at DESC, id DESC"
            ),
            {"n": name},
        ).all()
    return [Activation(*r) for r in rows]


@dataclass(frozen=True)
class Diff:
    old: PromptVersion
    new: PromptVersion
    unified: str  # the system prompt as a unified diff
    tools_changed: bool
    tools_unified: str
    rows: list[tuple[str, str | None, str | None]]  # side by side: (tag, old line, new line)


def diff_versions(engine: Engine, old_id: uuid.UUID | str, new_id: uuid.UUID | str) -> Diff:
    old, new = get_version(engine, old_id), get_version(engine, new_id)
    a, b = old.system_prompt.splitlines(), new.system_prompt.splitlines()
    unified = "\n".join(difflib.unified_diff(a, b, old.label, new.label, lineterm=""))
    ta = json.dumps(old.tools_config, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    tb = json.dumps(new.tools_config, ensure_ascii=False, indent=2, sort_keys=True).splitlines()
    tools = "\n".join(difflib.unified_diff(ta, tb, old.label, new.label, lineterm=""))
    rows: list[tuple[str, str | None, str | None]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [("equal", a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        else:
            left, right = a[i1:i2], b[j1:j2]
            for k in range(max(len(left), len(right))):
                rows.append((tag, left[k] if k < len(left) else None, right[k] if k < len(right) else None))
    return Diff(old, new, unified, ta != tb, tools, rows)
