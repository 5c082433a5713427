"""The GigaBrain-style VLA policy, conditioned on the world model (PAPER.md sections 1 and 4).

One backbone pass builds the context, in this order (attention.py says who sees whom):

    PREFIX  [camera 1 ... camera N image tokens] [<bos> instruction \\n] [state] [value] [I] [z ...]
    QUERY   [10 trajectory tokens]
    SUFFIX  [<sep> subgoal <sep> discrete action tokens <eos>]      (training only)

The action expert (a flow-matching DiT over the chunk) cross-attends to the PREFIX and QUERY
outputs. ``loss(batch, cond)`` is the per-sample loss of PAPER.md section 1 (flow matching +
subgoal and action-token cross-entropy + lambda * trajectory MSE, each masked where a sample lacks
the label); it honours the policy-loss contract of rl/contract.py, so RAMP, RECAP, AWR and BC
drive it unchanged. ``infer`` acts: "efficient" (no world model, z masked) or "standard" (the
world model predicts z and the value in one denoising step), I fixed to 1, optional
classifier-free guidance on I.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ramp.platform.models.action_expert import ActionExpert
from ramp.platform.models.attention import PREFIX, QUERY, SUFFIX, build_attention
from ramp.platform.models.backbone import Backbone, prepare_images
from ramp.platform.models.conditioning import ConditioningEncoder, ContextPart
from ramp.platform.models.cot_heads import (
    ActionBinner,
    Suffix,
    TrajectoryHead,
    build_suffix,
    suffix_losses,
    trajectory_loss,
)
from ramp.platform.models.flow import euler_sample, interpolate, sample_beta
from ramp.platform.models.inputs import (
    DTYPES,
    as_tensor,
    batch_embodiments,
    batch_size_of,
    cast_dtype,
)
from ramp.platform.models.normalization import Normalizer, NormStats
from ramp.platform.models.padding import resample_points
from ramp.platform.models.settings import PolicyConfig
from ramp.platform.models.tokenizer import load_tokenizer, special_id, vocab_size
from ramp.platform.rl.contract import Conditioning, guided_velocity, inference_conditioning

Mode = Literal["efficient", "standard"]


@dataclass
class Encoded:
    """A backbone pass: hidden states and the layout of the sequence."""

    hidden: Tensor  # (B, L, D)
    valid: Tensor  # (B, L)
    n_prefix: int
    n_query: int
    state: Tensor | None = None  # (B, 1, D): the state token as embedded, for the expert

    def expert_context(self) -> tuple[Tensor, Tensor]:
        n = self.n_prefix + self.n_query
        ctx, valid = self.hidden[:, :n], self.valid[:, :n]
        if self.state is not None:
            ones = torch.ones(valid.shape[0], 1, dtype=valid.dtype, device=valid.device)
            ctx = torch.cat([ctx, self.state.to(ctx.dtype)], 1)
            valid = torch.cat([valid, ones], 1)
        return ctx, valid

    def query(self) -> Tensor:
        return self.hidden[:, self.n_prefix : self.n_prefix + self.n_query]

    def suffix(self) -> Tensor:
        return self.hidden[:, self.n_prefix + self.n_query :]


@dataclass
class PolicyOutput:
    """An action chunk per sample, in each embodiment's own units (padding dimensions zero)."""

    actions: Tensor  # (B, H, max_action_dim) float32
    action_dim_mask: Tensor  # (B, max_action_dim) bool
    embodiments: list[str]
    mode: str

    def per_sample(self) -> list[np.ndarray]:
        """(H, action_dim of that embodiment) arrays, padding removed."""
        acts = self.actions.detach().cpu().numpy()
        masks = self.action_dim_mask.cpu().numpy()
        return [a[:, m] for a, m in zip(acts, masks, strict=True)]


