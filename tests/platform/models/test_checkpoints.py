"""Checkpoints: bit-exact save/load, versions, layout, and the missing-statistics error."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import make_batch

from ramp.platform.episodes.fs import StoreFS
from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.checkpoints import (
    CheckpointError,
    load_checkpoint,
    publish_checkpoint,
    save_checkpoint,
)
from ramp.platform.models.normalization import MissingNormStatsError
from ramp.platform.models.presets import preset
from ramp.platform.rl.contract import Conditioning


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_policy_round_trip_is_bit_exact(tmp_path, tiny, norm_stats):
    policy = build_policy(tiny, norm_stats)
    with torch.no_grad():  # make the weights differ from a fresh init
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    version, rel = publish_checkpoint(policy, tmp_path, round_=3)
    assert re.fullmatch(r"policy-r3-[0-9a-f]{8}", version)
    assert rel == f"checkpoints/policy/{version}"
    folder = tmp_path / rel
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "norm_stats.json",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 1 and config["version"] == version
    assert config["kind"] == "policy" and "lm_head.weight" in str(config["aliases"])

    loaded = load_checkpoint(tmp_path, rel)
    _same_state(policy, loaded)
    assert loaded.norm_stats == norm_stats and loaded.checkpoint_version == version
    batch = make_batch(2, ("arm", "bimanual"))
    g = torch.Generator
    with torch.no_grad():
        a = policy.loss_terms(batch, Conditioning.unconditional(2), generator=g().manual_seed(0))
        b = loaded.loss_terms(batch, Conditioning.unconditional(2), generator=g().manual_seed(0))
    assert torch.equal(a["loss"], b["loss"])
    assert torch.equal(
        policy.infer(batch, generator=g().manual_seed(1)).actions,
        loaded.infer(batch, generator=g().manual_seed(1)).actions,
    )
    # same content -> same version
    assert publish_checkpoint(loaded, tmp_path, round_=3)[0] == version


def test_world_model_round_trip_and_store_fs(tmp_path, tiny, norm_stats):
    wm = build_world_model(tiny, norm_stats)
    fs = StoreFS.from_root(tmp_path)
    save_checkpoint(wm, fs, "checkpoints/world-model/x")
    loaded = load_checkpoint(fs, "checkpoints/world-model/x", kind="world-model")
    _same_state(wm, loaded)
    batch = make_batch(2, ("arm",))
    g = torch.Generator
    assert torch.equal(
        wm.predict(batch, generator=g().manual_seed(0)).tokens,
        loaded.predict(batch, generator=g().manual_seed(0)).tokens,
    )
    with pytest.raises(CheckpointError, match="expected policy"):
        load_checkpoint(fs, "checkpoints/world-model/x", kind="policy")


def test_bfloat16_round_trip(tmp_path, norm_stats):
    policy = build_policy(preset("tiny", policy={"dtype": "bfloat16"}), norm_stats)
    save_checkpoint(policy, tmp_path)
    loaded = load_checkpoint(tmp_path)
    assert loaded.expert.dit.proj_in.weight.dtype == torch.bfloat16
    _same_state(policy, loaded)


def test_missing_norm_stats_is_a_hard_error(tmp_path, tiny, norm_stats):
    bare = build_policy(tiny)
    with pytest.raises(MissingNormStatsError, match="compute_norm_stats"):
        save_checkpoint(bare, tmp_path)
    batch = make_batch(2, ("arm",))
    with pytest.raises(MissingNormStatsError, match="compute_norm_stats"):
        bare.loss(batch, Conditioning.unconditional(2))
    only_arm = norm_stats.model_copy(update={"embodiments": {"arm": norm_stats.embodiments["arm"]}})
    bare.set_norm_stats(only_arm)
    with pytest.raises(MissingNormStatsError, match=r"\['bimanual'\]"):
        bare.infer(make_batch(2, ("arm", "bimanual")))

    save_checkpoint(bare, tmp_path / "ck")
    (tmp_path / "ck" / "norm_stats.json").unlink()
    with pytest.raises(MissingNormStatsError, match=r"no norm_stats\.json"):
        load_checkpoint(tmp_path / "ck")


def test_newer_format_is_refused(tmp_path, tiny, norm_stats):
    save_checkpoint(build_policy(tiny, norm_stats), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="upgrade ramp"):
        load_checkpoint(tmp_path)


def test_weight_paths_are_not_followed_on_load(tmp_path, tiny, norm_stats):
    """A checkpoint holds every weight: the pretrained folders its settings named are cleared."""
    policy = build_policy(tiny, norm_stats)
    policy.backbone.model.save_pretrained(tmp_path / "pg")
    cfg = tiny.policy.model_copy(deep=True)
    cfg.backbone.weights = str(tmp_path / "pg")
    from ramp.platform.models.policy import RampPolicy

    from_dir = RampPolicy(cfg, norm_stats)
    save_checkpoint(from_dir, tmp_path / "ck")
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert saved["settings"]["backbone"]["weights"] is None
    _same_state(from_dir, load_checkpoint(tmp_path / "ck"))
