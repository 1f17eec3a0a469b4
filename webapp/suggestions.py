"""The prompt optimizer's suggestions (Russian UI): the list, one suggestion with its failure patterns
and proposed text, and the decision — approve (optionally edited) into a new inactive prompt version,
or reject. Thin: ccanalytics.prompts.optimizer checks, decides and writes the audit log."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ccanalytics.core import labels
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.prompts import optimizer
from ccanalytics.prompts import versions as prompts

from .db import get_engine
from .errorpages import keeps_form
from .prompts import actor, error_page, page_context

bp = Blueprint("suggestions", __name__)
bp.context_processor(page_context)
bp.register_error_handler(NotFound, error_page)
bp.register_error_handler(InvalidArgument, error_page)

STATUSES = labels.SUGGESTION_STATUSES
SOURCES = labels.SUGGESTION_SOURCES


@bp.get("/prompts/suggestions")
def index():
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidArgument(
            f"status must be one of {', '.join(STATUSES)}",
            ru="Фильтр по статусу: " + ", ".join(f"«{name}»" for name in STATUSES.values()) + " — или все предложения.",
        )
    engine = get_engine()
    found = optimizer.list_suggestions(engine, status)
    versions = {v.id: v for v in prompts.list_versions(engine)} if found else {}
    return render_template(
        "suggestions.html", suggestions=found, versions=versions, status=status, statuses=STATUSES, sources=SOURCES
    )


def _suggestion(suggestion_id: int) -> optimizer.Suggestion:
    if suggestion_id > 2**63 - 1:  # past bigint: no such row (and no database error)
        raise NotFound(f"Предложения #{suggestion_id} нет.")
    try:
        return optimizer.get_suggestion(get_engine(), suggestion_id)
    except NotFound:
        raise NotFound(f"Предложения #{suggestion_id} нет.") from None


def _page(suggestion_id: int, *, error: str | None = None, status: int = 200, text: str | None = None):
    engine = get_engine()
    s = _suggestion(suggestion_id)
    base = prompts.get_version(engine, s.base_version_id)
    created = prompts.get_version(engine, s.new_version_id) if s.new_version_id else None
    page = render_template(
        "suggestion.html",
        s=s,
        base=base,
        created=created,
        text=(s.proposed_prompt or "") if text is None else text,
        statuses=STATUSES,
        sources=SOURCES,
        criterion_ru=labels.criterion,
        scenario_ru=labels.scenario,
        error=error,
    )
    return page, status


@bp.get("/prompts/suggestions/<int:suggestion_id>")
def detail(suggestion_id: int):
    return _page(suggestion_id)


@bp.post("/prompts/suggestions/<int:suggestion_id>/decide")
@keeps_form(
    lambda message, suggestion_id: _page(
        suggestion_id, error=message, status=400, text=request.form.get("prompt_text", "").replace("\r\n", "\n")
    )
)
def decide(suggestion_id: int):
    engine = get_engine()
    s = _suggestion(suggestion_id)
    text = request.form.get("prompt_text", "").replace("\r\n", "\n")
    try:
        decision = request.form.get("decision")
        if decision not in ("approve", "reject"):
            raise InvalidArgument("выберите: одобрить или отклонить")
        approve = decision == "approve"
        # checks and audits the decision and the new version in one transaction
        decided = optimizer.decide(engine, s.id, by=actor(), approve=approve, prompt_text=text if approve else None)
    except (InvalidArgument, Conflict) as exc:
        return _page(suggestion_id, error=exc.message_ru, status=exc.http_status, text=text)
    if decided.new_version_id is None:
        flash(f"Предложение #{s.id} отклонено.", "info")
        return redirect(url_for(".index"), 303)
    version = prompts.get_version(engine, decided.new_version_id)
    flash(f"Создана версия {version.label} (не активна). Сравните её с {s.prompt_name} и проверьте A/B-тестом.", "good")
    return redirect(url_for("prompts.diff", version_id=version.id, against=s.base_version_id), 303)
