"""A/B test pages (Russian UI): the list, a new test, live results (per-variant metrics, CIs, SRM
check, recommendation, charts), start, and stop with a recorded decision. Thin: ccanalytics.experiments.lifecycle
computes, checks and audits every change (with the logged-in user), ccanalytics.reports.abview formats.

Tests are addressed by their uuid. The list also shows the call processor's own tests, read-only, with
its counters as stored: no result per call exists for them (the processor does not record the variant
on the call), so none is shown."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from markupsafe import Markup

from ccanalytics.core import labels
from ccanalytics.core.errors import Conflict, InvalidArgument, NotFound
from ccanalytics.experiments import abresults, processortests
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.prompts import versions as prompts
from ccanalytics.reports import abview

from .db import get_engine
from .errorpages import keeps_form
from .prompts import (
    actor,
    as_uuid,
    confirmed,
    error_page,
    form_text,
    form_uuid,
    page_context,
    prompts_changed,
)

bp = Blueprint("abtests", __name__)
bp.context_processor(page_context)
bp.register_error_handler(NotFound, error_page)
bp.register_error_handler(InvalidArgument, error_page)

MAX_VARIANTS = 6
DECISIONS_RU = labels.AB_DECISIONS
# the recommendation's action → the decision preselected in the stop form
SUGGESTED_DECISION = {"ship_b": "ship_b", "keep_a": "keep_a", "stop_harm": "stop_harm"}
GOALS_RU = {name: abresults.METRICS[name]["label"] for name in experiments.GOAL_METRICS}
EXCLUSIONS_RU = {
    "min_turns": "Не считать звонки короче N реплик",
    "min_duration_seconds": "Не считать звонки короче N секунд",
    "exclude_transferred_before_seconds": "Не считать переведённых на оператора раньше N секунд",
}
STATUSES = ("draft", "running", "stopped")
# the list's status filter → the call processor's statuses it covers (a processor test is never a draft)
PROCESSOR_STATUSES = {"draft": (), "running": ("active",), "stopped": ("stopped", "completed")}


def _versions_by_prompt() -> dict[str, list[prompts.PromptVersion]]:
    grouped: dict[str, list[prompts.PromptVersion]] = {}
    for v in prompts.list_versions(get_engine()):
        grouped.setdefault(v.name, []).append(v)
    return grouped


@bp.get("/ab")
def index():
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidArgument(
            f"status must be one of {', '.join(STATUSES)}",
            ru="Фильтр по статусу: " + ", ".join(f"«{abview.STATUS_RU[s]}»" for s in STATUSES) + " — или все тесты.",
        )
    engine = get_engine()
    tests = experiments.list_tests(engine, status=status)
    theirs = processortests.processor_tests(engine)
    if status is not None:
        theirs = [t for t in theirs if t.status in PROCESSOR_STATUSES[status]]
    return render_template(
        "ab_list.html",
        tests=tests,
        processor_tests=theirs,
        processor_note=processortests.PROCESSOR_RESULTS_NOTE_RU,
        status=status,
        status_ru=abview.STATUS_RU,
        decisions=DECISIONS_RU,
        goals=GOALS_RU,
    )


def _new_page(form: dict[str, Any], error: str | None = None, status: int = 200):
    page = render_template(
        "ab_new.html",
        form=form,
        error=error,
        grouped=_versions_by_prompt(),
        goals=GOALS_RU,
        exclusions=EXCLUSIONS_RU,
        slots=range(MAX_VARIANTS),
    )
    return page, status


def _weights(count: int) -> list[float] | None:
    raw = [request.form.get(f"weight_{i}", "").strip().replace(",", ".") for i in range(MAX_VARIANTS)]
    given = [w for w in raw if w]
    if not given:
        return None
    values = []
    for i in range(MAX_VARIANTS):
        variant = request.form.get(f"variant_{i}", "").strip()
        if not variant:
            continue
        if not raw[i]:
            raise InvalidArgument("доли трафика: задайте их всем вариантам или никому (тогда поровну)")
        try:
            share = float(raw[i])
        except ValueError:
            raise InvalidArgument("доля трафика — число процентов, например 50") from None
        if not 0 < share <= 100:
            raise InvalidArgument("доля трафика — от 0 до 100 %")
        values.append(share)
    if len(values) != count:
        raise InvalidArgument("доли трафика заданы для пустых вариантов")
    if abs(sum(values) - 100) > 0.5:
        raise InvalidArgument(f"доли трафика в сумме должны давать 100 %, а не {sum(values):g} %")
    total = sum(values)
    return [v / total for v in values]


def _exclusions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, title in EXCLUSIONS_RU.items():
        value = request.form.get(key, "").strip().replace(",", ".")
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            raise InvalidArgument(f"«{title}»: нужно число") from None
        if number < 0 or number > 1e6:
            raise InvalidArgument(f"«{title}»: число от 0")
        out[key] = int(number) if number.is_integer() else number
        if key == "min_turns" and not number.is_integer():
            raise InvalidArgument(f"«{title}»: нужно целое число")
    return out


@bp.route("/ab/new", methods=["GET", "POST"])
@keeps_form(lambda message: _new_page(request.form.to_dict(), message, 400))
def new():
    if request.method == "GET":
        chosen = [str(found) for p in request.args.get("versions", "").split(",") if (found := as_uuid(p))]
        form = {f"variant_{i}": v for i, v in enumerate(chosen[:MAX_VARIANTS])}
        form["goal_metric"] = "resolved_without_operator"
        return _new_page(form)
    form = request.form.to_dict()
    try:
        name = form_text("test_name", max_length=100, label="Название теста") or ""
        ids = [form_uuid(f"variant_{i}", f"вариант {chr(65 + i)}") for i in range(MAX_VARIANTS)]
        ids = [i for i in ids if i is not None]
        goal = request.form.get("goal_metric", "resolved_without_operator")
        if goal not in GOALS_RU:
            raise InvalidArgument("выберите целевую метрику из списка")
        test = experiments.create_test(  # checks the test's rules; audited by the library
            get_engine(),
            name,
            ids,
            weights=_weights(len(ids)),
            created_by=actor(),
            description=form_text("description", max_length=2000, label="Описание"),
            goal_metric=goal,
            exclusions=_exclusions(),
        )
    except (InvalidArgument, NotFound, Conflict) as exc:
        return _new_page(form, exc.message_ru, exc.http_status)
    flash(f"Тест «{test.test_name}» создан как черновик. Проверьте варианты и запустите его.", "good")
    return redirect(url_for(".detail", test_id=test.id), 303)


def _test(test_id: str) -> experiments.ABTest:
    """The test of a page address: its uuid. Anything else, or a uuid no test of ccanalytics's has, is a
    404 page in Russian (one of the call processor's tests says so: it has no page here)."""
    found = as_uuid(test_id)
    if found is None:
        raise NotFound(f"A/B-теста «{test_id[:40]}» нет: в адресе должен быть идентификатор теста (uuid).")
    engine = get_engine()
    try:
        return experiments.get_test(engine, found)
    except NotFound:
        pass
    try:
        theirs = processortests.get_processor_test(engine, found)
    except NotFound:
        raise NotFound(f"A/B-теста {found} нет.") from None
    raise NotFound(
        f"«{theirs.test_name}» — тест процессора звонков: он показан только в списке A/B-тестов, "
        f"{processortests.PROCESSOR_RESULTS_NOTE_RU}."
    )


def _detail_page(test_id: str, *, error: str | None = None, status: int = 200, form: dict[str, str] | None = None):
    engine = get_engine()
    test = _test(test_id)
    res = abresults.results(engine, test.id) if test.started_at is not None else None
    blocks: dict[str, Any] = {}
    suggested = "inconclusive"
    if res is not None:
        blocks = {
            "srm": Markup(str(abview.srm(res))),
            "variants": Markup(str(abview.variants(res))),
            "comparisons": [Markup(str(b)) for b in abview.comparisons(res)],
            "recommendations": [Markup(str(b)) for b in abview.recommendations(res)],
            "charts": [Markup(str(c)) for c in abview.charts_per_metric(res)],  # inline SVG
        }
        first = next(iter(res.recommendations.values()), None)
        if first is not None:
            suggested = SUGGESTED_DECISION.get(first.action, "inconclusive")
    criteria = sorted({k for v in res.variants for k in v.criteria}) if res else []
    page = render_template(
        "ab_detail.html",
        test=test,
        res=res,
        blocks=blocks,
        criteria=criteria,
        criterion_ru=labels.criterion,
        status_ru=abview.STATUS_RU,
        decisions=DECISIONS_RU,
        goals=GOALS_RU,
        exclusions=EXCLUSIONS_RU,
        form=form or {"decision": suggested},
        error=error,
    )
    return page, status


@bp.get("/ab/<test_id>")
def detail(test_id: str):
    return _detail_page(test_id)


@bp.post("/ab/<test_id>/start")
@keeps_form(lambda message, test_id: _detail_page(test_id, error=message, status=400))
def start(test_id: str):
    engine = get_engine()
    test = _test(test_id)
    try:
        started = experiments.start_test(engine, test.id, by=actor())  # audited by the library
    except (InvalidArgument, Conflict) as exc:
        return _detail_page(test_id, error=exc.message_ru, status=exc.http_status)
    prompts_changed()
    flash(f"Тест «{started.test_name}» запущен.", "good")
    return redirect(url_for(".detail", test_id=test.id), 303)


@bp.post("/ab/<test_id>/stop")
@keeps_form(lambda message, test_id: _detail_page(test_id, error=message, status=400, form=request.form.to_dict()))
def stop(test_id: str):
    engine = get_engine()
    test = _test(test_id)
    form = request.form.to_dict()
    try:
        decision = request.form.get("decision", "")
        note = form_text("note", max_length=2000, label="Комментарий")
        if not confirmed():
            raise InvalidArgument("подтвердите остановку: отметьте «Подтверждаю остановку теста»")
        experiments.stop_test(engine, test.id, by=actor(), decision=decision, note=note)  # audited by the library
    except (InvalidArgument, Conflict) as exc:
        return _detail_page(test_id, error=exc.message_ru, status=exc.http_status, form=form)
    prompts_changed()
    flash(f"Тест «{test.test_name}» остановлен: {DECISIONS_RU[decision]}.", "good")
    return redirect(url_for(".detail", test_id=test.id), 303)
