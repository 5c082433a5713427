"""Bad episodes are refused with an error naming the episode, the step and the column; nothing
partial is written, and a good episode under the same id can be written afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from ramp.platform.episodes import EpisodeNotFoundError, EpisodeValidationError

EID = "bad-ep-1"
T = 6


def _with(array: np.ndarray, index, value) -> np.ndarray:
    out = np.array(array, copy=True)
    out[index] = value
    return out


def _base(make_episode):
    return make_episode(EID, num_steps=T)


# name -> (overrides built from a good episode, column, step or None, words in the message)
CASES = {
    "nan-state": (lambda ep: {"state": _with(ep.state, (3, 1), np.nan)}, "state", 3, "nan"),
    "inf-state": (lambda ep: {"state": _with(ep.state, (0, 3), np.inf)}, "state", 0, "inf"),
    "nan-action": (lambda ep: {"action": _with(ep.action, (5, 2), np.nan)}, "action", 5, "nan"),
    "inf-action": (lambda ep: {"action": _with(ep.action, (2, 0), -np.inf)}, "action", 2, "inf"),
    "nan-reward": (lambda ep: {"reward": _with(np.zeros(T), 4, np.nan)}, "reward", 4, "nan"),
    "inf-reward": (lambda ep: {"reward": _with(np.zeros(T), 1, np.inf)}, "reward", 1, "inf"),
    "state-dim": (
        lambda ep: {"state": np.zeros((T, 5), np.float32)},
        "state",
        0,
        "has 5 values, the embodiment declares 4",
    ),
    "action-dim": (
        lambda ep: {"action": np.zeros((T, 2), np.float32)},
        "action",
        0,
        "has 2 values, the embodiment declares 3",
    ),
    "missing-camera": (
        lambda ep: {"images": {"front": ep.images["front"]}},
        "image.wrist",
        None,
        "missing",
    ),
    "extra-camera": (
        lambda ep: {"images": {**ep.images, "side": ep.images["front"]}},
        "image.side",
        None,
        "not declared",
    ),
    "frame-shape": (
        lambda ep: {"images": {**ep.images, "wrist": np.zeros((T, 16, 12, 3), np.uint8)}},
        "image.wrist",
        None,
        "(6, 12, 16, 3)",
    ),
    "frame-count": (
        lambda ep: {"images": {**ep.images, "front": ep.images["front"][:-1]}},
        "image.front",
        None,
        "(6, 16, 16, 3)",
    ),
    "frame-dtype": (
        lambda ep: {"images": {**ep.images, "front": ep.images["front"].astype(np.float32)}},
        "image.front",
        None,
        "float32",
    ),
    "step-gap": (
        lambda ep: {"step": np.array([0, 1, 2, 4, 5, 6])},
        "step",
        3,
        "0..5",
    ),
    "step-from-one": (lambda ep: {"step": np.arange(1, T + 1)}, "step", 0, "0..5"),
    "step-repeated": (lambda ep: {"step": np.array([0, 1, 2, 2, 3, 4])}, "step", 3, "0..5"),
    "done-early": (
        lambda ep: {"done": _with(np.zeros(T, bool), [2, T - 1], True)},
        "done",
        2,
        "before the last step",
    ),
    "done-missing": (lambda ep: {"done": np.zeros(T, bool)}, "done", T - 1, "last step"),
    "empty-policy-version": (
        lambda ep: {"policy_version": ["p"] * 3 + [""] + ["p"] * 2},
        "policy_version",
        3,
        "must name the policy",
    ),
    "progress-above-1": (
        lambda ep: {"progress": _with(np.linspace(0, 1, T), 4, 1.5)},
        "progress",
        4,
        "outside [0, 1]",
    ),
    "progress-negative": (
        lambda ep: {"progress": _with(np.linspace(0, 1, T), 0, -0.1)},
        "progress",
        0,
        "outside [0, 1]",
    ),
    "undeclared-embodiment": (
        lambda ep: {"embodiment": "humanoid"},
        "embodiment",
        None,
        "humanoid",
    ),
    "decreasing-timestamp": (
        lambda ep: {"timestamp": np.array([0.0, 0.1, 0.3, 0.2, 0.4, 0.5])},
        "timestamp",
        3,
        "decrease",
    ),
    "short-instructions": (
        lambda ep: {"instructions": ["a"] * (T - 1)},
        "instruction",
        None,
        "has 5 entries",
    ),
    "short-reward": (lambda ep: {"reward": np.zeros(T - 2)}, "reward", None, "has 4 steps"),
    "short-state": (lambda ep: {"state": ep.state[:-1]}, "state", None, "has 5 steps"),
    "short-trajectory": (
        lambda ep: {"trajectory_2d": np.zeros((T - 1, 4), np.float32)},
        "trajectory_2d",
        None,
        "has 5 steps",
    ),
    "odd-trajectory": (
        lambda ep: {"trajectory_2d": np.zeros((T, 3), np.float32)},
        "trajectory_2d",
        None,
        "even number",
    ),
    "nan-trajectory": (
        lambda ep: {"trajectory_2d": np.full((T, 2), np.nan, np.float32)},
        "trajectory_2d",
        None,
        "not finite",
    ),
    "flat-state": (lambda ep: {"state": ep.state[:, 0]}, "state", None, "(steps, dim)"),
    "no-steps": (
        lambda ep: {
            "action": np.zeros((0, 3), np.float32),
            "state": np.zeros((0, 4), np.float32),
        },
        "action",
        None,
        "at least one step",
    ),
}


def _assert_nothing_visible(store, files, eid=EID):
    assert store.episodes() == []
    assert store.lookup(eid) is None
    with pytest.raises(EpisodeNotFoundError):
        store.read_episode(eid)
    assert files(store.root) == []


@pytest.mark.parametrize("case", list(CASES))
def test_bad_episode_is_refused_and_nothing_is_written(store, make_episode, files, case):
    overrides, column, step, words = CASES[case]
    bad = make_episode(EID, num_steps=T, **overrides(_base(make_episode)))
    with pytest.raises(EpisodeValidationError) as info:
        store.write(bad)
    err = info.value
    assert err.episode_id == EID
    assert err.column == column
    assert err.step == step
    message = str(err)
    assert f"episode {EID!r}" in message
    assert f"column {column!r}" in message
    if step is not None:
        assert f"step {step}" in message
    assert words.lower() in message.lower()
    _assert_nothing_visible(store, files)

    good = store.write(_base(make_episode))
    assert good.status == "written"
    assert store.read_episode(EID).num_rows == T


@pytest.mark.parametrize(
    "bad_id", ["", "has space", "../escape", "a/b", "-leading-dash", "x" * 129]
)
def test_bad_episode_ids_are_refused(store, make_episode, files, bad_id):
    with pytest.raises(EpisodeValidationError) as info:
        store.write(make_episode(bad_id))
    assert info.value.column == "episode_id"
    assert info.value.episode_id == bad_id
    assert files(store.root) == []
    assert store.episodes() == []


def test_refusal_in_a_later_step_of_a_second_embodiment(store, make_episode, files):
    ep = make_episode("cart-bad", embodiment="cart", num_steps=9)
    ep.state[7, 1] = np.nan
    with pytest.raises(EpisodeValidationError, match=r"'cart-bad', step 7, column 'state'"):
        store.write(ep)
    _assert_nothing_visible(store, files, "cart-bad")


def test_refused_write_does_not_disturb_stored_episodes(store, make_episode):
    store.write(make_episode("good-1"))
    bad = make_episode("good-2")
    bad.action[1, 1] = np.nan
    with pytest.raises(EpisodeValidationError):
        store.write(bad)
    assert [e.episode_id for e in store.episodes()] == ["good-1"]
    assert store.lookup("good-2") is None


def test_nan_progress_means_unknown_and_is_accepted(store, make_episode):
    progress = np.array([0.0, np.nan, 0.5, 0.6, np.nan, 1.0], np.float32)
    store.write(make_episode("p-1", progress=progress))
    got = store.read_episode("p-1").column("progress").to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(got, progress)
