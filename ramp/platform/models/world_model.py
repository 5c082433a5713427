"""RAMP's world model: future visual state, value and proprio from the current frames and the
instruction, by flow matching with a video diffusion transformer (PAPER.md section 2).

The state, one latent video of F = len(future_offsets) frames (latent height h, width W = cameras x
w, cameras side by side):

    s = [ z ; Psi(v) ; Psi(p) ]           channels: latent_channels + 1 + max_state_dim
      z      VAE latents of the future frames at t + offsets (frames.py)
      Psi(v) the value at t, a scalar tiled over every frame and cell (read back as the mean)
      Psi(p) the normalised proprio state at t + offset_k in frame k, tiled over the cells

The DiT (diffusers ``WanTransformer3DModel``) sees ``[s^tau ; c]`` along channels, where
``c = [z_t ; Psi(p_t) ; Psi(onehot(k))]`` is the clean current observation repeated over the F
frames plus a one-hot plane of the frame index k (the DiT's rotary embedding is relative, so at
high noise nothing else tells frame k from frame k'), as Wan-I2V conditions by channel
concatenation (``in_channels`` widened, nothing else changed), and the
instruction through its cross-attention (a T5/UMT5 encoder). Trained with PAPER.md's loss
``|| W(s^tau, eps) - (s - eps) ||^2``, ``s^tau = tau s + (1 - tau) eps``, tau ~ U(0, 1).
``predict(obs)`` integrates from noise (``predict_noise``: a draw, or its mean zero for a
deterministic readout) in ``predict_steps`` Euler steps (one, at policy time) and returns the
future-state tokens (2x2 patches of s, the policy's z), the value and the proprio.

``value_predictor`` selects the paper's comparison: "state_value" (above), "value_only" (s is one
frame of Psi(v) alone) or "vlm" (value_head.py; no DiT, no future state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ramp.platform.models.backbone import prepare_images
from ramp.platform.models.flow import euler_sample, interpolate
from ramp.platform.models.frames import FrameEncoder, patchify, tile, untile
from ramp.platform.models.inputs import (
    DTYPES,
    as_tensor,
    batch_embodiments,
    batch_size_of,
    cast_dtype,
)
from ramp.platform.models.normalization import Normalizer, NormStats
from ramp.platform.models.settings import WorldModelConfig
from ramp.platform.models.tokenizer import load_tokenizer, special_id, vocab_size
from ramp.platform.models.value_head import VLMValuePredictor
from ramp.platform.models.weights import load_widened

VALUE_TARGET = "value_target"  # batch key: float (B,) value at t, e.g. rl.labelling's returns


@dataclass
class WorldModelPrediction:
    """What ``predict`` returns; ``tokens`` feeds the policy's standard mode as z."""

    tokens: Tensor | None  # (B, F * h/2 * W/2, token_dim), None for the "vlm" predictor
    value: Tensor  # (B,) float32
    proprio: Tensor | None  # (B, F, max_state_dim) in the embodiment's units, padding zero
    proprio_mask: Tensor | None  # (B, max_state_dim) bool


