"""Are the world model's values any good, measured where it counts, and do the labels separate?

Three things, all pure numpy over the labeller's flat per-step arrays (``rl.layout.Episodes``):

1. **The held-out split** (``heldout_mask``): an episode is held out when a stable hash of its id
   (xxh3-64 of ``"ramp-holdout-v1:" + id``, as a fraction of 2**64) is below
   ``training.world_model.holdout_fraction``. It depends on the id alone, so an episode is held out
   in every round, whatever else the store holds (the world model continues from the previous
   round's checkpoint: a split that changed per round would leak). The world-model fit trains on
   the other episodes only (``training.fit``); the policy and the labeller use every episode.
2. **The value report** (``value_report``): per task and overall, on the HELD-OUT episodes, Kendall
   tau and MAE of the world model's value against the Monte-Carlo return (the value target), and
   the same for two baselines fitted on the train split: *time-only* (the mean train return at the
   same step index of the task) and *outcome-oracle* (the same, per success flag: it knows how the
   episode ends). A world model that does not beat the step index has learned nothing an advantage
   can use. In-sample figures (the world model on its own training episodes) are reported, labelled
   as such: a model that memorised its data scores well there and only there.
3. **Indicator separation** (``indicator_separation``): per task, P(I=1) on steps of successful vs
   failed episodes, and on interior steps vs the final n steps of each episode (t >= T - n, where
   the n-step bootstrap is gone and A_t = G_t - v_t). Human steps are left out when
   ``rl.threshold.force_human_positive`` forced them to 1 (they say nothing about the advantages);
   their count is reported.

A task with fewer than ``MIN_HELDOUT_EPISODES`` held-out episodes (or without train episodes to fit
the baselines on) is shown as n/a and never checked. docs/rl.md, "The value report".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xxhash

from ramp.platform.rl.collapse import kendall_tau
from ramp.platform.rl.layout import Episodes

HOLDOUT_SALT = b"ramp-holdout-v1:"
MIN_HELDOUT_EPISODES = 2
_TWO_64 = float(2**64)

# --------------------------------------------------------------------------- the held-out split


def holdout_position(episode_id: str) -> float:
    """Where an id falls in [0, 1): xxh3-64 of the salted id over 2**64 (stable across runs,
    machines and Python versions, unlike ``hash``)."""
    return xxhash.xxh3_64_intdigest(HOLDOUT_SALT + episode_id.encode()) / _TWO_64


def is_heldout(episode_id: str, fraction: float) -> bool:
    """True when the world model must never train on this episode."""
    return holdout_position(episode_id) < fraction


def heldout_mask(episode_ids: Sequence[str], fraction: float) -> np.ndarray:
    """bool [E]: which of ``episode_ids`` are held out (order-independent per id)."""
    if not 0 <= fraction <= 0.5:
        raise ValueError(f"holdout_fraction must lie in [0, 0.5], got {fraction}")
    if fraction == 0:
        return np.zeros(len(episode_ids), bool)
    return np.fromiter((is_heldout(e, fraction) for e in episode_ids), bool, len(episode_ids))


def split_ids(episode_ids: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids), each in the order given."""
    mask = heldout_mask(episode_ids, fraction)
    return (
        [e for e, h in zip(episode_ids, mask, strict=True) if not h],
        [e for e, h in zip(episode_ids, mask, strict=True) if h],
    )


# --------------------------------------------------------------------------- the value report


@dataclass(frozen=True)
class ValueRow:
    """One task (or ``task == "all"``): held-out figures of the world model and the baselines,
    and in-sample figures of the world model. NaN where not measured; ``note`` says why."""

    task: str
    heldout_episodes: int
    heldout_steps: int
    train_episodes: int
    tau_wm: float = math.nan
    tau_time: float = math.nan
    tau_oracle: float = math.nan
    mae_wm: float = math.nan
    mae_time: float = math.nan
    mae_oracle: float = math.nan
    insample_tau: float = math.nan
    insample_mae: float = math.nan
    note: str = ""  # "" = measured; else why the held-out figures are n/a

    @property
    def measured(self) -> bool:
        return not self.note


