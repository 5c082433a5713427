"""Observations -> one policy batch -> one action chunk per observation.

The serving deployment (ramp.deploy.app) and the simulated rollout workers
(ramp.platform.envs.chunking) both act through these functions, so a policy version behaves the
same whether a robot asks the endpoint or a rollout worker holds a copy: the same batch layout,
the same inference call, the same per-sample chunks. numpy only at import time (the server's
module imports this; torch comes with the policy object).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def observation_item(
    embodiment: str, images: dict[str, np.ndarray], state: np.ndarray, instruction: str
) -> dict[str, Any]:
    """One observation as the server's routes hand it to the batcher."""
    return {
        "embodiment": embodiment,
        "images": images,
        "state": np.asarray(state, dtype=np.float32),
        "instruction": instruction,
    }


def stack_observations(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Observations with the same cameras -> one batch (states zero-padded to the widest)."""
    width = max(it["state"].shape[0] for it in items)
    state = np.zeros((len(items), width), np.float32)
    for i, it in enumerate(items):
        state[i, : it["state"].shape[0]] = it["state"]
    return {
        "images": {c: np.stack([it["images"][c] for it in items]) for c in items[0]["images"]},
        "state": state,
        "instruction": [it["instruction"] for it in items],
        "embodiment": [it["embodiment"] for it in items],
    }


def camera_signature(item: dict[str, Any]) -> tuple:
    """Items with equal signatures stack into one batch (same cameras, same image sizes)."""
    return tuple((c, a.shape) for c, a in sorted(item["images"].items()))


def predict_chunks(
    policy: Any,
    batch: dict[str, Any],
    *,
    mode: str = "efficient",
    world_model: Any = None,
    cfg_beta: float = 1.0,
    num_steps: int | None = None,
    generator: Any = None,
) -> list[np.ndarray]:
    """``policy.infer`` on a stacked batch: one (H, action_dim) chunk per sample, in the
    embodiment's units (not yet clipped to its bounds)."""
    out = policy.infer(
        batch,
        mode=mode,
        world_model=world_model,
        cfg_beta=cfg_beta,
        num_steps=num_steps,
        generator=generator,
    )
    return out.per_sample()
