"""World-model shapes for every value predictor, 1 to 3 cameras and mixed embodiments."""

from __future__ import annotations

import pytest
import torch
from conftest import OFFSETS, make_batch

from ramp.platform.models.build import build_world_model
from ramp.platform.models.frames import patchify, tile, untile
from ramp.platform.models.presets import preset
from ramp.platform.models.world_model import VALUE_TARGET


@pytest.fixture(scope="module")
def models(norm_stats):
    torch.manual_seed(0)
    return {
        vp: build_world_model(preset("tiny", world_model={"value_predictor": vp}), norm_stats)
        for vp in ("state_value", "value_only", "vlm")
    }


@pytest.mark.parametrize("cameras", [("front",), ("front", "wrist"), ("front", "wrist", "top")])
def test_state_value_shapes(models, cameras):
    wm = models["state_value"]
    cfg = wm.cfg
    batch = make_batch(3, ("arm", "bimanual"), cameras, seed=len(cameras))
    terms = wm.loss_terms(batch)
    assert set(terms) == {"latent", "value", "proprio", "loss"}
    for t in terms.values():
        assert t.shape == (3,) and t.dtype == torch.float32 and torch.isfinite(t).all()
    terms["loss"].mean().backward()
    assert all(p.grad is None for p in wm.frames.parameters())  # the VAE is frozen
    assert any(p.grad is not None for p in wm.transformer.parameters())
    wm.zero_grad(set_to_none=True)

    pred = wm.predict(batch, generator=torch.Generator().manual_seed(0))
    cells = cfg.image_size // cfg.vae.compression // 2
    n_tokens = OFFSETS * cells * cells * len(cameras)
    assert pred.tokens.shape == (3, n_tokens, cfg.token_dim)
    assert pred.value.shape == (3,) and pred.value.dtype == torch.float32
    assert pred.proprio.shape == (3, OFFSETS, cfg.max_state_dim)
    assert pred.proprio_mask.sum(-1).tolist() == [9, 14, 9]
    assert (pred.proprio[~pred.proprio_mask[:, None].expand_as(pred.proprio)] == 0).all()


def test_value_only_and_vlm_shapes(models):
    batch = make_batch(2, ("arm", "bimanual"), ("front", "wrist"))
    vo = models["value_only"]
    terms = vo.loss_terms(batch)
    assert set(terms) == {"value", "loss"} and terms["loss"].shape == (2,)
    pred = vo.predict(batch)
    assert pred.value.shape == (2,) and pred.proprio is None
    assert pred.tokens.shape[-1] == vo.cfg.token_dim == 4
    vlm = models["vlm"]
    terms = vlm.loss_terms(batch)
    assert terms["loss"].shape == (2,)
    terms["loss"].mean().backward()
    pred = vlm.predict(batch)
    assert pred.tokens is None and pred.value.shape == (2,)


def test_denoise_steps_and_determinism(models):
    wm = models["state_value"]
    batch = make_batch(2, ("arm",))
    g = torch.Generator
    one = wm.predict(batch, generator=g().manual_seed(0))
    again = wm.predict(batch, generator=g().manual_seed(0))
    four = wm.predict(batch, denoise_steps=4, generator=g().manual_seed(0))
    assert torch.equal(one.tokens, again.tokens)
    assert four.tokens.shape == one.tokens.shape and not torch.equal(four.tokens, one.tokens)


def test_value_target_required_and_nan_masked(models):
    wm = models["state_value"]
    batch = make_batch(2, ("arm",))
    batch[VALUE_TARGET] = torch.tensor([float("nan"), -0.5])
    terms = wm.loss_terms(batch)
    assert terms["value"][0] == 0 and terms["value"][1] > 0 and torch.isfinite(terms["loss"]).all()
    del batch[VALUE_TARGET]
    with pytest.raises(KeyError, match="value_target"):
        wm.loss(batch)


def test_psi_tiling_round_trip():
    v = torch.randn(2, 4, 5)
    planes = tile(v, 6, 8)
    assert planes.shape == (2, 5, 4, 6, 8)
    torch.testing.assert_close(untile(planes), v)
    s = torch.arange(2 * 3 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 3, 4, 6, 8)
    tokens = patchify(s)
    assert tokens.shape == (2, 4 * 3 * 4, 12)
    # the first token is the top-left 2x2 patch of frame 0, channel-major
    torch.testing.assert_close(tokens[0, 0, :4], s[0, 0, 0, :2, :2].reshape(-1))


def test_token_pool_shortens_the_policy_context(norm_stats):
    wm = build_world_model(preset("tiny", world_model={"token_pool": 2}), norm_stats)
    batch = make_batch(2, ("arm",), ("front", "wrist"))
    pred = wm.predict(batch)
    assert pred.tokens.shape == (2, OFFSETS * 2 * 2 * 2, wm.cfg.token_dim)
    with pytest.raises(ValueError, match="token_pool"):
        preset("tiny", world_model={"token_pool": 3})


