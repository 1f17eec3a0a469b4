"""Fixed-horizon A/B statistics over sufficient statistics: Welch t-test, two-proportion z-test, SRM check,
and multiple-comparison corrections. Pure functions, no database; import them from ``ccanalytics.experiments.abtest``.

Formulas (all two-sided; effects are B − A):

* Welch t-test: t = (m_B − m_A) / se, se² = s²_A/n_A + s²_B/n_B, Welch–Satterthwaite
  df = se⁴ / ((s²_A/n_A)²/(n_A−1) + (s²_B/n_B)²/(n_B−1)); CI = effect ± t_{1−α/2, df}·se.
  Same as scipy.stats.ttest_ind(equal_var=False) and statsmodels CompareMeans.tconfint_diff(usevar="unequal").
* Two proportions: z = (p_B − p_A) / sqrt(p̄(1−p̄)(1/n_A + 1/n_B)) with the pooled p̄ (statsmodels
  proportions_ztest default); Wald CI = effect ± z_{1−α/2}·sqrt(p_A(1−p_A)/n_A + p_B(1−p_B)/n_B)
  (statsmodels confint_proportions_2indep(method="wald")).
* SRM: Pearson chi-square goodness of fit of the observed assignment counts to the normalised weights,
  df = k − 1 (scipy.stats.chisquare); flagged at p < 0.001 by default.
* Holm (1979) step-down and Benjamini–Hochberg (1995) step-up adjusted p-values
  (statsmodels.stats.multitest.multipletests "holm" / "fdr_bh").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

from scipy import special, stats

from ccanalytics.core.errors import InvalidArgument

# A sample variance below this fraction of the mean square is rounding noise of sum_squares − sum²/n
# (catastrophic cancellation in float sums), so the data are treated as constant.
_ZERO_VARIANCE_RTOL = 1e-10


def as_count(value: Any, name: str) -> int:
    """A non-negative integer (int, integral float or Decimal from SQL)."""
    if isinstance(value, bool) or not isinstance(value, Integral | Real | Decimal):
        raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
    if isinstance(value, Integral):
        out = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
        out = int(f)
    if out < 0:
        raise InvalidArgument(f"{name} must be a non-negative integer, got {value!r}")
    return out


def as_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        raise InvalidArgument(f"{name} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise InvalidArgument(f"{name} must be finite, got {value!r}")
    return f


def check_probability(value: Any, name: str) -> float:
    """Validate a level such as alpha or power: a number strictly between 0 and 1."""
    f = as_number(value, name)
    if not 0.0 < f < 1.0:
        raise InvalidArgument(f"{name} must be strictly between 0 and 1, got {value!r}")
    return f


@dataclass(frozen=True)
class SampleStats:
    """Sufficient statistics of one arm for one metric: count, sum and sum of squares (computed in SQL).

    Numbers arriving as ``Decimal`` (PostgreSQL ``numeric``) are converted to float.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = as_count(self.n, "n")
        s = as_number(self.sum, "sum")
        ss = as_number(self.sum_squares, "sum_squares")
        if ss < 0:
            raise InvalidArgument(f"sum_squares must be non-negative, got {ss!r}")
        if n == 0 and (s != 0 or ss != 0):
            raise InvalidArgument("an empty sample (n = 0) must have sum = sum_squares = 0")
        # Cauchy–Schwarz: sum² ≤ n·sum_squares for any real data
        if n > 0 and s * s > n * ss * (1 + 1e-9) + 1e-12:
            raise InvalidArgument(f"inconsistent sufficient statistics: sum² > n·sum_squares (n={n}, sum={s}, ss={ss})")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", s)
        object.__setattr__(self, "sum_squares", ss)

    @classmethod
    def from_values(cls, values: Iterable[float]) -> SampleStats:
        n, s, ss = 0, 0.0, 0.0
        for v in values:
            x = as_number(v, "value")
            n += 1
            s += x
            ss += x * x
        return cls(n, s, ss)

    @classmethod
    def from_proportion(cls, successes: int, n: int) -> SampleStats:
        """0/1 data: sum = sum_squares = successes."""
        k, n = as_count(successes, "successes"), as_count(n, "n")
        if k > n:
            raise InvalidArgument(f"successes ({k}) cannot exceed n ({n})")
        return cls(n, float(k), float(k))

    @property
    def mean(self) -> float | None:
        return self.sum / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (ddof = 1); None when n < 2; 0.0 when it is within rounding of zero."""
        if self.n < 2:
            return None
        var = (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)
        if var <= _ZERO_VARIANCE_RTOL * (self.sum_squares / self.n):
            return 0.0
        return var

    @property
    def std(self) -> float | None:
        var = self.variance
        return None if var is None else math.sqrt(var)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum": self.sum, "sum_squares": self.sum_squares, "mean": self.mean}


@dataclass(frozen=True)
class Comparison:
    """B versus A for one metric. ``computable`` is False (with ``reason``) when the data do not allow the test;
    the means and effect are still filled in where they exist."""

    metric: str | None
    test: str  # "welch_t" | "two_proportion_z" | "sequential_means" | "sequential_proportions"
    a_mean: float | None
    b_mean: float | None
    effect: float | None  # B − A, absolute
    relative_effect: float | None  # (B − A) / A; None when A's mean is 0
    ci: tuple[float, float] | None  # for the absolute effect, at level 1 − alpha
    p_value: float | None
    df: float | None = None
    statistic: float | None = None  # t or z
    alpha: float = 0.05
    computable: bool = True
    reason: str | None = None
    a: SampleStats | None = None  # the inputs, so a decision can recompute (e.g. sequentially)
    b: SampleStats | None = None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha

    @property
    def is_sequential(self) -> bool:
        return self.test.startswith("sequential")

    @property
    def n_a(self) -> int:
        return self.a.n if self.a is not None else 0

    @property
    def n_b(self) -> int:
        return self.b.n if self.b is not None else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        out["a"] = self.a.to_dict() if self.a is not None else None
        out["b"] = self.b.to_dict() if self.b is not None else None
        out["significant"] = self.significant
        return out


def _relative(effect: float | None, a_mean: float | None) -> float | None:
    if effect is None or a_mean is None or a_mean == 0:
        return None
    return effect / a_mean


def not_computable(
    test: str, a: SampleStats, b: SampleStats, alpha: float, metric: str | None, reason: str
) -> Comparison:
    """The result for data the test cannot use: means and effect where they exist, no p-value, a reason."""
    ma, mb = a.mean, b.mean
    effect = mb - ma if ma is not None and mb is not None else None
    return Comparison(
        metric=metric,
        test=test,
        a_mean=ma,
        b_mean=mb,
        effect=effect,
        relative_effect=_relative(effect, ma),
        ci=None,
        p_value=None,
        alpha=alpha,
        computable=False,
        reason=reason,
        a=a,
        b=b,
    )


def mean_data_problem(a: SampleStats, b: SampleStats) -> str | None:
    """Why a comparison of means cannot be made, or None."""
    for label, s in (("A", a), ("B", b)):
        if s.n == 0:
            return f"arm {label} is empty"
    for label, s in (("A", a), ("B", b)):
        if s.n < 2:
            return f"arm {label} has fewer than 2 observations (n={s.n}): variance unknown"
    if a.variance == 0 and b.variance == 0:
        return "zero variance in both arms"
    return None


def _check_stats(a: Any, b: Any) -> None:
    if not isinstance(a, SampleStats) or not isinstance(b, SampleStats):
        raise InvalidArgument("a and b must be SampleStats")


def compare_means(a: SampleStats, b: SampleStats, alpha: float = 0.05, *, metric: str | None = None) -> Comparison:
    """Welch's unequal-variance t-test of B − A with its Welch–Satterthwaite CI."""
    _check_stats(a, b)
    alpha = check_probability(alpha, "alpha")
    problem = mean_data_problem(a, b)
    if problem:
        return not_computable("welch_t", a, b, alpha, metric, problem)
    ma, mb, va, vb = a.mean, b.mean, a.variance, b.variance
    # mean_data_problem passed: both arms have n ≥ 2, so their means and variances exist
    assert ma is not None and mb is not None and va is not None and vb is not None
    wa, wb = va / a.n, vb / b.n
    se = math.sqrt(wa + wb)
    df = (wa + wb) ** 2 / (wa * wa / (a.n - 1) + wb * wb / (b.n - 1))
    effect = mb - ma
    t = effect / se
    p = float(2.0 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(1.0 - alpha / 2.0, df)) * se
    return Comparison(
        metric=metric,
        test="welch_t",
        a_mean=ma,
        b_mean=mb,
        effect=effect,
        relative_effect=_relative(effect, ma),
        ci=(effect - half, effect + half),
        p_value=min(1.0, p),
        df=df,
        statistic=t,
        alpha=alpha,
        a=a,
        b=b,
    )


