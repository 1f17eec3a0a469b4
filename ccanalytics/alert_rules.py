"""The rules of the database-evaluated alerts, as data: each rule has a name, a Russian title, a
severity, its channels, a kind ("condition": fires and resolves; "event": one notification per
occurrence, never resolved) and the Prometheus alert covering the same signal, if any.

A rule's check reads PostgreSQL at an explicit instant ``ctx.now`` (never SQL ``now()``) and returns
the ``Firing`` instances for that instant; ccanalytics.alerts keeps their state and sends them.
Thresholds have defaults in ``Thresholds`` and are overridden by ``CCA_ALERT_THRESHOLDS``.
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

from . import definitions, labels, rutext, signals, timeutil
from .errors import ConfigError
from .privacy import mask_personal, mask_phones_in_text
from .quality import problems


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


@dataclass(frozen=True)
class Context:
    now: datetime  # aware
    th: Thresholds
    tz: str = timeutil.DEFAULT_TZ
    admin_url: str = "http://127.0.0.1:8050"

    def local(self, at: datetime, fmt: str = "%d.%m %H:%M") -> str:
        return at.astimezone(timeutil.zone(self.tz)).strftime(fmt)

    def span(self, start: datetime) -> str:
        return f"{self.local(start)}–{self.local(self.now, '%H:%M')}"

    def local_date(self, at: datetime | None = None) -> date:
        return (at or self.now).astimezone(timeutil.zone(self.tz)).date()

    def journal(self, start: datetime | None = None, **params: Any) -> str:
        """A link to the admin's call journal with filters (from/to are local days)."""
        q = {"from": self.local_date(start or self.now).isoformat(), "to": self.local_date().isoformat()}
        q.update({k: v for k, v in params.items() if v is not None})
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
    label: str = ""  # what the key means to a reader (a scenario, a call), shown in the title
    details: dict[str, Any] = field(default_factory=dict)


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
    r = _one(
        conn,
        "SELECT count(*) AS calls, count(*) FILTER (WHERE transferred_to_operator) AS transferred, "
        "mode() WITHIN GROUP (ORDER BY transfer_reason) FILTER (WHERE transferred_to_operator) AS reason "
        "FROM cca_calls WHERE started_at >= :start AND started_at < :now",
        start=start,
        now=ctx.now,
    )
    if not r.calls or r.calls < th.transfer_min_calls or r.transferred / r.calls <= th.transfer_rate:
        return []
    rate = r.transferred / r.calls
    reason = f" Частая причина: {labels.label(labels.TRANSFER_REASONS, r.reason)}." if r.reason else ""
    text = (
        f"За {th.transfer_window_minutes} мин ({ctx.span(start)}) оператору переведено {rutext.num(r.transferred)} из "
        f"{calls_gen(r.calls)} ({pct(rate)}), порог — больше {pct(th.transfer_rate)}.{reason}"
    )
    return [Firing("high_transfer_rate", "all", rate, th.transfer_rate, text, ctx.journal(start, transferred="yes"))]


