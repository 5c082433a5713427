"""Run one episode of an env with a policy (and optionally a human) into an ``Episode``.

This is the whole rollout loop: ``run_episode`` (``ramp demos``) and ``EpisodeRun``, the same
loop stepped from outside (rollout workers step several in lock-step, envs/lockstep.py). Row t of
the episode holds the observation at t (images, state, subgoal, progress, trajectory_2d) and the
action executed from it; the observation after the last action is not stored. ``trajectory_2d``
is (-1, -1) on a step where the end effector is behind the camera. An action the intervention
source produced is stored with ``intervention=True`` and the source's name as its
``policy_version``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence

import numpy as np

from ramp.platform.envs.core import Observation, SimEnv
from ramp.platform.envs.human import InterventionSource

Policy = Callable[[Observation], np.ndarray]
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def task_slug(env: SimEnv, task: str, limit: int = 40) -> str:
    """A short id-safe form of a task name (long LIBERO names become their index: t03)."""
    return slug_of(task, env.spec.tasks, limit)


def slug_of(task: str, tasks: Sequence[str], limit: int = 40) -> str:
    """``task_slug`` from the suite's task list (no env needed: ``SUITES[suite].tasks``)."""
    slug = _SLUG.sub("-", task).strip("-")
    if len(slug) <= limit:
        return slug
    return f"t{list(tasks).index(task):02d}"


def default_episode_id(env: SimEnv, source: str, seed: int) -> str:
    """`<source>-<suite>-<task>-s<seed>-<8 random hex>`: globally unique for live rollouts."""
    return f"{source}-{env.suite}-{task_slug(env, env.task)}-s{seed}-{uuid.uuid4().hex[:8]}"


def run_episode(
    env: SimEnv,
    policy: Policy,
    seed: int,
    *,
    intervention: InterventionSource | None = None,
    episode_id: str | None = None,
    source: str = "sim",
    policy_version: str = "unknown",
    round: int = 0,
    action_noise: float = 0.0,
    noise_seed: int | None = None,
    max_steps: int | None = None,
    record_images: bool = True,
):
    """Reset `env` with `seed`, run until the episode ends, return an ``Episode``.

    ``action_noise`` adds N(0, sigma) to the policy's actions (not to a human's), then clips to
    the action bounds; the noise generator is seeded from (noise_seed or seed), so a run is
    reproducible. ``max_steps`` caps the episode below the env's own limit.
    """
    run = EpisodeRun(
        env,
        seed,
        intervention=intervention,
        episode_id=episode_id,
        source=source,
        policy_version=policy_version,
        round=round,
        action_noise=action_noise,
        noise_seed=noise_seed,
        max_steps=max_steps,
        record_images=record_images,
    )
    while not run.done:
        run.step(policy(run.obs))
    return run.episode()


