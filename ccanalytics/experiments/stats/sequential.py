"""Always-valid (sequential) A/B statistics: asymptotic confidence sequences, so results may be looked at
every day without inflating false positives. Import from ``ccanalytics.experiments.abtest``.

Method: the Gaussian-mixture asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy &
Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences" (arXiv:2103.06476),
built on the normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
nonasymptotic confidence sequences" (Ann. Statist. 2021); the form used by GrowthBook (gbstats
``SequentialTwoSidedTTest``) and Eppo for the difference of two means.

For one mean of N observations with variance σ² the paper's half-width is

    sqrt( 2(N·ρ'²σ² + 1) / (N²ρ'²) · ln( sqrt(N·ρ'²σ² + 1) / α ) ).

For the difference d = m_B − m_A we take N = n_A + n_B, se² = s²_A/n_A + s²_B/n_B and σ² = N·se²
(the per-observation variance of the estimator). Writing ρ' = ρ/σ with a scale-free ρ (GrowthBook's
parameterisation) the half-width becomes

    half = se · c(N),   c(N) = sqrt( 2(Nρ² + 1)/(Nρ²) · ln( sqrt(Nρ² + 1) / α ) ).

ρ is chosen so the sequence is narrowest at N = n_tuning (GrowthBook's sequential_tuning_parameter,
default 5000): ρ² = (−2·ln α + ln(1 − 2·ln α)) / n_tuning.

The always-valid p-value is the smallest α whose sequence excludes 0, in closed form (GrowthBook's
reparameterisation of eq. 155 of arXiv:2103.06476v7):

    p = min(1, sqrt(Nρ² + 1) · exp( −z²·Nρ² / (2(Nρ² + 1)) )),   z = d / se,

so p < α exactly when 0 is outside the α-level sequence.

Since c(N)² ≥ 2·ln(1/α) > z²_{1−α/2}, the sequential interval is always wider than the fixed-horizon normal
(Wald) interval on the same data; against the Welch t interval it is wider unless the Welch df is tiny.
"""

from __future__ import annotations

import math

from scipy import special

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.experiments.stats.core import (
    Comparison,
    SampleStats,
    as_number,
    check_probability,
    mean_data_problem,
    not_computable,
    proportion_data_problem,
    proportion_stats,
)

DEFAULT_N_TUNING = 5000


def default_rho(alpha: float, n_tuning: float = DEFAULT_N_TUNING) -> float:
    """Scale-free mixture parameter ρ that makes the confidence sequence tightest at N = n_tuning."""
    alpha = check_probability(alpha, "alpha")
    if as_number(n_tuning, "n_tuning") <= 0:
        raise InvalidArgument(f"n_tuning must be positive, got {n_tuning!r}")
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / n_tuning)


def _rho(alpha: float, rho: float | None, n_tuning: float) -> float:
    if rho is None:
        return default_rho(alpha, n_tuning)
    r = as_number(rho, "rho")
    if r <= 0:
        raise InvalidArgument(f"rho must be positive, got {rho!r}")
    return r


def sequential_critical_value(n_total: float, alpha: float, rho: float) -> float:
    """c(N): the sequence's half-width in units of the standard error after N observations in total."""
    nr2 = n_total * rho * rho
    return math.sqrt(2.0 * (nr2 + 1.0) / nr2 * math.log(math.sqrt(nr2 + 1.0) / alpha))


def always_valid_p_value(z: float, n_total: float, rho: float) -> float:
    nr2 = n_total * rho * rho
    log_p = 0.5 * math.log1p(nr2) - z * z * nr2 / (2.0 * (nr2 + 1.0))
    return math.exp(min(0.0, log_p))


