"""Everything the labeller computes for a set of episodes, in one call.

Given the world model's values for every step, this chains rewards (scaled per task), Monte-Carlo
returns (the value targets), advantages and the indicator with its thresholds. Each step is its own
module; this file only fixes the order and what is handed on, so the labeller actor stays thin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ramp.platform.rl.advantages import advantages, discounted_returns
from ramp.platform.rl.layout import Episodes, column_bool, column_float32, episodes_from_table
from ramp.platform.rl.rewards import RewardScale, episode_rewards
from ramp.platform.rl.settings import RLConfig
from ramp.platform.rl.thresholds import Thresholds, label_indicator


@dataclass(frozen=True)
class Labels:
    """Per-step labels (N) and the per-task constants that produced them (log both)."""

    reward: np.ndarray  # float32, scaled into [-1, 0] returns
    returns: np.ndarray  # float32, Monte-Carlo returns: the world model's value targets
    advantage: np.ndarray  # float32
    indicator: np.ndarray  # bool
    thresholds: Thresholds
    scale: RewardScale

    def metrics(self) -> dict[str, float]:
        return {**self.scale.metrics(), **self.thresholds.metrics()}


def label_steps(
    episodes: Episodes,
    values: np.ndarray,
    human: np.ndarray | None,
    cfg: RLConfig,
    stored_rewards: np.ndarray | None = None,
    previous: Thresholds | None = None,
    env_t_max: Mapping[str, int] | None = None,
) -> Labels:
    """Labels of flat per-step arrays; ``previous`` thresholds are kept for the tasks they know;
    ``env_t_max`` is the default T_max per task (``rl.rewards.env_t_max(cfg)``)."""
    reward, scale = episode_rewards(episodes, cfg.reward, stored_rewards, env_t_max)
    returns = discounted_returns(reward, episodes.offsets, cfg.advantage.gamma)
    adv = advantages(reward, values, episodes.offsets, cfg.advantage)
    indicator, thresholds = label_indicator(adv, episodes, human, cfg.threshold, previous)
    return Labels(reward, returns, adv, indicator, thresholds, scale)


def label_table(
    table: pa.Table,
    values: np.ndarray,
    cfg: RLConfig,
    previous: Thresholds | None = None,
    env_t_max: Mapping[str, int] | None = None,
) -> Labels:
    """Labels of an episode table (rows contiguous per episode, in step order)."""
    episodes = episodes_from_table(table)
    human = column_bool(table, "intervention") if "intervention" in table.column_names else None
    stored = column_float32(table, "reward") if cfg.reward.source == "column" else None
    return label_steps(episodes, values, human, cfg, stored, previous, env_t_max)
