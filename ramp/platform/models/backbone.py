"""The vision-language backbone: transformers' PaliGemma / PaliGemma-2, driven token by token.

Why not ``PaliGemmaForConditionalGeneration.forward``: the policy's context holds more than image
and text tokens (the state token, the world-model tokens, the value and indicator tokens, the
trajectory queries and the chain-of-thought suffix), each with its own visibility. So this wrapper
uses the model's own parts (SigLIP tower, projector, Gemma decoder, LM head) and hands the decoder
``inputs_embeds`` with an explicit 4-D attention mask and position ids (attention.py). The weights
and their names are exactly PaliGemma's, so real checkpoints load unchanged (``weights``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ramp.platform.models.settings import BackboneConfig


def paligemma_config(cfg: BackboneConfig, vocab_size: int, image_token_id: int) -> object:
    """A transformers ``PaliGemmaConfig`` for these settings (no download, no file)."""
    from transformers import Gemma2Config, GemmaConfig, PaliGemmaConfig, SiglipVisionConfig

    v, t = cfg.vision, cfg.text
    vision = SiglipVisionConfig(
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_layers,
        num_attention_heads=v.num_heads,
        patch_size=v.patch_size,
        image_size=v.image_size,
        projection_dim=t.hidden_size,
        vision_use_head=False,
    )
    text_cls = Gemma2Config if t.family == "gemma2" else GemmaConfig
    text = text_cls(
        vocab_size=t.vocab_size or vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        head_dim=t.head_dim,
    )
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        projection_dim=t.hidden_size,
    )
    config.vision_config.projection_dim = t.hidden_size
    config._attn_implementation = cfg.attn_implementation
    config.text_config._attn_implementation = cfg.attn_implementation
    config.vision_config._attn_implementation = "sdpa"
    return config


def prepare_images(images: Tensor, size: int) -> Tensor:
    """(B, H, W, 3) uint8 (or float in [0, 1]) -> (B, 3, size, size) float in [-1, 1] (SigLIP)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x * 2.0 - 1.0


class Backbone(nn.Module):
    """PaliGemma's parts, with an interface in embeddings (see the module docstring)."""

    def __init__(self, cfg: BackboneConfig, vocab_size: int, image_token_id: int = 0):
        super().__init__()
        from transformers import PaliGemmaForConditionalGeneration

        self.cfg = cfg
        hf_config = paligemma_config(cfg, vocab_size, image_token_id)
        if cfg.weights is not None:
            path = Path(cfg.weights)
            if not path.is_dir():
                raise FileNotFoundError(
                    f"backbone weights {cfg.weights!r} is not a local directory (weights are "
                    "never downloaded; save them with save_pretrained(DIR) first)"
                )
            self.model = PaliGemmaForConditionalGeneration.from_pretrained(
                str(path), config=hf_config, local_files_only=True
            )
        else:
            self.model = PaliGemmaForConditionalGeneration(hf_config)
        self.width = cfg.text.hidden_size
        self.vocab_size = hf_config.text_config.vocab_size
        self.softcap = getattr(hf_config.text_config, "final_logit_softcapping", None)
        self.sliding = cfg.text.family == "gemma2"

    @property
    def decoder(self) -> nn.Module:
        return self.model.model.language_model

    def embed_images(self, images: Tensor) -> Tensor:
        """(B, N, 3, S, S) prepared frames -> (B, N * tokens_per_image, width)."""
        b, n = images.shape[:2]
        flat = images.flatten(0, 1).to(self.model.dtype)
        feats = self.model.model.get_image_features(flat).pooler_output
        return feats.reshape(b, n * feats.shape[1], feats.shape[2])

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.decoder.embed_tokens(ids)

    def forward(self, embeds: Tensor, mask: Tensor, position_ids: Tensor) -> Tensor:
        """Decoder pass: (B, L, D) embeddings, (B, 1, L, L) additive mask -> (B, L, D) states."""
        # Gemma-2 alternates sliding and full layers and takes one mask per kind; Gemma one mask.
        masks = {"full_attention": mask, "sliding_attention": mask} if self.sliding else mask
        out = self.decoder(
            inputs_embeds=embeds,
            attention_mask=masks,
            position_ids=position_ids,
            use_cache=False,
        )
        return out.last_hidden_state

    def logits(self, hidden: Tensor) -> Tensor:
        """LM logits (with Gemma-2's final soft-capping) of the given hidden states."""
        logits = self.model.lm_head(hidden)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits
