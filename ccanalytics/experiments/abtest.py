"""A/B test statistics for prompt versions: pure functions over sufficient statistics, no database.

The database layer computes ``SampleStats(n, sum, sum_squares)`` per arm and metric in SQL; everything here
works on those numbers and returns frozen dataclasses. Data that do not allow a test (an empty arm, one
call, no variance) give a result with ``computable=False`` and a ``reason``; only invalid arguments raise
``ccanalytics.core.errors.InvalidArgument``.

* Fixed horizon — ``compare_means`` (Welch t), ``compare_proportions`` (pooled z, Wald CI), ``srm_check``
  (chi-square), ``adjust_p_values`` (Holm, Benjamini–Hochberg): ``ccanalytics.experiments.stats.core``.
* Planning — ``sample_size_proportions``, ``sample_size_means``, ``minimum_detectable_effect_proportions``,
  ``minimum_detectable_effect_means``: ``ccanalytics.experiments.stats.power``.
* Always-valid (daily peeking is safe) — ``confidence_sequence_means``, ``sequential_proportions``,
  ``sequential_sample_size``: ``ccanalytics.experiments.stats.sequential``.
* Decision — ``MetricSpec``, ``recommend`` → ``Recommendation`` (reason in Russian):
  ``ccanalytics.experiments.stats.decision``.

Each module's docstring gives its formulas and their sources.

    from ccanalytics.experiments.abtest import SampleStats, compare_proportions, srm_check, MetricSpec, recommend
    resolved = compare_proportions(410, 1000, 462, 1000, metric="resolved_without_operator")
    srm = srm_check([1000, 1000], [0.5, 0.5])
    spec = MetricSpec("resolved_without_operator", "proportion", True, "goal", min_effect=0.03,
                      label="Доля решённых без оператора")
    recommend([(spec, resolved)], srm=srm, days_running=10, calls_per_day=200).reason
"""

from __future__ import annotations

from ccanalytics.experiments.stats.core import (
    Comparison,
    SampleStats,
    SRMResult,
    adjust_p_values,
    compare_means,
    compare_proportions,
    srm_check,
)
from ccanalytics.experiments.stats.decision import ACTIONS, MetricSpec, MetricVerdict, Recommendation, recommend
from ccanalytics.experiments.stats.power import (
    minimum_detectable_effect_means,
    minimum_detectable_effect_proportions,
    sample_size_means,
    sample_size_proportions,
)
from ccanalytics.experiments.stats.sequential import (
    DEFAULT_N_TUNING,
    always_valid_p_value,
    confidence_sequence_means,
    default_rho,
    sequential_critical_value,
    sequential_proportions,
    sequential_sample_size,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_N_TUNING",
    "Comparison",
    "MetricSpec",
    "MetricVerdict",
    "Recommendation",
    "SRMResult",
    "SampleStats",
    "adjust_p_values",
    "always_valid_p_value",
    "compare_means",
    "compare_proportions",
    "confidence_sequence_means",
    "default_rho",
    "minimum_detectable_effect_means",
    "minimum_detectable_effect_proportions",
    "recommend",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_critical_value",
    "sequential_proportions",
    "sequential_sample_size",
    "srm_check",
]
