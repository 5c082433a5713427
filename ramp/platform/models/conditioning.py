"""How the state, the world model's z and value, and the indicator I become context tokens.

PAPER.md section 4: the world model's future-state tokens go through a small MLP to the width of
the policy's visual tokens and are appended to its context; the value estimate and the improvement
indicator are conditioning inputs too. Here each is one or more tokens of the backbone's width:

- state: one token, ``Linear([state * mask ; mask])`` (the mask tells padding from a zero reading);
- value: one token, an MLP of the scalar value (the world model's estimate, in [-1, 0]);
- indicator: one token, a 2-row embedding of I in {0, 1};
- z: Nz tokens, an MLP of each future-state token (width ``z_dim``) -> backbone width.

Masked inputs (``z_mask`` / ``indicator_mask`` False, or no z at all) are replaced by learned null
tokens *and* marked invalid, so nothing attends to them (attention.py): the output is exactly
independent of a masked input's value, which the contract (rl/contract.py) requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ramp.platform.rl.contract import Conditioning


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_out)
    )


@dataclass
class ContextPart:
    """Tokens (B, n, D) and their validity (B, n) for one piece of the context."""

    tokens: Tensor
    valid: Tensor


class ConditioningEncoder(nn.Module):
    """State / value / indicator / z -> context tokens of the backbone's width."""

    def __init__(self, width: int, max_state_dim: int, z_dim: int, z_hidden: int, max_cameras: int):
        super().__init__()
        self.state_proj = nn.Linear(2 * max_state_dim, width)
        self.value_proj = mlp(1, z_hidden, width)
        self.indicator_embed = nn.Embedding(2, width)
        self.z_proj = mlp(z_dim, z_hidden, width)
        self.null = nn.Parameter(torch.zeros(3, width))  # z, value, indicator
        self.camera_embed = nn.Parameter(torch.zeros(max_cameras, width))
        self.z_dim = z_dim

    def state(self, state: Tensor, mask: Tensor) -> ContextPart:
        x = torch.cat([state * mask, mask.to(state.dtype)], dim=-1)
        tok = self.state_proj(x.to(self.state_proj.weight.dtype))[:, None]
        return ContextPart(tok, torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device))

    def value(self, cond: Conditioning) -> ContextPart:
        present = cond.z_mask
        v = torch.where(
            present, cond.value.float(), torch.zeros_like(cond.value, dtype=torch.float)
        )
        tok = self.value_proj(v[:, None].to(self.null.dtype))
        tok = torch.where(present[:, None], tok, self.null[1].expand_as(tok))
        return ContextPart(tok[:, None], present[:, None])

    def indicator(self, cond: Conditioning) -> ContextPart:
        present = cond.indicator_mask
        i = torch.where(present, cond.indicator.round().long().clamp(0, 1), 0)
        tok = self.indicator_embed(i)
        tok = torch.where(present[:, None], tok, self.null[2].expand_as(tok))
        return ContextPart(tok[:, None], present[:, None])

    def z(self, cond: Conditioning) -> ContextPart | None:
        """None when no world model ran at all (the efficient mode): the tokens are left out."""
        if cond.z is None:
            return None
        z = cond.z
        if z.shape[-1] != self.z_dim:
            raise ValueError(
                f"world-model tokens have width {z.shape[-1]} but the policy was built for "
                f"z_dim {self.z_dim}; build both from the same models config"
            )
        present = cond.z_mask
        zero = torch.zeros((), dtype=z.dtype, device=z.device)
        z = torch.where(present[:, None, None], z, zero)  # never read a masked z, not even NaN
        tok = self.z_proj(z.to(self.null.dtype))
        tok = torch.where(present[:, None, None], tok, self.null[0].expand_as(tok))
        return ContextPart(tok, present[:, None].expand(tok.shape[:2]))
