"""Configs for tests of the continual loop: the quickstart config made smaller still."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ramp.platform.config import CameraConfig, EmbodimentConfig, RampConfig, load_config
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.schema import camera_column
from ramp.platform.episodes.validate import read_meta

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
        # the session's 2-CPU cluster also holds the deploy tests' Serve replicas: the
        # quickstart's 1.75-CPU fits would wait for CPUs that never come free
        "training.world_model.cpus_per_worker": 0.5,
        "training.policy.cpus_per_worker": 0.5,
        "training.labeller.num_actors": 1,
        "tracking.enabled": False,
        "round.deploy": "never",
    }
    base.update(overrides)
    return load_config("quickstart", [f"{k}={json.dumps(v)}" for k, v in base.items()])


def copies_of_one_success(
    store: EpisodeStore,
    n: int,
    *,
    into: EpisodeStore | None = None,
    round_: int = 1,
    source: str = "rollout",
) -> list[str]:
    """n episodes identical to one successful demonstration of `store` but for their ids, written
    into `into` (default: the same store): data on which advantages must collapse."""
    original = next(e for e in store.episodes() if e.success)
    table = store.read_episode(original.episode_id)
    meta = read_meta(table)
    into = into or store
    into.embodiments = {
        meta.embodiment: EmbodimentConfig(
            cameras={
                c: CameraConfig(height=m.height, width=m.width) for c, m in meta.cameras.items()
            },
            state_names=meta.state_names,
            action_names=meta.action_names,
            action_low=meta.action_low,
            action_high=meta.action_high,
            fps=meta.fps,
        )
    }
    images = {
        c: decode_frames(table.column(camera_column(c)), m.encoding, m.height, m.width)
        for c, m in meta.cameras.items()
    }
    ids = []
    for k in range(n):
        episode = Episode(
            episode_id=f"same-success-{k}",
            embodiment=meta.embodiment,
            task=meta.task,
            instruction=table.column("instruction")[0].as_py(),
            images=images,
            state=np.stack(table.column("state").to_numpy(zero_copy_only=False)),
            action=np.stack(table.column("action").to_numpy(zero_copy_only=False)),
            success=True,
            source=source,
            policy_version="policy-r1-00000000",
            round=round_,
        )
        ids.append(into.write(episode).episode_id)
    return ids
