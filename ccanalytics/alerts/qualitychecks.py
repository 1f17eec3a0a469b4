"""The alert rules' checks over quality scoring: a drop of the quality score, the judge's failures,
the backlog of unscored calls, and the STT re-asks of yesterday."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from ccanalytics import quality
from ccanalytics.alerts.rulemodel import Context, Firing, calls_acc, num, plural
from ccanalytics.core import rutext, timeutil
from ccanalytics.core.privacy import mask_phones_in_text
from ccanalytics.db import tenants
from ccanalytics.quality import problems


def quality_drop(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th = ctx.th
    recent = ctx.now - timedelta(hours=th.quality_window_hours)
    rows = conn.execute(
        sa.text(
            "SELECT c.tenant, "  # noqa: S608 — tenants.SQL is a constant filter; values are bound
            "count(*) FILTER (WHERE c.started_at >= :recent) AS n_recent, "
            "avg(c.quality_score) FILTER (WHERE c.started_at >= :recent) AS recent, "
            "count(*) FILTER (WHERE c.started_at < :recent) AS n_base, "
            "avg(c.quality_score) FILTER (WHERE c.started_at < :recent) AS base "
            "FROM cca_calls c WHERE c.started_at >= :base_start AND c.started_at < :now "
            f"AND c.quality_score IS NOT NULL AND {tenants.SQL} GROUP BY c.tenant ORDER BY c.tenant"
        ),
        {"recent": recent, "base_start": recent - timedelta(days=th.baseline_days), "now": ctx.now, **ctx.scoped},
    )
    out = []
    for r in rows:
        if r.n_recent < th.quality_min_scored or r.n_base < th.quality_min_scored:
            continue
        if r.recent >= r.base - th.quality_drop:
            continue
        text = (
            f"{ctx.lead(r.tenant)}Средняя оценка качества за {th.quality_window_hours} ч ({ctx.span(recent)}): "
            f"{num(r.recent)} ({plural(r.n_recent, 'оценённый звонок', 'оценённых звонка', 'оценённых звонков')}) "
            f"против {num(r.base)} за {th.baseline_days} дн. "
            f"Порог — падение больше {num(th.quality_drop)}."
        )
        link = ctx.journal(recent, tenant=r.tenant, sort="quality", order="asc")
        out.append(
            Firing(
                "quality_drop",
                ctx.key(r.tenant),
                r.recent,
                r.base - th.quality_drop,
                text,
                link,
                ctx.tenant(r.tenant),
                tenant=r.tenant,
            )
        )
    return out


_JUDGE_FAILURES = f"""
WITH f AS (
    SELECT c.tenant, q.last_error FROM scoring_queue q
    LEFT JOIN LATERAL (SELECT c.tenant FROM cca_calls c WHERE c.id = q.call_id AND c.started_at = q.started_at
                       LIMIT 1) c ON true
    WHERE q.status = 'failed' AND q.updated_at >= :start AND q.updated_at < :now AND {tenants.SQL})
SELECT g.tenant, count(*) AS n,
       (SELECT left(f.last_error, 300) FROM f WHERE f.tenant IS NOT DISTINCT FROM g.tenant
        GROUP BY f.last_error ORDER BY count(*) DESC, f.last_error LIMIT 1) AS top_error
FROM f AS g GROUP BY g.tenant ORDER BY g.tenant
"""  # noqa: S608 — tenants.SQL is a constant filter; values are bound


def judge_failures(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Calls of each tenant that failed scoring in 24 hours (a failure whose call is gone counts as a
    call without a tenant)."""
    th = ctx.th
    rows = conn.execute(
        sa.text(_JUDGE_FAILURES), {"start": ctx.now - timedelta(hours=24), "now": ctx.now, **ctx.scoped}
    )
    out = []
    for r in rows:
        if r.n <= th.judge_failures:
            continue
        cause = f" Частая причина: {mask_phones_in_text(r.top_error)}." if r.top_error else ""
        text = (
            f"{ctx.lead(r.tenant)}За 24 часа LLM-судья не смог оценить {calls_acc(r.n)} после всех попыток, "
            f"порог — больше {rutext.compact(th.judge_failures)}.{cause} Подробнее: ccanalytics score --json."
        )
        out.append(
            Firing(
                "judge_failures",
                ctx.key(r.tenant),
                r.n,
                th.judge_failures,
                text,
                label=ctx.tenant(r.tenant),
                tenant=r.tenant,
            )
        )
    return out


