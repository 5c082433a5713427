"""Retrain the world model with Ray Train (base + all rollout data) and publish it.

A thin entry point: everything runs in ``ramp.actors.training`` (the Ray Train shell) and
``ramp.platform.training`` (data, loop, fit). The value targets are the labeller's Monte-Carlo
returns, scaled over all of ``episode_ids`` at once.
"""

from __future__ import annotations

from ramp.actors.training import TrainResult, train
from ramp.platform.config import RampConfig
from ramp.platform.training.fit import FitSpec

__all__ = ["TrainResult", "fit_world_model"]


def fit_world_model(
    cfg: RampConfig,
    *,
    round_: int,
    episode_ids: list[str],
    init: str | None,
    run_name: str,
) -> TrainResult:
    """Fit the world model on ``episode_ids``; the same ``run_name`` again resumes (or, once
    finished, returns) that fit. ``init``: None = random init, else a world-model version in the
    store or a local checkpoint folder."""
    spec = FitSpec(
        kind="world-model",
        round_=round_,
        episode_ids=tuple(sorted(set(episode_ids))),
        run_name=run_name,
        init=init,
    )
    return train(cfg, spec)
