"""Advantage-collapse metrics and the alarm (PAPER.md section 5).

When the world model's values track the returns too closely, or stop telling good steps from bad
ones, advantages shrink toward zero and the indicator becomes noise; the paper keeps them apart by
training the world model on base and rollout data. These metrics are logged every round, per task
and overall, and ``collapse_check`` turns them into a verdict with the reasons spelled out.

Keys are flat (``adv/mean``, ``adv/task/<task>/pos_frac``, ``value/kendall_tau``) so the tracker
logs them as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.settings import CollapseConfig

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@njit(cache=True, nogil=True)
def _count_inversions(y, tmp):  # pragma: no cover - compiled
    # Bottom-up merge sort of y in place; counts pairs i < j with y[i] > y[j] (ties are not
    # inversions). O(n log n).
    n = y.size
    swaps = 0
    width = 1
    passes = 0
    while width < n:
        src = y if passes % 2 == 0 else tmp
        dst = tmp if passes % 2 == 0 else y
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if src[j] < src[i]:
                    dst[k] = src[j]
                    swaps += mid - i
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        width *= 2
        passes += 1
    if passes % 2 == 1:
        y[:] = tmp
    return swaps


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Number of pairs with equal values in a sorted array: sum over runs of c (c - 1) / 2."""
    if sorted_values.size < 2:
        return 0
    breaks = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    runs = np.diff(np.concatenate([[0], breaks, [sorted_values.size]]))
    return int((runs * (runs - 1) // 2).sum())


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties handled as in scipy.stats.kendalltau) in O(n log n) (Knight 1966).

    Returns NaN when either input is constant. Monte-Carlo returns have many ties (every
    successful episode's last steps share returns), so tau-b, not tau-a.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    n = x.size
    if n < 2:
        return float("nan")
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    pairs = n * (n - 1) // 2
    tie_x = _tied_pairs(xs)
    # pairs tied in both: runs of equal (x, y) in the lexsorted order
    same = np.concatenate([[False], (xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])])
    breaks = np.flatnonzero(~same)
    runs = np.diff(np.concatenate([breaks, [n]]))
    tie_xy = int((runs * (runs - 1) // 2).sum())
    ys = np.ascontiguousarray(ys)
    swaps = int(_count_inversions(ys, np.empty_like(ys)))  # ys is sorted afterwards
    tie_y = _tied_pairs(ys)
    denom = math.sqrt(float(pairs - tie_x) * float(pairs - tie_y))
    if denom == 0:
        return float("nan")
    concordant_minus_discordant = pairs - tie_x - tie_y + tie_xy - 2 * swaps
    return concordant_minus_discordant / denom


def _subsample(n: int, cap: int, seed: int) -> np.ndarray | None:
    if n <= cap:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _stats(
    prefix: str,
    adv: np.ndarray,
    ind: np.ndarray,
    cfg: CollapseConfig,
    values: np.ndarray | None,
    returns: np.ndarray | None,
    value_prefix: str,
) -> dict[str, float]:
    out: dict[str, float] = {f"{prefix}/steps": float(adv.size)}
    if adv.size == 0:
        return out
    a64 = adv.astype(np.float64)
    out[f"{prefix}/mean"] = float(a64.mean())
    out[f"{prefix}/std"] = float(a64.std())
    for q, v in zip(QUANTILES, np.quantile(adv, QUANTILES), strict=True):
        out[f"{prefix}/q{round(q * 100):02d}"] = float(v)
    out[f"{prefix}/pos_frac"] = float(np.count_nonzero(ind)) / adv.size
    out[f"{prefix}/small_frac"] = float(np.count_nonzero(np.abs(adv) < cfg.delta)) / adv.size
    if values is not None and returns is not None:
        out[f"{value_prefix}/mae"] = float(np.abs(values.astype(np.float64) - returns).mean())
        pick = _subsample(values.size, cfg.tau_max_samples, cfg.seed)
        v, r = (values, returns) if pick is None else (values[pick], returns[pick])
        out[f"{value_prefix}/kendall_tau"] = kendall_tau(v, r)
    return out


def collapse_metrics(
    advantage: np.ndarray,
    indicator: np.ndarray,
    episodes: Episodes,
    cfg: CollapseConfig,
    values: np.ndarray | None = None,
    returns: np.ndarray | None = None,
) -> dict[str, float]:
    """Per task and overall: positive fraction, advantage mean / std / quantiles, the share of
    |A| < delta, and (with values and Monte-Carlo returns) the value MAE and Kendall tau."""
    adv = np.asarray(advantage, dtype=np.float32)
    ind = np.asarray(indicator, dtype=bool)
    if adv.shape != (episodes.n_steps,) or ind.shape != adv.shape:
        raise ValueError(
            f"{episodes.n_steps} steps but advantage {adv.shape} and indicator {ind.shape}"
        )
    if (values is None) != (returns is None):
        raise ValueError("pass both values and returns, or neither")
    if values is not None:
        values = np.asarray(values, dtype=np.float32)
        returns = np.asarray(returns, dtype=np.float32)
    metrics = _stats("adv", adv, ind, cfg, values, returns, "value")
    step_task = episodes.step_task()
    for t, name in enumerate(episodes.task_names):
        sel = step_task == t
        if not sel.any():
            continue
        metrics.update(
            _stats(
                f"adv/task/{name}",
                adv[sel],
                ind[sel],
                cfg,
                None if values is None else values[sel],
                None if returns is None else returns[sel],
                f"value/task/{name}",
            )
        )
    return metrics


@dataclass(frozen=True)
class CollapseVerdict:
    """The alarm: ``collapsed`` with one human-readable reason per failed check."""

    collapsed: bool
    reasons: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # scopes checked: "all", "task <name>"
    value_reasons: list[str] = field(default_factory=list)  # the reasons about value quality

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "ok: no collapse signal"

    @property
    def advantage_reasons(self) -> list[str]:
        """The reasons about the advantages themselves (near 0, no spread, positive share)."""
        return [r for r in self.reasons if r not in self.value_reasons]


def _tasks_in(metrics: dict[str, float]) -> list[str]:
    head, tail = "adv/task/", "/steps"
    return [k[len(head) : -len(tail)] for k in metrics if k.startswith(head) and k.endswith(tail)]


HELDOUT = "value/heldout"


def _value_reasons_heldout(
    metrics: dict[str, float], cfg: CollapseConfig
) -> tuple[list[str], list[str]]:
    """(reasons, scopes) of the value checks on the held-out report (``rl.value_report``):
    the world model against the time-only baseline on episodes it never trained on."""
    reasons: list[str] = []
    scopes: list[str] = []
    head, tail = f"{HELDOUT}/task/", "/episodes"
    tasks = [k[len(head) : -len(tail)] for k in metrics if k.startswith(head) and k.endswith(tail)]
    todo = [("all", "the held-out steps", HELDOUT)]
    for task in tasks:
        p = f"{HELDOUT}/task/{task}"
        if f"{p}/kendall_tau" in metrics and metrics[f"{p}/steps"] >= cfg.min_heldout_steps:
            todo.append((f"task {task!r}", f"held-out steps of {task}", p))
    for scope, what, p in todo:
        tau = metrics.get(f"{p}/kendall_tau")
        if tau is None:  # n/a (too few held-out episodes): reported, not checked
            continue
        scopes.append(f"{scope} (held-out)")
        base_tau = metrics.get(f"{p}/time_baseline/kendall_tau", math.nan)
        fix = "train it longer (training.world_model.steps), check rl.reward.t_max, or add data"
        if not math.isnan(tau) and not math.isnan(base_tau) and tau < base_tau + cfg.min_tau_margin:
            margin = f" + margin {cfg.min_tau_margin:g}" if cfg.min_tau_margin else ""
            reasons.append(
                f"{scope}: the world model ranks {what} no better than the step index "
                f"(Kendall tau {tau:.2f} vs {base_tau:.2f}{margin}): {fix}"
            )
        if not math.isnan(tau) and tau < cfg.min_kendall_tau:
            reasons.append(
                f"{scope}: held-out value-vs-return Kendall tau {tau:.3f} < min_kendall_tau "
                f"{cfg.min_kendall_tau:g}: the world model's values do not rank steps: {fix}"
            )
        mae = metrics.get(f"{p}/mae", math.nan)
        base_mae = metrics.get(f"{p}/time_baseline/mae", math.nan)
        if not math.isnan(mae) and not math.isnan(base_mae) and mae > base_mae * cfg.max_mae_ratio:
            ratio = f"{cfg.max_mae_ratio:g} x " if cfg.max_mae_ratio != 1 else ""
            reasons.append(
                f"{scope}: the world model's values of {what} are further from the returns than "
                f"the step index's (MAE {mae:.3f} > {ratio}{base_mae:.3f}): {fix}"
            )
    return reasons, scopes


def collapse_check(metrics: dict[str, float], cfg: CollapseConfig) -> CollapseVerdict:
    """Check the metrics of ``collapse_metrics`` against ``rl.collapse``; every failure is a reason.

    Advantage checks (small_frac, std, pos_frac): overall figures always; a task only when it has
    at least ``min_task_steps`` steps (a handful of steps says nothing about collapse).

    Value checks: with a held-out report in ``metrics`` (``value/heldout/...`` from
    ``rl.value_report``), on the held-out episodes against the time-only baseline (tau below the
    baseline's + ``min_tau_margin`` or below ``min_kendall_tau``; MAE above the baseline's times
    ``max_mae_ratio``), overall and per task with ``min_heldout_steps`` held-out steps, so that a
    world model cannot pass by memorising its training episodes. Without one (holdout_fraction
    0), the in-sample figures against ``min_kendall_tau`` and ``max_value_mae``, as before.
    """
    reasons: list[str] = []
    values: list[str] = []
    heldout = f"{HELDOUT}/episodes" in metrics
    scopes = [("all", "adv", "value")]
    for task in _tasks_in(metrics):
        if metrics[f"adv/task/{task}/steps"] >= cfg.min_task_steps:
            scopes.append((f"task {task!r}", f"adv/task/{task}", f"value/task/{task}"))
    for scope, adv, val in scopes:
        small = metrics.get(f"{adv}/small_frac")
        if small is not None and small > cfg.max_small_fraction:
            reasons.append(
                f"{scope}: {small:.1%} of steps have |A| < {cfg.delta:g} "
                f"(max_small_fraction {cfg.max_small_fraction:g}): advantages are collapsing to 0"
            )
        std = metrics.get(f"{adv}/std")
        if std is not None and std < cfg.min_adv_std:
            reasons.append(f"{scope}: advantage std {std:.3g} < min_adv_std {cfg.min_adv_std:g}")
        pos = metrics.get(f"{adv}/pos_frac")
        if pos is not None and not cfg.min_positive_fraction <= pos <= cfg.max_positive_fraction:
            reasons.append(
                f"{scope}: positive fraction {pos:.3f} outside [{cfg.min_positive_fraction:g}, "
                f"{cfg.max_positive_fraction:g}]"
            )
        if heldout:
            continue
        tau = metrics.get(f"{val}/kendall_tau")
        if tau is not None and not math.isnan(tau) and tau < cfg.min_kendall_tau:
            values.append(
                f"{scope}: value-vs-return Kendall tau {tau:.3f} < min_kendall_tau "
                f"{cfg.min_kendall_tau:g} (in-sample): the world model's values do not rank steps"
            )
        mae = metrics.get(f"{val}/mae")
        if mae is not None and mae > cfg.max_value_mae:
            values.append(
                f"{scope}: value MAE {mae:.3f} > max_value_mae {cfg.max_value_mae:g} (in-sample)"
            )
    checked = [s for s, _, _ in scopes]
    if heldout:
        value_reasons, value_scopes = _value_reasons_heldout(metrics, cfg)
        values += value_reasons
        checked += value_scopes
    reasons += values
    return CollapseVerdict(bool(reasons), reasons, checked, values)