def scoring_backlog(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Finished calls the scheduler owes a score (from ``quality.scheduled_since``), as the exporter's gauge."""
    th, start = ctx.th, quality.scheduled_since(ctx.now, ctx.tz)
    rows = conn.execute(
        sa.text(
            "SELECT c.tenant, count(*) AS n, "  # noqa: S608 — tenants.SQL is a constant filter; values are bound
            "min(c.started_at) AS oldest FROM cca_calls c "
            "WHERE c.started_at >= :start AND c.started_at < :now AND c.ended_at IS NOT NULL "
            "AND NOT c.quality_scored "
            f"AND {tenants.SQL} GROUP BY c.tenant ORDER BY c.tenant"
        ),
        {"start": start, "now": ctx.now, **ctx.scoped},
    )
    out = []
    for r in rows:
        if r.n <= th.scoring_backlog:
            continue
        text = (
            f"{ctx.lead(r.tenant)}Не оценено {calls_acc(r.n)} за вчера и сегодня "
            f"(самый старый — {ctx.local(r.oldest)}), "
            f"порог — больше {rutext.compact(th.scoring_backlog)}. "
            "Проверьте планировщик и доступность LLM-судьи."
        )
        out.append(
            Firing(
                "scoring_backlog",
                ctx.key(r.tenant),
                r.n,
                th.scoring_backlog,
                text,
                label=ctx.tenant(r.tenant),
                tenant=r.tenant,
            )
        )
    return out


# the tenants' rows of the daily figures (cca_daily_stats_by_tenant; '*' is the row over every tenant)
_REASK_DAYS = """
SELECT tenant, stat_date, coalesce(stt_reasks, 0) AS reasks, coalesce(total_calls, 0) AS calls
FROM cca_daily_stats_by_tenant
WHERE tenant <> '*' AND stat_date BETWEEN :a AND :d
  AND (CAST(:tenants AS text[]) IS NULL OR tenant = ANY(CAST(:tenants AS text[])))
ORDER BY tenant, stat_date
"""


def stt_reasks(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Each tenant's STT re-asks per call yesterday against its own 14 days before (the rule of
    ccanalytics.quality.problems.reask_rate over the tenant's daily figures), sent from
    ``daily_alert_hour`` local time; one event per tenant and day."""
    th = ctx.th
    if ctx.now.astimezone(timeutil.zone(ctx.tz)).hour < th.daily_alert_hour:
        return []
    day = ctx.local_date() - timedelta(days=1)
    rows = conn.execute(
        sa.text(_REASK_DAYS), {"a": day - timedelta(days=problems.BASELINE_DAYS), "d": day, **ctx.scoped}
    ).all()
    by_tenant: dict[str, list[Any]] = {}
    for r in rows:
        by_tenant.setdefault(r.tenant, []).append(r)
    found = []
    for tenant, days in by_tenant.items():
        today = next((r for r in days if r.stat_date == day), None)
        before = [r for r in days if r.stat_date < day]
        base_calls = sum(r.calls for r in before)
        if today is None or not today.calls or not base_calls:
            continue
        rate, base = today.reasks / today.calls, sum(r.reasks for r in before) / base_calls
        if today.calls >= problems.MIN_CALLS and rate > base * th.stt_reask_factor and rate - base > 0.02:
            found.append((tenant, round(rate, 4), round(base, 4), today.calls))
    if not found:
        return []
    words = conn.execute(
        sa.text(
            "SELECT key FROM quality_findings WHERE kind = 'reasked_word' AND day = :d ORDER BY value DESC, key LIMIT 8"
        ),
        {"d": day},
    ).scalars()
    words_text = ", ".join(words)
    out = []
    for tenant, rate, base, calls in found:
        text = (
            f"{ctx.lead(tenant)}Вчера ({day.strftime('%d.%m')}) бот переспрашивал клиентов {num(rate)} раза на "
            f"звонок против {num(base)} за {problems.BASELINE_DAYS} дн. до этого ({calls_acc(calls)}), порог — "
            f"в {rutext.compact(th.stt_reask_factor, 2)} раза выше. "
            + (
                f"Слова перед переспросом (по всем сетям): {words_text}."
                if words_text
                else "Проблемные слова появятся после ночного анализа."
            )
        )
        out.append(
            Firing(
                "stt_reasks",
                ctx.key(tenant, day.isoformat()),
                rate,
                base * th.stt_reask_factor,
                text,
                ctx.day_journal(day, tenant=tenant),
                f"{day.strftime('%d.%m')}, {ctx.tenant(tenant)}",
                tenant=tenant,
            )
        )
    return out
