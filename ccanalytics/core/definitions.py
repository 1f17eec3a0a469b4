"""The catalogue: one definition of every figure and threshold shown to people.

Every place a figure appears — daily_stats and the summaries (SQL), the API, the daily report and
its delivery message, the admin dashboard, the database alerts, the Prometheus exporter and the
notebook helpers — takes its definition, its Russian label and its thresholds from here;
tests/test_reconciliation.py recomputes each figure from the calls and checks every place against it.

Figures (over the calls that *started* in a period of business days of CCA_TIMEZONE):

- ``calls``: calls started in the period.
- ``resolved_by_bot``: calls not transferred to an operator; ``resolved_by_bot_pct`` of ``calls``.
- ``transfer_rate``: transferred calls / calls.
- ``first_contact_resolution``: calls resolved by the bot whose customer did not call again within
  ``FCR_WINDOW_DAYS`` (a hidden number cannot be followed: resolved counts) / calls.
- ``quality``: the mean quality score (0–1) of the scored calls; unscored calls are left out and
  counted ("не оценено").
- ``response_p95``: the 95th percentile (PostgreSQL ``percentile_cont``) of every bot reply's
  response latency (end of the customer's speech → start of the bot's speech) of the period's calls.
- ``cost_per_call``: the total cost of the priced calls / the priced calls (a call without a price
  is not counted as free; how many lack one is said beside the figure).
- ``cost_per_resolved_call``: the total cost of the priced calls / the priced calls resolved by the bot
  (what one resolution costs, transfers' cost included).
- ``problem_call``: a call with at least one problem flag (problem-calls report: transferred, low
  quality, slow replies, STT re-asks, tool errors, a failed auto-fail criterion).

Comparisons: a day is compared with ``COMPARISON_DAYS`` days **before** it (the day itself excluded):
for counts their mean per day, for rates the pooled rate of those days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# ------------------------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Threshold:
    key: str
    value: float
    unit: str  # ms | score | share | days | calls
    label: str  # Russian, for people
    governs: str  # what uses it


# p95 latency budget and alert threshold per component (spec: latency budget), milliseconds
LATENCY_BUDGET_MS: dict[str, float] = {"stt": 500.0, "llm": 1000.0, "tts": 400.0, "response": 2000.0}
LATENCY_ALERT_MS: dict[str, float] = {"stt": 700.0, "llm": 1500.0, "tts": 600.0, "response": 2500.0}
RESPONSE_BUDGET_MS = LATENCY_BUDGET_MS["response"]
RESPONSE_ALERT_MS = LATENCY_ALERT_MS["response"]  # a warning alert (Prometheus), "alert" in the daily report
RESPONSE_CRITICAL_MS = 3000.0  # a critical alert (Prometheus and the database's latency rule)
SLOW_CALL_MS = RESPONSE_ALERT_MS  # a call whose own reply p95 is above this is a "slow" problem call
LOW_QUALITY = 0.5  # a score below: manual review, a "low quality" problem call, a failed criterion
GOOD_QUALITY = 0.8  # a score above: green in the journal
# criteria whose failure fails the whole call (overall 0, manual review) unless CCA_QUALITY_AUTO_FAIL
# says otherwise: a wrong price, availability or order status told to a customer is acted on by them
AUTO_FAIL_CRITERIA = ("bot_provided_accurate_info",)
SCENARIO_TRANSFER_RATE = 0.30  # a scenario with at least this share transferred in a day is a problem
SCENARIO_MIN_CALLS = 10  # … when it had at least this many calls
COMPARISON_DAYS = 7  # "a normal day": the days before the day compared
FCR_WINDOW_DAYS = 7  # first-contact resolution looks this far ahead for the customer's next call
PRICED_COMPONENTS = ("stt", "llm", "tts", "telephony")  # they add up to a call's total cost

THRESHOLDS: tuple[Threshold, ...] = (
    *(
        Threshold(f"latency_budget_{k}_ms", v, "ms", f"бюджет задержки p95: {k}", "daily report, charts, daily_stats")
        for k, v in LATENCY_BUDGET_MS.items()
    ),
    *(
        Threshold(f"latency_alert_{k}_ms", v, "ms", f"порог алерта задержки p95: {k}", "alerts, daily report")
        for k, v in LATENCY_ALERT_MS.items()
    ),
    Threshold("response_critical_ms", RESPONSE_CRITICAL_MS, "ms", "критический порог задержки ответа p95", "alerts"),
    Threshold("slow_call_ms", SLOW_CALL_MS, "ms", "медленный звонок: p95 ответов выше", "problem calls"),
    Threshold("low_quality", LOW_QUALITY, "score", "низкая оценка: ниже", "review queue, problem calls, criteria"),
    Threshold("good_quality", GOOD_QUALITY, "score", "хорошая оценка: выше", "journal badges"),
    Threshold("scenario_transfer_rate", SCENARIO_TRANSFER_RATE, "share", "доля переводов по сценарию", "problems"),
    Threshold("scenario_min_calls", SCENARIO_MIN_CALLS, "calls", "минимум звонков сценария", "problems, alerts"),
    Threshold("comparison_days", COMPARISON_DAYS, "days", "дней для сравнения", "daily report, dashboard"),
    Threshold("fcr_window_days", FCR_WINDOW_DAYS, "days", "окно повторного звонка", "first-contact resolution"),
)

# ------------------------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Figure:
    key: str  # the attribute of metrics.Summary that carries it
    label: str  # Russian
    unit: str  # count | pct | score | ms | sec | usd
    higher_is_better: bool | None  # None: neither direction is good or bad


FIGURES: tuple[Figure, ...] = (
    Figure("total_calls", "Звонков", "count", None),
    Figure("resolved_by_bot_pct", "Решено ботом", "pct", True),
    Figure("transferred_to_operator_pct", "Переведено на оператора", "pct", False),
    Figure("avg_quality_score", "Качество (0–1)", "score", True),
    Figure("orders_created", "Заказов оформлено", "count", True),
    Figure("fittings_booked", "Записей на шиномонтаж", "count", True),
    Figure("response_p95_ms", "Задержка ответа p95", "ms", False),
    Figure("avg_cost_per_call_usd", "Стоимость звонка", "usd", False),
    Figure("cost_per_resolved_call_usd", "Стоимость решённого звонка", "usd", False),
    Figure("avg_duration_seconds", "Средняя длительность", "sec", None),
    Figure("first_contact_resolution_pct", "Решено с первого звонка", "pct", True),
)
FIGURES_BY_KEY = {f.key: f for f in FIGURES}


def rate_pct(part: int, whole: int) -> float | None:
    """A share in percent, rounded to 2 decimals; None when there is nothing to divide by."""
    return round(100.0 * part / whole, 2) if whole else None


def cost_per_call(total_usd: float, priced_calls: int) -> float | None:
    """Cost per call: the priced calls' total over the priced calls (None without a priced call)."""
    return round(total_usd / priced_calls, 6) if priced_calls else None


