"""The action expert: a diffusion transformer over the action chunk, trained by flow matching.

diffusers' ``LTXVideoTransformer3DModel`` is used as a 1-D denoiser: one token per chunk step
(``num_frames = H``, ``height = width = 1``, so its 3-D rotary embedding becomes a 1-D one over
time), adaLN timestep conditioning, and cross-attention to the backbone's context tokens with a
key mask. Its caption projection maps the backbone width to the expert width, so a 300M expert
reads a 3B backbone (pi0 / GigaBrain style).

Why each token also carries a sinusoidal code of its step index (``STEP_FEATURES`` extra input
channels): LTX's rotary embedding is relative, and cross-attention to the context has no positions
at all, so at high noise (the input is nearly pure noise) a token could not tell which step of the
chunk it is; with the code, a chunk is learned several times faster (tests/platform/models).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ramp.platform.models.settings import ActionExpertConfig
from ramp.platform.models.weights import load_widened

STEP_FEATURES = 32


def step_features(steps: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(steps, STEP_FEATURES) sin/cos of the step index at geometric frequencies."""
    half = STEP_FEATURES // 2
    freq = torch.exp(-math.log(1000.0) * torch.arange(half, device=device) / half)
    angle = torch.arange(steps, device=device)[:, None].float() * freq[None]
    return torch.cat([angle.sin(), angle.cos()], -1).to(dtype)


class ActionExpert(nn.Module):
    """velocity(noisy chunk, sigma, context) for a padded action chunk (B, H, max_action_dim)."""

    def __init__(
        self, cfg: ActionExpertConfig, action_dim: int, context_dim: int, timestep_scale: float
    ):
        super().__init__()
        from diffusers import LTXVideoTransformer3DModel

        inner = cfg.num_heads * cfg.head_dim
        self.dit = LTXVideoTransformer3DModel(
            in_channels=action_dim + STEP_FEATURES,
            out_channels=action_dim,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=cfg.num_heads,
            attention_head_dim=cfg.head_dim,
            cross_attention_dim=inner,
            num_layers=cfg.num_layers,
            caption_channels=context_dim,
        )
        if cfg.weights is not None:
            load_widened(self.dit, cfg.weights, "action expert", widen=False)
        self.timestep_scale = timestep_scale

    def forward(
        self, noisy: Tensor, sigma: Tensor, context: Tensor, context_mask: Tensor
    ) -> Tensor:
        """(B, H, A) noisy chunk, (B,) noise level, (B, L, D) context, (B, L) bool -> (B, H, A)."""
        _b, h, _ = noisy.shape
        dtype = self.dit.proj_in.weight.dtype
        pos = step_features(h, noisy.device, dtype)[None].expand(noisy.shape[0], -1, -1)
        out = self.dit(
            hidden_states=torch.cat([noisy.to(dtype), pos], -1),
            encoder_hidden_states=context.to(dtype),
            timestep=(sigma * self.timestep_scale).to(dtype),
            encoder_attention_mask=context_mask.to(dtype),
            num_frames=h,
            height=1,
            width=1,
            return_dict=False,
        )[0]
        return out.to(torch.float32)
