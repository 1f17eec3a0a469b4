"""The alert rules' checks over money: abnormal API spend and a jump of the cost per call, each tenant
against its own previous days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ccanalytics.alerts.rulemodel import Context, Firing, calls_acc, num, pct
from ccanalytics.core import timeutil
from ccanalytics.db import tenants

_WINDOW_SUMS = f"""
SELECT c.tenant, w.i, coalesce(sum(c.total_cost_usd), 0) AS spend, count(c.total_cost_usd) AS costed
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) WITH ORDINALITY AS w(s, e, i)
JOIN cca_calls c ON c.started_at >= w.s AND c.started_at < w.e AND c.started_at < :now
WHERE {tenants.SQL}
GROUP BY c.tenant, w.i
"""  # noqa: S608 — tenants.SQL is a constant filter; values are bound


@dataclass(frozen=True)
class _Days:
    """Spend and costed calls of one tenant: ``same[k]`` = day −k from its midnight to the current time
    of day (k = 0 is today so far); ``full[k]`` = the whole day −k (k ≥ 1; ``full[0]`` is unused)."""

    same: list[tuple[float, int]]
    full: list[tuple[float, int]]


def _days(conn: sa.Connection, ctx: Context) -> dict[str | None, _Days]:
    """Per tenant (that had calls in the days looked at): its own spend, its own baseline."""
    zone, n = timeutil.zone(ctx.tz), ctx.th.baseline_days
    local = ctx.now.astimezone(zone)
    today = local.date()
    windows = []
    for k in range(n + 1):
        d = today - timedelta(days=k)
        end = ctx.now if k == 0 else datetime.combine(d, local.time(), tzinfo=zone).astimezone(UTC)
        windows.append((timeutil.day_start(d, ctx.tz), end))
    for k in range(n + 2):
        d = today - timedelta(days=k)
        windows.append((timeutil.day_start(d, ctx.tz), timeutil.day_start(d + timedelta(days=1), ctx.tz)))
    rows = conn.execute(
        sa.text(_WINDOW_SUMS),
        {"starts": [s for s, _ in windows], "ends": [e for _, e in windows], "now": ctx.now, **ctx.scoped},
    ).all()
    sums: dict[str | None, list[tuple[float, int]]] = {}
    for r in rows:
        sums.setdefault(r.tenant, [(0.0, 0)] * len(windows))[r.i - 1] = (float(r.spend), int(r.costed))
    return {t: _Days(v[: n + 1], v[n + 1 :]) for t, v in sorted(sums.items(), key=lambda kv: kv[0] or "\uffff")}


def abnormal_spend(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Each tenant's spend today so far against its average spend of the previous days up to the same
    time of day — once that average has reached ``spend_min_day_fraction`` of a whole day (so the quiet
    night hours never alarm); before that, yesterday's whole day against the days before it."""
    th, n = ctx.th, ctx.th.baseline_days
    out = []
    for tenant, d in _days(conn, ctx).items():
        avg_full = sum(s for s, _ in d.full[1 : n + 1]) / n
        base_same = sum(s for s, _ in d.same[1:]) / n
        if avg_full > 0 and base_same > 0 and base_same >= th.spend_min_day_fraction * avg_full:
            spend, base, mode = d.same[0][0], base_same, "today"
            period = f"сегодня к {ctx.local(ctx.now, '%H:%M')}"
            base_text = f"в среднем за {n} дн. к этому же времени"
        else:
            spend, base, mode = d.full[1][0], sum(s for s, _ in d.full[2 : n + 2]) / n, "yesterday"
            period = f"вчера ({(ctx.local_date() - timedelta(days=1)).strftime('%d.%m')}) за весь день"
            base_text = f"в среднем за {n} дн. до этого"
        if base <= 0 or spend < th.spend_min_usd or spend / base <= th.spend_ratio:
            continue
        text = (
            f"{ctx.lead(tenant)}Расходы на API {period}: {num(spend)} $ — {pct(spend / base)} от {num(base)} $ "
            f"{base_text}. Порог — больше {pct(th.spend_ratio)}."
        )
        day = ctx.local_date() - timedelta(days=0 if mode == "today" else 1)
        out.append(
            Firing(
                "abnormal_spend",
                ctx.key(tenant),
                spend / base,
                th.spend_ratio,
                text,
                ctx.day_journal(day, tenant=tenant, sort="cost"),
                ctx.tenant(tenant),
                details={"mode": mode, "base": base},
                tenant=tenant,
            )
        )
    return out


def cost_per_call_jump(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Each tenant's average cost per call today (at least ``cost_min_calls`` priced calls), else
    yesterday, against its previous ``baseline_days`` whole days."""
    th, n = ctx.th, ctx.th.baseline_days

    def cpc(sums: list[tuple[float, int]]) -> float | None:
        calls = sum(c for _, c in sums)
        return sum(s for s, _ in sums) / calls if calls else None

    out = []
    for tenant, d in _days(conn, ctx).items():
        if d.same[0][1] >= th.cost_min_calls:
            (spend, calls), base, period, day = d.same[0], cpc(d.full[1 : n + 1]), "сегодня", ctx.local_date()
        elif d.full[1][1] >= th.cost_min_calls:
            (spend, calls), base, period = d.full[1], cpc(d.full[2 : n + 2]), "вчера"
            day = ctx.local_date() - timedelta(days=1)
        else:
            continue
        value = spend / calls
        if not base or value <= base * (1 + th.cost_per_call_jump):
            continue
        text = (
            f"{ctx.lead(tenant)}Средняя стоимость звонка {period}: {num(value, 4)} $ ({calls_acc(calls)}) против "
            f"{num(base, 4)} $ за {n} дн. до этого: +{pct(value / base - 1)}, порог — +{pct(th.cost_per_call_jump)}."
        )
        out.append(
            Firing(
                "cost_per_call_jump",
                ctx.key(tenant),
                value,
                base * (1 + th.cost_per_call_jump),
                text,
                ctx.day_journal(day, tenant=tenant, sort="cost"),
                ctx.tenant(tenant),
                tenant=tenant,
            )
        )
    return out
