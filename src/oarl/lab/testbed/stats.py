"""Statistics of a seeded study: t-intervals over seeds, paired comparisons against a baseline arm, and the
curve summaries of issue-level claims (area under the curve, steps to a fraction of the baseline's gain).

Seeds are the unit of replication: every arm of a study runs the same seeds, so an arm is compared with the
baseline seed by seed (a paired t-test, the exact Wilcoxon signed-rank test, and the paired effect size
d_z = mean(diff) / sd(diff)). scipy does the distributions; nothing here is hand-rolled beyond arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` finite values and its two-sided t confidence interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and t-interval over seeds (NaN ignored); the interval is NaN below two values."""
    a = _finite(values)
    if a.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(a.mean())
    if a.size < 2:
        return Interval(m, math.nan, math.nan, 1)
    half = float(stats.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return Interval(m, m - half, m + half, int(a.size))


@dataclass(frozen=True)
class Paired:
    """``arm - baseline`` over the seeds both have: mean difference with its t-interval, p-values, effect size."""

    diff: Interval
    p_t: float  # paired t-test, two-sided
    p_wilcoxon: float  # exact signed-rank test, two-sided (its smallest p with 5 seeds is 0.0625)
    d_z: float  # mean(diff) / sd(diff)
    wins: int  # seeds where the arm is strictly better
    n: int

    def as_dict(self) -> dict:
        return {**asdict(self), "diff": self.diff.as_dict()}


def paired(arm: dict[int, float], baseline: dict[int, float], level: float = 0.95) -> Paired:
    """Compare ``{seed: value}`` of an arm with the baseline's on the seeds both have (finite values only)."""
    seeds = sorted(
        s for s in arm.keys() & baseline.keys() if math.isfinite(arm[s]) and math.isfinite(baseline[s])
    )
    d = np.array([arm[s] - baseline[s] for s in seeds], dtype=float)
    if d.size < 2:
        return Paired(t_interval(d, level), math.nan, math.nan, math.nan, int((d > 0).sum()), int(d.size))
    sd = d.std(ddof=1)
    if sd == 0:  # identical differences: the tests are undefined, the effect is not
        p_t = 1.0 if d[0] == 0 else 0.0
        d_z = 0.0 if d[0] == 0 else math.copysign(math.inf, d[0])
    else:
        p_t = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue)
        d_z = float(d.mean() / sd)
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return Paired(t_interval(d, level), p_t, p_w, d_z, int((d > 0).sum()), int(d.size))


def area_under_curve(steps: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area of ``values`` over ``steps`` divided by the step span: the curve's mean level."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if x.size < 2 or x[-1] == x[0]:
        return float(y.mean()) if y.size else math.nan
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def steps_to_reach(steps: Sequence[float], values: Sequence[float], target: float) -> float:
    """First step at which the curve reaches ``target`` (linear between evaluations); inf if it never does."""
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    for i in range(y.size):
        if y[i] >= target:
            if i == 0 or y[i - 1] >= target:
                return float(x[i])
            return float(x[i - 1] + (target - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    return math.inf


def share_interval(
    arm: dict[int, float], ceiling: dict[int, float], baseline: dict[int, float], level: float = 0.95
) -> Interval:
    """The share of the ceiling's gain an arm reaches, ``mean(x) / mean(y)`` with ``x = arm - baseline`` and
    ``y = ceiling - baseline`` per seed (seeds all three have), and Fieller's interval for that ratio.

    Fieller: the shares ``rho`` whose paired differences ``x - rho y`` have a t statistic within the
    two-sided ``level`` critical value, i.e. ``(x̄ - rho ȳ)² <= t² (Sxx - 2 rho Sxy + rho² Syy) / n`` (sample
    (co)variances). When the ceiling's own gain is not clear of 0 at ``level`` the set is unbounded and
    ``lo``/``hi`` are NaN (the share cannot be bounded on these seeds). Returned as an :class:`Interval` whose
    ``mean`` is the share."""
    seeds = sorted(
        s
        for s in arm.keys() & ceiling.keys() & baseline.keys()
        if all(math.isfinite(v[s]) for v in (arm, ceiling, baseline))
    )
    x = np.array([arm[s] - baseline[s] for s in seeds], dtype=float)
    y = np.array([ceiling[s] - baseline[s] for s in seeds], dtype=float)
    n = x.size
    share = float(x.mean() / y.mean()) if n and y.mean() != 0 else math.nan
    if n < 2:
        return Interval(share, math.nan, math.nan, n)
    t2 = stats.t.ppf(0.5 + level / 2, n - 1) ** 2
    cov = np.cov(x, y, ddof=1)
    sxx, sxy, syy = cov[0, 0], cov[0, 1], cov[1, 1]
    a = y.mean() ** 2 - t2 * syy / n
    b = -2 * (x.mean() * y.mean() - t2 * sxy / n)
    c = x.mean() ** 2 - t2 * sxx / n
    if a <= 0:
        return Interval(share, math.nan, math.nan, n)
    # With a > 0 the set holds x̄/ȳ (its left side is 0 there), so b² - 4ac >= 0 up to rounding.
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    return Interval(share, float((-b - root) / (2 * a)), float((-b + root) / (2 * a)), n)


def pooled_paired(earlier: dict, new_diffs: Sequence[float], level: float = 0.95) -> Paired:
    """:func:`paired` over earlier seeds and new ones, when only the earlier seeds' summary survives.

    ``earlier`` is a :meth:`Paired.as_dict` of ``n1 >= 2`` seeds (its mean and ``level`` t-interval give back the
    seeds' sum and sum of squares exactly); ``new_diffs`` the new seeds' ``arm - baseline``. The mean, interval,
    t-test, ``d_z`` and wins equal those of :func:`paired` on all seeds; the signed-rank test needs every seed's
    value and is NaN."""
    n1, m1 = int(earlier["n"]), float(earlier["diff"]["mean"])
    half1 = (float(earlier["diff"]["hi"]) - float(earlier["diff"]["lo"])) / 2
    s1 = half1 * math.sqrt(n1) / float(stats.t.ppf(0.5 + level / 2, n1 - 1))
    new = _finite(new_diffs)
    n = n1 + new.size
    total = n1 * m1 + float(new.sum())
    squares = (n1 - 1) * s1**2 + n1 * m1**2 + float((new**2).sum())
    m = total / n
    sd = math.sqrt(max(squares - n * m * m, 0.0) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    if sd == 0:
        p_t, d_z = (1.0, 0.0) if m == 0 else (0.0, math.copysign(math.inf, m))
    else:
        p_t = float(2 * stats.t.sf(abs(m / (sd / math.sqrt(n))), n - 1))
        d_z = m / sd
    wins = int(earlier["wins"]) + int((new > 0).sum())
    return Paired(Interval(m, m - half, m + half, n), p_t, math.nan, d_z, wins, n)