def build_text_encoder(cfg: Any, vocab: int) -> nn.Module:
    """A transformers T5 / UMT5 encoder from settings or from a local folder."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    cls, conf = (T5EncoderModel, T5Config) if cfg.family == "t5" else (UMT5EncoderModel, UMT5Config)
    if cfg.weights is not None:
        model = cls.from_pretrained(cfg.weights, local_files_only=True)
        if model.config.d_model != cfg.d_model:
            raise ValueError(
                f"the text encoder in {cfg.weights} has d_model {model.config.d_model}; set "
                f"models.world_model.text_encoder.d_model: {model.config.d_model}"
            )
        return model
    return cls(
        conf(
            vocab_size=cfg.vocab_size or vocab,
            d_model=cfg.d_model,
            d_kv=cfg.d_kv,
            d_ff=cfg.d_ff,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
        )
    )


class WorldModel(nn.Module):
    kind = "world-model"

    def __init__(self, cfg: WorldModelConfig, norm_stats: NormStats | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = load_tokenizer(cfg.tokenizer)
        vocab = vocab_size(self.tokenizer)
        bos = self.tokenizer.bos_token_id
        self.bos_id = bos if bos is not None else special_id(self.tokenizer, "<bos>")
        self.normalizer = Normalizer(cfg.max_state_dim, None, cfg.norm_mode)
        self.vlm: VLMValuePredictor | None = None
        self.value_head: nn.Sequential | None = None
        if cfg.value_predictor == "vlm":
            assert cfg.vlm is not None  # checked by the settings
            vocab_vlm = cfg.vlm.text.vocab_size or vocab
            self.vlm = VLMValuePredictor(cfg.vlm, vocab_vlm, self.bos_id, cfg.max_state_dim)
        else:
            from diffusers import WanTransformer3DModel

            self.frames = FrameEncoder(cfg.vae)
            self.text_encoder = build_text_encoder(cfg.text_encoder, vocab)
            if not cfg.text_encoder.trainable:
                self.text_encoder.requires_grad_(False)
            t = cfg.transformer
            self.transformer = WanTransformer3DModel(
                patch_size=(1, 2, 2),
                num_attention_heads=t.num_heads,
                attention_head_dim=t.head_dim,
                in_channels=cfg.state_channels + cfg.cond_channels,
                out_channels=cfg.state_channels,
                text_dim=cfg.text_encoder.d_model,
                freq_dim=t.freq_dim,
                ffn_dim=t.ffn_dim,
                num_layers=t.num_layers,
            )
            if cfg.value_readout == "head":
                width = cfg.value_head_width
                d_in = 2 * cfg.max_state_dim + cfg.text_encoder.d_model + int(cfg.time_input)
                self.value_head = nn.Sequential(
                    nn.Linear(d_in, width),
                    nn.GELU(),
                    nn.Linear(width, width),
                    nn.GELU(),
                    nn.Linear(width, 1),
                )
            if t.weights is not None:
                patch = 4  # proj_out rows are (1 x 2 x 2 patch positions) x channels
                load_widened(
                    self.transformer,
                    t.weights,
                    "world-model transformer",
                    groups={"proj_out.weight": patch, "proj_out.bias": patch},
                )
        dtype = DTYPES[cfg.dtype]
        if dtype != torch.float32:
            for name, m in self.named_children():
                if name != "normalizer":
                    cast_dtype(m, dtype)
        if norm_stats is not None:
            self.set_norm_stats(norm_stats)

    # ------------------------------------------------------------------------ set-up

    def set_norm_stats(self, stats: NormStats) -> None:
        self.normalizer.set_stats(stats)

    @property
    def norm_stats(self) -> NormStats | None:
        return self.normalizer.stats

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------------ inputs

    def encode_frames(self, images: Mapping[str, Any]) -> Tensor:
        """{cam: (B, [K,] H, W, 3)} -> latents (B, C, [K,] h, cameras x w)."""
        per_cam = []
        for v in images.values():
            x = as_tensor(v, self.device)
            lead = x.shape[:-3]
            frames = prepare_images(x.reshape(-1, *x.shape[-3:]), self.cfg.image_size)
            z = self.frames(frames)
            z = z.reshape(*lead, *z.shape[1:])
            per_cam.append(z.movedim(-3, 1) if len(lead) == 2 else z)
        return torch.cat(per_cam, dim=-1)

    def encode_text(self, instructions: str | list[str], b: int) -> Tensor:
        """Instruction embeddings (B, L, d_model), zero past each instruction's end (Wan style)."""
        if isinstance(instructions, str):
            instructions = [instructions] * b
        tok = self.tokenizer(
            list(instructions),
            add_special_tokens=False,
            padding=True,
            truncation=True,
            max_length=self.cfg.text_encoder.max_tokens - 1,
            return_tensors="pt",
        )
        eos = torch.full((b, 1), self.tokenizer.eos_token_id or 0, dtype=torch.long)
        ids = torch.cat([tok["input_ids"], eos], 1).to(self.device)
        mask = torch.cat([tok["attention_mask"], torch.ones(b, 1, dtype=torch.long)], 1)
        mask = mask.to(self.device)
        with torch.set_grad_enabled(self.cfg.text_encoder.trainable and torch.is_grad_enabled()):
            h = self.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return h * mask[..., None].to(h.dtype)

    def _state_input(self, batch: Mapping[str, Any], idx: Tensor, key: str) -> Tensor:
        return self.normalizer.normalize("state", as_tensor(batch[key], self.device), idx)

    def _condition(self, batch: Mapping[str, Any], idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """c = [z_t ; Psi(p_t) ; Psi(k)] (B, C_c, F, h, W), the text, and z_t itself."""
        b = idx.shape[0]
        z_t = self.encode_frames(batch["images"])  # (B, C, h, W)
        f = self.cfg.state_frames
        h, w = z_t.shape[-2:]
        p_t = self._state_input(batch, idx, "state")
        frame_code = torch.eye(f, device=z_t.device)[None].expand(b, -1, -1)  # one-hot frame k
        planes = [
            z_t[:, :, None].expand(-1, -1, f, -1, -1),
            tile(p_t[:, None].expand(-1, f, -1), h, w),
            tile(frame_code, h, w),
        ]
        if self.cfg.time_input:
            if "step" not in batch:
                raise KeyError(
                    "this world model conditions on the episode step (time_input): the "
                    "observation needs 'step' (B,), the index of the step in its episode"
                )
            t = as_tensor(batch["step"], self.device, torch.float32).reshape(b, 1, 1)
            planes.append(tile((t / self.cfg.time_scale).expand(-1, f, -1), h, w))
        cond = torch.cat(planes, dim=1)
        text = self.encode_text(batch["instruction"], b)
        return cond, text, z_t

    def _head_value(self, batch: Mapping[str, Any], idx: Tensor, text: Tensor) -> Tensor:
        """The value head's (B,) value (over the baseline when there is one): an MLP on the
        normalised state with its valid-dims mask, the step (time_input) and the mean of the
        instruction's embeddings. Deterministic, so labels carry no sampling noise."""
        assert self.value_head is not None
        b = idx.shape[0]
        dims = self.normalizer.dims("state", idx).float()
        parts = [self._state_input(batch, idx, "state").float() * dims, dims]
        if self.cfg.time_input:
            t = as_tensor(batch["step"], self.device, torch.float32).reshape(b, 1)
            parts.append(t / self.cfg.time_scale)
        valid = (text.abs().sum(-1, keepdim=True) > 0).float()  # encode_text zeroes padding
        parts.append((text.float() * valid).sum(1) / valid.sum(1).clamp_min(1.0))
        x = torch.cat(parts, -1).to(self.value_head[0].weight.dtype)
        return self.value_head(x).float().squeeze(-1)

    def _w(self, x: Tensor, sigma: Tensor, cond: Tensor, text: Tensor) -> Tensor:
        """The DiT's output W (PAPER.md: trained towards s - eps), float32."""
        dtype = self.transformer.patch_embedding.weight.dtype
        out = self.transformer(
            hidden_states=torch.cat([x, cond], dim=1).to(dtype),
            timestep=(sigma * self.cfg.timestep_scale).to(dtype),
            encoder_hidden_states=text.to(dtype),
            return_dict=False,
        )[0]
        return out.float()

    # ------------------------------------------------------------------------ training

    def _value_target(self, batch: Mapping[str, Any]) -> Tensor:
        if VALUE_TARGET not in batch:
            raise KeyError(
                f"the world model trains on batch[{VALUE_TARGET!r}] (B,): the value at t, e.g. "
                "the normalised Monte-Carlo return from ramp.platform.rl.labelling.label_steps"
            )
        return as_tensor(batch[VALUE_TARGET], self.device, torch.float32)

    def loss_terms(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Per-sample (B,) loss terms ("latent", "value", "proprio") and their weighted "loss"."""
        b = batch_size_of(batch)
        idx = self.normalizer.indices(batch_embodiments(batch, b))
        value = self._value_target(batch)
        present = torch.isfinite(value)
        value = torch.where(present, value, torch.zeros_like(value))
        base = self._baseline(batch, b)
        if base is not None:
            value = torch.where(present, value - base, value)
        if self.vlm is not None:
            pred = self._vlm_value(batch, idx)
            v = (pred - value) ** 2 * present
            return {"value": v, "loss": self.cfg.value_weight * v}
        cond, text, _ = self._condition(batch, idx)
        h, w = cond.shape[-2:]
        f = self.cfg.state_frames
        value_planes = self._value_plane(value)[:, None, None, None, None].expand(-1, 1, f, h, w)
        if self.cfg.value_predictor == "value_only":
            s = value_planes
        else:
            z_future = self.encode_frames(batch["future_images"])  # (B, C, K, h, W)
            p_future = self._state_input(batch, idx, "future_state")  # (B, K, S)
            s = torch.cat([z_future, value_planes, tile(p_future, h, w)], dim=1)
        # sigma = 1 - tau ~ U(0, 1); s^tau = tau s + (1 - tau) eps; target s - eps
        # low-discrepancy draws (Kingma et al. 2021): sample i in [i / B, (i + 1) / B), one
        # shared offset; each sigma is still U(0, 1), the batch covers the range evenly
        u = torch.rand(1, generator=generator)
        sigma = ((torch.arange(b) + u) / b)[torch.randperm(b, generator=generator)].to(self.device)
        k = self.cfg.noise_shift
        sigma = k * sigma / (1.0 + (k - 1.0) * sigma)
        eps = torch.randn(s.shape, generator=generator).to(self.device)
        out = self._w(interpolate(s, eps, sigma), sigma, cond, text)
        err = (out - (s - eps)) ** 2  # (B, C, F, h, W)
        terms = {}
        head = 0.0
        if self.value_head is not None:
            terms["value_head"] = (self._head_value(batch, idx, text) - value) ** 2 * present
            head = self.cfg.value_weight * terms["value_head"]
        if self.cfg.value_predictor == "value_only":
            terms["value"] = err.mean((1, 2, 3, 4)) * present
            terms["loss"] = self.cfg.value_weight * terms["value"] + head
            return terms
        c = self.cfg.vae.latent_channels
        fmask = (
            as_tensor(batch["future_mask"], self.device, torch.bool)
            if "future_mask" in batch
            else torch.ones(b, f, dtype=torch.bool, device=self.device)
        ).float()
        dims = self.normalizer.dims("state", idx).float()  # (B, S)
        lat = err[:, :c].mean((1, 3, 4))  # (B, F)
        terms["latent"] = (lat * fmask).sum(1) / fmask.sum(1).clamp_min(1.0)
        terms["value"] = err[:, c].mean((1, 2, 3)) * present
        prop = err[:, c + 1 :].mean((3, 4))  # (B, S, F)
        pm = dims[:, :, None] * fmask[:, None, :]
        terms["proprio"] = (prop * pm).sum((1, 2)) / pm.sum((1, 2)).clamp_min(1.0)
        terms["loss"] = (
            self.cfg.latent_weight * terms["latent"]
            + self.cfg.value_weight * terms["value"]
            + self.cfg.proprio_weight * terms["proprio"]
            + head
        )
        return terms

    def _baseline(self, batch: Mapping[str, Any], b: int) -> Tensor | None:
        """b(task, t) per sample for ``value_baseline: time`` (None otherwise); a task the table
        does not know, or a batch without tasks, takes the all-task row '*'."""
        table = self.cfg.value_baseline_table
        if self.cfg.value_baseline != "time":
            return None
        if not table:
            raise ValueError(
                "value_baseline 'time' needs value_baseline_table (the trainer sets it from the "
                "training episodes; a checkpoint carries it)"
            )
        if "step" not in batch:
            raise KeyError(
                "this world model predicts the value over a per-step baseline (value_baseline "
                "'time'): the observation needs 'step' (B,), the index of the step in its episode"
            )
        steps = as_tensor(batch["step"], torch.device("cpu")).reshape(-1).long().tolist()
        tasks = batch.get("task")
        tasks = [tasks] * b if isinstance(tasks, str) or tasks is None else list(tasks)
        out = []
        for task, t in zip(tasks, steps, strict=True):
            row = table.get(task) if task is not None else None
            row = row or table["*"]
            out.append(row[min(max(t, 0), len(row) - 1)])
        return torch.tensor(out, dtype=torch.float32, device=self.device)

    def _value_plane(self, value: Tensor) -> Tensor:
        """The value as the state holds it (``value_scale``); ``_value_of`` inverts it."""
        k = self.cfg.value_scale
        return value if k is None else k * (2.0 * value + 1.0)

    def _value_of(self, plane: Tensor) -> Tensor:
        k = self.cfg.value_scale
        return plane if k is None else (plane / k - 1.0) / 2.0

    def loss(self, batch: Mapping[str, Any]) -> Tensor:
        """Per-sample world-model loss (B,)."""
        return self.loss_terms(batch)["loss"]

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """``loss``: so DistributedDataParallel (which hooks ``forward``) wraps the world model."""
        return self.loss(batch)

    def _vlm_value(self, batch: Mapping[str, Any], idx: Tensor) -> Tensor:
        assert self.vlm is not None
        b = idx.shape[0]
        instr = batch["instruction"]
        instr = [instr] * b if isinstance(instr, str) else list(instr)
        state = self._state_input(batch, idx, "state")
        return self.vlm(
            batch["images"], instr, self.tokenizer, state, self.normalizer.dims("state", idx)
        )

    # ------------------------------------------------------------------------ prediction

    @torch.no_grad()
    def predict(
        self,
        obs: Mapping[str, Any],
        denoise_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> WorldModelPrediction:
        """Future-state tokens, value and proprio for observations {images, state, instruction,
        embodiment} (training batches work too), in ``denoise_steps`` (default: predict_steps)."""
        b = batch_size_of(obs)
        idx = self.normalizer.indices(batch_embodiments(obs, b))
        base = self._baseline(obs, b)
        if self.vlm is not None:
            value = self._vlm_value(obs, idx)
            return WorldModelPrediction(None, value if base is None else value + base, None, None)
        cond, text, _ = self._condition(obs, idx)
        shape = (b, self.cfg.state_channels, *cond.shape[2:])
        if self.cfg.predict_noise == "zero":
            noise = torch.zeros(shape, device=self.device)
        else:
            noise = torch.randn(shape, generator=generator).to(self.device)

        def velocity(x: Tensor, sigma: Tensor) -> Tensor:
            return -self._w(x, sigma, cond, text)  # W estimates s - eps = -(eps - s)

        s = euler_sample(velocity, noise, denoise_steps or self.cfg.predict_steps)
        c = 0 if self.cfg.value_predictor == "value_only" else self.cfg.vae.latent_channels
        if self.value_head is not None:
            value = self._head_value(obs, idx, text)
        else:
            value = self._value_of(s[:, c].mean((1, 2, 3)))
        value = value if base is None else value + base
        if self.cfg.value_predictor == "value_only":
            return WorldModelPrediction(self.tokens(s), value, None, None)
        proprio = untile(s[:, c + 1 :])  # (B, F, S) normalised
        raw = torch.stack(
            [self.normalizer.unnormalize("state", proprio[:, k], idx) for k in range(s.shape[2])],
            dim=1,
        )
        return WorldModelPrediction(self.tokens(s), value, raw, self.normalizer.dims("state", idx))

    @torch.no_grad()
    def value(self, obs: Mapping[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """The (B,) value alone, what the labeller reads: ``predict(obs).value``, without the
        frame encoder and the DiT when the value head answers (they would be thrown away)."""
        if self.value_head is None:
            return self.predict(obs, generator=generator).value
        b = batch_size_of(obs)
        idx = self.normalizer.indices(batch_embodiments(obs, b))
        base = self._baseline(obs, b)
        value = self._head_value(obs, idx, self.encode_text(obs["instruction"], b))
        return value if base is None else value + base

    def tokens(self, state: Tensor) -> Tensor:
        """The policy's z: 2x2 patches of the (optionally pooled) predicted state."""
        k = self.cfg.token_pool
        if k > 1:
            b, f = state.shape[0], state.shape[2]
            pooled = torch.nn.functional.avg_pool2d(state.transpose(1, 2).flatten(0, 1), k)
            state = pooled.unflatten(0, (b, f)).transpose(1, 2)
        return patchify(state)
