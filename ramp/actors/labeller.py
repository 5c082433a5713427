"""Labeller actors: world-model values of many episodes in parallel; the RL core does the rest.

``label(cfg, world_model=..., episode_ids=...)`` runs on the driver (the coordinator, or
``ramp label``). The pass itself is ``ramp.platform.rl.relabel`` (which episodes are missing,
thresholds over all of them, sidecars, metrics); this file only starts
``training.labeller.num_actors`` actors, each loading the world-model checkpoint once from the
store, and deals them chunks of the missing episodes as they finish. Actors return values, never
write: sidecars need the thresholds of the whole pass.

An actor killed mid-chunk is restarted and its chunk retried; values are seeded per episode
(``rl.values``), so the retry gives the same values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import ray

from ramp.platform import faults
from ramp.platform.config import RampConfig
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.rl.relabel import LabelPass, LabelResult, ValuedEpisodes

__all__ = ["LabelResult", "Labeller", "label"]

Progress = Callable[[int, int], None]  # (episodes valued, episodes to value)
MAX_CHUNK = 32  # episodes per call: small enough to balance actors and report progress
IN_FLIGHT = 2  # calls queued per actor, so it never idles while a result travels back


def checkpoint_path(world_model: str) -> str:
    return f"checkpoints/world-model/{world_model}"


@ray.remote
class Labeller:
    """Holds one world model and values chunks of episodes with it."""

    def __init__(self, cfg: RampConfig, world_model: str):
        import torch

        from ramp.platform.models.checkpoints import load_checkpoint
        from ramp.platform.rl.values import EpisodeValuer

        lc = cfg.training.labeller
        torch.set_num_threads(max(1, math.floor(lc.cpus_per_actor)))
        device = "cuda" if lc.gpus_per_actor > 0 and torch.cuda.is_available() else "cpu"
        store = EpisodeStore.from_config(cfg)
        model = load_checkpoint(
            store.fs, checkpoint_path(world_model), device=device, kind="world-model"
        )
        self.valuer = EpisodeValuer.from_config(model, store, cfg)
        self.valued = 0

    def _point(self, episode_id: str) -> None:
        faults.point("label.episode", self.valued)
        self.valued += 1

    def value(self, episode_ids: list[str]) -> ValuedEpisodes:
        return self.valuer.value_episodes(episode_ids, on_episode=self._point)


def _value_with_actors(
    cfg: RampConfig, world_model: str, todo: list[str], progress: Progress | None
) -> ValuedEpisodes:
    lc = cfg.training.labeller
    n_actors = min(lc.num_actors, len(todo))
    size = max(1, min(MAX_CHUNK, math.ceil(len(todo) / (n_actors * 4))))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    actors = [
        Labeller.options(
            num_cpus=lc.cpus_per_actor,
            num_gpus=lc.gpus_per_actor,
            runtime_env=faults.runtime_env(),
            max_restarts=2,
            max_task_retries=2,
        ).remote(cfg, world_model)
        for _ in range(n_actors)
    ]
    result, done = ValuedEpisodes(), 0
    pending: dict[ray.ObjectRef, tuple[ray.actor.ActorHandle, int]] = {}
    free = [a for _ in range(IN_FLIGHT) for a in actors]
    try:
        while chunks or pending:
            while free and chunks:
                actor, chunk = free.pop(0), chunks.pop(0)
                pending[actor.value.remote(chunk)] = (actor, len(chunk))
            ready, _ = ray.wait(list(pending), num_returns=1)
            actor, n = pending.pop(ready[0])
            result = result.merged(ray.get(ready[0]))
            free.append(actor)
            done += n
            if progress is not None:
                progress(done, len(todo))
    finally:
        for actor in actors:
            ray.kill(actor)
    return result


def label(
    cfg: RampConfig,
    *,
    world_model: str,
    episode_ids: list[str],
    progress: Progress | None = None,
) -> LabelResult:
    """Label every episode of ``episode_ids`` not yet labelled by ``world_model`` (a version in
    the store's checkpoints/world-model/), with thresholds fitted over all of them."""
    from ramp.platform.models.checkpoints import read_config

    store = EpisodeStore.from_config(cfg)
    job = LabelPass(cfg, store, world_model, episode_ids)
    job.read()
    if not job.todo:
        return job.finish(ValuedEpisodes())
    read_config(store.fs, checkpoint_path(world_model))  # a missing one fails here, clearly
    return job.finish(_value_with_actors(cfg, world_model, job.todo, progress))
