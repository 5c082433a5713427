"""Configs for tests of the continual loop: the quickstart config made smaller still."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ramp.platform.config import RampConfig, load_config

TASKS = ["reach-v3", "button-press-topdown-v3"]


def tiny_config(root: str | Path, **overrides: Any) -> RampConfig:
    """The quickstart config on `root`, with 2 tasks, short episodes and 20-step fits;
    `overrides` are dotted keys (values as Python objects)."""
    base = {
        "store.root": str(root),
        "envs.env.tasks": TASKS,
        "envs.env.max_steps": 60,
        "envs.demos.episodes": 4,
        "envs.rollout.episodes_per_task": 2,
        "envs.evaluation.episodes_per_task": 2,
        "training.world_model.steps": 20,
        "training.world_model.warmup_steps": 2,
        "training.world_model.checkpoint_every": 10,
        "training.world_model.batch_size": 4,
        "training.policy.steps": 20,
        "training.policy.warmup_steps": 2,
        "training.policy.checkpoint_every": 10,
        "training.policy.batch_size": 4,
        "training.world_model.num_workers": 1,
        "training.policy.num_workers": 1,
        "training.labeller.num_actors": 1,
        "tracking.enabled": False,
        "round.deploy": "never",
    }
    base.update(overrides)
    return load_config("quickstart", [f"{k}={json.dumps(v)}" for k, v in base.items()])
