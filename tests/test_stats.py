import math

import numpy as np
import pytest
from scipy import stats

from oarl.lab.testbed.stats import area_under_curve, paired, steps_to_reach, t_interval


def test_t_interval_matches_the_textbook_formula():
    v = [0.61, 0.72, 0.55, 0.70, 0.66]
    iv = t_interval(v)
    half = stats.t.ppf(0.975, 4) * np.std(v, ddof=1) / math.sqrt(5)
    assert iv.mean == pytest.approx(np.mean(v)) and iv.half_width == pytest.approx(half) and iv.n == 5
    assert t_interval([0.5, float("nan")]).n == 1 and math.isnan(t_interval([0.5]).lo)


def test_paired_uses_only_shared_finite_seeds():
    arm = {0: 0.8, 1: 0.7, 2: 0.9, 3: 0.6, 4: 0.75, 9: 1.0}
    base = {0: 0.7, 1: 0.65, 2: 0.7, 3: 0.62, 4: 0.6, 5: 0.1}
    p = paired(arm, base)
    d = np.array([0.1, 0.05, 0.2, -0.02, 0.15])
    assert p.n == 5 and p.wins == 4
    assert p.diff.mean == pytest.approx(d.mean())
    assert p.p_t == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert p.d_z == pytest.approx(d.mean() / d.std(ddof=1))
    same = paired({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0})
    assert same.p_t == 1.0 and same.d_z == 0.0


def test_curve_summaries():
    steps, vals = [0, 10, 20, 30], [0.5, 0.6, 0.8, 0.9]
    assert area_under_curve(steps, vals) == pytest.approx((0.55 + 0.7 + 0.85) / 3)
    assert steps_to_reach(steps, vals, 0.7) == pytest.approx(15.0)
    assert steps_to_reach(steps, vals, 0.4) == 0.0 and steps_to_reach(steps, vals, 0.95) == math.inf
