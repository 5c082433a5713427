"""Stage 3 and the promotion gate's evaluation, without Ray: jobs, a worker's state, results.

- Jobs are deterministic. A rollout episode of round r is
  ``rollout-r<r>-<suite>-<task slug>-s<seed>`` with seed ``envs.rollout.seed + r * SEED_STRIDE + i``
  (i < episodes_per_task), so rounds never reuse seeds and a collect re-run after a crash skips
  the ids already in the store. Evaluation uses seeds ``envs.evaluation.seed + i`` for every task
  and every policy compared, no human, and writes nothing.
- ``RolloutRunner`` is what a rollout worker holds: its envs, their simulated humans, policy
  copies by version (or the serving endpoint), the store. ``run(jobs, ...)`` steps the jobs in
  lock-step (envs/lockstep.py) and writes finished episodes (atomic: a worker that dies mid-episode
  leaves nothing of it).
- ``EpisodeOutcome`` / ``summarize``: success and intervention rates overall, per task and per
  policy version, as plain dicts (the coordinator logs them); outcomes also come from store index
  entries, so robots' uploaded episodes are summarised the same way.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ramp.platform.config import RampConfig
from ramp.platform.envs.chunking import (
    ChunkSource,
    ModelRef,
    PolicyChunks,
    RemoteChunks,
    to_item,
)
from ramp.platform.envs.lockstep import EpisodeJob, run_lockstep
from ramp.platform.envs.rollout import slug_of
from ramp.platform.envs.suites import SUITES

SEED_STRIDE = 10_000  # seeds per round: round r uses rollout.seed + r * SEED_STRIDE + i
HUMAN = "human"  # the policy_version of the steps a (simulated) human drove
# policy_version names that name no policy: a human, the demonstrations' expert, steps whose
# source did not say (the robot client's default); never credited to a policy version
NON_POLICY_NAMES = frozenset({HUMAN, "scripted-expert", "unknown"})


# --------------------------------------------------------------------------- jobs


def rollout_episode_id(round_: int, suite: str, task: str, seed: int) -> str:
    """``rollout-r<round>-<suite>-<task slug>-s<seed>``: stable across re-runs of a collect."""
    return f"rollout-r{int(round_)}-{suite}-{slug_of(task, SUITES[suite].tasks)}-s{int(seed)}"


def rollout_jobs(cfg: RampConfig, round_: int) -> list[EpisodeJob]:
    """The episodes of round ``round_``'s collect: episodes_per_task per task, task by task."""
    r = cfg.envs.rollout
    if r.human and not SUITES[cfg.envs.env.suite].has_expert:
        raise ValueError(
            f"envs.rollout.human is true but suite {cfg.envs.env.suite!r} has no scripted expert "
            "to play the human; set envs.rollout.human: false (docs/envs.md)"
        )
    if r.episodes_per_task > SEED_STRIDE:
        raise ValueError(
            f"envs.rollout.episodes_per_task ({r.episodes_per_task}) exceeds the {SEED_STRIDE} "
            "seeds a round owns"
        )
    suite = cfg.envs.env.suite
    jobs = []
    for task in cfg.envs.env.task_list:
        for i in range(r.episodes_per_task):
            seed = r.seed + int(round_) * SEED_STRIDE + i
            jobs.append(EpisodeJob(rollout_episode_id(round_, suite, task, seed), task, seed))
    return jobs


def evaluation_jobs(cfg: RampConfig, label: str) -> list[EpisodeJob]:
    """The evaluation episodes of one policy: the same (task, seed) list for every label."""
    e, suite = cfg.envs.evaluation, cfg.envs.env.suite
    return [
        EpisodeJob(f"eval-{label}-{suite}-{slug_of(task, SUITES[suite].tasks)}-s{seed}", task, seed)
        for task in cfg.envs.env.task_list
        for seed in range(e.seed, e.seed + e.episodes_per_task)
    ]


