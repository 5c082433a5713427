"""The policy-loss contract between models/ and rl/ (ARCHITECTURE.md).

A policy exposes ``loss(batch, cond) -> Tensor[B]``: the per-sample training loss (flow matching
on the action chunk, plus its chain-of-thought terms) under the conditioning ``cond``. The RL
objectives only build ``cond`` and weight the per-sample losses; they never reach inside a model,
so RAMP, RECAP, AWR and behaviour cloning run on any policy that honours this contract, and a
model runs under any objective.

Mask semantics (True always means "present"):
- ``z_mask[b]`` True: the world model's future-state tokens ``z[b]`` and its value estimate
  ``value[b]`` are inputs for sample b. False: the policy must behave as if no world model ran
  (its "efficient" inference mode) and must read neither ``z[b]`` nor ``value[b]``, for example
  by substituting learned null tokens. The value travels with z because both come from the world
  model: when it is bypassed, neither exists.
- ``indicator_mask[b]`` True: the improvement indicator ``indicator[b]`` (0 or 1) is an input.
  False: the policy is unconditional on I (classifier-free-guidance style dropout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

# Batch keys the objectives read (besides whatever the policy itself needs).
# float [B, Nz, Dz]: the world model's future-state tokens, or a callable keep [B] -> tokens that
# computes them only where kept (the trainer's frozen world model; masked rows are never read)
WM_TOKENS = "wm_tokens"
VALUE = "value"  # float [B]: the world model's value estimate at t
INDICATOR = "indicator"  # float or bool [B]: the improvement indicator I_t
ADVANTAGE = "advantage"  # float [B]: A_t (AWR weights)


@dataclass(frozen=True)
class Conditioning:
    """What a policy is conditioned on for one batch; see the module docstring for the masks."""

    z: Tensor | None  # [B, Nz, Dz] or None when no world model is used at all
    z_mask: Tensor  # bool [B], True = z and value present
    value: Tensor  # float [B]
    indicator: Tensor  # float [B], 0 or 1
    indicator_mask: Tensor  # bool [B], True = indicator present

    def __post_init__(self) -> None:
        b = self.value.shape[0] if self.value.ndim == 1 else -1
        for name in ("z_mask", "value", "indicator", "indicator_mask"):
            t = getattr(self, name)
            if t.ndim != 1 or t.shape[0] != b:
                raise ValueError(f"Conditioning.{name} must have shape [B] = [{b}], got {t.shape}")
        for name in ("z_mask", "indicator_mask"):
            if getattr(self, name).dtype != torch.bool:
                raise ValueError(f"Conditioning.{name} must be a bool tensor (True = present)")
        if self.z is None:
            # Checked on CPU only: on an accelerator .any() would stall every training step.
            if self.z_mask.device.type == "cpu" and bool(self.z_mask.any()):
                raise ValueError("z is None but z_mask marks samples as having world-model tokens")
        elif self.z.ndim != 3 or self.z.shape[0] != b:
            raise ValueError(f"Conditioning.z must have shape [B, Nz, Dz], got {self.z.shape}")

    @property
    def batch_size(self) -> int:
        return int(self.value.shape[0])

    @classmethod
    def unconditional(cls, batch_size: int, device: torch.device | str = "cpu") -> Conditioning:
        """No world model and no indicator: plain behaviour cloning."""
        off = torch.zeros(batch_size, dtype=torch.bool, device=device)
        zeros = torch.zeros(batch_size, device=device)
        return cls(None, off, zeros, zeros, off)


@runtime_checkable
class PolicyLoss(Protocol):
    """What the objectives need from a policy."""

    def loss(self, batch: Mapping[str, Tensor], cond: Conditioning) -> Tensor:
        """Per-sample training loss, shape [B], differentiable w.r.t. the policy's parameters."""
        ...


def inference_conditioning(
    batch_size: int,
    z: Tensor | None = None,
    value: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Conditioning:
    """Acting: I fixed to 1 (PAPER.md section 4); z and value present in "standard" mode (given),
    masked in "efficient" mode (z None)."""
    present = z is not None
    value = value if value is not None else torch.zeros(batch_size, device=device)
    return Conditioning(
        z=z,
        z_mask=torch.full((batch_size,), present, dtype=torch.bool, device=device),
        value=value,
        indicator=torch.ones(batch_size, device=device),
        indicator_mask=torch.ones(batch_size, dtype=torch.bool, device=device),
    )


def guided_velocity(v_cond: Tensor, v_uncond: Tensor, beta: float) -> Tensor:
    """Classifier-free guidance on I: ``v = v_uncond + beta (v_cond - v_uncond)``.

    ``v_cond`` is the velocity with I = 1 present, ``v_uncond`` with I masked; beta = 1 gives plain
    conditioning, RECAP uses 1.5-2.5 (``rl.objective.cfg_beta``).
    """
    if v_cond.shape != v_uncond.shape:
        raise ValueError(f"velocities differ in shape: {v_cond.shape} vs {v_uncond.shape}")
    return v_uncond + beta * (v_cond - v_uncond)
