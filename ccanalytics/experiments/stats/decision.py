"""The A/B decision: from per-metric comparisons (goal and guardrail metrics) and the SRM check to one
recommended action with a user-facing reason in Russian. Import from ``ccanalytics.experiments.abtest``.

Rules, in order:
1. SRM mismatch → ``investigate_srm`` (nothing else can be trusted).
2. A guardrail significantly worse, Holm-corrected across guardrails → ``stop_harm``.
3. A goal significantly worse, Holm-corrected across goals → ``keep_a`` (also when another goal improved:
   shipping a known regression of a goal is a business trade-off, not a statistical win).
4. A goal significantly better → ``ship_b``.
5. Otherwise ``keep_running``, with the days still needed to reach ``power`` for each goal's ``min_effect``.

With ``sequential=True`` (the default) fixed-horizon comparisons are recomputed as always-valid confidence
sequences from their sufficient statistics, so the decision may be re-run every day (peeking is safe).
Holm's procedure stays valid for always-valid p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ccanalytics.core import rutext
from ccanalytics.core.errors import InvalidArgument
from ccanalytics.experiments.stats.core import Comparison, SRMResult, adjust_p_values, as_number, check_probability
from ccanalytics.experiments.stats.power import sample_size_means, sample_size_proportions
from ccanalytics.experiments.stats.sequential import (
    DEFAULT_N_TUNING,
    confidence_sequence_means,
    sequential_proportions,
    sequential_sample_size,
)

ACTIONS = ("ship_b", "keep_a", "keep_running", "stop_harm", "investigate_srm")
_KINDS = ("proportion", "mean")
_ROLES = ("goal", "guardrail")


@dataclass(frozen=True)
class MetricSpec:
    """How to judge one metric. ``min_effect`` is the smallest absolute change worth detecting, in the
    metric's units (0.03 = 3 percentage points for a proportion); it sets the sample size to wait for.
    ``label`` is the Russian display name used in the reason."""

    name: str
    kind: str  # "proportion" | "mean"
    higher_is_better: bool
    role: str  # "goal" | "guardrail"
    min_effect: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidArgument("a metric needs a name")
        if self.kind not in _KINDS:
            raise InvalidArgument(f"metric kind must be one of {_KINDS}, got {self.kind!r}")
        if self.role not in _ROLES:
            raise InvalidArgument(f"metric role must be one of {_ROLES}, got {self.role!r}")
        if self.min_effect is not None and not as_number(self.min_effect, "min_effect") > 0:
            raise InvalidArgument(f"min_effect must be positive, got {self.min_effect!r}")

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class MetricVerdict:
    spec: MetricSpec
    comparison: Comparison  # the one the decision used (sequential when asked)
    adjusted_p: float | None  # Holm across the metrics of the same role
    significant: bool
    direction: str  # "better" | "worse" | "none" (not significant) | "unknown" (not computable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.spec.name,
            "role": self.spec.role,
            "adjusted_p": self.adjusted_p,
            "significant": self.significant,
            "direction": self.direction,
            "comparison": self.comparison.to_dict(),
        }


@dataclass(frozen=True)
class Recommendation:
    action: str  # one of ACTIONS
    reason: str  # Russian, for the manager
    drivers: tuple[str, ...]  # names of the metrics that decided it
    expected_days_to_power: float | None  # keep_running only: days still needed (0 = planned sample reached)
    required_sample_size: int | None  # keep_running only: calls (both arms) the slowest goal needs
    sequential: bool
    alpha: float
    verdicts: tuple[MetricVerdict, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "drivers": list(self.drivers),
            "expected_days_to_power": self.expected_days_to_power,
            "required_sample_size": self.required_sample_size,
            "sequential": self.sequential,
            "alpha": self.alpha,
            "metrics": [v.to_dict() for v in self.verdicts],
        }


# ---------------------------------------------------------------- formatting (Russian, decimal comma)


_CALLS = ("звонок", "звонка", "звонков")


def _num(x: float, decimals: int) -> str:
    return rutext.signed(x, decimals)


def _decimals(magnitude: float) -> int:
    if magnitude <= 0 or not math.isfinite(magnitude):
        return 2
    return min(6, max(0, 2 - math.floor(math.log10(magnitude))))


def _p(p: float | None) -> str:
    return rutext.pvalue(p)


def _level(alpha: float) -> str:
    pct = (1 - alpha) * 100
    return f"{pct:.0f}" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}".replace(".", ",")


def _effect_text(spec: MetricSpec, c: Comparison) -> str:
    effect = c.effect
    assert effect is not None  # only computable comparisons are described, and they have an effect
    lo, hi = c.ci if c.ci is not None else (effect, effect)
    if spec.kind == "proportion":
        return f"{_num(effect * 100, 1)} п.п. ({_level(c.alpha)}% ДИ {_num(lo * 100, 1)}…{_num(hi * 100, 1)})"
    d = _decimals(max(abs(effect), abs(lo), abs(hi)))
    rel = f"{_num(c.relative_effect * 100, 1)}%; " if c.relative_effect is not None else ""
    return f"{_num(effect, d)} ({rel}{_level(c.alpha)}% ДИ {_num(lo, d)}…{_num(hi, d)})"


def _describe(v: MetricVerdict, group_size: int) -> str:
    c = v.comparison
    if not c.computable:
        return f"«{v.spec.title}»: пока нельзя оценить ({_reason_ru(c.reason)})"
    p = _p(v.adjusted_p) + (" с поправкой Холма" if group_size > 1 else "")
    return f"«{v.spec.title}»: {_effect_text(v.spec, c)}, {p}"


def _reason_ru(reason: str | None) -> str:
    r = reason or ""
    for prefix, text in (
        ("arm A is empty", "в варианте A нет звонков"),
        ("arm B is empty", "в варианте B нет звонков"),
        ("arm A has fewer", "в варианте A меньше двух звонков"),
        ("arm B has fewer", "в варианте B меньше двух звонков"),
        ("zero variance", "значения не различаются ни в одном варианте"),
        ("no successes", "ни одного успешного исхода в обоих вариантах"),
        ("only successes", "только успешные исходы в обоих вариантах"),
    ):
        if r.startswith(prefix):
            return text
    return "недостаточно данных"


def _mde_text(spec: MetricSpec) -> str:
    mde = spec.min_effect
    assert mde is not None  # only a goal with a min_effect gets a planned sample size (_needed_total)
    if spec.kind == "proportion":
        return f"{_num(mde * 100, 1).lstrip('+')} п.п."
    return _num(mde, _decimals(mde)).lstrip("+")


# ---------------------------------------------------------------- the decision


def _sequentialise(spec: MetricSpec, c: Comparison, alpha: float, n_tuning: float) -> Comparison:
    if c.is_sequential or c.a is None or c.b is None:
        return c
    if spec.kind == "proportion":
        for s in (c.a, c.b):
            if s.sum != s.sum_squares or s.sum != int(s.sum):
                raise InvalidArgument(f"metric {spec.name!r} is declared a proportion but its data are not 0/1")
        return sequential_proportions(
            int(c.a.sum), c.a.n, int(c.b.sum), c.b.n, alpha, n_tuning=n_tuning, metric=spec.name
        )
    return confidence_sequence_means(c.a, c.b, alpha, n_tuning=n_tuning, metric=spec.name)


def _verdicts(pairs: list[tuple[MetricSpec, Comparison]], alpha: float) -> list[MetricVerdict]:
    adjusted = adjust_p_values([c.p_value if c.computable else None for _, c in pairs], "holm")
    out = []
    for (spec, c), p in zip(pairs, adjusted, strict=True):
        significant = p is not None and p < alpha
        if p is None:
            direction = "unknown"
        elif not significant:
            direction = "none"
        else:
            assert c.effect is not None  # a computed p-value comes with an effect
            direction = "better" if (c.effect > 0) == spec.higher_is_better else "worse"
        out.append(MetricVerdict(spec, c, p, significant, direction))
    return out


def _needed_total(v: MetricVerdict, alpha: float, power: float, sequential: bool, n_tuning: float) -> int | None:
    """Calls (both arms) this goal needs to detect its min_effect with the given power, or None."""
    spec, c = v.spec, v.comparison
    if spec.min_effect is None or c.a is None or c.b is None:
        return None
    n_a, n_b = c.a.n, c.b.n
    share = n_a / (n_a + n_b) if n_a and n_b else 0.5
    delta = spec.min_effect if spec.higher_is_better else -spec.min_effect
    if spec.kind == "proportion":
        p = c.a_mean if c.a_mean is not None else c.b_mean
        if p is None or p in (0.0, 1.0):
            return None
        if not 0.0 < p + delta < 1.0:
            delta = -delta
            if not 0.0 < p + delta < 1.0:
                return None
        if sequential:
            q = p + delta
            return sequential_sample_size(p * (1 - p), q * (1 - q), delta, alpha, power, share, n_tuning=n_tuning)
        k = (1 - share) / share
        return math.ceil(sample_size_proportions(p, delta, alpha, power, ratio=k) * (1 + k))
    var_a, var_b = c.a.variance, c.b.variance
    var_a = var_a if var_a is not None else var_b
    var_b = var_b if var_b is not None else var_a
    if var_a is None or var_b is None or var_a + var_b <= 0:  # both None or both set
        return None
    if sequential:
        return sequential_sample_size(var_a, var_b, delta, alpha, power, share, n_tuning=n_tuning)
    return 2 * sample_size_means(math.sqrt((var_a + var_b) / 2), delta, alpha, power)


def _srm_text(srm: SRMResult) -> str:
    names = [chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(srm.observed))]
    got = " / ".join(f"{n} {_num(o, 0).lstrip('+')}" for n, o in zip(names, srm.observed, strict=True))
    exp = " / ".join(f"{n} {_num(e, 0).lstrip('+')}" for n, e in zip(names, srm.expected, strict=True))
    return (
        f"Нарушено соотношение трафика между вариантами (SRM): получено {got}, ожидалось {exp}, {_p(srm.p_value)}. "
        "Результатам нельзя доверять, пока не найдена причина (назначение вариантов, правила исключения звонков, "
        "потеря логов)."
    )


def recommend(
    results: Sequence[tuple[MetricSpec, Comparison]],
    *,
    srm: SRMResult | None,
    days_running: float,
    calls_per_day: float,
    alpha: float = 0.05,
    power: float = 0.8,
    sequential: bool = True,
    n_tuning: float = DEFAULT_N_TUNING,
) -> Recommendation:
    """One action for the test. ``calls_per_day`` is the number of calls entering the test per day (both arms)."""
    alpha, power = check_probability(alpha, "alpha"), check_probability(power, "power")
    days_running, calls_per_day = as_number(days_running, "days_running"), as_number(calls_per_day, "calls_per_day")
    if days_running < 0 or calls_per_day < 0:
        raise InvalidArgument("days_running and calls_per_day must not be negative")
    pairs = _checked_pairs(results)
    if sequential:
        pairs = [(s, _sequentialise(s, c, alpha, n_tuning)) for s, c in pairs]
    guardrails = _verdicts([p for p in pairs if p[0].role == "guardrail"], alpha)
    goals = _verdicts([p for p in pairs if p[0].role == "goal"], alpha)
    verdicts = tuple(goals + guardrails)

    def result(
        action: str,
        reason: str,
        drivers: Sequence[MetricVerdict],
        days: float | None = None,
        needed: int | None = None,
    ) -> Recommendation:
        names = tuple(v.spec.name for v in drivers)
        return Recommendation(action, reason, names, days, needed, sequential, alpha, verdicts)

    if srm is not None and srm.mismatch:
        return result("investigate_srm", _srm_text(srm), [])
    harm = [v for v in guardrails if v.direction == "worse"]
    if harm:
        text = "; ".join(_describe(v, len(guardrails)) for v in harm)
        return result(
            "stop_harm", f"Вариант B значимо ухудшает защитные метрики: {text}. Остановите тест и верните A.", harm
        )
    worse = [v for v in goals if v.direction == "worse"]
    better = [v for v in goals if v.direction == "better"]
    if worse:
        text = "; ".join(_describe(v, len(goals)) for v in worse)
        extra = ""
        if better:
            extra = " При этом лучше: " + "; ".join(_describe(v, len(goals)) for v in better) + "."
        return result("keep_a", f"Вариант B хуже по целевым метрикам: {text}.{extra} Оставьте A.", worse)
    if better:
        text = "; ".join(_describe(v, len(goals)) for v in better)
        tail = " Защитные метрики значимо не ухудшились." if guardrails else ""
        return result("ship_b", f"Вариант B лучше: {text}.{tail} Можно переводить весь трафик на B.", better)

    return result(
        "keep_running", *_keep_running(goals, alpha, power, sequential, n_tuning, days_running, calls_per_day)
    )


def _checked_pairs(results: Sequence[tuple[MetricSpec, Comparison]]) -> list[tuple[MetricSpec, Comparison]]:
    """The (MetricSpec, Comparison) pairs, their metric names unique, at least one of them a goal."""
    pairs = list(results)
    for item in pairs:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], MetricSpec)):
            raise InvalidArgument("results must be (MetricSpec, Comparison) pairs")
        if not isinstance(item[1], Comparison):
            raise InvalidArgument("results must be (MetricSpec, Comparison) pairs")
    names = [s.name for s, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"metric names must be unique, got {names}")
    if not any(s.role == "goal" for s, _ in pairs):
        raise InvalidArgument("a recommendation needs at least one goal metric")
    return pairs


def _slowest_goal(
    goals: Sequence[MetricVerdict],
    alpha: float,
    power: float,
    sequential: bool,
    n_tuning: float,
    days_running: float,
    calls_per_day: float,
) -> tuple[float, int, MetricVerdict] | None:
    """(days still needed, calls needed, the goal) of the goal that needs the longest to reach ``power``;
    None when no goal's wait can be estimated."""
    plan_alpha = alpha / len(goals)  # Bonferroni: the conservative planning value for Holm
    best: tuple[float, int, MetricVerdict] | None = None
    for v in goals:
        needed = _needed_total(v, plan_alpha, power, sequential, n_tuning)
        if needed is None or calls_per_day <= 0:
            continue
        have = v.comparison.n_a + v.comparison.n_b
        exposed = calls_per_day * days_running
        coverage = min(1.0, have / exposed) if exposed > 0 and have > 0 else 1.0  # e.g. only scored calls count
        days = max(0.0, (needed - have) / (calls_per_day * coverage))
        if best is None or days > best[0]:
            best = (days, needed, v)
    return best


