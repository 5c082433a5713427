"""RAMP, RECAP, AWR and BC against a stand-in policy that honours the policy-loss contract."""

from __future__ import annotations

import math

import pytest
import torch
from stand_in import Recorder, StandInPolicy, make_batch

from ramp.platform.rl.contract import (
    Conditioning,
    PolicyLoss,
    guided_velocity,
    inference_conditioning,
)
from ramp.platform.rl.objectives import (
    OBJECTIVES,
    AdvantageWeighted,
    IndicatorConditioned,
    build_objective,
)
from ramp.platform.rl.settings import OBJECTIVE_NAMES, ObjectiveConfig, StageDropout

torch.manual_seed(0)


def ramp_cfg(**kw) -> ObjectiveConfig:
    no_masking = StageDropout(z_dropout=0.0, indicator_dropout=0.0)
    return ObjectiveConfig(**{"name": "ramp", "policy_training": no_masking, **kw})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_stand_in_honours_the_contract():
    assert isinstance(StandInPolicy(), PolicyLoss)


@pytest.mark.parametrize("estimator", ["one_pass", "two_pass"])
def test_ramp_with_alpha_0_and_no_masking_is_conditional_flow_matching(estimator):
    policy, batch = StandInPolicy(), make_batch(16)
    obj = build_objective(ramp_cfg(alpha=0.0, estimator=estimator))
    out = obj(policy, batch, gen())
    b = 16
    plain = Conditioning(
        z=batch["wm_tokens"],
        z_mask=torch.ones(b, dtype=torch.bool),
        value=batch["value"],
        indicator=batch["indicator"],
        indicator_mask=torch.zeros(b, dtype=torch.bool),
    )
    want = policy.loss(batch, plain).mean()
    torch.testing.assert_close(out.loss, want, rtol=0, atol=0)
    assert out.metrics["mask/indicator_dropped"] == 1.0
    assert out.metrics["mask/z_dropped"] == 0.0


def test_two_pass_by_hand():
    # per-sample loss 1 where I is masked, 3 where it is present: L = 1 + alpha * 3 (no dropout)
    rec = Recorder(per_sample=lambda c: 1.0 + 2.0 * c.indicator_mask.float())
    out = build_objective(ramp_cfg(alpha=0.5, estimator="two_pass"))(rec, make_batch(8), gen())
    assert out.loss.item() == pytest.approx(1 + 0.5 * 3)
    assert [bool(c.indicator_mask.any()) for c in rec.calls] == [False, True]


def test_one_pass_has_the_two_pass_expectation():
    # alpha = 1, p_I = .2: two-pass = 1 + (.2 * 1 + .8 * 3) = 3.6 exactly; one-pass masks I with
    # q = (1 + .2) / 2 = .6 and scales by 2: 2 (.6 * 1 + .4 * 3) = 3.6 in expectation
    loss = lambda c: 1.0 + 2.0 * c.indicator_mask.float()  # noqa: E731
    stage = StageDropout(z_dropout=0.0, indicator_dropout=0.2)
    two = build_objective(ramp_cfg(estimator="two_pass", policy_training=stage))
    one = build_objective(ramp_cfg(estimator="one_pass", policy_training=stage))
    batch = make_batch(20_000)
    exact = two(Recorder(per_sample=loss), batch, gen()).loss.item()
    assert exact == pytest.approx(3.6, abs=0.03)  # the I-dropout of the second pass is sampled too
    got = one(Recorder(per_sample=loss), batch, gen()).loss.item()
    # std of one sample's loss is 2 * 2 * sqrt(.6 * .4) ~ 1.96; 20k samples -> std of mean 0.014
    assert got == pytest.approx(3.6, abs=0.06)


@pytest.mark.parametrize(
    ("estimator", "stage", "want_i"),
    [
        ("one_pass", "policy_training", [0.5]),  # q = (1 + 0) / 2
        ("one_pass", "continual_training", [0.6]),  # q = (1 + .2) / 2
        ("two_pass", "continual_training", [1.0, 0.2]),
    ],
)
def test_masking_probabilities_are_honoured(estimator, stage, want_i):
    b = 20_000
    rec = Recorder(per_sample=lambda c: torch.zeros(c.batch_size))
    obj = build_objective(ObjectiveConfig(estimator=estimator), stage)
    obj(rec, make_batch(b), gen(123))
    sd = math.sqrt(0.25 / b)  # the largest binomial std, p = .5
    for cond, want in zip(rec.calls, want_i, strict=True):
        assert (~cond.indicator_mask).float().mean().item() == pytest.approx(want, abs=5 * sd)
        assert (~cond.z_mask).float().mean().item() == pytest.approx(0.2, abs=5 * sd)


def test_masks_are_reproducible_from_the_generator():
    rec1, rec2 = (
        Recorder(per_sample=lambda c: torch.zeros(c.batch_size)),
        Recorder(per_sample=lambda c: torch.zeros(c.batch_size)),
    )
    obj = build_objective(ObjectiveConfig(), "continual_training")
    obj(rec1, make_batch(64), gen(7))
    obj(rec2, make_batch(64), gen(7))
    assert torch.equal(rec1.calls[0].z_mask, rec2.calls[0].z_mask)
    assert torch.equal(rec1.calls[0].indicator_mask, rec2.calls[0].indicator_mask)


