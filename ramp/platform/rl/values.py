"""World-model values for every step of whole episodes: batched, seeded per episode, repeatable.

Why batches never cross an episode: ``WorldModel.predict`` draws the noise of a whole batch from
one generator, so the noise a step gets depends on the batch it sits in. Here every episode is
cut into batches of ``batch_size`` steps from its step 0, and its generator is seeded from
(``training.labeller.seed``, episode id). An episode then gets the same values whichever actor
values it, next to whichever other episodes, and after any crash and retry; a labelling pass
that is re-run reproduces the thresholds of the interrupted one.

Observations are built exactly as training samples are (``TrainingSamples.sample``, then
``collate_padded``), so the world model sees the inputs it was trained on: the same decoded
frames, the same padding and the same positional camera slots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xxhash

from ramp.platform.config import RampConfig
from ramp.platform.episodes.samples import TrainingSamples
from ramp.platform.episodes.store import (
    EpisodeNotFoundError,
    EpisodeStore,
    EpisodeUnreadableError,
)
from ramp.platform.models.padding import collate_padded, to_tensors
from ramp.platform.rl.relabel import ValuedEpisodes

# What ``WorldModel.predict`` reads of a training sample; the rest (future frames, action
# chunks) is dropped before batching so a batch holds no more than the model needs.
OBSERVATION_KEYS = ("images", "state", "instruction", "embodiment", "step", "task")


def episode_seed(seed: int, episode_id: str) -> int:
    """A 63-bit generator seed from (seed, episode id); stable across processes and machines
    (Python's ``hash`` of a string is salted per process)."""
    return xxhash.xxh3_64_intdigest(f"{int(seed)}|{episode_id}".encode()) & ((1 << 63) - 1)


class EpisodeValuer:
    """Values of whole episodes from one world model (kept in eval mode, no gradients)."""

    def __init__(
        self,
        model: Any,
        store: EpisodeStore,
        *,
        batch_size: int,
        seed: int,
        chunk_size: int,
        future_offsets: Sequence[int],
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.store = store
        self.batch_size = batch_size
        self.seed = seed
        self.chunk_size = chunk_size
        self.future_offsets = list(future_offsets)
        self._loader: TrainingSamples | None = None
        self._covered: set[str] = set()  # ids the loader was made for, or found missing
        self._missing: dict[str, str] = {}

    @classmethod
    def from_config(cls, model: Any, store: EpisodeStore, cfg: RampConfig) -> EpisodeValuer:
        lc = cfg.training.labeller
        return cls(
            model,
            store,
            batch_size=lc.batch_size,
            seed=lc.seed,
            chunk_size=cfg.sampling.chunk_size,
            future_offsets=cfg.sampling.future_offsets,
        )

    def prepare(self, episode_ids: Sequence[str]) -> None:
        """Index the episodes to value next (``TrainingSamples`` lists the store once and reads
        the index entry of each of them); ``value_episodes`` calls it for every new chunk."""
        self._loader, self._missing = self._make_loader(sorted(set(episode_ids)))
        self._covered = set(self._loader.episode_ids) | set(self._missing)

    def _make_loader(self, episode_ids: Sequence[str]) -> tuple[TrainingSamples, dict[str, str]]:
        def make(ids: Sequence[str]) -> TrainingSamples:
            return TrainingSamples(
                self.store,
                ids,
                chunk_size=self.chunk_size,
                future_offsets=self.future_offsets,
                shuffle=False,
                drop_last=False,
            )

        try:
            return make(episode_ids), {}
        except KeyError:  # some are gone (quarantined since they were listed): report them
            present = {e.episode_id for e in self.store.episodes(ids=episode_ids)}
            missing = {
                eid: f"episode {eid!r} is not in the store {self.store.root}"
                for eid in episode_ids
                if eid not in present
            }
            return make([e for e in episode_ids if e in present]), missing

    @torch.no_grad()
    def _predict(self, observations: list[dict[str, Any]], generator: torch.Generator) -> Any:
        width = self.model.cfg.max_state_dim  # the action width is unused: no actions in obs
        batch = to_tensors(
            collate_padded(observations, width, width, camera_slots=True), self.model.device
        )
        value = self.model.value(batch, generator=generator)
        return value.float().cpu().numpy()

    def episode_values(self, episode_id: str) -> np.ndarray:
        """float32 [T]: the value of every step of one episode, in step order."""
        if episode_id not in self._covered:
            self.prepare([episode_id])
        if episode_id in self._missing:
            raise EpisodeNotFoundError(self._missing[episode_id])
        loader = self._loader
        assert loader is not None
        # _load decodes the episode once, the way training does; sample() builds each step's
        # observation from it (views into the decoded frames, no copies of them).
        episode = loader._load(episode_id)
        n = episode.num_steps
        generator = torch.Generator().manual_seed(episode_seed(self.seed, episode_id))
        out = np.empty(n, np.float32)
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            obs = []
            for t in range(start, stop):
                sample = loader.sample(episode, t)
                obs.append({k: sample[k] for k in OBSERVATION_KEYS})
            out[start:stop] = self._predict(obs, generator)
        if not np.isfinite(out).all():
            bad = int(np.flatnonzero(~np.isfinite(out))[0])
            raise ValueError(
                f"the world model gave a non-finite value at step {bad} of {episode_id!r}; "
                "check its checkpoint (NaN weights?) before labelling with it"
            )
        return out

    def value_episodes(
        self,
        episode_ids: Sequence[str],
        on_episode: Callable[[str], None] | None = None,
    ) -> ValuedEpisodes:
        """Values of every readable episode; unreadable (quarantined) or missing ones are
        reported with the reason instead of stopping the batch. ``on_episode(id)`` runs before
        each episode (the actor's fault-injection point)."""
        start = time.perf_counter()
        ids = sorted(set(episode_ids))
        if not set(ids) <= self._covered:
            self.prepare(ids)
        unreadable = {eid: self._missing[eid] for eid in ids if eid in self._missing}
        values: dict[str, np.ndarray] = {}
        for eid in ids:
            if eid in unreadable:
                continue
            if on_episode is not None:
                on_episode(eid)
            try:
                values[eid] = self.episode_values(eid)
            except (EpisodeUnreadableError, EpisodeNotFoundError) as e:
                unreadable[eid] = str(e)
        return ValuedEpisodes(values, unreadable, time.perf_counter() - start)