def plan_calls(
    jobs: Sequence[EpisodeJob], envs_per_worker: int, num_workers: int
) -> list[list[EpisodeJob]]:
    """Cut the jobs, in order, into the units a worker runs in one call.

    One wave (envs_per_worker jobs) per call; two when a worker has several envs, so an env whose
    episode ends early takes the next job instead of idling. Small calls balance the workers and
    bound what a dead worker loses. The cut depends only on the job list, so the batches (and the
    sampled actions) of a re-run are the same.
    """
    waves = 1 if envs_per_worker == 1 else 2
    size = envs_per_worker * waves
    size = max(1, min(size, math.ceil(len(jobs) / max(1, num_workers))))
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def max_steps(cfg: RampConfig, evaluation: bool = False) -> int | None:
    """Episode step cap: evaluation.max_steps (evaluation), rollout.max_steps, else the env's."""
    if evaluation and cfg.envs.evaluation.max_steps is not None:
        return cfg.envs.evaluation.max_steps
    return cfg.envs.rollout.max_steps


# --------------------------------------------------------------------------- outcomes


@dataclass
class EpisodeOutcome:
    """What one finished episode says about the policy that ran it."""

    episode_id: str
    task: str
    success: bool
    steps: int
    intervention_steps: int
    policy_version: str
    status: str  # "written" | "exists" (a re-run found it in the store) | "evaluated"
    seed: int | None = None
    total_reward: float | None = None  # the suite's reward summed (None: from the index)

    @classmethod
    def from_episode(cls, episode: Any, seed: int | None, status: str) -> EpisodeOutcome:
        flags, steps = episode.intervention, len(episode.action)
        v = episode.policy_version
        versions = [v] * steps if isinstance(v, str) else list(v)
        policy = [v for v, f in zip(versions, flags, strict=True) if not f]
        return cls(
            episode.episode_id,
            episode.task,
            bool(episode.success),
            steps,
            int(flags.sum()),
            _main_version(policy or versions),
            status,
            seed,
            float(np.sum(episode.reward)) if episode.reward is not None else None,
        )

    @classmethod
    def from_entry(
        cls, entry: Any, status: str = "exists", seed: int | None = None
    ) -> EpisodeOutcome:
        """From a store index entry (no data read): robots' uploads, or a collect re-run."""
        versions = [v for v in entry.policy_versions if v not in NON_POLICY_NAMES]
        return cls(
            entry.episode_id,
            entry.task,
            bool(entry.success),
            int(entry.num_steps),
            int(entry.intervention_steps),
            _main_version(versions or list(entry.policy_versions) or ["unknown"]),
            status,
            seed,
        )


def _main_version(versions: Sequence[str]) -> str:
    return Counter(versions).most_common(1)[0][0]


def rates(outcomes: Iterable[EpisodeOutcome]) -> dict[str, float]:
    """Success rate, the share of steps a human drove, and the share of episodes with any."""
    outs = list(outcomes)
    steps = sum(o.steps for o in outs)
    n = len(outs)
    return {
        "episodes": float(n),
        "steps": float(steps),
        "success_rate": sum(o.success for o in outs) / n if n else 0.0,
        "intervention_rate": sum(o.intervention_steps for o in outs) / steps if steps else 0.0,
        "intervened_episode_rate": sum(o.intervention_steps > 0 for o in outs) / n if n else 0.0,
    }


def summarize(outcomes: Iterable[EpisodeOutcome]) -> dict[str, Any]:
    """{"overall": rates, "per_task": {task: rates}, "per_policy_version": {version: rates}}."""
    outs = list(outcomes)
    by_task: dict[str, list[EpisodeOutcome]] = defaultdict(list)
    by_version: dict[str, list[EpisodeOutcome]] = defaultdict(list)
    for o in outs:
        by_task[o.task].append(o)
        by_version[o.policy_version].append(o)
    return {
        "overall": rates(outs),
        "per_task": {t: rates(v) for t, v in sorted(by_task.items())},
        "per_policy_version": {k: rates(v) for k, v in sorted(by_version.items())},
    }


