"""Settings of the simulators (section ``envs`` of a ramp config).

Every bad setting fails here, when the config is loaded (at `ray job submit` time), not inside a
rollout worker an hour later: an unknown suite, task or camera gets a "did you mean", an image
size out of range says the range. This module imports nothing from ramp but the config base class
and the static suite table, so ``ramp.platform.config`` can compose it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ramp.platform.base import StrictModel, did_you_mean
from ramp.platform.envs.suites import SUITES

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 1024


def _unknown(kind: str, name: str, choices: Iterable[str], where: str = "") -> str:
    choices = list(choices)
    shown = ", ".join(choices[:12]) + (
        f", ... ({len(choices)} in all)" if len(choices) > 12 else ""
    )
    return f"unknown {kind} {name!r}{where}{did_you_mean(name, choices)}; available: {shown}"


class EnvConfig(StrictModel):
    """One simulator as rollout workers, `ramp demos` and evaluation drive it."""

    suite: str = Field(
        default="metaworld",
        description="metaworld, franka-kitchen, libero-10, libero-spatial, libero-object, "
        "libero-goal (docs/envs.md)",
    )
    tasks: list[str] | None = Field(
        default=None,
        description="task names of the suite; None = the suite's default set (MetaWorld: MT10)",
    )
    cameras: list[str] | None = Field(
        default=None, description="cameras to render, in order; None = the suite's default"
    )
    height: int = Field(default=128, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, description="pixels")
    width: int = Field(default=128, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, description="pixels")
    render: bool = Field(
        default=True, description="render camera images (off: state-only, several times faster)"
    )
    fast_rendering: bool = Field(
        default=True,
        description="no MSAA, no shadows, no reflections (20-40x faster on CPU, docs/envs.md)",
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=100_000, description="episode step limit; None = the suite's own"
    )
    state: Literal["full", "proprio"] = Field(
        default="full",
        description="full: the suite's whole state vector (objects and goal included where the "
        "suite has them); proprio: the robot's own state only",
    )
    embodiment: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="embodiment name written into episodes; None = the suite name",
    )
    end_on_success: bool = Field(
        default=True, description="end an episode at the first step the task is solved"
    )

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, v: str) -> str:
        if v not in SUITES:
            raise ValueError(_unknown("suite", v, sorted(SUITES)))
        return v

    @model_validator(mode="after")
    def _known_names(self) -> EnvConfig:
        info = SUITES[self.suite]
        for task in self.tasks or ():
            if task not in info.tasks:
                raise ValueError(_unknown("task", task, info.tasks, f" for suite {self.suite!r}"))
        if self.tasks is not None and not self.tasks:
            raise ValueError("tasks is empty; leave it out to use the suite's default tasks")
        for cam in self.cameras or ():
            if cam not in info.cameras:
                raise ValueError(
                    _unknown("camera", cam, info.cameras, f" for suite {self.suite!r}")
                )
        if self.cameras is not None:
            if not self.cameras:
                raise ValueError("cameras is empty; leave it out to use the suite's default")
            dup = sorted({c for c in self.cameras if self.cameras.count(c) > 1})
            if dup:
                raise ValueError(f"cameras has duplicates: {dup}")
        return self

    @property
    def task_list(self) -> list[str]:
        return list(self.tasks) if self.tasks else list(SUITES[self.suite].default_tasks)

    @property
    def camera_list(self) -> list[str]:
        return list(self.cameras) if self.cameras else list(SUITES[self.suite].default_cameras)

    @property
    def embodiment_name(self) -> str:
        return self.embodiment or self.suite

    @property
    def step_limit(self) -> int:
        """The longest an episode of this env can be: ``max_steps``, else the suite's own limit.

        Rollouts may cap episodes lower (``envs.rollout.max_steps``), never higher; demonstrations
        run to this limit. The reward scale's default T_max (docs/rl.md, "Rewards").
        """
        return self.max_steps or SUITES[self.suite].max_steps


class HumanConfig(StrictModel):
    """The simulated human (docs/envs.md, "The simulated human"): when it takes over, when it
    hands back. A rule set to None (or a rate of 0) is off."""

    stuck_steps: int | None = Field(
        default=25,
        ge=1,
        description="take over when the end effector moved less than stuck_distance over this "
        "many steps",
    )
    stuck_distance: float = Field(default=0.01, gt=0, description="metres")
    off_track_distance: float | None = Field(
        default=0.15,
        gt=0,
        description="take over when the end effector is farther than this (metres) from every "
        "point of the expert's own path from the same initial state",
    )
    random_rate: float = Field(
        default=0.0, ge=0, le=1, description="chance per policy step of a random takeover"
    )
    hand_back_steps: int = Field(
        default=30, ge=1, description="hand control back after this many human steps"
    )
    hand_back_on_subtask: bool = Field(
        default=True, description="hand back as soon as a subtask completes (progress rises)"
    )
    warmup_steps: int = Field(
        default=10, ge=0, description="no rule fires in the first steps of an episode"
    )
    seed: int = 0


class DemosConfig(StrictModel):
    """`ramp demos`: scripted-expert episodes as the base data of stage 1 and 2."""

    episodes: int = Field(default=20, ge=1, description="episodes per task")
    noise: float | list[float] = Field(
        default=0.0,
        description="std of Gaussian action noise (actions in [-1, 1]), in [0, 2]; a list is a "
        "mix of operators: attempt k of a task runs with noise[k % len(noise)]",
    )
    target_success_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="keep successes and failures in this ratio (None = keep every episode)",
    )
    max_attempts_factor: float = Field(
        default=5.0, ge=1, description="give up after episodes x this many attempts per task"
    )
    seed: int = Field(default=0, ge=0, description="first episode seed (then +1 per episode)")
    source: str = Field(default="demos", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    round: int = Field(default=0, ge=0)

    @field_validator("noise")
    @classmethod
    def _noise_range(cls, v: float | list[float]) -> float | list[float]:
        levels = v if isinstance(v, list) else [v]
        if not levels:
            raise ValueError("noise: give a number or a non-empty list of numbers in [0, 2]")
        bad = [x for x in levels if not 0.0 <= x <= 2.0]
        if bad:
            raise ValueError(f"noise must lie in [0, 2] (actions are in [-1, 1]); got {bad}")
        return v

    def noise_at(self, attempt: int) -> float:
        """The noise of a task's attempt ``attempt`` (0-based)."""
        levels = self.noise if isinstance(self.noise, list) else [self.noise]
        return float(levels[attempt % len(levels)])


