"""The labeller's chain on an episode table, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from stand_in import episode_table

from ramp.platform.rl.labelling import label_table
from ramp.platform.rl.settings import AdvantageConfig, RLConfig, ThresholdConfig


def test_label_table_by_hand():
    # task a: T_max 3 (from the data), C_fail 3 -> rewards / 6.
    # episode 0 succeeds in 3 steps: r = [-1, -1, 0] / 6; episode 1 fails in 2: r = [-1, -3] / 6
    human = np.array([0, 0, 0, 0, 1], bool)
    table = episode_table([3, 2], tasks=["a", "a"], success=[True, False], intervention=human)
    values = np.array([-0.1, -0.2, 0.0, -0.5, -0.35], np.float32)
    cfg = RLConfig(
        advantage=AdvantageConfig(n_steps=1), threshold=ThresholdConfig(positive_fraction=0.4)
    )
    labels = label_table(table, values, cfg)
    np.testing.assert_allclose(labels.reward, np.array([-1, -1, 0, -1, -3]) / 6, rtol=1e-6)
    np.testing.assert_allclose(labels.returns, np.array([-2, -1, 0, -4, -3]) / 6, rtol=1e-6)
    # A_t = r_t + v_{t+1} - v_t, r_t - v_t at an episode's last step
    want = [-1 / 6 - 0.2 + 0.1, -1 / 6 + 0.2, 0.0, -1 / 6 - 0.35 + 0.5, -0.5 + 0.35]
    np.testing.assert_allclose(labels.advantage, want, rtol=1e-5, atol=1e-7)
    # fit on the 4 autonomous steps: k = floor(.4 * 4 + .5) = 2 -> steps 1 and 2; step 4 is human
    np.testing.assert_array_equal(labels.indicator, [0, 1, 1, 0, 1])
    assert labels.thresholds.epsilon["a"] == pytest.approx(want[3])
    m = labels.metrics()
    assert m["reward/task/a/t_max"] == 3 and m["reward/task/a/c_fail"] == 3
    assert m["threshold/task/a/epsilon"] == pytest.approx(want[3])
