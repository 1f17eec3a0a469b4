"""The daily report's sections as displayable blocks and charts (what each notebook cell shows).

Kept out of the notebook so the notebook stays thin and the sections are tested as code."""

from __future__ import annotations

from html import escape
from typing import Any

from ccanalytics.core import labels, timeutil
from ccanalytics.reports import charts, daystory
from ccanalytics.reports.daily import SHARED_NOTE, WEEK_DAYS, DailyReport
from ccanalytics.reports.htmlblocks import Block, cards, link, note, num, pct, table, usd


def heading(rep: DailyReport) -> str:
    """The report's title as text: «Ежедневный отчёт колл-центра — «ПроКолесо» — 24.11.2026»; the
    report of every tenant names none."""
    scope = f" — {rep.scope_label}" if rep.scoped else ""
    return f"Ежедневный отчёт колл-центра{scope} — {rep.day:%d.%m.%Y}"


# what a report of some tenants says of the sections that are the same for every tenant
SHARED = {
    "ab": "A/B-тесты и промпты общие для всех сетей: результаты — по звонкам всех сетей.",
    "problems": f"Автоматический поиск проблем идёт {SHARED_NOTE}.",
    "alerts": f"Алерты вычисляются {SHARED_NOTE}.",
}


def shared_note(rep: DailyReport, section: str) -> list[Block]:
    """In a report of some tenants, a section the same for every tenant says so (nothing otherwise)."""
    return [note(SHARED[section])] if rep.scoped else []


def title(rep: DailyReport) -> Block:
    weekday = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"][rep.day.weekday()]
    return Block(
        f'<h1 style="margin:0">{escape(heading(rep))} ({weekday})</h1>'
        f'<p style="color:#616161">Сети: {escape(rep.scope_label)}. Сравнение со вчерашним днём и со средним за '
        f"{WEEK_DAYS} предыдущих дней. Время — Киев. Номера телефонов скрыты.</p>"
    )


def story(rep: DailyReport) -> Block:
    """The story of the day at the top of the report: what changed most against a normal day of the
    weekday, the cause found in the data, its size and what to do, with links to those calls."""
    st = rep.story
    if st is None:
        return Block("")
    if st.reference_days == 0 or st.quiet:
        return note(st.lines()[0], tone="good" if st.quiet and st.reference_days else "info")
    parts = [
        '<div style="border:2px solid #c62828;border-radius:6px;padding:8px 12px;margin:8px 0">'
        f'<div style="font-size:13px;color:#616161">Что изменилось против обычного дня ({escape(st.reference)})</div>'
    ]
    for i, f in enumerate(st.findings, 1):
        colour = "#c62828" if f.bad else "#2e7d32" if f.bad is False else "#424242"
        what = "; ".join(c.text() for c in f.changes)
        parts.append(f'<p style="margin:8px 0 2px;font-size:16px;color:{colour}"><b>{i}. {escape(_cap(what))}</b></p>')
        if f.cause is None:
            parts.append(f'<p style="margin:2px 0">{escape(f.text().split(". ", 1)[-1])}</p>')
            continue
        c = f.cause
        parts.append(f'<p style="margin:2px 0">Причина: {escape(c.text)}. {escape(_cap(c.size))}.</p>')
        parts.append(f'<p style="margin:2px 0">Что делать: {escape(c.action)}.</p>')
        links = [link(rep.journal_url(**c.filters), "эти звонки в журнале")] if c.filters else []
        links += [link(rep.call_url(x), f"пример {n}") for n, x in enumerate(c.examples, 1)]
        if c.kind in ("tool", "scenario"):
            links.append(link(rep.journal_url(), "все звонки дня"))
        if links:
            parts.append('<p style="margin:2px 0">' + " · ".join(str(x) for x in links) + "</p>")
        if c.kind in ("tool", "scenario", "prompt_version"):
            parts.append(
                '<p style="margin:2px 0;color:#616161;font-size:12px">Разбор по процедуре — отчёт «Разбор '
                "проблемных звонков» за эти дни: паттерны, типичные звонки, причина и записанное решение.</p>"
            )
    parts.append("</div>")
    return Block("".join(parts))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def headline(rep: DailyReport) -> Block:
    items = []
    context = []
    changes = rep.story.changes if rep.story is not None else ()
    for h in rep.headline:
        tone, why = daystory.judge_tile(h.key, h.tone(h.week), changes)
        if why:
            context.append(f"{h.title}: {why}.")
        items.append(
            {
                "title": h.title,
                "value": h.formatted(),
                "delta": f"{h.delta_text(h.prev, 'к вчера')}; {h.delta_text(h.week, 'к 7 дн.')}",
                "tone": tone,
            }
        )
    blocks = [cards(items).html]
    for text in context:
        blocks.append(note(text, tone="bad").html)
    for text in rep.summary.notes:
        blocks.append(note(_note_ru(text), tone="warn").html)
    if rep.summary.total_calls == 0:
        blocks.append(note("За этот день звонков нет.", tone="warn").html)
    return Block("".join(blocks))


