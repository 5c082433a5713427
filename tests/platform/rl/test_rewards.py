"""Rewards from outcomes and their per-task scale into [-1, 0]."""

from __future__ import annotations

import numpy as np
import pytest

from ramp.platform.rl.advantages import discounted_returns
from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.rewards import (
    episode_rewards,
    normalise_rewards,
    reward_scale,
    rewards_from_outcome,
)
from ramp.platform.rl.settings import RewardConfig


def test_rewards_from_outcome_by_hand():
    got = rewards_from_outcome([3, 2, 1], [True, False, False], c_fail=5.0)
    np.testing.assert_array_equal(got, [-1, -1, 0, -1, -5, -5])
    assert got.dtype == np.float32


def test_all_success_and_all_failure():
    np.testing.assert_array_equal(rewards_from_outcome([2, 2], [True, True], 9), [-1, 0, -1, 0])
    # c_fail per episode
    np.testing.assert_array_equal(
        rewards_from_outcome([2, 1], [False, False], np.array([4.0, 7.0])), [-1, -4, -7]
    )


def test_scale_from_data_and_config():
    # task a: longest episode 3 steps, from the data; task b: t_max 10 from config, c_fail 2
    eps = Episodes.from_lengths([3, 2, 4], task=[0, 0, 1], task_names=["a", "b"])
    scale = reward_scale(eps, RewardConfig(t_max={"b": 10}, c_fail=2.0))
    assert scale.t_max == {"a": 3, "b": 10}
    assert scale.t_max_source == {"a": "data", "b": "config"}
    assert scale.denominator("a") == 5.0 and scale.denominator("b") == 12.0
    assert scale.metrics()["reward/task/a/t_max_from_data"] == 1.0
    # default c_fail = t_max of the task
    scale = reward_scale(eps, RewardConfig(t_max={"b": 10}))
    assert scale.c_fail == {"a": 3.0, "b": 10.0}


def test_task_seen_for_the_first_time_gets_its_longest_episode():
    eps = Episodes.from_lengths([2, 5], task=[0, 1], task_names=["known", "new"])
    scale = reward_scale(eps, RewardConfig(t_max={"known": 4}))
    assert scale.t_max == {"known": 4, "new": 5}
    assert scale.t_max_source["new"] == "data"


def test_episode_longer_than_configured_t_max_is_refused():
    eps = Episodes.from_lengths([6], task_names=["pick"])
    with pytest.raises(ValueError, match=r"rl.reward.t_max.pick is 5"):
        reward_scale(eps, RewardConfig(t_max={"pick": 5}))


def test_normalised_returns_lie_in_minus_one_zero():
    # t_max = 3 (from data), c_fail = 3: denominator 6. A failed 3-step episode returns
    # -(2 + 3) / 6 at its start; a successful one -(2) / 6.
    eps = Episodes.from_lengths([3, 3, 1], success=[False, True, False])
    rewards, scale = episode_rewards(eps, RewardConfig())
    assert scale.denominator("task") == 6.0
    np.testing.assert_allclose(rewards, np.array([-1, -1, -3, -1, -1, 0, -3]) / 6, rtol=1e-6)
    g = discounted_returns(rewards, eps.offsets)
    np.testing.assert_allclose(g, np.array([-5, -4, -3, -2, -1, 0, -3]) / 6, rtol=1e-6)
    assert g.min() >= -1 and g.max() <= 0


def test_stored_reward_column_is_normalised_too():
    eps = Episodes.from_lengths([2], task_names=["pick"])
    stored = np.array([-1.0, -2.0], np.float32)
    rewards, _ = episode_rewards(eps, RewardConfig(source="column", c_fail=2.0), stored)
    np.testing.assert_allclose(rewards, [-0.25, -0.5])
    with pytest.raises(ValueError, match="no reward column"):
        episode_rewards(eps, RewardConfig(source="column"))
    raw, _ = episode_rewards(eps, RewardConfig(normalise=False))
    np.testing.assert_array_equal(raw, [-1, 0])


def test_normalise_checks_the_shape():
    eps = Episodes.from_lengths([2])
    scale = reward_scale(eps, RewardConfig())
    with pytest.raises(ValueError, match="2 steps"):
        normalise_rewards(np.zeros(3), eps, scale)
