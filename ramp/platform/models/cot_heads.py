"""Embodied chain-of-thought: subgoal language, discrete action tokens, a 2-D trajectory.

PAPER.md section 1: besides the flow-matching action chunk, the policy learns (a) subgoal text
autoregressively, (b) discrete action tokens, (c) a 10-point end-effector trajectory regressed from
10 learnable tokens through a GRU. (a) and (b) share one causal suffix after the prefix, trained
with the backbone's LM head (a prefix-LM loss):

    <sep> subgoal tokens <sep> action tokens <eos>

Action tokens bin each normalised action dimension uniformly over [-1, 1] (``num_bins``, 256 by
default; FAST would need a hub download), for the first ``discrete_steps`` valid steps of the chunk
and the embodiment's real dimensions only, step-major. A sample without a subgoal label keeps the
suffix shape but its subgoal targets are masked, so it never learns "no subgoal".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SUBGOAL, ACTION = 1, 2  # kinds of suffix targets


class ActionBinner:
    """Uniform bins over [-1, 1] for normalised actions (values outside are clipped)."""

    def __init__(self, num_bins: int):
        self.num_bins = num_bins

    def encode(self, x: Tensor) -> Tensor:
        b = torch.floor((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * self.num_bins).long()
        return b.clamp(0, self.num_bins - 1)

    def decode(self, bins: Tensor) -> Tensor:
        return (bins.float() + 0.5) / self.num_bins * 2.0 - 1.0


@dataclass
class Suffix:
    """The causal suffix of a batch: inputs, next-token targets, and what each target is."""

    ids: Tensor  # (B, S) input token ids
    valid: Tensor  # (B, S) bool: a real token (not right padding)
    targets: Tensor  # (B, S) the token each position predicts
    kind: Tensor  # (B, S) 0 = no loss, SUBGOAL, ACTION


def build_suffix(
    tokenizer: Any,
    subgoals: Sequence[str | None] | None,
    bins: Tensor | None,
    step_valid: Tensor,
    dim_valid: Tensor,
    *,
    sep_id: int,
    eos_id: int,
    action_offset: int,
    discrete_steps: int,
    max_subgoal_tokens: int,
    device: torch.device,
) -> Suffix:
    """Per-sample suffix sequences, right-padded into tensors.

    ``bins`` (B, H, A) are the binned normalised actions (None: no action tokens); ``step_valid``
    (B, H) and ``dim_valid`` (B, A) say which steps / dimensions exist.
    """
    b = step_valid.shape[0]
    use_subgoal = subgoals is not None
    texts = [s if (use_subgoal and s) else "" for s in (subgoals or [None] * b)]
    tok = tokenizer(texts, add_special_tokens=False)["input_ids"] if use_subgoal else None
    bins_cpu = bins.cpu() if bins is not None else None
    steps_cpu, dims_cpu = step_valid.cpu(), dim_valid.cpu()
    seqs: list[list[int]] = []
    kinds: list[list[int]] = []
    for i in range(b):
        seq, kind = [sep_id], []
        if use_subgoal:
            labelled = bool(subgoals[i])
            sub = list(tok[i][:max_subgoal_tokens]) if labelled else []
            seq += [*sub, sep_id]
            kind += [SUBGOAL if labelled else 0] * (len(sub) + 1)
        if bins_cpu is not None:
            steps = torch.nonzero(steps_cpu[i]).flatten()[:discrete_steps]
            dims = torch.nonzero(dims_cpu[i]).flatten()
            ids = (bins_cpu[i][steps][:, dims] + action_offset).flatten().tolist()
            seq += [*ids, eos_id]
            kind += [ACTION] * (len(ids) + 1)
        seqs.append(seq)
        kinds.append(kind)
    width = max(len(s) - 1 for s in seqs)
    ids = torch.zeros(b, width, dtype=torch.long)
    targets = torch.zeros(b, width, dtype=torch.long)
    kind_t = torch.zeros(b, width, dtype=torch.long)
    valid = torch.zeros(b, width, dtype=torch.bool)
    for i, (seq, kind) in enumerate(zip(seqs, kinds, strict=True)):
        n = len(seq) - 1
        ids[i, :n] = torch.tensor(seq[:-1])
        targets[i, :n] = torch.tensor(seq[1:])
        kind_t[i, :n] = torch.tensor(kind)
        valid[i, :n] = True
    return Suffix(ids.to(device), valid.to(device), targets.to(device), kind_t.to(device))


def suffix_losses(logits: Tensor, suffix: Suffix) -> dict[str, Tensor]:
    """Per-sample mean cross-entropy of the subgoal and the action tokens, with presence flags."""
    ce = F.cross_entropy(
        logits.float().flatten(0, 1), suffix.targets.flatten(), reduction="none"
    ).view_as(suffix.targets)
    out = {}
    for name, k in (("subgoal", SUBGOAL), ("action_tokens", ACTION)):
        m = (suffix.kind == k).float()
        n = m.sum(-1)
        out[name] = (ce * m).sum(-1) / n.clamp_min(1.0)
        out[f"{name}_present"] = n > 0
    return out


class TrajectoryHead(nn.Module):
    """10 learnable query tokens -> GRU -> 10 (x, y) points (PAPER.md section 1, term 3)."""

    def __init__(self, width: int, points: int, hidden: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(points, width) * 0.02)
        self.gru = nn.GRU(width, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 2)
        self.points = points

    def query_tokens(self, batch_size: int) -> Tensor:
        return self.queries[None].expand(batch_size, -1, -1)

    def forward(self, hidden: Tensor) -> Tensor:
        """(B, points, width) backbone outputs at the query positions -> (B, points, 2)."""
        h, _ = self.gru(hidden.to(self.out.weight.dtype))
        return self.out(h).float()


def trajectory_loss(pred: Tensor, target: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Per-sample MSE between predicted points and pixel targets / scale; NaN targets = absent."""
    t = target.reshape(pred.shape).float() / scale
    present = torch.isfinite(t).all(-1).all(-1)
    t = torch.where(present[:, None, None], t, torch.zeros_like(t))
    return ((pred - t) ** 2).mean((-1, -2)), present