def proportion_stats(successes_a: int, n_a: int, successes_b: int, n_b: int) -> tuple[SampleStats, SampleStats]:
    """Validated 0/1 sufficient statistics of both arms."""
    return SampleStats.from_proportion(successes_a, n_a), SampleStats.from_proportion(successes_b, n_b)


def proportion_data_problem(a: SampleStats, b: SampleStats) -> str | None:
    """Why two proportions cannot be compared, or None."""
    if a.n == 0 or b.n == 0:
        return f"arm {'A' if a.n == 0 else 'B'} is empty"
    if a.sum + b.sum == 0:
        return "no successes in both arms: zero variance"
    if a.sum + b.sum == a.n + b.n:
        return "only successes in both arms: zero variance"
    return None


def compare_proportions(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alpha: float = 0.05, *, metric: str | None = None
) -> Comparison:
    """Pooled two-proportion z-test (p-value) with the unpooled Wald CI for p_B − p_A."""
    a, b = proportion_stats(successes_a, n_a, successes_b, n_b)
    alpha = check_probability(alpha, "alpha")
    test = "two_proportion_z"
    problem = proportion_data_problem(a, b)
    if problem:
        return not_computable(test, a, b, alpha, metric, problem)
    pa, pb = a.mean, b.mean
    assert pa is not None and pb is not None  # proportion_data_problem passed: both arms are non-empty
    pooled = (a.sum + b.sum) / (a.n + b.n)
    effect = pb - pa
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / a.n + 1.0 / b.n))
    z = effect / se0
    p = float(2.0 * special.ndtr(-abs(z)))
    se = math.sqrt(pa * (1.0 - pa) / a.n + pb * (1.0 - pb) / b.n)
    half = float(special.ndtri(1.0 - alpha / 2.0)) * se
    return Comparison(
        metric=metric,
        test=test,
        a_mean=pa,
        b_mean=pb,
        effect=effect,
        relative_effect=_relative(effect, pa),
        ci=(effect - half, effect + half),
        p_value=min(1.0, p),
        statistic=z,
        alpha=alpha,
        a=a,
        b=b,
    )


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio-mismatch check: do the arms' sizes match the configured traffic weights?"""

    observed: tuple[int, ...]
    expected: tuple[float, ...]  # expected counts, total × normalised weight
    weights: tuple[float, ...]  # normalised to sum 1
    chi2: float | None
    df: int
    p_value: float | None
    mismatch: bool
    threshold: float
    computable: bool = True
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["observed"], out["expected"], out["weights"] = list(self.observed), list(self.expected), list(self.weights)
        return out


