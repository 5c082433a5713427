"""Every column and every piece of file metadata comes back exactly as it was written."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ramp.platform.episodes import SCHEMA_VERSION, EpisodeNotFoundError
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, camera_column


def _vectors(table: pa.Table, column: str) -> np.ndarray:
    return np.array(table.column(column).to_pylist(), dtype=np.float32)


def _assert_frames(table, meta, ep, encoding):
    for cam, frames in ep.images.items():
        cm = meta.cameras[cam]
        got = decode_frames(table.column(camera_column(cam)), cm.encoding, cm.height, cm.width)
        assert got.shape == frames.shape and got.dtype == np.uint8
        if encoding == "jpeg":
            err = np.abs(got.astype(np.int16) - frames.astype(np.int16))
            assert err.mean() < 4.0, (cam, err.mean())
            assert err.max() < 48, (cam, err.max())
        else:
            np.testing.assert_array_equal(got, frames)


@pytest.mark.parametrize("encoding", ["raw", "png", "jpeg"])
def test_every_column_round_trips(make_store, make_episode, specs, encoding):
    store = make_store(image_encoding=encoding)
    versions = ["policy-r0-a", "policy-r0-a", "human", "human", "policy-r0-b", "policy-r0-b"]
    ep = make_episode("robot1-2024-0001", optional=True, round=2, policy_version=versions)
    result = store.write(ep)
    assert result.status == "written"
    assert result.path == "episodes/round=2/source=sim/robot1-2024-0001.parquet"

    table = store.read_episode(ep.episode_id)
    meta = store.episode_meta(ep.episode_id)
    t = ep.num_steps
    cams = [camera_column(c) for c in specs["arm"].cameras]
    assert set(table.column_names) == set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(cams)
    assert table.num_rows == t

    col = table.column
    assert col("episode_id").to_pylist() == [ep.episode_id] * t
    assert col("step").to_pylist() == list(range(t))
    assert col("step").type == pa.int32()
    np.testing.assert_array_equal(col("timestamp").to_numpy(), ep.timestamp)
    assert col("embodiment").to_pylist() == ["arm"] * t
    assert col("task").to_pylist() == ["pick"] * t
    assert col("instruction").to_pylist() == list(ep.instructions)
    np.testing.assert_array_equal(_vectors(table, "state"), ep.state)
    np.testing.assert_array_equal(_vectors(table, "action"), ep.action)
    np.testing.assert_array_equal(col("reward").to_numpy(), ep.reward)
    assert col("done").to_pylist() == [False] * (t - 1) + [True]
    assert col("success").to_pylist() == [False] * (t - 1) + [True]
    assert col("intervention").to_pylist() == ep.intervention.tolist()
    assert col("policy_version").to_pylist() == versions
    assert col("source").to_pylist() == ["sim"] * t
    assert col("round").to_pylist() == [2] * t
    assert col("subgoal").to_pylist() == list(ep.subgoal)
    np.testing.assert_array_equal(col("progress").to_numpy(), ep.progress)
    np.testing.assert_array_equal(_vectors(table, "trajectory_2d"), ep.trajectory_2d)
    _assert_frames(table, meta, ep, encoding)

    arm = specs["arm"]
    assert meta.schema_version == SCHEMA_VERSION
    assert meta.episode_id == ep.episode_id
    assert (meta.embodiment, meta.task, meta.source, meta.round) == ("arm", "pick", "sim", 2)
    assert meta.num_steps == t
    assert meta.success is True
    assert meta.intervention_steps == int(ep.intervention.sum()) == 2
    assert meta.policy_versions == ["human", "policy-r0-a", "policy-r0-b"]
    assert meta.fps == 10.0
    assert {c: (m.height, m.width, m.encoding) for c, m in meta.cameras.items()} == {
        "front": (16, 16, encoding),
        "wrist": (12, 16, encoding),
    }
    assert meta.state_names == arm.state_names
    assert meta.action_names == arm.action_names
    assert meta.action_low == arm.action_low
    assert meta.action_high == arm.action_high
    assert sorted(meta.optional_columns) == sorted(OPTIONAL_COLUMNS)


def test_defaults_are_filled_in(store, make_episode):
    ep = make_episode("cart-1", embodiment="cart", num_steps=4, success=False)
    store.write(ep)
    table = store.read_episode("cart-1")
    meta = store.episode_meta("cart-1")
    assert table.column("timestamp").to_pylist() == [0.0, 0.2, 0.4, 0.6]  # step / fps (5)
    assert table.column("reward").to_pylist() == [-1.0] * 4  # failure: no terminal 0
    assert table.column("intervention").to_pylist() == [False] * 4
    assert table.column("instruction").to_pylist() == ["pick the block"] * 4
    assert table.column("success").to_pylist() == [False] * 4
    assert not any(c in table.column_names for c in OPTIONAL_COLUMNS)
    assert meta.fps == 5.0 and meta.optional_columns == [] and meta.success is False
    assert list(meta.cameras) == ["head"]

    store.write(make_episode("cart-2", embodiment="cart", num_steps=3, success=True))
    assert store.read_episode("cart-2").column("reward").to_pylist() == [-1.0, -1.0, 0.0]


def test_column_projection(store, make_episode):
    ep = make_episode("ep-proj", optional=True)
    store.write(ep)
    table = store.read_episode("ep-proj", columns=["step", "action", "progress"])
    assert table.column_names == ["step", "action", "progress"]
    np.testing.assert_array_equal(_vectors(table, "action"), ep.action)
    only_front = store.read_episode("ep-proj", columns=["image.front"])
    assert only_front.column_names == ["image.front"]
    np.testing.assert_array_equal(
        decode_frames(only_front.column("image.front"), "raw", 16, 16), ep.images["front"]
    )


def test_two_embodiments_in_one_store(store, make_episode):
    store.write(make_episode("a-1"))
    store.write(make_episode("c-1", embodiment="cart"))
    assert [e.embodiment for e in store.episodes()] == ["arm", "cart"]
    cart = store.read_episode("c-1")
    assert len(cart.column("state")[0].as_py()) == 2
    assert "image.head" in cart.column_names and "image.front" not in cart.column_names


def test_unknown_episode_is_not_found(store):
    with pytest.raises(EpisodeNotFoundError, match="nope"):
        store.read_episode("nope")
    with pytest.raises(EpisodeNotFoundError):
        store.episode_meta("nope")
    assert store.lookup("nope") is None
    assert store.episodes() == []


def test_projecting_columns_a_file_lacks_gives_nulls_not_quarantine(store, make_episode):
    store.write(make_episode("plain", num_steps=4))  # no optional columns
    store.write(make_episode("cart-p", embodiment="cart", num_steps=3))
    table = store.read_episode("plain", columns=["step", "progress", "subgoal"])
    assert table.column_names == ["step", "progress", "subgoal"]
    assert table.column("progress").null_count == 4 and table.column("subgoal").null_count == 4
    assert table.schema.field("progress").type == pa.float32()

    mixed = store.read(columns=["episode_id", "image.front", "image.head"])
    assert mixed.column_names == ["episode_id", "image.front", "image.head"]
    assert mixed.column("image.front").null_count == 3  # the cart's steps
    assert mixed.column("image.head").null_count == 4  # the arm's steps
    assert store.quarantined() == []
    assert [e.episode_id for e in store.episodes()] == ["cart-p", "plain"]
    assert store.read_episode("plain").num_rows == 4
