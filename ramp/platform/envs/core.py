"""The one observation/action contract every simulator adapter (and a real robot) speaks.

An adapter turns a suite's own API into:
- ``reset(seed) -> Observation`` and ``step(action) -> Observation``; the same seed gives the same
  episode (initial state, and images, bit for bit on one machine);
- ``Observation``: named camera images (uint8 H x W x 3, right way up), a float32 state vector,
  the instruction, the task, the success flag, and where the suite has them ``subgoal``,
  ``progress`` and ``trajectory_2d`` (the end effector projected through the first fixed camera);
- ``spec``: the embodiment (cameras, state/action names, action bounds, fps) as an
  ``EmbodimentConfig`` the episode store accepts, so episodes need no hand-written config;
- ``expert()``: the suite's scripted expert, where it has one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ramp.platform.config import EmbodimentConfig
from ramp.platform.envs.settings import EnvConfig


@dataclass
class Observation:
    """What a policy sees after a reset or a step (and what the simulated human watches)."""

    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8; empty when rendering is off
    state: np.ndarray  # (S,) float32
    instruction: str
    task: str
    success: bool = False  # the task is solved at this step
    reward: float = 0.0  # the suite's own reward for the last step (0 after reset)
    terminated: bool = False  # the episode ended (solved with end_on_success, or the suite says so)
    truncated: bool = False  # the step limit was reached
    subgoal: str | None = None  # the current subtask in words, where the suite has subtasks
    progress: float | None = None  # fraction of subtasks done, in [0, 1]
    trajectory_2d: np.ndarray | None = None  # (2,) end-effector pixel (x, y) in the first camera
    ee_position: np.ndarray | None = None  # (3,) end effector in world metres
    step: int = 0
    info: dict[str, Any] = field(default_factory=dict)  # the suite's raw info (not stored)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


Policy = Callable[[Observation], np.ndarray]


class Expert(Protocol):
    """A scripted policy with privileged access to the simulator (the simulated human's hands)."""

    def reset(self) -> None: ...

    def act(self, obs: Observation) -> np.ndarray: ...


@dataclass(frozen=True)
class EnvSpec:
    """The fixed shape of an env: everything the store and the models need to know."""

    suite: str
    embodiment: str
    tasks: tuple[str, ...]
    cameras: tuple[str, ...]
    height: int
    width: int
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    fps: float
    max_steps: int
    has_expert: bool

    def embodiment_config(self) -> EmbodimentConfig:
        """The store's embodiment declaration (cameras at the rendered size)."""
        return EmbodimentConfig(
            cameras={c: {"height": self.height, "width": self.width} for c in self.cameras},
            state_names=list(self.state_names),
            action_names=list(self.action_names),
            action_low=list(self.action_low),
            action_high=list(self.action_high),
            fps=self.fps,
        )


class NoExpertError(ValueError):
    """The suite ships no scripted expert (LIBERO, FrankaKitchen)."""


class SimEnv(ABC):
    """Base of every adapter: one task at a time, switched with ``set_task``."""

    suite: str

    def __init__(self, config: EnvConfig):
        self.config = config
        self.task = config.task_list[0]
        self._step = 0
        self._render_on = True

    # ----------------------------------------------------------------------- the contract

    @property
    @abstractmethod
    def spec(self) -> EnvSpec: ...

    @abstractmethod
    def reset(self, seed: int) -> Observation: ...

    @abstractmethod
    def step(self, action: np.ndarray) -> Observation: ...

    @abstractmethod
    def instruction(self) -> str: ...

    def set_task(self, task: str) -> None:
        """Switch to another task of the suite (the next ``reset`` starts it)."""
        if task not in self.spec.tasks:
            from ramp.platform.config import UnknownNameError

            raise UnknownNameError(f"{self.suite} task", task, self.spec.tasks)
        self.task = task

    def expert(self) -> Expert:
        raise NoExpertError(
            f"suite {self.suite!r} ships no scripted expert; experts exist for: metaworld"
        )

    def render(self) -> dict[str, np.ndarray]:
        """The current camera images (also filled into every Observation when rendering is on)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @contextmanager
    def rendering(self, on: bool) -> Iterator[None]:
        """Temporarily switch image rendering on or off (e.g. for a planning rollout)."""
        before = self._render_on
        self._render_on = on
        try:
            yield
        finally:
            self._render_on = before

    # ----------------------------------------------------------------------- helpers

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        spec = self.spec
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (len(spec.action_names),):
            raise ValueError(
                f"{self.suite} actions have {len(spec.action_names)} values "
                f"({', '.join(spec.action_names)}), got shape {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action is not finite: {a}")
        return np.clip(a, spec.action_low, spec.action_high)

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
