"""An A/B test's results: metrics per variant from sufficient statistics computed in SQL, every
challenger compared with A, the SRM check and a recommendation per challenger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ccanalytics.core import clock
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.db import sqlfiles
from ccanalytics.experiments import abtest
from ccanalytics.experiments.lifecycle import ABTest, get_test

METRICS: dict[str, dict[str, Any]] = {
    "resolved_without_operator": {
        "kind": "proportion",
        "higher_is_better": True,
        "min_effect": 0.03,
        "label": "Доля решённых без оператора",
    },
    "quality_score": {"kind": "mean", "higher_is_better": True, "min_effect": 0.03, "label": "Оценка качества"},
    "cost_per_call": {"kind": "mean", "higher_is_better": False, "min_effect": 0.005, "label": "Стоимость звонка"},
    "duration_seconds": {"kind": "mean", "higher_is_better": False, "min_effect": 10.0, "label": "Длительность звонка"},
}


@dataclass(frozen=True)
class VariantStats:
    variant: str
    label: str
    weight: float
    n: int
    excluded: int
    resolved: int
    quality: Any  # SampleStats
    duration: Any
    cost: Any
    cost_per_resolved_usd: float | None
    response_p95_ms: float | None
    criteria: dict[str, Any]  # criterion -> SampleStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "label": self.label,
            "weight": self.weight,
            "calls": self.n,
            "excluded": self.excluded,
            "resolved_without_operator_pct": round(100 * self.resolved / self.n, 2) if self.n else None,
            "transfer_rate_pct": round(100 * (self.n - self.resolved) / self.n, 2) if self.n else None,
            "avg_quality_score": _mean(self.quality, 4),
            "avg_duration_seconds": _mean(self.duration, 1),
            "avg_cost_per_call_usd": _mean(self.cost, 6),
            "cost_per_resolved_call_usd": self.cost_per_resolved_usd,
            "response_p95_ms": round(self.response_p95_ms, 1) if self.response_p95_ms is not None else None,
            "criteria": {k: _mean(v, 4) for k, v in sorted(self.criteria.items())},
        }


def _mean(stats: Any, digits: int) -> float | None:
    return round(stats.mean, digits) if stats.n else None


@dataclass(frozen=True)
class TestResults:
    test: ABTest
    variants: tuple[VariantStats, ...]
    srm: Any  # SRMResult
    comparisons: dict[str, dict[str, Any]]  # challenger variant -> metric -> Comparison
    criteria_comparisons: dict[str, dict[str, Any]]  # challenger -> criterion -> Comparison
    recommendations: dict[str, Any]  # challenger variant -> Recommendation
    days_running: float
    calls_per_day: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test.to_dict(),
            "days_running": round(self.days_running, 2),
            "calls_per_day": round(self.calls_per_day, 1),
            "variants": [v.to_dict() for v in self.variants],
            "srm": self.srm.to_dict(),
            "comparisons": {ch: {m: c.to_dict() for m, c in ms.items()} for ch, ms in self.comparisons.items()},
            "criteria_comparisons": {
                ch: {m: c.to_dict() for m, c in ms.items()} for ch, ms in self.criteria_comparisons.items()
            },
            "recommendations": {ch: r.to_dict() for ch, r in self.recommendations.items()},
        }


def results(engine: Engine, test: uuid.UUID | str, *, now: datetime | None = None, alpha: float = 0.05) -> TestResults:
    """Per-variant metrics, comparisons of every challenger with A (B − A), the SRM check, and a
    recommendation per challenger — from sufficient statistics computed in SQL."""
    t = get_test(engine, test)
    if t.started_at is None:
        raise InvalidArgument(f"test {t.test_name!r} has not started")
    with engine.connect() as conn:
        # as of ``now`` (a dated report), never past the test's end
        end = min(t.ended_at, now) if t.ended_at and now else t.ended_at or now or clock.now()
        ex = t.exclusions
        rows = {
            r.variant: r
            for r in conn.execute(
                sa.text(sqlfiles.query("ab_results")),
                {
                    "test_id": t.id,
                    "start": t.started_at,
                    "end": end,
                    "min_turns": ex.get("min_turns", 0),
                    "min_duration": ex.get("min_duration_seconds", 0),
                    "transferred_before": ex.get("exclude_transferred_before_seconds", 0),
                },
            )
        }
    variants = []
    for v in t.variants:
        r = rows.get(v.variant)
        if r is None:
            empty = abtest.SampleStats(0, 0.0, 0.0)
            variants.append(VariantStats(v.variant, v.label, v.weight, 0, 0, 0, empty, empty, empty, None, None, {}))
            continue
        criteria = {k: abtest.SampleStats(int(n), float(s), float(sq)) for k, (n, s, sq) in r.criteria.items()}
        resolved_cost = float(r.c_sum_resolved) / r.resolved if r.resolved and r.c_n else None
        variants.append(
            VariantStats(
                v.variant,
                v.label,
                v.weight,
                r.n,
                r.excluded,
                r.resolved,
                abtest.SampleStats(r.q_n, float(r.q_sum), float(r.q_sq)),
                abtest.SampleStats(r.d_n, float(r.d_sum), float(r.d_sq)),
                abtest.SampleStats(r.c_n, float(r.c_sum), float(r.c_sq)),
                round(resolved_cost, 6) if resolved_cost is not None else None,
                r.response_p95_ms,
                criteria,
            )
        )
    total = sum(v.n for v in variants)
    days = max((end - t.started_at).total_seconds() / 86400, 1 / 24)
    srm = abtest.srm_check([v.n for v in variants], [v.weight for v in variants])
    control = variants[0]
    comparisons, by_criterion, recommendations = {}, {}, {}
    for ch in variants[1:]:
        cmp = {
            "resolved_without_operator": abtest.compare_proportions(
                control.resolved, control.n, ch.resolved, ch.n, alpha=alpha, metric="resolved_without_operator"
            ),
            "quality_score": abtest.compare_means(control.quality, ch.quality, alpha=alpha, metric="quality_score"),
            "cost_per_call": abtest.compare_means(control.cost, ch.cost, alpha=alpha, metric="cost_per_call"),
            "duration_seconds": abtest.compare_means(
                control.duration, ch.duration, alpha=alpha, metric="duration_seconds"
            ),
        }
        comparisons[ch.variant] = cmp
        by_criterion[ch.variant] = {
            k: abtest.compare_means(control.criteria[k], ch.criteria[k], alpha=alpha, metric=k)
            for k in sorted(set(control.criteria) & set(ch.criteria))
        }
        specs = [
            (
                abtest.MetricSpec(
                    name,
                    METRICS[name]["kind"],
                    METRICS[name]["higher_is_better"],
                    "goal" if name == t.goal_metric else "guardrail",
                    min_effect=METRICS[name]["min_effect"],
                    label=METRICS[name]["label"],
                ),
                cmp[name],
            )
            for name in METRICS
        ]
        recommendations[ch.variant] = abtest.recommend(
            specs, srm=srm, days_running=days, calls_per_day=total / days, alpha=alpha
        )
    return TestResults(t, tuple(variants), srm, comparisons, by_criterion, recommendations, days, total / days)
