"""Masking: a masked input is never read; the indicator, when present, steers the actions."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch, norm_stats_for

from ramp.platform.models.build import build_policy
from ramp.platform.models.presets import preset
from ramp.platform.rl.contract import Conditioning


@pytest.fixture(scope="module")
def policy(tiny, norm_stats):
    torch.manual_seed(0)
    return build_policy(tiny, norm_stats).eval()


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(11)


def _cond(z, z_mask, value, indicator, indicator_mask) -> Conditioning:
    return Conditioning(z, z_mask, value, indicator, indicator_mask)


def test_masked_z_and_value_are_never_read(policy):
    b = 3
    batch = make_batch(b, ("arm", "bimanual"), ("front", "wrist"))
    off = torch.zeros(b, dtype=torch.bool)
    on = torch.ones(b, dtype=torch.bool)
    ind = torch.ones(b)
    z1 = torch.randn(b, 16, policy.cfg.z_dim)
    z2 = torch.full_like(z1, float("nan"))  # even NaN must not leak
    c1 = _cond(z1, off, -torch.rand(b), ind, on)
    c2 = _cond(z2, off, torch.full((b,), float("nan")), ind, on)
    with torch.no_grad():
        l1 = policy.loss_terms(batch, c1, generator=_gen())
        l2 = policy.loss_terms(batch, c2, generator=_gen())
    for key in ("flow", "loss", "action_tokens"):
        assert torch.equal(l1[key], l2[key]), key
    a1 = policy.sample_actions(batch, c1, generator=_gen())
    a2 = policy.sample_actions(batch, c2, generator=_gen())
    assert torch.equal(a1, a2)
    # and the present z does matter
    a3 = policy.sample_actions(batch, _cond(z1, on, c1.value, ind, on), generator=_gen())
    assert not torch.equal(a1, a3)


def test_masking_is_per_sample(policy):
    b = 4
    batch = make_batch(b, ("arm",))
    mask = torch.tensor([True, False, True, False])
    z1 = torch.randn(b, 8, policy.cfg.z_dim)
    z2 = z1.clone()
    z2[~mask] = 100.0  # change only the masked samples' z
    z3 = z1.clone()
    z3[mask] = -3.0  # change only the present samples' z
    value = -torch.rand(b)
    args = (value, torch.zeros(b), torch.zeros(b, dtype=torch.bool))
    with torch.no_grad():
        ref = policy.loss_terms(batch, _cond(z1, mask, *args), generator=_gen())["flow"]
        same = policy.loss_terms(batch, _cond(z2, mask, *args), generator=_gen())["flow"]
        moved = policy.loss_terms(batch, _cond(z3, mask, *args), generator=_gen())["flow"]
    assert torch.equal(ref, same)
    assert torch.equal(ref[~mask], moved[~mask]) and not torch.equal(ref[mask], moved[mask])


def test_masked_indicator_is_never_read(policy):
    b = 2
    batch = make_batch(b, ("arm",))
    off = torch.zeros(b, dtype=torch.bool)
    c0 = _cond(None, off, torch.zeros(b), torch.zeros(b), off)
    c1 = _cond(None, off, torch.zeros(b), torch.ones(b), off)
    a0 = policy.sample_actions(batch, c0, generator=_gen())
    a1 = policy.sample_actions(batch, c1, generator=_gen())
    assert torch.equal(a0, a1)


def test_masked_z_matches_absent_z(policy):
    """Training with z masked is the efficient mode (no z tokens at all), up to float rounding."""
    b = 2
    batch = make_batch(b, ("arm", "bimanual"))
    off = torch.zeros(b, dtype=torch.bool)
    masked = _cond(torch.randn(b, 20, policy.cfg.z_dim), off, torch.zeros(b), torch.ones(b), ~off)
    absent = _cond(None, off, torch.zeros(b), torch.ones(b), ~off)
    a = policy.sample_actions(batch, masked, generator=_gen())
    e = policy.sample_actions(batch, absent, generator=_gen())
    torch.testing.assert_close(a, e, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_indicator_decides_the_action():
    """Trained where I = 1 means 'move up' and I = 0 'move down' on identical observations, the
    policy acts differently for I = 1 and I = 0 (and inference fixes I = 1)."""
    torch.manual_seed(0)
    cfg = preset(
        "tiny",
        policy={"cot": {"subgoal_weight": 0, "action_token_weight": 0, "trajectory_weight": 0}},
    )
    policy = build_policy(cfg, norm_stats_for())
    b = 4
    batch = make_batch(b, ("arm",), seed=5, with_subgoal=False, with_trajectory=False)
    for key in ("images", "state", "instruction"):  # identical observations
        v = batch[key]
        batch[key] = (
            {c: x[:1].expand_as(x).clone() for c, x in v.items()}
            if key == "images"
            else ([v[0]] * b if key == "instruction" else v[:1].expand_as(v).clone())
        )
    indicator = (torch.arange(b) % 2).float()
    batch["actions"] = (
        torch.where(indicator[:, None, None] > 0, 1.0, -1.0).expand(-1, 50, 7).clone()
    )
    batch["action_mask"] = torch.ones(b, 50, dtype=torch.bool)
    on = torch.ones(b, dtype=torch.bool)
    cond = _cond(None, ~on, torch.zeros(b), indicator, on)
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    for _ in range(100):
        loss = policy.loss(batch, cond).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    obs = {k: batch[k] for k in ("images", "state", "instruction", "embodiment")}
    acts = {}
    for i in (0.0, 1.0):
        c = _cond(None, ~on, torch.zeros(b), torch.full((b,), i), on)
        acts[i] = policy.sample_actions(obs, c, generator=_gen())[:, :, :7]
    # targets are +-0.68 after normalisation (the statistics span about +-1.47)
    assert acts[1.0].mean() > 0.3 and acts[0.0].mean() < -0.3
    # inference: I fixed to 1
    out = policy.infer(obs, generator=_gen())
    assert out.per_sample()[0].mean() > 0