def _keep_running(
    goals: Sequence[MetricVerdict],
    alpha: float,
    power: float,
    sequential: bool,
    n_tuning: float,
    days_running: float,
    calls_per_day: float,
) -> tuple[str, Sequence[MetricVerdict], float | None, int | None]:
    """Keep running: the reason, its drivers, and how long until the slowest goal reaches the planned power."""
    status = "; ".join(_describe(v, len(goals)) for v in goals)
    reason = f"Значимой разницы по целевым метрикам пока нет ({status})."
    best = _slowest_goal(goals, alpha, power, sequential, n_tuning, days_running, calls_per_day)
    if best is None:
        why = (
            "нет данных о потоке звонков (calls_per_day = 0)"
            if calls_per_day <= 0
            else "у целевых метрик не задан минимальный значимый эффект (min_effect) или данных пока недостаточно"
        )
        return f"{reason} Срок оценить нельзя: {why}.", goals, None, None
    days, needed, v = best
    days = math.ceil(days * 10) / 10  # shown with one decimal: never round a remaining wait down to 0
    pw = rutext.share(power, 0)
    if days == 0:
        reason += (
            f" Запланированный объём ({rutext.count(round(needed), *_CALLS)}) уже набран: эффект "
            f"{_mde_text(v.spec)} и больше по метрике «{v.spec.title}» маловероятен. "
            "Тест можно остановить и оставить A."
        )
    else:
        reason += (
            f" Чтобы заметить эффект {_mde_text(v.spec)} по метрике «{v.spec.title}» с мощностью {pw}, нужно ещё около "
            f"{_num(days, 1).lstrip('+')} дн. (всего ≈ {rutext.count(round(needed), *_CALLS)} при "
            f"{rutext.count(round(calls_per_day), 'звонке', 'звонках', 'звонках')} в день)."
        )
    return reason, [v], days, needed