def policy_version_rates(entries: Iterable[Any]) -> dict[str, dict[str, float]]:
    """``rates`` per policy version of store index entries (no data read), each episode counted
    under its main version; episodes no policy drove (``NON_POLICY_NAMES`` only: demonstrations,
    wholly human ones) are left out. What the dashboard compares across versions."""
    per = summarize(EpisodeOutcome.from_entry(e) for e in entries)["per_policy_version"]
    return {v: r for v, r in per.items() if v not in NON_POLICY_NAMES}


# --------------------------------------------------------------------------- results


@dataclass
class CollectResult:
    """One round's collect (ramp.actors.rollout.collect)."""

    round: int
    policy: str  # the version asked for (what served chunks named is in per_policy_version)
    action_source: str
    episode_ids: list[str]  # every episode of this collect, written now or found from a re-run
    written: list[str]
    existing: list[str]
    retried: list[str]  # episodes re-run on a fresh worker after theirs died
    episodes: int
    steps: int  # env steps run by this call (episodes found in the store excluded)
    success_rate: float
    intervention_rate: float  # share of steps a human drove
    intervened_episode_rate: float
    per_task: dict[str, dict[str, float]]
    per_policy_version: dict[str, dict[str, float]]
    wall_s: float
    setup_s: float  # starting the workers (envs built, policy copies loaded)
    env_steps_per_s: float  # steps / (wall_s - setup_s)
    warnings: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat float metrics for the tracker (per-task keys as ``<task>/success_rate``)."""
        out = {
            k: float(getattr(self, k))
            for k in (
                "episodes",
                "steps",
                "success_rate",
                "intervention_rate",
                "intervened_episode_rate",
                "wall_s",
                "setup_s",
                "env_steps_per_s",
            )
        }
        out["written"] = float(len(self.written))
        out["retried"] = float(len(self.retried))
        for task, r in self.per_task.items():
            out[f"{task}/success_rate"] = r["success_rate"]
            out[f"{task}/intervention_rate"] = r["intervention_rate"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PolicyEvaluation:
    label: str
    version: str
    success_rate: float
    per_task: dict[str, float]  # task -> success rate
    episodes: int
    steps: int
    outcomes: list[EpisodeOutcome]  # sorted by (task, seed)


@dataclass
class EvalResult:
    """Every policy on the same seeded episodes (ramp.actors.rollout.evaluate)."""

    round: int
    success: dict[str, float]  # label -> success rate over all its episodes
    per_task: dict[str, dict[str, float]]  # label -> task -> success rate
    versions: dict[str, str]  # label -> the policy version evaluated
    seeds: dict[str, list[int]]  # task -> seeds, identical for every policy
    policies: dict[str, PolicyEvaluation]  # label -> details (the gate pairs the outcomes)
    wall_s: float
    setup_s: float
    retried: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        out = {}
        for label, p in self.policies.items():
            out[f"{label}/success_rate"] = p.success_rate
            for task, rate in p.per_task.items():
                out[f"{label}/{task}/success_rate"] = rate
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluation_result(
    cfg: RampConfig,
    round_: int,
    versions: dict[str, str],
    outcomes: Iterable[EpisodeOutcome],
    wall_s: float,
    setup_s: float,
    retried: Iterable[str] = (),
) -> EvalResult:
    """Assemble an EvalResult from the outcomes of every label's ``evaluation_jobs`` (any order)."""
    label_of = {j.episode_id: label for label in versions for j in evaluation_jobs(cfg, label)}
    by_label: dict[str, list[EpisodeOutcome]] = {label: [] for label in versions}
    for o in outcomes:
        by_label[label_of[o.episode_id]].append(o)
    policies = {}
    for label, outs in by_label.items():
        outs = sorted(outs, key=lambda o: (o.task, o.seed or 0))
        s = summarize(outs)
        policies[label] = PolicyEvaluation(
            label,
            versions[label],
            s["overall"]["success_rate"],
            {t: r["success_rate"] for t, r in s["per_task"].items()},
            len(outs),
            sum(o.steps for o in outs),
            outs,
        )
    e = cfg.envs.evaluation
    seeds = {t: list(range(e.seed, e.seed + e.episodes_per_task)) for t in cfg.envs.env.task_list}
    return EvalResult(
        round=round_,
        success={label: p.success_rate for label, p in policies.items()},
        per_task={label: p.per_task for label, p in policies.items()},
        versions=dict(versions),
        seeds=seeds,
        policies=policies,
        wall_s=wall_s,
        setup_s=setup_s,
        retried=sorted(retried),
    )