def scenario_transfer_rate(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(hours=24)
    rows = conn.execute(
        sa.text(
            "SELECT coalesce(scenario, 'unknown') AS scenario, count(*) AS calls, "
            "count(*) FILTER (WHERE transferred_to_operator) AS transferred, "
            "mode() WITHIN GROUP (ORDER BY transfer_reason) FILTER (WHERE transferred_to_operator) AS reason "
            "FROM cca_calls WHERE started_at >= :start AND started_at < :now GROUP BY 1 ORDER BY 1"
        ),
        {"start": start, "now": ctx.now},
    )
    out = []
    for r in rows:
        rate = r.transferred / r.calls
        if r.calls < th.scenario_min_calls or rate < th.scenario_transfer_rate:
            continue
        reason = f" Частая причина: {labels.label(labels.TRANSFER_REASONS, r.reason)}." if r.reason else ""
        text = (
            f"Сценарий «{labels.scenario(r.scenario)}» ({r.scenario}): за 24 часа ({ctx.span(start)}) "
            f"переведено {rutext.num(r.transferred)} из {calls_gen(r.calls)} ({pct(rate)}), "
            f"порог — {pct(th.scenario_transfer_rate)}.{reason}"
        )
        link = ctx.journal(start, scenario=None if r.scenario == "unknown" else r.scenario, transferred="yes")
        out.append(
            Firing(
                "scenario_transfer_rate",
                r.scenario,
                rate,
                th.scenario_transfer_rate,
                text,
                link,
                f"«{labels.scenario(r.scenario)}»",
            )
        )
    return out


def response_latency(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """p95 of the response latency (end of customer speech → bot speech) of the calls that ended in
    the window, from call_metrics (ccanalytics.alerts.run_alerts derives missing rows first)."""
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.latency_window_minutes)
    p95 = "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY v) FROM w, unnest(w.{col}) AS x(v)"
    r = _one(
        conn,
        "WITH w AS (SELECT m.* FROM call_metrics m "
        "JOIN cca_calls c ON c.id = m.call_id AND c.started_at = m.started_at "
        "WHERE m.started_at >= CAST(:start AS timestamptz) - interval '3 hours' AND m.started_at < :now "
        "AND c.ended_at >= :start AND c.ended_at < :now) "
        "SELECT (SELECT count(*) FROM w) AS calls, (SELECT count(*) FROM w, unnest(w.response_ms)) AS replies, "
        + ", ".join(
            f"({p95.format(col=c)}) AS {a}"
            for c, a in (("response_ms", "p95"), ("stt_ms", "stt"), ("llm_ms", "llm"), ("tts_ms", "tts"))
        ),
        start=start,
        now=ctx.now,
    )
    if r.replies < th.latency_min_replies or r.p95 is None or r.p95 / 1000 <= th.latency_p95_s:
        return []
    parts = ", ".join(
        f"{n} {rutext.seconds(v / 1000, 2)}"
        for n, v in (("STT", r.stt), ("LLM", r.llm), ("TTS", r.tts))
        if v is not None
    )
    text = (
        f"p95 задержки ответа бота {rutext.seconds(r.p95 / 1000, 2)} "
        f"за {th.latency_window_minutes} мин ({ctx.span(start)}; "
        f"{plural(r.replies, 'ответ', 'ответа', 'ответов')} в {calls_loc(r.calls)}), "
        f"порог — больше {rutext.seconds(th.latency_p95_s, 2)}. "
        f"p95 по компонентам: {parts or 'нет данных'}."
    )
    return [Firing("response_latency", "all", r.p95 / 1000, th.latency_p95_s, text, ctx.journal(start))]


# ------------------------------------------------------------------------------- tool calls
_CALLER = "(SELECT cca_mask_phone(c.caller_id) FROM cca_calls c WHERE c.id = tc.call_id LIMIT 1) AS caller"


def tool_errors(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.tool_errors_window_minutes)
    r = _one(
        conn,
        "WITH f AS (SELECT call_id, tool_name FROM call_tool_calls WHERE created_at >= :start AND created_at < :now "
        "AND NOT success AND NOT coalesce(tool_result::text ~* :rejected, false)) "
        "SELECT (SELECT count(*) FROM f) AS n, (SELECT count(DISTINCT call_id) FROM f) AS calls, "
        "(SELECT coalesce(jsonb_object_agg(tool_name, k), '{}') FROM "
        " (SELECT tool_name, count(*) AS k FROM f GROUP BY 1) t) AS tools",
        start=start,
        now=ctx.now,
        rejected=signals.REJECTED_REGEX,
    )
    if r.n <= th.tool_errors:
        return []
    tools = ", ".join(f"{k} ×{rutext.num(v)}" for k, v in sorted(r.tools.items(), key=lambda kv: (-kv[1], kv[0])))
    text = (
        f"За {th.tool_errors_window_minutes} мин ({ctx.span(start)}) "
        f"{plural(r.n, 'ошибка', 'ошибки', 'ошибок')} вызовов инструментов "
        f"в {calls_loc(r.calls)}: {tools}. Порог — больше {rutext.compact(th.tool_errors)}. "
        "Вероятно, Store API недоступен."
    )
    return [Firing("tool_errors", "all", r.n, th.tool_errors, text, ctx.journal(start), details={"tools": r.tools})]


def prompt_injection(conn: sa.Connection, ctx: Context) -> list[Firing]:
    start = ctx.now - timedelta(minutes=ctx.th.event_lookback_minutes)
    rows = conn.execute(
        sa.text(
            "SELECT tc.call_id::text AS call_id, min(tc.created_at) AS at, count(*) AS n, "
            "(array_agg(tc.tool_name ORDER BY tc.created_at))[1:3] AS tools, "
            "(array_agg(tc.tool_args ORDER BY tc.created_at))[1:3] AS args, "
            f"{_CALLER} FROM call_tool_calls tc "
            "WHERE tc.created_at >= :start AND tc.created_at < :now AND tc.tool_args @? CAST(:path AS jsonpath) "
            "GROUP BY tc.call_id ORDER BY min(tc.created_at)"
        ),
        {"start": start, "now": ctx.now, "path": signals.SUSPICIOUS_ARGS_JSONPATH},
    )
    out = []
    for r in rows:
        # the arguments without the customer's name or phone: alerts leave the admin
        examples = "\n".join(
            f"• {tool} {json.dumps(mask_personal(args), ensure_ascii=False)[:300]}"
            for tool, args in zip(r.tools, r.args, strict=True)
        )
        text = (
            f"Звонок {r.call_id} (клиент {r.caller or 'неизвестен'}, {ctx.local(r.at)}): "
            f"{plural(r.n, 'вызов', 'вызова', 'вызовов')} "
            f"инструментов с ценой ≤ 0 или количеством > {signals.SUSPICIOUS_MAX_QUANTITY}:\n{examples}\n"
            "Проверьте транскрипт и отмените черновик заказа, если он создан."
        )
        out.append(
            Firing("prompt_injection", r.call_id, r.n, None, text, ctx.call(r.call_id), f"звонок {r.call_id[:8]}")
        )
    return out


def validation_anomaly(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(minutes=ctx.th.event_lookback_minutes)
    rows = conn.execute(
        sa.text(
            "SELECT tc.call_id::text AS call_id, min(tc.created_at) AS at, count(*) AS n, "
            "array_agg(DISTINCT tc.tool_name) AS tools, "
            "(array_agg(left(tc.tool_result::text, 200) ORDER BY tc.created_at))[1] AS example, "
            f"{_CALLER} FROM call_tool_calls tc "
            "WHERE tc.created_at >= :start AND tc.created_at < :now AND NOT tc.success "
            "AND tc.tool_result::text ~* :rejected GROUP BY tc.call_id HAVING count(*) > :limit "
            "ORDER BY min(tc.created_at)"
        ),
        {"start": start, "now": ctx.now, "rejected": signals.REJECTED_REGEX, "limit": th.rejected_tool_calls_per_call},
    )
    out = []
    for r in rows:
        text = (
            f"Звонок {r.call_id} (клиент {r.caller or 'неизвестен'}, {ctx.local(r.at)}): Store API отклонил "
            f"{plural(r.n, 'вызов', 'вызова', 'вызовов')} инструментов ({', '.join(sorted(r.tools))}), порог — больше "
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
                f"звонок {r.call_id[:8]}",
            )
        )
    return out


# ------------------------------------------------------------------------------ spend and cost
_WINDOW_SUMS = """
SELECT w.i, coalesce(sum(c.total_cost_usd), 0) AS spend, count(c.total_cost_usd) AS costed
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) WITH ORDINALITY AS w(s, e, i)
LEFT JOIN cca_calls c ON c.started_at >= w.s AND c.started_at < w.e AND c.started_at < :now
GROUP BY w.i ORDER BY w.i
"""


@dataclass(frozen=True)
class _Days:
    """Spend and costed calls: ``same[k]`` = day −k from its midnight to the current time of day
    (k = 0 is today so far); ``full[k]`` = the whole day −k (k ≥ 1; ``full[0]`` is unused)."""

    same: list[tuple[float, int]]
    full: list[tuple[float, int]]


def _days(conn: sa.Connection, ctx: Context) -> _Days:
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
        sa.text(_WINDOW_SUMS), {"starts": [s for s, _ in windows], "ends": [e for _, e in windows], "now": ctx.now}
    ).all()
    sums = [(float(r.spend), int(r.costed)) for r in rows]
    return _Days(sums[: n + 1], sums[n + 1 :])