def _sequence(
    test: str,
    a: SampleStats,
    b: SampleStats,
    var_a: float,
    var_b: float,
    alpha: float,
    rho: float,
    metric: str | None,
) -> Comparison:
    ma, mb = a.mean, b.mean
    assert ma is not None and mb is not None  # the callers' data checks passed: both arms are non-empty
    se = math.sqrt(var_a / a.n + var_b / b.n)
    if se == 0:
        return not_computable(test, a, b, alpha, metric, "zero variance in both arms")
    n_total = a.n + b.n
    effect = mb - ma
    z = effect / se
    half = sequential_critical_value(n_total, alpha, rho) * se
    return Comparison(
        metric=metric,
        test=test,
        a_mean=ma,
        b_mean=mb,
        effect=effect,
        relative_effect=effect / ma if ma else None,
        ci=(effect - half, effect + half),
        p_value=always_valid_p_value(z, n_total, rho),
        statistic=z,
        alpha=alpha,
        a=a,
        b=b,
    )


def confidence_sequence_means(
    a: SampleStats,
    b: SampleStats,
    alpha: float = 0.05,
    rho: float | None = None,
    *,
    n_tuning: float = DEFAULT_N_TUNING,
    metric: str | None = None,
) -> Comparison:
    """Always-valid CI and p-value for m_B − m_A (test ``"sequential_means"``)."""
    if not isinstance(a, SampleStats) or not isinstance(b, SampleStats):
        raise InvalidArgument("a and b must be SampleStats")
    alpha = check_probability(alpha, "alpha")
    r = _rho(alpha, rho, n_tuning)
    problem = mean_data_problem(a, b)
    if problem:
        return not_computable("sequential_means", a, b, alpha, metric, problem)
    var_a, var_b = a.variance, b.variance
    assert var_a is not None and var_b is not None  # mean_data_problem passed: both arms have n ≥ 2
    return _sequence("sequential_means", a, b, var_a, var_b, alpha, r, metric)


def sequential_proportions(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    alpha: float = 0.05,
    rho: float | None = None,
    *,
    n_tuning: float = DEFAULT_N_TUNING,
    metric: str | None = None,
) -> Comparison:
    """Always-valid CI and p-value for p_B − p_A (test ``"sequential_proportions"``), with the unpooled
    variance p(1 − p)/n of each arm (as in the Wald interval)."""
    a, b = proportion_stats(successes_a, n_a, successes_b, n_b)
    alpha = check_probability(alpha, "alpha")
    r = _rho(alpha, rho, n_tuning)
    problem = proportion_data_problem(a, b)
    if problem:
        return not_computable("sequential_proportions", a, b, alpha, metric, problem)
    pa, pb = a.mean, b.mean
    assert pa is not None and pb is not None  # proportion_data_problem passed: both arms are non-empty
    return _sequence("sequential_proportions", a, b, pa * (1 - pa), pb * (1 - pb), alpha, r, metric)


def sequential_sample_size(
    var_a: float,
    var_b: float,
    mde_abs: float,
    alpha: float = 0.05,
    power: float = 0.8,
    share_a: float = 0.5,
    rho: float | None = None,
    *,
    n_tuning: float = DEFAULT_N_TUNING,
) -> int:
    """Total observations N (both arms) at which the sequential test has ``power`` at a single look:
    |δ|/se(N) ≥ c(N) + z_power with se(N)² = (var_a/share_a + var_b/(1 − share_a))/N. Earlier looks only add
    power, so this is a conservative planning number."""
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    share_a = check_probability(share_a, "share_a")
    delta = abs(as_number(mde_abs, "mde_abs"))
    if delta == 0:
        raise InvalidArgument("mde_abs must be non-zero")
    v = as_number(var_a, "var_a") / share_a + as_number(var_b, "var_b") / (1.0 - share_a)
    if v <= 0:
        raise InvalidArgument("the variances must not both be zero")
    r = _rho(alpha, rho, n_tuning)
    z_b = float(special.ndtri(power))

    def enough(n: float) -> bool:
        return delta * math.sqrt(n / v) >= sequential_critical_value(n, alpha, r) + z_b

    hi = 2.0
    while not enough(hi):
        hi *= 2.0
        if hi > 1e15:
            raise InvalidArgument("the effect is too small to detect with any realistic sample")
    lo = hi / 2.0
    while hi - lo > 0.5:
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return math.ceil(hi)
