"""Frames -> VAE latents, and the spatial tiling Psi of PAPER.md section 2.

Why frame by frame: the world model's frames are far apart in time (t, t+12, ..., t+48), so a
video VAE's temporal compression would mix unrelated frames. AutoencoderKL encodes images;
AutoencoderKLWan (Wan2.2's VAE, for real weights) encodes each frame as a one-frame video, which
its causal first-frame path handles exactly. Cameras sit side by side along the latent width, so
1 to 3 cameras need no change to the DiT (its rotary embedding covers any width).
The encoder is frozen unless ``trainable`` (the video models it comes from freeze it too).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ramp.platform.models.settings import VAEConfig


def build_vae(cfg: VAEConfig) -> nn.Module:
    """A diffusers VAE from settings, or from a local folder when ``weights`` is set."""
    from diffusers import AutoencoderKL, AutoencoderKLWan

    cls = AutoencoderKL if cfg.kind == "AutoencoderKL" else AutoencoderKLWan
    if cfg.weights is not None:
        if not Path(cfg.weights).is_dir():
            raise FileNotFoundError(f"VAE weights {cfg.weights!r} is not a local directory")
        vae = cls.from_pretrained(cfg.weights, local_files_only=True)
        got = vae.config.latent_channels if cfg.kind == "AutoencoderKL" else vae.config.z_dim
        if got != cfg.latent_channels:
            raise ValueError(
                f"the VAE in {cfg.weights} has {got} latent channels but the settings say "
                f"{cfg.latent_channels}; set models.world_model.vae.latent_channels: {got}"
            )
        return vae
    if cfg.kind == "AutoencoderKL":
        n = len(cfg.block_out_channels)
        return AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            latent_channels=cfg.latent_channels,
            norm_num_groups=cfg.norm_num_groups,
        )
    base = cfg.block_out_channels[0]
    p = cfg.wan_patch_size or 1
    n = len(cfg.block_out_channels)
    return AutoencoderKLWan(
        base_dim=base,
        decoder_base_dim=cfg.decoder_base_dim,
        z_dim=cfg.latent_channels,
        dim_mult=[c // base for c in cfg.block_out_channels],
        num_res_blocks=cfg.layers_per_block,
        temperal_downsample=[False] + [True] * (n - 2),
        latents_mean=[0.0] * cfg.latent_channels,
        latents_std=[1.0] * cfg.latent_channels,
        is_residual=cfg.wan_patch_size is not None,
        in_channels=3 * p * p,
        out_channels=3 * p * p,
        patch_size=cfg.wan_patch_size,
        scale_factor_spatial=cfg.compression,
    )


class FrameEncoder(nn.Module):
    """(N, 3, S, S) frames in [-1, 1] -> (N, C, S / c, S / c) normalised latents."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.vae = build_vae(cfg)
        self.is_wan = cfg.kind == "AutoencoderKLWan"
        c = cfg.latent_channels
        mean = torch.zeros(c)
        std = torch.ones(c)
        if self.is_wan and cfg.weights is not None:
            mean = torch.tensor(self.vae.config.latents_mean, dtype=torch.float32)
            std = torch.tensor(self.vae.config.latents_std, dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, c, 1, 1), persistent=False)
        if not cfg.trainable:
            self.vae.requires_grad_(False)

    def forward(self, frames: Tensor) -> Tensor:
        dtype = next(self.vae.parameters()).dtype
        with torch.set_grad_enabled(self.cfg.trainable and torch.is_grad_enabled()):
            if self.is_wan:
                z = self.vae.encode(frames.to(dtype)[:, :, None]).latent_dist.mode()[:, :, 0]
            else:
                z = self.vae.encode(frames.to(dtype)).latent_dist.mode()
        z = (z.float() - self.mean) / self.std
        return (z - self.cfg.shift_factor) * self.cfg.scaling_factor


def tile(values: Tensor, height: int, width: int) -> Tensor:
    """Psi: (B, F, P) vectors -> (B, P, F, height, width) planes (each value broadcast)."""
    return values.permute(0, 2, 1)[..., None, None].expand(-1, -1, -1, height, width)


def untile(planes: Tensor) -> Tensor:
    """Inverse of Psi on a prediction: (B, P, F, h, w) -> (B, F, P) by the spatial mean."""
    return planes.mean(dim=(-1, -2)).permute(0, 2, 1)


def patchify(state: Tensor) -> Tensor:
    """(B, C, F, h, w) -> (B, F * h/2 * w/2, 4C) tokens: the future-state tokens of the policy."""
    b, c, f, h, w = state.shape
    x = state.reshape(b, c, f, h // 2, 2, w // 2, 2)
    x = x.permute(0, 2, 3, 5, 1, 4, 6)  # B, F, h', w', C, 2, 2
    return x.reshape(b, f * (h // 2) * (w // 2), c * 4)
