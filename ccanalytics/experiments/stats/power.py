"""Planning a fixed-horizon A/B test: sample size per arm and minimum detectable effect (two-sided, normal
approximation). Import from ``ccanalytics.experiments.abtest``.

Proportions use the closed form for the pooled two-proportion z-test that ``compare_proportions`` runs:
pooled variance under H0, unpooled under H1 (Fleiss, *Statistical Methods for Rates and Proportions*,
without continuity correction; R ``power.prop.test``):

    n_A = ( z_{1−α/2}·sqrt(p̄(1−p̄)(1 + 1/k)) + z_{power}·sqrt(p_A(1−p_A) + p_B(1−p_B)/k) )² / δ²

with p_B = p_A + δ, k = n_B/n_A and p̄ = (p_A + k·p_B)/(1 + k). It equals statsmodels
``samplesize_proportions_2indep_onetail(alternative="two-sided")`` (which ignores the far tail, as here);
statsmodels ``NormalIndPower`` with ``proportion_effectsize`` (Cohen's arcsine h) is a different
approximation and gives slightly different numbers.

Means use n = 2·((z_{1−α/2} + z_{power})·σ/δ)² per arm (statsmodels ``NormalIndPower`` up to the far tail,
which it includes and this omits; ``TTestIndPower`` needs one or two more).
"""

from __future__ import annotations

import math

from scipy import optimize, special

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.experiments.stats.core import as_number, check_probability


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 392.0000000001 from rounding is 392


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(special.ndtri(1.0 - alpha / 2.0)), float(special.ndtri(power))


def _rate(value: float, name: str) -> float:
    f = as_number(value, name)
    if not 0.0 < f < 1.0:
        raise InvalidArgument(f"{name} must be strictly between 0 and 1, got {value!r}")
    return f


def _n_proportions(p_a: float, delta: float, z_a: float, z_b: float, k: float) -> float:
    p_b = p_a + delta
    pooled = (p_a + k * p_b) / (1.0 + k)
    sd_null = math.sqrt(pooled * (1.0 - pooled) * (1.0 + 1.0 / k))
    sd_alt = math.sqrt(p_a * (1.0 - p_a) + p_b * (1.0 - p_b) / k)
    return ((z_a * sd_null + z_b * sd_alt) / delta) ** 2


def sample_size_proportions(
    baseline_rate: float, mde_abs: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> int:
    """Calls needed in arm A (arm B gets ``ratio`` times as many) to detect p_B − p_A = ``mde_abs``.

    ``mde_abs`` is absolute (0.03 = 3 percentage points) and may be negative (a drop)."""
    p_a = _rate(baseline_rate, "baseline_rate")
    delta = as_number(mde_abs, "mde_abs")
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    k = as_number(ratio, "ratio")
    if k <= 0:
        raise InvalidArgument(f"ratio must be positive, got {ratio!r}")
    if delta == 0 or not 0.0 < p_a + delta < 1.0:
        raise InvalidArgument(
            f"baseline_rate + mde_abs must lie strictly between 0 and 1 and differ from it, got {p_a} + {delta}"
        )
    return _ceil(_n_proportions(p_a, delta, *_z(alpha, power), k))


def sample_size_means(std: float, mde_abs: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Observations per arm (equal arms) to detect a difference of means ``mde_abs`` given the standard deviation."""
    sigma, delta = as_number(std, "std"), as_number(mde_abs, "mde_abs")
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    if sigma <= 0:
        raise InvalidArgument(f"std must be positive, got {std!r}")
    if delta == 0:
        raise InvalidArgument("mde_abs must be non-zero")
    z_a, z_b = _z(alpha, power)
    return _ceil(2.0 * ((z_a + z_b) * sigma / delta) ** 2)


def minimum_detectable_effect_means(std: float, n_per_arm: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference of means detectable with ``n_per_arm`` per arm: (z_{1−α/2} + z_power)·σ·sqrt(2/n)."""
    sigma = as_number(std, "std")
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    n = as_number(n_per_arm, "n_per_arm")
    if sigma <= 0 or n <= 0:
        raise InvalidArgument("std and n_per_arm must be positive")
    return sum(_z(alpha, power)) * sigma * math.sqrt(2.0 / n)


def minimum_detectable_effect_proportions(
    baseline_rate: float, n_per_arm: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest absolute increase p_B − p_A that ``n_per_arm`` per arm detects with the given power.

    Inverts the formula of ``sample_size_proportions`` (ratio 1) numerically. Returns ``math.inf`` when even
    p_B → 1 is not detectable with so few calls."""
    p_a = _rate(baseline_rate, "baseline_rate")
    n = as_number(n_per_arm, "n_per_arm")
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    if n <= 0:
        raise InvalidArgument(f"n_per_arm must be positive, got {n_per_arm!r}")
    z_a, z_b = _z(alpha, power)

    def gap(delta: float) -> float:  # positive while n is too small for delta
        return _n_proportions(p_a, delta, z_a, z_b, 1.0) - n

    hi = (1.0 - p_a) * (1.0 - 1e-12)
    if gap(hi) > 0:
        return math.inf
    lo = min(hi, 1e-9)
    if gap(lo) <= 0:
        return lo
    return float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))
