"""Returns and advantages over many episodes at once (PAPER.md section 3).

n-step TD advantage with world-model values ``v``, per episode of length T::

    A_t = sum_{k < min(n, T - t)} gamma^k r_{t+k}  +  [t + n < T] gamma^n v_{t+n}  -  v_t

The bootstrap term is 0 once t + n reaches the episode end (the episode is over, nothing is left
to predict), so near the end A_t is the Monte-Carlo return minus the value. Monte-Carlo mode is
the same formula with n >= T: ``A_t = G_t - v_t`` with ``G_t = sum_{k >= 0} gamma^k r_{t+k}``,
and ``G`` is also the value target the world model is trained on.

Why numba: the sums are recurrences along each episode. A pure-numpy version needs several
temporary arrays of N elements and measured about 0.04 of the memory-bandwidth floor; the
compiled loops below keep a cumulative-sum buffer of one episode in cache and write A once.
Each kernel loops over episodes and steps in compiled code, never in Python. Sums are carried in
float64; results are float32 like the stored labels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ramp.platform.rl.layout import check_offsets
from ramp.platform.rl.settings import AdvantageConfig

# n for "to the end of the episode": larger than any episode, small enough for int64 arithmetic.
WHOLE_EPISODE = 1 << 40


@njit(cache=True, nogil=True)
def _max_length(offsets: np.ndarray) -> int:
    longest = 0
    for e in range(offsets.size - 1):
        longest = max(longest, offsets[e + 1] - offsets[e])
    return longest


@njit(cache=True, nogil=True)
def _advantages_undiscounted(r, v, offsets, n, out):  # pragma: no cover - compiled
    # gamma == 1: the n-step sum is a difference of prefix sums C (C[0] = 0, C[i+1] = C[i] + r_i),
    # a forward recurrence that runs about twice as fast as the discounted backward one.
    # Every operand is sliced to the episode first: that is what lets LLVM vectorise the loops.
    c = np.empty(_max_length(offsets) + 1, np.float64)
    for e in range(offsets.size - 1):
        s = offsets[e]
        length = offsets[e + 1] - s
        rs = r[s : s + length]
        vs = v[s : s + length]
        os = out[s : s + length]
        acc = 0.0
        c[0] = 0.0
        cs = c[1 : length + 1]
        for j in range(length):
            acc += rs[j]
            cs[j] = acc
        m = length - n if length > n else 0
        c0 = c[0:m]
        cn = c[n : n + m]
        v0 = vs[0:m]
        vn = vs[n : n + m]
        o0 = os[0:m]
        for i in range(m):
            o0[i] = (cn[i] - c0[i]) + (np.float64(vn[i]) - np.float64(v0[i]))
        total = c[length]
        ct = c[m:length]
        vt = vs[m:length]
        ot = os[m:length]
        for i in range(length - m):
            ot[i] = (total - ct[i]) - np.float64(vt[i])


@njit(cache=True, nogil=True)
def _advantages_discounted(r, v, offsets, n, gamma, out):  # pragma: no cover - compiled
    # G_t = r_t + gamma G_{t+1} backwards; the n-step sum is G_t - gamma^n G_{t+n}.
    g = np.empty(_max_length(offsets) + 1, np.float64)
    gn = gamma**n if n < WHOLE_EPISODE else 0.0
    for e in range(offsets.size - 1):
        s = offsets[e]
        length = offsets[e + 1] - s
        rs = r[s : s + length]
        vs = v[s : s + length]
        os = out[s : s + length]
        acc = 0.0
        g[length] = 0.0
        for j in range(length):
            i = length - 1 - j
            acc = rs[i] + gamma * acc
            g[i] = acc
        m = length - n if length > n else 0
        g0 = g[0:m]
        gnn = g[n : n + m]
        v0 = vs[0:m]
        vn = vs[n : n + m]
        o0 = os[0:m]
        for i in range(m):
            o0[i] = (g0[i] - gn * gnn[i]) + (gn * np.float64(vn[i]) - np.float64(v0[i]))
        gt = g[m:length]
        vt = vs[m:length]
        ot = os[m:length]
        for i in range(length - m):
            ot[i] = gt[i] - np.float64(vt[i])


@njit(cache=True, nogil=True)
def _returns(r, offsets, gamma, out):  # pragma: no cover - compiled
    for e in range(offsets.size - 1):
        s = offsets[e]
        length = offsets[e + 1] - s
        rs = r[s : s + length]
        os = out[s : s + length]
        acc = 0.0
        for j in range(length):
            i = length - 1 - j
            acc = rs[i] + gamma * acc
            os[i] = acc


def _inputs(offsets: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    offsets = check_offsets(offsets)
    n = int(offsets[-1])
    out = [offsets]
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.shape != (n,):
            raise ValueError(f"per-step array has shape {a.shape}; the offsets describe {n} steps")
        out.append(a)
    return tuple(out)


def _check_finite(result: np.ndarray, what: str) -> None:
    # One fast reduction instead of an isfinite pass: NaN and inf propagate into the sum.
    if result.size and not np.isfinite(result.sum()):
        bad = np.flatnonzero(~np.isfinite(result))
        if bad.size:
            raise ValueError(
                f"{what} is not finite at step index {int(bad[0])} ({bad.size} steps in all): "
                "a reward or value there is NaN or infinite"
            )


def discounted_returns(rewards: np.ndarray, offsets: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Monte-Carlo returns ``G_t = sum_{k>=0} gamma^k r_{t+k}`` to the episode end (float32).

    These are the value targets: with normalised rewards they lie in [-1, 0].
    """
    offsets, rewards = _inputs(offsets, rewards)
    _check_gamma(gamma)
    out = np.empty(rewards.size, np.float32)
    _returns(rewards, offsets, float(gamma), out)
    _check_finite(out, "the return")
    return out


def n_step_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    n_steps: int,
    gamma: float = 1.0,
) -> np.ndarray:
    """``A_t = sum_{k<n} gamma^k r_{t+k} + gamma^n v_{t+n} - v_t``, truncated at episode ends.

    ``rewards`` and ``values`` are per step (N), ``offsets`` the episode boundaries (E + 1).
    Pass ``n_steps >= `` the longest episode (or use ``monte_carlo_advantages``) for Monte-Carlo.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    _check_gamma(gamma)
    offsets, rewards, values = _inputs(offsets, rewards, values)
    n = min(int(n_steps), WHOLE_EPISODE)
    out = np.empty(rewards.size, np.float32)
    if gamma == 1.0:
        _advantages_undiscounted(rewards, values, offsets, n, out)
    else:
        _advantages_discounted(rewards, values, offsets, n, float(gamma), out)
    _check_finite(out, "the advantage")
    return out


def monte_carlo_advantages(
    rewards: np.ndarray, values: np.ndarray, offsets: np.ndarray, gamma: float = 1.0
) -> np.ndarray:
    """``A_t = G_t - v_t``: the n-step advantage with n = the episode length."""
    return n_step_advantages(rewards, values, offsets, WHOLE_EPISODE, gamma)


def advantages(
    rewards: np.ndarray, values: np.ndarray, offsets: np.ndarray, cfg: AdvantageConfig
) -> np.ndarray:
    """The advantage estimator chosen by ``rl.advantage`` (mode, n_steps, gamma)."""
    n = WHOLE_EPISODE if cfg.mode == "monte_carlo" else cfg.n_steps
    return n_step_advantages(rewards, values, offsets, n, cfg.gamma)


def _check_gamma(gamma: float) -> None:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
