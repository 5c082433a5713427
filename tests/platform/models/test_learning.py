"""Learning on CPU: the tiny policy and world model fit a fixed batch; the value channel ranks.

Seeded and deterministic. Each loss is measured before and after with the same four fixed draws of
noise levels and noise (``generator``), so the ratio does not depend on the luck of one draw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import clip_batch, make_batch, norm_stats_for

from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.rl.collapse import kendall_tau
from ramp.platform.rl.contract import Conditioning

pytestmark = pytest.mark.slow
STEPS = 300


def _optimizer(
    params, lr: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / 20) * 0.5 * (1 + math.cos(math.pi * i / STEPS))
    )
    return opt, schedule


def _fixed_draws(loss_fn) -> float:
    with torch.no_grad():
        return sum(float(loss_fn(torch.Generator().manual_seed(k)).mean()) for k in range(4))


def test_tiny_policy_fits_a_fixed_batch():
    torch.manual_seed(0)
    policy = build_policy("tiny", norm_stats_for())
    b = 4
    batch = make_batch(b, ("arm", "bimanual"), seed=5, with_subgoal=True, with_trajectory=True)
    # smooth chunks, as robot actions are: random sines per sample and dimension
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 50)[None, :, None]
    freq = torch.rand(b, 1, 32, generator=g) * 3 + 0.5
    phase = torch.rand(b, 1, 32, generator=g) * 2 * math.pi
    batch["actions"] = torch.sin(2 * math.pi * freq * t + phase) * 1.2
    cond = Conditioning.unconditional(b)

    def flow(gen):
        return policy.loss_terms(batch, cond, generator=gen)["flow"]

    start = _fixed_draws(flow)
    opt, schedule = _optimizer(policy.parameters(), 3e-3)
    for _ in range(STEPS):
        loss = policy.loss(batch, cond).mean()  # the full loss: flow + chain of thought
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    end = _fixed_draws(flow)
    assert end < 0.10 * start, (start, end)
    # the chain-of-thought terms were learned alongside
    with torch.no_grad():
        terms = policy.loss_terms(batch, cond, generator=torch.Generator().manual_seed(0))
    for key in ("subgoal", "action_tokens", "trajectory"):
        assert terms[f"{key}_present"].all() and terms[key].mean() < 0.1, (key, terms[key])


def test_tiny_world_model_fits_a_clip_and_ranks_values():
    torch.manual_seed(0)
    wm = build_world_model("tiny", norm_stats_for())
    steps = np.linspace(0, 79, 8).round().astype(int)
    batch = clip_batch(steps)

    def loss(gen):
        return wm.loss_terms(batch, generator=gen)["loss"]

    start = _fixed_draws(loss)
    opt, schedule = _optimizer(wm.parameters(), 3e-3)
    for _ in range(STEPS):
        total = wm.loss(batch).mean()
        opt.zero_grad()
        total.backward()
        opt.step()
        schedule.step()
    end = _fixed_draws(loss)
    assert end < 0.10 * start, (start, end)

    # the value channel of a one-step prediction ranks the clip's steps (monotone value)
    wm.eval()
    for probe in (steps, np.arange(2, 78, 5)):  # the trained steps, and steps in between
        b = clip_batch(probe)
        pred = wm.predict(b, generator=torch.Generator().manual_seed(0))
        tau = kendall_tau(pred.value.numpy(), b["value_target"].numpy())
        assert tau > 0.9, (probe, pred.value, b["value_target"])
