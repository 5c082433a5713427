"""Run one episode of an env with a policy (and optionally a human) into an ``Episode``.

This is the whole rollout loop; rollout actors, ``ramp demos`` and evaluation call it. Row t of the
episode holds the observation at t (images, state, subgoal, progress, trajectory_2d) and the action
executed from it; the observation after the last action is not stored. ``trajectory_2d`` is
(-1, -1) on a step where the end effector is behind the camera. An action the
intervention source produced is stored with ``intervention=True`` and the source's name as its
``policy_version``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import numpy as np

from ramp.platform.envs.core import Observation, SimEnv
from ramp.platform.envs.human import InterventionSource

Policy = Callable[[Observation], np.ndarray]
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def task_slug(env: SimEnv, task: str, limit: int = 40) -> str:
    """A short id-safe form of a task name (long LIBERO names become their index: t03)."""
    slug = _SLUG.sub("-", task).strip("-")
    if len(slug) <= limit:
        return slug
    return f"t{list(env.spec.tasks).index(task):02d}"


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
    from ramp.platform.episodes import Episode

    spec = env.spec
    if intervention is not None:
        intervention.reset(env, seed)
    obs = env.reset(seed)
    rng = np.random.default_rng([int(noise_seed if noise_seed is not None else seed), 7])
    limit = min(max_steps or spec.max_steps, spec.max_steps)

    record_images = record_images and bool(obs.images)  # rendering off: state-only episode
    images: dict[str, list[np.ndarray]] = {c: [] for c in spec.cameras} if record_images else {}
    states, actions, rewards, flags, versions = [], [], [], [], []
    subgoals, progress, traj = [], [], []
    instructions = []
    success = False
    steps = 0
    while not obs.done and steps < limit:
        action = np.asarray(policy(obs), dtype=np.float64)
        if action_noise > 0:
            action = action + rng.normal(0.0, action_noise, size=action.shape)
        human = intervention.act(obs, action) if intervention is not None else None
        if human is not None:
            action = np.asarray(human, dtype=np.float64)
        action = env.clip_action(action)

        for cam in images:
            images[cam].append(obs.images[cam])
        states.append(obs.state)
        instructions.append(obs.instruction)
        subgoals.append(obs.subgoal)
        progress.append(obs.progress)
        traj.append(obs.trajectory_2d)
        actions.append(action)
        flags.append(human is not None)
        versions.append(intervention.name if human is not None else policy_version)

        obs = env.step(action)
        rewards.append(obs.reward)
        success = success or obs.success
        steps += 1

    if steps == 0:
        raise RuntimeError(f"{env.suite}/{env.task} seed {seed}: the episode ended at reset")
    extra = {"seed": int(seed), "suite": env.suite, "steps": steps, "truncated": not obs.done}
    if intervention is not None and hasattr(intervention, "events"):
        extra["interventions"] = [e.__dict__ for e in intervention.events]
    return Episode(
        episode_id=episode_id or default_episode_id(env, source, seed),
        embodiment=spec.embodiment,
        task=env.task,
        instruction=instructions[0],
        instructions=instructions if len(set(instructions)) > 1 else None,
        images={c: np.stack(v) for c, v in images.items()},
        state=np.stack(states).astype(np.float32),
        action=np.stack(actions).astype(np.float32),
        success=bool(success),
        source=source,
        policy_version=versions if len(set(versions)) > 1 else versions[0],
        round=round,
        reward=np.asarray(rewards, dtype=np.float32),
        intervention=np.asarray(flags, dtype=bool),
        subgoal=subgoals if any(s is not None for s in subgoals) else None,
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
