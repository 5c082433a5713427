"""Filtering the store's episodes and reading many of them as one table."""

from __future__ import annotations

import numpy as np
import pytest

# id, round, source, task, embodiment, success, steps
LAYOUT = [
    ("a-0", 0, "sim", "pick", "arm", True, 3),
    ("a-1", 0, "sim", "place", "arm", False, 4),
    ("a-2", 1, "robot-1", "pick", "arm", True, 5),
    ("a-3", 1, "robot-2", "place", "arm", False, 2),
    ("c-0", 2, "robot-1", "drive", "cart", True, 6),
    ("c-1", 2, "sim", "drive", "cart", False, 3),
]


@pytest.fixture
def filled(store, make_episode):
    for eid, round_, source, task, emb, success, steps in LAYOUT:
        store.write(
            make_episode(
                eid,
                round=round_,
                source=source,
                task=task,
                embodiment=emb,
                success=success,
                num_steps=steps,
            )
        )
    return store


def _ids(entries):
    return [e.episode_id for e in entries]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["a-0", "a-1", "a-2", "a-3", "c-0", "c-1"]),
        ({"round": 0}, ["a-0", "a-1"]),
        ({"round": 3}, []),
        ({"round": [0, 2]}, ["a-0", "a-1", "c-0", "c-1"]),
        ({"round": (1,)}, ["a-2", "a-3"]),
        ({"source": "robot-1"}, ["a-2", "c-0"]),
        ({"source": ["robot-1", "robot-2"]}, ["a-2", "a-3", "c-0"]),
        ({"task": "pick"}, ["a-0", "a-2"]),
        ({"task": {"place", "drive"}}, ["a-1", "a-3", "c-0", "c-1"]),
        ({"embodiment": "cart"}, ["c-0", "c-1"]),
        ({"embodiment": ["arm"]}, ["a-0", "a-1", "a-2", "a-3"]),
        ({"success": True}, ["a-0", "a-2", "c-0"]),
        ({"success": False}, ["a-1", "a-3", "c-1"]),
        ({"round": 1, "success": True}, ["a-2"]),
        ({"source": "sim", "embodiment": "cart", "task": "drive"}, ["c-1"]),
        ({"round": [0, 1], "task": "place", "success": False}, ["a-1", "a-3"]),
        ({"ids": ["c-1", "a-0", "missing"]}, ["a-0", "c-1"]),
        ({"ids": ["a-0", "a-2"], "round": 0}, ["a-0"]),
    ],
)
def test_episode_filters(filled, filters, expected):
    assert _ids(filled.episodes(**filters)) == expected


def test_filters_accept_numpy_values(filled):
    rounds = np.array([0, 1, 2])
    assert _ids(filled.episodes(round=rounds[1])) == ["a-2", "a-3"]
    assert _ids(filled.episodes(round=rounds[[0, 2]])) == ["a-0", "a-1", "c-0", "c-1"]
    assert _ids(filled.episodes(task=np.array(["drive"])[0], success=np.bool_(True))) == ["c-0"]


def test_entries_describe_the_episodes(filled):
    by_id = {e.episode_id: e for e in filled.episodes()}
    for eid, round_, source, task, emb, success, steps in LAYOUT:
        e = by_id[eid]
        assert (e.round, e.source, e.task, e.embodiment, e.success, e.num_steps) == (
            round_,
            source,
            task,
            emb,
            success,
            steps,
        )
        assert e.path == f"episodes/round={round_}/source={source}/{eid}.parquet"
        assert e.bytes == (filled.fs.size(e.path)) > 0


def test_filters_also_work_from_a_fresh_store_object(filled, make_store):
    fresh = make_store()
    assert _ids(fresh.episodes(task="pick", success=True)) == ["a-0", "a-2"]
    assert _ids(fresh.episodes(round=2, source="sim")) == ["c-1"]


def test_read_concatenates_matching_episodes(filled, make_episode):
    table = filled.read(round=[0, 1], task="pick")
    assert table.num_rows == 3 + 5
    assert table.column("episode_id").to_pylist() == ["a-0"] * 3 + ["a-2"] * 5
    assert table.column("step").to_pylist() == [0, 1, 2, 0, 1, 2, 3, 4]
    expected = np.concatenate(
        [
            make_episode("a-0", num_steps=3, task="pick").action,
            make_episode("a-2", num_steps=5, task="pick").action,
        ]
    )
    np.testing.assert_array_equal(
        np.array(table.column("action").to_pylist(), np.float32), expected
    )


def test_read_with_columns_and_across_embodiments(filled):
    table = filled.read(columns=["episode_id", "step", "state"], success=True)
    assert table.column_names == ["episode_id", "step", "state"]
    assert table.num_rows == 3 + 5 + 6
    dims = [len(s) for s in table.column("state").to_pylist()]
    assert dims == [4] * 8 + [2] * 6

    mixed = filled.read(source="sim")  # arm and cart: each other's cameras become null
    assert mixed.num_rows == 3 + 4 + 3
    assert mixed.column("image.head").null_count == 7
    assert mixed.column("image.front").null_count == 3


def test_read_of_nothing_is_an_empty_table(filled):
    assert filled.read(round=9).num_rows == 0
