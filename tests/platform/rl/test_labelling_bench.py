"""The labelling-math benchmark runs and reports what it promises (speed itself is not tested)."""

from __future__ import annotations

import json

import numpy as np

from ramp.benchmarks import labelling_math
from ramp.benchmarks.report import write_json


def test_make_data_shapes_and_outcomes():
    eps, rewards, values, human = labelling_math.make_data(5_000, 50, n_tasks=3)
    assert eps.n_steps == 5_000 and eps.n_episodes == 50 and eps.n_tasks == 3
    assert rewards.shape == values.shape == human.shape == (5_000,)
    assert rewards.min() >= -1 and rewards.max() <= 0
    assert 0 < human.mean() < 0.5


def test_quick_run_reports_table_and_json(tmp_path):
    result = labelling_math.run(quick=True)
    assert result.metrics["steps"] == 1_000_000
    assert abs(result.metrics["positive_fraction_min"] - 0.3) < 1e-3
    assert abs(result.metrics["positive_fraction_max"] - 0.3) < 1e-3
    assert np.isfinite(result.ratios["floor_ratio"]) and result.ratios["floor_ratio"] > 0
    assert "floor: one numpy pass" in result.table()
    data = json.loads(write_json(result, tmp_path / "lm.json").read_text())
    assert data["name"] == "labelling-math" and "floor_ratio" in data["ratios"]
