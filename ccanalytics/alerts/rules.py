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

The rules' checks live by what they read: ccanalytics.alerts.callchecks, costchecks and qualitychecks;
what a rule is and sees (``Thresholds``, ``Context``, ``Firing``, ``Rule``) in rulemodel. This module is
the catalogue, and every one of those names stays importable from here (``ccanalytics.alert_rules`` is
an old name of it, ccanalytics.MOVED).
"""

from __future__ import annotations

from collections.abc import Callable

from ccanalytics.alerts.callchecks import (
    high_transfer_rate,
    prompt_injection,
    response_latency,
    scenario_transfer_rate,
    tool_errors,
    validation_anomaly,
)
from ccanalytics.alerts.costchecks import abnormal_spend, cost_per_call_jump
from ccanalytics.alerts.qualitychecks import judge_failures, quality_drop, scoring_backlog, stt_reasks
from ccanalytics.alerts.rulemodel import (
    NO_TENANT,
    Context,
    Firing,
    Rule,
    Thresholds,
    calls_acc,
    calls_gen,
    calls_loc,
    num,
    pct,
    plural,
    tenant_words,
)
from ccanalytics.core import rutext

__all__ = [
    "EMAIL",
    "NO_TENANT",
    "RESOLUTIONS",
    "RULES",
    "RULES_BY_NAME",
    "TG",
    "Context",
    "Firing",
    "Rule",
    "Thresholds",
    "abnormal_spend",
    "calls_acc",
    "calls_gen",
    "calls_loc",
    "cost_per_call_jump",
    "high_transfer_rate",
    "judge_failures",
    "num",
    "pct",
    "plural",
    "prompt_injection",
    "quality_drop",
    "resolution",
    "response_latency",
    "scenario_transfer_rate",
    "scoring_backlog",
    "stt_reasks",
    "tenant_words",
    "tool_errors",
    "validation_anomaly",
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
        "> 200 finished calls of today and yesterday unscored", ("scoring_backlog",), scoring_backlog,
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
        f"Оценка качества догнала звонки: неоценённых за вчера и сегодня не больше {rutext.num(th.scoring_backlog)}."
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
