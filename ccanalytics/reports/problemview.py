"""The problem-call report's sections (notebooks/problem_calls.ipynb shows these). A report of some
tenants names them in its header; the recorded decisions are shared by every tenant and it says so."""

from __future__ import annotations

from collections import Counter
from datetime import date
from html import escape
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine

from ccanalytics.core import labels, timeutil
from ccanalytics.db import tenants
from ccanalytics.reports import callview, charts
from ccanalytics.reports.htmlblocks import Block, link, note, num, pct, table
from ccanalytics.reports.problemcalls import ACTIONS, CAUSES, FLAG_ORDER, FLAGS, Pattern, pattern_title


def heading(first: date, last: date, scope_label: str | None = None) -> str:
    """The report's title as text; one of some tenants names them (``scope_label``, tenants.describe)."""
    scope = f" — {scope_label}" if scope_label and scope_label != tenants.ALL_LABEL else ""
    return f"Разбор проблемных звонков{scope} — {first:%d.%m.%Y} … {last:%d.%m.%Y}"


def header(first: date, last: date, scope_label: str, thresholds: str) -> Block:
    """The title, the tenants covered, the period and the thresholds in force."""
    return Block(
        f"<h2>{escape(heading(first, last, scope_label))}</h2>"
        + note(f"Сети: {scope_label}. Период: {first:%d.%m.%Y} — {last:%d.%m.%Y} (Киев). {thresholds}").html
    )


def overview(problems: list[dict[str, Any]], total_calls: int) -> list[Any]:
    """Step 1's result: how many of the period's calls show each problem. A call can show several
    signs, so the signs do not add up; its main problem (the first sign, FLAG_ORDER) does: the main
    problems add up to the problem calls, and their shares to 100 % of them."""
    counts = Counter(f for p in problems for f in p["flags"])
    mains = Counter(p["main"] for p in problems)
    n = len(problems)
    share = 100 * n / total_calls if total_calls else None
    head = note(
        f"Проблемных звонков: {num(n)} из {num(total_calls)} ({pct(share)} всех звонков периода).",
        tone="warn" if problems else "good",
    )
    if not problems:
        return [head]
    of_calls = lambda v: pct(100 * v / total_calls) if v is not None and total_calls else "—"
    of_problems = lambda v: pct(100 * v / n) if v is not None else "—"
    rows = [
        {"flag": FLAGS[f], "calls": counts.get(f, 0), "calls_pct": counts.get(f, 0), "main": mains.get(f, 0),
         "main_pct": mains.get(f, 0)}
        for f in FLAG_ORDER
    ]  # fmt: skip
    rows.append({"flag": "Итого", "calls": None, "calls_pct": None, "main": n, "main_pct": n})
    return [
        head,
        table(
            rows,
            [
                ("flag", "Признак"),
                ("calls", "Звонков с признаком"),
                ("calls_pct", "% всех звонков", of_calls),
                ("main", "Главная проблема звонка"),
                ("main_pct", "% проблемных звонков", of_problems),
            ],
        ),
        note(
            "У звонка может быть несколько признаков, поэтому «Звонков с признаком» в сумме больше числа "
            "проблемных звонков. Главная проблема у каждого звонка одна: этот столбец складывается в итог.",
        ),
        charts.shares(
            {FLAGS[f]: mains[f] for f in FLAG_ORDER if mains.get(f)},
            title="Главная проблема: звонков (% проблемных)",
        ),
    ]


def by_day(problems: list[dict[str, Any]], calls_per_day: dict[date, int]) -> list[Any]:
    """The problem calls of each day by main problem: a day that stands out (an outage) shows here.
    Each row adds up to the day's problem calls; the shares are of the day's calls."""
    days = sorted(calls_per_day)
    per_day: dict[date, Counter] = {d: Counter() for d in days}
    for p in problems:
        per_day.setdefault(p["started_at"].date(), Counter())[p["main"]] += 1
    present = [f for f in FLAG_ORDER if any(c.get(f) for c in per_day.values())]
    rows = []
    for d in days:
        c, calls = per_day[d], calls_per_day[d]
        total = sum(c.values())
        row: dict[str, Any] = {"day": f"{d:%d.%m} {_WEEKDAYS[d.weekday()]}", "calls": calls, "problems": total}
        row["share"] = pct(100 * total / calls) if calls else "—"
        row.update({f: c.get(f, 0) for f in present})
        rows.append(row)
    grand = sum(calls_per_day.values())
    totals: dict[str, Any] = {"day": "Итого", "calls": grand, "problems": len(problems)}
    totals["share"] = pct(100 * len(problems) / grand) if grand else "—"
    totals.update({f: sum(per_day[d].get(f, 0) for d in days) for f in present})
    rows.append(totals)
    out: list[Any] = [
        table(
            rows,
            [
                ("day", "День"),
                ("calls", "Всего звонков"),
                ("problems", "Проблемных"),
                ("share", "% звонков дня"),
                *((f, FLAGS[f]) for f in present),
            ],
            caption="Проблемные звонки по дням и главной проблеме (строка складывается в «Проблемных»)",
            empty="звонков нет",
        )
    ]
    if present and len(days) > 1:
        out.append(
            charts.stacked_days(
                days,
                {FLAGS[f]: [per_day[d].get(f, 0) for d in days] for f in present},
                title="Проблемные звонки по дням: главная проблема",
                ylabel="звонков",
            )
        )
    return out


_WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


