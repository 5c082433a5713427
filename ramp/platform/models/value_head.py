"""The "VLM + regression head" value predictor of the paper's comparison (PAPER.md section 2).

A PaliGemma backbone reads the cameras, the instruction and the state (one token, as in the
policy), all bidirectionally; the mean of its valid output tokens goes through an MLP to one
scalar. Trained by MSE on the same value targets as the world model's value plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ramp.platform.models.attention import PREFIX, build_attention
from ramp.platform.models.backbone import Backbone, prepare_images
from ramp.platform.models.conditioning import mlp
from ramp.platform.models.settings import BackboneConfig


class VLMValuePredictor(nn.Module):
    def __init__(self, cfg: BackboneConfig, vocab: int, bos_id: int, max_state_dim: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg, vocab)
        width = self.backbone.width
        self.state_proj = nn.Linear(2 * max_state_dim, width)
        self.head = mlp(width, width, 1)
        self.bos_id = bos_id

    def forward(
        self,
        images: Mapping[str, Any],
        instructions: Sequence[str],
        tokenizer: Any,
        state: Tensor,
        state_mask: Tensor,
    ) -> Tensor:
        dev = state.device
        size = self.cfg.vision.image_size
        frames = torch.stack(
            [prepare_images(torch.as_tensor(v, device=dev), size) for v in images.values()], 1
        )
        img = self.backbone.embed_images(frames)
        b = img.shape[0]
        limit = self.cfg.max_text_tokens - 1
        ids = tokenizer([f"{s}\n" for s in instructions], add_special_tokens=False)["input_ids"]
        seqs = [[self.bos_id, *x[:limit]] for x in ids]
        width = max(len(s) for s in seqs)
        text = torch.zeros(b, width, dtype=torch.long, device=dev)
        text_valid = torch.zeros(b, width, dtype=torch.bool, device=dev)
        for i, s in enumerate(seqs):
            text[i, : len(s)] = torch.tensor(s)
            text_valid[i, : len(s)] = True
        st = torch.cat([state * state_mask, state_mask.float()], -1)
        st = self.state_proj(st.to(self.state_proj.weight.dtype))[:, None]
        dtype = img.dtype
        embeds = torch.cat([img, self.backbone.embed_tokens(text), st.to(dtype)], 1)
        ones = torch.ones(b, img.shape[1], dtype=torch.bool, device=dev)
        valid = torch.cat([ones, text_valid, ones[:, :1]], 1)
        block = torch.full((valid.shape[1],), PREFIX, device=dev)
        mask, positions = build_attention(valid, block, dtype)
        hidden = self.backbone(embeds, mask, positions).float()
        pooled = (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        return self.head(pooled.to(self.head[0].weight.dtype)).float().squeeze(-1)
