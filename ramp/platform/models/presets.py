"""Named model presets: ``tiny`` (CPU tests), ``small`` (CPU demos), ``paper`` (GPU, paper scale).

One registry, looked up by name with a "did you mean" error. A preset is plain data (the dicts of
a ``PolicyConfig`` and a ``WorldModelConfig``); ``models.policy`` / ``models.world_model`` in a
config override it key by key (settings.py). Parameter counts (tests/platform/models check them):

| preset | policy                                  | world model                                   |
|--------|-----------------------------------------|-----------------------------------------------|
| tiny   | 1.7M (64 px)                            | 2.5M (64 px)                                  |
| small  | 26M (112 px)                            | 26M (128 px)                                  |
| paper  | 3.36B: PaliGemma-2 3B + 313M expert     | Wan2.2-TI2V-5B DiT (5.0B) + Wan2.2 VAE + UMT5 |

The tiny and small world models train with Wan2.2's timestep shift (``noise_shift: 5``): more of
their few CPU steps land at high noise, where the one-step prediction of policy time lives. The
paper preset keeps the paper's tau ~ U(0, 1) (``noise_shift: 1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ramp.platform.config import UnknownNameError
from ramp.platform.models.settings import ModelsConfig, PolicyConfig, WorldModelConfig

PresetDicts = dict[str, dict[str, Any]]


def _tiny() -> PresetDicts:
    backbone = {
        "vision": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_layers": 2,
            "num_heads": 2,
            "patch_size": 8,
            "image_size": 64,
        },
        "text": {
            "family": "gemma2",
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_layers": 2,
            "num_heads": 2,
            "num_kv_heads": 1,
            "head_dim": 64,
        },
        "max_text_tokens": 32,
    }
    policy = {
        "backbone": backbone,
        "action_expert": {"num_layers": 3, "num_heads": 4, "head_dim": 32},
        "cot": {"gru_hidden": 64, "max_subgoal_tokens": 16},
        "z_mlp_hidden": 128,
    }
    world_model = {
        "image_size": 64,
        "vae": {
            "kind": "AutoencoderKL",
            "latent_channels": 4,
            "block_out_channels": [8, 16, 16, 16],
            "layers_per_block": 1,
            "norm_num_groups": 4,
            "scaling_factor": 4.0,
        },
        "text_encoder": {
            "family": "t5",
            "d_model": 64,
            "d_ff": 128,
            "d_kv": 16,
            "num_layers": 1,
            "num_heads": 4,
            "max_tokens": 24,
        },
        # wide and shallow learns fastest on CPU (tests/platform/models/test_learning.py)
        "transformer": {
            "num_layers": 2,
            "num_heads": 8,
            "head_dim": 32,
            "ffn_dim": 512,
            "freq_dim": 64,
        },
        "vlm": backbone,
        "noise_shift": 5.0,
    }
    return {"policy": policy, "world_model": world_model}


def _small() -> PresetDicts:
    backbone = {
        "vision": {
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_layers": 6,
            "num_heads": 4,
            "patch_size": 14,
            "image_size": 112,
        },
        "text": {
            "family": "gemma2",
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_layers": 6,
            "num_heads": 6,
            "num_kv_heads": 2,
            "head_dim": 64,
        },
        "max_text_tokens": 48,
    }
    policy = {
        "backbone": backbone,
        "action_expert": {"num_layers": 6, "num_heads": 8, "head_dim": 32},
        "cot": {"gru_hidden": 128},
        "z_mlp_hidden": 384,
    }
    world_model = {
        "image_size": 128,
        "vae": {
            "kind": "AutoencoderKL",
            "latent_channels": 8,
            "block_out_channels": [16, 32, 64, 64],
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "scaling_factor": 4.0,
        },
        "text_encoder": {
            "family": "t5",
            "d_model": 256,
            "d_ff": 1024,
            "d_kv": 32,
            "num_layers": 4,
            "num_heads": 8,
            "max_tokens": 32,
        },
        "transformer": {
            "num_layers": 8,
            "num_heads": 6,
            "head_dim": 64,
            "ffn_dim": 1536,
            "freq_dim": 128,
        },
        "vlm": backbone,
        "noise_shift": 5.0,
        "token_pool": 2,  # 16x16 latent cells -> 4x4 tokens per frame and camera
    }
    return {"policy": policy, "world_model": world_model}


def _paper() -> PresetDicts:
    # PaliGemma-2 3B (google/paligemma2-3b-pt-224): SigLIP So400m/14 + Gemma-2 2B.
    backbone = {
        "vision": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_layers": 27,
            "num_heads": 16,
            "patch_size": 14,
            "image_size": 224,
        },
        "text": {
            "family": "gemma2",
            "hidden_size": 2304,
            "intermediate_size": 9216,
            "num_layers": 26,
            "num_heads": 8,
            "num_kv_heads": 4,
            "head_dim": 256,
            "vocab_size": 257216,
        },
        "max_text_tokens": 48,
    }
    policy = {
        "backbone": backbone,
        # ~313M parameters: the "few-hundred-million" action expert of GigaBrain / pi0.
        "action_expert": {"num_layers": 18, "num_heads": 16, "head_dim": 64},
        "cot": {"gru_hidden": 512, "max_subgoal_tokens": 32},
        "z_mlp_hidden": 2304,
        "dtype": "bfloat16",
    }
    world_model = {
        "image_size": 224,
        # The Wan2.2 VAE (Wan-AI/Wan2.2-TI2V-5B-Diffusers, vae/): 16x spatial, 48 channels.
        "vae": {
            "kind": "AutoencoderKLWan",
            "latent_channels": 48,
            "block_out_channels": [160, 320, 640, 640],
            "layers_per_block": 2,
            "wan_patch_size": 2,
            "decoder_base_dim": 256,
        },
        # UMT5-XXL encoder, as Wan uses.
        "text_encoder": {
            "family": "umt5",
            "d_model": 4096,
            "d_ff": 10240,
            "d_kv": 64,
            "num_layers": 24,
            "num_heads": 64,
            "vocab_size": 256384,
            "max_tokens": 64,
        },
        # Wan2.2-TI2V-5B transformer: dim 3072, 30 layers, 24 heads, ffn 14336.
        "transformer": {
            "num_layers": 30,
            "num_heads": 24,
            "head_dim": 128,
            "ffn_dim": 14336,
            "freq_dim": 256,
        },
        "vlm": backbone,
        "dtype": "bfloat16",
    }
    return {"policy": policy, "world_model": world_model}


PRESETS: dict[str, Callable[[], PresetDicts]] = {"tiny": _tiny, "small": _small, "paper": _paper}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_dicts(name: str) -> PresetDicts:
    """The raw dicts of a preset (settings.ModelsConfig merges overrides into them)."""
    if name not in PRESETS:
        raise UnknownNameError("model preset", name, PRESETS)
    return PRESETS[name]()


def preset(name: str, **overrides: Any) -> ModelsConfig:
    """A validated ``ModelsConfig`` of a preset; keyword overrides as in YAML (policy=..., ...)."""
    preset_dicts(name)  # UnknownNameError with "did you mean" before pydantic wraps it
    return ModelsConfig.model_validate({"preset": name, **overrides})


def policy_config(name: str = "tiny", **overrides: Any) -> PolicyConfig:
    """The policy settings of a preset (``z_dim`` filled in from its world model)."""
    return preset(name, **({"policy": overrides} if overrides else {})).policy


def world_model_config(name: str = "tiny", **overrides: Any) -> WorldModelConfig:
    return preset(name, **({"world_model": overrides} if overrides else {})).world_model
