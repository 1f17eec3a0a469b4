"""The alert rules' checks over calls and their tool calls: transfers to an operator (overall and per
scenario), the bot's response latency, failed tool calls, suspected prompt injection, rejected tool calls."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa

from ccanalytics.alerts.rulemodel import Context, Firing, calls_gen, calls_loc, pct, plural
from ccanalytics.analytics import signals
from ccanalytics.core import labels, rutext
from ccanalytics.core.privacy import mask_personal, mask_phones_in_text
from ccanalytics.db import tenants


def high_transfer_rate(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.transfer_window_minutes)
    rows = conn.execute(
        sa.text(
            "SELECT c.tenant, count(*) AS calls, "  # noqa: S608 — tenants.SQL is a constant filter; values are bound
            "count(*) FILTER (WHERE c.transferred_to_operator) AS transferred, "
            "mode() WITHIN GROUP (ORDER BY c.transfer_reason) FILTER (WHERE c.transferred_to_operator) AS reason "
            f"FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :now AND {tenants.SQL} "
            "GROUP BY c.tenant ORDER BY c.tenant"
        ),
        {"start": start, "now": ctx.now, **ctx.scoped},
    )
    out = []
    for r in rows:  # per tenant: its own volume and share
        if r.calls < th.transfer_min_calls or r.transferred / r.calls <= th.transfer_rate:
            continue
        rate = r.transferred / r.calls
        reason = f" Частая причина: {labels.label(labels.TRANSFER_REASONS, r.reason)}." if r.reason else ""
        text = (
            f"{ctx.lead(r.tenant)}За {th.transfer_window_minutes} мин ({ctx.span(start)}) оператору переведено "
            f"{rutext.num(r.transferred)} из {calls_gen(r.calls)} ({pct(rate)}), порог — больше "
            f"{pct(th.transfer_rate)}.{reason}"
        )
        link = ctx.journal(start, tenant=r.tenant, transferred="yes")
        out.append(
            Firing(
                "high_transfer_rate",
                ctx.key(r.tenant),
                rate,
                th.transfer_rate,
                text,
                link,
                ctx.tenant(r.tenant),
                tenant=r.tenant,
            )
        )
    return out


def scenario_transfer_rate(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(hours=24)
    rows = conn.execute(
        sa.text(
            "SELECT c.tenant, coalesce(c.scenario, 'unknown') AS scenario, "  # noqa: S608 — tenants.SQL: constant
            "count(*) AS calls, "
            "count(*) FILTER (WHERE c.transferred_to_operator) AS transferred, "
            "mode() WITHIN GROUP (ORDER BY c.transfer_reason) FILTER (WHERE c.transferred_to_operator) AS reason "
            f"FROM cca_calls c WHERE c.started_at >= :start AND c.started_at < :now AND {tenants.SQL} "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"start": start, "now": ctx.now, **ctx.scoped},
    )
    out = []
    for r in rows:
        rate = r.transferred / r.calls
        if r.calls < th.scenario_min_calls or rate < th.scenario_transfer_rate:
            continue
        reason = f" Частая причина: {labels.label(labels.TRANSFER_REASONS, r.reason)}." if r.reason else ""
        text = (
            f"{ctx.lead(r.tenant)}Сценарий «{labels.scenario(r.scenario)}» ({r.scenario}): за 24 часа "
            f"({ctx.span(start)}) переведено {rutext.num(r.transferred)} из {calls_gen(r.calls)} ({pct(rate)}), "
            f"порог — {pct(th.scenario_transfer_rate)}.{reason}"
        )
        link = ctx.journal(
            start,
            tenant=r.tenant,
            scenario=None if r.scenario == "unknown" else r.scenario,
            transferred="yes",
        )
        out.append(
            Firing(
                "scenario_transfer_rate",
                ctx.key(r.tenant, r.scenario),
                rate,
                th.scenario_transfer_rate,
                text,
                link,
                f"«{labels.scenario(r.scenario)}», {ctx.tenant(r.tenant)}",
                tenant=r.tenant,
            )
        )
    return out


_P95 = "percentile_cont(0.95) WITHIN GROUP (ORDER BY v)"
_LATENCY = f"""
WITH w AS (
    SELECT c.tenant, m.response_ms, m.stt_ms, m.llm_ms, m.tts_ms FROM call_metrics m
    JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at
    WHERE m.started_at >= CAST(:start AS timestamptz) - interval '3 hours' AND m.started_at < :now
      AND c.ended_at >= :start AND c.ended_at < :now AND {tenants.SQL}),