def _note_ru(text: str) -> str:
    n, _, rest = text.partition(" ")
    return {
        "calls are not scored yet": f"Ещё не оценено звонков: {n}",
        "calls have no derived metrics yet (stats daily)": f"Без рассчитанных метрик: {n} звонков",
        "calls have no cost": f"Без рассчитанной стоимости: {n} звонков",
    }.get(rest, text)


def hourly(rep: DailyReport) -> charts.Chart:
    return charts.calls_by_hour(rep.summary.hourly_distribution, compare=rep.hourly_week_mean)


def scenarios(rep: DailyReport) -> charts.Chart:
    return charts.shares(rep.summary.scenarios, title="Сценарии звонков", names=labels.SCENARIOS)


def transfers(rep: DailyReport) -> Block:
    s = rep.summary
    rows = [
        {
            "reason": labels.reason(k),
            "calls": v,
            "share": s.transfer_reasons_pct.get(k),
            "link": link(rep.journal_url(transferred="yes"), "переводы дня в журнале"),
        }
        for k, v in s.transfer_reasons.items()
    ]
    head = (
        f"Решено ботом: {num(s.resolved_by_bot)} ({pct(s.resolved_by_bot_pct)}); "
        f"переведено на оператора: {num(s.transferred)} ({pct(s.transferred_to_operator_pct)})."
    )
    return Block(
        note(head).html
        + table(
            rows,
            [("reason", "Причина перевода"), ("calls", "Звонков"), ("share", "Доля от всех", pct), ("link", "")],
            empty="переводов нет",
        ).html
    )


def quality(rep: DailyReport) -> list[Any]:
    q, w = rep.quality, rep.quality_week
    crit = {k: v["avg_score"] for k, v in q["criteria"].items()}
    crit_week = {k: v["avg_score"] for k, v in w["criteria"].items()}
    rows = [
        {
            "criterion": labels.criterion(k),
            "score": v["avg_score"],
            "week": crit_week.get(k),
            "failed": v["failed"],
            "calls": v["applicable_calls"],
        }
        for k, v in q["criteria"].items()
    ]
    head = (
        f"Оценено {num(q['scored_calls'])} из {num(q['total_calls'])} звонков; средняя оценка "
        f"{num(q['avg_quality_score'], 2)}; ниже 0,5: {num(q['low_count'])}; автопровал: {num(q['auto_failed'])}."
    )
    two = lambda v: num(v, 2)
    return [
        note(head),
        charts.quality_per_criterion(crit, compare=crit_week),
        table(
            rows,
            [
                ("criterion", "Критерий"),
                ("score", "Оценка", two),
                ("week", "За 7 дней", two),
                ("failed", "Провалов (< 0,5)"),
                ("calls", "Применимо к звонкам"),
            ],
        ),
    ]


def worst_calls(rep: DailyReport) -> Block:
    rows = [
        {**r, "open": link(rep.call_url(r["call_id"]), "открыть"), "auto": "да" if r["auto_failed"] else ""}
        for r in rep.worst_calls
    ]
    return table(
        rows,
        [
            ("time", "Время"),
            ("scenario", "Сценарий"),
            ("quality_score", "Оценка", lambda v: num(v, 2)),
            ("auto", "Автопровал"),
            ("failed", "Проваленные критерии"),
            ("reason", "Пояснение судьи"),
            ("transfer", "Перевод"),
            ("open", "Звонок"),
        ],
        caption="Худшие звонки дня (ссылки ведут в админку)",
        empty="оценённых звонков нет",
    )


def latency(rep: DailyReport) -> list[Any]:
    status = {"ok": "в бюджете", "over": "выше бюджета", "alert": "выше порога алерта", None: "нет данных"}
    rows = [{**r, "state": status[r["status"]]} for r in rep.latency]
    ms = lambda v: num(v, 0)
    present = [r | {"component": r["title"]} for r in rep.latency if r["samples"]]
    out: list[Any] = []
    if present:
        out.append(charts.latency_vs_budget(present))
    out.append(
        table(
            rows,
            [
                ("title", "Компонент"),
                ("p50_ms", "p50, мс", ms),
                ("p95_ms", "p95, мс", ms),
                ("budget_ms", "Бюджет p95, мс", ms),
                ("alert_ms", "Порог алерта, мс", ms),
                ("samples", "Измерений"),
                ("state", "Состояние"),
            ],
        )
    )
    return out


