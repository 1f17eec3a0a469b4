"""The problem-call report's sections (notebooks/problem_calls.ipynb shows these). A report of some
tenants names them in its header; the recorded decisions are shared by every tenant and it says so."""

from __future__ import annotations

from collections import Counter
from datetime import date
from html import escape
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine

from . import callview, charts, labels, tenants, timeutil
from .htmlblocks import Block, link, note, num, pct, table
from .problemcalls import ACTIONS, CAUSES, FLAG_ORDER, FLAGS, Pattern


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
    """Step 1's result: how many calls show each problem (a call can show several)."""
    counts = Counter(f for p in problems for f in p["flags"])
    share = 100 * len(problems) / total_calls if total_calls else None
    head = note(
        f"Проблемных звонков: {num(len(problems))} из {num(total_calls)} ({pct(share)}).",
        tone="warn" if problems else "good",
    )
    if not problems:
        return [head]
    rows = [
        {"flag": FLAGS[f], "calls": counts.get(f, 0), "main": sum(1 for p in problems if p["main"] == f)}
        for f in FLAG_ORDER
    ]
    return [
        head,
        table(rows, [("flag", "Признак"), ("calls", "Звонков с признаком"), ("main", "Главная проблема звонка")]),
        charts.shares({FLAGS[f]: counts[f] for f in FLAG_ORDER if counts.get(f)}, title="Признаки проблем"),
    ]


def patterns_table(found: list[Pattern]) -> Block:
    """Step 2's result: the patterns, largest first, with the suggested cause and action."""
    rows = [
        {
            "n": i + 1,
            "pattern": f"{FLAGS[p.main]} · {labels.scenario(p.scenario)}",
            "calls": p.calls,
            "share": 100 * p.share,
            "cause": CAUSES[p.suggested_cause],
            "action": ACTIONS[p.suggested_action],
            "done": "; ".join(
                f"{a['created_at']:%d.%m} {ACTIONS[a['action']]} ({a['status']})" for a in p.previous_actions[:2]
            )
            or "—",
        }
        for i, p in enumerate(found)
    ]
    return table(
        rows,
        [
            ("n", "№"),
            ("pattern", "Паттерн (главная проблема · сценарий)"),
            ("calls", "Звонков"),
            ("share", "Доля", pct),
            ("cause", "Вероятная причина"),
            ("action", "Предлагаемое действие"),
            ("done", "Уже сделано"),
        ],
        empty="проблемных звонков нет",
    )


def pattern_detail(
    engine: Engine, p: Pattern, *, tz: str = timeutil.DEFAULT_TZ, admin_url: str | None = None, examples: int = 2
) -> list[Any]:
    """Steps 3–4 for one pattern: what its calls share, why the cause is suggested, and the
    representative transcripts (worst first)."""
    facts = [f"Звонков: {p.calls}. Ключ паттерна для записи решения: «{p.key}»."]
    if p.failed_criteria:
        facts.append(
            "Проваленные критерии: "
            + ", ".join(f"{labels.criterion(k)} ({v})" for k, v in list(p.failed_criteria.items())[:4])
        )
    if p.transfer_reasons:
        facts.append(
            "Причины переводов: " + ", ".join(f"{labels.reason(k)} ({v})" for k, v in p.transfer_reasons.items())
        )
    if p.prompt_versions:
        facts.append("Версии промпта: " + ", ".join(f"{k} ({v})" for k, v in p.prompt_versions.items()))
    out: list[Any] = [
        Block(f"<h3>{escape(FLAGS[p.main])} · {escape(labels.scenario(p.scenario))}</h3>"),
        note(" ".join(facts)),
        note(
            f"Вероятная причина: {CAUSES[p.suggested_cause]} — {p.why}. "
            f"Предлагаемое действие: {ACTIONS[p.suggested_action]}.",
            tone="warn",
        ),
    ]
    for call_id in p.examples[:examples]:
        out.append(callview.show_call(engine, call_id, tz=tz, admin_url=admin_url))
    return out


def decisions_table(actions: list[dict[str, Any]], *, scoped: bool = False) -> Block:
    """The recorded decisions (shared by every tenant: a report of some tenants says so)."""
    rows = [
        {
            "at": a["created_at"].strftime("%d.%m.%Y"),
            "pattern": a["pattern"],
            "cause": CAUSES.get(a["cause"], a["cause"]),
            "action": ACTIONS.get(a["action"], a["action"]),
            "status": {"open": "в работе", "done": "сделано", "rejected": "отклонено"}.get(a["status"], a["status"]),
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
    query = {"date_from": date_from, "date_to": date_to, "quality_below": "0.5"}
    if tenant is not None and len(tenant) == 1:
        query["tenant"] = tenant[0]
    url = f"{admin_url.rstrip('/')}/calls?{urlencode(query)}"
    return Block(f"<p>{link(url, 'Все звонки периода с оценкой ниже 0,5 — в журнале админки')}</p>")
