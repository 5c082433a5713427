"""Flow matching shared by the policy and the world model: noise levels, targets, Euler sampling.

One convention in code, diffusers' own: ``sigma`` is the noise level (1 = pure noise, 0 = data),
``x_sigma = sigma * eps + (1 - sigma) * x``, and the network predicts the velocity ``eps - x``.
The policy's tau (PAPER.md section 1: ``a^tau = tau eps + (1 - tau) a``) is exactly sigma. The
world model's tau (section 2: ``s^tau = tau s + (1 - tau) eps``) is ``1 - sigma`` and its target
``s - eps`` is minus the velocity; world_model.py converts at its boundary, so both use the same
sampler: diffusers' ``FlowMatchEulerDiscreteScheduler`` on a uniform sigma grid 1 -> 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def sample_beta(
    n: int,
    alpha: float,
    beta: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """n draws of Beta(alpha, beta), reproducible with ``generator`` (drawn on CPU).

    Beta(a, 1) and Beta(1, b) use the inverse CDF of one uniform; other shapes use the gamma
    ratio, whose sampler ignores generators (seed torch globally for those).
    """
    u = torch.rand(n, generator=generator)
    if beta == 1.0:
        x = u.pow(1.0 / alpha)
    elif alpha == 1.0:
        x = 1.0 - (1.0 - u).pow(1.0 / beta)
    else:
        x = torch.distributions.Beta(alpha, beta).sample((n,))
    return x.to(device)


def interpolate(x: Tensor, eps: Tensor, sigma: Tensor) -> Tensor:
    """``sigma * eps + (1 - sigma) * x`` with sigma broadcast from (B,)."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return s * eps + (1.0 - s) * x


def euler_sample(
    velocity: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    num_steps: int,
    shift: float = 1.0,
) -> Tensor:
    """Integrate dx/dsigma = velocity(x, sigma) from sigma = 1 (``noise``) to 0 in ``num_steps``.

    ``velocity(x, sigma)`` gets sigma as a (B,) tensor. The scheduler is made per call, so
    concurrent callers (a serving replica) never share its step counter.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1], device=noise.device)
    x = noise
    b = noise.shape[0]
    for i, t in enumerate(scheduler.timesteps):
        sigma = scheduler.sigmas[i].to(noise.device, torch.float32).expand(b)
        x = scheduler.step(velocity(x, sigma), t, x, return_dict=False)[0]
    return x.to(noise.dtype)
