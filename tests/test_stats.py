import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from oarl.lab.testbed.stats import area_under_curve, paired, share_interval, steps_to_reach, t_interval


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


@given(
    st.lists(st.tuples(st.floats(-0.1, 0.1), st.floats(0.02, 0.12)), min_size=3, max_size=8),
)
@settings(max_examples=60, deadline=None)
def test_share_interval_is_the_set_of_shares_a_paired_t_test_keeps(pairs):
    """Fieller's interval against a scan: a share rho is inside iff the paired t-test of x - rho*y keeps it."""
    base = {s: 0.5 for s in range(len(pairs))}
    arm = {s: 0.5 + x for s, (x, _) in enumerate(pairs)}
    ceil = {s: 0.5 + y for s, (_, y) in enumerate(pairs)}
    iv = share_interval(arm, ceil, base)
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    assert iv.mean == pytest.approx(x.mean() / y.mean(), rel=1e-6, abs=1e-9)
    n, tcrit = len(pairs), stats.t.ppf(0.975, len(pairs) - 1)

    def kept(rho: float) -> bool:
        d = x - rho * y
        sd = d.std(ddof=1)
        return abs(d.mean()) <= tcrit * sd / np.sqrt(n) + 1e-9

    if not np.isfinite(iv.lo):  # unbounded: the ceiling's own gain is not clear of 0
        assert abs(y.mean()) <= tcrit * y.std(ddof=1) / np.sqrt(n) + 1e-9
        return
    assert iv.lo <= iv.mean <= iv.hi
    width = iv.hi - iv.lo
    for rho in np.linspace(iv.lo + 1e-3 * width, iv.hi - 1e-3 * width, 25):
        assert kept(rho)
    assert not kept(iv.lo - 0.05 * width - 1e-4) and not kept(iv.hi + 0.05 * width + 1e-4)


def test_share_interval_brackets_a_clear_share_and_needs_two_seeds():
    arm = {0: 0.10, 1: 0.12, 2: 0.08, 3: 0.11, 4: 0.09}
    ceil = {0: 0.12, 1: 0.13, 2: 0.11, 3: 0.12, 4: 0.12}
    base = {s: 0.05 for s in range(5)}
    iv = share_interval(arm, ceil, base)
    assert 0.0 < iv.lo < iv.mean < iv.hi and iv.n == 5
    one = share_interval({0: 1.0}, {0: 2.0}, {0: 0.0})
    assert one.mean == pytest.approx(0.5) and math.isnan(one.lo) and math.isnan(one.hi)


@given(st.lists(st.floats(-0.2, 0.2), min_size=4, max_size=9), st.integers(2, 3))
@settings(max_examples=60, deadline=None)
def test_pooled_paired_equals_paired_on_all_seeds(diffs, n1):
    """Earlier seeds known only by their summary + new seeds' values = the paired test on every seed."""
    from oarl.lab.testbed.stats import pooled_paired

    arm = {s: 0.5 + d for s, d in enumerate(diffs)}
    base = {s: 0.5 for s in range(len(diffs))}
    early = paired({s: arm[s] for s in range(n1)}, {s: 0.5 for s in range(n1)})
    if not np.isfinite(early.diff.lo) or early.diff.hi == early.diff.lo:
        return  # identical earlier differences: no interval to invert
    pooled = pooled_paired(early.as_dict(), [arm[s] - 0.5 for s in range(n1, len(diffs))])
    full = paired(arm, base)
    assert pooled.n == full.n and pooled.wins == full.wins
    for a, b in (
        (pooled.diff.mean, full.diff.mean),
        (pooled.diff.lo, full.diff.lo),
        (pooled.diff.hi, full.diff.hi),
    ):
        assert a == pytest.approx(b, abs=1e-9)
    if np.std(list(arm.values())) > 1e-6:
        assert pooled.p_t == pytest.approx(full.p_t, rel=1e-6, abs=1e-9)
        assert pooled.d_z == pytest.approx(full.d_z, rel=1e-6, abs=1e-9)
    assert math.isnan(pooled.p_wilcoxon)
