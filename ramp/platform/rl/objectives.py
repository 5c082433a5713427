"""Policy objectives: RAMP, RECAP, AWR and behaviour cloning over the policy-loss contract.

Each objective builds a ``Conditioning`` (sampling its dropout masks from a ``torch.Generator``
so a run is reproducible), calls ``policy.loss(batch, cond)`` for per-sample losses and combines
them into a scalar. ``build_objective(cfg, stage)`` picks one by ``rl.objective.name``, so an
experiment swaps the method by config alone.

RAMP (PAPER.md section 4): ``L = E[-log pi(a|o,z,l) - alpha log pi(a|I,o,z,l)]``. In flow-matching
form the negative log-likelihoods become per-sample flow-matching losses: one with the indicator
masked, plus alpha times one with the indicator present. On top, z (with the value) is masked per
sample with probability ``z_dropout`` and, in the I-conditioned term, I with probability
``indicator_dropout`` (rates per stage, ``rl.objective.policy_training`` / ``continual_training``).

Two estimators of that loss, chosen by ``rl.objective.estimator``:
- ``one_pass`` (default): a single forward pass in which each sample's indicator is masked with
  probability ``q = (1 + alpha p_I) / (1 + alpha)``, the mean loss scaled by ``1 + alpha``. Its
  expectation is exactly the two-term loss (the I-masked share q(1 + alpha) = 1 + alpha p_I, the
  I-present share (1 - q)(1 + alpha) = alpha (1 - p_I)), at half the compute of a VLA forward
  pass; this is also how RECAP trains (it drops I 30% of the time: alpha = 7/3, p_I = 0).
- ``two_pass``: both terms on every sample; twice the compute, lower variance.

RECAP is RAMP without world-model tokens (z marginalised out): z is never given, so its loss
cannot depend on them. AWR weights the unconditioned behaviour-cloning loss by
``min(exp(A / awr_beta), awr_weight_clip)``; BC is the plain unconditioned loss. The three
baselines do not see the world model, as in the papers' comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from ramp.platform.config import did_you_mean
from ramp.platform.rl.contract import (
    ADVANTAGE,
    INDICATOR,
    VALUE,
    WM_TOKENS,
    Conditioning,
    PolicyLoss,
)
from ramp.platform.rl.settings import ObjectiveConfig, Stage


@dataclass(frozen=True)
class ObjectiveOutput:
    """A scalar loss to backpropagate and float metrics for the tracker."""

    loss: Tensor
    metrics: dict[str, float]


class Objective(Protocol):
    name: str

    def __call__(
        self,
        policy: PolicyLoss,
        batch: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput: ...


def _batch_size(batch: Mapping[str, Tensor]) -> tuple[int, torch.device]:
    for key in (VALUE, INDICATOR, ADVANTAGE, WM_TOKENS, "actions"):
        if key in batch and hasattr(batch[key], "shape"):
            return int(batch[key].shape[0]), batch[key].device
    raise KeyError(
        f"batch needs at least one of {VALUE!r}, {INDICATOR!r}, {ADVANTAGE!r}, 'actions'"
    )


def _keep(p_drop: float, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Bool [n]: True with probability 1 - p_drop (sampled on CPU, so one seed gives one run)."""
    if p_drop <= 0.0:
        return torch.ones(n, dtype=torch.bool, device=device)
    if p_drop >= 1.0:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return (torch.rand(n, generator=generator) >= p_drop).to(device)


def _require(batch: Mapping[str, Tensor], key: str, who: str) -> Tensor:
    if key not in batch:
        raise KeyError(f"objective {who!r} needs batch[{key!r}]; batch has {sorted(batch)}")
    return batch[key]


def _mean_where(x: Tensor, mask: Tensor) -> float:
    n = int(mask.sum())
    return float((x.detach() * mask).sum() / n) if n else float("nan")


TERM_NAMES = ("flow", "action_tokens", "trajectory", "subgoal")


def per_sample_loss(
    policy: PolicyLoss, batch: Mapping[str, Tensor], cond: Conditioning, metrics: dict[str, float]
) -> Tensor:
    """``policy.loss``, with the mean of each term the policy reports (flow, action tokens,
    trajectory, subgoal) added to ``metrics`` as ``loss/<term>``: the total alone hides which
    term moves (the action-token cross-entropy is several times the flow loss)."""
    terms_fn = getattr(policy, "loss_terms", None)
    if terms_fn is None:
        return policy.loss(batch, cond)
    terms = terms_fn(batch, cond)
    for name in TERM_NAMES:
        if name not in terms:
            continue
        present = terms.get(f"{name}_present")
        value = terms[name].detach()
        metrics[f"loss/{name}"] = (
            _mean_where(value, present.bool()) if present is not None else float(value.mean())
        )
    return terms["loss"]


def inference_share(c: Conditioning, indicator: Tensor) -> dict[str, float]:
    """Shares of samples conditioned as inference conditions (I present and 1; z present in
    "standard" mode, masked in "efficient" mode): a policy never trained on the conditioning it
    acts with has not learned what I = 1 means there."""
    positive = c.indicator_mask & (indicator > 0.5)
    return {
        "mask/like_standard": float((positive & c.z_mask).float().mean()),
        "mask/like_efficient": float((positive & ~c.z_mask).float().mean()),
    }


