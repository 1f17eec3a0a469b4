"""The rules of the database-evaluated alerts, as data: each rule has a name, a Russian title, a
severity, its channels, a kind ("condition": fires and resolves; "event": one notification per
occurrence, never resolved) and the Prometheus alert covering the same signal, if any.

A rule's check reads PostgreSQL at an explicit instant ``ctx.now`` (never SQL ``now()``) and returns
the ``Firing`` instances for that instant; ccanalytics.alerts.engine keeps their state and sends them.
Thresholds have defaults in ``Thresholds`` and are overridden by ``CCA_ALERT_THRESHOLDS``.

Tenants are first-class: every rule is evaluated per tenant (the call's tenant, ``cca_calls.tenant``),
so a spike at one retail network is never diluted by the others. An aggregate rule's key is the
tenant's slug (``shinservice``), with its subject after a colon (``shinservice:tire_search``,
``shinservice:2026-11-19``); calls whose tenant was deleted or never set are the key ``no-tenant``.
Per-call events keep the call id as their key. Texts and titles name the tenant by its display name
and journal links filter to it (``tenant=<slug>``). ``Context.scope`` limits an evaluation to some
tenants (``ccanalytics alerts check --tenant``). Thresholds are one catalogue for every tenant.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa

from ccanalytics.analytics import signals
from ccanalytics.core import definitions, labels, rutext, timeutil
from ccanalytics.core.errors import ConfigError
from ccanalytics.core.privacy import mask_personal, mask_phones_in_text
from ccanalytics.db import tenants
from ccanalytics.quality import problems


@dataclass(frozen=True)
class Thresholds:
    """Defaults of every alert threshold; keys of ``CCA_ALERT_THRESHOLDS`` are these field names."""

    transfer_rate: float = 0.5  # share of calls transferred in the window (> fires)
    transfer_min_calls: int = 10
    transfer_window_minutes: int = 60
    tool_errors: int = 5  # failed (not rejected) tool calls in the window (> fires)
    tool_errors_window_minutes: int = 10
    latency_p95_s: float = definitions.RESPONSE_CRITICAL_MS / 1000  # response latency p95 (> fires)
    latency_window_minutes: int = 15
    latency_min_replies: int = 20
    event_lookback_minutes: int = 60  # per-call events are looked for in tool calls this recent
    rejected_tool_calls_per_call: int = signals.REJECTED_TOOLS_PER_CALL  # (> fires)
    spend_ratio: float = 2.0  # spend / trailing average (> fires)
    spend_min_day_fraction: float = 0.25  # compare today once the baseline reached this share of a day
    spend_min_usd: float = 1.0  # never alert on spend below this
    baseline_days: int = 7  # trailing days of spend, cost per call and quality baselines
    scenario_transfer_rate: float = problems.TRANSFER_RATE  # per scenario over 24 h (≥ fires)
    scenario_min_calls: int = problems.MIN_CALLS
    stt_reask_factor: float = problems.REASK_FACTOR  # yesterday's re-asks per call / 14-day rate
    daily_alert_hour: int = 9  # facts about yesterday are sent from this local hour
    quality_drop: float = 0.1  # recent average below the baseline average by more than this
    quality_min_scored: int = 20
    quality_window_hours: int = 2
    judge_failures: int = 10  # calls failed scoring in 24 h (> fires)
    scoring_backlog: int = 200  # unscored calls of the last 7 days (> fires)
    cost_per_call_jump: float = 0.3  # average cost per call above the baseline by this share
    cost_min_calls: int = 30

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, float] | None) -> Thresholds:
        """Defaults with ``overrides`` applied; unknown keys and bad values raise ConfigError."""
        overrides = dict(overrides or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown alert threshold {', '.join(unknown)} in CCA_ALERT_THRESHOLDS; known: {', '.join(fields)}",
                details={"unknown": unknown},
            )
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"alert threshold {name} must be a number ≥ 0, got {value!r}")
            if fields[name].type in ("int", int):
                if value != int(value):
                    raise ConfigError(f"alert threshold {name} must be a whole number, got {value!r}")
                value = int(value)
            values[name] = value
        th = dataclasses.replace(cls(), **values)
        if not 0 <= th.daily_alert_hour <= 23:
            raise ConfigError("alert threshold daily_alert_hour must be between 0 and 23")
        if th.baseline_days < 1:
            raise ConfigError("alert threshold baseline_days must be at least 1")
        return th


NO_TENANT = "no-tenant"  # the key (and key prefix) of calls whose tenant was deleted or never set


def tenant_words(tenant: str | None, names: Mapping[str, str]) -> str:
    """A tenant in words for a title or a text: «сеть «Шинсервіс»» (its display name; the slug when it
    has none), «звонки без сети» for calls without a tenant."""
    if not tenant:
        return "звонки без сети"
    name = names.get(tenant)
    return f"сеть «{name}»" if name else f"сеть {tenant}"


@dataclass(frozen=True)
class Context:
    now: datetime  # aware
    th: Thresholds
    tz: str = timeutil.DEFAULT_TZ
    admin_url: str = "http://127.0.0.1:8050"
    names: Mapping[str, str] = field(default_factory=dict)  # tenant slug -> display name (tenants.name)
    scope: tenants.Scope = None  # None: every tenant (and calls without one); else only these slugs

    def local(self, at: datetime, fmt: str = "%d.%m %H:%M") -> str:
        return at.astimezone(timeutil.zone(self.tz)).strftime(fmt)

    def span(self, start: datetime) -> str:
        return f"{self.local(start)}–{self.local(self.now, '%H:%M')}"

    def local_date(self, at: datetime | None = None) -> date:
        return (at or self.now).astimezone(timeutil.zone(self.tz)).date()

    @property
    def scoped(self) -> dict[str, Any]:
        """The bind parameter of :data:`ccanalytics.db.tenants.SQL` (alias ``c`` over cca_calls)."""
        return tenants.params(self.scope)

    @staticmethod
    def key(tenant: str | None, subject: str | None = None) -> str:
        """An alert key of a tenant (its slug; ``no-tenant``), with a subject after a colon."""
        base = tenant or NO_TENANT
        return f"{base}:{subject}" if subject is not None else base

    def tenant(self, tenant: str | None) -> str:
        """The tenant in words: «сеть «Шинсервіс»», or the calls without one."""
        return tenant_words(tenant, self.names)

    def lead(self, tenant: str | None) -> str:
        """The sentence a text starts with: «Сеть «Шинсервіс». »."""
        if not tenant:
            return "Звонки без сети (сеть удалена или не указана). "
        words = self.tenant(tenant)
        return f"{words[0].upper()}{words[1:]}. "

    def journal(self, start: datetime | None = None, *, tenant: str | None = None, **params: Any) -> str:
        """A link to the admin's call journal with filters (from/to are local days; the tenant's slug)."""
        q = {"from": self.local_date(start or self.now).isoformat(), "to": self.local_date().isoformat()}
        if tenant:
            q["tenant"] = tenant
        q.update({k: v for k, v in params.items() if v is not None})
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(q)}"

    def day_journal(self, day: date, *, tenant: str | None = None, **params: Any) -> str:
        """The journal of one local day (optionally of a tenant)."""
        q: dict[str, Any] = {"from": day, "to": day}
        if tenant:
            q["tenant"] = tenant
        q.update(params)
        return f"{self.admin_url.rstrip('/')}/calls?{urlencode(q)}"

    def call(self, call_id: str) -> str:
        return f"{self.admin_url.rstrip('/')}/calls/{quote(call_id)}"


@dataclass(frozen=True)
class Firing:
    """One alert instance firing at ``ctx.now``: the text is Russian, with numbers and the period."""

    rule: str
    key: str
    value: float | None
    threshold: float | None
    text: str
    link: str | None = None
    label: str = ""  # what the key means to a reader (a tenant, a scenario, a call), shown in the title
    details: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None  # the slug of the tenant whose calls fired it (None: calls without one)


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    severity: str  # critical | warning
    channels: tuple[str, ...]
    kind: str  # condition | event
    prometheus_twin: str | None
    condition: str  # English, for docs/alerts.md
    thresholds: tuple[str, ...]
    check: Callable[[sa.Connection, Context], list[Firing]]
    per_call: bool = False  # keyed by the call id (else by the tenant, ``shinservice[:subject]``)


def num(value: float, digits: int = 2) -> str:
    """Russian decimal format with ``digits`` decimals: ``0.6`` → ``0,60``, ``1234.5`` → ``1 234,50``."""
    return rutext.num(value, digits)


def pct(fraction: float) -> str:
    """A share as a percentage, one decimal at most: ``0.8426`` → ``84,3 %``, ``0.5`` → ``50 %``."""
    return rutext.share(fraction, 1)


def plural(n: int, one: str, few: str, many: str) -> str:
    """``n`` in Russian format with its word form: ``1 013 вызовов``."""
    return rutext.count(n, one, few, many)


def calls_acc(n: int) -> str:  # "оценить 21 звонок"
    return plural(n, "звонок", "звонка", "звонков")


def calls_gen(n: int) -> str:  # "из 21 звонка"
    return plural(n, "звонка", "звонков", "звонков")


def calls_loc(n: int) -> str:  # "в 21 звонке"
    return plural(n, "звонке", "звонках", "звонках")


def _one(conn: sa.Connection, sql: str, **params: Any):
    return conn.execute(sa.text(sql), params).one()


# ------------------------------------------------------------------------------------- calls
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


# ------------------------------------------------------------------------------ spend and cost
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


# ---------------------------------------------------------------------------- quality scoring
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
    th, start = ctx.th, ctx.now - timedelta(days=7)
    rows = conn.execute(
        sa.text(
            "SELECT c.tenant, count(*) AS n, "  # noqa: S608 — tenants.SQL is a constant filter; values are bound
            "min(c.started_at) AS oldest FROM cca_calls c "
            "WHERE c.started_at >= :start AND c.started_at < :now AND NOT c.quality_scored "  # as the exporter's gauge
            f"AND {tenants.SQL} GROUP BY c.tenant ORDER BY c.tenant"
        ),
        {"start": start, "now": ctx.now, **ctx.scoped},
    )
    out = []
    for r in rows:
        if r.n <= th.scoring_backlog:
            continue
        text = (
            f"{ctx.lead(r.tenant)}Не оценено {calls_acc(r.n)} за 7 дней (самый старый — {ctx.local(r.oldest)}), "
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


TG, EMAIL = "telegram", "email"
RULES: tuple[Rule, ...] = (
    Rule(
        "high_transfer_rate", "Высокая доля переводов на оператора", "critical", (TG, EMAIL), "condition",
        "CCAHighTransferRate", "> 50 % of the calls of the last hour transferred, at least 10 calls",
        ("transfer_rate", "transfer_min_calls", "transfer_window_minutes"), high_transfer_rate,
    ),
    Rule(
        "tool_errors", "Ошибки вызовов инструментов (Store API)", "warning", (TG,), "condition", None,
        "> 5 failed (not rejected) tool calls in 10 minutes",
        ("tool_errors", "tool_errors_window_minutes"), tool_errors,
    ),
    Rule(
        "response_latency", "Высокая задержка ответа бота", "critical", (TG, EMAIL), "condition",
        "CCAResponseLatencyHigh", "response latency p95 > 3 s over the calls that ended in the last 15 minutes, "
        "at least 20 replies", ("latency_p95_s", "latency_window_minutes", "latency_min_replies"), response_latency,
    ),
    Rule(
        "prompt_injection", "Подозрение на prompt injection", "critical", (TG, EMAIL), "event",
        "CCASuspectedPromptInjection", "a tool call with price ≤ 0 or quantity > 50 in its arguments; one per call",
        ("event_lookback_minutes",), prompt_injection, per_call=True,
    ),
    Rule(
        "validation_anomaly", "Аномалия валидации: отклонённые вызовы инструментов", "warning", (TG,), "event",
        "CCAValidationAnomaly", "more than 3 rejected tool calls in one call; one per call",
        ("rejected_tool_calls_per_call", "event_lookback_minutes"), validation_anomaly, per_call=True,
    ),
    Rule(
        "abnormal_spend", "Аномальные расходы на API", "warning", (EMAIL,), "condition", "CCAAbnormalSpend",
        "today's spend so far > 200 % of the 7-day average up to the same time of day (yesterday's whole day "
        "while that average is under 25 % of a day)",
        ("spend_ratio", "spend_min_day_fraction", "spend_min_usd", "baseline_days"), abnormal_spend,
    ),
    Rule(
        "scenario_transfer_rate", "Сценарий с высокой долей переводов", "warning", (TG,), "condition", None,
        "a scenario with ≥ 30 % of its calls transferred in the last 24 hours, at least 10 calls",
        ("scenario_transfer_rate", "scenario_min_calls"), scenario_transfer_rate,
    ),
    Rule(
        "stt_reasks", "Частые переспрашивания (распознавание речи)", "warning", (TG,), "event", None,
        "yesterday's STT re-asks per call > 1.5 × the 14 days before (sent from 09:00); one per day",
        ("stt_reask_factor", "daily_alert_hour"), stt_reasks,
    ),
    Rule(
        "quality_drop", "Падение качества звонков", "warning", (TG,), "condition", "CCAQualityDegradation",
        "average quality of the last 2 hours < 7-day average − 0.1, at least 20 scored calls in each",
        ("quality_drop", "quality_min_scored", "quality_window_hours", "baseline_days"), quality_drop,
    ),
    Rule(
        "judge_failures", "Сбои оценки качества", "warning", (TG,), "condition", "CCAJudgeFailures",
        "> 10 calls failed scoring in the last 24 hours", ("judge_failures",), judge_failures,
    ),
    Rule(
        "scoring_backlog", "Отставание оценки качества", "warning", (TG,), "condition", "CCAScoringBacklog",
        "> 200 unscored calls of the last 7 days", ("scoring_backlog",), scoring_backlog,
    ),
    Rule(
        "cost_per_call_jump", "Рост стоимости звонка", "warning", (EMAIL,), "condition", None,
        "average cost per call today (≥ 30 priced calls; else yesterday) > 7-day average + 30 %",
        ("cost_per_call_jump", "cost_min_calls", "baseline_days"), cost_per_call_jump,
    ),
)  # fmt: skip
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}

# What a "resolved" notification says: the condition that holds again, in words (the firing sentence is
# about the problem, not about its end). One per condition rule; events never resolve.
RESOLUTIONS: dict[str, Callable[[Thresholds], str]] = {
    "high_transfer_rate": lambda th: (
        f"Доля переводов на оператора за {th.transfer_window_minutes} мин снова не выше {pct(th.transfer_rate)} "
        f"(или звонков меньше {rutext.num(th.transfer_min_calls)})."
    ),
    "tool_errors": lambda th: (
        f"Вызовы инструментов снова проходят: ошибок за {th.tool_errors_window_minutes} мин "
        f"не больше {rutext.num(th.tool_errors)}."
    ),
    "response_latency": lambda th: (
        f"Задержка ответа бота в норме: p95 за {th.latency_window_minutes} мин не выше "
        f"{rutext.seconds(th.latency_p95_s, 2)}."
    ),
    "abnormal_spend": lambda th: (
        f"Расходы на API вернулись к обычному уровню: не больше {pct(th.spend_ratio)} от среднего "
        f"за {th.baseline_days} дн."
    ),
    "scenario_transfer_rate": lambda th: (
        f"Доля переводов в сценарии за 24 часа снова ниже {pct(th.scenario_transfer_rate)} "
        f"(или звонков меньше {rutext.num(th.scenario_min_calls)})."
    ),
    "quality_drop": lambda th: (
        f"Средняя оценка качества за {th.quality_window_hours} ч вернулась к обычной: падение не больше "
        f"{num(th.quality_drop)} от средней за {th.baseline_days} дн."
    ),
    "judge_failures": lambda th: (
        f"LLM-судья снова справляется: сбоев оценки за 24 часа не больше {rutext.num(th.judge_failures)}."
    ),
    "scoring_backlog": lambda th: (
        f"Оценка качества догнала звонки: неоценённых за 7 дней не больше {rutext.num(th.scoring_backlog)}."
    ),
    "cost_per_call_jump": lambda th: (
        f"Средняя стоимость звонка вернулась к обычной: рост не больше +{pct(th.cost_per_call_jump)} "
        f"к средней за {th.baseline_days} дн."
    ),
}


def resolution(rule: str, th: Thresholds) -> str:
    """The Russian sentence of a "resolved" notification of ``rule``."""
    text = RESOLUTIONS.get(rule)
    return text(th) if text else "Условие алерта больше не выполняется."