def test_time_input_value_scale_and_zero_noise_readout(norm_stats):
    """time_input conditions on the step (and says so when it is missing); value_scale keeps the
    value's units at the readout; predict_noise 'zero' reads the same value every call."""
    torch.manual_seed(0)
    wm = build_world_model(
        preset(
            "tiny",
            world_model={"time_input": True, "value_scale": 2.0, "predict_noise": "zero"},
        ),
        norm_stats,
    )
    assert wm.cfg.cond_channels == preset("tiny").world_model.cond_channels + 1
    batch = make_batch(2, ("arm",))
    with pytest.raises(KeyError, match="needs 'step'"):
        wm.loss_terms({k: v for k, v in batch.items() if k != "step"})
    batch["step"] = torch.tensor([0, 90])
    assert torch.isfinite(wm.loss_terms(batch)["loss"]).all()
    a = wm.predict(batch, generator=torch.Generator().manual_seed(0))
    b = wm.predict(batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.value, b.value) and torch.equal(a.tokens, b.tokens)
    late = dict(batch, step=torch.tensor([400, 490]))
    assert not torch.equal(wm.predict(late).value, a.value)  # the step reaches the prediction
    plane = wm._value_plane(torch.tensor([-1.0, -0.5, 0.0]))
    assert plane.tolist() == [-2.0, 0.0, 2.0]
    assert wm._value_of(plane).tolist() == [-1.0, -0.5, 0.0]


def test_time_baseline_value_is_added_back(norm_stats):
    """value_baseline 'time': the network's value plane is the residual over b(task, t), and the
    prediction adds b back (unknown tasks take the all-task row); no table is an error."""
    torch.manual_seed(0)
    table = {"*": [-0.5, -0.4, -0.3], "a": [-0.9, -0.8, -0.7]}
    wm = build_world_model(
        preset(
            "tiny",
            world_model={
                "value_baseline": "time",
                "value_baseline_table": table,
                "predict_noise": "zero",
            },
        ),
        norm_stats,
    )
    batch = make_batch(2, ("arm",))
    batch["step"] = torch.tensor([1, 7])  # 7 is past the table: its last entry
    base_a = wm._baseline({**batch, "task": ["a", "a"]}, 2)
    assert base_a.tolist() == pytest.approx([-0.8, -0.7])
    assert wm._baseline({**batch, "task": ["zzz", "a"]}, 2).tolist() == pytest.approx([-0.4, -0.7])
    plain = wm.predict({**batch, "task": ["zzz", "zzz"]}).value
    shifted = wm.predict({**batch, "task": ["a", "a"]}).value
    assert (shifted - plain).tolist() == pytest.approx([-0.4, -0.4], abs=1e-5)
    batch["value_target"] = base_a.clone()
    assert torch.isfinite(wm.loss_terms({**batch, "task": ["a", "a"]})["value"]).all()
    wm.cfg.value_baseline_table = None
    with pytest.raises(ValueError, match="value_baseline_table"):
        wm.predict(batch)


def test_value_head_readout_is_deterministic_and_learns(norm_stats):
    """value_readout 'head': the value comes from the MLP beside the DiT (the same value from any
    noise draw), it trains by MSE on the same target next to the DiT's value plane, and a few
    steps on one batch move it towards the target; 'vlm' has no DiT to sit beside."""
    torch.manual_seed(0)
    wm = build_world_model(
        preset("tiny", world_model={"time_input": True, "value_readout": "head"}), norm_stats
    )
    batch = make_batch(4, ("arm", "bimanual"))
    batch["step"] = torch.tensor([0, 10, 20, 30])
    batch[VALUE_TARGET] = torch.tensor([-0.9, -0.6, -0.3, float("nan")])
    terms = wm.loss_terms(batch)
    assert {"latent", "value", "proprio", "value_head", "loss"} <= set(terms)
    assert terms["value_head"][3] == 0 and (terms["value_head"][:3] > 0).all()
    a = wm.predict(batch, generator=torch.Generator().manual_seed(0))
    b = wm.predict(batch, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.value, b.value) and not torch.equal(a.tokens, b.tokens)
    torch.testing.assert_close(wm.value(batch), a.value)  # the labeller's path, no DiT pass

    opt = torch.optim.Adam(wm.value_head.parameters(), lr=1e-2)
    before = wm.loss_terms(batch)["value_head"][:3].mean().item()
    for _ in range(30):
        opt.zero_grad()
        wm.loss_terms(batch)["value_head"].mean().backward()
        opt.step()
    after = wm.loss_terms(batch)["value_head"][:3].mean().item()
    assert after < 0.1 * before
    torch.testing.assert_close(
        wm.predict(batch).value[:3], batch[VALUE_TARGET][:3], atol=0.1, rtol=0
    )
    with pytest.raises(ValueError, match="value_readout"):
        preset("tiny", world_model={"value_predictor": "vlm", "value_readout": "head"})
