"""The training-sample iterator: values, chunk and future padding, order, shards, labels."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ramp.platform.episodes.samples import TrainingSamples, collate

WM = "world_model-r1-cafe"
LENGTHS = {"s-0": 5, "s-1": 3, "s-2": 8, "s-3": 1, "s-4": 6}
H = 4
OFFSETS = (1, 3, 10)
ALL = sorted((eid, t) for eid, n in LENGTHS.items() for t in range(n))


@pytest.fixture
def episodes(make_episode):
    return {
        eid: make_episode(eid, num_steps=n, optional=(eid == "s-2")) for eid, n in LENGTHS.items()
    }


@pytest.fixture
def sample_store(store, episodes, make_labels):
    for ep in episodes.values():
        store.write(ep)
    for offset, (eid, n) in enumerate(LENGTHS.items()):
        store.write_labels(WM, make_labels(eid, n, offset=float(offset)))
    return store


def _samples(store, **kwargs) -> TrainingSamples:
    options = dict(chunk_size=H, future_offsets=OFFSETS, seed=0, shuffle_window=2)
    options.update(kwargs)
    return TrainingSamples(store, list(LENGTHS), **options)


def test_sample_values_equal_the_stored_episode(sample_store, episodes):
    seen = []
    for s in _samples(sample_store, labels=WM):
        ep, t = episodes[s["episode_id"]], s["step"]
        n = LENGTHS[ep.episode_id]
        seen.append((ep.episode_id, t))
        assert s["task"] == "pick" and s["embodiment"] == "arm"
        assert s["instruction"] == (ep.instructions[t] if ep.instructions else ep.instruction)
        np.testing.assert_array_equal(s["state"], ep.state[t])
        for cam, frames in ep.images.items():
            np.testing.assert_array_equal(s["images"][cam], frames[t])

        # Action chunk t..t+H-1; past the episode's end: zeros, masked out.
        valid = np.arange(t, t + H) < n
        np.testing.assert_array_equal(s["action_mask"], valid)
        assert s["actions"].shape == (H, 3) and s["actions"].dtype == np.float32
        np.testing.assert_array_equal(s["actions"][valid], ep.action[t : t + H])
        assert not s["actions"][~valid].any()

        # Future frames at the offsets, clamped to the last frame past the end.
        fut = np.array(OFFSETS) + t
        np.testing.assert_array_equal(s["future_mask"], fut < n)
        clamped = np.minimum(fut, n - 1)
        for cam, frames in ep.images.items():
            np.testing.assert_array_equal(s["future_images"][cam], frames[clamped])
        np.testing.assert_array_equal(s["future_state"], ep.state[clamped])

        flags = ep.intervention if ep.intervention is not None else np.zeros(n, bool)
        assert s["intervention"] == bool(flags[t])
        offset = list(LENGTHS).index(ep.episode_id)
        assert s["value"] == np.float32(offset + t / 10)
        assert s["advantage"] == -np.float32(offset + t / 10)
        assert s["indicator"] == (t % 2 == 1)
    assert sorted(seen) == ALL


def test_chunk_and_future_padding_at_an_episode_end(sample_store, episodes):
    loader = _samples(sample_store)
    ep = episodes["s-0"]  # 5 steps
    loaded = loader._load("s-0")
    last = loader.sample(loaded, 4)
    assert last["action_mask"].tolist() == [True, False, False, False]
    np.testing.assert_array_equal(last["actions"][0], ep.action[4])
    assert not last["actions"][1:].any()
    assert last["future_mask"].tolist() == [False, False, False]
    for cam in ep.images:
        assert (last["future_images"][cam] == ep.images[cam][4]).all()

    second_last = loader.sample(loaded, 3)
    assert second_last["action_mask"].tolist() == [True, True, False, False]
    assert second_last["future_mask"].tolist() == [True, False, False]
    np.testing.assert_array_equal(second_last["future_images"]["front"][0], ep.images["front"][4])

    single = loader.sample(loader._load("s-3"), 0)  # a one-step episode
    assert single["action_mask"].tolist() == [True, False, False, False]
    assert single["future_mask"].tolist() == [False, False, False]


def test_optional_columns_reach_the_samples(sample_store, episodes):
    ep = episodes["s-2"]
    by_step = {
        s["step"]: s for s in _samples(sample_store, shuffle=False) if s["episode_id"] == "s-2"
    }
    for t, s in by_step.items():
        assert s["subgoal"] == ep.subgoal[t]
        assert s["progress"] == pytest.approx(float(ep.progress[t]))
        np.testing.assert_array_equal(s["trajectory_2d"], ep.trajectory_2d[t])


def test_order_is_deterministic_per_seed_and_epoch(sample_store):
    a = _samples(sample_store, seed=1).index()
    assert a == _samples(sample_store, seed=1).index()
    assert sorted(a) == ALL
    assert a != _samples(sample_store, seed=2).index()
    assert [(s["episode_id"], s["step"]) for s in _samples(sample_store, seed=1)] == a

    loader = _samples(sample_store, seed=1)
    loader.set_epoch(1)
    epoch1 = loader.index()
    assert epoch1 != a and sorted(epoch1) == ALL
    assert [(s["episode_id"], s["step"]) for s in loader] == epoch1
    loader.set_epoch(0)
    assert loader.index() == a


def test_unshuffled_order_is_by_episode_then_step(sample_store):
    assert _samples(sample_store, shuffle=False).index() == ALL


def test_shards_are_disjoint_and_cover_everything(sample_store):
    world = 3
    shards = [
        _samples(sample_store, seed=5, rank=r, world_size=world, drop_last=False)
        for r in range(world)
    ]
    indices = [s.index() for s in shards]
    union = Counter(x for idx in indices for x in idx)
    assert sorted(union) == ALL and max(union.values()) == 1  # disjoint, complete
    assert [len(s) for s in shards] == [len(i) for i in indices] == [8, 8, 7]  # 23 samples
    for shard, idx in zip(shards, indices, strict=True):
        assert [(x["episode_id"], x["step"]) for x in shard] == idx

    dropped = [
        _samples(sample_store, seed=5, rank=r, world_size=world, drop_last=True)
        for r in range(world)
    ]
    lengths = [len(list(s)) for s in dropped]
    assert lengths == [len(s) for s in dropped] == [7, 7, 7]
    union = Counter(x for s in dropped for x in s.index())
    assert len(union) == 21 and max(union.values()) == 1 and set(union) <= set(ALL)


def test_len_matches_iteration_for_many_world_sizes(sample_store):
    for world in (1, 2, 4, 23, 30):
        for drop_last in (True, False):
            for rank in range(world):
                loader = _samples(sample_store, rank=rank, world_size=world, drop_last=drop_last)
                assert len(loader) == sum(1 for _ in loader) == len(loader.index())


def test_labels_are_required_when_named(store, make_episode, make_labels):
    store.write(make_episode("l-0", num_steps=3))
    store.write(make_episode("l-1", num_steps=2))
    store.write_labels(WM, make_labels("l-0", 3))
    with pytest.raises(KeyError, match="l-1"):
        TrainingSamples(store, ["l-0", "l-1"], labels=WM)
    without = list(TrainingSamples(store, ["l-0", "l-1"], chunk_size=2, future_offsets=(1,)))
    assert len(without) == 5 and "value" not in without[0]
    with pytest.raises(KeyError, match="not in the store"):
        TrainingSamples(store, ["l-0", "ghost"])


def test_bad_arguments(sample_store):
    with pytest.raises(ValueError, match="rank"):
        _samples(sample_store, rank=2, world_size=2)
    with pytest.raises(ValueError, match="chunk_size"):
        _samples(sample_store, chunk_size=0)
    with pytest.raises(ValueError, match="future_offsets"):
        _samples(sample_store, future_offsets=(0, 3))
    with pytest.raises(KeyError, match="camera 'side'"):
        list(_samples(sample_store, cameras=["side"]))


def test_camera_selection(sample_store):
    s = next(iter(_samples(sample_store, cameras=["wrist"])))
    assert list(s["images"]) == ["wrist"] == list(s["future_images"])
    assert s["images"]["wrist"].shape == (12, 16, 3)


def test_collate_stacks_a_batch(sample_store, episodes):
    samples = list(_samples(sample_store, labels=WM, shuffle=False))[:5]  # s-0, steps 0..4
    batch = collate(samples)
    assert batch["episode_id"] == ["s-0"] * 5
    assert batch["instruction"] == ["pick the block"] * 5
    assert batch["step"].tolist() == [0, 1, 2, 3, 4]
    assert batch["actions"].shape == (5, H, 3)
    assert batch["action_mask"].shape == (5, H) and batch["action_mask"].dtype == bool
    assert batch["images"]["front"].shape == (5, 16, 16, 3)
    assert batch["images"]["wrist"].shape == (5, 12, 16, 3)
    assert batch["future_images"]["wrist"].shape == (5, len(OFFSETS), 12, 16, 3)
    assert batch["future_mask"].shape == (5, len(OFFSETS))
    np.testing.assert_array_equal(batch["state"], episodes["s-0"].state)
    np.testing.assert_array_equal(batch["value"], (np.arange(5) / 10).astype(np.float32))
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_collate_refuses_mixed_dimensions(store, make_episode):
    store.write(make_episode("m-arm", num_steps=2))
    store.write(make_episode("m-cart", num_steps=2, embodiment="cart"))
    loader = TrainingSamples(store, ["m-arm", "m-cart"], chunk_size=2, future_offsets=(1,))
    samples = list(loader)
    with pytest.raises(ValueError, match="cannot batch 'images': cameras differ"):
        collate(samples)
    without_images = [
        {k: v for k, v in s.items() if k not in ("images", "future_images")} for s in samples
    ]
    with pytest.raises(ValueError, match="cannot batch 'state': shapes differ"):
        collate(without_images)
