"""ccanalytics.experiments.abtest: statistics checked against scipy, statsmodels and a published R example; no mocks."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from ccanalytics.core.errors import InvalidArgument
from ccanalytics.experiments.abtest import (
    ACTIONS,
    Comparison,
    MetricSpec,
    SampleStats,
    adjust_p_values,
    always_valid_p_value,
    compare_means,
    compare_proportions,
    confidence_sequence_means,
    default_rho,
    minimum_detectable_effect_means,
    minimum_detectable_effect_proportions,
    recommend,
    sample_size_means,
    sample_size_proportions,
    sequential_critical_value,
    sequential_proportions,
    sequential_sample_size,
    srm_check,
)

# Fixed data sets (seeded) reused across tests
_rng = np.random.default_rng(20240501)
A_VALUES = _rng.normal(4.1, 0.9, 57).round(3)
B_VALUES = _rng.normal(4.4, 1.6, 83).round(3)

value_lists = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False).map(lambda x: round(x, 3)), min_size=2, max_size=40
)


# ---------------------------------------------------------------- SampleStats


def test_sample_stats_from_values_matches_numpy():
    s = SampleStats.from_values(A_VALUES)
    assert s.n == len(A_VALUES)
    assert s.mean == pytest.approx(np.mean(A_VALUES), rel=1e-12)
    assert s.variance == pytest.approx(np.var(A_VALUES, ddof=1), rel=1e-9)
    assert s.std == pytest.approx(np.std(A_VALUES, ddof=1), rel=1e-9)


def test_sample_stats_edges_and_sql_types():
    assert SampleStats(0, 0, 0).mean is None and SampleStats(0, 0, 0).variance is None
    assert SampleStats(1, 3.0, 9.0).variance is None  # ddof = 1 needs n ≥ 2
    # PostgreSQL numeric sums arrive as Decimal
    s = SampleStats(3, Decimal("6.0"), Decimal("14.0"))
    assert isinstance(s.sum, float) and s.variance == pytest.approx(1.0)
    # rounding noise of sum_squares − sum²/n on constant data is zero variance
    c = SampleStats.from_values([0.1] * 1000)
    assert c.variance == 0.0
    p = SampleStats.from_proportion(30, 100)
    assert (p.n, p.sum, p.sum_squares) == (100, 30.0, 30.0)
    assert p.variance == pytest.approx(0.3 * 0.7 * 100 / 99)


@pytest.mark.parametrize(
    "args",
    [(-1, 0, 0), (2.5, 1, 1), (True, 1, 1), (0, 1, 1), (3, 1, -1), (3, 6, 1), (2, float("nan"), 1), (2, "1", 1)],
)
def test_sample_stats_rejects_impossible_statistics(args):
    with pytest.raises(InvalidArgument):
        SampleStats(*args)


@pytest.mark.parametrize("args", [(-1, 10), (11, 10), (1, -1), (1.5, 10)])
def test_from_proportion_rejects_bad_counts(args):
    with pytest.raises(InvalidArgument):
        SampleStats.from_proportion(*args)


# ---------------------------------------------------------------- Welch t-test


def test_compare_means_matches_scipy_and_statsmodels():
    a, b = SampleStats.from_values(A_VALUES), SampleStats.from_values(B_VALUES)
    c = compare_means(a, b, alpha=0.05, metric="quality")
    # scipy.stats.ttest_ind(equal_var=False): Welch t, Welch–Satterthwaite df, two-sided p
    ref = scipy.stats.ttest_ind(B_VALUES, A_VALUES, equal_var=False)
    assert c.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.df == pytest.approx(ref.df, rel=1e-9)
    # statsmodels ttest_ind(usevar="unequal") and CompareMeans.tconfint_diff(usevar="unequal") for B − A
    t_sm, p_sm, df_sm = sm_ttest_ind(B_VALUES, A_VALUES, usevar="unequal")
    assert (c.statistic, c.p_value, c.df) == pytest.approx((t_sm, p_sm, df_sm), rel=1e-9)
    for alpha in (0.05, 0.1, 0.01):
        lo, hi = CompareMeans(DescrStatsW(B_VALUES), DescrStatsW(A_VALUES)).tconfint_diff(alpha=alpha, usevar="unequal")
        assert compare_means(a, b, alpha=alpha).ci == pytest.approx((lo, hi), rel=1e-9)
    assert c.effect == pytest.approx(B_VALUES.mean() - A_VALUES.mean(), rel=1e-12)
    assert c.relative_effect == pytest.approx(c.effect / A_VALUES.mean())
    assert c.test == "welch_t" and c.computable and c.reason is None and c.metric == "quality"
    assert c.significant == (c.p_value < 0.05)


def test_compare_means_published_r_sleep_example():
    # R documentation, ?t.test / datasets::sleep: t.test(extra ~ group, data = sleep) prints
    # "t = -1.8608, df = 17.776, p-value = 0.07939", 95% CI -3.3654832 0.2054832 for group 1 − group 2.
    group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    c = compare_means(SampleStats.from_values(group1), SampleStats.from_values(group2))
    assert c.statistic == pytest.approx(1.8608, abs=5e-5)  # B − A, so the sign flips
    assert c.df == pytest.approx(17.776, abs=5e-4)
    assert c.p_value == pytest.approx(0.07939, abs=5e-6)
    assert c.ci == pytest.approx((-0.2054832, 3.3654832), abs=5e-8)
    assert (c.a_mean, c.b_mean) == pytest.approx((0.75, 2.33))


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy on the constant reference arm
def test_compare_means_one_constant_arm_is_computable():
    a = SampleStats.from_values([3.0] * 12)
    b = SampleStats.from_values(B_VALUES[:20])
    c = compare_means(a, b)
    ref = scipy.stats.ttest_ind(B_VALUES[:20], [3.0] * 12, equal_var=False)  # scipy: Welch with one zero variance
    assert c.computable and c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.df == pytest.approx(19.0)


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (SampleStats(0, 0, 0), SampleStats.from_values([1, 2, 3]), "arm A is empty"),
        (SampleStats.from_values([1, 2, 3]), SampleStats(0, 0, 0), "arm B is empty"),
        (SampleStats.from_values([5]), SampleStats.from_values([1, 2, 3]), "arm A has fewer than 2"),
        (SampleStats.from_values([2, 2, 2]), SampleStats.from_values([3, 3]), "zero variance in both arms"),
    ],
)
def test_compare_means_not_computable_has_reason(a, b, reason):
    for fn in (compare_means, confidence_sequence_means):
        c = fn(a, b)
        assert not c.computable and c.reason.startswith(reason)
        assert c.p_value is None and c.ci is None and not c.significant
    c = compare_means(SampleStats.from_values([2, 2, 2]), SampleStats.from_values([3, 3]))
    assert c.effect == 1.0 and c.a_mean == 2.0  # what is known is still reported


def test_invalid_arguments_raise():
    a = SampleStats.from_values([1, 2, 3])
    for alpha in (0, 1, 1.5, -0.1, float("nan")):
        with pytest.raises(InvalidArgument):
            compare_means(a, a, alpha=alpha)
        with pytest.raises(InvalidArgument):
            compare_proportions(1, 10, 2, 10, alpha=alpha)
    with pytest.raises(InvalidArgument):
        compare_means(a, (3, 6, 14))
    with pytest.raises(InvalidArgument):
        compare_proportions(11, 10, 2, 10)
    with pytest.raises(InvalidArgument):
        compare_proportions(1, -10, 2, 10)
    with pytest.raises(InvalidArgument):
        sequential_proportions(3, 2, 1, 2)
    with pytest.raises(InvalidArgument):
        confidence_sequence_means(a, a, rho=-1)


@settings(max_examples=60, deadline=None)
@given(value_lists, value_lists, st.sampled_from([0.01, 0.05, 0.2]))
def test_means_ci_contains_effect_and_swap_negates(xs, ys, alpha):
    a, b = SampleStats.from_values(xs), SampleStats.from_values(ys)
    c, r = compare_means(a, b, alpha), compare_means(b, a, alpha)
    if not c.computable:
        assert c.reason and not r.computable
        return
    assert c.ci[0] <= c.effect <= c.ci[1]
    assert r.effect == pytest.approx(-c.effect, abs=1e-9)
    assert r.ci == pytest.approx((-c.ci[1], -c.ci[0]), abs=1e-9)
    assert r.p_value == pytest.approx(c.p_value, rel=1e-9, abs=1e-300)
    assert (c.ci[0] > 0 or c.ci[1] < 0) == (c.p_value < alpha) or math.isclose(c.p_value, alpha, rel_tol=1e-6)


# ---------------------------------------------------------------- two proportions


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb"), [(410, 1000, 462, 1000), (83, 86, 90, 93), (5, 40, 0, 35), (120, 900, 95, 1100)]
)
def test_compare_proportions_matches_statsmodels(xa, na, xb, nb):
    c = compare_proportions(xa, na, xb, nb)
    # statsmodels proportions_ztest: pooled variance (prop_var=False), two-sided; first sample = B
    z, p = proportions_ztest([xb, xa], [nb, na])
    assert c.statistic == pytest.approx(z, rel=1e-9)
    assert c.p_value == pytest.approx(p, rel=1e-9)
    # statsmodels confint_proportions_2indep(method="wald", compare="diff") for p_B − p_A
    lo, hi = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff", alpha=0.05)
    assert c.ci == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
    assert c.effect == pytest.approx(xb / nb - xa / na)
    assert c.test == "two_proportion_z" and c.df is None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((0, 0, 3, 10), "arm A is empty"),
        ((3, 10, 0, 0), "arm B is empty"),
        ((0, 10, 0, 12), "no successes"),
        ((10, 10, 7, 7), "only successes"),
    ],
)
def test_compare_proportions_not_computable(args, reason):
    for fn in (compare_proportions, sequential_proportions):
        c = fn(*args)
        assert not c.computable and c.reason.startswith(reason) and c.p_value is None


def test_relative_effect_none_when_a_is_zero():
    c = compare_proportions(0, 50, 5, 50)
    assert c.computable and c.relative_effect is None and c.effect == pytest.approx(0.1)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.floats(0, 1), st.floats(0, 1))
def test_proportions_ci_contains_effect_and_swap_negates(na, nb, fa, fb):
    xa, xb = round(fa * na), round(fb * nb)
    c, r = compare_proportions(xa, na, xb, nb), compare_proportions(xb, nb, xa, na)
    if not c.computable:
        return
    assert c.ci[0] <= c.effect <= c.ci[1]
    assert r.effect == pytest.approx(-c.effect, abs=1e-12)
    assert r.p_value == pytest.approx(c.p_value, rel=1e-9, abs=1e-300)


# ---------------------------------------------------------------- SRM


@pytest.mark.parametrize(
    ("counts", "weights"),
    [([5120, 4700], [0.5, 0.5]), ([1000, 1000], [1, 1]), ([300, 610, 95], [0.3, 0.6, 0.1]), ([52, 48], [50, 50])],
)
def test_srm_matches_scipy_chisquare(counts, weights):
    r = srm_check(counts, weights)
    total, wsum = sum(counts), sum(weights)
    expected = [total * w / wsum for w in weights]
    ref = scipy.stats.chisquare(counts, expected)  # scipy.stats.chisquare: Pearson goodness of fit, df = k − 1
    assert r.chi2 == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.expected == pytest.approx(tuple(expected))
    assert r.mismatch == (ref.pvalue < 0.001) and r.df == len(counts) - 1
    assert sum(r.weights) == pytest.approx(1.0)


def test_srm_flags_mismatch_and_handles_no_data():
    assert srm_check([5120, 4700], [0.5, 0.5]).mismatch  # p ≈ 2e-5
    assert not srm_check([5020, 4980], [0.5, 0.5]).mismatch
    empty = srm_check([0, 0], [0.5, 0.5])
    assert not empty.computable and empty.reason == "no assignments yet" and empty.p_value is None
    assert not empty.mismatch


@pytest.mark.parametrize(
    ("counts", "weights", "kw"),
    [
        ([10, 10], [0.5, -0.5], {}),
        ([10, 10], [0.5, 0.0], {}),
        ([10, 10, 10], [0.5, 0.5], {}),
        ([10], [1.0], {}),
        ([10, -1], [0.5, 0.5], {}),
        ([10, 10], [0.5, 0.5], {"threshold": 0}),
    ],
)
def test_srm_invalid_arguments(counts, weights, kw):
    with pytest.raises(InvalidArgument):
        srm_check(counts, weights, **kw)


# ---------------------------------------------------------------- multiple comparisons


@pytest.mark.parametrize(("method", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh"), ("fdr_bh", "fdr_bh")])
def test_adjust_p_values_matches_statsmodels(method, sm_method):
    ps = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9]
    # statsmodels.stats.multitest.multipletests(..., method="holm" / "fdr_bh")
    assert adjust_p_values(ps, method) == pytest.approx(list(multipletests(ps, method=sm_method)[1]), rel=1e-12)


@settings(max_examples=25, deadline=None)  # multipletests costs ~30 ms a call
@given(st.lists(st.floats(0, 1), min_size=1, max_size=25), st.sampled_from(["holm", "bh"]))
def test_adjust_p_values_property_vs_statsmodels(ps, method):
    ref = multipletests(ps, method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    assert adjust_p_values(ps, method) == pytest.approx(list(ref), rel=1e-9, abs=1e-15)


def test_adjust_p_values_skips_none_and_validates():
    assert adjust_p_values([0.01, None, 0.04], "holm") == pytest.approx([0.02, None, 0.04])
    assert adjust_p_values([], "bh") == []
    with pytest.raises(InvalidArgument):
        adjust_p_values([0.1], "bonferroni-ish")
    with pytest.raises(InvalidArgument):
        adjust_p_values([1.2], "holm")


# ---------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("p", "delta", "ratio"),
    [(0.40, 0.05, 1.0), (0.10, 0.02, 1.0), (0.60, -0.08, 1.0), (0.30, 0.05, 2.0), (0.30, 0.05, 0.5)],
)
def test_sample_size_proportions_matches_statsmodels_closed_form(p, delta, ratio):
    n = sample_size_proportions(p, delta, alpha=0.05, power=0.8, ratio=ratio)
    # statsmodels samplesize_proportions_2indep_onetail: the same pooled-null / unpooled-alternative normal
    # formula (far tail ignored). Its sample 1 is A here: prop2 = p_B, diff = p_A − p_B, nobs2 = ratio·nobs1.
    ref = samplesize_proportions_2indep_onetail(
        diff=-delta, prop2=p + delta, power=0.8, ratio=ratio, alpha=0.05, alternative="two-sided"
    )
    assert n == math.ceil(ref)

    # statsmodels power_proportions_2indep (pooled z-test, both tails): n reaches 80%, n − 1 does not
    def pw(k):
        return power_proportions_2indep(-delta, p + delta, k, ratio=ratio, alpha=0.05, return_results=False)

    assert pw(n) >= 0.8 > pw(n - 1)


def test_sample_size_proportions_vs_arcsine_approximation():
    # statsmodels NormalIndPower + proportion_effectsize (Cohen's h, arcsine): a different approximation.
    # Near p = 0.5 the two agree; for rare outcomes ours (the formula of the z-test we run) asks for more.
    def arcsine(p, d):
        return NormalIndPower().solve_power(effect_size=proportion_effectsize(p + d, p), alpha=0.05, power=0.8)

    assert sample_size_proportions(0.40, 0.05) == math.ceil(arcsine(0.40, 0.05))  # 1534
    assert sample_size_proportions(0.05, 0.03) == 1059 > math.ceil(arcsine(0.05, 0.03)) == 1047
    assert abs(sample_size_proportions(0.10, 0.05) / arcsine(0.10, 0.05) - 1) < 0.02


@pytest.mark.parametrize(
    ("sd", "delta", "alpha", "power"), [(1.0, 0.2, 0.05, 0.8), (45.0, 10.0, 0.05, 0.9), (0.18, 0.03, 0.01, 0.8)]
)
def test_sample_size_means_matches_normal_ind_power(sd, delta, alpha, power):
    n = sample_size_means(sd, delta, alpha, power)
    # statsmodels NormalIndPower.solve_power (normal approximation, both tails, so a hair smaller)
    ref = NormalIndPower().solve_power(effect_size=delta / sd, alpha=alpha, power=power, ratio=1.0)
    assert ref <= n < ref + 1
    assert minimum_detectable_effect_means(sd, n, alpha, power) <= delta


@pytest.mark.parametrize(("p", "n"), [(0.40, 1000), (0.10, 5000), (0.85, 400)])
def test_mde_proportions_inverts_sample_size(p, n):
    mde = minimum_detectable_effect_proportions(p, n)
    # statsmodels power_proportions_2indep at the MDE: 80% (plus the negligible far tail)
    power = power_proportions_2indep(mde, p, n, ratio=1, alpha=0.05, return_results=False)
    assert power == pytest.approx(0.8, abs=1e-4)
    assert sample_size_proportions(p, mde) in (n, n + 1)


def test_planning_invalid_arguments():
    assert minimum_detectable_effect_proportions(0.5, 3) == math.inf
    for call in (
        lambda: sample_size_proportions(0, 0.1),
        lambda: sample_size_proportions(0.5, 0.6),
        lambda: sample_size_proportions(0.5, 0),
        lambda: sample_size_proportions(0.5, 0.1, ratio=0),
        lambda: sample_size_proportions(0.5, 0.1, power=1),
        lambda: sample_size_means(0, 1),
        lambda: sample_size_means(1, 0),
        lambda: minimum_detectable_effect_proportions(0.5, 0),
    ):
        with pytest.raises(InvalidArgument):
            call()


# ---------------------------------------------------------------- sequential


def test_default_rho_is_tightest_at_the_tuning_sample_size():
    from scipy.optimize import minimize_scalar

    for alpha, n_star in ((0.05, 5000), (0.01, 2000), (0.1, 20000)):
        best = minimize_scalar(
            lambda r, a=alpha, n=n_star: sequential_critical_value(n, a, r), bounds=(1e-5, 5), method="bounded"
        )
        assert sequential_critical_value(n_star, alpha, default_rho(alpha, n_star)) <= best.fun * (1 + 1e-4)


def test_sequential_p_value_is_dual_to_the_sequence():
    a, b = SampleStats.from_values(A_VALUES), SampleStats.from_values(B_VALUES)
    c = confidence_sequence_means(a, b, alpha=0.05)
    assert c.test == "sequential_means" and c.df is None
    # the smallest alpha whose sequence (same rho) excludes 0 is the always-valid p-value
    rho = default_rho(0.05)
    se = c.effect / c.statistic
    n = a.n + b.n
    assert c.effect - sequential_critical_value(n, c.p_value, rho) * se == pytest.approx(0, abs=1e-9)
    assert always_valid_p_value(0.0, n, rho) == 1.0


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 20000), st.integers(1, 20000), st.floats(0, 1), st.floats(0, 1), st.sampled_from([0.01, 0.05, 0.1])
)
def test_sequential_proportions_always_wider_than_fixed(na, nb, fa, fb, alpha):
    xa, xb = round(fa * na), round(fb * nb)
    fixed, seq = compare_proportions(xa, na, xb, nb, alpha), sequential_proportions(xa, na, xb, nb, alpha)
    if not (fixed.computable and seq.computable):
        return
    assert seq.ci[0] < fixed.ci[0] and seq.ci[1] > fixed.ci[1]
    assert seq.ci[0] <= seq.effect <= seq.ci[1]


@settings(max_examples=60, deadline=None)
@given(
    value_lists.filter(lambda v: len(v) >= 5),
    value_lists.filter(lambda v: len(v) >= 5),
    st.sampled_from([0.01, 0.05, 0.1]),
)
def test_sequential_means_wider_than_welch(xs, ys, alpha):
    # c(N) ≥ min over N of c(N) ≈ 3.04 at alpha = 0.05 with the default rho, and Welch df ≥ min(n) − 1 = 4 here,
    # so t_{0.975, df} ≤ 2.78 < c(N). (For df ≤ 3 a Welch interval can be wider than the asymptotic sequence.)
    a, b = SampleStats.from_values(xs), SampleStats.from_values(ys)
    fixed, seq = compare_means(a, b, alpha), confidence_sequence_means(a, b, alpha)
    if not fixed.computable:
        assert not seq.computable
        return
    assert seq.ci[1] - seq.ci[0] > fixed.ci[1] - fixed.ci[0]
    assert seq.p_value >= fixed.p_value * 0.999 or seq.p_value == 1.0


def test_peeking_simulation_sequential_keeps_alpha_naive_does_not():
    # A/A test, 0/1 outcome, a look after every day for 30 days: the naive pooled z-test at every look
    # inflates false positives well beyond alpha; the always-valid test stays near or below it.
    rng = np.random.default_rng(7)
    sims, days, per_day, p, alpha = 400, 30, 60, 0.3, 0.05
    xa = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    xb = rng.binomial(per_day, p, size=(sims, days)).cumsum(axis=1)
    naive = seq = 0
    for s in range(sims):
        looks = [(int(xa[s, d]), per_day * (d + 1), int(xb[s, d]), per_day * (d + 1)) for d in range(days)]
        naive += any(compare_proportions(*look, alpha).significant for look in looks)
        seq += any(sequential_proportions(*look, alpha).significant for look in looks)
    naive_rate, seq_rate = naive / sims, seq / sims
    assert naive_rate > 2 * alpha
    assert seq_rate <= alpha + 0.02
    assert seq_rate < naive_rate / 3


def test_sequential_sample_size_exceeds_fixed():
    fixed_total = 2 * sample_size_proportions(0.4, 0.05)
    seq_total = sequential_sample_size(0.4 * 0.6, 0.45 * 0.55, 0.05)
    assert seq_total > fixed_total
    # at the returned size the planned effect sits at the sequential boundary + z_power
    se = math.sqrt((0.24 / 0.5 + 0.2475 / 0.5) / seq_total)
    z_power = scipy.stats.norm.ppf(0.8)
    assert 0.05 / se >= sequential_critical_value(seq_total, 0.05, default_rho(0.05)) + z_power
    with pytest.raises(InvalidArgument):
        sequential_sample_size(0, 0, 0.05)


# ---------------------------------------------------------------- recommendation

GOAL = MetricSpec("resolved", "proportion", True, "goal", min_effect=0.03, label="Доля решённых без оператора")
QUALITY = MetricSpec("quality", "mean", True, "goal", min_effect=0.05, label="Оценка качества")
TRANSFER = MetricSpec("transfer", "proportion", False, "guardrail", label="Доля переводов на оператора")
COST = MetricSpec("cost", "mean", False, "guardrail", label="Стоимость звонка")
OK_SRM = srm_check([4000, 4000], [0.5, 0.5])


def _means(mean_a, mean_b, sd, n, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n)
    b = rng.normal(0, 1, n)
    a = (a - a.mean()) / a.std(ddof=1) * sd + mean_a
    b = (b - b.mean()) / b.std(ddof=1) * sd + mean_b
    return SampleStats.from_values(a), SampleStats.from_values(b)


def test_recommend_investigate_srm_first():
    bad = srm_check([5120, 4700], [0.5, 0.5])
    harm = compare_proportions(400, 4000, 700, 4000)
    rec = recommend(
        [(GOAL, compare_proportions(1600, 4000, 2000, 4000)), (TRANSFER, harm)],
        srm=bad,
        days_running=7,
        calls_per_day=1400,
    )
    assert rec.action == "investigate_srm"
    assert "SRM" in rec.reason and "5\u202f120" in rec.reason and rec.expected_days_to_power is None


def test_recommend_stop_harm_on_guardrail():
    goal = compare_proportions(1600, 4000, 1900, 4000)  # better
    transfer = compare_proportions(400, 4000, 600, 4000)  # more transfers: worse
    cost_a, cost_b = _means(0.10, 0.10, 0.03, 4000)
    rec = recommend(
        [(GOAL, goal), (TRANSFER, transfer), (COST, compare_means(cost_a, cost_b))],
        srm=OK_SRM,
        days_running=7,
        calls_per_day=1150,
    )
    assert rec.action == "stop_harm" and rec.drivers == ("transfer",)
    assert "Доля переводов на оператора" in rec.reason and "+5,0 п.п." in rec.reason and "поправкой Холма" in rec.reason
    verdict = {v.spec.name: v for v in rec.verdicts}
    assert verdict["transfer"].direction == "worse" and verdict["cost"].direction == "none"
    # the Holm-adjusted p of the guardrail group, from the sequential comparisons
    seq_ps = [verdict["transfer"].comparison.p_value, verdict["cost"].comparison.p_value]
    assert verdict["transfer"].adjusted_p == pytest.approx(multipletests(seq_ps, method="holm")[1][0])


def test_recommend_ship_b_reason_in_russian():
    rec = recommend(
        [(GOAL, compare_proportions(1600, 4000, 1880, 4000)), (TRANSFER, compare_proportions(400, 4000, 395, 4000))],
        srm=OK_SRM,
        days_running=7,
        calls_per_day=1150,
    )
    assert rec.action == "ship_b" and rec.drivers == ("resolved",)
    assert rec.sequential and rec.verdicts[0].comparison.test == "sequential_proportions"
    # e.g. "Вариант B лучше: «Доля решённых без оператора»: +7,0 п.п. (95% ДИ +3,6…+10,4), p < 0,001. …"
    assert rec.reason.startswith("Вариант B лучше: «Доля решённых без оператора»: +7,0 п.п. (95% ДИ +")
    assert "p < 0,001" in rec.reason and "Защитные метрики значимо не ухудшились" in rec.reason
    json.dumps(rec.to_dict(), ensure_ascii=False)


def test_recommend_keep_a_when_goal_worse():
    qa, qb = _means(0.80, 0.74, 0.15, 3000)
    rec = recommend([(QUALITY, compare_means(qa, qb))], srm=None, days_running=10, calls_per_day=600)
    assert rec.action == "keep_a" and rec.drivers == ("quality",)
    assert "Вариант B хуже" in rec.reason and "−0,060" in rec.reason and "−7,5%" in rec.reason


def test_recommend_keep_running_with_expected_days():
    rec = recommend([(GOAL, compare_proportions(410, 1000, 430, 1000))], srm=OK_SRM, days_running=5, calls_per_day=400)
    assert rec.action == "keep_running" and rec.drivers == ("resolved",)
    # sequential planning: total calls at which the always-valid test has 80% power for +3 п.п. from 41%
    needed = sequential_sample_size(0.41 * 0.59, 0.44 * 0.56, 0.03, 0.05, 0.8, 0.5)
    assert rec.required_sample_size == needed
    assert rec.expected_days_to_power == pytest.approx((needed - 2000) / 400, abs=0.1)
    assert "нужно ещё около" in rec.reason and "3,0 п.п." in rec.reason
    # fixed-horizon planning needs fewer calls (and is only valid with a single look)
    fixed = recommend(
        [(GOAL, compare_proportions(410, 1000, 430, 1000))],
        srm=OK_SRM,
        days_running=5,
        calls_per_day=400,
        sequential=False,
    )
    assert fixed.required_sample_size == 2 * sample_size_proportions(0.41, 0.03) < needed
    assert fixed.expected_days_to_power < rec.expected_days_to_power


def test_recommend_keep_running_when_planned_sample_reached_or_unknown():
    rec = recommend(
        [(GOAL, compare_proportions(8200, 20000, 8250, 20000))], srm=OK_SRM, days_running=50, calls_per_day=800
    )
    assert rec.action == "keep_running" and rec.expected_days_to_power == 0.0
    assert "уже набран" in rec.reason
    no_mde = MetricSpec("resolved", "proportion", True, "goal")
    rec = recommend([(no_mde, compare_proportions(410, 1000, 430, 1000))], srm=None, days_running=5, calls_per_day=400)
    assert rec.action == "keep_running" and rec.expected_days_to_power is None and "min_effect" in rec.reason
    empty = recommend([(GOAL, compare_proportions(0, 0, 0, 0))], srm=None, days_running=0, calls_per_day=400)
    assert empty.action == "keep_running" and "нет звонков" in empty.reason


def test_recommend_sequential_is_more_conservative_than_fixed():
    # a borderline result: significant at a single fixed look, not for the always-valid sequence
    data = [(GOAL, compare_proportions(410, 1000, 462, 1000))]
    assert recommend(data, srm=None, days_running=5, calls_per_day=400, sequential=False).action == "ship_b"
    assert recommend(data, srm=None, days_running=5, calls_per_day=400).action == "keep_running"


def test_recommend_invalid_arguments():
    c = compare_proportions(410, 1000, 430, 1000)
    for kwargs in (
        {"days_running": -1, "calls_per_day": 1},
        {"days_running": 1, "calls_per_day": -5},
        {"days_running": 1, "calls_per_day": 1, "alpha": 2},
    ):
        with pytest.raises(InvalidArgument):
            recommend([(GOAL, c)], srm=None, **kwargs)
    with pytest.raises(InvalidArgument):
        recommend([(TRANSFER, c)], srm=None, days_running=1, calls_per_day=1)  # no goal
    with pytest.raises(InvalidArgument):
        recommend([(GOAL, c), (GOAL, c)], srm=None, days_running=1, calls_per_day=1)  # duplicate metric
    with pytest.raises(InvalidArgument):
        MetricSpec("x", "ratio", True, "goal")
    with pytest.raises(InvalidArgument):
        MetricSpec("x", "mean", True, "primary")
    with pytest.raises(InvalidArgument):
        MetricSpec("x", "mean", True, "goal", min_effect=0)
    a, b = _means(1.0, 1.1, 0.5, 100)
    with pytest.raises(InvalidArgument):  # continuous data declared as a proportion
        recommend([(GOAL, compare_means(a, b))], srm=None, days_running=1, calls_per_day=1)


def test_result_dataclasses_serialise():
    c = compare_means(SampleStats.from_values(A_VALUES), SampleStats.from_values(B_VALUES), metric="quality")
    d = json.loads(json.dumps(c.to_dict()))
    assert d["metric"] == "quality" and d["ci"] == list(c.ci) and d["significant"] == c.significant
    assert d["a"]["n"] == len(A_VALUES)
    s = json.loads(json.dumps(srm_check([10, 12], [1, 1]).to_dict()))
    assert s["observed"] == [10, 12] and s["expected"] == [11.0, 11.0]
    assert isinstance(c, Comparison) and set(ACTIONS) == {
        "ship_b",
        "keep_a",
        "keep_running",
        "stop_harm",
        "investigate_srm",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.p_value = 0.0  # type: ignore[misc]