def _f(x: float, fmt: str = ".3f") -> str:
    return "-" if x is None or math.isnan(x) else format(x, fmt)


@dataclass(frozen=True)
class ValueReport:
    """What ``value_report`` measured: one row per task and one over all tasks."""

    holdout_fraction: float
    tasks: list[ValueRow]
    overall: ValueRow
    min_heldout_episodes: int = MIN_HELDOUT_EPISODES

    def table(self) -> str:
        """A text table, one line per task, then ``all``."""
        head = (
            f"{'task':<28} {'held-out':>10} {'tau wm':>7} {'tau time':>8} {'tau oracle':>10} "
            f"{'mae wm':>7} {'mae time':>8} {'mae oracle':>10} {'in-sample tau':>13}"
        )
        lines = [
            f"value report: held-out = {self.holdout_fraction:.0%} of episodes by id hash, never "
            "trained on by the world model; episodes (steps)",
            head,
        ]
        for row in [*self.tasks, self.overall]:
            name = row.task if len(row.task) <= 28 else row.task[:25] + "..."
            held = f"{row.heldout_episodes} ({row.heldout_steps})"
            left = f"{name:<28} {held:>10} "
            if row.measured:
                lines.append(
                    left + f"{_f(row.tau_wm):>7} {_f(row.tau_time):>8} {_f(row.tau_oracle):>10} "
                    f"{_f(row.mae_wm):>7} {_f(row.mae_time):>8} {_f(row.mae_oracle):>10} "
                    f"{_f(row.insample_tau):>13}"
                )
            else:
                lines.append(left + f"n/a: {row.note} (in-sample tau {_f(row.insample_tau)})")
        lines.append(
            "time: the mean train return at the same step (time-only baseline); oracle: the same "
            "per outcome;"
        )
        lines.append("in-sample: the world model on its own training episodes")
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        """Flat keys: ``value/heldout/kendall_tau``, ``value/heldout/task/<task>/mae``,
        ``value/heldout/time_baseline/kendall_tau``, ``value/heldout/oracle/mae``,
        ``value/insample/kendall_tau``, ... Held-out figures only where measured."""
        out: dict[str, float] = {"value/heldout/fraction": float(self.holdout_fraction)}
        for row in [*self.tasks, self.overall]:
            held = "value/heldout" if row is self.overall else f"value/heldout/task/{row.task}"
            ins = "value/insample" if row is self.overall else f"value/insample/task/{row.task}"
            out[f"{held}/episodes"] = float(row.heldout_episodes)
            out[f"{held}/steps"] = float(row.heldout_steps)
            out[f"{ins}/episodes"] = float(row.train_episodes)
            if not math.isnan(row.insample_tau):
                out[f"{ins}/kendall_tau"] = row.insample_tau
            if not math.isnan(row.insample_mae):
                out[f"{ins}/mae"] = row.insample_mae
            if not row.measured:
                continue
            for name, tau, mae in (
                ("", row.tau_wm, row.mae_wm),
                ("/time_baseline", row.tau_time, row.mae_time),
                ("/oracle", row.tau_oracle, row.mae_oracle),
            ):
                out[f"{held}{name}/kendall_tau"] = tau
                out[f"{held}{name}/mae"] = mae
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-able (NaN becomes None)."""

        def clean(row: ValueRow) -> dict[str, Any]:
            return {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(row).items()
            }

        return {
            "holdout_fraction": self.holdout_fraction,
            "min_heldout_episodes": self.min_heldout_episodes,
            "tasks": [clean(r) for r in self.tasks],
            "overall": clean(self.overall),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ValueReport:
        def row(r: dict[str, Any]) -> ValueRow:
            return ValueRow(**{k: (math.nan if v is None else v) for k, v in r.items()})

        return cls(
            holdout_fraction=float(d["holdout_fraction"]),
            tasks=[row(r) for r in d["tasks"]],
            overall=row(d["overall"]),
            min_heldout_episodes=int(d.get("min_heldout_episodes", MIN_HELDOUT_EPISODES)),
        )


def step_index(episodes: Episodes) -> np.ndarray:
    """int64 [N]: each step's index t inside its episode (0..T-1)."""
    starts = np.repeat(episodes.offsets[:-1], episodes.lengths)
    return np.arange(episodes.n_steps, dtype=np.int64) - starts


