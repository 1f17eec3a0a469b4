"""The cost review's sections (notebooks/cost_review.ipynb): what a call costs, where the money
goes, baseline against now with each lever's saving, and what the levers could still save — of some
tenants (``tenant=``) or of all; the model router is shared by every tenant, so its replay is over
every tenant's calls and a scoped review says so."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date
from html import escape
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import labels, rutext, timeutil
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.cost import levers, pricing, routing_replay, ttscache
from ccanalytics.db import tenants
from ccanalytics.reports import charts
from ccanalytics.reports.htmlblocks import Block, Format, note, num, pct, table, usd

LEVERS_RU = labels.LEVERS

_DAILY = f"""
SELECT (c.started_at AT TIME ZONE :tz)::date AS day, count(*) AS calls,
       avg(total_cost_usd)::float8 AS per_call,
       avg((cost_breakdown->>'stt')::float8)::float8 AS stt, avg((cost_breakdown->>'llm')::float8)::float8 AS llm,
       avg((cost_breakdown->>'tts')::float8)::float8 AS tts,
       avg((cost_breakdown->>'telephony')::float8)::float8 AS telephony
FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :end AND c.total_cost_usd IS NOT NULL
  AND {tenants.SQL}
GROUP BY 1 ORDER BY 1
"""  # noqa: S608 — only the constant tenants.SQL is interpolated; values are bound


def daily(
    engine: Engine, first: date, last: date, tz: str, *, tenant: tenants.TenantArg = None
) -> list[dict[str, Any]]:
    """Cost per priced call per day and per component, of ``tenant`` (default every tenant)."""
    start, end = timeutil.period_bounds(first, last, tz)
    with engine.connect() as conn:
        p = {"start": start, "end": end, "tz": tz, **tenants.params(tenants.scope(conn, tenant))}
        return [dict(r._mapping) for r in conn.execute(sa.text(_DAILY), p)]


def summary(s: dict[str, Any]) -> list[Any]:
    rows = [{"component": labels.COST_COMPONENTS.get(k, k), "usd": v} for k, v in s["components_per_call_usd"].items()]
    rows.append({"component": "Итого на звонок", "usd": s["cost_per_call_usd"]})
    rows.append({"component": "На решённый ботом звонок", "usd": s["cost_per_resolved_call_usd"]})
    hit = s["tts_cache_hit_rate"]
    facts = (
        f"Звонков: {num(s['calls'])}, из них решено ботом: {num(s['resolved_calls'])}. Всего: "
        f"{usd(s['total_cost_usd'], 2)}. Кэш TTS: {pct(100 * hit if hit is not None else None)} символов. "
        f"Входных токенов на вызов LLM: {num(s['llm_input_tokens_per_llm_call'])}."
    )
    if s["estimated_calls"]:
        facts += f" Стоимость {rutext.calls_gen(s['estimated_calls'])} оценена по транскрипту (нет данных о расходе)."
    return [note(facts), table(rows, [("component", "Статья"), ("usd", "USD на звонок", usd)])]


def trend(days: list[dict[str, Any]]) -> list[Any]:
    if not days:
        return [note("Нет звонков с рассчитанной стоимостью.", tone="warn")]
    xs = [d["day"] for d in days]
    return [
        charts.trend(xs, {"на звонок": [d["per_call"] for d in days]}, title="Стоимость звонка по дням", ylabel="USD"),
        charts.stacked_days(
            xs,
            {k: [d[k] for d in days] for k in ("stt", "llm", "tts", "telephony")},
            title="Из чего состоит стоимость звонка",
            ylabel="USD",
            names=labels.COST_COMPONENTS,
        ),
    ]


_PROVIDERS = {"unknown": "не указано", "whisper": "Whisper (свой сервер)", "google": "Google"}


def breakdowns(s: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    titles = {
        "by_scenario": ("По сценариям", "Сценарий"),
        "by_prompt_version": ("По версиям промпта", "Версия промпта"),
        "by_llm_model": ("По моделям LLM", "Модель"),
        "by_stt_provider": ("По провайдерам STT", "Провайдер"),
    }
    for key, (title, column) in titles.items():
        rows = s.get(key) or []
        name = labels.scenario if key == "by_scenario" else (lambda k: _PROVIDERS.get(k or "unknown", k))
        rows = [{**r, "key": name(r["key"])} for r in rows]
        cols: list[tuple[str, str] | tuple[str, str, Format]] = [
            ("key", column),
            ("calls", "Звонков"),
            ("cost_per_call_usd", "На звонок", usd),
            ("cost_per_resolved_call_usd", "На решённый", usd),
        ]
        out.append(table(rows, cols, caption=title))
    return out


_DETAILS = (  # cost.cost_report's lever details, in Russian
    (re.compile(r"cache hit rate (\d+)% → (\d+)% of characters"), "символов из кэша: {} % → {} %"),
    (re.compile(r"(\d+)% of calls on a cheaper model"), "{} % звонков на более дешёвой модели"),
    (re.compile(r"calls on self-hosted or another STT provider"), "звонки на своём Whisper или другом провайдере STT"),
    (re.compile(r"input tokens per LLM call (\d+) → (\d+)"), "входных токенов на вызов LLM: {} → {}"),
    (re.compile(r"volume mix, call length and price changes"), "состав звонков, их длительность, изменения цен"),
)


def lever_detail(text: str) -> str:
    """A lever's "how it was computed" in Russian (numbers in Russian format); «—» for an unknown one."""
    for pattern, russian in _DETAILS:
        m = pattern.fullmatch(text.strip())
        if m:
            return russian.format(*(num(int(g)) for g in m.groups()))
    return "—"


