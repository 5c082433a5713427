"""Test helpers: a tiny policy that honours the policy-loss contract, and episode-table builders.

The real models arrive with the models issue; the objectives are tested against this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor, nn

from ramp.platform.rl.contract import Conditioning


class StandInPolicy(nn.Module):
    """A flow-matching policy on a flat observation: predicts the velocity eps - a of the chunk.

    It reads z and value only where z_mask is True and the indicator only where indicator_mask is
    True, replacing them by learned null embeddings otherwise, as the contract requires.
    """

    def __init__(self, obs_dim: int = 3, act_dim: int = 2, horizon: int = 4, z_dim: int = 5):
        super().__init__()
        hidden = 16
        self.act_dim, self.horizon = act_dim, horizon
        self.z_proj = nn.Linear(z_dim + 1, hidden)  # pooled z tokens and the value
        self.z_null = nn.Parameter(torch.randn(hidden) * 0.1)
        self.i_embed = nn.Embedding(3, hidden)  # 0: I = 0, 1: I = 1, 2: I masked
        self.net = nn.Sequential(
            nn.Linear(obs_dim + act_dim * horizon + 1 + 2 * hidden, 64),
            nn.Tanh(),
            nn.Linear(64, act_dim * horizon),
        )

    def velocity(self, obs: Tensor, a_tau: Tensor, tau: Tensor, cond: Conditioning) -> Tensor:
        b = obs.shape[0]
        if cond.z is None:
            zf = self.z_null.expand(b, -1)
        else:
            zin = torch.cat([cond.z.mean(dim=1), cond.value[:, None]], dim=1)
            zf = torch.where(cond.z_mask[:, None], self.z_proj(zin), self.z_null.expand(b, -1))
        code = torch.where(cond.indicator_mask, cond.indicator.round().long(), 2)
        x = torch.cat([obs, a_tau.flatten(1), tau[:, None], zf, self.i_embed(code)], dim=1)
        return self.net(x).view(b, self.horizon, self.act_dim)

    def loss(self, batch: Mapping[str, Tensor], cond: Conditioning) -> Tensor:
        a, eps, tau = batch["action"], batch["noise"], batch["tau"]
        a_tau = tau[:, None, None] * eps + (1 - tau[:, None, None]) * a
        v = self.velocity(batch["obs"], a_tau, tau, cond)
        return ((v - (eps - a)) ** 2).mean(dim=(1, 2))


class Recorder:
    """Wraps a policy and keeps every Conditioning it was called with."""

    def __init__(self, policy=None, per_sample=None):
        self.policy = policy
        self.per_sample = per_sample  # fn(cond) -> Tensor[B] instead of a policy
        self.calls: list[Conditioning] = []

    def loss(self, batch: Mapping[str, Tensor], cond: Conditioning) -> Tensor:
        self.calls.append(cond)
        if self.per_sample is not None:
            return self.per_sample(cond)
        return self.policy.loss(batch, cond)


def make_batch(b: int = 8, seed: int = 0, z_dim: int = 5, n_tokens: int = 3) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(b, 3, generator=g),
        "action": torch.randn(b, 4, 2, generator=g),
        "noise": torch.randn(b, 4, 2, generator=g),
        "tau": torch.rand(b, generator=g),
        "wm_tokens": torch.randn(b, n_tokens, z_dim, generator=g),
        "value": -torch.rand(b, generator=g),
        "indicator": (torch.rand(b, generator=g) > 0.5).float(),
        "advantage": torch.randn(b, generator=g) * 0.1,
    }


def episode_table(
    lengths: Sequence[int],
    tasks: Sequence[str] | None = None,
    success: Sequence[bool] | None = None,
    intervention: np.ndarray | None = None,
    actions: np.ndarray | None = None,
) -> pa.Table:
    """A minimal episode table (the columns the RL core reads), rows in episode and step order."""
    e = len(lengths)
    tasks = list(tasks) if tasks is not None else ["pick"] * e
    success = list(success) if success is not None else [True] * e
    n = int(sum(lengths))
    ids, steps, task_col, succ, done = [], [], [], [], []
    for k, length in enumerate(lengths):
        ids += [f"ep{k}"] * length
        steps += list(range(length))
        task_col += [tasks[k]] * length
        succ += [False] * (length - 1) + [bool(success[k])]
        done += [False] * (length - 1) + [True]
    rewards = np.full(n, -1.0, np.float32)
    if actions is None:
        actions = np.zeros((n, 2), np.float32)
    return pa.table(
        {
            "episode_id": pa.array(ids, pa.string()),
            "step": pa.array(steps, pa.int32()),
            "task": pa.array(task_col, pa.string()),
            "reward": pa.array(rewards, pa.float32()),
            "done": pa.array(done, pa.bool_()),
            "success": pa.array(succ, pa.bool_()),
            "intervention": pa.array(
                np.zeros(n, bool) if intervention is None else intervention, pa.bool_()
            ),
            "action": pa.array(list(np.asarray(actions, np.float32)), pa.list_(pa.float32())),
        }
    )