def _time_means(t: np.ndarray, ret: np.ndarray) -> np.ndarray:
    """Mean return per step index over the given (train) steps; steps never reached by them
    are not in the array (callers clip t to its length - 1: the last available mean)."""
    n = int(t.max()) + 1
    sums = np.bincount(t, weights=ret, minlength=n)
    counts = np.bincount(t, minlength=n)
    # every index below the longest episode's length has a step (episodes run 0..T-1)
    return sums / np.maximum(counts, 1)


def _predict(means: np.ndarray, t: np.ndarray) -> np.ndarray:
    return means[np.minimum(t, means.size - 1)]


def _tau_mae(
    preds: Sequence[np.ndarray], target: np.ndarray, cap: int, seed: int
) -> list[tuple[float, float]]:
    """(Kendall tau, MAE) of each prediction against ``target``; tau on one seeded subsample of at
    most ``cap`` steps, the same steps for every prediction."""
    if target.size == 0:
        return [(math.nan, math.nan) for _ in preds]
    pick = None
    if target.size > cap:
        pick = np.sort(np.random.default_rng(seed).choice(target.size, size=cap, replace=False))
    out = []
    for p in preds:
        mae = float(np.abs(p - target).mean())
        tau = kendall_tau(p, target) if pick is None else kendall_tau(p[pick], target[pick])
        out.append((tau, mae))
    return out


def value_report(
    episodes: Episodes,
    values: np.ndarray,
    returns: np.ndarray,
    heldout: np.ndarray,
    *,
    holdout_fraction: float,
    tau_max_samples: int = 200_000,
    seed: int = 0,
    min_heldout_episodes: int = MIN_HELDOUT_EPISODES,
) -> ValueReport:
    """The world model's values against the returns on held-out episodes, per task and overall,
    next to the time-only and outcome-oracle baselines fitted on the train episodes.

    ``values``, ``returns``: float [N] (the world model's values and the normalised Monte-Carlo
    returns-to-go it was trained on); ``heldout``: bool [E] (``heldout_mask`` of the episode ids).
    The overall row pools the held-out steps of every task that has train episodes.
    """
    values = np.asarray(values, np.float64)
    returns = np.asarray(returns, np.float64)
    heldout = np.asarray(heldout, bool)
    if values.shape != (episodes.n_steps,) or returns.shape != values.shape:
        raise ValueError(
            f"{episodes.n_steps} steps but values {values.shape} and returns {returns.shape}"
        )
    if heldout.shape != (episodes.n_episodes,):
        raise ValueError(f"{episodes.n_episodes} episodes but heldout has shape {heldout.shape}")
    t = step_index(episodes)
    held_step = np.repeat(heldout, episodes.lengths)
    success_step = np.repeat(episodes.success, episodes.lengths)
    step_task = episodes.step_task()
    pred_time = np.full(episodes.n_steps, np.nan)
    pred_oracle = np.full(episodes.n_steps, np.nan)
    rows: list[ValueRow] = []
    for code, task in enumerate(episodes.task_names):
        mine = episodes.task == code
        if not mine.any():
            continue
        n_held = int(np.count_nonzero(mine & heldout))
        n_train = int(np.count_nonzero(mine & ~heldout))
        in_task = step_task == code
        tr, ho = in_task & ~held_step, in_task & held_step
        ins_tau, ins_mae = _tau_mae([values[tr]], returns[tr], tau_max_samples, seed)[0]
        base = {
            "task": task,
            "heldout_episodes": n_held,
            "heldout_steps": int(np.count_nonzero(ho)),
            "train_episodes": n_train,
            "insample_tau": ins_tau,
            "insample_mae": ins_mae,
        }
        if n_train == 0:
            rows.append(ValueRow(**base, note="no train episodes (baselines need some)"))
            continue
        means = _time_means(t[tr], returns[tr])
        pred_time[ho] = _predict(means, t[ho])
        pred_oracle[ho] = pred_time[ho]
        for flag in (True, False):
            fit = tr & (success_step == flag)
            use = ho & (success_step == flag)
            if fit.any() and use.any():
                pred_oracle[use] = _predict(_time_means(t[fit], returns[fit]), t[use])
        if n_held < min_heldout_episodes:
            word = "episode" if n_held == 1 else "episodes"
            rows.append(
                ValueRow(**base, note=f"{n_held} held-out {word} (need {min_heldout_episodes})")
            )
            continue
        rows.append(
            _measured(base, values, returns, pred_time, pred_oracle, ho, tau_max_samples, seed)
        )
    pooled = held_step & ~np.isnan(pred_time)  # held-out steps of tasks with train episodes
    pooled_eps = int(np.count_nonzero(heldout & np.isin(episodes.task, episodes.task[~heldout])))
    train_all = ~held_step
    ins_tau, ins_mae = _tau_mae([values[train_all]], returns[train_all], tau_max_samples, seed)[0]
    base = {
        "task": "all",
        "heldout_episodes": int(np.count_nonzero(heldout)),
        "heldout_steps": int(np.count_nonzero(held_step)),
        "train_episodes": int(np.count_nonzero(~heldout)),
        "insample_tau": ins_tau,
        "insample_mae": ins_mae,
    }
    if pooled_eps < min_heldout_episodes:
        note = (
            "held-out split off (training.world_model.holdout_fraction 0)"
            if holdout_fraction == 0
            else f"{pooled_eps} held-out episode{'' if pooled_eps == 1 else 's'} of tasks with "
            f"train episodes (need {min_heldout_episodes})"
        )
        overall = ValueRow(**base, note=note)
    else:
        overall = _measured(
            base, values, returns, pred_time, pred_oracle, pooled, tau_max_samples, seed
        )
    return ValueReport(float(holdout_fraction), rows, overall, min_heldout_episodes)


