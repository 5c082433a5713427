"""The simulated human takes over under each rule, hands back, and its steps are flagged in the
stored episode; the keyboard driver speaks the same interface."""

from __future__ import annotations

import numpy as np
import pytest

from ramp.platform.envs.core import Observation
from ramp.platform.envs.human import InterventionSource, SimulatedHuman, off_track
from ramp.platform.envs.settings import HumanConfig
from ramp.platform.envs.teleop import KeyboardTeleop

OFF = {"stuck_steps": None, "off_track_distance": None, "random_rate": 0.0}


def _run(env, policy, config: HumanConfig, seed: int = 3, max_steps: int = 120):
    from ramp.platform.envs.rollout import run_episode

    human = SimulatedHuman(env.expert(), config)
    ep = run_episode(
        env, policy, seed, intervention=human, policy_version="policy-r0-test", max_steps=max_steps
    )
    return ep, human


def test_stuck_rule(metaworld_env):
    ep, human = _run(
        metaworld_env, lambda o: np.zeros(4), HumanConfig(**{**OFF, "stuck_steps": 10})
    )
    first = human.takeovers()[0]
    assert first.reason == "stuck" and first.step == 10  # warm-up 10 steps, then 10 still steps
    assert not ep.intervention[:10].any() and ep.intervention[10]
    assert {e.reason for e in human.takeovers()} == {"stuck"}


def test_off_track_rule(metaworld_env):
    cfg = HumanConfig(**{**OFF, "off_track_distance": 0.1})
    ep, human = _run(metaworld_env, lambda o: np.array([1.0, 0, 0, -1]), cfg)
    assert human.reference is not None and len(human.reference) > 10  # the expert's own path
    assert human.takeovers()[0].reason == "off_track"
    assert ep.intervention.any()


def test_random_rule_and_hand_back_after_m_steps(metaworld_env):
    cfg = HumanConfig(**{**OFF, "random_rate": 0.2, "hand_back_steps": 5, "warmup_steps": 0})
    ep, human = _run(metaworld_env, lambda o: np.zeros(4), cfg, max_steps=80)
    assert {e.reason for e in human.takeovers()} == {"random"}
    backs = [e for e in human.events if e.kind == "hand_back"]
    assert backs and all(e.reason == "steps" for e in backs)
    # every takeover lasts exactly hand_back_steps steps (unless the episode ended first)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, ep.intervention.astype(int), 0])))[::2]
    assert set(runs[:-1]) == {5}
    # same seeds, same takeovers
    ep2, _ = _run(metaworld_env, lambda o: np.zeros(4), cfg, max_steps=80)
    np.testing.assert_array_equal(ep.intervention, ep2.intervention)


def test_the_expert_policy_needs_no_help(metaworld_env):
    expert = metaworld_env.expert()
    ep, human = _run(metaworld_env, expert.act, HumanConfig(), seed=0, max_steps=500)
    assert ep.success and not ep.intervention.any() and human.takeovers() == []


def test_flags_land_in_the_stored_episode(metaworld_env, tmp_path):
    from ramp.platform.episodes import EpisodeStore

    ep, _ = _run(metaworld_env, lambda o: np.zeros(4), HumanConfig(**{**OFF, "stuck_steps": 10}))
    spec = metaworld_env.spec
    store = EpisodeStore(str(tmp_path), {spec.embodiment: spec.embodiment_config()})
    assert store.write(ep).status == "written"
    table = store.read_episode(ep.episode_id, columns=["intervention", "policy_version"])
    flags = np.array(table.column("intervention").to_pylist())
    versions = table.column("policy_version").to_pylist()
    np.testing.assert_array_equal(flags, ep.intervention)
    assert flags.any() and not flags.all()
    assert {v for v, f in zip(versions, flags, strict=True) if f} == {"human"}
    assert {v for v, f in zip(versions, flags, strict=True) if not f} == {"policy-r0-test"}
    entry = store.lookup(ep.episode_id)
    assert entry is not None


class _Still:
    """A stub expert: the subtask test below needs no simulator."""

    def reset(self):
        pass

    def act(self, obs):
        return np.ones(4)


def _obs(step, progress, ee=(0.0, 0.0, 0.0)):
    return Observation(
        images={},
        state=np.zeros(4, np.float32),
        instruction="",
        task="t",
        progress=progress,
        ee_position=np.array(ee),
        step=step,
    )


def test_hand_back_on_subtask_completion():
    human = SimulatedHuman(_Still(), HumanConfig(**{**OFF, "stuck_steps": 3, "warmup_steps": 0}))
    human.reset(None, 0)
    got = [human.act(_obs(t, 0.0), np.zeros(4)) for t in range(5)]
    assert got[:3] == [None] * 3 and got[3] is not None  # stuck after 3 still steps
    assert human.act(_obs(5, 0.5), np.zeros(4)) is None  # a subtask completed: hand back
    assert [e.reason for e in human.events] == ["stuck", "subtask"]


def test_off_track_distance_to_a_path():
    path = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]], float)
    assert off_track(np.array([0.5, 0.2, 0]), path) == pytest.approx(0.2)
    assert off_track(np.array([1.3, 0.5, 0]), path) == pytest.approx(0.3)


def test_keyboard_teleop_is_an_intervention_source():
    presses = iter([["w"], [" "], ["w", "w", "d"], ["g", "r"], [" "], []])
    kb = KeyboardTeleop(keys=lambda: next(presses))
    assert isinstance(kb, InterventionSource)
    kb.reset(None, 0)
    o = _obs(0, None)
    assert kb.act(o, np.zeros(4)) is None  # not engaged: the policy drives
    np.testing.assert_array_equal(kb.act(o, np.zeros(4)), [0, 0, 0, -1])  # engaged
    np.testing.assert_array_equal(kb.act(o, np.zeros(4)), [1, -1, 0, -1])  # clipped to bounds
    np.testing.assert_array_equal(kb.act(o, np.zeros(4)), [0, 0, 1, 1])  # gripper toggled
    assert kb.act(o, np.zeros(4)) is None  # handed back