n AS (SELECT tenant, count(*) AS calls FROM w GROUP BY 1),
r AS (SELECT tenant, count(*) AS replies, {_P95} AS p95 FROM w, unnest(w.response_ms) AS x(v) GROUP BY 1),
s AS (SELECT tenant, {_P95} AS p FROM w, unnest(w.stt_ms) AS x(v) GROUP BY 1),
l AS (SELECT tenant, {_P95} AS p FROM w, unnest(w.llm_ms) AS x(v) GROUP BY 1),
t AS (SELECT tenant, {_P95} AS p FROM w, unnest(w.tts_ms) AS x(v) GROUP BY 1)
SELECT n.tenant, n.calls, coalesce(r.replies, 0) AS replies, r.p95, s.p AS stt, l.p AS llm, t.p AS tts
FROM n
LEFT JOIN r ON r.tenant IS NOT DISTINCT FROM n.tenant
LEFT JOIN s ON s.tenant IS NOT DISTINCT FROM n.tenant
LEFT JOIN l ON l.tenant IS NOT DISTINCT FROM n.tenant
LEFT JOIN t ON t.tenant IS NOT DISTINCT FROM n.tenant
ORDER BY n.tenant
"""  # noqa: S608 — tenants.SQL and _P95 are constants; values are bound


def response_latency(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """p95 of the response latency (end of customer speech → bot speech) of each tenant's calls that
    ended in the window, from call_metrics (ccanalytics.alerts.engine.run_alerts derives missing rows first)."""
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.latency_window_minutes)
    rows = conn.execute(sa.text(_LATENCY), {"start": start, "now": ctx.now, **ctx.scoped})
    out = []
    for r in rows:
        if r.replies < th.latency_min_replies or r.p95 is None or r.p95 / 1000 <= th.latency_p95_s:
            continue
        parts = ", ".join(
            f"{n} {rutext.seconds(v / 1000, 2)}"
            for n, v in (("STT", r.stt), ("LLM", r.llm), ("TTS", r.tts))
            if v is not None
        )
        text = (
            f"{ctx.lead(r.tenant)}p95 задержки ответа бота {rutext.seconds(r.p95 / 1000, 2)} "
            f"за {th.latency_window_minutes} мин ({ctx.span(start)}; "
            f"{plural(r.replies, 'ответ', 'ответа', 'ответов')} в {calls_loc(r.calls)}), "
            f"порог — больше {rutext.seconds(th.latency_p95_s, 2)}. "
            f"p95 по компонентам: {parts or 'нет данных'}."
        )
        out.append(
            Firing(
                "response_latency",
                ctx.key(r.tenant),
                r.p95 / 1000,
                th.latency_p95_s,
                text,
                ctx.journal(start, tenant=r.tenant),
                ctx.tenant(r.tenant),
                tenant=r.tenant,
            )
        )
    return out


# ------------------------------------------------------------------------------- tool calls
# the tenant and the masked caller of a tool call's call (alias c, as tenants.SQL expects)
_OF_CALL = (
    "LEFT JOIN LATERAL (SELECT c.tenant, cca_mask_phone(c.caller_id) AS caller FROM cca_calls c "
    "WHERE c.id = tc.call_id LIMIT 1) c ON true"
)


def tool_errors(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.tool_errors_window_minutes)
    rows = conn.execute(
        sa.text(
            "WITH f AS (SELECT tc.call_id, "  # noqa: S608 — _OF_CALL and tenants.SQL are constants; values bound
            "coalesce(tc.tool_name, '?') AS tool_name, c.tenant "
            f"FROM call_tool_calls tc {_OF_CALL} WHERE tc.created_at >= :start AND tc.created_at < :now "
            f"AND NOT tc.success AND NOT coalesce(tc.tool_result::text ~* :rejected, false) AND {tenants.SQL}) "
            "SELECT g.tenant, CAST(sum(g.k) AS int) AS n, jsonb_object_agg(g.tool_name, g.k) AS tools, "
            "(SELECT count(DISTINCT f.call_id) FROM f WHERE f.tenant IS NOT DISTINCT FROM g.tenant) AS calls "
            "FROM (SELECT tenant, tool_name, count(*) AS k FROM f GROUP BY 1, 2) g GROUP BY g.tenant ORDER BY g.tenant"
        ),
        {"start": start, "now": ctx.now, "rejected": signals.REJECTED_REGEX, **ctx.scoped},
    )
    out = []
    for r in rows:
        if r.n <= th.tool_errors:
            continue
        tools = ", ".join(f"{k} ×{rutext.num(v)}" for k, v in sorted(r.tools.items(), key=lambda kv: (-kv[1], kv[0])))
        text = (
            f"{ctx.lead(r.tenant)}За {th.tool_errors_window_minutes} мин ({ctx.span(start)}) "
            f"{plural(r.n, 'ошибка', 'ошибки', 'ошибок')} вызовов инструментов "
            f"в {calls_loc(r.calls)}: {tools}. Порог — больше {rutext.compact(th.tool_errors)}. "
            "Вероятно, Store API недоступен."
        )
        out.append(
            Firing(
                "tool_errors",
                ctx.key(r.tenant),
                r.n,
                th.tool_errors,
                text,
                ctx.journal(start, tenant=r.tenant),
                ctx.tenant(r.tenant),
                details={"tools": r.tools},
                tenant=r.tenant,
            )
        )
    return out


def prompt_injection(conn: sa.Connection, ctx: Context) -> list[Firing]:
    start = ctx.now - timedelta(minutes=ctx.th.event_lookback_minutes)
    rows = conn.execute(
        sa.text(
            "SELECT tc.call_id::text AS call_id, "  # noqa: S608 — _OF_CALL, tenants.SQL: constants; values bound
            "min(tc.created_at) AS at, count(*) AS n, "
            "(array_agg(tc.tool_name ORDER BY tc.created_at))[1:3] AS tools, "
            "(array_agg(tc.tool_args ORDER BY tc.created_at))[1:3] AS args, c.tenant, c.caller "
            f"FROM call_tool_calls tc {_OF_CALL} "
            "WHERE tc.created_at >= :start AND tc.created_at < :now AND tc.tool_args @? CAST(:path AS jsonpath) "
            f"AND {tenants.SQL} GROUP BY tc.call_id, c.tenant, c.caller ORDER BY min(tc.created_at)"
        ),
        {"start": start, "now": ctx.now, "path": signals.SUSPICIOUS_ARGS_JSONPATH, **ctx.scoped},
    )
    out = []
    for r in rows:
        # the arguments without the customer's name or phone: alerts leave the admin
        examples = "\n".join(
            f"• {tool} {json.dumps(mask_personal(args), ensure_ascii=False)[:300]}"
            for tool, args in zip(r.tools, r.args, strict=True)
        )
        text = (
            f"{ctx.lead(r.tenant)}Звонок {r.call_id} (клиент {r.caller or 'неизвестен'}, {ctx.local(r.at)}): "
            f"{plural(r.n, 'вызов', 'вызова', 'вызовов')} "
            f"инструментов с ценой ≤ 0 или количеством > {signals.SUSPICIOUS_MAX_QUANTITY}:\n{examples}\n"
            "Проверьте транскрипт и отмените черновик заказа, если он создан."
        )
        out.append(
            Firing(
                "prompt_injection",
                r.call_id,
                r.n,
                None,
                text,
                ctx.call(r.call_id),
                f"звонок {r.call_id[:8]}, {ctx.tenant(r.tenant)}",
                tenant=r.tenant,
            )
        )
    return out


def validation_anomaly(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.event_lookback_minutes)
    rows = conn.execute(
        sa.text(
            "SELECT tc.call_id::text AS call_id, "  # noqa: S608 — _OF_CALL, tenants.SQL: constants; values bound
            "min(tc.created_at) AS at, count(*) AS n, "
            "array_agg(DISTINCT tc.tool_name) AS tools, "
            "(array_agg(left(tc.tool_result::text, 200) ORDER BY tc.created_at))[1] AS example, c.tenant, c.caller "
            f"FROM call_tool_calls tc {_OF_CALL} "
            "WHERE tc.created_at >= :start AND tc.created_at < :now AND NOT tc.success "
            f"AND tc.tool_result::text ~* :rejected AND {tenants.SQL} GROUP BY tc.call_id, c.tenant, c.caller "
            "HAVING count(*) > :limit ORDER BY min(tc.created_at)"
        ),
        {
            "start": start,
            "now": ctx.now,
            "rejected": signals.REJECTED_REGEX,
            "limit": th.rejected_tool_calls_per_call,
            **ctx.scoped,
        },
    )
    out = []
    for r in rows:
        text = (
            f"{ctx.lead(r.tenant)}Звонок {r.call_id} (клиент {r.caller or 'неизвестен'}, {ctx.local(r.at)}): "
            f"Store API отклонил {plural(r.n, 'вызов', 'вызова', 'вызовов')} инструментов "
            f"({', '.join(sorted(t or '?' for t in r.tools))}), порог — больше "
            f"{rutext.compact(th.rejected_tool_calls_per_call)}. Пример ответа: {mask_phones_in_text(r.example or '')}"
        )
        out.append(
            Firing(
                "validation_anomaly",
                r.call_id,
                r.n,
                th.rejected_tool_calls_per_call,
                text,
                ctx.call(r.call_id),
                f"звонок {r.call_id[:8]}, {ctx.tenant(r.tenant)}",
                tenant=r.tenant,
            )
        )
    return out