def _measured(
    base: dict[str, Any],
    values: np.ndarray,
    returns: np.ndarray,
    pred_time: np.ndarray,
    pred_oracle: np.ndarray,
    sel: np.ndarray,
    cap: int,
    seed: int,
) -> ValueRow:
    (tw, mw), (tt, mt), (to, mo) = _tau_mae(
        [values[sel], pred_time[sel], pred_oracle[sel]], returns[sel], cap, seed
    )
    return ValueRow(
        **base, tau_wm=tw, tau_time=tt, tau_oracle=to, mae_wm=mw, mae_time=mt, mae_oracle=mo
    )


# --------------------------------------------------------------------------- indicator separation


@dataclass(frozen=True)
class SeparationRow:
    """P(I = 1) of one task (or ``"all"``) on four groups of steps; NaN for an empty group."""

    task: str
    steps: int  # steps counted (human steps left out when they were forced to 1)
    human_steps: int  # human steps left out
    pos_frac_success: float
    pos_frac_failure: float
    pos_frac_interior: float
    pos_frac_final: float
    success_steps: int
    failure_steps: int
    interior_steps: int
    final_steps: int


@dataclass(frozen=True)
class IndicatorSeparation:
    """Does I = 1 pick out better steps? Per task and overall (``indicator_separation``)."""

    n_steps: int | None  # n of the n-step advantage; None = Monte-Carlo (every step is final)
    human_excluded: bool
    tasks: list[SeparationRow] = field(default_factory=list)
    overall: SeparationRow | None = None

    def lines(self) -> list[str]:
        """One line per task, then ``all``."""
        final = "final" if self.n_steps is None else f"final-{self.n_steps}"
        tail = " (human steps left out)" if self.human_excluded else ""
        out = [f"P(I=1) on success / failure episodes, interior / {final} steps{tail}"]
        for r in [*self.tasks, *([self.overall] if self.overall else [])]:
            human = f", {r.human_steps} human steps left out" if r.human_steps else ""
            out.append(
                f"  {r.task}: success {_f(r.pos_frac_success)} / failure "
                f"{_f(r.pos_frac_failure)}, interior {_f(r.pos_frac_interior)} / {final} "
                f"{_f(r.pos_frac_final)} ({r.steps} steps{human})"
            )
        return out

    def metrics(self) -> dict[str, float]:
        """``label/task/<task>/pos_frac_success`` (and ``_failure``, ``_interior``, ``_final``),
        ``label/task/<task>/human_steps``; overall ``label/pos_frac_success``, ... (no NaN)."""
        out: dict[str, float] = {}
        for r in [*self.tasks, *([self.overall] if self.overall else [])]:
            prefix = "label" if r is self.overall else f"label/task/{r.task}"
            for key in ("success", "failure", "interior", "final"):
                v = getattr(r, f"pos_frac_{key}")
                if not math.isnan(v):
                    out[f"{prefix}/pos_frac_{key}"] = v
            out[f"{prefix}/human_steps"] = float(r.human_steps)
        return out

    def to_json(self) -> dict[str, Any]:
        def clean(r: SeparationRow) -> dict[str, Any]:
            return {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(r).items()
            }

        return {
            "n_steps": self.n_steps,
            "human_excluded": self.human_excluded,
            "tasks": [clean(r) for r in self.tasks],
            "overall": clean(self.overall) if self.overall else None,
        }