def srm_check(observed_counts: Sequence[int], expected_weights: Sequence[float], threshold: float = 0.001) -> SRMResult:
    """Chi-square goodness-of-fit test of the assignment counts against the traffic weights."""
    threshold = check_probability(threshold, "threshold")
    observed = tuple(as_count(c, "observed count") for c in observed_counts)
    raw = [as_number(w, "weight") for w in expected_weights]
    if len(observed) < 2:
        raise InvalidArgument("an SRM check needs at least two arms")
    if len(raw) != len(observed):
        raise InvalidArgument(f"{len(observed)} observed counts but {len(raw)} weights")
    if any(w <= 0 for w in raw):
        raise InvalidArgument(f"every traffic weight must be positive, got {raw}")
    weights = tuple(w / math.fsum(raw) for w in raw)
    total = sum(observed)
    expected = tuple(total * w for w in weights)
    df = len(observed) - 1
    if total == 0:
        return SRMResult(observed, expected, weights, None, df, None, False, threshold, False, "no assignments yet")
    chi2 = math.fsum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p = float(stats.chi2.sf(chi2, df))
    return SRMResult(observed, expected, weights, chi2, df, p, p < threshold, threshold)


_METHODS = {"holm": "holm", "bh": "bh", "fdr_bh": "bh"}


def adjust_p_values(p_values: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Holm or Benjamini–Hochberg adjusted p-values, in input order. ``None`` entries (tests that could not be
    computed) stay None and do not count as tests."""
    if method not in _METHODS:
        raise InvalidArgument(f"unknown p-value adjustment {method!r}; use 'holm' or 'bh'")
    values: list[float | None] = []
    for p in p_values:
        if p is None:
            values.append(None)
            continue
        f = as_number(p, "p-value")
        if not 0.0 <= f <= 1.0:
            raise InvalidArgument(f"p-values must lie in [0, 1], got {p!r}")
        values.append(f)
    # (input position, p) of the computed tests in ascending order of p (stable: ties keep input order)
    ranked = sorted(((i, pv) for i, pv in enumerate(values) if pv is not None), key=lambda item: item[1])
    m = len(ranked)
    out: list[float | None] = [None] * len(values)
    if _METHODS[method] == "holm":
        running = 0.0  # step-down: adjusted p_(k) = max_{j ≤ k} min(1, (m − j + 1)·p_(j))
        for rank, (i, pv) in enumerate(ranked):
            running = max(running, min(1.0, (m - rank) * pv))
            out[i] = running
    else:
        running = 1.0  # step-up: adjusted p_(k) = min_{j ≥ k} min(1, m/j·p_(j))
        for rank in range(m - 1, -1, -1):
            i, pv = ranked[rank]
            running = min(running, m / (rank + 1) * pv)
            out[i] = running
    return out