class EpisodeRun:
    """One episode stepped from outside, one control step at a time.

    ``run_episode`` is a loop over it; rollout workers step several of them in lock-step so that
    one batched inference serves all their envs (ramp.platform.envs.lockstep). Construction
    resets the env (and the intervention source); ``step(action)`` applies the policy's action
    (or the human's instead); ``episode()`` builds the ``Episode`` once ``done``.
    """

    def __init__(
        self,
        env: SimEnv,
        seed: int,
        *,
        intervention: InterventionSource | None = None,
        episode_id: str | None = None,
        source: str = "sim",
        policy_version: str = "unknown",
        round: int = 0,
        action_noise: float = 0.0,
        noise_seed: int | None = None,
        max_steps: int | None = None,
        record_images: bool = True,
    ):
        self.env, self.seed, self.intervention = env, int(seed), intervention
        self.episode_id = episode_id or default_episode_id(env, source, seed)
        self.source, self.policy_version, self.round = source, policy_version, round
        self.action_noise = action_noise
        spec = env.spec
        if intervention is not None:
            intervention.reset(env, seed)
        self.obs = env.reset(seed)
        self._rng = np.random.default_rng([int(noise_seed if noise_seed is not None else seed), 7])
        self.limit = min(max_steps or spec.max_steps, spec.max_steps)
        record_images = record_images and bool(self.obs.images)  # rendering off: state-only
        self._images: dict[str, list[np.ndarray]] = (
            {c: [] for c in spec.cameras} if record_images else {}
        )
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._flags: list[bool] = []
        self._versions: list[str] = []
        self._subgoals: list[str | None] = []
        self._progress: list[float | None] = []
        self._traj: list[np.ndarray | None] = []
        self._instructions: list[str] = []
        self.success = False
        self.steps = 0

    @property
    def done(self) -> bool:
        return self.obs.done or self.steps >= self.limit

    def step(self, policy_action: np.ndarray, version: str | None = None) -> None:
        """Execute one control step from the current observation. ``version`` names what
        produced ``policy_action`` when it differs per step (a server that switched versions);
        default: the run's ``policy_version``."""
        obs, intervention = self.obs, self.intervention
        action = np.asarray(policy_action, dtype=np.float64)
        if self.action_noise > 0:
            action = action + self._rng.normal(0.0, self.action_noise, size=action.shape)
        human = intervention.act(obs, action) if intervention is not None else None
        if human is not None:
            action = np.asarray(human, dtype=np.float64)
        action = self.env.clip_action(action)

        for cam in self._images:
            self._images[cam].append(obs.images[cam])
        self._states.append(obs.state)
        self._instructions.append(obs.instruction)
        self._subgoals.append(obs.subgoal)
        self._progress.append(obs.progress)
        self._traj.append(obs.trajectory_2d)
        self._actions.append(action)
        self._flags.append(human is not None)
        if human is not None:
            assert intervention is not None
            self._versions.append(intervention.name)
        else:
            self._versions.append(version or self.policy_version)

        self.obs = self.env.step(action)
        self._rewards.append(self.obs.reward)
        self.success = self.success or self.obs.success
        self.steps += 1

    def episode(self):
        """The finished episode (``Episode``); the run must have taken at least one step."""
        from ramp.platform.episodes import Episode

        env, obs, spec = self.env, self.obs, self.env.spec
        if self.steps == 0:
            raise RuntimeError(
                f"{env.suite}/{env.task} seed {self.seed}: the episode ended at reset"
            )
        extra = {
            "seed": self.seed,
            "suite": env.suite,
            "steps": self.steps,
            "truncated": not obs.done,
        }
        intervention = self.intervention
        if intervention is not None and hasattr(intervention, "events"):
            extra["interventions"] = [e.__dict__ for e in intervention.events]
        instructions, versions = self._instructions, self._versions
        progress, traj = self._progress, self._traj
        return Episode(
            episode_id=self.episode_id,
            embodiment=spec.embodiment,
            task=env.task,
            instruction=instructions[0],
            instructions=instructions if len(set(instructions)) > 1 else None,
            images={c: np.stack(v) for c, v in self._images.items()},
            state=np.stack(self._states).astype(np.float32),
            action=np.stack(self._actions).astype(np.float32),
            success=bool(self.success),
            source=self.source,
            policy_version=versions if len(set(versions)) > 1 else versions[0],
            round=self.round,
            reward=np.asarray(self._rewards, dtype=np.float32),
            intervention=np.asarray(self._flags, dtype=bool),
            subgoal=self._subgoals if any(s is not None for s in self._subgoals) else None,
            progress=(
                np.asarray([np.nan if p is None else p for p in progress], dtype=np.float32)
                if any(p is not None for p in progress)
                else None
            ),
            trajectory_2d=(
                np.nan_to_num(
                    np.stack([np.full(2, -1.0) if t is None else t for t in traj]), nan=-1.0
                ).astype(np.float32)
                if any(t is not None for t in traj)
                else None
            ),
            extra_meta=extra,
        )
