"""Rollout workers on Ray: stage 3's collect and the promotion gate's evaluation.

A thin shell over ramp.platform.envs.collect: ``RolloutWorker`` holds a ``RolloutRunner`` (its
envs, simulated humans, policy copies or the endpoint's client); ``collect`` / ``evaluate`` cut the
deterministic job list into small calls and keep every worker busy with one. A worker that dies
(RAMP_FAULTS "rollout.step", a lost node) loses only its unfinished episodes - store writes are
atomic - and those go to a fresh worker, up to ``envs.rollout.max_episode_attempts`` times each.
Results are returned, never logged (the coordinator logs them).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from ramp.platform import faults
from ramp.platform.config import RampConfig
from ramp.platform.envs.chunking import ModelRef
from ramp.platform.envs.collect import (
    Attempts,
    CollectResult,
    EpisodeOutcome,
    EvalResult,
    RolloutRunner,
    collect_result,
    evaluation_jobs,
    evaluation_result,
    plan_calls,
    rollout_jobs,
    serve_endpoint,
)
from ramp.platform.envs.lockstep import EpisodeJob

Progress = Callable[[int, int, str], None]  # (episodes done, total, message)

__all__ = ["CollectResult", "EvalResult", "RolloutError", "RolloutWorker", "collect", "evaluate"]


class RolloutError(RuntimeError):
    """Episodes that failed on every attempt; the others are stored (a re-run retries these)."""


@ray.remote(max_restarts=0)
class RolloutWorker:
    """One worker: envs + policy copies (or the endpoint's client), kept across calls."""

    def __init__(self, cfg: RampConfig, preload: list, serve: tuple[str, str | None] | None):
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LP_NUM_THREADS"):
            os.environ.setdefault(key, "1")  # no downloads; one render thread per process
        import torch

        r = cfg.envs.rollout
        torch.set_num_threads(max(1, int(r.cpus_per_worker)))
        device = "cuda" if r.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
        act = None
        if serve is not None:
            from ramp.deploy.client import RampClient

            act = RampClient(*serve).act
        self.runner = RolloutRunner(cfg, remote_act=act, device=device)
        for policy, world_model in preload or [(None, None)]:
            self.runner.warm_up(policy, world_model)

    def ready(self) -> str:
        return self.runner.spec.embodiment

    def run(self, jobs: list[EpisodeJob], **kwargs: Any) -> list[EpisodeOutcome]:
        return self.runner.run(jobs, on_step=_fault_point, **kwargs)


def _fault_point(step: int) -> None:
    faults.point("rollout.step", step)


@dataclass
class _Call:
    jobs: list[EpisodeJob]
    kwargs: dict[str, Any]


def _ref(cfg: RampConfig, kind: str, spec: str | None) -> ModelRef:
    from ramp.deploy.versions import resolve

    if spec is None:
        raise ValueError(
            f"no {kind} version given (envs.rollout.inference_mode 'standard' needs one)"
        )
    ref = resolve(spec, cfg.store.root, kind)
    return ModelRef(ref.root, ref.rel, ref.version)


def _dispatch(
    cfg: RampConfig,
    calls: list[_Call],
    preload: list,
    serve: tuple[str, str | None] | None,
    progress: Progress | None,
    in_store: Callable[[EpisodeJob], Any] | None = None,
) -> tuple[list[EpisodeOutcome], Attempts, float]:
    """Run the calls over fresh workers, one call in flight per worker; (outcomes, attempts,
    setup seconds). ``in_store``: episodes a dead worker finished are not run again."""
    r = cfg.envs.rollout
    spawn = RolloutWorker.options(
        num_cpus=r.cpus_per_worker, num_gpus=r.gpus_per_worker, runtime_env=faults.runtime_env()
    ).remote
    t0 = time.perf_counter()
    workers = [spawn(cfg, preload, serve) for _ in range(min(r.num_workers, len(calls)))]
    attempts, outcomes = Attempts(r.max_episode_attempts), []
    total, done = sum(len(c.jobs) for c in calls), 0
    try:
        ray.get([w.ready.remote() for w in workers])
        setup_s = time.perf_counter() - t0
        queue: deque[_Call] = deque(calls)
        inflight: dict[Any, tuple[int, _Call]] = {}

        def submit(w: int) -> None:
            if queue:
                call = queue.popleft()
                inflight[workers[w].run.remote(call.jobs, **call.kwargs)] = (w, call)

        for w in range(len(workers)):
            submit(w)
        while inflight:
            [ref], _ = ray.wait(list(inflight), num_returns=1)
            w, call = inflight.pop(ref)
            try:
                outs = ray.get(ref)
            except (RayActorError, RayTaskError) as e:
                left = [j for j in call.jobs if in_store is None or not in_store(j)]
                done += len(call.jobs) - len(left)  # stored before the worker died
                again = attempts.failed_call(left, e)
                if again:
                    queue.appendleft(_Call(again, call.kwargs))
                if isinstance(e, RayActorError):  # dead: a fresh worker takes its place
                    workers[w] = spawn(cfg, preload, serve)
                outs = []
            outcomes.extend(outs)
            done += len(outs)
            if progress is not None:
                note = f", {len(attempts.retried)} retried" if attempts.retried else ""
                progress(done, total, f"{done}/{total} episodes{note}")
            submit(w)
        return outcomes, attempts, setup_s
    finally:
        for w in workers:
            ray.kill(w)


def collect(
    cfg: RampConfig,
    *,
    round_: int,
    policy: str,
    world_model: str | None = None,
    progress: Progress | None = None,
) -> CollectResult:
    """Stage 3: episodes_per_task episodes per task with ``policy`` into the store (round_);
    episodes already stored by an earlier run of the same collect are kept, not re-run."""
    from ramp.platform.episodes import EpisodeStore

    t0 = time.perf_counter()
    r = cfg.envs.rollout
    store = EpisodeStore.from_config(cfg)
    jobs = rollout_jobs(cfg, round_)
    existing = {j.episode_id for j in jobs if store.lookup(j.episode_id) is not None}
    todo = [j for j in jobs if j.episode_id not in existing]
    serve = serve_endpoint(cfg) if r.action_source == "serve" else None
    pref = wref = None
    if serve is None:
        pref = _ref(cfg, "policy", policy)
        wref = _ref(cfg, "world-model", world_model) if r.inference_mode == "standard" else None
    kwargs = dict(policy=pref, world_model=wref, round_=round_, human=r.human, write=True)
    kwargs["serve"] = serve is not None
    calls = [_Call(c, kwargs) for c in plan_calls(todo, r.envs_per_worker, r.num_workers)]
    attempts, setup_s = Attempts(r.max_episode_attempts), 0.0
    if calls:
        preload = [(pref, wref)] if pref is not None else []
        in_store = lambda j: store.lookup(j.episode_id)  # noqa: E731
        _, attempts, setup_s = _dispatch(cfg, calls, preload, serve, progress, in_store)
    if attempts.failed:
        raise RolloutError(
            f"{len(attempts.failed)} episode(s) failed {r.max_episode_attempts} times; the others "
            f"are stored and a re-run retries these: {dict(list(attempts.failed.items())[:3])}"
        )
    return collect_result(
        cfg,
        store,
        round_=round_,
        policy=pref.version if pref is not None else policy,
        jobs=jobs,
        existing=existing,
        retried=sorted(attempts.retried),
        wall_s=time.perf_counter() - t0,
        setup_s=setup_s,
    )


def evaluate(
    cfg: RampConfig,
    *,
    round_: int,
    policies: dict[str, str],
    world_model: str | dict[str, str | None] | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Every policy (label -> version) on the same seeded episodes; no human, nothing stored.

    ``world_model``: in "standard" inference mode the world model each policy acts with, one for
    all or per label (a policy acts with the world model it was trained with: another one's z
    means nothing to it)."""
    t0 = time.perf_counter()
    r = cfg.envs.rollout
    refs = {label: _ref(cfg, "policy", v) for label, v in policies.items()}
    per_label = (
        world_model if isinstance(world_model, dict) else dict.fromkeys(policies, world_model)
    )
    wrefs = {
        label: _ref(cfg, "world-model", per_label.get(label))
        if r.inference_mode == "standard"
        else None
        for label in refs
    }
    calls = []
    for label, ref in refs.items():
        kwargs = dict(policy=ref, world_model=wrefs[label], round_=round_, evaluation=True)
        jobs = evaluation_jobs(cfg, label)
        calls += [_Call(c, kwargs) for c in plan_calls(jobs, r.envs_per_worker, r.num_workers)]
    preload = list(dict.fromkeys((ref, wrefs[label]) for label, ref in refs.items()))
    outcomes, attempts, setup_s = _dispatch(cfg, calls, preload, None, progress)
    if attempts.failed:
        raise RolloutError(
            f"{len(attempts.failed)} evaluation episode(s) failed: {attempts.failed}"
        )
    versions = {label: ref.version for label, ref in refs.items()}
    wall = time.perf_counter() - t0
    return evaluation_result(cfg, round_, versions, outcomes, wall, setup_s, attempts.retried)
