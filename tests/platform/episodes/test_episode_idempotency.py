"""Episode ids are unique across the whole store; same content is a no-op, other content refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ramp.platform.episodes import EpisodeConflictError
from ramp.platform.episodes.index import content_hash
from ramp.platform.episodes.validate import validate_table


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
    assert files(store.root) == [*before, "rounds/current"]
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


def test_content_hash_ignores_chunking_and_storage(store, make_episode):
    ep = make_episode("h-1", optional=True)
    table = store.to_table(ep)
    meta = validate_table(table, store.embodiments)
    digest = content_hash(table, meta)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    assert chunked.column("state").num_chunks == 2
    assert content_hash(chunked, meta) == digest

    written = store.write(chunked)
    assert written.status == "written" and written.content_hash == digest
    stored = store.read_episode("h-1")
    assert content_hash(stored, validate_table(stored, None)) == digest
    assert store.write(ep).status == "exists"
    assert store.write(table).status == "exists"


def _copy_in(src_store, dst_store, eid: str) -> Path:
    """Copy an episode's data file into another store, as `cp`/`aws s3 cp` would (no index)."""
    rel = src_store.lookup(eid).path
    dst = Path(dst_store.fs.full(rel))
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_store.fs.full(rel), dst)
    return dst


def test_an_unindexed_file_is_never_replaced(make_store, make_episode):
    origin, target = make_store("origin"), make_store("target")
    ep = make_episode("copied-1")
    origin.write(ep)
    path = _copy_in(origin, target, "copied-1")
    data = path.read_bytes()
    assert target.lookup("copied-1") is None  # invisible to lookups until indexed

    with pytest.raises(EpisodeConflictError, match="copied-1"):
        make_store("target").write(make_episode("copied-1", seed=5))
    assert path.read_bytes() == data
    assert make_store("target").lookup("copied-1").path == origin.lookup("copied-1").path

    again = make_store("target")
    assert again.write(ep).status == "exists"
    assert again.write(make_episode("copied-1", round=4)).status == "exists"
    assert path.read_bytes() == data


def test_an_unreadable_unindexed_file_is_quarantined_by_the_write(make_store, make_episode):
    origin, target = make_store("origin"), make_store("target")
    origin.write(make_episode("copied-2"))
    path = _copy_in(origin, target, "copied-2")
    path.write_bytes(path.read_bytes()[:50])
    ep = make_episode("copied-2", seed=3)
    assert target.write(ep).status == "written"
    assert len(target.quarantined()) == 1
    np.testing.assert_array_equal(
        np.array(target.read_episode("copied-2").column("action").to_pylist(), np.float32),
        ep.action,
    )
