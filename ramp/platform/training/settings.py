"""Section ``training``: how the world model and the policy are (re)trained, and the labeller.

Resources (workers, CPUs and GPUs per worker, fractions allowed) live here so that one config
fits a 2-CPU laptop with a Serve replica live and a many-GPU cluster alike; Ray only schedules
what these numbers ask for. This module imports nothing from ramp but the config base class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ramp.platform.base import StrictModel


class TrainerConfig(StrictModel):
    """One Ray Train ``TorchTrainer`` fit (DDP over ``num_workers``)."""

    steps: int = Field(default=1000, ge=1, description="optimizer steps per fit")
    batch_size: int = Field(default=8, ge=1, description="samples per step per worker")
    lr: float = Field(default=3e-4, gt=0, le=1, description="AdamW peak learning rate")
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=20, ge=0, description="linear warm-up, then cosine decay")
    grad_clip: float | None = Field(default=1.0, gt=0, description="max grad norm; None = off")
    num_workers: int = Field(default=1, ge=1, le=4096, description="Ray Train workers (DDP ranks)")
    cpus_per_worker: float = Field(default=1.0, gt=0, description="fractions allowed")
    gpus_per_worker: float = Field(default=0.0, ge=0, description="fractions allowed")
    checkpoint_every: int = Field(
        default=100, ge=1, description="steps between checkpoints a failed fit resumes from"
    )
    max_failures: int = Field(
        default=2, ge=0, description="worker failures a fit survives (resuming from a checkpoint)"
    )
    init: Literal["scratch", "pretrained", "previous"] = Field(
        default="pretrained",
        description="rounds >= 1 start from: pretrained = the stage-1/2 checkpoint (round 0), "
        "previous = the last round's, scratch = random init (round 0 always starts from "
        "init_checkpoint or random init)",
    )
    init_checkpoint: str | None = Field(
        default=None,
        description="round 0 starts from these weights: a local checkpoint folder or a version "
        "in the store (nothing is ever downloaded); None = random init",
    )
    seed: int = Field(default=0, description="sampling and init seed (the round is added)")
    shuffle_window: int | None = Field(
        default=None, ge=1, description="episodes decoded together; None = sampling.shuffle_window"
    )
    log_every: int = Field(default=10, ge=1, description="steps between reported losses")
    resource_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="seconds a fit waits for its workers' CPUs/GPUs to be free before it fails "
        "with a message naming what holds them (Ray Train itself would wait forever)",
    )

    @model_validator(mode="after")
    def _warmup(self) -> TrainerConfig:
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) is more than steps ({self.steps})"
            )
        return self


class WorldModelTrainerConfig(TrainerConfig):
    """The world model's fit: a ``TrainerConfig`` plus the held-out split of its episodes."""

    holdout_fraction: float = Field(
        default=0.2,
        ge=0,
        le=0.5,
        description="share of episodes the world model never trains on, chosen by a stable hash "
        "of the episode id (the same episodes in every round), on which the labeller reports "
        "how well its values rank the returns (docs/rl.md, 'The value report'); the policy and "
        "the labeller still use every episode. 0 = train on all, no held-out report",
    )


class LabellerConfig(StrictModel):
    """World-model inference over every training episode (values), then the RL core."""

    num_actors: int = Field(default=1, ge=1, le=4096, description="parallel labeller actors")
    cpus_per_actor: float = Field(default=1.0, gt=0)
    gpus_per_actor: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, ge=1, description="steps per world-model forward pass")
    seed: int = Field(default=0, description="seed of the one-step world-model prediction")


class TrainingConfig(StrictModel):
    """Section ``training``."""

    world_model: WorldModelTrainerConfig = Field(default_factory=WorldModelTrainerConfig)
    policy: TrainerConfig = Field(default_factory=TrainerConfig)
    labeller: LabellerConfig = Field(default_factory=LabellerConfig)