def abnormal_spend(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Today's spend so far against the average spend of the previous days up to the same time of
    day — once that average has reached ``spend_min_day_fraction`` of a whole day (so the quiet night
    hours never alarm); before that, yesterday's whole day against the days before it."""
    th, n = ctx.th, ctx.th.baseline_days
    d = _days(conn, ctx)
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
        return []
    text = (
        f"Расходы на API {period}: {num(spend)} $ — {pct(spend / base)} от {num(base)} $ {base_text}. "
        f"Порог — больше {pct(th.spend_ratio)}."
    )
    day = ctx.local_date() - timedelta(days=0 if mode == "today" else 1)
    link = f"{ctx.admin_url.rstrip('/')}/calls?{urlencode({'from': day, 'to': day, 'sort': 'cost'})}"
    return [
        Firing("abnormal_spend", "all", spend / base, th.spend_ratio, text, link, details={"mode": mode, "base": base})
    ]


def cost_per_call_jump(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Average cost per call today (at least ``cost_min_calls`` priced calls), else yesterday, against
    the previous ``baseline_days`` whole days."""
    th, n = ctx.th, ctx.th.baseline_days
    d = _days(conn, ctx)

    def cpc(sums: list[tuple[float, int]]) -> float | None:
        calls = sum(c for _, c in sums)
        return sum(s for s, _ in sums) / calls if calls else None

    if d.same[0][1] >= th.cost_min_calls:
        (spend, calls), base, period, day = d.same[0], cpc(d.full[1 : n + 1]), "сегодня", ctx.local_date()
    elif d.full[1][1] >= th.cost_min_calls:
        (spend, calls), base, period = d.full[1], cpc(d.full[2 : n + 2]), "вчера"
        day = ctx.local_date() - timedelta(days=1)
    else:
        return []
    value = spend / calls
    if not base or value <= base * (1 + th.cost_per_call_jump):
        return []
    text = (
        f"Средняя стоимость звонка {period}: {num(value, 4)} $ ({calls_acc(calls)}) против {num(base, 4)} $ "
        f"за {n} дн. до этого: +{pct(value / base - 1)}, порог — +{pct(th.cost_per_call_jump)}."
    )
    link = f"{ctx.admin_url.rstrip('/')}/calls?{urlencode({'from': day, 'to': day, 'sort': 'cost'})}"
    return [Firing("cost_per_call_jump", "all", value, base * (1 + th.cost_per_call_jump), text, link)]


# ---------------------------------------------------------------------------- quality scoring
def quality_drop(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th = ctx.th
    recent = ctx.now - timedelta(hours=th.quality_window_hours)
    r = _one(
        conn,
        "SELECT count(*) FILTER (WHERE started_at >= :recent) AS n_recent, "
        "avg(quality_score) FILTER (WHERE started_at >= :recent) AS recent, "
        "count(*) FILTER (WHERE started_at < :recent) AS n_base, "
        "avg(quality_score) FILTER (WHERE started_at < :recent) AS base "
        "FROM cca_calls WHERE started_at >= :base_start AND started_at < :now AND quality_score IS NOT NULL",
        recent=recent,
        base_start=recent - timedelta(days=th.baseline_days),
        now=ctx.now,
    )
    if r.n_recent < th.quality_min_scored or r.n_base < th.quality_min_scored:
        return []
    if r.recent >= r.base - th.quality_drop:
        return []
    text = (
        f"Средняя оценка качества за {th.quality_window_hours} ч ({ctx.span(recent)}): {num(r.recent)} "
        f"({plural(r.n_recent, 'оценённый звонок', 'оценённых звонка', 'оценённых звонков')}) "
        f"против {num(r.base)} за {th.baseline_days} дн. "
        f"Порог — падение больше {num(th.quality_drop)}."
    )
    link = ctx.journal(recent, sort="quality", order="asc")
    return [Firing("quality_drop", "all", r.recent, r.base - th.quality_drop, text, link)]


def judge_failures(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th = ctx.th
    p = {"start": ctx.now - timedelta(hours=24), "now": ctx.now}
    where = "status = 'failed' AND updated_at >= :start AND updated_at < :now"
    r = _one(
        conn,
        f"SELECT count(*) AS n, (SELECT left(last_error, 300) FROM scoring_queue WHERE {where} "
        f"GROUP BY last_error ORDER BY count(*) DESC LIMIT 1) AS top_error FROM scoring_queue WHERE {where}",
        **p,
    )
    if r.n <= th.judge_failures:
        return []
    cause = f" Частая причина: {mask_phones_in_text(r.top_error)}." if r.top_error else ""
    text = (
        f"За 24 часа LLM-судья не смог оценить {calls_acc(r.n)} после всех попыток, порог — больше "
        f"{rutext.compact(th.judge_failures)}.{cause} Подробнее: ccanalytics score --json."
    )
    return [Firing("judge_failures", "all", r.n, th.judge_failures, text)]


def scoring_backlog(conn: sa.Connection, ctx: Context) -> list[Firing]:
    th, start = ctx.th, ctx.now - timedelta(days=7)
    r = _one(
        conn,
        "SELECT count(*) AS n, min(started_at) AS oldest FROM cca_calls "
        "WHERE started_at >= :start AND started_at < :now AND NOT quality_scored",  # as the exporter's gauge
        start=start,
        now=ctx.now,
    )
    if r.n <= th.scoring_backlog:
        return []
    text = (
        f"Не оценено {calls_acc(r.n)} за 7 дней (самый старый — {ctx.local(r.oldest)}), порог — больше "
        f"{rutext.compact(th.scoring_backlog)}. Проверьте планировщик и доступность LLM-судьи."
    )
    return [Firing("scoring_backlog", "all", r.n, th.scoring_backlog, text)]


def stt_reasks(conn: sa.Connection, ctx: Context) -> list[Firing]:
    """Yesterday's STT re-asks per call against the 14 days before (ccanalytics.quality.problems over
    daily_stats), sent from ``daily_alert_hour`` local time; one event per day."""
    th = ctx.th
    if ctx.now.astimezone(timeutil.zone(ctx.tz)).hour < th.daily_alert_hour:
        return []
    day = ctx.local_date() - timedelta(days=1)
    found = problems.reask_rate(conn.engine, day, factor=th.stt_reask_factor)
    if not found:
        return []
    f = found[0]
    words = conn.execute(
        sa.text(
            "SELECT key FROM quality_findings WHERE kind = 'reasked_word' AND day = :d ORDER BY value DESC, key LIMIT 8"
        ),
        {"d": day},
    ).scalars()
    words_text = ", ".join(words)
    text = (
        f"Вчера ({day.strftime('%d.%m')}) бот переспрашивал клиентов {num(f.value)} раза на звонок против "
        f"{num(f.baseline or 0)} за {problems.BASELINE_DAYS} дн. до этого ({calls_acc(f.details['calls'])}), порог — "
        f"в {rutext.compact(th.stt_reask_factor, 2)} раза выше. "
        + (
            f"Слова перед переспросом: {words_text}."
            if words_text
            else "Проблемные слова появятся после ночного анализа."
        )
    )
    link = f"{ctx.admin_url.rstrip('/')}/calls?{urlencode({'from': day, 'to': day})}"
    return [
        Firing(
            "stt_reasks",
            day.isoformat(),
            f.value,
            (f.baseline or 0) * th.stt_reask_factor,
            text,
            link,
            day.strftime("%d.%m"),
        )
    ]


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
        ("event_lookback_minutes",), prompt_injection,
    ),
    Rule(
        "validation_anomaly", "Аномалия валидации: отклонённые вызовы инструментов", "warning", (TG,), "event",
        "CCAValidationAnomaly", "more than 3 rejected tool calls in one call; one per call",
        ("rejected_tool_calls_per_call", "event_lookback_minutes"), validation_anomaly,
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
