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


def _cfg(*sets: str):
    from ramp.platform.config import load_config

    return load_config("quickstart", list(sets))


def test_t_max_defaults_to_the_envs_step_limit():
    from ramp.platform.rl.rewards import env_t_max

    # quickstart: three MetaWorld tasks, envs.env.max_steps 120
    cfg = _cfg()
    assert env_t_max(cfg) == {t: 120 for t in cfg.envs.env.tasks}
    # no envs.env.max_steps: the suite's own limit (MetaWorld's max_path_length 500), not
    # rollout.max_steps (rollouts only; demonstrations still run to the env's limit)
    free = _cfg("envs.env.max_steps=null", "envs.rollout.max_steps=80")
    assert set(env_t_max(free).values()) == {500}
    kitchen = _cfg(
        "envs.env.max_steps=null", "envs.env.suite=franka-kitchen", "envs.env.tasks=null"
    )
    assert env_t_max(kitchen) == {"all-7": 500}
    libero = _cfg("envs.env.max_steps=null", "envs.env.suite=libero-spatial", "envs.env.tasks=null")
    assert set(env_t_max(libero).values()) == {220} and len(env_t_max(libero)) == 10


def test_env_t_max_fixes_the_scale_and_only_unknown_tasks_use_the_data():
    eps = Episodes.from_lengths([3, 7, 5], task=[0, 0, 1], task_names=["reach", "other"])
    cfg = RewardConfig(t_max={"pinned": 9})
    scale = reward_scale(eps, cfg, {"reach": 120, "pinned": 50})
    assert scale.t_max == {"reach": 120, "other": 5}
    assert scale.t_max_source == {"reach": "env", "other": "data"}
    assert scale.metrics()["reward/task/reach/t_max_from_data"] == 0.0
    assert scale.metrics()["reward/task/other/t_max_from_data"] == 1.0
    # a longer (failed) rollout arriving later does not move the env-fixed scale
    longer = Episodes.from_lengths([3, 110], [True, False], [0, 0], task_names=["reach"])
    assert reward_scale(longer, cfg, {"reach": 120}).t_max == {"reach": 120}
    # rl.reward.t_max wins over the env's limit
    both = reward_scale(eps, RewardConfig(t_max={"reach": 8}), {"reach": 120})
    assert (both.t_max["reach"], both.t_max_source["reach"]) == (8, "config")
    # an episode of exactly the limit (a rollout capped at max_steps) is fine; a longer one is not
    assert reward_scale(longer, cfg, {"reach": 110}).t_max == {"reach": 110}
    with pytest.raises(
        ValueError, match=r"110 steps but the env's step limit.*is 100.*t_max.reach"
    ):
        reward_scale(longer, cfg, {"reach": 100})
    rewards, _ = episode_rewards(longer, cfg, env_t_max={"reach": 120})
    assert rewards[-1] == pytest.approx(-120 / 240)  # failed: -c_fail / (t_max + c_fail)
