"""FrankaKitchen adapter: contract, determinism, right-way-up images, per-subtask success."""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import body_geoms, require, segmentation_centroid

from ramp.platform.envs.suites import KITCHEN_SUBTASKS


@pytest.fixture(scope="module")
def kitchen():
    require("gymnasium_robotics", "gymnasium-robotics")
    from ramp.platform.envs.registry import make_env

    env = make_env("franka-kitchen", height=96, width=96)
    yield env
    env.close()


def _teleport(env, subtasks):
    import mujoco

    for s in subtasks:
        env.data.qpos[env._indices[s]] = env._goals[s]
    mujoco.mj_forward(env.model, env.data)


def test_reset_step_and_contract(kitchen):
    obs = kitchen.reset(0)
    assert set(obs.images) == {"overview"}
    img = obs.images["overview"]
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 10
    assert obs.state.shape == (59,) and obs.state.dtype == np.float32
    assert obs.progress == 0.0 and obs.subgoal == "open the microwave"
    assert "open the microwave" in obs.instruction and "hinge cabinet" in obs.instruction
    assert obs.trajectory_2d is not None and np.all(np.isfinite(obs.trajectory_2d))
    nxt = kitchen.step(np.full(9, 0.5))
    assert nxt.step == 1 and not np.allclose(nxt.state[:9], obs.state[:9])
    emb = kitchen.spec.embodiment_config()
    assert emb.action_dim == 9 and emb.fps == 12.5


def test_deterministic_under_a_seed(kitchen):
    def roll(seed):
        obs = kitchen.reset(seed)
        out = [obs.state]
        frames = [obs.images["overview"]]
        for a in np.random.default_rng(0).uniform(-1, 1, (10, 9)):
            obs = kitchen.step(a)
            out.append(obs.state)
            frames.append(obs.images["overview"])
        return np.stack(out), np.stack(frames)

    a, fa = roll(3)
    b, fb = roll(3)
    c, _ = roll(4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(a, c)


def test_images_right_way_up(kitchen):
    """The fingers are drawn where the camera geometry projects the end effector, and world up
    is image up: an upside-down or mirrored image fails."""
    kitchen.reset(0)
    r, model, data = kitchen._renderer, kitchen.model, kitchen.data
    fingers = body_geoms(model, ["panda0_leftfinger", "panda0_rightfinger"])
    seen = segmentation_centroid(r.segmentation(data, "overview"), fingers)
    ee = data.site_xpos[kitchen._ee_site]
    where = r.project(data, ee, "overview")
    assert seen is not None and np.linalg.norm(seen - where) < 6, (seen, where)
    # The light switch sits left of centre: a mirror image would put it ~20 px off.
    switch = segmentation_centroid(
        r.segmentation(data, "overview"), body_geoms(model, ["lightswitchroot"])
    )
    at = r.project(data, data.body("lightswitchroot").xpos, "overview")
    assert switch is not None and np.linalg.norm(switch - at) < 4, (switch, at)
    assert abs(at[0] - 48) > 8
    assert r.project(data, ee + np.array([0, 0, 0.3]), "overview")[1] < where[1]
    floor = segmentation_centroid(
        r.segmentation(data, "overview"), body_geoms(model, ["counters1"])
    )
    assert floor is not None


def test_success_per_subtask_by_driving_into_goal_states(kitchen):
    kitchen.set_task("all-7")
    kitchen.reset(0)
    _teleport(kitchen, ["microwave", "kettle"])
    obs = kitchen.step(np.zeros(9))
    assert kitchen.completed_subtasks == ["microwave", "kettle"]
    assert obs.progress == pytest.approx(2 / 7) and obs.subgoal == "turn on the bottom burner"
    assert not obs.success and obs.reward == 2.0
    _teleport(kitchen, KITCHEN_SUBTASKS[2:])
    obs = kitchen.step(np.zeros(9))
    assert obs.success and obs.terminated and obs.progress == 1.0 and obs.subgoal is None


@pytest.mark.parametrize("subtask", KITCHEN_SUBTASKS)
def test_each_subtask_is_a_task(kitchen, subtask):
    kitchen.set_task(subtask.replace(" ", "-"))
    obs = kitchen.reset(1)
    assert not obs.success and obs.progress == 0.0
    others = [s for s in KITCHEN_SUBTASKS if s != subtask]
    _teleport(kitchen, others)  # the other subtasks do not count
    assert not kitchen.step(np.zeros(9)).success
    _teleport(kitchen, [subtask])
    assert kitchen.step(np.zeros(9)).success
    kitchen.set_task("all-7")


def test_no_expert_for_kitchen(kitchen):
    from ramp.platform.envs.core import NoExpertError

    with pytest.raises(NoExpertError, match="experts exist for: metaworld"):
        kitchen.expert()
