"""Settings of the models (section ``models`` of a ramp config): the policy and the world model.

Why every size is a field: the same code must build a 2M-parameter model for CPU tests and the
paper's 3B-backbone policy and 5B world model on GPUs, by config alone. A named preset
(``models.preset``, see presets.py) fills every field; anything written under ``models.policy`` or
``models.world_model`` in YAML overrides the preset key by key, so

    models:
      preset: small
      policy: {action_expert: {num_layers: 8}}

is the small preset with a deeper action expert. Unknown keys are errors with a "did you mean".
This module imports nothing from ramp but the config base class (config.py composes it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from ramp.platform.base import StrictModel, deep_merge

Dtype = Literal["float32", "bfloat16", "float16"]
NormMode = Literal["quantile", "meanstd"]


# --------------------------------------------------------------------------- shared pieces


class VisionConfig(StrictModel):
    """SigLIP vision tower of the PaliGemma backbone."""

    hidden_size: int = Field(ge=8)
    intermediate_size: int = Field(ge=8)
    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    patch_size: int = Field(ge=1)
    image_size: int = Field(ge=8, description="camera frames are resized to this square size")

    @model_validator(mode="after")
    def _divisible(self) -> VisionConfig:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size "
                f"({self.patch_size})"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must divide by num_heads")
        return self

    @property
    def tokens_per_image(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class TextConfig(StrictModel):
    """The Gemma (PaliGemma) or Gemma-2 (PaliGemma-2) language model of the backbone."""

    family: Literal["gemma", "gemma2"] = "gemma2"
    hidden_size: int = Field(ge=8)
    intermediate_size: int = Field(ge=8)
    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=4)
    vocab_size: int | None = Field(
        default=None,
        ge=16,
        description="None: the tokenizer's size, rounded up to a multiple of 64 (real checkpoints "
        "state theirs: PaliGemma-2 has 257216)",
    )

    @model_validator(mode="after")
    def _heads(self) -> TextConfig:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads})"
            )
        return self


class BackboneConfig(StrictModel):
    """A PaliGemma / PaliGemma-2 vision-language model built from transformers' classes."""

    vision: VisionConfig
    text: TextConfig
    weights: str | None = Field(
        default=None,
        description="local directory of a transformers PaliGemma checkpoint (config.json + "
        "*.safetensors) to load; never downloaded. None: random initialisation",
    )
    max_text_tokens: int = Field(
        default=48, ge=4, description="instructions are truncated to this many tokens"
    )
    attn_implementation: Literal["eager", "sdpa"] = Field(
        default="eager",
        description="eager is exact for Gemma-2's attention logit soft-capping; sdpa is faster "
        "but drops the soft-capping",
    )


# --------------------------------------------------------------------------- the policy


class ActionExpertConfig(StrictModel):
    """The diffusion transformer over the action chunk (diffusers LTXVideoTransformer3DModel used
    as a 1-D denoiser: one token per chunk step, cross-attending to the backbone's tokens)."""

    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    head_dim: int = Field(ge=4)
    weights: str | None = Field(
        default=None, description="local directory of a diffusers checkpoint of the expert"
    )
    stop_gradient: bool = Field(
        default=False,
        description="True: the expert's loss does not train the backbone (knowledge insulation)",
    )


class FlowConfig(StrictModel):
    """Flow matching on the action chunk (PAPER.md section 1, released GigaBrain-0 code)."""

    tau_alpha: float = Field(default=1.5, gt=0, description="tau ~ Beta(tau_alpha, tau_beta)")
    tau_beta: float = Field(default=1.0, gt=0)
    tau_min: float = Field(
        default=0.001, ge=0, lt=1, description="tau is mapped into [tau_min, 1] (never 0 noise)"
    )
    num_steps: int = Field(default=10, ge=1, le=1000, description="Euler steps at inference")
    timestep_scale: float = Field(
        default=1000.0, gt=0, description="tau is multiplied by this before the time embedding"
    )


