"""Interventions: who may take the robot over from the policy, when, and for how long.

``InterventionSource`` is the one interface. Every control step the rollout asks it
``act(obs, policy_action)``: ``None`` means "the policy drives"; an action means "a human drives
this step" and the step is stored with ``intervention=True``. Two kinds implement it:

- ``SimulatedHuman``: in simulation, a scripted expert plays the human operator, with takeover
  rules (stuck for N steps, off track by a distance, random takeovers at a rate) and hand-back
  (after M steps, or as soon as a subtask completes). Only MetaWorld ships experts; LIBERO and
  FrankaKitchen have none, so they have no simulated human.
- A teleoperation device on a real robot (a keyboard, a gamepad, a leader arm): it returns an
  action while the operator holds the takeover button. ``ramp.platform.envs.teleop`` has a
  keyboard example driver; docs/envs.md shows how to write one for another device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ramp.platform.envs.core import Expert, Observation, SimEnv
from ramp.platform.envs.settings import HumanConfig


@runtime_checkable
class InterventionSource(Protocol):
    """Anything that can take control from the policy: a simulated human or a teleop device."""

    name: str  # recorded as the policy_version of the steps it controls (e.g. "human")

    def reset(self, env: SimEnv | None, seed: int | None) -> None:
        """A new episode starts (called before the env's reset; may use the env to plan)."""

    def act(self, obs: Observation, policy_action: np.ndarray) -> np.ndarray | None:
        """The human's action for this step, or None to let the policy's action through."""


@dataclass
class InterventionEvent:
    step: int
    kind: str  # "takeover" or "hand_back"
    reason: str  # stuck | off_track | random | steps | subtask | done


@dataclass
class SimulatedHuman:
    """A scripted expert standing in for a human operator (see the module docstring)."""

    expert: Expert
    config: HumanConfig = field(default_factory=HumanConfig)
    name: str = "human"

    def __post_init__(self) -> None:
        self.events: list[InterventionEvent] = []
        self._reset_state(0)

    def _reset_state(self, seed: int) -> None:
        self.in_control = False
        self._control_steps = 0
        self._progress_at_takeover: float | None = None
        self._recent: list[np.ndarray] = []
        self._step = 0
        self._rng = np.random.default_rng([self.config.seed, int(seed)])
        self.reference: np.ndarray | None = None

    # ----------------------------------------------------------------------- episode start

    def reset(self, env: SimEnv | None, seed: int | None) -> None:
        seed = 0 if seed is None else int(seed)
        self._reset_state(seed)
        self.events = []
        if env is not None and self.config.off_track_distance is not None:
            self.reference = expert_path(env, self.expert, seed)
        self.expert.reset()

    # ----------------------------------------------------------------------- the rules

    def _takeover_reason(self, obs: Observation) -> str | None:
        cfg = self.config
        if self._step < cfg.warmup_steps or obs.success:
            return None
        ee = obs.ee_position
        if ee is not None and cfg.stuck_steps is not None and len(self._recent) >= cfg.stuck_steps:
            window = np.asarray(self._recent[-cfg.stuck_steps :])
            if np.linalg.norm(window.max(axis=0) - window.min(axis=0)) < cfg.stuck_distance:
                return "stuck"
        if (
            ee is not None
            and cfg.off_track_distance is not None
            and self.reference is not None
            and off_track(ee, self.reference) > cfg.off_track_distance
        ):
            return "off_track"
        if cfg.random_rate > 0 and self._rng.random() < cfg.random_rate:
            return "random"
        return None

    def _hand_back_reason(self, obs: Observation) -> str | None:
        cfg = self.config
        if obs.success:
            return "done"
        if self._control_steps >= cfg.hand_back_steps:
            return "steps"
        if (
            cfg.hand_back_on_subtask
            and obs.progress is not None
            and self._progress_at_takeover is not None
            and obs.progress > self._progress_at_takeover
        ):
            return "subtask"
        return None

    def act(self, obs: Observation, policy_action: np.ndarray) -> np.ndarray | None:
        step = obs.step
        if self.in_control:
            reason = self._hand_back_reason(obs)
            if reason is not None:
                self.in_control = False
                self._recent = []  # judge the policy afresh after a hand-back
                self.events.append(InterventionEvent(step, "hand_back", reason))
        else:
            reason = self._takeover_reason(obs)
            if reason is not None:
                self.in_control = True
                self._control_steps = 0
                self._progress_at_takeover = obs.progress
                self.events.append(InterventionEvent(step, "takeover", reason))
        if obs.ee_position is not None:
            self._recent.append(np.asarray(obs.ee_position, dtype=np.float64))
            keep = self.config.stuck_steps or 1
            if len(self._recent) > keep:
                del self._recent[:-keep]
        self._step += 1
        # The expert sees every step (some scripted experts keep state across steps).
        action = self.expert.act(obs)
        if not self.in_control:
            return None
        self._control_steps += 1
        return action

    def takeovers(self) -> list[InterventionEvent]:
        return [e for e in self.events if e.kind == "takeover"]


def off_track(point: np.ndarray, path: np.ndarray) -> float:
    """Distance (metres) from a point to the nearest point of a path of positions (K, 3)."""
    if len(path) == 0:
        return 0.0
    if len(path) == 1:
        return float(np.linalg.norm(point - path[0]))
    a, b = path[:-1], path[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    closest = a + t[:, None] * ab
    return float(np.linalg.norm(closest - point, axis=1).min())


def expert_path(env: SimEnv, expert: Expert, seed: int) -> np.ndarray:
    """End-effector positions of the expert's own episode from `seed` (rendering off)."""
    with env.rendering(False):
        obs = env.reset(seed)
        expert.reset()
        path = [obs.ee_position]
        while not obs.done:
            obs = env.step(expert.act(obs))
            path.append(obs.ee_position)
    if any(p is None for p in path):
        return np.zeros((0, 3))
    return np.asarray(path, dtype=np.float64)


def simulated_human(env: SimEnv, config: HumanConfig | None = None) -> SimulatedHuman:
    """The simulated human for an env (raises NoExpertError for suites without an expert)."""
    return SimulatedHuman(env.expert(), config or HumanConfig())