def cost_per_resolved_call(total_usd: float, priced_resolved_calls: int) -> float | None:
    """Cost per resolved call: the priced calls' total over those of them the bot resolved."""
    return round(total_usd / priced_resolved_calls, 6) if priced_resolved_calls else None


def comparison_window(day: date) -> tuple[date, date]:
    """The days a day is compared with: the ``COMPARISON_DAYS`` days before it."""
    return day - timedelta(days=COMPARISON_DAYS), day - timedelta(days=1)


def reference_value(unit: str, window_value: float | None) -> float | None:
    """What a day is compared with: counts as their mean per day of the window, rates as pooled."""
    if window_value is None:
        return None
    return window_value / COMPARISON_DAYS if unit == "count" else window_value


# ------------------------------------------------------------------------------------ reference

DEFINITIONS = {
    "total_calls": "calls that started in the period (business days of CCA_TIMEZONE)",
    "resolved_by_bot_pct": "calls not transferred to an operator / calls",
    "transferred_to_operator_pct": "calls transferred to an operator / calls",
    "avg_quality_score": "mean quality score (0–1) of the scored calls; unscored calls are left out and counted",
    "orders_created": "calls with an order",
    "fittings_booked": "calls with a fitting booking",
    "response_p95_ms": "95th percentile (percentile_cont) of every bot reply's response latency",
    "avg_cost_per_call_usd": "total cost of the priced calls / the priced calls",
    "cost_per_resolved_call_usd": "total cost of the priced calls / the priced calls resolved by the bot",
    "avg_duration_seconds": "mean duration of the calls that have one",
    "first_contact_resolution_pct": (
        f"calls resolved by the bot whose customer did not call again within {FCR_WINDOW_DAYS} days / calls"
    ),
}


def reference_markdown() -> str:
    """The catalogue as the Markdown tables embedded in docs/definitions.md."""
    lines = ["| figure | label | unit | higher is better | definition |", "|---|---|---|---|---|"]
    better = {True: "yes", False: "no", None: "neither"}
    for f in FIGURES:
        lines.append(f"| `{f.key}` | {f.label} | {f.unit} | {better[f.higher_is_better]} | {DEFINITIONS[f.key]} |")
    lines += ["", "| threshold | value | unit | label | used by |", "|---|---|---|---|---|"]
    for t in THRESHOLDS:
        lines.append(f"| `{t.key}` | {t.value:g} | {t.unit} | {t.label} | {t.governs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