def cost(rep: DailyReport) -> list[Any]:
    c, w = rep.cost, rep.cost_week
    rows = [
        {
            "component": labels.COST_COMPONENTS.get(k, k),
            "day": v,
            "week": w["components_per_call_usd"].get(k),
        }
        for k, v in c["components_per_call_usd"].items()
    ]
    rows.append({"component": "Итого на звонок", "day": c["cost_per_call_usd"], "week": w["cost_per_call_usd"]})
    rows.append(
        {
            "component": "На решённый звонок",
            "day": c["cost_per_resolved_call_usd"],
            "week": w["cost_per_resolved_call_usd"],
        }
    )
    out: list[Any] = [
        table(rows, [("component", "Статья"), ("day", "За день", usd), ("week", "За 7 дней", usd)]),
        note(
            f"Всего за день: {usd(c['total_cost_usd'], 2)}; попаданий в кэш TTS: "
            f"{pct(100 * c['tts_cache_hit_rate'] if c['tts_cache_hit_rate'] is not None else None)}."
            + (
                f" Оценено по транскрипту (нет данных usage): {c['estimated_calls']} звонков."
                if c["estimated_calls"]
                else ""
            )
        ),
    ]
    by_scenario = [
        {"scenario": labels.scenario(r["key"]), "calls": r["calls"], "cost": r["cost_per_call_usd"]}
        for r in c.get("by_scenario", [])
    ]
    if by_scenario:
        out.append(table(by_scenario, [("scenario", "Сценарий"), ("calls", "Звонков"), ("cost", "На звонок", usd)]))
    return out


def ab_tests(rep: DailyReport) -> list[Any]:
    if not rep.ab_tests:
        return [note("В этот день A/B-тесты не шли.")]
    out: list[Any] = [*shared_note(rep, "ab")]
    for t in rep.ab_tests:
        rows = [
            {
                "variant": f"{v['variant']} — {v['label']}",
                "calls": v["calls"],
                "resolved": v["resolved_without_operator_pct"],
                "quality": v["avg_quality_score"],
                "cost": v["avg_cost_per_call_usd"],
            }
            for v in t["variants"]
        ]
        out.append(
            table(
                rows,
                [
                    ("variant", "Вариант"),
                    ("calls", "Звонков"),
                    ("resolved", "Решено без оператора", pct),
                    ("quality", "Качество", lambda v: num(v, 3)),
                    ("cost", "На звонок", usd),
                ],
                caption=f"A/B-тест «{t['test_name']}» на конец дня: шёл {num(t['days_running'], 1)} дн.",
            )
        )
        if t["srm_mismatch"]:
            out.append(
                note("Распределение трафика не совпадает с заданным (SRM): результатам верить нельзя.", tone="bad")
            )
        for variant, rec in t["recommendations"].items():
            out.append(
                note(
                    f"Вариант {variant}: {rec['reason']}",
                    tone="good" if rec["action"] == "ship_b" else "bad" if rec["action"] == "stop_harm" else "info",
                )
            )
    return out


def problems(rep: DailyReport) -> Block:
    kinds = {
        "scenario_transfer_rate": "доля переводов в сценарии",
        "stt_reask_rate": "доля переспрашиваний",
        "reasked_word": "переспрашиваемое слово",
    }
    rows = [
        {
            "kind": kinds.get(f["kind"], f["kind"]),
            "key": labels.scenario(f["key"]) if f["kind"] == "scenario_transfer_rate" else f["key"],
            "value": f["value"],
            "baseline": f["baseline"],
        }
        for f in rep.findings
    ]
    three = lambda v: num(v, 3)
    found = table(
        rows,
        [("kind", "Что найдено"), ("key", "Где"), ("value", "Значение", three), ("baseline", "Обычно", three)],
        caption="Проблемы, найденные автоматически (подробный разбор — отчёт по проблемным звонкам)",
        empty="автоматическая проверка проблем не нашла"
        if rep.checks.problems is not None
        else "не проверялось: автоматический поиск проблем за этот день не запускался",
    )
    return Block("".join(b.html for b in [*shared_note(rep, "problems"), found]))


def alerts(rep: DailyReport) -> Block:
    events = {"fired": "сработал", "resolved": "завершился"}
    rows = [
        {
            "time": a["created_at"].astimezone(timeutil.zone(rep.tz)).strftime("%H:%M"),
            "event": events.get(a["event"], a["event"]),
            "message": a["message"],
        }
        for a in rep.alerts
    ]
    fired = table(
        rows,
        [("time", "Время"), ("event", "Событие"), ("message", "Сообщение")],
        caption=f"Алерты за день ({rep.checks.alerts_text(rep.tz)})",
        empty="алертов не было"
        if rep.checks.alerts is not None
        else "не проверялось: алерты в этот день не вычислялись",
    )
    return Block("".join(b.html for b in [*shared_note(rep, "alerts"), fired]))
