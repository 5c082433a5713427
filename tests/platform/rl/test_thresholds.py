"""Per-task thresholds and the indicator: hand-computed cases and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.settings import ThresholdConfig
from ramp.platform.rl.thresholds import (
    Thresholds,
    exact_epsilon,
    fit_thresholds,
    improvement_indicator,
    label_indicator,
    positives_for,
)

A10 = np.array([0.5, -0.1, 0.3, 0.0, 0.2, -0.4, 0.1, 0.4, -0.2, 0.6], np.float32)
ONE_TASK = Episodes.from_lengths([4, 6], task_names=["pick"])


def test_quantile_by_hand():
    # n = 10, f = .3 -> k = 3 positives; eps = the 7th smallest = 0.3; positives .4 .5 .6
    ind, thr = label_indicator(A10, ONE_TASK, None, ThresholdConfig(positive_fraction=0.3))
    assert thr.epsilon == {"pick": pytest.approx(0.3)}
    assert thr.fitted_steps == {"pick": 10}
    np.testing.assert_array_equal(ind, [1, 0, 0, 0, 0, 0, 0, 1, 0, 1])


def test_human_steps_forced_positive_and_left_out_of_the_fit():
    human = np.zeros(10, bool)
    human[1] = True  # A = -0.1, a human acted
    # fit on the 9 others: k = floor(2.7 + .5) = 3, eps = 6th smallest of them = 0.3
    ind, thr = label_indicator(A10, ONE_TASK, human, ThresholdConfig())
    assert thr.fitted_steps == {"pick": 9}
    assert thr.epsilon["pick"] == pytest.approx(0.3)
    np.testing.assert_array_equal(ind, [1, 1, 0, 0, 0, 0, 0, 1, 0, 1])
    # without forcing, the human step is an ordinary step
    ind, thr = label_indicator(A10, ONE_TASK, human, ThresholdConfig(force_human_positive=False))
    assert thr.fitted_steps == {"pick": 10}
    np.testing.assert_array_equal(ind, [1, 0, 0, 0, 0, 0, 0, 1, 0, 1])


def test_thresholds_are_per_task():
    # task a gets steps 0-3 (.5 -.1 .3 0), task b steps 4-9 (.2 -.4 .1 .4 -.2 .6)
    eps = Episodes.from_lengths([4, 6], task=[0, 1], task_names=["a", "b"])
    ind, thr = label_indicator(A10, eps, None, ThresholdConfig(positive_fraction=0.5))
    # a: k = 2 -> eps = 2nd smallest = 0; b: k = 3 -> eps = 3rd smallest = .1
    assert thr.epsilon == {"a": 0.0, "b": pytest.approx(0.1)}
    np.testing.assert_array_equal(ind, [1, 0, 1, 0, 1, 0, 0, 1, 0, 1])


def test_fixed_rule():
    ind, thr = label_indicator(A10, ONE_TASK, None, ThresholdConfig(rule="fixed", epsilon=0.25))
    assert thr.epsilon == {"pick": 0.25} and thr.rule == "fixed"
    np.testing.assert_array_equal(ind, [1, 0, 1, 0, 0, 0, 0, 1, 0, 1])


def test_fixed_epsilon_compares_exactly_against_float32_advantages():
    # float32(0.1) is slightly above 0.1, so it IS an improvement over eps = 0.1
    a = np.array([np.float32(0.1), np.float32(0.0999)], np.float32)
    eps = Episodes.from_lengths([2])
    ind, _ = label_indicator(a, eps, None, ThresholdConfig(rule="fixed", epsilon=0.1))
    np.testing.assert_array_equal(ind, [True, False])


def test_every_step_positive_when_k_equals_n():
    # one step, f = .6: k = floor(.6 + .5) = 1 = n, so eps sits just below the only value
    eps = Episodes.from_lengths([1])
    ind, thr = label_indicator(
        np.array([0.2], np.float32), eps, None, ThresholdConfig(positive_fraction=0.6)
    )
    assert ind.tolist() == [True] and thr.epsilon["task"] < 0.2


def test_task_with_only_human_steps():
    eps = Episodes.from_lengths([2, 3], task=[0, 1], task_names=["a", "b"])
    human = np.array([1, 1, 0, 0, 0], bool)
    ind, thr = label_indicator(np.zeros(5, np.float32), eps, human, ThresholdConfig())
    assert "a" not in thr.epsilon and "b" in thr.epsilon
    assert ind[:2].all()


def test_reuse_on_new_data_and_a_task_seen_for_the_first_time():
    old = Thresholds({"pick": 0.25}, "quantile", 0.3, {"pick": 100})
    eps = Episodes.from_lengths([4, 6], task=[0, 1], task_names=["pick", "new"])
    ind, thr = label_indicator(A10, eps, None, ThresholdConfig(positive_fraction=0.5), previous=old)
    # pick keeps 0.25: (.5 -.1 .3 0) -> 1 0 1 0; new is fitted: (.2 -.4 .1 .4 -.2 .6), k = 3
    assert thr.epsilon == {"pick": 0.25, "new": pytest.approx(0.1)}
    assert thr.fitted_steps == {"pick": 100, "new": 6}
    np.testing.assert_array_equal(ind, [1, 0, 1, 0, 1, 0, 0, 1, 0, 1])
    # applying thresholds needs one for every task present
    with pytest.raises(ValueError, match="no threshold for task 'new'"):
        improvement_indicator(A10, eps, None, old)
    np.testing.assert_array_equal(improvement_indicator(A10, eps, None, thr), ind)


def test_thresholds_round_trip_and_metrics():
    thr = fit_thresholds(A10, ONE_TASK, None, ThresholdConfig())
    assert Thresholds.from_dict(thr.to_dict()) == thr
    assert thr.metrics() == {"threshold/task/pick/epsilon": thr.epsilon["pick"]}


def test_nan_advantage_is_refused():
    a = A10.copy()
    a[3] = np.nan
    with pytest.raises(ValueError, match="step index 3 is NaN"):
        label_indicator(a, ONE_TASK, None, ThresholdConfig())


def test_large_task_uses_the_bracket_and_stays_exact():
    rng = np.random.default_rng(0)
    eps = Episodes.from_lengths(rng.integers(50, 150, 400), task=rng.integers(0, 2, 400),
                                task_names=["a", "b"])  # fmt: skip
    a = rng.normal(size=eps.n_steps).astype(np.float32)
    human = rng.random(eps.n_steps) < 0.05
    for sample_size in (64, 1024, 1 << 16):  # 64: wide brackets and fallbacks, 1<<16: exact sample
        ind, thr = label_indicator(a, eps, human, ThresholdConfig(), sample_size=sample_size)
        step_task = eps.step_task()
        for t, name in enumerate(eps.task_names):
            fit = a[(step_task == t) & ~human]
            assert thr.epsilon[name] == exact_epsilon(fit, 0.3)
        want = a > np.array([thr.epsilon[n] for n in eps.task_names], np.float32)[step_task]
        np.testing.assert_array_equal(ind, want | human)


@st.composite
def labelled_data(draw, ties: bool):
    lengths = draw(st.lists(st.integers(1, 60), min_size=1, max_size=15))
    n_tasks = draw(st.integers(1, 3))
    tasks = draw(
        st.lists(st.integers(0, n_tasks - 1), min_size=len(lengths), max_size=len(lengths))
    )
    eps = Episodes.from_lengths(lengths, task=tasks, task_names=[f"t{i}" for i in range(n_tasks)])
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = eps.n_steps
    a = rng.permutation(n).astype(np.float32) / n - 0.5  # distinct values
    if ties:
        a = np.round(a * 4) / 4
    human = rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    f = draw(st.floats(0.01, 0.99))
    return eps, a, human, f


@settings(max_examples=100, deadline=None)
@given(data=labelled_data(ties=False), sample_size=st.sampled_from([2, 16, 1 << 14]))
def test_quantile_hits_the_target_within_one_step(data, sample_size):
    eps, a, human, f = data
    ind, thr = label_indicator(
        a, eps, human, ThresholdConfig(positive_fraction=f), sample_size=sample_size
    )
    step_task = eps.step_task()
    for t, name in enumerate(eps.task_names):
        fit = (step_task == t) & ~human
        n = int(fit.sum())
        if n == 0:
            assert name not in thr.epsilon
            continue
        positives = int(ind[fit].sum())
        assert positives == positives_for(n, f)
        assert abs(positives / n - f) <= 1 / n


@settings(max_examples=100, deadline=None)
@given(
    data=labelled_data(ties=True),
    rule=st.sampled_from(["quantile", "fixed"]),
    sample_size=st.sampled_from([2, 16, 1 << 14]),
)
def test_human_steps_are_always_positive_and_labels_are_exact(data, rule, sample_size):
    eps, a, human, f = data
    cfg = ThresholdConfig(rule=rule, positive_fraction=f, epsilon=0.1)
    ind, thr = label_indicator(a, eps, human, cfg, sample_size=sample_size)
    assert ind[human].all()
    step_task = eps.step_task()
    for t, name in enumerate(eps.task_names):
        fit = (step_task == t) & ~human
        if fit.any():
            want = 0.1 if rule == "fixed" else exact_epsilon(a[fit], f)
            assert thr.epsilon[name] == pytest.approx(want, abs=0)
            np.testing.assert_array_equal(ind[fit], a[fit] > np.float32(want))