# --------------------------------------------------------------------------- a worker's state


def rollout_store(cfg: RampConfig, spec: Any) -> Any:
    """The store, with the env's embodiment declared as the env renders it."""
    from ramp.platform.episodes import EpisodeStore

    embodiments = dict(cfg.embodiments)
    declared, ours = embodiments.get(spec.embodiment), spec.embodiment_config()
    if declared is not None and declared != ours:
        raise ValueError(
            f"embodiment {spec.embodiment!r} is declared in the config with other dimensions "
            f"than {spec.suite} renders; set envs.env.embodiment to another name"
        )
    embodiments[spec.embodiment] = ours
    return EpisodeStore(cfg.store.root, embodiments, cfg.store)


class RolloutRunner:
    """A rollout worker's state: envs, simulated humans, policy copies, the store.

    ``remote_act``: the endpoint's ``act`` for action_source "serve" (a robot client's method;
    the actor builds the client, so this core never imports the deploy package).
    """

    def __init__(
        self,
        cfg: RampConfig,
        *,
        num_envs: int | None = None,
        remote_act: Callable[[dict[str, Any]], Any] | None = None,
        device: str = "cpu",
    ):
        from ramp.platform.envs.registry import make_env

        self.cfg, self.device = cfg, device
        n = num_envs or cfg.envs.rollout.envs_per_worker
        self.envs = [make_env(cfg.envs.env) for _ in range(n)]
        self.spec = self.envs[0].spec
        self.remote = RemoteChunks(remote_act, max_concurrency=n) if remote_act else None
        self._local: dict[tuple[ModelRef, ModelRef | None], PolicyChunks] = {}
        self._humans: list[Any] | None = None
        self._store: Any = None

    def local_source(self, policy: ModelRef, world_model: ModelRef | None = None) -> PolicyChunks:
        """The policy copy for a version (loaded once; kept for the worker's life)."""
        mode = self.cfg.envs.rollout.inference_mode
        key = (policy, world_model if mode == "standard" else None)
        if key not in self._local:
            serve = self.cfg.serve  # act as the served version would
            self._local[key] = PolicyChunks.load(
                policy,
                world_model=key[1],
                mode=mode,
                device=self.device,
                cfg_beta=serve.cfg_beta,
                num_steps=serve.num_steps,
            )
        return self._local[key]

    def warm_up(self, policy: ModelRef | None = None, world_model: ModelRef | None = None) -> None:
        """Reset every env and infer one chunk, so the first episode does not pay for first-call
        costs (renderer, kernels), as the server warms a version before serving it."""
        items = [to_item(self.spec.embodiment, env.reset(0)) for env in self.envs]
        if policy is not None:
            self.local_source(policy, world_model).predict(items, [(0, 0)] * len(items))

    def humans(self) -> list[Any]:
        from ramp.platform.envs.human import simulated_human

        if self._humans is None:
            self._humans = [simulated_human(env, self.cfg.envs.human) for env in self.envs]
        return self._humans

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = rollout_store(self.cfg, self.spec)
        return self._store

    def run(
        self,
        jobs: Sequence[EpisodeJob],
        *,
        policy: ModelRef | None,
        world_model: ModelRef | None = None,
        round_: int = 0,
        human: bool = False,
        write: bool = False,
        serve: bool = False,
        evaluation: bool = False,
        on_step: Callable[[int], None] | None = None,
    ) -> list[EpisodeOutcome]:
        """Run ``jobs``; with ``write``, store each finished episode (skipping stored ids)."""
        if serve:
            if self.remote is None:
                raise ValueError("action_source 'serve' needs a worker built with remote_act")
            source: ChunkSource = self.remote
        else:
            if policy is None:
                raise ValueError("a local rollout needs a policy checkpoint")
            source = self.local_source(policy, world_model)
        outcomes, todo = [], list(jobs)
        if write:
            todo = []
            for job in jobs:
                entry = self.store.lookup(job.episode_id)
                if entry is None:
                    todo.append(job)
                else:
                    outcomes.append(EpisodeOutcome.from_entry(entry, "exists", job.seed))
        episodes = run_lockstep(
            self.envs,
            todo,
            source,
            replan_steps=self.cfg.envs.rollout.replan_steps,
            humans=self.humans() if human else None,
            source_name="rollout",
            round=round_,
            policy_version=policy.version if policy is not None else "unknown",
            max_steps=max_steps(self.cfg, evaluation),
            on_step=on_step,
        )
        for job, episode in episodes:
            status = self.store.write(episode).status if write else "evaluated"
            outcomes.append(EpisodeOutcome.from_episode(episode, job.seed, status))
        return outcomes

    def close(self) -> None:
        for env in self.envs:
            env.close()
        if self.remote is not None:
            self.remote.close()


