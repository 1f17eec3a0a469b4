"""The A/B test readout's sections (notebooks/ab_test_readout.ipynb)."""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any

from sqlalchemy.engine import Engine

from ccanalytics.core import labels, rutext, timeutil
from ccanalytics.core.errors import NotFound
from ccanalytics.experiments import abresults
from ccanalytics.experiments import lifecycle as experiments
from ccanalytics.reports import svgcharts
from ccanalytics.reports.htmlblocks import Block, note, num, pct, table, usd

ACTIONS_RU = labels.AB_ACTIONS
STATUS_RU = labels.AB_STATUSES
Z95 = 1.959964
_CALLS = ("звонок", "звонка", "звонков")


def pick_test(engine: Engine, test: str | None) -> experiments.ABTest:
    """The test asked for, else the running one, else the most recent."""
    if test not in (None, ""):
        return experiments.get_test(engine, str(test))
    tests = experiments.list_tests(engine)
    running = [t for t in tests if t.status == "running"]
    if running:
        return running[0]
    started = [(t.started_at, t) for t in tests if t.started_at is not None]
    if not started:
        raise NotFound("there is no A/B test that has started")
    return max(started, key=lambda st: st[0])[1]


def header(res: abresults.TestResults, *, tz: str = timeutil.DEFAULT_TZ) -> Block:
    t = res.test
    variants = ", ".join(f"{v.variant} — {v.label} ({rutext.share(v.weight, 0)})" for v in t.variants)
    started = rutext.datetime_(t.started_at.astimezone(timeutil.zone(tz))) if t.started_at else "—"
    text = (
        f"<h1>A/B-тест «{_e(t.test_name)}»</h1><p>Статус: {STATUS_RU.get(t.status, 'неизвестен')}; "
        f"начат {started} (Киев); "
        f"идёт {num(res.days_running, 1)} дн.; {rutext.count(res.calls_per_day, *_CALLS)} в день. "
        f"Варианты: {_e(variants)}. Целевая метрика: {_e(abresults.METRICS[t.goal_metric]['label'])}.</p>"
    )
    if t.description:
        text += f"<p>{_e(t.description)}</p>"
    if t.decision:
        text += f"<p>Решение: {_e(labels.label(labels.AB_DECISIONS, t.decision))}. {_e(t.decision_note or '')}</p>"
    return Block(text)


def _e(text: str) -> str:
    return escape(str(text))


def srm(res: abresults.TestResults) -> Block:
    s = res.srm
    if not s.computable:
        why = "звонков в тесте ещё нет" if s.reason == "no assignments yet" else "данных пока недостаточно"
        return note(f"Проверка распределения трафика (SRM) пока невозможна: {why}.")
    observed = ", ".join(f"{v.variant}: {num(v.n)}" for v in res.variants)
    if s.mismatch:
        return note(
            f"Трафик распределён не так, как задано (SRM, {rutext.pvalue(s.p_value)}): {observed}. "
            "Результатам верить нельзя, пока причина не найдена (назначение вариантов, исключения, потеря логов).",
            tone="bad",
        )
    fine = f"Распределение трафика соответствует заданному (SRM, {rutext.pvalue(s.p_value)}): {observed}."
    return note(fine, tone="good")


def variants(res: abresults.TestResults) -> Block:
    rows = [v.to_dict() for v in res.variants]
    for r in rows:
        r["name"] = f"{r['variant']} — {r['label']}"
    return table(
        rows,
        [
            ("name", "Вариант"),
            ("calls", "Звонков"),
            ("excluded", "Исключено"),
            ("resolved_without_operator_pct", "Решено без оператора", pct),
            ("avg_quality_score", "Качество", lambda v: num(v, 3)),
            ("avg_duration_seconds", "Длительность, с", lambda v: num(v, 0)),
            ("avg_cost_per_call_usd", "На звонок", usd),
            ("cost_per_resolved_call_usd", "На решённый", usd),
            ("response_p95_ms", "Ответ p95, мс", lambda v: num(v, 0)),
        ],
    )


def _interval(ci: tuple[float | None, float | None] | None, fmt: Callable[[float], str]) -> str:
    lo, hi = ci or (None, None)
    return "—" if lo is None or hi is None else f"{fmt(lo)}…{fmt(hi)}"


