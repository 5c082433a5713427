"""Who sees whom in the policy's context: one 4-D mask and position ids from per-token flags.

The context is one sequence of three blocks:
- PREFIX (images, instruction, state, value, indicator, world-model tokens): bidirectional;
- QUERY (the trajectory tokens): see the prefix and each other;
- SUFFIX (chain-of-thought text and discrete action tokens, training only): causal, see the prefix.
Nothing earlier sees anything later, so the prefix (what the action expert reads) is the same with
or without the suffix, and training matches inference. A token marked invalid (padding, a masked
world-model token, a dropped indicator) is seen by no one, so the output is exactly independent of
its content; it also does not advance the position ids, so a masked token and an absent one give
the same positions to everything after it (the "efficient" mode drops z tokens altogether).
"""

from __future__ import annotations

import torch
from torch import Tensor

PREFIX, QUERY, SUFFIX = 0, 1, 2


def build_attention(valid: Tensor, block: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(B, L) bool valid flags and (L,) block ids -> (B, 1, L, L) additive mask, (B, L) positions.

    Positions are 1-based like PaliGemma's (the first valid token is at position 1).
    """
    if valid.ndim != 2 or block.shape != valid.shape[1:]:
        raise ValueError(f"valid (B, L) and block (L,) disagree: {valid.shape}, {block.shape}")
    L = valid.shape[1]
    device = valid.device
    bq, bk = block[:, None], block[None, :]
    idx = torch.arange(L, device=device)
    allowed = (bk == PREFIX) | ((bq == bk) & ((bq == QUERY) | (idx[None, :] <= idx[:, None])))
    allowed = allowed[None] & valid[:, None, :]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    positions = valid.long().cumsum(-1).clamp_min(1)
    return mask[:, None], positions