@dataclass(frozen=True)
class IndicatorConditioned:
    """RAMP (``use_world_model=True``) and RECAP (False): see the module docstring."""

    name: str
    alpha: float
    estimator: Literal["one_pass", "two_pass"]
    z_dropout: float
    indicator_dropout: float
    use_world_model: bool

    def __call__(
        self,
        policy: PolicyLoss,
        batch: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        n, device = _batch_size(batch)
        indicator = _require(batch, INDICATOR, self.name).to(torch.float32)
        if self.use_world_model:
            z_source = _require(batch, WM_TOKENS, self.name)
            value = _require(batch, VALUE, self.name).to(torch.float32)
        else:
            z_source, value = None, torch.zeros(n, device=device)

        def cond(i_keep: Tensor) -> Conditioning:
            if z_source is None:
                return Conditioning(
                    None, torch.zeros(n, dtype=torch.bool, device=device), value, indicator, i_keep
                )
            z_keep = _keep(self.z_dropout, n, generator, device)
            # a callable source computes z only where it is kept (the trainer's world model)
            z = z_source(z_keep) if callable(z_source) else z_source
            return Conditioning(z, z_keep, value, indicator, i_keep)

        metrics: dict[str, float] = {}
        if self.estimator == "one_pass":
            q = (1.0 + self.alpha * self.indicator_dropout) / (1.0 + self.alpha)
            c = cond(_keep(q, n, generator, device))
            per = per_sample_loss(policy, batch, c, metrics)
            loss = (1.0 + self.alpha) * per.mean()
            metrics["loss/indicator_present"] = _mean_where(per, c.indicator_mask)
            metrics["loss/indicator_masked"] = _mean_where(per, ~c.indicator_mask)
            masks = [c]
        else:
            c_u = cond(torch.zeros(n, dtype=torch.bool, device=device))
            per_u = per_sample_loss(policy, batch, c_u, metrics)
            loss = per_u.mean()
            metrics["loss/indicator_masked"] = float(per_u.detach().mean())
            masks = [c_u]
            if self.alpha > 0:
                c_c = cond(_keep(self.indicator_dropout, n, generator, device))
                per_c = per_sample_loss(policy, batch, c_c, {})
                loss = loss + self.alpha * per_c.mean()
                metrics["loss/indicator_conditioned"] = float(per_c.detach().mean())
                masks.append(c_c)
        metrics["loss"] = float(loss.detach())
        shares = [inference_share(c, indicator) for c in masks]
        for key in shares[0]:
            metrics[key] = sum(sh[key] for sh in shares) / len(shares)
        metrics["mask/indicator_dropped"] = float(
            sum(float((~c.indicator_mask).float().mean()) for c in masks) / len(masks)
        )
        if z_source is not None:
            metrics["mask/z_dropped"] = float(
                sum(float((~c.z_mask).float().mean()) for c in masks) / len(masks)
            )
        return ObjectiveOutput(loss, metrics)


@dataclass(frozen=True)
class AdvantageWeighted:
    """AWR: behaviour cloning weighted by ``min(exp(A / beta), clip)``."""

    name: str
    beta: float
    weight_clip: float

    def weights(self, advantage: Tensor) -> Tensor:
        """exp(A / beta) clipped at weight_clip; computed without overflow for large A."""
        log_clip = math.log(self.weight_clip)
        return torch.exp(torch.clamp(advantage.to(torch.float32) / self.beta, max=log_clip))

    def __call__(
        self,
        policy: PolicyLoss,
        batch: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        advantage = _require(batch, ADVANTAGE, self.name)
        n, device = _batch_size(batch)
        w = self.weights(advantage).detach()
        metrics: dict[str, float] = {}
        per = per_sample_loss(policy, batch, Conditioning.unconditional(n, device), metrics)
        loss = (w * per).mean()
        clipped = advantage.to(torch.float32) / self.beta >= math.log(self.weight_clip)
        return ObjectiveOutput(
            loss,
            {
                **metrics,
                "loss": float(loss.detach()),
                "awr/weight_mean": float(w.mean()),
                "awr/weight_max": float(w.max()),
                "awr/clipped_frac": float(clipped.float().mean()),
            },
        )


@dataclass(frozen=True)
class BehaviourCloning:
    """Plain behaviour cloning: the unconditioned per-sample loss, averaged."""

    name: str = "bc"

    def __call__(
        self,
        policy: PolicyLoss,
        batch: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput:
        n, device = _batch_size(batch)
        metrics: dict[str, float] = {}
        loss = per_sample_loss(policy, batch, Conditioning.unconditional(n, device), metrics).mean()
        return ObjectiveOutput(loss, {**metrics, "loss": float(loss.detach())})


def _ramp(cfg: ObjectiveConfig, stage: Stage) -> Objective:
    d = cfg.dropout(stage)
    return IndicatorConditioned(
        "ramp", cfg.alpha, cfg.estimator, d.z_dropout, d.indicator_dropout, True
    )


def _recap(cfg: ObjectiveConfig, stage: Stage) -> Objective:
    d = cfg.dropout(stage)
    return IndicatorConditioned("recap", cfg.alpha, cfg.estimator, 0.0, d.indicator_dropout, False)


OBJECTIVES: dict[str, Callable[[ObjectiveConfig, Stage], Objective]] = {
    "ramp": _ramp,
    "recap": _recap,
    "awr": lambda cfg, stage: AdvantageWeighted("awr", cfg.awr_beta, cfg.awr_weight_clip),
    "bc": lambda cfg, stage: BehaviourCloning(),
}


def build_objective(cfg: ObjectiveConfig, stage: Stage = "policy_training") -> Objective:
    """The objective named by ``cfg.name``, with the dropout rates of ``stage``."""
    if cfg.name not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {cfg.name!r}{did_you_mean(cfg.name, OBJECTIVES)}; "
            f"available: {', '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[cfg.name](cfg, stage)