class RampPolicy(nn.Module):
    """PaliGemma backbone + LTX-style flow-matching action expert + chain-of-thought heads."""

    kind = "policy"

    def __init__(self, cfg: PolicyConfig, norm_stats: NormStats | None = None):
        super().__init__()
        if cfg.z_dim is None:
            raise ValueError(
                "PolicyConfig.z_dim is unset: build the policy from a ModelsConfig "
                "(preset(...).policy), which takes it from the world model"
            )
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg.tokenizer)
        tok = self.tokenizer
        self.bos_id = tok.bos_token_id if tok.bos_token_id is not None else special_id(tok, "<bos>")
        self.eos_id = tok.eos_token_id if tok.eos_token_id is not None else special_id(tok, "<eos>")
        self.sep_id = special_id(tok, "<sep>") if "<sep>" in tok.get_vocab() else self.eos_id
        image_id = special_id(tok, "<image>") if "<image>" in tok.get_vocab() else 0
        vocab = cfg.backbone.text.vocab_size or vocab_size(tok)
        self.backbone = Backbone(cfg.backbone, vocab, image_id)
        width = self.backbone.width
        self.conditioning = ConditioningEncoder(
            width, cfg.max_state_dim, cfg.z_dim, cfg.z_mlp_hidden, cfg.max_cameras
        )
        self.expert = ActionExpert(
            cfg.action_expert, cfg.max_action_dim, width, cfg.flow.timestep_scale
        )
        self.trajectory = TrajectoryHead(width, cfg.cot.trajectory_points, cfg.cot.gru_hidden)
        self.normalizer = Normalizer(cfg.max_state_dim, cfg.max_action_dim, cfg.norm_mode)
        self.binner = ActionBinner(cfg.cot.num_bins)
        self.action_offset = self._action_offset()
        if self.action_offset + cfg.cot.num_bins > self.backbone.vocab_size:
            raise ValueError(
                f"action tokens {self.action_offset}..{self.action_offset + cfg.cot.num_bins - 1} "
                f"exceed the vocabulary ({self.backbone.vocab_size}); set cot.action_token_offset"
            )
        dtype = DTYPES[cfg.dtype]
        if dtype != torch.float32:
            for m in (self.backbone, self.conditioning, self.expert, self.trajectory):
                cast_dtype(m, dtype)
        if norm_stats is not None:
            self.set_norm_stats(norm_stats)

    # ------------------------------------------------------------------------ set-up

    def _action_offset(self) -> int:
        if self.cfg.cot.action_token_offset is not None:
            return self.cfg.cot.action_token_offset
        if "<act_0>" not in self.tokenizer.get_vocab():
            raise ValueError(
                f"tokenizer {self.cfg.tokenizer!r} has no <act_0> token; set "
                "models.policy.cot.action_token_offset to the id of the first of num_bins "
                "rarely used tokens (pi0-FAST reuses the last ids before Gemma's specials)"
            )
        return special_id(self.tokenizer, "<act_0>")

    def set_norm_stats(self, stats: NormStats) -> None:
        """Attach per-embodiment statistics (saved as norm_stats.json with checkpoints)."""
        self.normalizer.set_stats(stats)

    @property
    def norm_stats(self) -> NormStats | None:
        return self.normalizer.stats

    @property
    def device(self) -> torch.device:
        return self.conditioning.null.device

    @property
    def dtype(self) -> torch.dtype:
        return self.conditioning.null.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------------ inputs

    def _images(self, batch: Mapping[str, Any]) -> Tensor:
        cams = batch["images"]
        if not isinstance(cams, Mapping) or not cams:
            raise ValueError("batch['images'] must be a non-empty {camera: (B, H, W, 3)} mapping")
        if len(cams) > self.cfg.max_cameras:
            raise ValueError(
                f"{len(cams)} cameras but the policy takes at most {self.cfg.max_cameras} "
                "(models.policy.max_cameras)"
            )
        size = self.cfg.backbone.vision.image_size
        frames = [prepare_images(as_tensor(v, self.device), size) for v in cams.values()]
        return torch.stack(frames, dim=1)

    def _text(self, instructions: str | Sequence[str], b: int) -> tuple[Tensor, Tensor]:
        if isinstance(instructions, str):
            instructions = [instructions] * b
        limit = self.cfg.backbone.max_text_tokens - 1
        ids = self.tokenizer([f"{s}\n" for s in instructions], add_special_tokens=False)
        seqs = [[self.bos_id, *x[:limit]] for x in ids["input_ids"]]
        width = max(len(s) for s in seqs)
        out = torch.zeros(b, width, dtype=torch.long)
        valid = torch.zeros(b, width, dtype=torch.bool)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s)
            valid[i, : len(s)] = True
        return out.to(self.device), valid.to(self.device)

    def _encode(
        self, batch: Mapping[str, Any], cond: Conditioning, suffix: Suffix | None
    ) -> Encoded:
        b = cond.batch_size
        if batch_size_of(batch) != b:
            raise ValueError(f"the batch has {batch_size_of(batch)} samples, the conditioning {b}")
        dev = self.device
        images = self._images(batch)
        n_cam = images.shape[1]
        img = self.backbone.embed_images(images)
        per_cam = img.shape[1] // n_cam
        img = img + self.conditioning.camera_embed[:n_cam].repeat_interleave(per_cam, 0)[None]
        ids, text_valid = self._text(batch["instruction"], b)
        idx = self.normalizer.indices(batch_embodiments(batch, b))
        state = self.normalizer.normalize("state", as_tensor(batch["state"], dev), idx)
        enc = self.conditioning
        state_part = enc.state(state, self.normalizer.dims("state", idx))
        parts = [
            ContextPart(img, torch.ones(img.shape[:2], dtype=torch.bool, device=dev)),
            ContextPart(self.backbone.embed_tokens(ids), text_valid),
            state_part,
            enc.value(cond),
            enc.indicator(cond),
        ]
        z = enc.z(cond)
        if z is not None:
            parts.append(z)
        n_prefix = sum(p.tokens.shape[1] for p in parts)
        queries = self.trajectory.query_tokens(b)
        parts.append(
            ContextPart(queries, torch.ones(queries.shape[:2], dtype=torch.bool, device=dev))
        )
        blocks = [PREFIX] * n_prefix + [QUERY] * queries.shape[1]
        if suffix is not None:
            parts.append(ContextPart(self.backbone.embed_tokens(suffix.ids), suffix.valid))
            blocks += [SUFFIX] * suffix.ids.shape[1]
        dtype = self.dtype
        embeds = torch.cat([p.tokens.to(dtype) for p in parts], dim=1)
        valid = torch.cat([p.valid for p in parts], dim=1)
        mask, positions = build_attention(valid, torch.tensor(blocks, device=dev), dtype)
        hidden = self.backbone(embeds, mask, positions)
        direct = state_part.tokens if self.cfg.state_to_expert else None
        return Encoded(hidden, valid, n_prefix, queries.shape[1], direct)

    def _trajectory_targets(self, batch: Mapping[str, Any], b: int) -> Tensor | None:
        raw = batch.get("trajectory_2d")
        if raw is None:
            return None
        p = self.cfg.cot.trajectory_points
        if isinstance(raw, (list, tuple)):
            rows = [
                np.full(2 * p, np.nan, np.float32) if r is None else resample_points(r, p)
                for r in raw
            ]
            return torch.as_tensor(np.stack(rows), device=self.device)
        t = as_tensor(raw, self.device, torch.float32)
        if t.shape[-1] != 2 * p:
            rows = [resample_points(r, p) for r in t.cpu().numpy()]
            t = torch.as_tensor(np.stack(rows), device=self.device)
        return t

    # ------------------------------------------------------------------------ training

    def loss_terms(
        self,
        batch: Mapping[str, Any],
        cond: Conditioning,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Every per-sample term (B,), weighted and summed into "loss"; presence flags for the
        chain-of-thought terms. ``generator`` fixes tau and the noise (tests, evaluation)."""
        cfg = self.cfg
        b = cond.batch_size
        dev = self.device
        idx = self.normalizer.indices(batch_embodiments(batch, b))
        actions = as_tensor(batch["actions"], dev, torch.float32)
        if actions.shape[1] != cfg.chunk_size:
            raise ValueError(
                f"action chunks have {actions.shape[1]} steps but the policy was built for "
                f"chunk_size {cfg.chunk_size} (sampling.chunk_size must equal it)"
            )
        actions = self.normalizer.normalize("action", actions, idx)
        dims = self.normalizer.dims("action", idx)
        steps = (
            as_tensor(batch["action_mask"], dev, torch.bool)
            if "action_mask" in batch
            else torch.ones(actions.shape[:2], dtype=torch.bool, device=dev)
        )
        suffix = self._suffix(batch, actions, steps, dims)
        enc = self._encode(batch, cond, suffix)

        # Flow matching: a^tau = tau eps + (1 - tau) a, target eps - a, tau ~ Beta(1.5, 1).
        ctx, ctx_valid = enc.expert_context()
        if cfg.action_expert.stop_gradient:
            ctx = ctx.detach()
        f = cfg.flow
        tau = f.tau_min + (1.0 - f.tau_min) * sample_beta(
            b, f.tau_alpha, f.tau_beta, generator, dev
        )
        eps = torch.randn(actions.shape, generator=generator).to(dev)
        v = self.expert(interpolate(actions, eps, tau), tau, ctx, ctx_valid)
        m = (steps[:, :, None] & dims[:, None, :]).float()
        terms: dict[str, Tensor] = {
            "flow": ((v - (eps - actions)) ** 2 * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1.0)
        }
        total = cfg.cot.flow_weight * terms["flow"]

        target = self._trajectory_targets(batch, b) if cfg.cot.trajectory_weight > 0 else None
        if target is not None:
            pred = self.trajectory(enc.query())
            terms["trajectory"], present = trajectory_loss(pred, target, cfg.cot.trajectory_scale)
            terms["trajectory_present"] = present
            total = total + cfg.cot.trajectory_weight * terms["trajectory"] * present

        if suffix is not None:
            logits = self.backbone.logits(enc.suffix())
            lm = suffix_losses(logits, suffix)
            terms.update(lm)
            total = total + cfg.cot.subgoal_weight * lm["subgoal"] * lm["subgoal_present"]
            total = total + cfg.cot.action_token_weight * lm["action_tokens"]
        terms["loss"] = total
        return terms

    def _suffix(
        self, batch: Mapping[str, Any], actions: Tensor, steps: Tensor, dims: Tensor
    ) -> Suffix | None:
        cot = self.cfg.cot
        subgoals = batch.get("subgoal") if cot.subgoal_weight > 0 else None
        if subgoals is not None and isinstance(subgoals, str):
            subgoals = [subgoals] * actions.shape[0]
        bins = self.binner.encode(actions) if cot.action_token_weight > 0 else None
        if subgoals is None and bins is None:
            return None
        return build_suffix(
            self.tokenizer,
            subgoals,
            bins,
            steps,
            dims,
            sep_id=self.sep_id,
            eos_id=self.eos_id,
            action_offset=self.action_offset,
            discrete_steps=cot.discrete_steps,
            max_subgoal_tokens=cot.max_subgoal_tokens,
            device=self.device,
        )

    def loss(self, batch: Mapping[str, Any], cond: Conditioning) -> Tensor:
        """The policy-loss contract: per-sample loss, shape (B,)."""
        return self.loss_terms(batch, cond)["loss"]

    def forward(self, batch: Mapping[str, Any], cond: Conditioning) -> Tensor:
        """``loss``: so DistributedDataParallel (which hooks ``forward``) wraps the policy."""
        return self.loss(batch, cond)

    # ------------------------------------------------------------------------ acting

    @torch.no_grad()
    def sample_actions(
        self,
        batch: Mapping[str, Any],
        cond: Conditioning,
        *,
        num_steps: int | None = None,
        cfg_beta: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Normalised, padded action chunks (B, H, max_action_dim) by Euler integration.

        ``cfg_beta`` != 1 applies classifier-free guidance on I: the velocity with I as given
        and with I masked are combined as ``v_u + beta (v_c - v_u)`` (rl.contract).
        """
        b = cond.batch_size
        ctx, valid = self._encode(batch, cond, None).expert_context()
        guided = cfg_beta != 1.0
        if guided:
            off = torch.zeros_like(cond.indicator_mask)
            uncond = Conditioning(cond.z, cond.z_mask, cond.value, cond.indicator, off)
            ctx_u, valid_u = self._encode(batch, uncond, None).expert_context()
            ctx, valid = torch.cat([ctx, ctx_u]), torch.cat([valid, valid_u])

        def velocity(x: Tensor, sigma: Tensor) -> Tensor:
            if not guided:
                return self.expert(x, sigma, ctx, valid)
            v = self.expert(torch.cat([x, x]), torch.cat([sigma, sigma]), ctx, valid)
            return guided_velocity(v[:b], v[b:], cfg_beta)

        shape = (b, self.cfg.chunk_size, self.cfg.max_action_dim)
        noise = torch.randn(shape, generator=generator).to(self.device)
        return euler_sample(velocity, noise, num_steps or self.cfg.flow.num_steps)

    @torch.no_grad()
    def infer(
        self,
        batch: Mapping[str, Any],
        mode: Mode = "efficient",
        *,
        world_model: Any = None,
        cfg_beta: float = 1.0,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> PolicyOutput:
        """Act on observations {images, state, instruction, embodiment}: one chunk per sample.

        "efficient": the world model is bypassed (z masked). "standard": ``world_model.predict``
        gives the future-state tokens and value in one denoising step. I is fixed to 1.
        """
        b = batch_size_of(batch)
        embodiments = batch_embodiments(batch, b)
        idx = self.normalizer.indices(embodiments)
        if mode == "standard":
            if world_model is None:
                raise ValueError("mode 'standard' needs world_model=...; use 'efficient' without")
            pred = world_model.predict(batch, generator=generator)
            cond = inference_conditioning(b, z=pred.tokens, value=pred.value, device=self.device)
        elif mode == "efficient":
            cond = inference_conditioning(b, device=self.device)
        else:
            raise ValueError(f"unknown mode {mode!r}; choose 'efficient' or 'standard'")
        actions = self.sample_actions(
            batch, cond, num_steps=num_steps, cfg_beta=cfg_beta, generator=generator
        )
        raw = self.normalizer.unnormalize("action", actions, idx)
        return PolicyOutput(raw.float(), self.normalizer.dims("action", idx), embodiments, mode)
