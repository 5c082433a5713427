"""Label sidecars: per world-model version, joined per step, never for other content."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ramp.platform.episodes import LabelError

WM1 = "world_model-r1-aaaa"
WM2 = "world_model-r2-bbbb"


@pytest.fixture
def two_episodes(store, make_episode):
    store.write(make_episode("ep-a", num_steps=5))
    store.write(make_episode("ep-b", num_steps=3, embodiment="cart"))
    return store


def _expected(num_steps, offset=0.0):
    steps = np.arange(num_steps)
    value = (offset + steps / 10).astype(np.float32)
    return value, -value, (steps % 2 == 1)


def _assert_joined(table, num_steps, offset):
    value, advantage, indicator = _expected(num_steps, offset)
    steps = table.column("step").to_numpy()
    np.testing.assert_array_equal(table.column("value").to_numpy(), value[steps])
    np.testing.assert_array_equal(table.column("advantage").to_numpy(), advantage[steps])
    assert table.column("indicator").to_pylist() == indicator[steps].tolist()
    assert table.schema.field("value").type == pa.float32()
    assert table.schema.field("indicator").type == pa.bool_()


def test_labels_join_per_step(two_episodes, make_labels):
    store = two_episodes
    labels = pa.concat_tables(
        [make_labels("ep-a", 5, order="reverse"), make_labels("ep-b", 3, offset=1.0)]
    )
    assert sorted(store.write_labels(WM1, labels)) == ["ep-a", "ep-b"]
    assert store.labelled_ids(WM1) == {"ep-a", "ep-b"}
    assert store.label_versions() == [WM1]

    a = store.read_episode("ep-a", labels=WM1)
    assert a.num_rows == 5
    assert {"value", "advantage", "indicator", "action", "image.front"} <= set(a.column_names)
    _assert_joined(a, 5, 0.0)
    _assert_joined(store.read_episode("ep-b", labels=WM1), 3, 1.0)

    projected = store.read_episode("ep-a", columns=["step", "reward"], labels=WM1)
    assert projected.column_names == ["step", "reward", "value", "advantage", "indicator"]
    _assert_joined(projected, 5, 0.0)

    # Without 'step' a full-length projection still joins in step order.
    no_step = store.read_episode("ep-a", columns=["reward"], labels=WM1)
    np.testing.assert_array_equal(no_step.column("value").to_numpy(), _expected(5)[0])

    both = store.read(labels=WM1)
    assert both.num_rows == 8
    assert both.column("value").null_count == 0


def test_relabelling_keeps_each_version(two_episodes, make_labels):
    store = two_episodes
    store.write_labels(WM1, make_labels("ep-a", 5, offset=0.0))
    store.write_labels(WM2, make_labels("ep-a", 5, offset=7.0))
    assert store.labelled_ids(WM1) == {"ep-a"} == store.labelled_ids(WM2)
    assert store.label_versions() == [WM1, WM2]
    _assert_joined(store.read_episode("ep-a", labels=WM1), 5, 0.0)
    _assert_joined(store.read_episode("ep-a", labels=WM2), 5, 7.0)
    with pytest.raises(LabelError, match="ep-b"):
        store.read_episode("ep-b", labels=WM2)

    # Writing the same version again replaces that version's labels only.
    store.write_labels(WM2, make_labels("ep-a", 5, offset=9.0))
    _assert_joined(store.read_episode("ep-a", labels=WM2), 5, 9.0)
    _assert_joined(store.read_episode("ep-a", labels=WM1), 5, 0.0)


def test_optional_label_columns_are_kept(two_episodes, make_labels):
    labels = make_labels("ep-b", 3).append_column("return", pa.array([3.0, 2.0, 1.0]))
    two_episodes.write_labels(WM1, labels)
    got = two_episodes.read_episode("ep-b", labels=WM1)
    assert got.column("return").to_pylist() == [3.0, 2.0, 1.0]
    assert got.schema.field("return").type == pa.float32()


def _nan_value(t):
    return t.set_column(2, "value", pa.array([0.0, np.nan, 0.2, 0.3, 0.4], pa.float32()))


def _inf_advantage(t):
    return t.set_column(3, "advantage", pa.array([0.0, 1.0, 2.0, np.inf, 0.0], pa.float32()))


BAD_LABELS = {
    "missing-step": (lambda t: t.slice(0, 4), "steps 0..4"),
    "duplicate-step": (
        lambda t: t.set_column(1, "step", pa.array([0, 1, 2, 2, 4], pa.int32())),
        "steps 0..4",
    ),
    "nan-value": (_nan_value, "step 1, column 'value': not finite"),
    "inf-advantage": (_inf_advantage, "step 3, column 'advantage'"),
    "unknown-column": (
        lambda t: t.append_column("q_value", pa.array(np.zeros(5, np.float32))),
        "unknown column 'q_value'",
    ),
    "missing-column": (lambda t: t.drop_columns(["indicator"]), "'indicator' is missing"),
    "unknown-episode": (
        lambda t: t.set_column(0, "episode_id", pa.array(["ghost"] * 5)),
        "'ghost': no such episode",
    ),
    "null-indicator": (
        lambda t: t.set_column(4, "indicator", pa.array([True, None, False, True, True])),
        "indicator has missing values",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_bad_labels_are_refused_and_nothing_is_written(two_episodes, make_labels, files, case):
    store = two_episodes
    before = files(store.root)
    spoil, words = BAD_LABELS[case]
    # A good episode's labels in the same batch are not written either.
    good = make_labels("ep-b", 3)
    if case == "missing-column":  # a column missing from the whole batch
        good = spoil(good)
    batch = pa.concat_tables([good, spoil(make_labels("ep-a", 5))], promote_options="permissive")
    with pytest.raises(LabelError) as info:
        store.write_labels(WM1, batch)
    assert words in str(info.value)
    assert files(store.root) == before
    assert store.labelled_ids(WM1) == set()
    assert store.label_versions() == []


def test_bad_world_model_version_and_missing_episode_id(two_episodes, make_labels):
    with pytest.raises(LabelError, match="must match"):
        two_episodes.write_labels("../wm", make_labels("ep-a", 5))
    with pytest.raises(LabelError, match="'episode_id'"):
        two_episodes.write_labels(WM1, make_labels("ep-a", 5).drop_columns(["episode_id"]))


def test_missing_labels_raise_on_join(two_episodes):
    with pytest.raises(LabelError, match="no labels of world model"):
        two_episodes.read_episode("ep-a", labels=WM1)


def test_stale_labels_are_not_joined(store, make_episode, make_labels):
    store.write(make_episode("ep-s", num_steps=4))
    store.write_labels(WM1, make_labels("ep-s", 4))
    _assert_joined(store.read_episode("ep-s", labels=WM1), 4, 0.0)

    path = store.fs.full(store.lookup("ep-s").path)
    with open(path, "r+b") as f:
        f.truncate(100)
    from ramp.platform.episodes import EpisodeUnreadableError

    with pytest.raises(EpisodeUnreadableError):
        store.read_episode("ep-s")
    replacement = make_episode("ep-s", num_steps=4, seed=99)  # same id, other content
    assert store.write(replacement).status == "written"
    # The quarantine took the sidecar along, so the new content counts as unlabelled ...
    assert "ep-s" not in store.labelled_ids(WM1)
    with pytest.raises(LabelError, match="no labels"):
        store.read_episode("ep-s", labels=WM1)
    # ... and a stale sidecar put back by hand is still never joined.
    label_rel = f"labels/wm={WM1}/ep-s.parquet"
    store.fs.write_atomic(label_rel, store.fs.read_bytes(f"quarantine/{label_rel}"))
    assert "ep-s" in store.labelled_ids(WM1)
    with pytest.raises(LabelError, match="other content"):
        store.read_episode("ep-s", labels=WM1)

    store.write_labels(WM1, make_labels("ep-s", 4, offset=2.0))  # relabelled: joins again
    _assert_joined(store.read_episode("ep-s", labels=WM1), 4, 2.0)
