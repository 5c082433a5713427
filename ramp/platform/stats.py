"""Small statistics for comparing two policies on the same episodes (no Ray, no torch).

- ``wilson_interval``: the Wilson score interval of one success rate (statsmodels).
- ``paired_comparison``: candidate vs production on the same (task, seed) episodes, as a 2x2
  table of pairs: the paired difference of success rates, Newcombe's hybrid score interval on it,
  the one-sided exact McNemar p-value for "the candidate is better", and the smallest difference
  those pairs can show at all.
- ``min_detectable_difference`` / ``detectable_difference``: what n pairs can tell at a level.

Counts used throughout (one pair = one (task, seed) both policies ran):

    a: both succeeded    b: candidate succeeded, production failed
    c: candidate failed, production succeeded    d: both failed      n = a + b + c + d

The candidate's rate is (a + b) / n, production's (a + c) / n, their difference (b - c) / n.
Only the discordant pairs b and c carry evidence about which policy is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

TEST = "mcnemar-exact-one-sided"
INTERVAL_METHOD = "newcombe-hybrid-score-paired"


def _check_level(level: float, name: str = "level") -> None:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {level!r}")


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The two-sided Wilson score interval of a success rate ``successes / n`` at confidence
    ``level`` (statsmodels ``proportion_confint(method="wilson")``). ``n == 0``: (0, 1)."""
    _check_level(level)
    successes, n = int(successes), int(n)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=1.0 - level, method="wilson")
    # the exact bounds at 0 and n (statsmodels leaves a rounding error of ~1e-17)
    return (0.0 if successes == 0 else float(lo)), (1.0 if successes == n else float(hi))


