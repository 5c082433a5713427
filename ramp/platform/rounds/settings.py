"""Section ``round``: what one continual-training round does after training, and its lock."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ramp.platform.base import StrictModel


class RoundConfig(StrictModel):
    """Section ``round``."""

    collect: bool = Field(
        default=True,
        description="rounds >= 1 run simulated rollouts (stage 3) before training; False trains "
        "on what robots uploaded",
    )
    evaluate: bool = Field(default=True, description="evaluate candidate vs production in sim")
    deploy: Literal["if-serving", "always", "never"] = Field(
        default="if-serving",
        description="after promotion: if-serving = hot-swap the running Serve app if there is "
        "one; always = start `ramp serve` when none runs; never = only move the alias",
    )
    lock_ttl_s: float = Field(
        default=600.0,
        gt=0,
        description="a round lock whose holder has not renewed it for this long is stale",
    )
    min_new_episodes: int = Field(
        default=1, ge=0, description="refuse to train a round >= 1 on fewer new episodes"
    )