class CoTConfig(StrictModel):
    """Embodied chain-of-thought heads and the weights of every term of the policy loss.

    L = flow_weight * FM + subgoal_weight * CE(subgoal) + action_token_weight * CE(action tokens)
        + trajectory_weight * ||GRU(t_hat) - t||^2      (PAPER.md section 1; lambda = trajectory)
    Terms whose label a sample lacks (no subgoal, no trajectory) are masked for that sample.
    """

    flow_weight: float = Field(default=1.0, ge=0)
    subgoal_weight: float = Field(
        default=1.0,
        ge=0,
        description="weight of the subgoal cross-entropy (mean per token; the paper's CE has "
        "weight 1); 0 disables the subgoal LM",
    )
    action_token_weight: float = Field(
        default=1.0, ge=0, description="weight of the action-token cross-entropy; 0 disables it"
    )
    trajectory_weight: float = Field(
        default=1.0,
        ge=0,
        description="lambda of the 2-D trajectory term (the paper gives no value); 0 disables it",
    )
    num_bins: int = Field(
        default=256, ge=2, le=4096, description="uniform bins per normalised action dimension"
    )
    discrete_steps: int = Field(
        default=10,
        ge=1,
        description="the first this-many steps of the chunk become discrete action tokens",
    )
    action_token_offset: int | None = Field(
        default=None,
        ge=0,
        description="vocabulary id of bin 0; None: the tokenizer's <act_0> token (the shipped "
        "tokenizer has one per bin). Real vocabularies reuse rarely used ids (pi0-FAST style)",
    )
    max_subgoal_tokens: int = Field(default=24, ge=1)
    trajectory_points: int = Field(default=10, ge=1, description="learnable tokens / 2-D points")
    trajectory_scale: float = Field(
        default=224.0, gt=0, description="trajectory pixels are divided by this (targets ~[0, 1])"
    )
    gru_hidden: int = Field(default=128, ge=4)


class PolicyConfig(StrictModel):
    """The GigaBrain-style VLA policy: PaliGemma backbone + flow-matching action expert + CoT."""

    backbone: BackboneConfig
    action_expert: ActionExpertConfig
    flow: FlowConfig = Field(default_factory=FlowConfig)
    cot: CoTConfig = Field(default_factory=CoTConfig)
    chunk_size: int = Field(
        default=50, ge=1, le=1024, description="action chunk length H (must equal sampling's)"
    )
    max_state_dim: int = Field(
        default=32, ge=1, description="state padded to this (released GigaBrain code: 32)"
    )
    max_action_dim: int = Field(default=32, ge=1, description="actions padded to this")
    state_to_expert: bool = Field(
        default=False,
        description="the action expert also attends to the state token as embedded, not only "
        "to the backbone's output over it (pi0 feeds the state to its action expert): a small "
        "backbone can wash out one state token among the image tokens (docs/models.md)",
    )
    max_cameras: int = Field(default=3, ge=1, le=16)
    z_dim: int | None = Field(
        default=None,
        ge=1,
        description="width of the world model's future-state tokens; None: taken from "
        "models.world_model",
    )
    z_mlp_hidden: int = Field(default=256, ge=4, description="hidden width of the z projector")
    norm_mode: NormMode = Field(
        default="quantile",
        description="quantile: q01..q99 -> -1..1 (needed by the discrete action tokens); "
        "meanstd: (x - mean) / std",
    )
    tokenizer: str = Field(
        default="builtin",
        description="'builtin' (shipped with ramp, offline) or a local tokenizer directory",
    )
    dtype: Dtype = "float32"


# --------------------------------------------------------------------------- the world model


class VAEConfig(StrictModel):
    """Frames -> latents. AutoencoderKL (image VAE) or AutoencoderKLWan (the Wan video VAE, used
    frame by frame); frozen unless ``trainable``."""

    kind: Literal["AutoencoderKL", "AutoencoderKLWan"] = "AutoencoderKL"
    latent_channels: int = Field(default=4, ge=1)
    block_out_channels: list[int] = Field(
        default_factory=lambda: [32, 64, 64, 64],
        min_length=1,
        description="AutoencoderKL: one entry per block (compression 2^(n-1)); "
        "AutoencoderKLWan: base_dim * dim_mult",
    )
    layers_per_block: int = Field(default=1, ge=1)
    norm_num_groups: int = Field(default=8, ge=1)
    wan_patch_size: int | None = Field(
        default=None, ge=1, description="AutoencoderKLWan only: Wan-2.2's input patchify (2)"
    )
    decoder_base_dim: int | None = Field(
        default=None, ge=1, description="AutoencoderKLWan only: decoder width (Wan-2.2: 256)"
    )
    scaling_factor: float = Field(
        default=1.0, gt=0, description="latents = (mode - shift_factor) * scaling_factor"
    )
    shift_factor: float = 0.0
    weights: str | None = Field(default=None, description="local diffusers VAE directory")
    trainable: bool = False

    @property
    def compression(self) -> int:
        """Pixels per latent cell along each image side."""
        down = 2 ** (len(self.block_out_channels) - 1)
        return down * (self.wan_patch_size or 1)


