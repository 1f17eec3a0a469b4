"""The weekly summary's sections as displayable blocks (what each cell of notebooks/weekly_summary.ipynb
shows), kept out of the notebook so it stays thin and the sections are tested as code."""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from typing import Any

from ccanalytics.core import rutext
from ccanalytics.reports import charts, daystory, storymodel
from ccanalytics.reports.htmlblocks import Block, cards, link, note, num, pct, table, usd
from ccanalytics.reports.weekfigures import FIGURES, WEEKS
from ccanalytics.reports.weekly import NOT_CHECKED, WeeklyReport

WEEKDAYS_SHORT = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")

SHARED_AB = "A/B-тесты и промпты общие для всех сетей: решения — по тестам всех сетей."


def heading(rep: WeeklyReport) -> str:
    """«Недельная сводка колл-центра — «ПроКолесо» — 23.11.2026 — 29.11.2026»."""
    scope = f" — {rep.scope_label}" if rep.scoped else ""
    return f"Недельная сводка колл-центра{scope} — {rutext.period(rep.first, rep.last)}"


def title(rep: WeeklyReport) -> Block:
    return Block(
        f'<h1 style="margin:0">{escape(heading(rep))}</h1>'
        f'<p style="color:#616161">Сети: {escape(rep.scope_label)}. Неделя с понедельника по воскресенье против '
        f"{WEEKS} недель перед ней: среднее и разброс (от меньшего до большего) тех из них, в которые были звонки. "
        "Время — Киев. Номера телефонов скрыты.</p>"
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cause(rep: WeeklyReport, cause: storymodel.Cause, first=None, last=None) -> list[str]:
    """A cause's lines: what was found, what to do, links to those calls."""
    parts = [
        f'<p style="margin:2px 0">Причина: {escape(cause.text)}.</p>',
        f'<p style="margin:2px 0">Что делать: {escape(cause.action)}.</p>',
    ]
    links = [link(rep.journal_url(first, last, **cause.filters), "эти звонки в журнале")] if cause.filters else []
    links += [link(rep.call_url(x), f"пример {n}") for n, x in enumerate(cause.examples, 1)]
    if links:
        parts.append('<p style="margin:2px 0">' + " · ".join(str(x) for x in links) + "</p>")
    return parts


def story(rep: WeeklyReport) -> Block:
    """What changed most against the weeks before, and the days that stood out, each with its cause,
    what to do and links to those calls; a quiet week in one line."""
    st = rep.story
    if not st.calls or not st.reference_weeks or st.quiet:
        return note(st.lines()[0], tone="good" if st.quiet and st.reference_weeks and st.calls else "info")
    parts = [
        '<div style="border:2px solid #c62828;border-radius:6px;padding:8px 12px;margin:8px 0">'
        '<div style="font-size:13px;color:#616161">'
        f"Что изменилось против недель перед ней ({escape(st.reference)})</div>"
    ]
    for f in st.findings:
        colour = "#c62828" if f.bad else "#2e7d32" if f.bad is False else "#424242"
        what = "; ".join(c.text() for c in f.changes)
        parts.append(f'<p style="margin:8px 0 2px;font-size:16px;color:{colour}"><b>{escape(_cap(what))}</b></p>')
        parts += (
            _cause(rep, f.cause) if f.cause is not None else ['<p style="margin:2px 0">Причина в данных не видна.</p>']
        )
    if not st.findings:
        parts.append(f'<p style="margin:8px 0 2px">Неделя в целом в пределах обычного ({escape(st.reference)}).</p>')
    for d in st.days:
        changes = d.finding.changes if d.finding is not None else (d.change,)
        what = "; ".join(c.text() for c in changes)
        parts.append(
            f'<p style="margin:8px 0 2px;font-size:16px;color:#c62828"><b>Выделяется {escape(d.label)}: '
            f"{escape(what)}</b></p>"
        )
        if d.finding is not None and d.finding.cause is not None:
            parts += _cause(rep, d.finding.cause, d.day, d.day)
        parts.append(
            f'<p style="margin:2px 0">{link(rep.journal_url(d.day, d.day), "все звонки дня")} · подробно — '
            "ежедневный отчёт за этот день.</p>"
        )
    parts.append("</div>")
    return Block("".join(parts))


def figures(rep: WeeklyReport) -> Block:
    """The week's figures as tiles: the week, its change against the mean of the weeks before, and their
    range; coloured only outside the range, the cost per call judged in context."""
    items, context = [], []
    for r in rep.rows:
        tone = r.tone()
        if r.key == "cost_per_call":
            tone, why = daystory.judge_tile("avg_cost_per_call_usd", tone, rep.story.changes)
            if why:
                context.append(f"{r.title}: {why}.")
        delta = f"к среднему: {r.change_text()}; обычно {r.range_text()}" if r.before else "сравнить не с чем"
        items.append({"title": r.title, "value": r.formatted(), "delta": delta, "tone": tone})
    blocks = [cards(items).html, *(note(text, tone="bad").html for text in context)]
    if rep.week.calls == 0:
        blocks.append(note("За эту неделю звонков нет.", tone="warn").html)
    blocks.append(
        note(
            "Решено с первого звонка: повторный звонок клиента ищется 7 дней вперёд, так что у последних дней "
            "недели это окно ещё не закончилось."
        ).html
    )
    return Block("".join(blocks))


def weeks_table(rep: WeeklyReport) -> Block:
    """The figures of the five weeks side by side, the week last."""
    columns: list[Any] = [("title", "Показатель")]
    rows: list[dict[str, Any]] = [{"title": title} for _key, title, _unit, _better in FIGURES]
    for i, w in enumerate(rep.weeks):
        for row, (key, _title, unit, _better) in zip(rows, FIGURES, strict=True):
            row[f"w{i}"] = storymodel.fmt(getattr(w, key), unit) if w.calls else "—"
        columns.append((f"w{i}", f"{w.first:%d.%m} — {w.last:%d.%m}" + (" (эта)" if i == len(rep.weeks) - 1 else "")))
    return table(rows, columns, caption="Пять недель: эта неделя и четыре перед ней")


def by_day(rep: WeeklyReport) -> list[Any]:
    """The week day by day (the days that stood out marked), a total row, and a chart of the calls."""
    named = {d.day for d in rep.story.days}
    rows = [
        {
            "day": f"{d.day:%d.%m} ({rutext.weekday(d.day)})" + (" — выделяется" if d.day in named else ""),
            "calls": d.calls,
            "resolved": 100 * (d.calls - d.transferred) / d.calls if d.calls else None,
            "quality": d.quality,
            "cost": d.cost_per_call,
            "orders": d.orders,
            "open": link(rep.journal_url(d.day, d.day), "журнал"),
        }
        for d in rep.days
    ]
    w = rep.week
    rows.append(
        {
            "day": "Итого за неделю",
            "calls": w.calls,
            "resolved": w.resolved_pct,
            "quality": w.quality,
            "cost": w.cost_per_call,
            "orders": w.orders,
            "open": link(rep.journal_url(), "журнал"),
        }
    )
    out: list[Any] = [
        table(
            rows,
            [
                ("day", "День"),
                ("calls", "Звонков"),
                ("resolved", "Решено ботом", pct),
                ("quality", "Качество", lambda v: num(v, 2)),
                ("cost", "Стоимость звонка", usd),
                ("orders", "Заказов"),
                ("open", ""),
            ],
        )
    ]
    if rep.days:
        out.append(
            charts.bars(
                [f"{d.day:%d.%m}\n{WEEKDAYS_SHORT[d.day.weekday()]}" for d in rep.days],
                {
                    "решено ботом": [d.calls - d.transferred for d in rep.days],
                    "переведено на оператора": [d.transferred for d in rep.days],
                },
                title="Звонки по дням недели",
                ylabel="звонков",
            )
        )
    return out


def problems(rep: WeeklyReport) -> list[Any]:
    """The largest problem patterns as shares of the week's calls against the weeks before; the rows
    add up to the problem calls."""
    rows = [asdict(p) for p in rep.problems]
    return [
        table(
            rows,
            [
                ("title", "Проблема · сценарий"),
                ("calls", "Звонков"),
                ("share_pct", "% всех звонков недели", pct),
                ("usual_pct", "Обычно, % звонков", pct),
                ("cause", "Вероятная причина"),
            ],
            empty="проблемных звонков нет",
        ),
        note(
            "Каждый проблемный звонок считается один раз, по главной проблеме: строки складываются в «Все проблемные "
            "звонки». «Обычно» — средняя доля за недели перед этой. Разбор — отчёт «Разбор проблемных звонков» за "
            "эту неделю."
        ),
    ]


def decisions(rep: WeeklyReport) -> list[Any]:
    out: list[Any] = [note(SHARED_AB)] if rep.scoped else []
    if not rep.decisions:
        out.append(note("За неделю решений по A/B-тестам не принималось."))
    else:
        rows = [
            {
                "test": d.test_name,
                "at": rutext.datetime_(d.at),
                "decision": d.decision,
                "note": d.note or "—",
                "by": d.by or "—",
            }
            for d in rep.decisions
        ]
        out.append(
            table(
                rows,
                [
                    ("test", "Тест"),
                    ("at", "Остановлен (Киев)"),
                    ("decision", "Решение"),
                    ("note", "Пояснение"),
                    ("by", "Кто решил"),
                ],
            )
        )
    if rep.running:
        out.append(note("Идут тесты: " + ", ".join(f"«{t}»" for t in rep.running) + "."))
    return out


def levers(rep: WeeklyReport) -> list[Any]:
    """Money each cost lever saved in the week (the cost review's figures); «не проверялось» for a lever
    that was not computed, never 0."""
    unchecked = NOT_CHECKED
    rows = [
        {
            "lever": lv.title,
            "week": usd(lv.week_usd, 2) if lv.checked else unchecked,
            "per_call": usd(lv.per_call_usd) if lv.checked else unchecked,
            "share": pct(lv.pct_of_baseline) if lv.checked else unchecked,
            "detail": lv.detail,
        }
        for lv in rep.levers.rows
    ]
    return [
        note(rep.levers.note, tone="info" if rep.levers.checked else "warn"),
        table(
            rows,
            [
                ("lever", "Рычаг"),
                ("week", "Сэкономлено за неделю"),
                ("per_call", "На звонок"),
                ("share", "% от базы"),
                ("detail", "Как посчитано"),
            ],
        ),
    ]