def mcnemar_exact_greater(b: int, c: int) -> float:
    """One-sided exact (conditional) McNemar p-value for "the candidate is better": with the
    b + c discordant pairs, P(X >= b) for X ~ Binomial(b + c, 1/2). 1.0 when b + c == 0."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5, alternative="greater").pvalue)


def newcombe_paired_interval(
    a: int, b: int, c: int, d: int, level: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of paired proportions
    p1 - p2 = (b - c) / n (Newcombe 1998, Stat Med 17:2635, method 10; also Fagerland, Lydersen
    and Laake 2017, "Newcombe square-and-add").

    The Wilson intervals (l1, u1) of p1 = (a + b) / n and (l2, u2) of p2 = (a + c) / n are
    combined with phi, the correlation of the pair table, whose numerator a*d - b*c is
    continuity-corrected (max(a*d - b*c - n/2, 0) when positive, left as is when negative; 0 when
    a margin of the table is empty):

        lower = D - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        upper = D + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    Deterministic and closed-form, and (Newcombe's and Fagerland et al.'s evaluations) close to
    nominal coverage down to small n, where the Wald interval is not.
    """
    a, b, c, d = (int(x) for x in (a, b, c, d))
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got a={a}, b={b}, c={c}, d={d}")
    n = a + b + c + d
    if n == 0:
        raise ValueError("no pairs: the interval of a difference needs n >= 1")
    p1, p2 = (a + b) / n, (a + c) / n
    diff = (b - c) / n
    l1, u1 = wilson_interval(a + b, n, level)
    l2, u2 = wilson_interval(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        num = a * d - b * c
        num = num - n / 2 if num > n / 2 else (num if num < 0 else 0.0)
        phi = num / math.sqrt(margins)
    lo_sq = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    hi_sq = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    lo = diff - math.sqrt(max(lo_sq, 0.0))
    hi = diff + math.sqrt(max(hi_sq, 0.0))
    return max(-1.0, lo), min(1.0, hi)


def _min_favourable(alpha: float) -> int:
    """The smallest k with 0.5**k < alpha: k discordant pairs, all in the candidate's favour,
    give the exact one-sided McNemar p = 0.5**k, significant (p < alpha) from this k on."""
    _check_level(alpha, "alpha")
    k = max(0, math.ceil(-math.log2(alpha)))
    while 0.5**k >= alpha:  # alpha an exact power of 1/2: p == alpha is not < alpha
        k += 1
    while k > 0 and 0.5 ** (k - 1) < alpha:  # guards the float log2
        k -= 1
    return k


def min_detectable_difference(n: int, alpha: float) -> float | None:
    """The smallest paired difference d = k / n that can be significant at all with n pairs:
    the exact one-sided McNemar p-value is smallest, 0.5**k, when all k discordant pairs favour
    the candidate, so a difference below k / n, k = the smallest integer with 0.5**k < alpha,
    can never be significant at one-sided level ``alpha`` however the pairs fall (``p < alpha``,
    the gate's rule). k = 4 at alpha 0.1, 5 at 0.05. None when n < k: nothing is detectable."""
    k = _min_favourable(alpha)
    n = int(n)
    if n <= 0 or k > n:
        return None
    return k / n


def detectable_difference(n: int, alpha: float, power: float = 0.8) -> float | None:
    """The difference detected with probability ``power`` with n pairs, in the most favourable
    case: each pair independently favours the candidate (discordant, candidate succeeded) with
    probability d and is concordant otherwise, never against it. The test then rejects when at
    least k = (see ``min_detectable_difference``) pairs are discordant, so the power is
    P(Binomial(n, d) >= k), exactly; this returns the d where it reaches ``power``. Any
    discordance against the candidate only raises the figure: it is a floor on what a real
    evaluation of n pairs can be expected to find. None when n < k."""
    _check_level(power, "power")
    k = _min_favourable(alpha)
    n = int(n)
    if n <= 0 or k > n:
        return None
    if k == 0:
        return 0.0
    from scipy.optimize import brentq
    from scipy.stats import binom

    return float(brentq(lambda d: binom.sf(k - 1, n, d) - power, 0.0, 1.0, xtol=1e-12))


@dataclass(frozen=True)
class PairedComparison:
    """Candidate vs production on n paired episodes (see the module docstring for a..d)."""

    n: int  # pairs
    candidate_successes: int  # a + b
    production_successes: int  # a + c
    candidate_rate: float
    production_rate: float
    b: int  # candidate succeeded, production failed
    c: int  # candidate failed, production succeeded
    difference: float  # (b - c) / n = candidate_rate - production_rate
    interval: tuple[float, float]  # Newcombe's interval on the difference, at ``level``
    candidate_interval: tuple[float, float]  # Wilson, at ``level``
    production_interval: tuple[float, float]  # Wilson, at ``level``
    level: float  # confidence of the intervals (two-sided)
    p_value: float  # exact one-sided McNemar, H1: the candidate is better
    alpha: float  # one-sided significance level of the test
    min_detectable_difference: float | None  # smallest difference that can be significant
    detectable_difference_80: float | None  # the difference detected with 80% power (floor)
    test: str = TEST
    interval_method: str = INTERVAL_METHOD

    @property
    def significant(self) -> bool:
        """p < alpha: the candidate is better at one-sided level alpha."""
        return self.p_value < self.alpha

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("interval", "candidate_interval", "production_interval"):
            out[k] = list(out[k])
        return out


def paired_comparison(
    candidate: Sequence[bool],
    production: Sequence[bool],
    level: float = 0.95,
    alpha: float = 0.05,
) -> PairedComparison:
    """Compare two policies' successes on the same episodes, element i of both sequences being
    the same (task, seed).

    The interval on the difference is Newcombe's hybrid score interval (method 10 of Newcombe
    1998, ``newcombe_paired_interval``) at two-sided confidence ``level``, chosen over a paired
    bootstrap because it is deterministic (the same evaluation gives the same interval, which a
    gate recorded in a manifest should) and behaves at the small n and the rates near 0 or 1 an
    evaluation of a few dozen episodes has, where a percentile bootstrap's interval collapses.
    The p-value is the exact one-sided McNemar test (binomial on the b + c discordant pairs) for
    "the candidate is better"; ``alpha`` is its level, which also sets the detectable
    differences."""
    if len(candidate) != len(production):
        raise ValueError(
            f"candidate and production must be paired element by element: candidate has "
            f"{len(candidate)} outcomes, production {len(production)}"
        )
    _check_level(level)
    _check_level(alpha, "alpha")
    cand = [bool(x) for x in candidate]
    prod = [bool(x) for x in production]
    n = len(cand)
    if n == 0:
        raise ValueError("no paired outcomes to compare (candidate and production are empty)")
    a = sum(x and y for x, y in zip(cand, prod, strict=True))
    b = sum(x and not y for x, y in zip(cand, prod, strict=True))
    c = sum(y and not x for x, y in zip(cand, prod, strict=True))
    d = n - a - b - c
    return PairedComparison(
        n=n,
        candidate_successes=a + b,
        production_successes=a + c,
        candidate_rate=(a + b) / n,
        production_rate=(a + c) / n,
        b=b,
        c=c,
        difference=(b - c) / n,
        interval=newcombe_paired_interval(a, b, c, d, level),
        candidate_interval=wilson_interval(a + b, n, level),
        production_interval=wilson_interval(a + c, n, level),
        level=float(level),
        p_value=mcnemar_exact_greater(b, c),
        alpha=float(alpha),
        min_detectable_difference=min_detectable_difference(n, alpha),
        detectable_difference_80=detectable_difference(n, alpha, 0.8),
    )
