"""Helpers of the trainer tests (core and Ray): a config for the demonstration store, labels.

The demonstration store holds MetaWorld episodes, whose state has 39 dimensions: the models pad
to 40 here (the tiny preset's default is 32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from round_helpers import tiny_config

from ramp.platform.config import RampConfig
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.models.build import build_world_model
from ramp.platform.models.checkpoints import publish_checkpoint
from ramp.platform.models.normalization import compute_norm_stats
from ramp.platform.rl.labelling import label_table

LABEL_INPUTS = ["episode_id", "step", "task", "success", "intervention", "reward"]


def training_config(root: str | Path, **overrides: Any) -> RampConfig:
    base = {"models.policy.max_state_dim": 40, "models.world_model.max_state_dim": 40}
    return tiny_config(root, **{**base, **overrides})


def episode_ids(store: EpisodeStore) -> list[str]:
    return [e.episode_id for e in store.episodes()]


def random_world_model(store: EpisodeStore, cfg: RampConfig):
    """A randomly initialised world model of ``cfg`` over the store's episodes. A value over the
    step-index baseline (the quickstart's ``value_baseline: time``) gets the table the trainer
    would fit, here on every episode of the store."""
    from ramp.platform.rl.rewards import env_t_max
    from ramp.platform.training.data import value_targets

    torch.manual_seed(0)
    wm = build_world_model(cfg.models, compute_norm_stats(store))
    if wm.cfg.value_baseline == "time":
        ids = [e.episode_id for e in store.episodes()]
        wm.cfg.value_baseline_table = value_targets(
            store, ids, cfg.rl, env_t_max(cfg)
        ).time_baseline(ids)
    return wm


def publish_world_model(store: EpisodeStore, cfg: RampConfig, round_: int = 0) -> str:
    """A randomly initialised world model published in the store (what the RAMP policy reads)."""
    version, _ = publish_checkpoint(random_world_model(store, cfg), store.fs, round_=round_)
    return version


def write_labels(store: EpisodeStore, cfg: RampConfig, wm_version: str) -> None:
    """Label sidecars of every episode, as the labeller writes them, from made-up values (the
    labeller's job in production; here only their presence and format matter)."""
    table = store.read(columns=LABEL_INPUTS)
    values = np.random.default_rng(0).uniform(-1, 0, table.num_rows).astype(np.float32)
    labels = label_table(table, values, cfg.rl)
    store.write_labels(
        wm_version,
        pa.table(
            {
                "episode_id": table.column("episode_id"),
                "step": table.column("step"),
                "value": pa.array(values),
                "advantage": pa.array(labels.advantage),
                "indicator": pa.array(labels.indicator),
            }
        ),
    )