class TextEncoderConfig(StrictModel):
    """The world model's instruction encoder (transformers T5 / UMT5 encoder; Wan uses UMT5)."""

    family: Literal["t5", "umt5"] = "t5"
    d_model: int = Field(ge=8)
    d_ff: int = Field(ge=8)
    d_kv: int = Field(ge=4)
    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    vocab_size: int | None = Field(default=None, ge=16, description="None: the tokenizer's size")
    max_tokens: int = Field(default=32, ge=2)
    weights: str | None = Field(default=None, description="local transformers encoder directory")
    trainable: bool = False


class DiTConfig(StrictModel):
    """The video diffusion transformer (diffusers WanTransformer3DModel, widened in_channels)."""

    num_layers: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    head_dim: int = Field(ge=4)
    ffn_dim: int = Field(ge=8)
    freq_dim: int = Field(default=256, ge=4)
    weights: str | None = Field(
        default=None,
        description="local diffusers WanTransformer3DModel directory; its patch embedding and "
        "output projection are widened to the state channels (new channels start at zero)",
    )


class WorldModelConfig(StrictModel):
    """RAMP's world model: future visual state, value and proprio by flow matching (PAPER.md 2)."""

    value_predictor: Literal["state_value", "value_only", "vlm"] = Field(
        default="state_value",
        description="state_value: s = [z; Psi(v); Psi(p)] (paper default); value_only: "
        "s = [Psi(v)]; vlm: a PaliGemma backbone with a regression head (no future state)",
    )
    image_size: int = Field(default=64, ge=8, description="frames are resized to this square")
    future_offsets: list[int] = Field(
        default_factory=lambda: [12, 24, 36, 48],
        min_length=1,
        description="steps ahead whose frames are predicted (must equal sampling's)",
    )
    max_state_dim: int = Field(default=32, ge=1, description="proprio padded to this")
    vae: VAEConfig = Field(default_factory=VAEConfig)
    text_encoder: TextEncoderConfig
    transformer: DiTConfig
    vlm: BackboneConfig | None = Field(
        default=None, description="the backbone of value_predictor 'vlm'"
    )
    latent_weight: float = Field(default=1.0, ge=0, description="loss weight of the z channels")
    value_weight: float = Field(default=1.0, ge=0, description="loss weight of the value plane")
    proprio_weight: float = Field(default=1.0, ge=0, description="loss weight of proprio planes")
    predict_steps: int = Field(
        default=1, ge=1, description="denoising steps of predict() (the paper: one, at policy time)"
    )
    value_scale: float | None = Field(
        default=None,
        gt=0,
        description="the value plane holds k (2 v + 1), so values in [-1, 0] span [-k, k] like "
        "the other unit-scale channels (diffusion learns a channel of std 0.2 next to unit noise "
        "slowly); None = the raw value v",
    )
    time_input: bool = Field(
        default=False,
        description="condition on the episode step t (a plane of t / time_scale): under a step "
        "limit the value depends on the time left, not on the state alone (Pardo et al. 2018); "
        "observations must then carry 'step'",
    )
    time_scale: float = Field(
        default=500.0, gt=0, description="steps that map to 1.0 in the time plane (time_input)"
    )
    value_baseline: Literal["none", "time"] = Field(
        default="none",
        description="time: the value plane holds the value minus the time-only baseline b(task, "
        "t) (the mean training return at step t of the task), and predictions add it back, so "
        "the network learns what the step index does not tell; none: the value itself",
    )
    value_baseline_table: dict[str, list[float]] | None = Field(
        default=None,
        description="set by the trainer from the fit's training episodes: task -> mean return "
        "per step ('*': all tasks); steps past the end take the last entry",
    )
    predict_noise: Literal["sample", "zero"] = Field(
        default="sample",
        description="where predict() starts: sample = a Gaussian draw (the paper; the value then "
        "carries the draw's noise), zero = the noise's mean, so one step gives the model's "
        "estimate of E[s | observation] and the value (and z) are deterministic",
    )
    value_readout: Literal["flow", "head"] = Field(
        default="flow",
        description="where predict() reads the value: flow = the mean of the denoised value "
        "plane (the paper; one step from noise, so it carries the draw's noise); head = a small "
        "MLP trained beside the DiT by MSE on the same target, reading the observation's state, "
        "step and instruction: deterministic, and it shrinks towards the baseline where the "
        "data does not tell (docs/models.md, 'The value readout'). The DiT still denoises the "
        "value plane either way, so the policy's z carries it",
    )
    value_head_width: int = Field(
        default=64, ge=1, description="hidden width of the value head (value_readout: head)"
    )
    token_pool: int = Field(
        default=1,
        ge=1,
        description="the predicted state is average-pooled by this factor over latent cells "
        "before it becomes the policy's z tokens (pool^2 fewer tokens in the policy's context)",
    )
    timestep_scale: float = Field(default=1000.0, gt=0)
    noise_shift: float = Field(
        default=1.0,
        gt=0,
        description="training noise levels: sigma = 1 - tau with tau ~ U(0, 1) (the paper), "
        "then shifted as sigma' = k sigma / (1 + (k - 1) sigma) (Wan / SD3 timestep shift; "
        "k > 1 trains more at high noise, where the one-step prediction lives); 1 = uniform",
    )
    norm_mode: NormMode = "quantile"
    tokenizer: str = "builtin"
    dtype: Dtype = "float32"

    @field_validator("future_offsets")
    @classmethod
    def _offsets(cls, v: list[int]) -> list[int]:
        if any(o < 1 for o in v) or sorted(set(v)) != v:
            raise ValueError(f"future_offsets must be positive and strictly increasing, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WorldModelConfig:
        if self.value_predictor == "vlm" and self.vlm is None:
            raise ValueError("value_predictor 'vlm' needs a 'vlm' backbone section")
        if self.value_predictor == "vlm" and self.value_readout == "head":
            raise ValueError(
                "value_readout 'head' reads the value beside the DiT; value_predictor 'vlm' has "
                "no DiT and is a regression head already: set value_readout: flow"
            )
        cells = self.image_size // self.vae.compression
        if self.image_size % self.vae.compression or cells % 2:
            raise ValueError(
                f"image_size ({self.image_size}) must give an even number of latent cells at the "
                f"VAE's compression {self.vae.compression} (the DiT patchifies 2x2)"
            )
        if cells % (2 * self.token_pool):
            raise ValueError(
                f"token_pool {self.token_pool} must divide the {cells} latent cells into an even "
                "number (the tokens are 2x2 patches of the pooled state)"
            )
        return self

    @property
    def state_channels(self) -> int:
        """Channels of one frame of s: [z ; Psi(v) ; Psi(p)] (or [Psi(v)] for value_only)."""
        if self.value_predictor == "value_only":
            return 1
        return self.vae.latent_channels + 1 + self.max_state_dim

    @property
    def cond_channels(self) -> int:
        """Channels of the clean conditioning concatenated to s: [z_t ; Psi(p_t) ; Psi(k)]
        (; Psi(t / time_scale) with time_input)."""
        time = 1 if self.time_input else 0
        return self.vae.latent_channels + self.max_state_dim + self.state_frames + time

    @property
    def token_dim(self) -> int:
        """Width of one future-state token handed to the policy (2x2 patches of s)."""
        return self.state_channels * 4

    @property
    def state_frames(self) -> int:
        return 1 if self.value_predictor == "value_only" else len(self.future_offsets)


# --------------------------------------------------------------------------- the section


class ModelsConfig(StrictModel):
    """Section ``models``: a named preset plus key-by-key overrides of its policy / world model."""

    preset: str = Field(default="tiny", description="tiny (CPU tests), small (CPU demos), paper")
    policy: PolicyConfig
    world_model: WorldModelConfig

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        data = dict(data or {})
        from ramp.platform.models.presets import preset_dicts  # presets import this module

        base = preset_dicts(str(data.get("preset", "tiny")))
        for part in ("policy", "world_model"):
            over = data.get(part)
            if over is None:
                data[part] = base[part]
            elif isinstance(over, dict):
                data[part] = deep_merge(base[part], over)
        return data

    @model_validator(mode="after")
    def _z_dim(self) -> ModelsConfig:
        width = self.world_model.token_dim
        if self.policy.z_dim is None:
            self.policy.z_dim = width
        elif self.policy.z_dim != width:
            raise ValueError(
                f"policy.z_dim ({self.policy.z_dim}) must equal the world model's token width "
                f"({width} = 4 x {self.world_model.state_channels} state channels); "
                "leave it unset to take it from the world model"
            )
        return self

    def check_sampling(self, chunk_size: int, future_offsets: list[int]) -> None:
        """Raise when the samples a trainer draws cannot feed these models."""
        problems = []
        if self.policy.chunk_size != chunk_size:
            problems.append(
                f"models.policy.chunk_size ({self.policy.chunk_size}) differs from "
                f"sampling.chunk_size ({chunk_size}); set both to the same value"
            )
        if list(self.world_model.future_offsets) != list(future_offsets):
            problems.append(
                f"models.world_model.future_offsets {self.world_model.future_offsets} differ "
                f"from sampling.future_offsets {list(future_offsets)}; set both the same"
            )
        if problems:
            raise ValueError("; ".join(problems))
