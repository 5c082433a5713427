"""Several envs stepped in lock-step, one batched inference for all that need a chunk.

A rollout worker holds ``envs_per_worker`` envs. Each control tick, every env whose chunk is used
up (``replan_steps`` actions executed) joins ONE ``ChunkSource.predict`` call, then every active
env executes its next action. An env whose episode ends takes the next job at once, so envs never
idle while jobs remain. The order of everything is fixed by the job list, so the same jobs on the
same number of envs give the same batches, the same noise (keyed by episode seed and step) and
the same episodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ramp.platform.envs.chunking import ChunkCursor, ChunkSource, to_item
from ramp.platform.envs.core import SimEnv
from ramp.platform.envs.human import InterventionSource
from ramp.platform.envs.rollout import EpisodeRun


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: its id, its task and its reset seed."""

    episode_id: str
    task: str
    seed: int


@dataclass
class _Lane:
    job: EpisodeJob
    run: EpisodeRun
    cursor: ChunkCursor


def run_lockstep(
    envs: Sequence[SimEnv],
    jobs: Iterable[EpisodeJob],
    source: ChunkSource,
    *,
    replan_steps: int,
    humans: Sequence[InterventionSource | None] | None = None,
    source_name: str = "rollout",
    round: int = 0,
    policy_version: str = "unknown",
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Iterator[tuple[EpisodeJob, object]]:
    """Run every job on ``envs``; yields (job, Episode) as each episode finishes.

    ``humans[i]`` (if given) may take over env i. ``on_step(step)`` is called once per env step
    with the step index within its episode (rollout workers put their fault point there).
    ``policy_version`` is recorded for policy steps whose chunk names none.
    """
    if not envs:
        raise ValueError("run_lockstep needs at least one env")
    pending = deque(jobs)
    lanes: list[_Lane | None] = [None] * len(envs)

    def start(i: int) -> None:
        job = pending.popleft()
        env = envs[i]
        env.set_task(job.task)
        run = EpisodeRun(
            env,
            job.seed,
            intervention=humans[i] if humans is not None else None,
            episode_id=job.episode_id,
            source=source_name,
            policy_version=policy_version,
            round=round,
            max_steps=max_steps,
        )
        lanes[i] = _Lane(job, run, ChunkCursor(replan_steps))

    for i in range(len(envs)):
        if pending:
            start(i)
    while any(lane is not None for lane in lanes):
        need = [i for i, lane in enumerate(lanes) if lane is not None and lane.cursor.needs_chunk]
        if need:
            items, keys = [], []
            for i in need:
                lane = lanes[i]
                assert lane is not None
                items.append(to_item(envs[i].spec.embodiment, lane.run.obs))
                keys.append((lane.job.seed, lane.run.steps))
            for i, chunk in zip(need, source.predict(items, keys), strict=True):
                lanes[i].cursor.set(chunk)  # type: ignore[union-attr]
        for i, lane in enumerate(lanes):
            if lane is None:
                continue
            action, version = lane.cursor.next_action()
            lane.run.step(action, version)
            if on_step is not None:
                on_step(lane.run.steps)
            if lane.run.done:
                lanes[i] = None
                yield lane.job, lane.run.episode()
                if pending:
                    start(i)