def comparisons(res: abresults.TestResults) -> list[Any]:
    """The challenger against A, metric by metric, with **one** interval: the one the recommendation
    uses (valid however often the test is looked at, with the correction for several metrics in its
    p-value). The narrower fixed-sample interval is in the footnote, with why the two differ."""
    out: list[Any] = []
    for challenger, metrics in res.comparisons.items():
        rec = res.recommendations.get(challenger)
        used = {v.spec.name: v for v in rec.verdicts} if rec is not None else {}
        sequential = bool(rec is not None and rec.sequential)
        rows, fixed = [], []
        for name, c in metrics.items():
            scale = 100.0 if abresults.METRICS[name]["kind"] == "proportion" else 1.0
            digits = 1 if scale == 100 else 4 if name == "cost_per_call" else 3
            fmt = lambda v, d=digits, s=scale: num(v * s, d) if v is not None else "—"
            sfmt = lambda v, d=digits, s=scale: rutext.signed(v * s, d) if v is not None else "—"
            v = used.get(name)
            d = v.comparison if v is not None else c
            ci = d.ci if d.computable else None
            rows.append(
                {
                    "metric": abresults.METRICS[name]["label"],
                    "a": fmt(c.a_mean),
                    "b": fmt(c.b_mean),
                    "effect": sfmt(c.effect),
                    "ci": _interval(ci, sfmt),
                    "p": rutext.pvalue(v.adjusted_p if v is not None else c.p_value, prefix=False),
                    "sig": ("да" if (v.significant if v is not None else c.significant) else "нет"),
                }
            )
            if c.ci:
                fixed.append(f"{abresults.METRICS[name]['label']}: {_interval(c.ci, sfmt)}")
        unit = (
            "доли — в процентных пунктах" if any(abresults.METRICS[n]["kind"] == "proportion" for n in metrics) else ""
        )
        out.append(
            table(
                rows,
                [
                    ("metric", "Метрика"),
                    ("a", "A"),
                    ("b", challenger),
                    ("effect", f"Разница {challenger} − A"),
                    ("ci", "Где, скорее всего, настоящая разница (95 %)*"),
                    ("p", "p*"),
                    ("sig", "Разница доказана"),
                ],
                caption=f"Сравнение {challenger} с A" + (f" ({unit})" if unit else ""),
            )
        )
        how = (
            "рассчитан так, чтобы оставаться верным, сколько бы раз тест ни смотрели (его смотрят каждый день), "
            "а p учитывает, что метрик несколько"
            if sequential
            else "p учитывает, что метрик несколько"
        )
        foot = (
            f"* Интервал: с вероятностью 95 % настоящая разница лежит в этих пределах. Если он целиком выше или ниже "
            f"нуля — разница доказана. Он {how}; по нему принято решение ниже. "
        )
        if sequential and fixed:
            foot += (
                "Обычный 95-процентный интервал (годится, только если посмотреть на итог один раз, в конце теста) "
                "уже: " + "; ".join(fixed) + "."
            )
        out.append(note(foot))
    return out


def _ci(stats: Any, proportion: bool = False) -> tuple[float, float, float] | None:
    if not stats.n:
        return None
    mean = stats.mean
    sd = math.sqrt(mean * (1 - mean)) if proportion else (stats.std or 0.0)
    half = Z95 * sd / math.sqrt(stats.n)
    return mean, mean - half, mean + half


def charts_per_metric(res: abresults.TestResults) -> list[Block]:
    """Each variant's mean quality and share resolved without an operator with their 95 % intervals:
    inline SVG charts (ccanalytics.reports.svgcharts), for the admin's A/B page and the readout notebook alike."""
    out: list[Block] = []
    quality = [(v.variant, _ci(v.quality)) for v in res.variants]
    rows = [{"variant": name, "value": c[0], "low": c[1], "high": c[2]} for name, c in quality if c]
    if rows:
        out.append(Block(svgcharts.variants_with_ci(rows, title="Оценка качества: среднее и 95 % ДИ", digits=3)))
    resolved = []
    for v in res.variants:
        if v.n:
            p = v.resolved / v.n
            half = Z95 * math.sqrt(p * (1 - p) / v.n)
            resolved.append({"variant": v.variant, "value": 100 * p, "low": 100 * (p - half), "high": 100 * (p + half)})
    if resolved:
        title = "Решено без оператора, %: доля и 95 % ДИ"
        out.append(Block(svgcharts.variants_with_ci(resolved, title=title, unit="%", digits=1)))
    return out


def recommendations(res: abresults.TestResults) -> list[Any]:
    out: list[Any] = []
    for challenger, r in res.recommendations.items():
        tone = {"ship_b": "good", "stop_harm": "bad", "investigate_srm": "bad"}.get(r.action, "info")
        extra = ""
        if r.action == "keep_running" and r.expected_days_to_power is not None:
            extra = f" Ещё примерно {num(r.expected_days_to_power, 0)} дн. до нужного объёма выборки."
        out.append(note(f"{challenger}: {ACTIONS_RU.get(r.action, r.action)}. {r.reason}{extra}", tone=tone))
    if not out:
        out.append(note("В тесте один вариант: сравнивать не с чем."))
    return out