def test_recap_does_not_depend_on_world_model_tokens():
    policy = StandInPolicy()
    obj = build_objective(ObjectiveConfig(name="recap"), "continual_training")
    batch = make_batch(32)
    other = {**batch, "wm_tokens": torch.randn_like(batch["wm_tokens"]) * 100}
    a, b = obj(policy, batch, gen(3)).loss, obj(policy, other, gen(3)).loss
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    no_z = {k: v for k, v in batch.items() if k != "wm_tokens"}
    torch.testing.assert_close(obj(policy, no_z, gen(3)).loss, a, rtol=0, atol=0)
    # while RAMP does depend on them
    ramp = build_objective(ramp_cfg())
    assert not torch.equal(ramp(policy, batch, gen(3)).loss, ramp(policy, other, gen(3)).loss)


def test_awr_weights_are_clipped_as_configured():
    awr = AdvantageWeighted("awr", beta=0.5, weight_clip=2.0)
    adv = torch.tensor([-1.0, 0.0, 0.25, 1.0, 1e6])
    # exp(-2), exp(0), exp(.5), min(exp(2), 2), 2
    want = torch.tensor([math.exp(-2), 1.0, math.exp(0.5), 2.0, 2.0])
    torch.testing.assert_close(awr.weights(adv), want)


def test_awr_loss_is_the_weighted_unconditioned_loss():
    batch = make_batch(4)
    batch["advantage"] = torch.tensor([0.0, 0.1, -0.1, 1.0])
    rec = Recorder(per_sample=lambda c: torch.tensor([1.0, 2.0, 3.0, 4.0]))
    obj = build_objective(ObjectiveConfig(name="awr", awr_beta=0.1, awr_weight_clip=5.0))
    out = obj(rec, batch, gen())
    want = (1 * 1 + math.e * 2 + math.exp(-1) * 3 + 5.0 * 4) / 4
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    assert out.metrics["awr/clipped_frac"] == 0.25 and out.metrics["awr/weight_max"] == 5.0
    cond = rec.calls[0]
    assert cond.z is None and not cond.indicator_mask.any()


def test_bc_is_the_plain_unconditioned_loss():
    policy, batch = StandInPolicy(), make_batch(8)
    out = build_objective(ObjectiveConfig(name="bc"))(policy, batch)
    want = policy.loss(batch, Conditioning.unconditional(8)).mean()
    torch.testing.assert_close(out.loss, want, rtol=0, atol=0)


def test_a_training_step_lowers_the_ramp_loss():
    policy, batch = StandInPolicy(), make_batch(64)
    obj = build_objective(ramp_cfg(estimator="two_pass"))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    first = obj(policy, batch, gen()).loss.item()
    for _ in range(30):
        opt.zero_grad()
        obj(policy, batch, gen()).loss.backward()
        opt.step()
    assert obj(policy, batch, gen()).loss.item() < first


def test_every_configured_name_builds_and_unknown_names_suggest_one():
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES
    for name in OBJECTIVE_NAMES:
        assert build_objective(ObjectiveConfig(name=name)).name == name
    with pytest.raises(ValueError, match="did you mean 'recap'"):
        ObjectiveConfig(name="recp")
    bypassed = ObjectiveConfig.model_construct(name="awrr")
    with pytest.raises(ValueError, match="did you mean 'awr'"):
        build_objective(bypassed)


def test_stage_dropout_defaults_follow_the_paper():
    cfg = ObjectiveConfig()
    assert cfg.dropout("policy_training") == StageDropout(z_dropout=0.2, indicator_dropout=0.0)
    assert cfg.dropout("continual_training") == StageDropout(z_dropout=0.2, indicator_dropout=0.2)
    obj = build_objective(cfg, "continual_training")
    assert isinstance(obj, IndicatorConditioned) and obj.indicator_dropout == 0.2
    with pytest.raises(ValueError, match="unknown stage"):
        cfg.dropout("stage9")  # type: ignore[arg-type]


def test_missing_batch_keys_are_named():
    batch = make_batch(4)
    del batch["wm_tokens"]
    with pytest.raises(KeyError, match="needs batch\\['wm_tokens'\\]"):
        build_objective(ObjectiveConfig())(StandInPolicy(), batch)


def test_conditioning_checks_shapes_and_masks():
    b = 3
    on, off = torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)
    with pytest.raises(ValueError, match="z is None"):
        Conditioning(None, on, torch.zeros(b), torch.zeros(b), off)
    with pytest.raises(ValueError, match="bool tensor"):
        Conditioning(None, off, torch.zeros(b), torch.zeros(b), torch.zeros(b))
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        Conditioning(None, off, torch.zeros(b), torch.zeros(b + 1), off)
    with pytest.raises(ValueError, match="Nz, Dz"):
        Conditioning(torch.zeros(b, 4), on, torch.zeros(b), torch.zeros(b), off)


def test_inference_conditioning_and_guidance():
    c = inference_conditioning(2)  # efficient mode: no world model
    assert (
        c.z is None and not c.z_mask.any() and c.indicator_mask.all() and (c.indicator == 1).all()
    )
    c = inference_conditioning(2, z=torch.zeros(2, 3, 4), value=torch.tensor([-0.5, -0.1]))
    assert c.z_mask.all()
    v_c, v_u = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(guided_velocity(v_c, v_u, 1.0), v_c)
    torch.testing.assert_close(guided_velocity(v_c, v_u, 2.0), torch.tensor([3.0, -1.0]))
    torch.testing.assert_close(guided_velocity(v_c, v_u, 0.0), v_u)