def patterns_table(found: list[Pattern], total_calls: int | None = None, *, tz: str = timeutil.DEFAULT_TZ) -> Block:
    """Step 2's result: the patterns, largest first, with the suggested cause and action. The shares
    are of the problem calls (they add up to 100 %) and of every call of the period; earlier decisions
    are dated in ``tz``."""
    rows = [
        {
            "n": i + 1,
            "pattern": f"{FLAGS[p.main]} · {labels.scenario(p.scenario)}",
            "calls": p.calls,
            "share": 100 * p.share,
            "of_calls": 100 * p.calls / total_calls if total_calls else None,
            "cause": CAUSES[p.suggested_cause],
            "action": ACTIONS[p.suggested_action],
            "done": "; ".join(_done(a, tz) for a in p.previous_actions[:2]) or "—",
        }
        for i, p in enumerate(found)
    ]
    if found:
        rows.append({"n": None, "pattern": "Итого", "calls": sum(p.calls for p in found), "share": 100.0,
                     "of_calls": 100 * sum(p.calls for p in found) / total_calls if total_calls else None,
                     "cause": None, "action": None, "done": None})  # fmt: skip
    return table(
        rows,
        [
            ("n", "№", lambda v: "" if v is None else num(v)),
            ("pattern", "Паттерн (главная проблема · сценарий)"),
            ("calls", "Звонков"),
            ("share", "% проблемных", pct),
            ("of_calls", "% всех звонков", pct),
            ("cause", "Вероятная причина", lambda v: v or ""),
            ("action", "Предлагаемое действие", lambda v: v or ""),
            ("done", "Уже сделано", lambda v: v or ""),
        ],
        empty="проблемных звонков нет",
    )


_STATUS = {"open": "в работе", "done": "сделано", "rejected": "отклонено"}


def _done(a: dict[str, Any], tz: str) -> str:
    """A decision recorded earlier, in a cell: «18.11 эскалация … (в работе)»."""
    when = a["created_at"].astimezone(timeutil.zone(tz))
    return f"{when:%d.%m} {ACTIONS.get(a['action'], 'действие')} ({_STATUS.get(a['status'], '—')})"


def pattern_detail(
    engine: Engine,
    p: Pattern,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    admin_url: str | None = None,
    examples: int = 2,
    number: int | None = None,
) -> list[Any]:
    """Steps 3–4 for one pattern: what its calls share, why the cause is suggested, and the
    representative transcripts (worst first), each linked to the admin."""
    facts = [f"Звонков: {num(p.calls)} ({pct(100 * p.share)} проблемных звонков)."]
    if p.failed_criteria:
        facts.append(
            "Проваленные критерии: "
            + ", ".join(f"{labels.criterion(k)} ({num(v)})" for k, v in list(p.failed_criteria.items())[:4])
            + "."
        )
    if p.transfer_reasons:
        facts.append(
            "Причины переводов: "
            + ", ".join(f"{labels.reason(k)} ({num(v)})" for k, v in p.transfer_reasons.items())
            + "."
        )
    if p.prompt_versions:
        facts.append("Версии промпта: " + ", ".join(f"{k} ({num(v)})" for k, v in p.prompt_versions.items()) + ".")
    title = f"{FLAGS[p.main]} · {labels.scenario(p.scenario)}"
    prefix = f"Паттерн {number}. " if number is not None else ""
    out: list[Any] = [
        Block(f'<h3 data-pattern="{escape(p.key)}">{escape(prefix + _cap(title))}</h3>'),
        note(" ".join(facts)),
        note(
            f"Вероятная причина: {CAUSES[p.suggested_cause]} — {p.why}. "
            f"Предлагаемое действие: {ACTIONS[p.suggested_action]}.",
            tone="warn",
        ),
    ]
    if admin_url:
        out.append(
            Block(
                "<p>Примеры: "
                + " · ".join(
                    str(link(f"{admin_url.rstrip('/')}/calls/{c}", f"звонок {i}")) for i, c in enumerate(p.examples, 1)
                )
                + "</p>"
            )
        )
    for call_id in p.examples[:examples]:
        out.append(callview.show_call(engine, call_id, tz=tz, admin_url=admin_url, plain=True))
    return out


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def decisions_table(actions: list[dict[str, Any]], *, scoped: bool = False, tz: str = timeutil.DEFAULT_TZ) -> Block:
    """The recorded decisions (shared by every tenant: a report of some tenants says so)."""
    rows = [
        {
            "at": a["created_at"].astimezone(timeutil.zone(tz)).strftime("%d.%m.%Y"),
            "pattern": pattern_title(a["pattern"]),
            "cause": CAUSES.get(a["cause"], "другое"),
            "action": ACTIONS.get(a["action"], "другое"),
            "status": _STATUS.get(a["status"], "—"),
            "by": a["created_by"],
            "note": a["note"],
        }
        for a in actions
    ]
    return table(
        rows,
        [
            ("at", "Дата"),
            ("pattern", "Паттерн"),
            ("cause", "Причина"),
            ("action", "Действие"),
            ("status", "Статус"),
            ("by", "Кто"),
            ("note", "Комментарий"),
        ],
        caption="Записанные решения" + (" (общие для всех сетей)" if scoped else ""),
        empty="решений пока нет",
    )


def journal_link(admin_url: str, date_from: str, date_to: str, *, tenant: tenants.Scope = None) -> Block:
    """The journal's calls of the period scored below 0.5 (of the one tenant of the report, if one)."""
    query = {"from": date_from, "to": date_to, "quality_below": "0.5"}
    if tenant is not None and len(tenant) == 1:
        query["tenant"] = tenant[0]
    url = f"{admin_url.rstrip('/')}/calls?{urlencode(query)}"
    return Block(f"<p>{link(url, 'Все звонки периода с оценкой ниже 0,5 — в журнале админки')}</p>")
