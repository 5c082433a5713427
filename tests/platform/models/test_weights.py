"""Loading pretrained weights from local folders (tiny stand-ins; nothing touches a hub)."""

from __future__ import annotations

import pytest
import torch

from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.presets import preset


def test_backbone_and_expert_from_local_folders(tmp_path, tiny, norm_stats):
    source = build_policy(tiny, norm_stats)
    source.backbone.model.save_pretrained(tmp_path / "paligemma")
    source.expert.dit.save_pretrained(tmp_path / "expert")
    cfg = preset(
        "tiny",
        policy={
            "backbone": {"weights": str(tmp_path / "paligemma")},
            "action_expert": {"weights": str(tmp_path / "expert")},
        },
    )
    torch.manual_seed(123)  # a different random init, overwritten by the folders
    loaded = build_policy(cfg, norm_stats)
    for part in ("backbone", "expert"):
        a, b = getattr(source, part).state_dict(), getattr(loaded, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part


def test_wan_transformer_is_widened_from_a_narrower_checkpoint(tmp_path, norm_stats):
    """A stand-in 'pretrained Wan' with only latent channels loads into the wider world-model DiT:
    old channels copied (per 2x2 patch block for proj_out), new channels zero."""
    from diffusers import WanTransformer3DModel

    cfg = preset("tiny").world_model
    t = cfg.transformer
    c = cfg.vae.latent_channels
    pretrained = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=t.num_heads,
        attention_head_dim=t.head_dim,
        in_channels=c,
        out_channels=c,
        text_dim=cfg.text_encoder.d_model,
        freq_dim=t.freq_dim,
        ffn_dim=t.ffn_dim,
        num_layers=t.num_layers,
    )
    with torch.no_grad():
        pretrained.proj_out.bias.normal_()
    pretrained.save_pretrained(tmp_path / "wan")
    wm = build_world_model(
        preset("tiny", world_model={"transformer": {"weights": str(tmp_path / "wan")}}), norm_stats
    )
    dit = wm.transformer
    pe_old, pe_new = pretrained.patch_embedding.weight, dit.patch_embedding.weight
    assert torch.equal(pe_new[:, :c], pe_old) and (pe_new[:, c:] == 0).all()
    s = cfg.state_channels
    w_new = dit.proj_out.weight.reshape(4, s, -1)
    assert torch.equal(w_new[:, :c], pretrained.proj_out.weight.reshape(4, c, -1))
    assert (w_new[:, c:] == 0).all()
    b_new = dit.proj_out.bias.reshape(4, s)
    assert torch.equal(b_new[:, :c], pretrained.proj_out.bias.reshape(4, c))
    assert torch.equal(
        dit.blocks[0].ffn.net[0].proj.weight, pretrained.blocks[0].ffn.net[0].proj.weight
    )
    # the widened DiT computes the pretrained latent prediction (new inputs are ignored)
    x = torch.randn(2, s + cfg.cond_channels, 4, 8, 8)
    text = torch.randn(2, 5, cfg.text_encoder.d_model)
    ts = torch.tensor([500.0, 100.0])
    with torch.no_grad():
        ref = pretrained(x[:, :c], ts, text, return_dict=False)[0]
        got = dit(x, ts, text, return_dict=False)[0]
    torch.testing.assert_close(got[:, :c], ref, atol=1e-5, rtol=1e-4)


def test_vae_and_text_encoder_from_local_folders(tmp_path, norm_stats):
    source = build_world_model("tiny", norm_stats)
    source.frames.vae.save_pretrained(tmp_path / "vae")
    source.text_encoder.save_pretrained(tmp_path / "t5")
    cfg = preset(
        "tiny",
        world_model={
            "vae": {"weights": str(tmp_path / "vae")},
            "text_encoder": {"weights": str(tmp_path / "t5")},
        },
    )
    torch.manual_seed(99)
    loaded = build_world_model(cfg, norm_stats)
    for part in ("frames", "text_encoder"):
        a, b = getattr(source, part).state_dict(), getattr(loaded, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    wrong = preset(
        "tiny", world_model={"vae": {"weights": str(tmp_path / "vae"), "latent_channels": 8}}
    )
    with pytest.raises(ValueError, match="latent_channels: 4"):
        build_world_model(wrong, norm_stats)


def test_missing_folders_never_download(tmp_path, norm_stats):
    cfg = preset("tiny", policy={"backbone": {"weights": "google/paligemma2-3b-pt-224"}})
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_policy(cfg, norm_stats)
    cfg = preset("tiny", world_model={"transformer": {"weights": str(tmp_path / "none")}})
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_world_model(cfg, norm_stats)
    (tmp_path / "empty").mkdir()
    cfg = preset("tiny", world_model={"transformer": {"weights": str(tmp_path / "empty")}})
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors"):
        build_world_model(cfg, norm_stats)
