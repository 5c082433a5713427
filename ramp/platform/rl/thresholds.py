"""Per-task thresholds and the improvement indicator ``I_t = 1[A_t > eps_task]`` (PAPER.md sec. 3).

Rule "quantile" (RECAP): eps_task is chosen so that a target share of the task's steps is
positive. With n fitted steps and target fraction f, ``k = floor(f n + 1/2)`` steps must lie
above eps, so eps is the (n - k)-th smallest advantage (1-based): the largest advantage that is
not labelled positive. Without ties exactly k steps get I = 1, i.e. the positive share is within
half a step's share (1 / 2n) of f. If k = n, eps is the float just below the smallest advantage.
Rule "fixed": eps = ``epsilon`` for every task.

Steps a human acted on are forced to I = 1 (RECAP) and, with ``force_human_positive``, are left out
of the fit: the threshold decides which of the policy's own steps count as improvements.

Thresholds are returned (``Thresholds``) so they can be logged and reused on new data; a task the
given thresholds do not know (seen for the first time) is fitted on the new data.

Why not ``np.quantile`` per task: labelling runs over tens of millions of steps, and an exact
selection per task (partition) costs more than computing the advantages. ``label_indicator``
instead estimates a narrow bracket around each task's quantile from a systematic sample, then in
ONE pass over the advantages writes every indicator whose side of the bracket is certain and
collects the few values inside it; the exact threshold is selected among those. When the bracket
misses (unlucky sample, heavy ties) the task falls back to an exact selection over all its steps,
so the result is always exact; only the speed depends on the sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numba import njit

from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.settings import ThresholdConfig


@dataclass(frozen=True)
class Thresholds:
    """eps per task, and how it was obtained; serialisable for logging and reuse."""

    epsilon: dict[str, float]
    rule: Literal["quantile", "fixed"]
    positive_fraction: float
    fitted_steps: dict[str, int] = field(default_factory=dict)  # steps each eps was fitted on

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsilon": dict(self.epsilon),
            "rule": self.rule,
            "positive_fraction": self.positive_fraction,
            "fitted_steps": dict(self.fitted_steps),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Thresholds:
        return cls(
            epsilon={k: float(v) for k, v in d["epsilon"].items()},
            rule=d["rule"],
            positive_fraction=float(d["positive_fraction"]),
            fitted_steps={k: int(v) for k, v in d.get("fitted_steps", {}).items()},
        )

    def metrics(self) -> dict[str, float]:
        """Flat keys for the tracker: ``threshold/task/<task>/epsilon``."""
        return {f"threshold/task/{t}/epsilon": float(e) for t, e in self.epsilon.items()}


def positives_for(n: int, positive_fraction: float) -> int:
    """How many of n fitted steps the quantile rule labels positive: floor(f n + 1/2)."""
    return min(n, math.floor(positive_fraction * n + 0.5))


def exact_epsilon(values: np.ndarray, positive_fraction: float) -> float:
    """The quantile rule's eps for one task's fitted advantages (the reference definition)."""
    x = np.asarray(values, dtype=np.float32)
    n = x.size
    if n == 0:
        raise ValueError("cannot fit a threshold on zero steps")
    k = positives_for(n, positive_fraction)
    if k == n:
        return float(np.nextafter(x.min(), np.float32(-np.inf)))
    rank = n - k - 1
    return float(np.partition(x, rank)[rank])


# --------------------------------------------------------------------------- compiled passes


@njit(cache=True, nogil=True)
def _sample(a, human, use_human, offsets, task, stride, buf_start, buf_vals, buf_count):
    # Systematic sample: every stride-th step of each episode, from a phase that varies by episode.
    for e in range(offsets.size - 1):
        t = task[e]
        st = stride[t]
        if st == 0:
            continue
        s = offsets[e]
        length = offsets[e + 1] - s
        c = buf_count[t]
        base = buf_start[t]
        for p in range((e * 40503) % st, length, st):
            i = s + p
            if use_human and human[i]:
                continue
            buf_vals[base + c] = a[i]
            c += 1
        buf_count[t] = c


@njit(cache=True, nogil=True)
def _label_pass(
    a,
    human,
    use_human,
    offsets,
    task,
    lo,
    hi,
    collect,
    out,
    below,
    above,
    buf_start,
    buf_cap,
    buf_vals,
    buf_idx,
    buf_count,
):  # pragma: no cover - compiled
    # One pass writing a code per step into `out` (uint8): 1 = positive (above hi, or human),
    # 0 = negative, 2 = inside [lo, hi] of a task still being fitted (resolved by the caller, which
    # rewrites those to 0/1 so `out` can be viewed as bool). Known tasks have lo = hi = eps.
    # The labelling loop is branch-free over per-episode slices, which lets LLVM vectorise it;
    # the few codes 2 are then picked up from the episode slice while it is still in cache.
    # Returns the number of NaN advantages met (NaN compares false both ways).
    one = np.uint8(1)
    n_nan = 0
    for e in range(offsets.size - 1):
        t = task[e]
        s = offsets[e]
        length = offsets[e + 1] - s
        xs = a[s : s + length]
        os = out[s : s + length]
        lo_t = lo[t]
        hi_t = hi[t]
        col = np.uint8(collect[t])
        n_above = 0
        n_below = 0
        n_free = 0
        if use_human:
            hs = human[s : s + length]
            for i in range(length):
                x = xs[i]
                hh = np.uint8(hs[i])
                free = hh ^ one
                up = np.uint8(x > hi_t)
                dn = np.uint8(x < lo_t)
                os[i] = up | hh | ((free & (up ^ one) & (dn ^ one) & col) << one)
                n_above += up & free
                n_below += dn & free
                n_free += free
                n_nan += x != x
        else:
            for i in range(length):
                x = xs[i]
                up = np.uint8(x > hi_t)
                dn = np.uint8(x < lo_t)
                os[i] = up | (((up | dn) ^ one) & col) << one
                n_above += up
                n_below += dn
                n_nan += x != x
            n_free = length
        above[t] += n_above
        below[t] += n_below
        if col and n_free > n_above + n_below:
            c = buf_count[t]
            base = buf_start[t]
            cap = buf_cap[t]
            for i in range(length):
                if os[i] == 2:
                    if c < cap:
                        buf_vals[base + c] = xs[i]
                        buf_idx[base + c] = s + i
                    c += 1
            buf_count[t] = c
    return n_nan


@njit(cache=True, nogil=True)
def _gather_task(a, human, use_human, offsets, task, t, out):  # pragma: no cover - compiled
    c = 0
    for e in range(offsets.size - 1):
        if task[e] != t:
            continue
        for i in range(offsets[e], offsets[e + 1]):
            if use_human and human[i]:
                continue
            out[c] = a[i]
            c += 1
    return c


@njit(cache=True, nogil=True)
def _apply_task(a, human, use_human, offsets, task, t, eps, out):  # pragma: no cover - compiled
    for e in range(offsets.size - 1):
        if task[e] != t:
            continue
        for i in range(offsets[e], offsets[e + 1]):
            out[i] = np.uint8((use_human and human[i]) or a[i] > eps)


# --------------------------------------------------------------------------- public API


def _prepare(
    adv: np.ndarray, episodes: Episodes, human: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    a = np.ascontiguousarray(adv, dtype=np.float32)
    if a.shape != (episodes.n_steps,):
        raise ValueError(f"{episodes.n_steps} steps but the advantages have shape {a.shape}")
    if human is None:
        h = np.zeros(0, dtype=bool)
    else:
        h = np.ascontiguousarray(human, dtype=bool)
        if h.shape != a.shape:
            raise ValueError(f"{a.size} steps but the intervention mask has shape {h.shape}")
    return a, h


def _task_steps(episodes: Episodes) -> np.ndarray:
    steps = np.zeros(episodes.n_tasks, dtype=np.int64)
    np.add.at(steps, episodes.task, episodes.lengths)
    return steps


def label_indicator(
    adv: np.ndarray,
    episodes: Episodes,
    human: np.ndarray | None,
    cfg: ThresholdConfig,
    previous: Thresholds | None = None,
    sample_size: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Thresholds]:
    """Fit the thresholds (rule of ``rl.threshold``) and label every step: (I as bool[N], eps).

    ``human`` marks steps a human acted on (the intervention column) or is None. Tasks known to
    ``previous`` keep its eps (rule "quantile"); others are fitted on this data. ``sample_size``
    (steps sampled per task; default: balanced against the task's size) only trades the speed
    of the bracket estimate; the result is exact regardless. ``out`` (bool
    [N]) is written in place when given, so a labeller reuses one buffer chunk after chunk.
    """
    a, h = _prepare(adv, episodes, human)
    use_h = bool(h.size) and cfg.force_human_positive
    if h.size == 0:
        h = np.zeros(a.size if use_h else 1, dtype=bool)
    k_tasks = episodes.n_tasks
    steps = _task_steps(episodes)
    present = steps > 0
    names = episodes.task_names
    f = cfg.positive_fraction

    known = np.zeros(k_tasks, dtype=bool)
    eps = np.zeros(k_tasks, dtype=np.float64)
    fitted = dict(previous.fitted_steps) if previous is not None else {}
    for t, name in enumerate(names):
        if cfg.rule == "fixed":
            known[t], eps[t] = True, cfg.epsilon
        elif previous is not None and name in previous.epsilon:
            known[t], eps[t] = True, previous.epsilon[name]
    to_fit = present & ~known

    # 1. Systematic sample of the tasks to fit; a task small enough is sampled whole (exact).
    if sample_size is None:
        # Sampling and selecting m values costs about as much per value as selecting one of the
        # n * (bracket share ~ 4.8 / sqrt(m)) values collected in the bracket; the total is
        # smallest near m = (2.4 n)^(2/3).
        m = np.clip(np.cbrt((2.4 * steps) ** 2), 256, 1 << 16).astype(np.int64)
    else:
        m = np.full(k_tasks, max(1, sample_size), dtype=np.int64)
    stride = np.where(to_fit, np.maximum(1, steps // m), 0).astype(np.int64)
    n_eps = np.zeros(k_tasks, dtype=np.int64)
    np.add.at(n_eps, episodes.task, 1)
    cap = np.where(to_fit, steps // np.maximum(stride, 1) + n_eps, 0)
    start = np.concatenate([[0], np.cumsum(cap)]).astype(np.int64)
    sample = np.empty(int(start[-1]), dtype=np.float32)
    count = np.zeros(k_tasks, dtype=np.int64)
    _sample(a, h, use_h, episodes.offsets, episodes.task, stride, start, sample, count)

    lo = eps.copy()
    hi = eps.copy()
    collect = np.zeros(k_tasks, dtype=bool)
    bcap = np.zeros(k_tasks, dtype=np.int64)
    for t in np.flatnonzero(to_fit):
        xs = sample[start[t] : start[t] + count[t]]
        if stride[t] == 1:  # the sample is every fitted step of the task
            if xs.size:
                known[t], eps[t] = True, exact_epsilon(xs, f)
                fitted[names[t]] = int(xs.size)
                lo[t] = hi[t] = eps[t]
            else:  # only human steps: every step is forced to 1, no threshold to fit
                lo[t], hi[t] = np.inf, np.inf
            continue
        lo[t], hi[t] = _bracket(xs, f)
        collect[t] = True
        share = 1.0 if xs.size == 0 else (2 * _margin(xs.size, f) + 2) / xs.size
        bcap[t] = int(2 * share * steps[t]) + 1024

    # 2. One pass over all steps: certain labels written, bracket contents collected.
    codes, below, above, found = _run_pass(a, h, use_h, episodes, lo, hi, collect, bcap, out)

    # 3. Exact threshold inside each bracket (or over the whole task when the bracket missed).
    for t in np.flatnonzero(collect):
        vals, idx, n_inside = found[t]
        n = int(below[t] + above[t] + n_inside)
        if n == 0:
            continue
        rank = n - positives_for(n, f) - 1
        if vals.size == n_inside and below[t] <= rank < below[t] + n_inside:
            r = int(rank - below[t])
            eps[t] = float(np.partition(vals, r)[r])
            codes[idx] = vals > np.float32(eps[t])  # eps is one of the float32 values
        else:
            buf = np.empty(int(steps[t]), dtype=np.float32)
            got = _gather_task(a, h, use_h, episodes.offsets, episodes.task, t, buf)
            eps[t] = exact_epsilon(buf[:got], f)
            _apply_task(a, h, use_h, episodes.offsets, episodes.task, t, np.float32(eps[t]), codes)
        known[t] = True
        fitted[names[t]] = n

    epsilon = dict(previous.epsilon) if previous is not None and cfg.rule == "quantile" else {}
    for t in range(k_tasks):
        if known[t] and (present[t] or cfg.rule == "fixed"):
            epsilon[names[t]] = float(eps[t])
    return codes.view(bool), Thresholds(epsilon, cfg.rule, f, fitted)


def _run_pass(
    a: np.ndarray,
    h: np.ndarray,
    use_h: bool,
    episodes: Episodes,
    lo: np.ndarray,
    hi: np.ndarray,
    collect: np.ndarray,
    cap: np.ndarray,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray, int]]]:
    """Codes per step, counts below/above per task, and (values, indices, count) inside brackets.

    Float32 advantages are compared with the thresholds rounded outward to float32, which gives
    exactly the float64 comparison (no float32 lies strictly between a value and its rounding).
    """
    k = episodes.n_tasks
    below = np.zeros(k, dtype=np.int64)
    above = np.zeros(k, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(cap)]).astype(np.int64)
    vals = np.empty(int(start[-1]), dtype=np.float32)
    idx = np.empty(int(start[-1]), dtype=np.int64)
    count = np.zeros(k, dtype=np.int64)
    if out is None:
        out = np.empty(a.size, dtype=bool)
    elif out.shape != a.shape or out.dtype != np.bool_ or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous bool array of shape {a.shape}")
    codes = out.view(np.uint8)
    n_nan = _label_pass(
        a,
        h,
        use_h,
        episodes.offsets,
        episodes.task,
        _f32_up(lo),
        _f32_down(hi),
        collect,
        codes,
        below,
        above,
        start,
        cap.astype(np.int64),
        vals,
        idx,
        count,
    )
    if n_nan:
        bad = int(np.flatnonzero(np.isnan(a))[0])
        raise ValueError(f"advantage at step index {bad} is NaN ({n_nan} NaN steps in all)")
    found = {}
    for t in np.flatnonzero(collect):
        got = int(min(count[t], cap[t]))
        found[int(t)] = (
            vals[start[t] : start[t] + got],
            idx[start[t] : start[t] + got],
            int(count[t]),
        )
    return codes, below, above, found


def _f32_down(x: np.ndarray) -> np.ndarray:
    """Largest float32 <= x: for float32 a, ``a > x`` iff ``a > _f32_down(x)``."""
    y = np.asarray(x, dtype=np.float64).astype(np.float32)
    over = y.astype(np.float64) > x
    y[over] = np.nextafter(y[over], np.float32(-np.inf))
    return y


def _f32_up(x: np.ndarray) -> np.ndarray:
    """Smallest float32 >= x: for float32 a, ``a < x`` iff ``a < _f32_up(x)``."""
    y = np.asarray(x, dtype=np.float64).astype(np.float32)
    under = y.astype(np.float64) < x
    y[under] = np.nextafter(y[under], np.float32(np.inf))
    return y


def _margin(m: int, f: float) -> int:
    # Five binomial standard deviations of the sample quantile's rank, plus slack for ties.
    return math.ceil(5.0 * math.sqrt(m * f * (1.0 - f))) + 8


def _bracket(xs: np.ndarray, f: float) -> tuple[float, float]:
    m = xs.size
    if m == 0:
        return -np.inf, np.inf
    j = (1.0 - f) * m
    d = _margin(m, f)
    i_lo = math.floor(j) - d
    i_hi = math.ceil(j) + d
    kth = [i for i in (i_lo, i_hi) if 0 <= i < m]
    part = np.partition(xs, kth) if kth else xs
    lo = float(part[i_lo]) if i_lo >= 0 else -np.inf
    hi = float(part[i_hi]) if i_hi < m else np.inf
    return lo, hi


def fit_thresholds(
    adv: np.ndarray,
    episodes: Episodes,
    human: np.ndarray | None,
    cfg: ThresholdConfig,
    previous: Thresholds | None = None,
) -> Thresholds:
    """Only the thresholds of ``label_indicator`` (same cost: labelling is nearly free)."""
    return label_indicator(adv, episodes, human, cfg, previous)[1]


def improvement_indicator(
    adv: np.ndarray,
    episodes: Episodes,
    human: np.ndarray | None,
    thresholds: Thresholds,
    force_human_positive: bool = True,
) -> np.ndarray:
    """``I = 1[A > eps_task]`` (bool[N]) with given thresholds; human steps forced to 1.

    Every task present must have a threshold; fit new tasks with ``label_indicator(previous=)``.
    """
    a, h = _prepare(adv, episodes, human)
    use_h = bool(h.size) and force_human_positive
    if h.size == 0:
        h = np.zeros(1, dtype=bool)
    steps = _task_steps(episodes)
    eps = np.zeros(episodes.n_tasks, dtype=np.float64)
    for t, name in enumerate(episodes.task_names):
        if steps[t] == 0:
            continue
        if name not in thresholds.epsilon:
            raise ValueError(
                f"no threshold for task {name!r} (known: {sorted(thresholds.epsilon)}); "
                "fit it with label_indicator(..., previous=thresholds)"
            )
        eps[t] = thresholds.epsilon[name]
    none = np.zeros(episodes.n_tasks, dtype=bool)
    cap = np.zeros(episodes.n_tasks, dtype=np.int64)
    codes = _run_pass(a, h, use_h, episodes, eps, eps, none, cap)[0]
    return codes.view(bool)
