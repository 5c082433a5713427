"""Settings of the RL core (section ``rl`` of a ramp config).

Every default of the method (PAPER.md sections 3-5) is a field here, never a constant in the maths;
docs/rl.md states each formula with the field names it reads. This module imports nothing from ramp
but the config base class, so ``ramp.platform.config`` can compose it without an import cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ramp.platform.base import StrictModel, did_you_mean

OBJECTIVE_NAMES = ("ramp", "recap", "awr", "bc")
Stage = Literal["policy_training", "continual_training"]


class RewardConfig(StrictModel):
    """How per-step rewards are made and scaled into [-1, 0] per task (PAPER.md section 3)."""

    source: Literal["outcome", "column"] = Field(
        default="outcome",
        description="outcome: -1 per step, 0 (success) or -c_fail (failure) at the last step, "
        "recomputed from episode lengths and success; column: the stored reward column",
    )
    c_fail: float | None = Field(
        default=None,
        ge=0,
        description="failure penalty at the last step; None = the task's t_max (PAPER.md DEFAULT)",
    )
    t_max: dict[str, int] = Field(
        default_factory=dict,
        description="maximum episode length per task; a task not listed uses the longest episode "
        "of that task in the data being labelled (the value used is returned and logged). "
        "Freeze it here once known, so values keep their scale from round to round",
    )
    normalise: bool = Field(
        default=True,
        description="divide rewards (and hence values and advantages) by t_max + c_fail per task",
    )

    @field_validator("t_max")
    @classmethod
    def _positive_lengths(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {task: n for task, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"t_max must be at least 1 step per task, got {bad}")
        return v


class AdvantageConfig(StrictModel):
    """The advantage estimator: n-step TD on world-model values, or Monte-Carlo."""

    mode: Literal["n_step", "monte_carlo"] = Field(
        default="n_step",
        description="n_step: A_t = sum_{k<n} gamma^k r_{t+k} + gamma^n v_{t+n} - v_t; "
        "monte_carlo: A_t = G_t - v_t (n = the episode length)",
    )
    n_steps: int = Field(default=50, ge=1, description="n of the n-step TD advantage (RECAP: 50)")
    gamma: float = Field(default=1.0, gt=0, le=1, description="discount factor")


class ThresholdConfig(StrictModel):
    """The improvement indicator I = 1[A > eps_task] and how eps is chosen."""

    rule: Literal["quantile", "fixed"] = Field(
        default="quantile",
        description="quantile: eps per task so that positive_fraction of its steps have A > eps; "
        "fixed: eps = epsilon for every task",
    )
    positive_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="target share of positive steps per task (RECAP: 0.3, 0.4 for fine-tuning)",
    )
    epsilon: float = Field(default=0.0, description="the threshold of rule 'fixed'")
    force_human_positive: bool = Field(
        default=True,
        description="steps a human acted on get I = 1 and are left out when fitting the quantile",
    )


class InterventionConfig(StrictModel):
    """Which steps around a takeover or hand-back are transitional artifacts and are dropped.

    A boundary is the first step of the new controller. Each boundary has a window of ``*_before``
    steps before it and ``*_after`` steps from it on; nothing outside a window is ever dropped.
    """

    enabled: bool = Field(default=True, description="False keeps every step")
    rule: Literal["window", "action_jump"] = Field(
        default="window",
        description="window: drop every step of the window; action_jump: drop, on each side of "
        "the boundary, the steps from the boundary out to the farthest step in the window whose "
        "action jump exceeds action_jump",
    )
    takeover_before: int = Field(default=2, ge=0, description="steps before a takeover")
    takeover_after: int = Field(default=5, ge=0, description="steps from a takeover on")
    handback_before: int = Field(default=2, ge=0, description="steps before a hand-back")
    handback_after: int = Field(default=5, ge=0, description="steps from a hand-back on")
    action_jump: float = Field(
        default=0.5,
        gt=0,
        description="rule action_jump: distance between consecutive actions (in action units) "
        "above which a step counts as a jump",
    )
    action_jump_norm: Literal["linf", "l2"] = Field(
        default="linf", description="distance used for action_jump"
    )


class StageDropout(StrictModel):
    """Conditioning dropout of one training stage: two separate rates (PAPER.md section 4)."""

    z_dropout: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="probability that a sample's world-model tokens (and value) are masked",
    )
    indicator_dropout: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="probability that a sample's indicator is masked in the I-conditioned term",
    )


class ObjectiveConfig(StrictModel):
    """The policy objective; an experiment swaps the method by changing ``name`` alone."""

    name: str = Field(default="ramp", description=f"one of {', '.join(OBJECTIVE_NAMES)}")
    alpha: float = Field(
        default=1.0,
        ge=0,
        description="weight of the indicator-conditioned term: "
        "L = E[-log pi(a|o,z,l) - alpha log pi(a|I,o,z,l)]",
    )
    estimator: Literal["one_pass", "two_pass"] = Field(
        default="one_pass",
        description="one_pass: one forward pass, the indicator masked per sample with "
        "probability (1 + alpha * indicator_dropout) / (1 + alpha), loss times (1 + alpha); "
        "two_pass: an I-masked pass plus alpha times an I-present pass (same expectation, "
        "twice the compute, less variance)",
    )
    policy_training: StageDropout = Field(
        default_factory=lambda: StageDropout(z_dropout=0.2, indicator_dropout=0.0),
        description="stage 2 (policy training on the world model): z masked 20% (PAPER.md)",
    )
    continual_training: StageDropout = Field(
        default_factory=lambda: StageDropout(z_dropout=0.2, indicator_dropout=0.2),
        description="stage 4 (continual training): z and I masked 20% each (PAPER.md)",
    )
    awr_beta: float = Field(
        default=0.05,
        gt=0,
        description="AWR temperature: weight exp(A / awr_beta), A in normalised units",
    )
    awr_weight_clip: float = Field(default=20.0, gt=0, description="AWR weights are clipped here")
    cfg_beta: float = Field(
        default=1.0,
        ge=0,
        description="classifier-free guidance on I at inference: "
        "v = v_uncond + cfg_beta (v_cond - v_uncond); 1 = plain conditioning (RECAP: 1.5-2.5)",
    )

    @field_validator("name")
    @classmethod
    def _known_name(cls, v: str) -> str:
        if v not in OBJECTIVE_NAMES:
            raise ValueError(
                f"unknown objective {v!r}{did_you_mean(v, OBJECTIVE_NAMES)}; "
                f"choose one of {', '.join(OBJECTIVE_NAMES)}"
            )
        return v

    def dropout(self, stage: Stage) -> StageDropout:
        """The dropout rates of a stage ("policy_training" = stage 2, "continual_training" = 4)."""
        if stage not in ("policy_training", "continual_training"):
            raise ValueError(
                f"unknown stage {stage!r}; choose policy_training (stage 2) or "
                "continual_training (stage 4)"
            )
        return self.policy_training if stage == "policy_training" else self.continual_training


class CollapseConfig(StrictModel):
    """When the advantage-collapse alarm fires (PAPER.md section 5: advantages shrinking to 0)."""

    delta: float = Field(default=0.01, gt=0, description="|A| below delta counts as 'near zero'")
    max_small_fraction: float = Field(
        default=0.9, ge=0, le=1, description="alarm when more steps than this have |A| < delta"
    )
    min_adv_std: float = Field(default=1e-3, ge=0, description="alarm below this advantage std")
    min_positive_fraction: float = Field(default=0.05, ge=0, le=1)
    max_positive_fraction: float = Field(default=0.95, ge=0, le=1)
    min_kendall_tau: float = Field(
        default=0.1,
        ge=-1,
        le=1,
        description="absolute floor: alarm when the world model's values rank steps this badly "
        "against the returns (held-out tau when the value report has it, else in-sample tau)",
    )
    min_tau_margin: float = Field(
        default=0.0,
        ge=-1,
        le=1,
        description="held-out check: alarm when the world model's held-out tau is below the "
        "time-only baseline's tau plus this margin (it ranks no better than the step index)",
    )
    max_mae_ratio: float = Field(
        default=1.5,
        gt=0,
        description="held-out check: alarm when the world model's held-out value MAE exceeds the "
        "time-only baseline's MAE times this (the ranking check is the main one; this catches a "
        "value on the wrong scale, not a few hundredths of MAE: 0.044 vs 0.043 was noise)",
    )
    max_value_mae: float = Field(
        default=0.25,
        ge=0,
        description="alarm above this in-sample value MAE; only used without a held-out report "
        "(training.world_model.holdout_fraction 0)",
    )
    min_heldout_steps: int = Field(
        default=200,
        ge=1,
        description="held-out checks of a task need this many held-out steps (and 2 held-out "
        "episodes); the overall held-out figures are always checked",
    )
    min_task_steps: int = Field(
        default=1000, ge=1, description="tasks with fewer steps are reported but not checked"
    )
    tau_max_samples: int = Field(
        default=200_000,
        ge=100,
        description="Kendall tau is computed on at most this many steps (seeded subsample)",
    )
    seed: int = Field(default=0, description="seed of the Kendall tau subsample")

    @model_validator(mode="after")
    def _fraction_bounds(self) -> CollapseConfig:
        if self.min_positive_fraction > self.max_positive_fraction:
            raise ValueError(
                f"min_positive_fraction ({self.min_positive_fraction}) is above "
                f"max_positive_fraction ({self.max_positive_fraction})"
            )
        return self


class RLConfig(StrictModel):
    """Section ``rl``: everything the RL core reads."""

    reward: RewardConfig = Field(default_factory=RewardConfig)
    advantage: AdvantageConfig = Field(default_factory=AdvantageConfig)
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    interventions: InterventionConfig = Field(default_factory=InterventionConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    collapse: CollapseConfig = Field(default_factory=CollapseConfig)
