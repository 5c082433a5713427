"""Fixtures of the actor tests: a small store of real MetaWorld demonstrations, tiny configs.

The store is made once per session (scripted experts with action noise, so it holds successes and
failures) and copied per test that writes into it, so tests never see each other's episodes.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import shutil
from pathlib import Path
from typing import Any

import pytest

from ramp.platform.config import RampConfig, load_config

TASKS = ["reach-v3", "button-press-topdown-v3"]


def tiny_config(root: str | Path, **overrides: Any) -> RampConfig:
    """The quickstart config made smaller still, on `root`; `overrides` are dotted keys."""
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
    import json

    return load_config("quickstart", [f"{k}={json.dumps(v)}" for k, v in base.items()])


@pytest.fixture(scope="session")
def demo_store_template(tmp_path_factory) -> Path:
    """A store with 4 noisy scripted-expert episodes per task (2 tasks, 64 px, <= 60 steps)."""
    from ramp.pipelines.demos import collect_demos

    root = tmp_path_factory.mktemp("demo-store") / "store"
    cfg = tiny_config(root)
    report = collect_demos(cfg.envs.env, cfg.envs.demos, str(root), cfg)
    assert sum(t.kept for t in report.tasks) == 4 * len(TASKS), report.format()
    return root


@pytest.fixture
def demo_store(demo_store_template, tmp_path) -> Path:
    """A private copy of the demonstration store for one test."""
    root = tmp_path / "store"
    shutil.copytree(demo_store_template, root)
    return root