class RolloutConfig(StrictModel):
    """Stage 3 in simulation: rollout worker actors run the deployed policy, the simulated human
    corrects it, and every finished episode lands in the store under the current round."""

    num_workers: int = Field(default=2, ge=1, le=4096, description="rollout worker actors")
    envs_per_worker: int = Field(
        default=1, ge=1, le=64, description="envs each worker steps in turn (one batched inference)"
    )
    cpus_per_worker: float = Field(default=0.5, gt=0, description="fractions allowed")
    gpus_per_worker: float = Field(default=0.0, ge=0, description="fractions allowed")
    episodes_per_task: int = Field(default=10, ge=1, description="episodes per task per round")
    action_source: Literal["local", "serve"] = Field(
        default="local",
        description="local: each worker holds a copy of the policy version being rolled out; "
        "serve: workers ask the Ray Serve endpoint, as robots do",
    )
    serve_url: str | None = Field(
        default=None,
        description="endpoint for action_source 'serve'; None = http://<serve.host>:<serve.port>",
    )
    serve_token: str | None = Field(
        default=None, description="robot token for the endpoint (or env RAMP_ROLLOUT_TOKEN)"
    )
    replan_steps: int = Field(
        default=10, ge=1, description="actions executed from each predicted chunk before the next"
    )
    inference_mode: Literal["efficient", "standard"] = Field(
        default="efficient", description="standard: the world model predicts z first"
    )
    human: bool = Field(default=True, description="the simulated human corrects the policy")
    seed: int = Field(
        default=1000, ge=0, description="first episode seed; rounds do not reuse seeds"
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="episode step limit; None = env.max_steps or the suite's"
    )
    max_episode_attempts: int = Field(
        default=3, ge=1, description="an episode whose worker died is retried this many times"
    )


class EvaluationConfig(StrictModel):
    """The promotion gate's evaluation: candidate and production policies on the same seeded
    simulated episodes, no human."""

    episodes_per_task: int = Field(default=10, ge=1, description="N per task per policy")
    seed: int = Field(
        default=1_000_000, ge=0, description="seeds seed .. seed+N-1 (never rollout seeds)"
    )
    test_level: float = Field(
        default=0.1,
        gt=0,
        lt=0.5,
        description="one-sided significance level of the gate's exact McNemar test on the "
        "paired (task, seed) episodes: promote only when p < test_level (intervals are reported "
        "at 1 - 2 * test_level)",
    )
    margin: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="also require the paired difference candidate - production success rate to "
        "exceed margin",
    )
    collapse_veto: bool = Field(
        default=True, description="never promote a candidate trained on collapsed advantages"
    )
    veto_on: list[Literal["advantages", "values"]] = Field(
        default_factory=lambda: ["advantages", "values"],
        description="which alarm reasons veto: advantages (near 0, no spread, positive share out "
        "of range) and/or values (held-out ranking or scale worse than the step index); the "
        "others are still raised and tracked",
    )
    max_steps: int | None = Field(default=None, ge=1, description="None = as rollouts")


class EnvsConfig(StrictModel):
    """Section ``envs``: the simulator, the simulated human, the base demonstrations, rollouts
    and evaluation."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    human: HumanConfig = Field(default_factory=HumanConfig)
    demos: DemosConfig = Field(default_factory=DemosConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
