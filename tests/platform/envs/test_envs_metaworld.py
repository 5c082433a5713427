"""MetaWorld adapter: the contract, determinism, right-way-up images, success on an expert run."""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import body_geoms, segmentation_centroid

from ramp.platform.config import UnknownNameError
from ramp.platform.envs.metaworld import FULL_STATE_NAMES


def test_reset_step_and_contract(metaworld_env):
    env = metaworld_env
    obs = env.reset(0)
    spec = env.spec
    assert spec.cameras == ("corner",) and (spec.height, spec.width) == (96, 96)
    assert set(obs.images) == {"corner"}
    img = obs.images["corner"]
    assert img.dtype == np.uint8 and img.shape == (96, 96, 3) and img.std() > 10
    assert obs.state.dtype == np.float32 and obs.state.shape == (len(FULL_STATE_NAMES),)
    assert obs.instruction == "pick up the puck and place it at the goal"
    assert obs.task == "pick-place-v3" and not obs.success and not obs.done
    assert obs.trajectory_2d is not None and obs.trajectory_2d.shape == (2,)
    assert obs.ee_position is not None and obs.ee_position.shape == (3,)
    nxt = env.step(np.array([0.0, 0.0, 1.0, 0.0]))
    assert nxt.step == 1 and nxt.ee_position[2] > obs.ee_position[2]  # moved up
    emb = spec.embodiment_config()
    assert list(emb.cameras) == ["corner"] and emb.action_dim == 4
    assert emb.state_dim == len(FULL_STATE_NAMES) and emb.fps == 80.0


def test_bad_actions_and_tasks_are_refused(metaworld_env):
    env = metaworld_env
    env.reset(0)
    with pytest.raises(ValueError, match="4 values"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="not finite"):
        env.step(np.array([np.nan, 0, 0, 0]))
    with pytest.raises(UnknownNameError, match="did you mean 'pick-place-v3'"):
        env.set_task("pick-plac-v3")


def _roll(env, seed: int, steps: int = 15):
    obs = env.reset(seed)
    states, frames = [obs.state], [obs.images["corner"]]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs = env.step(rng.uniform(-1, 1, 4))
        states.append(obs.state)
        frames.append(obs.images["corner"])
    return np.stack(states), np.stack(frames)


def test_deterministic_under_a_seed(metaworld_env):
    s1, f1 = _roll(metaworld_env, 5)
    s2, f2 = _roll(metaworld_env, 5)
    s3, _ = _roll(metaworld_env, 6)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(f1, f2)
    assert not np.allclose(s1[0], s3[0])  # another seed, another initial state


@pytest.mark.parametrize("camera", ["corner", "corner2", "topview"])
def test_images_are_not_flipped_or_mirrored(camera):
    """The puck, placed left and right on the table, shows up where the camera geometry puts it;
    the table is in the lower half and world 'up' is image 'up'. A row flip (upside down) or a
    row-only flip of the upside-down corner cameras (a mirror image) fails one of these."""
    from envs_helpers import require

    require("metaworld", "metaworld")
    import mujoco

    from ramp.platform.envs.registry import make_env

    env = make_env("metaworld", tasks=["pick-place-v3"], cameras=[camera], height=96, width=96)
    try:
        env.reset(0)
        raw = env.raw
        model, data, r = raw.model, raw.data, env._renderer
        obj = body_geoms(model, ["obj"])
        qadr = model.jnt_qposadr[model.body_jntadr[model.body("obj").id]]
        xs = []
        for x, y in ((-0.25, 0.55), (0.25, 0.85)):
            data.qpos[qadr : qadr + 3] = (x, y, 0.02)
            mujoco.mj_forward(model, data)
            seen = segmentation_centroid(r.segmentation(data, camera), obj)
            where = r.project(data, data.body("obj").xpos, camera)
            assert seen is not None, f"puck at x={x} not visible in {camera}"
            assert np.linalg.norm(seen - where) < 5, (x, seen, where)
            xs.append(where[0])
            img = r.render(data)[camera]
            assert img.shape == (96, 96, 3)
        # Off-centre enough that a mirror image (x -> width - x) would miss by > 16 px.
        assert max(abs(x - 48) for x in xs) > 8, xs
        # world up is image up
        p = data.body("obj").xpos.copy()
        assert r.project(data, p + np.array([0, 0, 0.2]), camera)[1] < r.project(data, p, camera)[1]
        if camera != "topview":
            table = segmentation_centroid(
                r.segmentation(data, camera), body_geoms(model, ["tablelink"])
            )
            assert table is not None and table[1] > 48  # the table is in the bottom half
    finally:
        env.close()


def test_success_detected_on_an_expert_episode(metaworld_env):
    env = metaworld_env
    expert = env.expert()
    obs = env.reset(0)
    expert.reset()
    successes = []
    while not obs.done:
        obs = env.step(expert.act(obs))
        successes.append(obs.success)
    assert obs.success and obs.terminated and not obs.truncated
    assert successes[-1] and not any(successes[:-1])  # ends at the first success
    assert obs.step < 200


def test_random_actions_do_not_succeed_and_truncate():
    from envs_helpers import require

    require("metaworld", "metaworld")
    from ramp.platform.envs.registry import make_env

    env = make_env("metaworld", tasks=["door-open-v3"], render=False, max_steps=30)
    obs = env.reset(0)
    assert obs.images == {}
    rng = np.random.default_rng(1)
    while not obs.done:
        obs = env.step(rng.uniform(-1, 1, 4))
    assert obs.truncated and not obs.success and obs.step == 30
    env.close()


def test_proprio_state_mode():
    from envs_helpers import require

    require("metaworld", "metaworld")
    from ramp.platform.envs.registry import make_env

    env = make_env("metaworld", tasks=["reach-v3"], render=False, state="proprio")
    obs = env.reset(0)
    assert obs.state.shape == (4,) and env.spec.state_names == (
        "hand_x",
        "hand_y",
        "hand_z",
        "gripper",
    )
    env.close()
