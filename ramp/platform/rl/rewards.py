"""Per-step rewards from episode outcomes, and their per-task scale (PAPER.md section 3).

The reward is -1 every step, and at the last step 0 on success or -C_fail on failure, so the
undiscounted return from step t is minus the steps still to go (plus C_fail on failure). Values
are compared across tasks of very different lengths, so rewards are divided per task by
``T_max + C_fail``, the most negative return an episode of that task can reach: every return and
value then lies in [-1, 0].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ramp.platform.rl.layout import Episodes, offsets_from_lengths
from ramp.platform.rl.settings import RewardConfig

if TYPE_CHECKING:
    from ramp.platform.config import RampConfig

TMaxSource = Literal["config", "env", "data"]


def rewards_from_outcome(
    lengths: np.ndarray, success: np.ndarray, c_fail: float | np.ndarray
) -> np.ndarray:
    """Raw per-step rewards (float32, N = sum(lengths)): -1, last step 0 or -c_fail.

    ``c_fail`` is one number or one per episode. A one-step episode gets only the terminal reward.
    """
    offsets = offsets_from_lengths(lengths)
    success = np.asarray(success, dtype=bool)
    if success.shape != (offsets.size - 1,):
        raise ValueError(f"{offsets.size - 1} episodes but success has shape {success.shape}")
    rewards = np.full(int(offsets[-1]), -1.0, dtype=np.float32)
    last = offsets[1:] - 1
    rewards[last] = np.where(success, 0.0, -np.asarray(c_fail, dtype=np.float64))
    return rewards


@dataclass(frozen=True)
class RewardScale:
    """The per-task constants a labelling run used; log them, and freeze t_max in config."""

    t_max: dict[str, int]
    c_fail: dict[str, float]
    t_max_source: dict[str, TMaxSource]

    def denominator(self, task: str) -> float:
        """T_max + C_fail: the most negative return of the task, mapped to -1."""
        return float(self.t_max[task] + self.c_fail[task])

    def metrics(self) -> dict[str, float]:
        """Flat keys for the tracker, e.g. ``reward/task/pick/t_max``."""
        out: dict[str, float] = {}
        for task in self.t_max:
            out[f"reward/task/{task}/t_max"] = float(self.t_max[task])
            out[f"reward/task/{task}/c_fail"] = float(self.c_fail[task])
            out[f"reward/task/{task}/t_max_from_data"] = float(self.t_max_source[task] == "data")
        return out


def env_t_max(cfg: RampConfig) -> dict[str, int]:
    """The default T_max of every task of ``cfg.envs.env``: the env's episode step limit.

    THE one place the reward scale's defaults come from: the world model's value targets
    (``training.data.value_targets``) and the labeller (``rl.relabel``) both pass this to
    ``episode_rewards``, so targets and labels share one scale, fixed per task from round to round
    (a longer failed rollout arriving later cannot change it). The limit is ``envs.env.max_steps``,
    else the suite's own (``envs.suites.SUITES[suite].max_steps``): every episode of the env,
    demonstration or rollout, is at most that long (``envs.rollout.max_steps`` can only cap
    rollouts lower, so it is not the bound of the demonstrations).
    """
    env = cfg.envs.env
    return {task: env.step_limit for task in env.task_list}


def reward_scale(
    episodes: Episodes, cfg: RewardConfig, env_t_max: Mapping[str, int] | None = None
) -> RewardScale:
    """T_max and C_fail of every task present: from ``rl.reward.t_max``, else from the env's step
    limit (``env_t_max``, see ``env_t_max(cfg)``), else from the longest episode seen.

    A task unknown to both (one the env config does not list, seen for the first time) has its
    longest episode in this data stand in, reported as such (``t_max_source`` "data"). An episode
    longer than a configured or env T_max would push values below -1, so it is refused.
    """
    env_t_max = env_t_max or {}
    lengths = episodes.lengths
    longest = np.zeros(episodes.n_tasks, dtype=np.int64)
    np.maximum.at(longest, episodes.task, lengths)
    present = np.zeros(episodes.n_tasks, bool)
    present[episodes.task] = True
    t_max: dict[str, int] = {}
    source: dict[str, TMaxSource] = {}
    c_fail: dict[str, float] = {}
    for code, task in enumerate(episodes.task_names):
        if not present[code]:
            continue
        if task in cfg.t_max or task in env_t_max:
            configured = task in cfg.t_max
            t_max[task] = int(cfg.t_max[task] if configured else env_t_max[task])
            source[task] = "config" if configured else "env"
            if longest[code] > t_max[task]:
                where = (
                    f"rl.reward.t_max.{task} is {t_max[task]}"
                    if configured
                    else f"the env's step limit (envs.env.max_steps or the suite's) is "
                    f"{t_max[task]}, the default T_max of the task"
                )
                raise ValueError(
                    f"task {task!r}: an episode has {int(longest[code])} steps but {where}; "
                    f"set rl.reward.t_max.{task} to at least {int(longest[code])} (values would "
                    "leave [-1, 0]) or cut such episodes at the task's time limit"
                )
        else:
            t_max[task] = int(longest[code])
            source[task] = "data"
        c_fail[task] = float(t_max[task]) if cfg.c_fail is None else float(cfg.c_fail)
    return RewardScale(t_max=t_max, c_fail=c_fail, t_max_source=source)


def episode_denominators(episodes: Episodes, scale: RewardScale) -> np.ndarray:
    """T_max + C_fail of each episode's task (float64 [E])."""
    per_task = np.ones(episodes.n_tasks, dtype=np.float64)
    for code, task in enumerate(episodes.task_names):
        if task in scale.t_max:
            per_task[code] = scale.denominator(task)
    return per_task[episodes.task]


def normalise_rewards(rewards: np.ndarray, episodes: Episodes, scale: RewardScale) -> np.ndarray:
    """Rewards divided by their task's T_max + C_fail (float32), so returns lie in [-1, 0]."""
    rewards = np.asarray(rewards)
    if rewards.shape != (episodes.n_steps,):
        raise ValueError(f"{episodes.n_steps} steps but rewards has shape {rewards.shape}")
    inv = (1.0 / episode_denominators(episodes, scale)).astype(np.float32)
    return (rewards * np.repeat(inv, episodes.lengths)).astype(np.float32, copy=False)


def episode_rewards(
    episodes: Episodes,
    cfg: RewardConfig,
    stored: np.ndarray | None = None,
    env_t_max: Mapping[str, int] | None = None,
) -> tuple[np.ndarray, RewardScale]:
    """The rewards the advantages are computed from, per ``cfg.source``, and the scale used.

    ``source="outcome"`` recomputes them from lengths and success (so changing C_fail needs no
    rewrite of stored episodes); ``source="column"`` uses ``stored`` (the episode's reward column).
    ``env_t_max``: the default T_max per task (``env_t_max(cfg)``; see ``reward_scale``).
    """
    scale = reward_scale(episodes, cfg, env_t_max)
    if cfg.source == "column":
        if stored is None:
            raise ValueError("rl.reward.source is 'column' but no reward column was given")
        rewards = np.asarray(stored, dtype=np.float32)
    else:
        c_fail = np.array([scale.c_fail.get(t, 0.0) for t in episodes.task_names], np.float64)
        rewards = rewards_from_outcome(episodes.lengths, episodes.success, c_fail[episodes.task])
    if cfg.normalise:
        rewards = normalise_rewards(rewards, episodes, scale)
    return rewards, scale
