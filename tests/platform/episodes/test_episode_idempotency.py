"""Episode ids are unique across the whole store; same content is a no-op, other content refused."""

from __future__ import annotations

import numpy as np
import pytest

from ramp.platform.episodes import EpisodeConflictError


def test_same_content_twice_is_a_no_op(store, make_episode, files):
    first = store.write(make_episode("ep-1"))
    before = files(store.root)
    second = store.write(make_episode("ep-1"))
    assert first.status == "written"
    assert second.status == "exists"
    assert second.path == first.path and second.content_hash == first.content_hash
    assert files(store.root) == before
    assert [e.episode_id for e in store.episodes()] == ["ep-1"]


def test_same_content_seen_by_a_fresh_store_object(make_store, make_episode):
    make_store().write(make_episode("ep-1"))
    assert make_store().write(make_episode("ep-1")).status == "exists"


def test_retry_after_a_round_boundary_is_not_a_duplicate(store, make_episode, files):
    first = store.write(make_episode("robot-7-0001", round=3))
    before = files(store.root)
    store.set_current_round(4)
    retry = store.write(make_episode("robot-7-0001", round=4))
    assert retry.status == "exists"
    assert retry.path == first.path == "episodes/round=3/source=sim/robot-7-0001.parquet"
    assert files(store.root) == before + ["rounds/current"]
    assert [(e.episode_id, e.round) for e in store.episodes()] == [("robot-7-0001", 3)]
    assert store.read_episode("robot-7-0001").column("round").to_pylist() == [3] * 6


@pytest.mark.parametrize(
    "change",
    [
        {"action": "shifted"},
        {"success": False},
        {"task": "place"},
        {"num_steps": 7},
        {"round": 5, "action": "shifted"},
        {"source": "robot-2"},
        {"source": "robot-2", "round": 1},
        {"policy_version": "policy-r1-zzz"},
    ],
    ids=lambda c: "+".join(c),
)
def test_same_id_other_content_is_refused(store, make_episode, files, change):
    original = make_episode("ep-dup")
    store.write(original)
    before = files(store.root)
    kwargs = dict(change)
    if kwargs.get("action") == "shifted":
        kwargs["action"] = original.action + np.float32(0.5)
    with pytest.raises(EpisodeConflictError, match="'ep-dup'") as info:
        store.write(make_episode("ep-dup", **kwargs))
    assert "different content" in str(info.value)
    assert files(store.root) == before
    assert store.lookup("ep-dup").path == "episodes/round=0/source=sim/ep-dup.parquet"
    np.testing.assert_array_equal(
        np.array(store.read_episode("ep-dup").column("action").to_pylist(), np.float32),
        original.action,
    )


def test_a_single_changed_pixel_is_other_content(store, make_episode):
    ep = make_episode("ep-px")
    store.write(ep)
    images = {cam: frames.copy() for cam, frames in ep.images.items()}
    images["wrist"][3, 5, 7, 1] ^= 1
    with pytest.raises(EpisodeConflictError):
        store.write(make_episode("ep-px", images=images))


def test_ids_are_unique_across_sources_and_rounds(store, make_episode):
    store.write(make_episode("shared-id", source="robot-1", round=0))
    for source, round_ in [("robot-2", 0), ("robot-2", 1), ("sim", 7)]:
        with pytest.raises(EpisodeConflictError, match="shared-id"):
            store.write(make_episode("shared-id", source=source, round=round_, seed=1))
    assert [(e.source, e.round) for e in store.episodes()] == [("robot-1", 0)]
