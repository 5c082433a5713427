"""Many episodes as flat per-step arrays plus episode boundaries: the layout the RL core works on.

Why flat arrays: labelling touches every step of every episode the policy trains on (base data and
all rounds), tens of millions of steps. One contiguous array per quantity and an ``offsets`` array
(episode e is rows ``offsets[e]:offsets[e+1]``, like Arrow list offsets) lets every function run
in a few passes over memory with no Python loop per episode or per step.

The Arrow table contract (ARCHITECTURE.md, storage layout): one row per step; the rows of one
episode are contiguous and in step order 0..T-1. ``episodes_from_table`` checks this in O(N)
vectorised passes and says how to fix a table that breaks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def offsets_from_lengths(lengths: np.ndarray | Sequence[int]) -> np.ndarray:
    """``[0, l0, l0+l1, ...]`` as int64; every episode must have at least one step."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be one-dimensional, got shape {lengths.shape}")
    if lengths.size and lengths.min() < 1:
        bad = int(np.flatnonzero(lengths < 1)[0])
        raise ValueError(f"episode {bad} has length {int(lengths[bad])}; episodes need >= 1 step")
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def check_offsets(offsets: np.ndarray, n_steps: int | None = None) -> np.ndarray:
    """Validate episode offsets (O(E)) and return them as a contiguous int64 array."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0:
        raise ValueError("offsets must be a 1-D array starting at 0 (episode e = [o[e], o[e+1]))")
    if offsets.size > 1 and np.any(np.diff(offsets) < 1):
        bad = int(np.flatnonzero(np.diff(offsets) < 1)[0])
        raise ValueError(f"offsets must increase strictly: episode {bad} would be empty")
    if n_steps is not None and offsets[-1] != n_steps:
        raise ValueError(f"offsets end at {int(offsets[-1])} but the arrays have {n_steps} steps")
    return offsets


@dataclass(frozen=True)
class Episodes:
    """Boundaries and per-episode facts of E episodes whose steps are stored flat (N steps).

    ``task`` holds codes into ``task_names`` so per-task maths indexes small arrays instead of
    comparing strings per step.
    """

    offsets: np.ndarray  # int64 [E + 1]
    task: np.ndarray  # int32 [E], codes into task_names
    task_names: tuple[str, ...]
    success: np.ndarray  # bool [E], the episode's outcome (success at its last step)
    episode_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", check_offsets(self.offsets))
        e = self.offsets.size - 1
        task = np.ascontiguousarray(self.task, dtype=np.int32)
        success = np.ascontiguousarray(self.success, dtype=bool)
        if task.shape != (e,) or success.shape != (e,):
            raise ValueError(
                f"{e} episodes but task has shape {task.shape} and success {success.shape}"
            )
        if e and (task.min() < 0 or task.max() >= len(self.task_names)):
            raise ValueError(f"task codes must lie in [0, {len(self.task_names)})")
        if self.episode_ids is not None and len(self.episode_ids) != e:
            raise ValueError(f"{e} episodes but {len(self.episode_ids)} episode ids")
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "success", success)
        object.__setattr__(self, "task_names", tuple(self.task_names))

    @classmethod
    def from_lengths(
        cls,
        lengths: np.ndarray | Sequence[int],
        success: np.ndarray | Sequence[bool] | None = None,
        task: np.ndarray | Sequence[int] | None = None,
        task_names: Sequence[str] = ("task",),
    ) -> Episodes:
        """Build from lengths; by default every episode succeeded and all share one task."""
        offsets = offsets_from_lengths(lengths)
        e = offsets.size - 1
        return cls(
            offsets=offsets,
            task=np.zeros(e, np.int32) if task is None else np.asarray(task),
            task_names=tuple(task_names),
            success=np.ones(e, bool) if success is None else np.asarray(success),
        )

    @property
    def n_episodes(self) -> int:
        return self.offsets.size - 1

    @property
    def n_steps(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def starts(self) -> np.ndarray:
        return self.offsets[:-1]

    def step_task(self) -> np.ndarray:
        """The task code of every step (N int32): only for code that cannot loop by episode."""
        return np.repeat(self.task, self.lengths)

    def step_in_episode(self) -> np.ndarray:
        """0..T-1 within each episode, for every step."""
        return np.arange(self.n_steps, dtype=np.int64) - np.repeat(self.starts, self.lengths)


def _numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError("column has nulls; episodes must be complete")
    return column.to_numpy(zero_copy_only=False)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a string column (one vectorised pass) and the dictionary."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def episodes_from_table(table: pa.Table) -> Episodes:
    """Episode boundaries, tasks and outcomes of an episode table, after checking its layout.

    Costs a few vectorised O(N) passes. Rows of one episode must be contiguous and in step order;
    a table read back from several files keeps that, a shuffled one does not (sort it by
    episode_id, step first).
    """
    missing = [c for c in ("episode_id", "step", "task", "success") if c not in table.column_names]
    if missing:
        raise ValueError(f"episode table lacks column(s) {missing}; see docs/episode-format.md")
    n = table.num_rows
    if n == 0:
        return Episodes(np.zeros(1, np.int64), np.zeros(0, np.int32), (), np.zeros(0, bool), ())
    ids, id_names = _codes(table.column("episode_id"))
    starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1]).astype(np.int64)
    if starts.size != len(id_names):
        runs = np.bincount(ids[starts], minlength=len(id_names))
        dup = int(np.flatnonzero(runs > 1)[0])
        raise ValueError(
            f"episode {id_names[dup]!r} is split over non-contiguous rows; "
            "sort the table by (episode_id, step) before labelling"
        )
    offsets = np.append(starts, n)
    lengths = np.diff(offsets)
    step = _numpy(table.column("step")).astype(np.int64, copy=False)
    expected = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
    if not np.array_equal(step, expected):
        row = int(np.flatnonzero(step != expected)[0])
        raise ValueError(
            f"episode {id_names[ids[row]]!r}: row {row} has step {int(step[row])}, expected "
            f"{int(expected[row])}; steps must be 0..T-1 in order (sort by episode_id, step)"
        )
    task_codes, task_names = _codes(table.column("task"))
    episode_task = task_codes[starts]
    if not np.array_equal(task_codes, np.repeat(episode_task, lengths)):
        row = int(np.flatnonzero(task_codes != np.repeat(episode_task, lengths))[0])
        raise ValueError(f"episode {id_names[ids[row]]!r} changes task at row {row}")
    success = _numpy(table.column("success")).astype(bool, copy=False)[offsets[1:] - 1]
    return Episodes(
        offsets=offsets,
        task=episode_task.astype(np.int32),
        task_names=tuple(task_names),
        success=success,
        episode_ids=tuple(id_names[i] for i in ids[starts]),
    )


def column_float32(table: pa.Table, name: str) -> np.ndarray:
    """A numeric per-step column as float32 (no copy when it already is)."""
    return np.ascontiguousarray(_numpy(table.column(name)), dtype=np.float32)


def column_bool(table: pa.Table, name: str) -> np.ndarray:
    """A bool per-step column as a numpy bool array."""
    return np.ascontiguousarray(_numpy(table.column(name)), dtype=bool)


def column_matrix(table: pa.Table, name: str) -> np.ndarray:
    """A list<float> per-step column (such as action) as an [N, D] float32 matrix.

    All rows must have the same length D; a table mixing embodiments with different action sizes
    must be split by embodiment first.
    """
    col = table.column(name).combine_chunks()
    if isinstance(col, pa.FixedSizeListArray):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, np.float32).reshape(len(col), col.type.list_size)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if len(col) and (lengths.min() != lengths.max()):
        raise ValueError(
            f"column {name!r} has rows of lengths {int(lengths.min())}..{int(lengths.max())}; "
            "split the table by embodiment first"
        )
    d = int(lengths[0]) if len(col) else 0
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    return np.asarray(flat, np.float32).reshape(len(col), d)
