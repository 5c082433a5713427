"""Retrain the policy with Ray Train on the labels of a world-model version, and publish it.

A thin entry point: everything runs in ``ramp.actors.training`` (the Ray Train shell) and
``ramp.platform.training`` (data, loop, fit). The objective is ``rl.objective.name`` (ramp, recap,
awr, bc) with the dropout rates of ``stage``; RAMP also conditions on z from the frozen world
model ``world_model``.
"""

from __future__ import annotations

from ramp.actors.training import TrainResult, train
from ramp.platform.config import RampConfig
from ramp.platform.rl.settings import Stage
from ramp.platform.training.fit import FitSpec

__all__ = ["TrainResult", "fit_policy"]


def fit_policy(
    cfg: RampConfig,
    *,
    round_: int,
    episode_ids: list[str],
    world_model: str,
    init: str | None,
    run_name: str,
    stage: Stage,
) -> TrainResult:
    """Fit the policy on ``episode_ids`` (labelled by ``world_model``: run the labeller first);
    the same ``run_name`` again resumes (or, once finished, returns) that fit. ``init``: None =
    random init, else a policy version in the store or a local checkpoint folder."""
    spec = FitSpec(
        kind="policy",
        round_=round_,
        episode_ids=tuple(sorted(set(episode_ids))),
        run_name=run_name,
        init=init,
        world_model=world_model,
        stage=stage,
    )
    return train(cfg, spec)