# --------------------------------------------------------------------------- driver-side helpers

ROLLOUT_TOKEN_ENV = "RAMP_ROLLOUT_TOKEN"


def serve_endpoint(cfg: RampConfig) -> tuple[str, str | None]:
    """(url, robot token) that rollout workers use with action_source "serve"."""
    r = cfg.envs.rollout
    host = cfg.serve.host if cfg.serve.host not in ("0.0.0.0", "::") else "127.0.0.1"
    url = r.serve_url or f"http://{host}:{cfg.serve.port}"
    return url, r.serve_token or os.environ.get(ROLLOUT_TOKEN_ENV)


class Attempts:
    """Which episodes of a failed call run again, and which gave up (max_episode_attempts)."""

    def __init__(self, max_attempts: int):
        self.max_attempts = max_attempts
        self.counts: Counter[str] = Counter()
        self.retried: set[str] = set()
        self.failed: dict[str, str] = {}

    def failed_call(self, jobs: Sequence[EpisodeJob], error: BaseException) -> list[EpisodeJob]:
        """``jobs``: the call's episodes not finished (stored) before it failed."""
        again = []
        for job in jobs:
            self.counts[job.episode_id] += 1
            if self.counts[job.episode_id] >= self.max_attempts:
                self.failed[job.episode_id] = f"{type(error).__name__}: {str(error)[:300]}"
            else:
                again.append(job)
                self.retried.add(job.episode_id)
        return again


def collect_result(
    cfg: RampConfig,
    store: Any,
    *,
    round_: int,
    policy: str,
    jobs: Sequence[EpisodeJob],
    existing: set[str],
    retried: Sequence[str],
    wall_s: float,
    setup_s: float,
) -> CollectResult:
    """The CollectResult of a finished collect, from the store's index (so episodes stored by a
    worker that died afterwards count like the others)."""
    outcomes = [EpisodeOutcome.from_entry(store.lookup(j.episode_id), seed=j.seed) for j in jobs]
    summary = summarize(outcomes)
    overall = summary["overall"]
    steps = sum(o.steps for o in outcomes if o.episode_id not in existing)
    return CollectResult(
        round=round_,
        policy=policy,
        action_source=cfg.envs.rollout.action_source,
        episode_ids=[j.episode_id for j in jobs],
        written=[j.episode_id for j in jobs if j.episode_id not in existing],
        existing=sorted(existing),
        retried=sorted(retried),
        episodes=len(jobs),
        steps=steps,
        success_rate=overall["success_rate"],
        intervention_rate=overall["intervention_rate"],
        intervened_episode_rate=overall["intervened_episode_rate"],
        per_task=summary["per_task"],
        per_policy_version=summary["per_policy_version"],
        wall_s=wall_s,
        setup_s=setup_s,
        env_steps_per_s=steps / max(wall_s - setup_s, 1e-9) if steps else 0.0,
        warnings=[
            f"episodes were produced by {v}, not by the requested {policy}"
            for v in summary["per_policy_version"]
            if v != policy and v != HUMAN
        ],
    )
