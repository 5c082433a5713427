"""MetaWorld's scripted experts solve the MT10 tasks: 20 seeded episodes per task, rendering off.

EXPECTED is what was measured (docs/envs.md, "Expert success"); the test allows MARGIN below it so
a MetaWorld or MuJoCo upgrade that breaks an expert is caught, not a single unlucky seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import require

from ramp.platform.envs.suites import METAWORLD_MT10

EPISODES = 20
MARGIN = 0.10
EXPECTED = {  # measured: seeds 0-19, 500-step limit, metaworld 3.1.1, mujoco 3.3.0
    "reach-v3": 1.00,
    "push-v3": 1.00,
    "pick-place-v3": 1.00,
    "door-open-v3": 0.95,
    "drawer-open-v3": 1.00,
    "drawer-close-v3": 1.00,
    "button-press-topdown-v3": 1.00,
    "peg-insert-side-v3": 0.95,
    "window-open-v3": 1.00,
    "window-close-v3": 1.00,
}


@pytest.fixture(scope="module")
def state_only_env():
    require("metaworld", "metaworld")
    from ramp.platform.envs.registry import make_env

    env = make_env("metaworld", render=False)
    yield env
    env.close()


def test_expected_covers_mt10():
    assert set(EXPECTED) == set(METAWORLD_MT10)


@pytest.mark.parametrize("task", METAWORLD_MT10)
def test_expert_success_rate(state_only_env, task):
    env = state_only_env
    env.set_task(task)
    expert = env.expert()
    wins, lengths = 0, []
    for seed in range(EPISODES):
        obs = env.reset(seed)
        expert.reset()
        while not obs.done:
            obs = env.step(expert.act(obs))
        wins += obs.success
        lengths.append(obs.step)
    rate = wins / EPISODES
    assert rate >= EXPECTED[task] - MARGIN, (
        f"{task}: expert success {rate:.2f} < documented {EXPECTED[task]:.2f} - {MARGIN}; "
        f"episode lengths {lengths}"
    )
    assert np.median(lengths) < 200
