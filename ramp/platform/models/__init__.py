"""Models: the world model, the VLA policy, tokenizer, normalisation, checkpoints and presets.

Names are resolved lazily: ``ramp.platform.config`` imports ``models.settings`` for the config
schema, and that must not pull in torch, transformers and diffusers (``ramp config check`` answers
instantly). ``from ramp.platform.models import RampPolicy`` imports the heavy parts on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelsConfig": "settings",
    "PolicyConfig": "settings",
    "WorldModelConfig": "settings",
    "preset": "presets",
    "preset_names": "presets",
    "policy_config": "presets",
    "world_model_config": "presets",
    "RampPolicy": "policy",
    "PolicyOutput": "policy",
    "WorldModel": "world_model",
    "WorldModelPrediction": "world_model",
    "NormStats": "normalization",
    "MissingNormStatsError": "normalization",
    "compute_norm_stats": "normalization",
    "stats_from_arrays": "normalization",
    "load_tokenizer": "tokenizer",
    "save_checkpoint": "checkpoints",
    "load_checkpoint": "checkpoints",
    "publish_checkpoint": "checkpoints",
    "build_policy": "build",
    "build_world_model": "build",
    "collate_padded": "padding",
    "pad_sample": "padding",
    "to_tensors": "padding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
