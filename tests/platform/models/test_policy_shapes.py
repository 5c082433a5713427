"""Policy shapes and dtypes for every input combination, and the policy-loss contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CHUNK, make_batch, make_sample

from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.padding import collate_padded
from ramp.platform.models.policy import RampPolicy
from ramp.platform.rl.contract import WM_TOKENS, Conditioning, PolicyLoss
from ramp.platform.rl.objectives import build_objective
from ramp.platform.rl.settings import ObjectiveConfig


@pytest.fixture(scope="module")
def policy(tiny, norm_stats) -> RampPolicy:
    torch.manual_seed(0)
    return build_policy(tiny, norm_stats)


@pytest.fixture(scope="module")
def world_model(tiny, norm_stats):
    torch.manual_seed(1)
    return build_world_model(tiny, norm_stats)


def conditioning(kind: str, b: int, z_dim: int) -> Conditioning:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(b, 12, z_dim, generator=g)
    value = -torch.rand(b, generator=g)
    ones, zeros = torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)
    mixed = torch.arange(b) % 2 == 0
    indicator = (torch.arange(b) % 3 == 0).float()
    return {
        "none": Conditioning.unconditional(b),
        "z_value": Conditioning(z, ones, value, indicator, zeros),
        "z_partly_masked": Conditioning(z, mixed, value, indicator, zeros),
        "indicator": Conditioning(None, zeros, value, indicator, ones),
        "all": Conditioning(z, ones, value, indicator, ones),
        "all_mixed": Conditioning(z, mixed, value, indicator, ~mixed),
    }[kind]


def test_policy_honours_the_contract(policy):
    assert isinstance(policy, PolicyLoss)


@pytest.mark.parametrize("cameras", [("front",), ("front", "wrist"), ("front", "wrist", "top")])
@pytest.mark.parametrize(
    "cond_kind", ["none", "z_value", "z_partly_masked", "indicator", "all", "all_mixed"]
)
def test_loss_shapes_two_embodiments(policy, cameras, cond_kind):
    batch = make_batch(4, ("arm", "bimanual"), cameras, seed=len(cameras))
    cond = conditioning(cond_kind, 4, policy.cfg.z_dim)
    terms = policy.loss_terms(batch, cond)
    for name, t in terms.items():
        assert t.shape == (4,), name
    loss = policy.loss(batch, cond)
    assert loss.dtype == torch.float32 and loss.shape == (4,)
    assert torch.isfinite(loss).all()
    loss.mean().backward()
    grads = [p.grad for p in policy.expert.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    policy.zero_grad(set_to_none=True)


def test_labels_missing_are_masked(policy):
    batch = make_batch(4, ("arm",), with_subgoal=False, with_trajectory=False)
    terms = policy.loss_terms(batch, Conditioning.unconditional(4))
    assert not terms["subgoal_present"].any() and not terms["trajectory_present"].any()
    expected = policy.cfg.cot.flow_weight * terms["flow"] + (
        policy.cfg.cot.action_token_weight * terms["action_tokens"]
    )
    torch.testing.assert_close(terms["loss"], expected)
    for key in ("subgoal", "trajectory_2d"):
        del batch[key]
    terms = policy.loss_terms(batch, Conditioning.unconditional(4))
    assert not terms["subgoal_present"].any() and "trajectory" not in terms


def test_cot_terms_present_when_labelled(policy):
    batch = make_batch(2, ("arm",), with_subgoal=True, with_trajectory=True)
    terms = policy.loss_terms(batch, Conditioning.unconditional(2))
    assert terms["subgoal_present"].all() and terms["trajectory_present"].all()
    assert (terms["subgoal"] > 0).all() and (terms["action_tokens"] > 0).all()


@pytest.mark.parametrize("cameras", [("front",), ("front", "wrist", "top")])
def test_infer_efficient_shapes(policy, cameras):
    batch = make_batch(3, ("arm", "bimanual"), cameras, labels=False)
    out = policy.infer(batch, generator=torch.Generator().manual_seed(0))
    assert out.actions.shape == (3, CHUNK, 32) and out.actions.dtype == torch.float32
    assert out.action_dim_mask.sum(-1).tolist() == [7, 14, 7]
    per = out.per_sample()
    assert [a.shape for a in per] == [(CHUNK, 7), (CHUNK, 14), (CHUNK, 7)]
    assert torch.isfinite(out.actions).all()
    assert (out.actions[~out.action_dim_mask[:, None, :].expand_as(out.actions)] == 0).all()


def test_infer_standard_uses_the_world_model(policy, world_model):
    batch = make_batch(2, ("arm", "bimanual"), ("front", "wrist"), labels=False)
    g = torch.Generator
    eff = policy.infer(batch, "efficient", generator=g().manual_seed(0))
    std = policy.infer(batch, "standard", world_model=world_model, generator=g().manual_seed(0))
    assert std.actions.shape == eff.actions.shape and std.mode == "standard"
    assert not torch.equal(std.actions, eff.actions)
    with pytest.raises(ValueError, match="world_model"):
        policy.infer(batch, "standard")
    with pytest.raises(ValueError, match="unknown mode"):
        policy.infer(batch, "fast")


def test_classifier_free_guidance(policy):
    batch = make_batch(2, ("arm",), labels=False)
    g = torch.Generator
    plain = policy.infer(batch, generator=g().manual_seed(0))
    beta1 = policy.infer(batch, cfg_beta=1.0, generator=g().manual_seed(0))
    guided = policy.infer(batch, cfg_beta=2.0, generator=g().manual_seed(0))
    assert torch.equal(plain.actions, beta1.actions)
    assert guided.actions.shape == plain.actions.shape
    assert not torch.equal(guided.actions, plain.actions)


def test_numpy_batches_work(policy):
    rng = np.random.default_rng(0)
    samples = [make_sample(rng, "arm", ("front",)) for _ in range(2)]
    batch = collate_padded(samples, 32, 32)  # numpy arrays, lists of strings
    assert policy.loss(batch, Conditioning.unconditional(2)).shape == (2,)


@pytest.mark.parametrize("name", ["ramp", "recap", "awr", "bc"])
def test_objectives_drive_the_policy_unchanged(policy, world_model, name):
    batch = make_batch(4, ("arm", "bimanual"), ("front",))
    batch[WM_TOKENS] = world_model.predict(batch).tokens
    objective = build_objective(ObjectiveConfig(name=name), "continual_training")
    out = objective(policy, batch, torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None for p in policy.parameters())
    policy.zero_grad(set_to_none=True)


def test_errors_say_what_to_do(policy):
    batch = make_batch(2, ("arm",), ("front",))
    batch["actions"] = batch["actions"][:, :10]
    with pytest.raises(ValueError, match="chunk_size"):
        policy.loss(batch, Conditioning.unconditional(2))
    batch = make_batch(2, ("arm",), ("a", "b", "c", "d"))
    with pytest.raises(ValueError, match="max_cameras"):
        policy.loss(batch, Conditioning.unconditional(2))
    batch = make_batch(2, ("arm",))
    cond = Conditioning(
        torch.zeros(2, 3, 5),
        torch.ones(2, dtype=torch.bool),
        *[torch.zeros(2)] * 2,
        torch.zeros(2, dtype=torch.bool),
    )
    with pytest.raises(ValueError, match="z_dim"):
        policy.loss(batch, cond)


def test_state_to_expert_hands_the_embedded_state_to_the_action_expert(tiny, norm_stats):
    """state_to_expert: the expert's context is the backbone's output plus the state token as
    embedded (so the state reaches the actions even where the backbone washes it out); off, the
    context is the backbone's output alone. Loss and sampling run either way."""
    from ramp.platform.models.presets import preset
    from ramp.platform.rl.contract import inference_conditioning

    torch.manual_seed(0)
    pol = build_policy(preset("tiny", policy={"state_to_expert": True}), norm_stats)
    batch = make_batch(2, ("arm", "bimanual"))
    cond = Conditioning.unconditional(2)
    enc = pol._encode(batch, cond, None)
    ctx, valid = enc.expert_context()
    n = enc.n_prefix + enc.n_query
    assert ctx.shape[1] == n + 1 and valid[:, -1].all()
    torch.testing.assert_close(ctx[:, :n], enc.hidden[:, :n])
    idx = pol.normalizer.indices(list(batch["embodiment"]))
    state = pol.normalizer.normalize("state", batch["state"], idx)
    dims = pol.normalizer.dims("state", idx).to(state.dtype)
    expected = pol.conditioning.state_proj(torch.cat([state * dims, dims], -1))
    torch.testing.assert_close(ctx[:, -1], expected)
    # the state steers the actions through that token: moving it moves the chunk
    g = torch.Generator
    acts = pol.sample_actions(batch, inference_conditioning(2), generator=g().manual_seed(0))
    moved = dict(batch, state=batch["state"] + 0.5)
    acts2 = pol.sample_actions(moved, inference_conditioning(2), generator=g().manual_seed(0))
    assert torch.isfinite(acts).all() and not torch.equal(acts, acts2)
    assert torch.isfinite(pol.loss_terms(batch, cond)["loss"]).all()

    plain = build_policy(tiny, norm_stats)
    enc = plain._encode(batch, cond, None)
    assert enc.expert_context()[0].shape[1] == enc.n_prefix + enc.n_query
