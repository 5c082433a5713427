"""Collapse metrics, Kendall tau and the alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramp.platform.rl.collapse import collapse_check, collapse_metrics, kendall_tau
from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.settings import CollapseConfig


def test_kendall_tau_by_hand():
    # one discordant pair (2, 3) of six: (5 - 1) / 6
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(2 / 3)
    # tau-b with one tie in x and one in y, 4 concordant pairs: 4 / sqrt(5 * 5)
    assert kendall_tau(np.array([1, 1, 2, 3]), np.array([1, 2, 2, 3])) == pytest.approx(0.8)
    assert kendall_tau(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau(np.array([1, 1]), np.array([1, 2])))
    assert math.isnan(kendall_tau(np.array([1.0]), np.array([2.0])))


def slow_tau_b(x, y):
    n = len(x)
    c = d = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if sx == 0 and sy == 0:
                continue
            if sx == 0:
                tx += 1
            elif sy == 0:
                ty += 1
            elif sx == sy:
                c += 1
            else:
                d += 1
    denom = math.sqrt((c + d + tx) * (c + d + ty))
    return (c - d) / denom if denom else float("nan")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=2, max_size=60),
)
def test_kendall_tau_equals_the_pairwise_definition(pairs):
    x = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs], float)
    want = slow_tau_b(x, y)
    got = kendall_tau(x, y)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_kendall_tau_agrees_with_scipy_on_a_large_sample():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=20_000)
    y = np.round(x + rng.normal(size=x.size), 1)  # many ties, like Monte-Carlo returns
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


EPS = Episodes.from_lengths([4, 2], task=[0, 1], task_names=["a", "b"])
ADV = np.array([0.0, 0.005, -0.2, 0.3, 0.1, -0.1], np.float32)
IND = np.array([0, 0, 0, 1, 1, 0], bool)
VAL = np.array([-0.5, -0.4, -0.3, -0.2, -0.9, -0.1], np.float32)
RET = np.array([-0.6, -0.4, -0.35, -0.1, -1.0, 0.0], np.float32)


def test_metrics_by_hand():
    m = collapse_metrics(ADV, IND, EPS, CollapseConfig(delta=0.01), VAL, RET)
    assert m["adv/steps"] == 6
    assert m["adv/mean"] == pytest.approx(0.105 / 6, abs=1e-7)
    assert m["adv/pos_frac"] == pytest.approx(2 / 6)
    assert m["adv/small_frac"] == pytest.approx(2 / 6)  # 0 and .005
    assert m["adv/q50"] == pytest.approx(0.0025, abs=1e-7)  # between 0 and .005
    assert m["adv/task/a/pos_frac"] == 0.25 and m["adv/task/a/small_frac"] == 0.5
    assert m["adv/task/b/mean"] == pytest.approx(0.0, abs=1e-7)
    assert m["adv/task/b/std"] == pytest.approx(0.1)
    assert m["value/mae"] == pytest.approx(0.45 / 6, abs=1e-6)
    assert m["value/kendall_tau"] == pytest.approx(1.0)  # same ranking
    assert m["value/task/b/kendall_tau"] == pytest.approx(1.0)
    assert m["value/task/a/mae"] == pytest.approx(0.25 / 4, abs=1e-6)
    assert "value/mae" not in collapse_metrics(ADV, IND, EPS, CollapseConfig())


def test_tau_subsample_is_seeded():
    rng = np.random.default_rng(1)
    eps = Episodes.from_lengths([3000])
    v, r = rng.normal(size=3000), rng.normal(size=3000)
    a, i = np.zeros(3000, np.float32), np.zeros(3000, bool)
    cfg = CollapseConfig(tau_max_samples=500)
    m1 = collapse_metrics(a, i, eps, cfg, v, r)["value/kendall_tau"]
    assert m1 == collapse_metrics(a, i, eps, cfg, v, r)["value/kendall_tau"]
    assert (
        m1
        != collapse_metrics(a, i, eps, cfg.model_copy(update={"seed": 5}), v, r)[
            "value/kendall_tau"
        ]
    )


def test_healthy_data_passes():
    m = collapse_metrics(ADV, IND, EPS, CollapseConfig(), VAL, RET)
    verdict = collapse_check(m, CollapseConfig(max_small_fraction=0.6, min_task_steps=1))
    assert not verdict.collapsed, verdict.reason
    assert verdict.reason.startswith("ok")
    assert verdict.checked == ["all", "task 'a'", "task 'b'"]


def test_collapsed_advantages_raise_the_alarm_with_reasons():
    adv = np.array([0.0, 0.001, -0.002, 0.0, 0.003, 0.0], np.float32)
    values = RET[::-1].copy()  # reversed ranking
    cfg = CollapseConfig(min_task_steps=1, min_adv_std=0.01)  # std here is 0.0016
    verdict = collapse_check(collapse_metrics(adv, IND, EPS, cfg, values, RET), cfg)
    assert verdict.collapsed
    text = verdict.reason
    assert "all: 100.0% of steps have |A| < 0.01" in text and "collapsing to 0" in text
    assert "advantage std" in text and "Kendall tau" in text
    assert "task 'a'" in text


def test_small_tasks_are_reported_but_not_checked():
    cfg = CollapseConfig(min_task_steps=3, min_positive_fraction=0.3)
    m = collapse_metrics(ADV, IND, EPS, cfg)
    # task b (2 steps, pos .5) is skipped; task a has pos .25 < .3 and is flagged
    verdict = collapse_check(m, cfg.model_copy(update={"max_small_fraction": 0.6}))
    assert verdict.checked == ["all", "task 'a'"]
    assert verdict.reasons == ["task 'a': positive fraction 0.250 outside [0.3, 0.95]"]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="6 steps"):
        collapse_metrics(ADV[:5], IND[:5], EPS, CollapseConfig())
    with pytest.raises(ValueError, match="both values and returns"):
        collapse_metrics(ADV, IND, EPS, CollapseConfig(), values=VAL)
