"""Build models from a config, a preset name, or on the meta device (paper scale, no memory).

``build_policy("tiny")`` / ``build_world_model(cfg.models)`` are what trainers, the labeller and
the server call. ``on_meta=True`` builds the module tree with no storage at all (parameter counts
and FLOP estimates of the 3B + 5B paper preset on a laptop); nothing is downloaded either way.
"""

from __future__ import annotations

import contextlib

import torch

from ramp.platform.models.normalization import NormStats
from ramp.platform.models.policy import RampPolicy
from ramp.platform.models.presets import preset
from ramp.platform.models.settings import ModelsConfig, PolicyConfig, WorldModelConfig
from ramp.platform.models.world_model import WorldModel


def _models(cfg: ModelsConfig | str) -> ModelsConfig:
    return preset(cfg) if isinstance(cfg, str) else cfg


def build_policy(
    cfg: ModelsConfig | PolicyConfig | str = "tiny",
    norm_stats: NormStats | None = None,
    *,
    device: torch.device | str | None = None,
    on_meta: bool = False,
) -> RampPolicy:
    pcfg = cfg if isinstance(cfg, PolicyConfig) else _models(cfg).policy
    ctx = torch.device("meta") if on_meta else contextlib.nullcontext()
    with ctx:
        model = RampPolicy(pcfg, norm_stats)
    return model.to(device) if device is not None and not on_meta else model


def build_world_model(
    cfg: ModelsConfig | WorldModelConfig | str = "tiny",
    norm_stats: NormStats | None = None,
    *,
    device: torch.device | str | None = None,
    on_meta: bool = False,
) -> WorldModel:
    wcfg = cfg if isinstance(cfg, WorldModelConfig) else _models(cfg).world_model
    ctx = torch.device("meta") if on_meta else contextlib.nullcontext()
    with ctx:
        model = WorldModel(wcfg, norm_stats)
    return model.to(device) if device is not None and not on_meta else model


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per top-level part, plus "total" (works on the meta device)."""
    out = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    out["total"] = sum(p.numel() for p in model.parameters())
    return {k: v for k, v in out.items() if v}
