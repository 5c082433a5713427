"""The rl config section: defaults from PAPER.md, validation, and its place in RampConfig."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ramp.platform.config import ConfigError, RampConfig, load_config
from ramp.platform.rl.settings import (
    AdvantageConfig,
    CollapseConfig,
    ObjectiveConfig,
    RewardConfig,
    RLConfig,
    ThresholdConfig,
)


def test_defaults_are_the_papers():
    cfg = RampConfig().rl
    assert isinstance(cfg, RLConfig)
    assert (cfg.advantage.mode, cfg.advantage.n_steps, cfg.advantage.gamma) == ("n_step", 50, 1.0)
    assert (cfg.threshold.rule, cfg.threshold.positive_fraction) == ("quantile", 0.3)
    assert cfg.threshold.force_human_positive
    assert cfg.reward.c_fail is None and cfg.reward.t_max == {}
    assert (cfg.objective.name, cfg.objective.alpha) == ("ramp", 1.0)
    assert cfg.objective.policy_training.z_dropout == 0.2
    assert cfg.objective.policy_training.indicator_dropout == 0.0
    assert cfg.objective.continual_training.indicator_dropout == 0.2


def test_overrides_reach_the_rl_section():
    cfg = load_config(None, ["rl.advantage.n_steps=10", "rl.objective.name=recap",
                             "rl.reward.t_max={pick: 300}"])  # fmt: skip
    assert cfg.rl.advantage.n_steps == 10
    assert cfg.rl.objective.name == "recap"
    assert cfg.rl.reward.t_max == {"pick": 300}


def test_bad_values_say_what_is_wrong():
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        load_config(None, ["rl.treshold.rule=fixed"])
    with pytest.raises(ConfigError, match="did you mean 'awr'"):
        load_config(None, ["rl.objective.name=awrr"])
    with pytest.raises(ValidationError):
        AdvantageConfig(gamma=0.0)
    with pytest.raises(ValidationError):
        ThresholdConfig(positive_fraction=1.0)
    with pytest.raises(ValidationError, match="at least 1 step"):
        RewardConfig(t_max={"pick": 0})
    with pytest.raises(ValidationError):
        ObjectiveConfig(estimator="three_pass")
    with pytest.raises(ValidationError):
        CollapseConfig(extra_key=1)
    with pytest.raises(ValidationError, match="is above max_positive_fraction"):
        CollapseConfig(min_positive_fraction=0.6, max_positive_fraction=0.5)
