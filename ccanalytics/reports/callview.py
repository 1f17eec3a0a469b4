"""One call as escaped HTML: header, transcript with speakers and times, tool calls, quality per
criterion with reasons, rule signals and cost — for notebooks (``cca.show_call``) and reports.

Reports leave the admin perimeter, so phone numbers are masked in the transcript text too, and the
customers' names and phones in tool arguments and results (``mask_phones=True``, the default); the
caller number is always the masked one."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from sqlalchemy.engine import Engine

from ccanalytics.analytics import journal
from ccanalytics.core import labels, privacy, timeutil
from ccanalytics.reports import charts
from ccanalytics.reports.htmlblocks import CELL, HEAD, Block, num, usd
from ccanalytics.reports.storymodel import error_label, tool_label

SPEAKERS = {"customer": ("Клиент", "#e3f2fd"), "bot": ("Бот", "#f1f8e9")}


def _text(value: Any, mask: bool) -> str:
    text = "" if value is None else str(value)
    return escape(privacy.mask_phones_in_text(text) if mask else text)


def _json(value: Any, mask: bool, limit: int = 400) -> str:
    if mask:  # names and phones of customers in tool arguments and results
        value = privacy.mask_personal(value)
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _text(text, mask)


def _header(call: dict[str, Any], link: str | None) -> str:
    transfer = (
        f"переведён на оператора ({escape(labels.reason(call.get('transfer_reason') or 'unknown'))})"
        if call.get("transferred_to_operator")
        else "решён ботом"
    )
    score = call.get("quality_score")
    badge = charts.score_colour(score)
    parts = [
        f"<b>{escape(call['started_at'].strftime('%d.%m.%Y %H:%M:%S'))}</b>",
        escape(labels.scenario(call.get("scenario"))),
        f"{num(call.get('duration_seconds'))} с",
        transfer,
        f"клиент {escape(call.get('caller') or '—')}",
        f"промпт {escape(call.get('prompt_version') or '—')}",
        f'качество <span style="background:{badge};color:white;padding:0 6px;border-radius:8px">{num(score, 2)}</span>',
        f"стоимость {usd(call.get('total_cost_usd'))}",
    ]
    tenant = call.get("tenant_name") or call.get("tenant")
    if tenant:  # the retail network (the call processor's tenant) the call came to
        parts.insert(1, f"сеть {escape(str(tenant))}")
    if link:
        parts.append(f'<a href="{escape(link)}">открыть в админке</a>')
    return f'<div style="margin:8px 0">{" · ".join(parts)}</div>'


def _tool_plain(x: dict[str, Any]) -> str:
    """A tool call in words (reports): «⚙ статус заказа — ошибка: сервис недоступен, код 503»."""
    result = x.get("tool_result")
    if x.get("success"):
        outcome = "успешно"
    else:
        error = result.get("error") if isinstance(result, dict) else None
        status = result.get("status") if isinstance(result, dict) else None
        outcome = "ошибка: " + error_label(str(error or "unknown"), status if isinstance(status, int) else None)
    return f"{tool_label(x['tool_name'])} — {outcome}"


def _transcript(turns: list[dict[str, Any]], started_at, mask: bool, plain: bool = False) -> str:
    rows = [
        f'<tr><th style="{HEAD}">#</th><th style="{HEAD}">время</th><th style="{HEAD}">кто</th>'
        f'<th style="{HEAD}">текст</th><th style="{HEAD}">STT / LLM / TTS, мс</th></tr>'
    ]
    for t in turns:
        who, colour = SPEAKERS.get(t["speaker"], (t["speaker"], "white"))
        offset = (t["created_at"] - started_at).total_seconds()
        conf = t.get("stt_confidence")
        extra = f" <small>(уверенность распознавания {num(conf, 2)})</small>" if conf is not None and conf < 0.7 else ""
        lat = " / ".join(num(t.get(k)) for k in ("stt_latency_ms", "llm_latency_ms", "tts_latency_ms"))
        tools = "".join(
            '<div style="font-size:12px;color:{c}">⚙ {text}{ms}</div>'.format(
                c="#2e7d32" if x.get("success") else "#c62828",
                text=escape(_tool_plain(x)),
                ms=f" · {num(x.get('duration_ms'))} мс" if x.get("duration_ms") is not None else "",
            )
            if plain
            else '<div style="font-size:12px;color:{c}">⚙ {name}({args}) → {res}{ms}</div>'.format(
                c="#2e7d32" if x.get("success") else "#c62828",
                name=escape(x["tool_name"]),
                args=_json(x.get("tool_args"), mask),
                res=_json(x.get("tool_result"), mask),
                ms=f" · {num(x.get('duration_ms'))} мс" if x.get("duration_ms") is not None else "",
            )
            for x in t.get("tools", [])
        )
        rows.append(
            f'<tr style="background:{colour}"><td style="{CELL}">{t["turn_number"]}</td>'
            f'<td style="{CELL}">{int(offset // 60)}:{int(offset % 60):02d}</td>'
            f'<td style="{CELL}">{who}</td><td style="{CELL}">{_text(t.get("content"), mask)}{extra}{tools}</td>'
            f'<td style="{CELL};white-space:nowrap">{lat}</td></tr>'
        )
    return f'<table style="border-collapse:collapse;font-size:13px">{"".join(rows)}</table>'


def _quality(details: dict[str, Any] | None, mask: bool) -> str:
    if not details or not details.get("criteria"):
        return "<p>Звонок ещё не оценён.</p>"
    rows = [
        f'<tr><th style="{HEAD}">критерий</th><th style="{HEAD}">оценка</th>'
        f'<th style="{HEAD}">пояснение</th><th style="{HEAD}">реплики</th></tr>'
    ]
    for name, c in details["criteria"].items():
        score = c.get("score")
        shown = "н/п" if not c.get("applicable", True) or score is None else num(score, 2)
        evidence = ", ".join(str(e) for e in c.get("evidence") or [])
        rows.append(
            f'<tr><td style="{CELL}">{escape(labels.criterion(name))}</td><td style="{CELL}">{shown}</td>'
            f'<td style="{CELL}">{_text(c.get("reason"), mask)}</td><td style="{CELL}">{escape(evidence)}</td></tr>'
        )
    judge = details.get("judge") or {}
    tail = f"судья: {escape(labels.judge(judge.get('kind'), judge.get('model')))}"
    if details.get("auto_failed"):
        tail += " · <b style='color:#c62828'>автопровал</b>"
    return f'<table style="border-collapse:collapse;font-size:13px">{"".join(rows)}</table><p><small>{tail}</small></p>'


def _signals(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    keys = [
        ("response_p95_ms", "ответ p95, мс"),
        ("stt_reasks", "переспрашиваний"),
        ("long_pauses", "долгих пауз"),
        ("barge_ins", "перебиваний"),
        ("tool_errors", "ошибок инструментов"),
        ("rejected_tool_calls", "отклонённых вызовов"),
        ("suspicious_tool_calls", "подозрительных вызовов"),
    ]
    return "<p>" + " · ".join(f"{title}: {num(metrics.get(k))}" for k, title in keys) + "</p>"


def _cost(call: dict[str, Any]) -> str:
    breakdown = call.get("cost_breakdown") or {}
    parts = [  # the priced components only: usage figures and recorded totals are not money of a component
        f"{escape(labels.COST_COMPONENTS[k])}: {usd(v)}"
        for k, v in breakdown.items()
        if k in labels.COST_COMPONENTS and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return "<p>Стоимость: " + (" · ".join(parts) or "не рассчитана") + "</p>"


def render(
    detail: dict[str, Any], *, mask_phones: bool = True, admin_url: str | None = None, plain: bool = False
) -> Block:
    """HTML of a call from :func:`journal.call_detail`; ``plain`` (the reports a manager reads): tool
    calls in words, without their arguments and results."""
    call = detail["call"]
    link = f"{admin_url.rstrip('/')}/calls/{call['id']}" if admin_url else None
    html = (
        f'<div style="border:1px solid #e0e0e0;border-radius:6px;padding:8px 12px;margin:10px 0">'
        f"{_header(call, link)}{_transcript(detail['turns'], call['started_at'], mask_phones, plain)}"
        f"<h4>Качество</h4>{_quality(call.get('quality_details'), mask_phones)}"
        f"{_signals(detail.get('metrics'))}{_cost(call)}</div>"
    )
    return Block(html)


def show_call(
    engine: Engine,
    call_id: str,
    *,
    tz: str = timeutil.DEFAULT_TZ,
    mask_phones: bool = True,
    admin_url: str | None = None,
    plain: bool = False,
) -> Block:
    """A call, ready to display in a notebook cell (``plain``: tool calls in words, for reports)."""
    detail = journal.call_detail(engine, call_id, tz=tz)
    return render(detail, mask_phones=mask_phones, admin_url=admin_url, plain=plain)
