"""Training samples: (observation at t, action chunk t..t+H-1, future frames, labels) per step.

Order: episodes are shuffled with the seed (and epoch), grouped into windows of
``shuffle_window`` episodes, and the steps of each window are shuffled together. This bounds
memory to one window of decoded episodes while mixing steps across episodes, and streams from any
store (no random access into thousands of files).

Sharding: the global sample sequence is dealt round-robin to ranks (sample i goes to rank
i % world_size), so shards are disjoint, every rank reads the same window at the same time, and
with ``drop_last`` every rank gets exactly the same number of samples (DDP hangs otherwise).

Excluded steps (``exclude_steps``, e.g. the transitional steps around human takeovers that
``rl.interventions.clean_steps`` flags) are never a sample's start step t; they simply do not
enter the index, so order, sharding and ``iter_from`` stay pure functions of (seed, epoch, rank).
A kept step's action chunk t..t+H-1 and future frames may still read excluded neighbours: the
exclusion chooses what is learnt FROM, not what the episode looks like.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.schema import camera_column
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.episodes.validate import read_meta

LABEL_FIELDS = ("value", "advantage", "indicator")


@dataclass
class _Loaded:
    """One episode decoded into numpy, shared by all samples drawn from it."""

    episode_id: str
    task: str
    embodiment: str
    instruction: list[str]
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    intervention: np.ndarray
    reward: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(self.action.shape[0])


def _fixed_list(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column).combine_chunks()
    values = col.flatten().to_numpy()
    return values.reshape(len(col), -1) if len(col) else values.reshape(0, 0)


class TrainingSamples:
    """An iterable of training samples for one rank; deterministic for a (seed, epoch)."""

    def __init__(
        self,
        store: EpisodeStore,
        episode_ids: Sequence[str],
        *,
        chunk_size: int = 50,
        future_offsets: Sequence[int] = (12, 24, 36, 48),
        labels: str | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        shuffle_window: int = 64,
        drop_last: bool = True,
        cameras: Sequence[str] | None = None,
        exclude_steps: Mapping[str, Sequence[int] | np.ndarray] | None = None,
    ):
        """``exclude_steps``: episode id -> steps never used as a start step (see the module
        docstring); episodes not named keep every step."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if any(o < 1 for o in future_offsets):
            raise ValueError(f"future_offsets must be positive, got {list(future_offsets)}")
        self.store = store
        self.episode_ids = sorted(set(episode_ids))
        self.chunk_size = chunk_size
        self.future_offsets = np.asarray(list(future_offsets), dtype=np.int64)
        self.labels = labels
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.shuffle_window = max(1, shuffle_window)
        self.drop_last = drop_last
        self.cameras = list(cameras) if cameras is not None else None
        self.epoch = 0
        entries = {e.episode_id: e for e in store.episodes(ids=self.episode_ids)}
        missing = [e for e in self.episode_ids if e not in entries]
        if missing:
            raise KeyError(f"{len(missing)} episodes are not in the store, e.g. {missing[0]!r}")
        self.lengths = {eid: entries[eid].num_steps for eid in self.episode_ids}
        # start steps of the episodes that lose some; the others start at every step 0..T-1
        self._starts: dict[str, np.ndarray] = {}
        for eid, steps in (exclude_steps or {}).items():
            if eid not in self.lengths:
                continue  # an exclusion for an episode this fit does not train on
            drop = np.unique(np.asarray(steps, dtype=np.int64))
            if drop.size and (drop[0] < 0 or drop[-1] >= self.lengths[eid]):
                raise ValueError(
                    f"excluded steps of {eid!r} must lie in [0, {self.lengths[eid]}), "
                    f"got {drop[0]}..{drop[-1]}"
                )
            if drop.size:
                self._starts[eid] = np.setdiff1d(
                    np.arange(self.lengths[eid], dtype=np.int64), drop, assume_unique=True
                )
        # how many steps of these episodes start no sample
        self.excluded = sum(self.lengths[e] - s.size for e, s in self._starts.items())
        if labels is not None:
            labelled = store.labelled_ids(labels)  # one listing, not one per episode
            unlabelled = [e for e in self.episode_ids if e not in labelled]
            if unlabelled:
                raise KeyError(
                    f"{len(unlabelled)} episodes have no labels of world model {labels!r}, "
                    f"e.g. {unlabelled[0]!r} (run `ramp label` first)"
                )

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle per epoch, the same on every rank."""
        self.epoch = epoch

    def starts(self, episode_id: str) -> np.ndarray:
        """The steps of an episode that start a sample, ascending."""
        starts = self._starts.get(episode_id)
        return starts if starts is not None else np.arange(self.lengths[episode_id])

    def _total(self) -> int:
        n = sum(self.lengths.values()) - self.excluded
        return (n // self.world_size) * self.world_size if self.drop_last else n

    def __len__(self) -> int:
        total = self._total()
        return total // self.world_size + (1 if self.rank < total % self.world_size else 0)

    def _windows(self) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        """(episode ids, episode index per sample, step per sample) for each window in order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = list(self.episode_ids)
        if self.shuffle:
            order = [order[i] for i in rng.permutation(len(order))]
        for start in range(0, len(order), self.shuffle_window):
            ids = order[start : start + self.shuffle_window]
            starts = [self.starts(e) for e in ids]
            ep_index = np.repeat(np.arange(len(ids)), [s.size for s in starts])
            steps = np.concatenate(starts) if len(ids) else np.empty(0)
            if self.shuffle:
                perm = rng.permutation(len(steps))
                ep_index, steps = ep_index[perm], steps[perm]
            yield ids, ep_index, steps

    def index(self) -> list[tuple[str, int]]:
        """(episode id, step) of every sample of this rank, in order, without reading data."""
        out = []
        position, total = 0, self._total()
        for ids, ep_index, steps in self._windows():
            for i, s in zip(ep_index, steps, strict=True):
                if position >= total:
                    return out
                if position % self.world_size == self.rank:
                    out.append((ids[i], int(s)))
                position += 1
        return out

    def _load(self, episode_id: str) -> _Loaded:
        table = self.store.read_episode(episode_id, labels=self.labels)
        meta = read_meta(table)
        cams = self.cameras if self.cameras is not None else list(meta.cameras)
        images = {}
        for cam in cams:
            if cam not in meta.cameras:
                raise KeyError(
                    f"camera {cam!r} not in episode {episode_id!r} (has {', '.join(meta.cameras)})"
                )
            c = meta.cameras[cam]
            images[cam] = decode_frames(
                table.column(camera_column(cam)), c.encoding, c.height, c.width
            )
        loaded = _Loaded(
            episode_id=episode_id,
            task=meta.task,
            embodiment=meta.embodiment,
            instruction=table.column("instruction").to_pylist(),
            images=images,
            state=_fixed_list(table, "state"),
            action=_fixed_list(table, "action"),
            intervention=table.column("intervention").to_numpy(zero_copy_only=False),
            reward=table.column("reward").to_numpy(),
        )
        if self.labels is not None:
            for name in LABEL_FIELDS:
                loaded.labels[name] = table.column(name).to_numpy(zero_copy_only=False)
        for name in meta.optional_columns:
            if name == "trajectory_2d":
                col = table.column(name).combine_chunks()
                loaded.optional[name] = [
                    None if v is None else np.asarray(v, np.float32) for v in col.to_pylist()
                ]
            else:
                loaded.optional[name] = table.column(name).to_pylist()
        return loaded

    def sample(self, ep: _Loaded, t: int) -> dict[str, Any]:
        """The training sample at step t of a loaded episode."""
        T, H = ep.num_steps, self.chunk_size
        idx = np.arange(t, t + H)
        action_mask = idx < T
        actions = np.zeros((H, ep.action.shape[1]), dtype=np.float32)
        actions[action_mask] = ep.action[idx[action_mask]]
        fut = t + self.future_offsets
        future_mask = fut < T
        fut_clamped = np.minimum(fut, T - 1)
        out: dict[str, Any] = {
            "episode_id": ep.episode_id,
            "step": t,
            "task": ep.task,
            "embodiment": ep.embodiment,
            "instruction": ep.instruction[t],
            "images": {cam: frames[t] for cam, frames in ep.images.items()},
            "state": ep.state[t],
            "actions": actions,
            "action_mask": action_mask,
            "future_images": {cam: frames[fut_clamped] for cam, frames in ep.images.items()},
            "future_state": ep.state[fut_clamped],
            "future_mask": future_mask,
            "intervention": bool(ep.intervention[t]),
            "reward": float(ep.reward[t]),
        }
        for name, values in ep.labels.items():
            out[name] = values[t]
        for name, values in ep.optional.items():
            out[name] = values[t]
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[dict[str, Any]]:
        """This rank's samples from its ``start``-th on (a trainer resuming mid-epoch); windows
        that lie wholly before ``start`` are skipped without reading a file."""
        position, total, seen = 0, self._total(), 0
        for ids, ep_index, steps in self._windows():
            mine = [
                (i, s)
                for k, (i, s) in enumerate(zip(ep_index, steps, strict=True))
                if position + k < total and (position + k) % self.world_size == self.rank
            ]
            position += len(steps)
            skip = min(max(start - seen, 0), len(mine))
            seen += len(mine)
            mine = mine[skip:]
            needed = sorted({int(i) for i, _ in mine})
            loaded = {i: self._load(ids[i]) for i in needed}
            for i, s in mine:
                yield self.sample(loaded[int(i)], int(s))
            if position >= total:
                return


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples into a batch of numpy arrays (strings stay lists; shapes must agree)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    mixed = "mixed embodiments need padding to a common dimension first"

    def stack(key: str, values: list[Any]) -> np.ndarray:
        try:
            return np.stack([np.asarray(v) for v in values])
        except ValueError as e:
            raise ValueError(f"cannot batch {key!r}: shapes differ across samples ({mixed})") from e

    out: dict[str, Any] = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        if isinstance(first, dict):
            if any(set(v) != set(first) for v in values):
                raise ValueError(f"cannot batch {key!r}: cameras differ across samples ({mixed})")
            out[key] = {k: stack(f"{key}.{k}", [v[k] for v in values]) for k in first}
        elif isinstance(first, str) or first is None:
            out[key] = values
        else:
            out[key] = stack(key, values)
    return out
