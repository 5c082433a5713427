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
def _prefix_sums(rs, c):  # pragma: no cover - compiled
    # c[0] = 0, c[i + 1] = c[i] + rs[i]. Four steps per link of the dependency chain: the chain's
    # add latency, not memory, is what bounds a plain cumulative sum.
    acc = 0.0
    c[0] = 0.0
    length = rs.size
    q = length // 4
    for j in range(q):
        b = 4 * j
        x0 = np.float64(rs[b])
        x1 = np.float64(rs[b + 1])
        x2 = np.float64(rs[b + 2])
        x3 = np.float64(rs[b + 3])
        s01 = x0 + x1
        c[b + 1] = acc + x0
        c[b + 2] = acc + s01
        c[b + 3] = acc + (s01 + x2)
        acc += s01 + (x2 + x3)
        c[b + 4] = acc
    for i in range(4 * q, length):
        acc += rs[i]
        c[i + 1] = acc


@njit(cache=True, nogil=True)
def _discounted_sums(rs, gamma, g):  # pragma: no cover - compiled
    # g[i] = rs[i] + gamma g[i + 1], g[len] = 0, run backwards four steps per chain link.
    length = rs.size
    g2 = gamma * gamma
    g3 = g2 * gamma
    g4 = g3 * gamma
    acc = 0.0
    g[length] = 0.0
    tail = length % 4
    for k in range(tail):
        i = length - 1 - k
        acc = rs[i] + gamma * acc
        g[i] = acc
    for j in range(length // 4):
        b = length - tail - 4 * (j + 1)
        t3 = np.float64(rs[b + 3])
        t2 = rs[b + 2] + gamma * t3
        t1 = rs[b + 1] + gamma * t2
        t0 = rs[b] + gamma * t1
        g[b + 3] = t3 + gamma * acc
        g[b + 2] = t2 + g2 * acc
        g[b + 1] = t1 + g3 * acc
        acc = t0 + g4 * acc
        g[b] = acc


@njit(cache=True, nogil=True)
def _advantages_undiscounted(r, v, offsets, n, out):  # pragma: no cover - compiled
    # gamma == 1: the n-step sum is a difference of prefix sums, C[min(t+n, T)] - C[t].
    # Every operand is sliced to the episode first: that is what lets LLVM vectorise the loops.
    c = np.empty(_max_length(offsets) + 1, np.float64)
    for e in range(offsets.size - 1):
        s = offsets[e]
        length = offsets[e + 1] - s
        vs = v[s : s + length]
        os = out[s : s + length]
        _prefix_sums(r[s : s + length], c)
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
        vs = v[s : s + length]
        os = out[s : s + length]
        _discounted_sums(r[s : s + length], gamma, g)
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
    g = np.empty(_max_length(offsets) + 1, np.float64)
    for e in range(offsets.size - 1):
        s = offsets[e]
        length = offsets[e + 1] - s
        _discounted_sums(r[s : s + length], gamma, g)
        os = out[s : s + length]
        for i in range(length):
            os[i] = g[i]


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


def _output(out: np.ndarray | None, n: int) -> np.ndarray:
    if out is None:
        return np.empty(n, np.float32)
    if out.shape != (n,) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous float32 array of shape ({n},)")
    return out


def _check_finite(result: np.ndarray, **inputs: np.ndarray) -> None:
    # One fast reduction instead of an isfinite pass: NaN and inf propagate into the sum.
    if result.size and not np.isfinite(result.sum()):
        for name, x in inputs.items():
            bad = np.flatnonzero(~np.isfinite(x))
            if bad.size:
                raise ValueError(
                    f"{name} at step index {int(bad[0])} is {x[bad[0]]} ({bad.size} steps in "
                    "all); rewards and values must be finite"
                )


def discounted_returns(rewards: np.ndarray, offsets: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Monte-Carlo returns ``G_t = sum_{k>=0} gamma^k r_{t+k}`` to the episode end (float32).

    These are the value targets: with normalised rewards they lie in [-1, 0].
    """
    offsets, rewards = _inputs(offsets, rewards)
    _check_gamma(gamma)
    out = np.empty(rewards.size, np.float32)
    _returns(rewards, offsets, float(gamma), out)
    _check_finite(out, rewards=rewards)
    return out


def n_step_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    offsets: np.ndarray,
    n_steps: int,
    gamma: float = 1.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``A_t = sum_{k<n} gamma^k r_{t+k} + gamma^n v_{t+n} - v_t``, truncated at episode ends.

    ``rewards`` and ``values`` are per step (N), ``offsets`` the episode boundaries (E + 1).
    Pass ``n_steps >=`` the longest episode (or use ``monte_carlo_advantages``) for Monte-Carlo.
    ``out`` (float32 [N]) is written in place when given: a fresh 40 MB array per call costs
    page faults comparable to the arithmetic.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    _check_gamma(gamma)
    offsets, rewards, values = _inputs(offsets, rewards, values)
    n = min(int(n_steps), WHOLE_EPISODE)
    out = _output(out, rewards.size)
    if gamma == 1.0:
        _advantages_undiscounted(rewards, values, offsets, n, out)
    else:
        _advantages_discounted(rewards, values, offsets, n, float(gamma), out)
    _check_finite(out, rewards=rewards, values=values)
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
