"""Prompt management pages (Russian UI): versions, the editor (a new version), a side-by-side diff,
activation and rollback behind a confirmation step. Thin: ccanalytics.prompts.versions does the work; every
change is written to the audit log with the logged-in user by the library function that makes it.

Also the small helpers the other admin pages share (who acts, local times, form fields, ids in
addresses and forms, the Russian error page).

Prompt versions and A/B tests are addressed by their uuid: an address with anything else is a 404 page
in Russian, a form or query field with anything else a 400 page in Russian."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from ccanalytics.core import timeutil
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.prompts import versions as prompts

from .apiparams import has_nul
from .auth import WRITE_ROLES, current_principal
from .db import get_engine
from .errorpages import keeps_form

bp = Blueprint("prompts", __name__)

_NAME = re.compile(prompts.NAME_PATTERN)
FOLD_CONTEXT = 3  # equal lines kept around a change in the diff; longer equal runs fold
MAX_NOTE = 2000
STATUS_RU = {"draft": "черновик", "running": "идёт", "stopped": "остановлен"}


# ------------------------------------------------------------------------------ shared page helpers
def actor() -> str:
    """Who acts: written to the audit log and to created_by/activated_by/stopped_by."""
    principal = current_principal()
    return principal.actor if principal else "anonymous"


def can_write() -> bool:
    principal = current_principal()
    return principal is not None and principal.role in WRITE_ROLES


def prompts_changed() -> None:
    """Forget the cached prompt resolution (the API's /prompts/resolve) after a change."""
    resolver = current_app.extensions.get("cca", {}).get("prompt_resolver")
    if resolver is not None:
        resolver.invalidate()


def local_time(value: datetime | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(timeutil.zone(current_app.config["TIMEZONE"])).strftime(fmt)


def form_text(name: str, *, max_length: int, label: str) -> str | None:
    """A text field of the posted form: stripped, None when empty; too long or NUL → InvalidArgument."""
    value = request.form.get(name, "")
    if "\x00" in value:
        raise InvalidArgument(f"поле «{label}» содержит недопустимый символ")
    if len(value) > max_length:
        raise InvalidArgument(f"поле «{label}»: не больше {max_length:,} символов".replace(",", " "))
    return value.strip() or None


def as_uuid(value: str) -> uuid.UUID | None:
    """A field or address part as a uuid (surrounding spaces ignored), or None."""
    value = value.strip()
    return prompts.as_uuid(value) if value and len(value) <= 64 else None


def form_uuid(name: str, label: str) -> uuid.UUID | None:
    """An id field of the form or the query string (a version's, a test's): None when empty; anything
    but a uuid → InvalidArgument (400) in Russian."""
    value = request.values.get(name, "").strip()
    if not value:
        return None
    found = as_uuid(value)
    if found is None:
        raise InvalidArgument(f"«{label}»: нужен идентификатор версии (uuid), а не «{value[:40]}»")
    return found


def version_by_id(version_id: uuid.UUID | str) -> prompts.PromptVersion:
    """A prompt version of a page by its id (uuid): one in an address that is not a uuid, or that no
    version has, is a 404 with a message in Russian."""
    found = version_id if isinstance(version_id, uuid.UUID) else as_uuid(version_id)
    if found is None:
        raise NotFound(f"Версии промпта «{str(version_id)[:40]}» нет: в адресе должен быть её идентификатор (uuid).")
    try:
        return prompts.get_version(get_engine(), found)
    except NotFound:
        raise NotFound(f"Версии промпта {found} нет.") from None


def error_page(exc: NotFound | InvalidArgument):
    """A NotFound or InvalidArgument raised by a page: an HTML page in Russian with its status (the API
    answers JSON; the app-wide handler stays for everything else)."""
    title = "Не найдено" if exc.http_status == 404 else "Ошибка в запросе"
    return render_template("page_error.html", title=title, message=exc.message_ru), exc.http_status


def confirmed() -> bool:
    return request.form.get("confirm") == "yes"


def page_context() -> dict[str, Any]:
    return {"can_write": can_write(), "when": local_time}


bp.context_processor(page_context)
bp.register_error_handler(NotFound, error_page)
bp.register_error_handler(InvalidArgument, error_page)


# ------------------------------------------------------------------------------------------ helpers
def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise NotFound(f"Промпта «{name[:100]}» нет.")
    return name


def _versions_of(name: str) -> list[prompts.PromptVersion]:
    found = prompts.list_versions(get_engine(), _check_name(name))
    if not found:
        raise NotFound(f"Промпта «{name}» нет.")
    return found


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _json_field(name: str, label: str, kinds: tuple[type, ...]) -> Any:
    text = form_text(name, max_length=200_000, label=label)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer longer than Python converts
        where = f"{exc.msg}, строка {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidArgument(f"«{label}»: это не JSON ({where})") from None
    if not isinstance(value, kinds):
        raise InvalidArgument(f"«{label}»: нужен JSON-{'объект или массив' if list in kinds else 'объект'}")
    if has_nul(value):
        raise InvalidArgument(f"«{label}»: содержит недопустимый символ \\u0000 (NUL) — уберите его")
    return value


def fold(rows: list[tuple[str, str | None, str | None]], context: int = FOLD_CONTEXT) -> list[dict[str, Any]]:
    """Side-by-side rows with line numbers; runs of equal lines far from any change fold into one
    ``{"fold": n}`` row."""
    out: list[dict[str, Any]] = []
    a = b = 0
    numbered = []
    for tag, old, new in rows:
        a += old is not None
        b += new is not None
        numbered.append(
            {
                "tag": tag,
                "old": old,
                "new": new,
                "a": a if old is not None else None,
                "b": b if new is not None else None,
            }
        )
    changed = [i for i, r in enumerate(numbered) if r["tag"] != "equal"]
    keep: set[int] = set()
    for i in changed:
        keep.update(range(i - context, i + context + 1))
    if not changed:
        keep = set(range(min(len(numbered), 2 * context)))
    hidden = 0
    for i, row in enumerate(numbered):
        if row["tag"] == "equal" and i not in keep:
            hidden += 1
            continue
        if hidden:
            out.append({"fold": hidden})
            hidden = 0
        out.append(row)
    if hidden:
        out.append({"fold": hidden})
    return out


def _running_test(name: str) -> experiments.ABTest | None:
    running = [t for t in experiments.list_tests(get_engine(), status="running") if t.prompt_name == name]
    return running[0] if running else None


def _rollback_target(name: str) -> uuid.UUID | None:
    """The version ``prompts.rollback`` would re-activate (the latest activation's predecessor)."""
    return prompts.rollback_target(get_engine(), name)


# -------------------------------------------------------------------------------------------- pages
@bp.get("/prompts")
def index() -> str:
    engine = get_engine()
    groups: dict[str, dict[str, Any]] = {}
    for v in prompts.list_versions(engine):  # ordered by name, newest version first
        g = groups.setdefault(v.name, {"name": v.name, "latest": v, "active": None, "count": 0})
        g["count"] += 1
        if v.is_active:
            g["active"] = v
    running = {t.prompt_name: t for t in experiments.list_tests(engine, status="running")}
    return render_template("prompts.html", groups=list(groups.values()), running=running)


@bp.get("/prompts/<name>")
def versions(name: str):
    engine = get_engine()
    found = _versions_of(name)
    history = prompts.history(engine, name)
    tests = [t for t in experiments.list_tests(engine) if t.prompt_name == name]
    in_tests = {v.version_id: t for t in tests if t.status == "running" for v in t.variants}
    return render_template(
        "prompt_versions.html",
        name=name,
        versions=found,
        history=history,
        tests=tests,
        in_tests=in_tests,
        labels={v.id: v.label for v in found},
        rollback_to=_rollback_target(name),
        status_ru=STATUS_RU,
    )


@bp.get("/prompts/<name>/v<int:number>")
def version(name: str, number: int):
    engine = get_engine()
    try:
        v = prompts.get_version(engine, f"{_check_name(name)}@v{number}")
    except NotFound:
        raise NotFound(f"У промпта «{name}» нет версии {number}.") from None
    siblings = prompts.list_versions(engine, name)
    previous = next((s for s in siblings if s.version < v.version), None)
    return render_template(
        "prompt_version.html",
        v=v,
        siblings=siblings,
        previous=previous,
        tools_json=_pretty(v.tools_config),
        metadata_json=_pretty(v.metadata),
        running=_running_test(name),
    )


def _edit_again(message: str):
    """The editor with what was posted and ``message`` (an expired form: webapp/errorpages.py)."""
    fields = ("name", "system_prompt", "tools_config", "metadata", "note", "base_id")
    form = {k: request.form.get(k, "") for k in fields}
    found = as_uuid(form["base_id"]) if form["base_id"] else None
    base = None
    if found is not None:
        try:
            base = prompts.get_version(get_engine(), found)
        except NotFound:
            base = None
    return render_template("prompt_edit.html", form=form, base=base, error=message)


def _confirm_again(message: str, version_id: str | None = None, name: str | None = None):
    """The activation or rollback confirmation with the typed reason and ``message``."""
    if version_id is not None:
        version = version_by_id(version_id)
        current = prompts.active_version(get_engine(), version.name)
        return _confirm_page("activate", version, current, error=message, reason=request.form.get("reason", ""))
    found = _versions_of(name or "")
    current = next((v for v in found if v.is_active), None)
    target_id = _rollback_target(name or "")
    target = next((v for v in found if v.id == target_id), None)
    if target is None:
        return render_template(
            "prompt_confirm.html", kind="rollback", target=None, current=current, name=name, error=message
        )
    return _confirm_page("rollback", target, current, error=message, reason=request.form.get("reason", ""))


@bp.route("/prompts/new", methods=["GET", "POST"])
@keeps_form(_edit_again)
def new():
    engine = get_engine()
    if request.method == "GET":
        base_id = form_uuid("from", "исходная версия")
        base = version_by_id(base_id) if base_id else None
        form = {
            "name": base.name if base else request.args.get("name", "")[:100],
            "system_prompt": base.system_prompt if base else "",
            "tools_config": _pretty(base.tools_config) if base and base.tools_config else "",
            "metadata": _pretty(base.metadata) if base and base.metadata else "",
            "note": "",
            "base_id": base.id if base else "",
        }
        return render_template("prompt_edit.html", form=form, base=base, error=None)
    form = {
        k: request.form.get(k, "") for k in ("name", "system_prompt", "tools_config", "metadata", "note", "base_id")
    }
    base = None
    try:
        base_id = form_uuid("base_id", "исходная версия")
        base = version_by_id(base_id) if base_id else None
        name = form_text("name", max_length=100, label="Имя промпта") or ""
        text = request.form.get("system_prompt", "")
        if len(text) > prompts.MAX_PROMPT_CHARS:
            raise InvalidArgument(f"текст промпта длиннее {prompts.MAX_PROMPT_CHARS:,} символов".replace(",", " "))
        tools = _json_field("tools_config", "Инструменты (JSON)", (dict, list))
        metadata = _json_field("metadata", "Метаданные (JSON)", (dict,))
        note = form_text("note", max_length=MAX_NOTE, label="Что изменилось")
        v = prompts.create_version(  # checks that it differs from its base; audited by the library
            engine,
            name,
            text.replace("\r\n", "\n"),
            tools_config=tools,
            metadata=metadata,
            author=actor(),
            note=note,
            base=base.id if base else None,
        )
    except (InvalidArgument, NotFound) as exc:
        return render_template("prompt_edit.html", form=form, base=base, error=exc.message_ru), exc.http_status
    flash(f"Создана версия {v.label}. Она не активна: активируйте её или проверьте A/B-тестом.", "good")
    return redirect(url_for(".version", name=v.name, number=v.version), 303)


@bp.get("/prompts/<version_id>/diff")
def diff(version_id: str):
    engine = get_engine()
    new_v = version_by_id(version_id)
    siblings = prompts.list_versions(engine, new_v.name)
    against = form_uuid("against", "сравнить с")
    if against is None:
        earlier = next((s for s in siblings if s.version < new_v.version), None)
        other = earlier or next((s for s in siblings if s.id != new_v.id), None)
        if other is None:
            return render_template("prompt_diff.html", d=None, new=new_v, siblings=siblings, rows=[])
        against = other.id
    d = prompts.diff_versions(engine, version_by_id(against).id, new_v.id)
    return render_template("prompt_diff.html", d=d, new=new_v, siblings=siblings, rows=fold(d.rows))


def _confirm_page(kind: str, target: prompts.PromptVersion, current: prompts.PromptVersion | None, **extra):
    d = prompts.diff_versions(get_engine(), current.id, target.id) if current and current.id != target.id else None
    return render_template(
        "prompt_confirm.html",
        kind=kind,
        target=target,
        current=current,
        d=d,
        rows=fold(d.rows) if d else [],
        running=_running_test(target.name),
        **{"error": None, "reason": "", **extra},
    )


@bp.route("/prompts/<version_id>/activate", methods=["GET", "POST"])
@keeps_form(_confirm_again)
def activate(version_id: str):
    engine = get_engine()
    target = version_by_id(version_id)
    current = prompts.active_version(engine, target.name)
    if request.method == "GET":
        return _confirm_page("activate", target, current)
    try:
        reason = form_text("reason", max_length=MAX_NOTE, label="Причина")
        if not confirmed():
            raise InvalidArgument("подтвердите активацию кнопкой «Да, активировать»")
        seen = request.form.get("current", "").strip()
        prompts.activate_version(engine, target.id, by=actor(), reason=reason, expected_current=seen)  # audited
    except (InvalidArgument, Conflict) as exc:
        page = _confirm_page("activate", target, current, error=exc.message_ru, reason=request.form.get("reason", ""))
        return page, exc.http_status
    prompts_changed()
    flash(f"Активна версия {target.label}.", "good")
    return redirect(url_for(".versions", name=target.name), 303)


@bp.route("/prompts/<name>/rollback", methods=["GET", "POST"])
@keeps_form(_confirm_again)
def rollback(name: str):
    engine = get_engine()
    found = _versions_of(name)
    by_id = {v.id: v for v in found}
    current = next((v for v in found if v.is_active), None)
    target_id = _rollback_target(name)
    target = by_id.get(target_id) if target_id else None
    if target is None or (current is not None and current.id == target.id):
        error = f"У промпта {name} нет предыдущей активной версии: откатывать некуда."
        page = render_template(
            "prompt_confirm.html", kind="rollback", target=None, current=current, name=name, error=error
        )
        return page, (400 if request.method == "POST" else 200)
    if request.method == "GET":
        return _confirm_page("rollback", target, current)
    try:
        reason = form_text("reason", max_length=MAX_NOTE, label="Причина")
        if not confirmed():
            raise InvalidArgument("подтвердите откат кнопкой «Да, откатить»")
        prompts.rollback(  # audited by the library
            engine,
            name,
            by=actor(),
            reason=reason,
            expected_current=request.form.get("current", "").strip(),
            expected_target=request.form.get("target", "").strip(),
        )
    except (InvalidArgument, Conflict) as exc:
        page = _confirm_page("rollback", target, current, error=exc.message_ru, reason=request.form.get("reason", ""))
        return page, exc.http_status
    prompts_changed()
    flash(f"Откат выполнен: активна версия {target.label}.", "good")
    return redirect(url_for(".versions", name=name), 303)
