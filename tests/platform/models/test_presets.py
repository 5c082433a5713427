"""Presets and settings: lookup, overrides, sizes (tiny, small; the paper on the meta device)."""

from __future__ import annotations

import pytest
import torch

from ramp.platform.config import ConfigError, UnknownNameError, load_config
from ramp.platform.models.build import build_policy, build_world_model, parameter_counts
from ramp.platform.models.presets import preset, preset_names
from ramp.platform.models.settings import ModelsConfig

PALIGEMMA2_3B = 3.0e9  # published: "PaliGemma 2 3B"
WAN22_TI2V_5B = 5.0e9  # published: Wan2.2-TI2V-5B transformer


def test_registry_and_did_you_mean():
    assert preset_names() == ["paper", "small", "tiny"]
    with pytest.raises(UnknownNameError, match="did you mean 'small'"):
        preset("smal")


def test_overrides_merge_key_by_key():
    cfg = preset("small", policy={"action_expert": {"num_layers": 9}})
    assert cfg.policy.action_expert.num_layers == 9
    assert cfg.policy.action_expert.num_heads == preset("small").policy.action_expert.num_heads
    assert cfg.policy.backbone.vision.image_size == 112
    assert cfg.policy.z_dim == cfg.world_model.token_dim


def test_yaml_section_errors_say_what_to_do(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  preset: tiny\n  policy:\n    action_expert:\n      num_layer: 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 5" in str(err.value) and "did you mean 'num_layers'" in str(err.value)
    path.write_text("models:\n  preset: papr\n")
    with pytest.raises(ConfigError, match="did you mean 'paper'"):
        load_config(path)
    assert load_config(None).models.preset == "tiny"


def test_z_dim_and_sampling_consistency():
    with pytest.raises(ValueError, match="token width"):
        ModelsConfig(preset="tiny", policy={"z_dim": 7})
    cfg = preset("tiny")
    cfg.check_sampling(50, [12, 24, 36, 48])
    with pytest.raises(ValueError, match=r"sampling\.chunk_size"):
        cfg.check_sampling(16, [12, 24, 36, 48])
    with pytest.raises(ValueError, match="future_offsets"):
        cfg.check_sampling(50, [10, 20])
    with pytest.raises(ValueError, match="even number of latent cells"):
        preset("tiny", world_model={"image_size": 72})


@pytest.mark.parametrize("name, low, high", [("tiny", 0.5e6, 5e6), ("small", 20e6, 50e6)])
def test_cpu_preset_sizes(name, low, high):
    sizes = [
        parameter_counts(build_policy(name, on_meta=True))["total"],
        parameter_counts(build_world_model(name, on_meta=True))["total"],
    ]
    for n in sizes:
        assert low <= n <= high, sizes
    image = preset(name).policy.backbone.vision.image_size
    assert (64 <= image <= 112) if name == "tiny" else True


def test_paper_preset_on_meta_device_matches_published_sizes():
    policy = build_policy("paper", on_meta=True)
    counts = parameter_counts(policy)
    assert abs(counts["backbone"] - PALIGEMMA2_3B) / PALIGEMMA2_3B < 0.10, counts
    assert 100e6 <= counts["expert"] <= 900e6, counts  # "a few hundred million"
    assert next(policy.parameters()).device.type == "meta"
    assert policy.backbone.model.config.text_config.vocab_size == 257216
    wm = build_world_model("paper", on_meta=True)
    transformer = parameter_counts(wm)["transformer"]
    assert abs(transformer - WAN22_TI2V_5B) / WAN22_TI2V_5B < 0.10, transformer
    assert wm.transformer.config.num_layers == 30 and wm.transformer.config.ffn_dim == 14336
    assert wm.transformer.patch_embedding.weight.dtype == torch.bfloat16
    assert wm.transformer.scale_shift_table.dtype == torch.float32  # Wan keeps it in float32