def baseline_vs_now(report: dict[str, Any]) -> list[Any]:
    b, c = report["baseline"], report["current"]
    period = lambda p: rutext.period(p["date_from"], p["date_to"])
    head = (
        f"База {period(b['period'])}: {usd(b['cost_per_call_usd'])} на звонок; "
        f"сейчас {period(c['period'])}: {usd(c['cost_per_call_usd'])}. "
        f"Снижение: {pct(report['reduction_pct'])} на звонок, "
        f"{pct(report['reduction_per_resolved_call_pct'])} на решённый звонок (минус — рост)."
    )
    reduction = report["reduction_pct"]
    tone = "good" if reduction is not None and reduction >= 20 else "warn"
    rows = [
        {
            "lever": LEVERS_RU.get(lv["lever"], "прочее"),
            "saving": lv["saving_per_call_usd"],
            "share": lv["saving_pct_of_baseline"],
            "detail": lever_detail(lv["detail"]),
        }
        for lv in report["levers"]
    ]
    return [
        note(head + (" Цель — минус 20 %." if tone == "warn" else " Цель (минус 20 %) достигнута."), tone=tone),
        table(
            rows,
            [
                ("lever", "Рычаг"),
                ("saving", "Экономия на звонок", usd),
                ("share", "% от базы", pct),
                ("detail", "Как посчитано"),
            ],
        ),
        note("Отрицательная экономия — рычаг в этом периоде удорожает звонок (красный столбец на графике)."),
        charts.signed_bars(
            {LEVERS_RU.get(lv["lever"], "прочее"): lv["saving_per_call_usd"] for lv in report["levers"]},
            title="Вклад рычагов в снижение стоимости",
            xlabel="USD на звонок (минус — рост стоимости)",
        ),
    ]


def _routing_text(r: routing_replay.RoutingReplay) -> str:
    """The model-routing replay in Russian, every number through rutext."""
    share = f", {rutext.share(r.saving_share_of_llm, 0)} расходов на LLM" if r.saving_share_of_llm is not None else ""
    text = (
        f"Роутер отправил бы {rutext.share(r.share_cheap or 0, 0)} звонков на {r.cheap_model}: экономия LLM "
        f"≈ {usd(r.llm_saving_usd, 2)} за период ({usd(r.saving_per_call_usd or 0)} на звонок{share})."
    )
    if r.llm_extra_usd > 0:
        text += (
            f" Звонки, которые роутер оставил бы на {r.default_model}, но которые шли на другой модели, стоили бы "
            f"на {usd(r.llm_extra_usd, 2)} больше."
        )
    quality = lambda s: num(s.mean_quality, 2) if s.mean_quality is not None else "нет оценок"
    text += (
        f" Качество: простые звонки {quality(r.routed)}, остальные {quality(r.rest)}; сегменты различаются составом "
        "звонков, так что это сигнал риска, а не эффект модели: подтвердите A/B-тестом."
    )
    if r.ab_calls_per_arm:
        text += f" Для теста нужно около {rutext.calls_gen(r.ab_calls_per_arm)} на группу."
    return text


