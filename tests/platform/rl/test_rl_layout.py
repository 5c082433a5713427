"""Flat episode layout and the checks on an episode table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from stand_in import episode_table

from ramp.platform.rl.layout import (
    Episodes,
    check_offsets,
    column_matrix,
    episodes_from_table,
    offsets_from_lengths,
)


def test_offsets_and_properties():
    eps = Episodes.from_lengths([3, 1, 2], task=[1, 0, 1], task_names=["a", "b"])
    np.testing.assert_array_equal(eps.offsets, [0, 3, 4, 6])
    np.testing.assert_array_equal(eps.step_task(), [1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(eps.step_in_episode(), [0, 1, 2, 0, 0, 1])
    assert (eps.n_episodes, eps.n_steps, eps.n_tasks) == (3, 6, 2)


def test_bad_offsets_and_lengths():
    with pytest.raises(ValueError, match="length 0"):
        offsets_from_lengths([2, 0])
    with pytest.raises(ValueError, match="empty"):
        check_offsets(np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="starting at 0"):
        check_offsets(np.array([1, 2]))
    with pytest.raises(ValueError, match="arrays have 5"):
        check_offsets(np.array([0, 4]), 5)
    with pytest.raises(ValueError, match="task codes"):
        Episodes.from_lengths([1], task=[3], task_names=["a"])


def test_episodes_from_table():
    table = episode_table([2, 3], tasks=["b", "a"], success=[False, True])
    eps = episodes_from_table(table)
    np.testing.assert_array_equal(eps.offsets, [0, 2, 5])
    assert [eps.task_names[t] for t in eps.task] == ["b", "a"]
    np.testing.assert_array_equal(eps.success, [False, True])
    assert eps.episode_ids == ("ep0", "ep1")


def test_non_contiguous_episode_is_refused():
    table = episode_table([2, 2])
    shuffled = table.take(pa.array([0, 2, 1, 3]))
    with pytest.raises(ValueError, match="sort the table by"):
        episodes_from_table(shuffled)


def test_steps_out_of_order_are_refused():
    table = episode_table([3])
    swapped = table.take(pa.array([0, 2, 1]))
    with pytest.raises(ValueError, match="row 1 has step 2, expected 1"):
        episodes_from_table(swapped)


def test_task_change_inside_an_episode_is_refused():
    table = episode_table([2])
    table = table.set_column(2, "task", pa.array(["a", "b"]))
    with pytest.raises(ValueError, match="changes task"):
        episodes_from_table(table)


def test_column_matrix():
    table = episode_table([2], actions=np.array([[1, 2], [3, 4]], np.float32))
    np.testing.assert_array_equal(column_matrix(table, "action"), [[1, 2], [3, 4]])
    ragged = pa.table({"action": pa.array([[1.0], [1.0, 2.0]], pa.list_(pa.float32()))})
    with pytest.raises(ValueError, match="split the table by embodiment"):
        column_matrix(ragged, "action")
