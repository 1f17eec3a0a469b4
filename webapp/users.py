"""Users and API tokens (Russian UI, administrators only): the pages over ccanalytics.auth.users that the
``ccanalytics users`` / ``ccanalytics tokens`` commands also use.

* ``/users``: every user (role, tenants, disabled, created, last login); create one with a password
  given or generated (a generated one is shown once, on the answer to the form);
* ``/users/<name>``: change the tenants, disable or enable (disabling ends every session of the user),
  reset the password (generated and shown once, or given; every session ends); the user's audit trail;
* ``/tokens``: API tokens (role, tenants, created by, last use, revoked); create one (shown once),
  revoke one.

Every change is written to the audit log by ccanalytics.auth.users in the transaction that makes it. An
administrator limited to tenants manages only users and tokens limited to some of those tenants, and
grants only those tenants. Bad input re-shows the form with a Russian message (400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from ccanalytics.auth import accounts, auditlog, passwords
from ccanalytics.auth import users as auth
from ccanalytics.core import timeutil
from ccanalytics.core.errors import AlreadyExists, InvalidArgument, NotFound, WriteRefused

from . import tenancy
from .auth import ROLE_NAMES, current_principal, require_principal, role_required
from .db import get_engine

bp = Blueprint("users", __name__)

USER_ROLES_RU = {r: ROLE_NAMES[r] for r in auth.USER_ROLES}
TOKEN_ROLES_RU = {r: ROLE_NAMES[r] for r in auth.ROLES}
ROLE_NOTES = {
    "admin": "всё, включая изменения",
    "analyst": "только чтение",
    "service": "только API: приём звонков и чтение промптов",
}
ACTIONS_RU = {
    "user.created": "создан",
    "user.disabled": "отключён",
    "user.enabled": "включён снова",
    "user.password_changed": "пароль изменён",
    "user.tenants_changed": "изменены сети",
}
NAME_RULE = "от 1 до 100 символов: латинские буквы, цифры, «_», «.», «@» или «-», первая — буква или цифра"


class FormError(Exception):
    """Bad input in a form: shown above the form, which keeps what was typed (400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _page(title: str, message: str, status: int):
    return render_template("page_error.html", title=title, message=message, links="scoped"), status


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return _page("Не найдено", "Такого пользователя или токена нет.", 404)


@bp.errorhandler(WriteRefused)
def _read_only(exc: WriteRefused):
    return _page("Изменения недоступны", "База данных открыта только для чтения: изменить ничего нельзя.", 403)


@bp.errorhandler(InvalidArgument)
def _bad_request(exc: InvalidArgument):
    return _page("Ошибка в запросе", "Данные формы не подходят: проверьте их и попробуйте снова.", 400)


# ------------------------------------------------------------------------------------------ helpers
def _actor() -> str:
    return require_principal().actor


def _limit() -> tuple[str, ...] | None:
    """The tenants the acting administrator is limited to (None: every tenant)."""
    return require_principal().tenants


def _may_manage(target: Sequence[str] | None) -> bool:
    """An administrator limited to tenants manages only accounts limited to some of those tenants."""
    limit = _limit()
    return limit is None or (target is not None and set(target) <= set(limit))


def _check_manage(target: Sequence[str] | None) -> None:
    if not _may_manage(target):
        raise FormError("Вы ограничены своими сетями и не можете менять учётные записи с доступом к другим сетям.")


def _text(name: str, label: str, limit: int = 200) -> str:
    value = request.form.get(name, "")
    if "\x00" in value or len(value) > limit:
        raise FormError(f"«{label}»: недопустимый символ или слишком длинное значение (не больше {limit}).")
    return value.strip()


def _chosen_tenants() -> list[str] | None:
    """The tenants ticked in the form (None: none ticked — every tenant), checked against the database
    and the acting administrator's own tenants."""
    asked = [s.strip().lower() for s in request.form.getlist("tenant") if s.strip()]
    if any("\x00" in s or len(s) > 100 for s in asked):
        raise FormError("«Сети»: недопустимое значение.")
    known = {t.slug for t in tenancy.known(fresh=True)}  # a check: as the database has them now
    unknown = [s for s in asked if s not in known]
    if unknown:
        raise FormError(f"Сети «{unknown[0]}» нет. Есть: {', '.join(sorted(known)) or 'ни одной'}.")
    chosen = list(dict.fromkeys(asked)) or None
    limit = _limit()
    if limit is not None:
        if chosen is None:
            raise FormError("Вы ограничены своими сетями: отметьте сети, к которым будет доступ.")
        outside = [s for s in chosen if s not in limit]
        if outside:
            raise FormError(f"Сеть «{outside[0]}» вам недоступна: дать к ней доступ нельзя.")
    return chosen


def _password_fields() -> tuple[str | None, bool]:
    """(the password given, or None to generate one; whether it is generated)."""
    mode = request.form.get("password_mode", "generate")
    if mode == "generate":
        return None, True
    if mode != "set":
        raise FormError("Выберите: сгенерировать пароль или задать его.")
    password = request.form.get("password", "")
    if len(password) < passwords.MIN_PASSWORD_LENGTH:
        raise FormError(f"Пароль должен быть не короче {passwords.MIN_PASSWORD_LENGTH} символов.")
    if len(password) > passwords.MAX_PASSWORD_LENGTH:
        raise FormError(f"Пароль должен быть не длиннее {passwords.MAX_PASSWORD_LENGTH} символов.")
    if "\x00" in password:
        raise FormError("Пароль содержит недопустимый символ.")
    if password != request.form.get("password2", ""):
        raise FormError("Пароли не совпадают.")
    return password, False


def _common() -> dict[str, Any]:
    limit = _limit()
    return {
        "zone": timeutil.zone(current_app.config["TIMEZONE"]),
        "tenant_choices": [t for t in tenancy.known() if limit is None or t.slug in limit],
        "tenant_names": {t.slug: t.name or t.slug for t in tenancy.known()},
        "role_names": ROLE_NAMES,
        "role_notes": ROLE_NOTES,
        "me": current_principal(),
        "may_manage": _may_manage,
        "last_login_days": accounts.LAST_LOGIN_DAYS,
    }


# -------------------------------------------------------------------------------------------- users
def _users_page(*, error: str | None = None, form: dict | None = None, status: int = 200):
    return render_template(
        "users.html",
        rows=accounts.users(get_engine()),
        roles=USER_ROLES_RU,
        error=error,
        form=form or {},
        chosen=request.form.getlist("tenant") if form else [],
        name_rule=NAME_RULE,
        min_password=passwords.MIN_PASSWORD_LENGTH,
        **_common(),
    ), status


@bp.get("/users")
@role_required("admin")
def index():
    return _users_page()


@bp.post("/users")
@role_required("admin")
def create():
    """Create a user; a generated password is shown once, on this answer."""
    form = {k: v for k, v in request.form.items() if not k.startswith("password") and k != "csrf_token"}
    form["password_mode"] = request.form.get("password_mode", "generate")
    try:
        username = _text("username", "Имя", 100).lower()
        if not auth.USERNAME_PATTERN.match(username):
            raise FormError(f"Имя пользователя — {NAME_RULE}.")
        role = request.form.get("role", "")
        if role not in USER_ROLES_RU:
            raise FormError("Выберите роль: администратор или аналитик.")
        chosen = _chosen_tenants()
        password, generated = _password_fields()
        if generated:
            password = accounts.generate_password()
        user = auth.add_user(get_engine(), username, password, role, tenants=chosen, actor=_actor())
    except FormError as exc:
        return _users_page(error=exc.message, form=form, status=400)
    except AlreadyExists:
        return _users_page(error=f"Пользователь «{username}» уже есть.", form=form, status=400)
    if generated:
        return render_template(
            "users_secret.html",
            title=f"Пользователь {user.username} создан",
            who=user.username,
            secret=password,
            kind="password",
            back=url_for(".user", username=user.username),
        )
    flash(f"Пользователь {user.username} создан.", "good")
    return redirect(url_for(".user", username=user.username), 303)


def _user_page(username: str, *, error: str | None = None, status: int = 200):
    row = accounts.user(get_engine(), username)
    trail = auditlog.audit_entries(get_engine(), object_type="user", object_id=row.user.username, limit=50)
    return render_template(
        "user.html",
        row=row,
        u=row.user,
        trail=trail,
        actions_ru=ACTIONS_RU,
        error=error,
        min_password=passwords.MIN_PASSWORD_LENGTH,
        **_common(),
    ), status


def _target(username: str) -> auth.User:
    try:
        found = auth.get_user_by_name(get_engine(), username)
    except InvalidArgument:
        found = None
    if found is None:
        raise NotFound(f"user {username!r} does not exist")
    return found


@bp.get("/users/<username>")
@role_required("admin")
def user(username: str):
    _target(username)
    return _user_page(username)


@bp.post("/users/<username>/disable")
@role_required("admin")
def disable(username: str):
    """Disable the user: they cannot log in, and every session of theirs ends now."""
    found = _target(username)
    try:
        _check_manage(found.tenants)
        me = require_principal()
        if me.kind == "user" and found.id == me.id:
            raise FormError("Нельзя отключить собственную учётную запись.")
    except FormError as exc:
        return _user_page(username, error=exc.message, status=400)
    auth.set_disabled(get_engine(), found.username, True, actor=_actor())
    flash(f"Пользователь {found.username} отключён; все его сеансы завершены.", "good")
    return redirect(url_for(".user", username=found.username), 303)


@bp.post("/users/<username>/enable")
@role_required("admin")
def enable(username: str):
    found = _target(username)
    try:
        _check_manage(found.tenants)
    except FormError as exc:
        return _user_page(username, error=exc.message, status=400)
    auth.set_disabled(get_engine(), found.username, False, actor=_actor())
    flash(f"Пользователь {found.username} снова может входить.", "good")
    return redirect(url_for(".user", username=found.username), 303)


@bp.post("/users/<username>/password")
@role_required("admin")
def password(username: str):
    """A new password, generated (shown once) or given; every session of the user ends."""
    found = _target(username)
    try:
        _check_manage(found.tenants)
        given, generated = _password_fields()
    except FormError as exc:
        return _user_page(username, error=exc.message, status=400)
    engine = get_engine()
    if given is None:  # generated
        secret = accounts.reset_password(engine, found.username, actor=_actor())
    else:
        auth.set_password(engine, found.username, given, actor=_actor())
    me = require_principal()
    if me.kind == "user" and me.id == found.id:  # my own: this session goes on, the others end
        changed = auth.get_user(engine, found.id)
        if changed is None:  # deleted meanwhile
            raise NotFound(f"user {found.username!r} does not exist")
        session["stamp"] = changed.stamp
    if generated:
        return render_template(
            "users_secret.html",
            title=f"Новый пароль пользователя {found.username}",
            who=found.username,
            secret=secret,
            kind="password",
            back=url_for(".user", username=found.username),
        )
    flash(f"Пароль пользователя {found.username} изменён; его сеансы завершены.", "good")
    return redirect(url_for(".user", username=found.username), 303)


@bp.post("/users/<username>/tenants")
@role_required("admin")
def set_tenants(username: str):
    """The tenants the user may read (none ticked: every tenant)."""
    found = _target(username)
    try:
        _check_manage(found.tenants)
        chosen = _chosen_tenants()
    except FormError as exc:
        return _user_page(username, error=exc.message, status=400)
    auth.set_user_tenants(get_engine(), found.username, chosen, actor=_actor())
    flash(f"Сети пользователя {found.username} изменены.", "good")
    return redirect(url_for(".user", username=found.username), 303)


# ------------------------------------------------------------------------------------------- tokens
def _tokens_page(*, error: str | None = None, form: dict | None = None, status: int = 200):
    show_revoked = request.args.get("revoked") == "1"
    return render_template(
        "tokens.html",
        rows=accounts.tokens(get_engine(), include_revoked=show_revoked),
        show_revoked=show_revoked,
        roles=TOKEN_ROLES_RU,
        error=error,
        form=form or {},
        chosen=request.form.getlist("tenant") if form else [],
        name_rule=NAME_RULE,
        **_common(),
    ), status


@bp.get("/tokens")
@role_required("admin")
def tokens_index():
    return _tokens_page()


@bp.post("/tokens")
@role_required("admin")
def token_create():
    """Create an API token; it is shown once, on this answer."""
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        name = _text("name", "Название", 100)
        if not auth.TOKEN_NAME_PATTERN.match(name):
            raise FormError(f"Название токена — {NAME_RULE}.")
        role = request.form.get("role", "")
        if role not in TOKEN_ROLES_RU:
            raise FormError("Выберите роль: администратор, аналитик или сервис.")
        chosen = _chosen_tenants()
        token = auth.create_token(get_engine(), role, name, tenants=chosen, actor=_actor())
    except FormError as exc:
        return _tokens_page(error=exc.message, form=form, status=400)
    except AlreadyExists:
        return _tokens_page(
            error=f"Действующий токен «{name}» уже есть: отзовите его или выберите другое название.",
            form=form,
            status=400,
        )
    return render_template(
        "users_secret.html",
        title=f"Токен {name} создан",
        who=name,
        secret=token,
        kind="token",
        back=url_for(".tokens_index"),
    )


@bp.post("/tokens/<name>/revoke")
@role_required("admin")
def token_revoke(name: str):
    """Revoke the live token ``name`` (asks for confirmation)."""
    live = {row.token.name: row.token for row in accounts.tokens(get_engine())}
    token = live.get(name)
    if token is None:
        raise NotFound(f"no live token named {name!r}")
    try:
        _check_manage(token.tenants)
        if request.form.get("confirm") != "yes":
            raise FormError(f"Подтвердите отзыв токена «{name}»: отметьте галочку рядом с кнопкой.")
    except FormError as exc:
        return _tokens_page(error=exc.message, status=400)
    auth.revoke_token(get_engine(), name, actor=_actor())
    flash(f"Токен «{name}» отозван: запросы с ним больше не принимаются.", "good")
    return redirect(url_for(".tokens_index"), 303)