def opportunities(
    engine: Engine,
    first: date,
    last: date,
    *,
    book: pricing.PriceBook,
    tz: str,
    tenant: tenants.TenantArg = None,
) -> list[Any]:
    """What the levers could still save, measured on the period's calls of ``tenant`` (default every
    tenant); the model routing replay is over every tenant's calls (one router serves them all)."""
    scope = tenants.scope(engine, tenant)
    out: list[Any] = []
    w = levers.whisper_break_even(engine, first, last, book=book, tz=tz, tenant=scope)
    if w.break_even_calls_per_day is not None:
        verdict = "выгоден" if (w.monthly_saving_usd or 0) > 0 else "пока не выгоден"
        out.append(
            note(
                f"Whisper (свой GPU, {usd(w.whisper_usd_per_month, 0)} в месяц): окупается от "
                f"{rutext.calls_gen(round(w.break_even_calls_per_day))} в день; "
                f"сейчас {num(w.calls_per_day)} в день — {verdict}; "
                f"экономия в месяц {usd(w.monthly_saving_usd, 0)}."
            )
        )
    try:
        cache = ttscache.tts_cache_from_logs(engine, first, last, book=book, tz=tz, top_n=10, tenant=scope)
    except InvalidArgument as exc:
        out.append(note(f"Кэш TTS: {exc}", tone="warn"))
    else:
        out.append(
            note(
                f"Кэш фраз TTS на {num(cache.max_entries)} фраз дал бы "
                f"{pct(100 * (cache.hit_rate_chars or 0))} символов "
                f"(сейчас {pct(100 * (cache.logged_hit_rate_chars or 0))}), "
                f"экономия {usd(cache.usd_saved, 2)} за период."
            )
        )
        out.append(
            table(
                [
                    {"phrase": p.example, "count": p.count, "share": 100 * p.share_of_chars}
                    for p in cache.phrases_to_precache
                ],
                [("phrase", "Фраза для предзаписи"), ("count", "Раз сказана"), ("share", "Доля символов", pct)],
                caption="Что предзаписать в кэш TTS",
            )
        )
    r = routing_replay.replay_routing(engine, first, last, book=book, tz=tz)
    shared = " Маршрутизатор общий для всех сетей: расчёт по звонкам всех сетей." if scope is not None else ""
    out.append(
        note(
            f"Маршрутизация: {num(r.routed_cheap)} из {rutext.calls_gen(r.calls)} "
            f"({pct(100 * (r.share_cheap or 0))}) можно вести "
            f"на {r.cheap_model}; чистая экономия {usd(r.net_saving_usd, 2)} за период. {_routing_text(r)}{shared}"
        )
    )
    lengths = levers.prompt_length_by_version(engine, first, last, tz=tz, tenant=scope)
    out.append(
        table(
            [asdict(x) for x in lengths],
            [
                ("prompt_version", "Версия промпта"),
                ("calls", "Звонков"),
                ("input_tokens_per_llm_call", "Вход. токенов на вызов", lambda v: num(v, 0)),
                ("cached_share", "Из кэша", lambda v: pct(100 * v if v is not None else None)),
                ("llm_cost_per_call_usd", "LLM на звонок", usd),
            ],
            caption="Длина промпта по версиям",
        )
    )
    return out


def heading(first: date, last: date, scope_label: str | None = None) -> str:
    """The review's title as text; one of some tenants names them (``scope_label``, tenants.describe)."""
    scope = f" — {scope_label}" if scope_label and scope_label != tenants.ALL_LABEL else ""
    return f"Обзор стоимости звонков{scope} — {first:%d.%m.%Y} … {last:%d.%m.%Y}"


def header(first: date, last: date, scope_label: str | None = None) -> Block:
    """The title, and which tenants the review covers."""
    covered = f'<p style="color:#616161">Сети: {escape(scope_label)}.</p>' if scope_label else ""
    return Block(f"<h1>{escape(heading(first, last, scope_label))}</h1>{covered}")
