"""ramp.platform.stats against published numbers and an independent computation."""

from __future__ import annotations

import math

import pytest

from ramp.platform import stats
from ramp.platform.stats import (
    detectable_difference,
    mcnemar_exact_greater,
    min_detectable_difference,
    newcombe_paired_interval,
    paired_comparison,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("x", "n", "lo", "hi"),
    [  # the Wilson score interval's published values (Newcombe 1998a, Stat Med 17:857, method 3)
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_published(x, n, lo, hi):
    got = wilson_interval(x, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, 10, level=1.0)


def _wilson(x: int, n: int, level: float) -> tuple[float, float]:
    """Wilson's closed form, written out here (no statsmodels)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = x / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return mid - half, mid + half


def _newcombe(a: int, b: int, c: int, d: int, level: float) -> tuple[float, float]:
    """Newcombe 1998 method 10 written out from the paper's formulas, independently of stats.py."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, level)
    l2, u2 = _wilson(a + c, n, level)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    corrected = max(ad_bc - n / 2, 0) if ad_bc >= 0 else ad_bc
    phi = corrected / math.sqrt(den) if den else 0.0
    dl = math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    du = math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return max(-1.0, p1 - p2 - dl), min(1.0, p1 - p2 + du)


def test_newcombe_published_example():
    # Cavo et al. 2012 (complete response before/after consolidation therapy), the worked
    # example of Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables"
    # (2017), ch. 8: Newcombe square-and-add (= Newcombe 1998 method 10) -0.0621 (-0.1186 to
    # -0.0046); the R package contingencytables' tests check the same numbers.
    lo, hi = newcombe_paired_interval(59, 6, 16, 80)
    assert (lo, hi) == pytest.approx((-0.1186, -0.0046), abs=5e-5)


@pytest.mark.parametrize(
    "table",
    [(59, 6, 16, 80), (10, 20, 0, 15), (0, 5, 0, 0), (3, 2, 7, 1), (0, 0, 0, 12), (12, 0, 0, 0)],
)
@pytest.mark.parametrize("level", [0.8, 0.95])
def test_newcombe_matches_independent_computation(table, level):
    # No published table at every level: check against the formulas written out above.
    assert newcombe_paired_interval(*table, level=level) == pytest.approx(
        _newcombe(*table, level), abs=1e-9
    )


def test_mcnemar_exact_one_sided():
    assert mcnemar_exact_greater(5, 0) == pytest.approx(0.03125)
    assert mcnemar_exact_greater(6, 1) == pytest.approx(0.0625)
    assert mcnemar_exact_greater(0, 0) == 1.0
    # Cavo et al. 2012: exact conditional McNemar, two-sided P = 0.052479 (Fagerland et al.)
    assert 2 * mcnemar_exact_greater(16, 6) == pytest.approx(0.052479, abs=5e-7)


def test_identical_inputs():
    xs = [True, False, True, True, False] * 9
    cmp = paired_comparison(xs, xs)
    assert cmp.difference == 0.0 and cmp.p_value == 1.0 and (cmp.b, cmp.c) == (0, 0)
    assert cmp.interval[0] < 0.0 < cmp.interval[1]
    assert not cmp.significant


def test_paired_comparison_counts_and_json():
    cand = [True] * 20 + [True] * 5 + [False] * 20
    prod = [False] * 20 + [True] * 5 + [False] * 20
    cmp = paired_comparison(cand, prod, level=0.8, alpha=0.1)
    assert (cmp.n, cmp.b, cmp.c) == (45, 20, 0)
    assert cmp.candidate_rate == pytest.approx(25 / 45) and cmp.production_rate == 5 / 45
    assert cmp.difference == pytest.approx(20 / 45)
    assert cmp.p_value == pytest.approx(0.5**20)
    assert cmp.interval[0] > 0 and cmp.significant
    assert cmp.candidate_interval == pytest.approx(wilson_interval(25, 45, 0.8))
    js = cmp.to_json()
    assert js["interval"] == list(cmp.interval) and js["test"] == "mcnemar-exact-one-sided"
    assert js["min_detectable_difference"] == pytest.approx(4 / 45)


def test_length_mismatch_names_the_arguments():
    with pytest.raises(ValueError, match=r"candidate has 2 outcomes, production 1"):
        paired_comparison([True, False], [True])
    with pytest.raises(ValueError):
        paired_comparison([], [])


def test_min_detectable_difference():
    # all k discordant pairs for the candidate: p = 0.5**k; 0.5**4 = 0.0625 < 0.1 < 0.125
    assert min_detectable_difference(45, 0.1) == pytest.approx(4 / 45)
    assert min_detectable_difference(45, 0.05) == pytest.approx(5 / 45)  # 0.03125 < 0.05
    assert min_detectable_difference(3, 0.1) is None  # 0.5**3 = 0.125: never significant
    assert min_detectable_difference(4, 0.0625) is None  # p must be < alpha, 0.0625 is not
    for n, alpha in [(45, 0.1), (45, 0.05), (18, 0.1), (7, 0.01)]:
        d = min_detectable_difference(n, alpha)
        if d is None:
            continue
        k = round(d * n)
        assert mcnemar_exact_greater(k, 0) < alpha <= mcnemar_exact_greater(k - 1, 0)


def test_detectable_difference_power():
    from scipy.stats import binom

    d = detectable_difference(45, 0.1, 0.8)
    assert d is not None and d > min_detectable_difference(45, 0.1)
    assert binom.sf(3, 45, d) == pytest.approx(0.8, abs=1e-8)  # P(B >= 4) at that rate
    assert detectable_difference(3, 0.1) is None
    assert stats.TEST == "mcnemar-exact-one-sided"