def _frac(ind: np.ndarray, sel: np.ndarray) -> tuple[float, int]:
    n = int(np.count_nonzero(sel))
    return (float(np.count_nonzero(ind & sel)) / n if n else math.nan), n


def _separation_row(
    task: str,
    ind: np.ndarray,
    count: np.ndarray,
    human: np.ndarray,
    success: np.ndarray,
    final: np.ndarray,
) -> SeparationRow:
    ps, ns = _frac(ind, count & success)
    pf, nf = _frac(ind, count & ~success)
    pi, ni = _frac(ind, count & ~final)
    pl, nl = _frac(ind, count & final)
    return SeparationRow(
        task=task,
        steps=int(np.count_nonzero(count)),
        human_steps=int(np.count_nonzero(human)),
        pos_frac_success=ps,
        pos_frac_failure=pf,
        pos_frac_interior=pi,
        pos_frac_final=pl,
        success_steps=ns,
        failure_steps=nf,
        interior_steps=ni,
        final_steps=nl,
    )


def indicator_separation(
    episodes: Episodes,
    indicator: np.ndarray,
    human: np.ndarray | None = None,
    *,
    n_steps: int | None,
    exclude_human: bool = True,
) -> IndicatorSeparation:
    """P(I = 1) per task and overall on steps of successful vs failed episodes, and on interior
    steps vs final steps (t >= T - n: no bootstrap; ``n_steps=None``: every step).

    ``exclude_human``: leave human steps out (pass ``rl.threshold.force_human_positive``: forced
    to 1, they would inflate every group without saying anything about the advantages).
    """
    ind = np.asarray(indicator, bool)
    if ind.shape != (episodes.n_steps,):
        raise ValueError(f"{episodes.n_steps} steps but indicator has shape {ind.shape}")
    hum = np.zeros(ind.shape, bool) if human is None else np.asarray(human, bool)
    if hum.shape != ind.shape:
        raise ValueError(f"{episodes.n_steps} steps but human has shape {hum.shape}")
    dropped = hum if exclude_human else np.zeros(ind.shape, bool)
    count = ~dropped
    t = step_index(episodes)
    length = np.repeat(episodes.lengths, episodes.lengths)
    final = np.ones(ind.shape, bool) if n_steps is None else t >= length - n_steps
    success = np.repeat(episodes.success, episodes.lengths)
    step_task = episodes.step_task()
    rows = []
    for code, task in enumerate(episodes.task_names):
        sel = step_task == code
        if not sel.any():
            continue
        rows.append(_separation_row(task, ind, count & sel, dropped & sel, success, final))
    overall = _separation_row("all", ind, count, dropped, success, final)
    return IndicatorSeparation(n_steps, bool(exclude_human), rows, overall)
