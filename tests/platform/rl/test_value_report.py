"""The held-out split, the value report (world model vs time-only and outcome-oracle baselines on
episodes it never trained on), the indicator separation, and the held-out collapse checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ramp.platform.rl.advantages import discounted_returns
from ramp.platform.rl.collapse import collapse_check, collapse_metrics
from ramp.platform.rl.layout import Episodes
from ramp.platform.rl.rewards import episode_rewards
from ramp.platform.rl.settings import CollapseConfig, RewardConfig
from ramp.platform.rl.value_report import (
    ValueReport,
    heldout_mask,
    indicator_separation,
    is_heldout,
    split_ids,
    step_index,
    value_report,
)

# --------------------------------------------------------------------------- the split


def test_the_split_is_stable_and_independent_of_order_and_company():
    ids = [f"ep-{k:05d}" for k in range(10_000)]
    mask = heldout_mask(ids, 0.2)
    assert abs(mask.mean() - 0.2) < 0.015  # 4 standard deviations of a binomial share
    perm = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(heldout_mask([ids[i] for i in perm], 0.2), mask[perm])
    assert heldout_mask(ids[:7], 0.2).tolist() == mask[:7].tolist()  # alone or in company
    assert [is_heldout(e, 0.2) for e in ids[:50]] == mask[:50].tolist()
    # pinned: the hash (xxh3-64 of a salted id) must never change, or rounds would leak
    same = [f"same-success-{k}" for k in range(8)]
    assert heldout_mask(same, 0.2).tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    # nested: what is held out at 10% stays held out at 20%
    assert not (heldout_mask(ids, 0.1) & ~mask).any()
    assert not heldout_mask(ids, 0.0).any()
    train, held = split_ids(ids[:100], 0.2)
    assert set(held) == {e for e, h in zip(ids[:100], mask[:100], strict=True) if h}
    assert sorted(train + held) == ids[:100]
    with pytest.raises(ValueError, match=r"\[0, 0.5\]"):
        heldout_mask(ids, 0.6)


# --------------------------------------------------------------------------- the report


def synthetic(n_per_task: int = 10, length: int = 12) -> tuple[Episodes, np.ndarray]:
    """Two tasks of equal-length episodes, half successes: (episodes, normalised returns)."""
    e = 2 * n_per_task
    eps = Episodes(
        offsets=np.arange(e + 1) * length,
        task=np.repeat([0, 1], n_per_task),
        task_names=("a", "b"),
        success=np.tile([True, False], n_per_task),
        episode_ids=tuple(f"ep-{k}" for k in range(e)),
    )
    rewards, _ = episode_rewards(eps, RewardConfig(), env_t_max={"a": 20, "b": 30})
    return eps, discounted_returns(rewards, eps.offsets, 1.0)


HELD = np.tile([False, False, False, True, True], 4)  # 4 of 10 per task held out


def test_a_value_equal_to_the_return_is_perfect_on_held_out_episodes():
    eps, ret = synthetic()
    r = value_report(eps, ret, ret, HELD, holdout_fraction=0.2)
    for row in [*r.tasks, r.overall]:
        assert row.measured and row.heldout_episodes == (8 if row.task == "all" else 4)
        assert row.tau_wm == pytest.approx(1.0) and row.mae_wm == pytest.approx(0.0, abs=1e-7)
        assert row.insample_tau == pytest.approx(1.0)
        # equal lengths: the outcome oracle knows the return exactly; time-only does not
        assert row.mae_oracle == pytest.approx(0.0, abs=1e-7) and row.mae_time > 0.01
        assert row.tau_time < row.tau_oracle == pytest.approx(1.0)
    m = r.metrics()
    assert m["value/heldout/kendall_tau"] == pytest.approx(1.0)
    assert m["value/heldout/task/a/mae"] == pytest.approx(0.0, abs=1e-7)
    assert m["value/heldout/episodes"] == 8 and m["value/heldout/steps"] == 8 * 12
    assert m["value/insample/episodes"] == 12
    assert {"value/heldout/time_baseline/kendall_tau", "value/heldout/oracle/mae"} <= set(m)


def test_a_time_only_predictor_ranks_exactly_like_the_time_baseline():
    eps, ret = synthetic()
    t = step_index(eps).astype(np.float64)
    r = value_report(eps, t / 100.0, ret, HELD, holdout_fraction=0.2)
    for row in r.tasks:  # the baseline's mean return rises strictly with t, as t does
        assert row.tau_wm == pytest.approx(row.tau_time)
        assert 0.3 < row.tau_wm < 1.0


def test_baselines_by_hand_past_the_longest_train_episode_and_without_a_flag():
    # train: two 2-step episodes (a success, a failure); held out: two 3-step ones
    eps = Episodes.from_lengths([2, 2, 3, 3], success=[True, False, True, False])
    ret = np.array([-0.4, -0.2, -0.6, -0.4, -0.9, -0.5, -0.1, -0.7, -0.3, -0.2])
    held = np.array([False, False, True, True])
    r = value_report(eps, ret, ret, held, holdout_fraction=0.5)
    (row,) = r.tasks
    # time-only: means [-0.5, -0.3]; step 2 uses the last one: |err| .4 .2 .2 .2 0 .1
    assert row.mae_time == pytest.approx(1.1 / 6)
    # oracle: successes [-0.4, -0.2, -0.2], failures [-0.6, -0.4, -0.4]: .5 .3 .1 .1 .1 .2
    assert row.mae_oracle == pytest.approx(1.3 / 6)
    # no failed train episode: a held-out failure falls back to time-only
    only = np.array([False, True, True, True])  # episode 1 (the failure) held out too
    r2 = value_report(eps, ret, ret, only, holdout_fraction=0.5)
    # success rows: oracle = success means = [-0.4, -0.2]; failures use time-only = the same
    # (one train episode): |err| on ep1 .2 .2, ep2 .5 .3 .1, ep3 .3 .1 0
    assert r2.tasks[0].mae_oracle == pytest.approx(r2.tasks[0].mae_time)
    assert r2.tasks[0].mae_time == pytest.approx(1.7 / 8)


def test_tasks_with_too_few_held_out_episodes_are_na_not_a_crash():
    eps, ret = synthetic(n_per_task=4)
    held = np.array([True, False, False, False, False, False, False, False])  # a: 1, b: 0
    r = value_report(eps, ret, ret, held, holdout_fraction=0.2)
    a, b = r.tasks
    assert not a.measured and a.note == "1 held-out episode (need 2)"
    assert not b.measured and b.note == "0 held-out episodes (need 2)"
    assert not r.overall.measured and "need 2" in r.overall.note
    m = r.metrics()
    assert "value/heldout/task/a/kendall_tau" not in m and "value/heldout/kendall_tau" not in m
    assert m["value/heldout/task/a/episodes"] == 1
    assert "value/insample/task/a/kendall_tau" in m
    text = r.table()
    assert "n/a: 1 held-out episode (need 2)" in text and "n/a: 0 held-out" in text
    # a task whose every episode is held out has no baselines; the others still count overall
    held = np.array([True, True, True, True, True, True, False, False])
    r = value_report(eps, ret, ret, held, holdout_fraction=0.5)
    assert r.tasks[0].note.startswith("no train episodes")
    assert r.tasks[1].measured and r.overall.measured
    assert r.overall.heldout_episodes == 6  # all of them; figures pool task b's 2 only
    # never a crash on a single episode or with the split off
    one = Episodes.from_lengths([5])
    v = np.linspace(-1, 0, 5)
    assert not value_report(one, v, v, np.array([True]), holdout_fraction=0.2).overall.measured
    off = value_report(one, v, v, np.array([False]), holdout_fraction=0.0)
    assert "holdout_fraction 0" in off.overall.note


def test_table_json_and_metrics_keys():
    eps, ret = synthetic()
    noisy = ret + np.random.default_rng(0).normal(0, 0.05, ret.size)
    r = value_report(eps, noisy, ret, HELD, holdout_fraction=0.2)
    lines = r.table().splitlines()
    assert "tau wm" in lines[1] and "in-sample tau" in lines[1]
    assert [ln.split()[0] for ln in lines[2:5]] == ["a", "b", "all"]
    back = ValueReport.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r
    m = r.metrics()
    for key in ("kendall_tau", "mae", "time_baseline/kendall_tau", "oracle/kendall_tau"):
        assert f"value/heldout/{key}" in m and f"value/heldout/task/b/{key}" in m
    assert all(isinstance(v, float) for v in m.values())


def test_shapes_are_checked():
    eps, ret = synthetic()
    with pytest.raises(ValueError, match="steps"):
        value_report(eps, ret[:-1], ret, HELD, holdout_fraction=0.2)
    with pytest.raises(ValueError, match="episodes"):
        value_report(eps, ret, ret, HELD[:-1], holdout_fraction=0.2)


# --------------------------------------------------------------------------- separation


def test_indicator_separation_by_hand():
    # task a: a success of 4 steps (I 0 1 1 0), a failure of 3 (I 1 0 0, its step 0 human);
    # task b: one failure of 2 steps (I 0 1). n = 2: final steps are t >= T - 2.
    eps = Episodes.from_lengths(
        [4, 3, 2], success=[True, False, False], task=[0, 0, 1], task_names=["a", "b"]
    )
    ind = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1], bool)
    human = np.zeros(9, bool)
    human[4] = True
    sep = indicator_separation(eps, ind, human, n_steps=2)
    a, b = sep.tasks
    assert (a.pos_frac_success, a.pos_frac_failure) == (0.5, 0.0)  # the human step left out
    assert (a.pos_frac_interior, a.pos_frac_final) == (0.5, 0.25)  # a: interior t0, t1 of ep 0
    assert (a.steps, a.human_steps, a.interior_steps, a.final_steps) == (6, 1, 2, 4)
    assert math.isnan(b.pos_frac_success) and b.pos_frac_failure == 0.5
    assert math.isnan(b.pos_frac_interior) and b.pos_frac_final == 0.5  # 2 steps, n = 2
    assert sep.overall.pos_frac_failure == pytest.approx(1 / 4)
    m = sep.metrics()
    assert m["label/task/a/pos_frac_success"] == 0.5 and m["label/task/a/pos_frac_final"] == 0.25
    assert "label/task/b/pos_frac_success" not in m  # no successful episode: no figure
    assert m["label/human_steps"] == 1 and m["label/pos_frac_final"] == pytest.approx(2 / 6)
    # counted when they were not forced to 1
    kept = indicator_separation(eps, ind, human, n_steps=2, exclude_human=False)
    assert kept.tasks[0].pos_frac_failure == pytest.approx(1 / 3) and kept.tasks[0].human_steps == 0
    # Monte-Carlo advantages: no bootstrap anywhere, every step is final
    mc = indicator_separation(eps, ind, human, n_steps=None)
    assert mc.overall.interior_steps == 0 and mc.overall.final_steps == 8
    lines = sep.lines()
    assert len(lines) == 4 and lines[1].startswith("  a: success 0.500 / failure 0.000")
    assert "final-2" in lines[0] and "1 human steps left out" in lines[1]


# --------------------------------------------------------------------------- collapse checks


def _metrics(values: np.ndarray, ret: np.ndarray, eps: Episodes) -> dict[str, float]:
    adv = np.random.default_rng(1).normal(0, 0.2, ret.size).astype(np.float32)
    ind = adv > np.quantile(adv, 0.7)
    m = collapse_metrics(adv, ind, eps, CollapseConfig(), values, ret)
    m.update(value_report(eps, values, ret, HELD, holdout_fraction=0.2).metrics())
    return m


CHECK = CollapseConfig(min_task_steps=1, min_heldout_steps=10)


def test_a_good_world_model_passes_the_held_out_checks():
    eps, ret = synthetic()
    verdict = collapse_check(_metrics(ret, ret, eps), CHECK)
    assert not verdict.collapsed, verdict.reasons
    assert verdict.checked[-3:] == ["all (held-out)", "task 'a' (held-out)", "task 'b' (held-out)"]


def test_a_world_model_no_better_than_the_step_index_raises_the_alarm():
    eps, ret = synthetic()
    # memorised the train episodes; on held-out ones it roughly knows the step, no more
    t = step_index(eps).astype(np.float64)
    held_step = np.repeat(HELD, eps.lengths)
    noise = np.random.default_rng(2).normal(0, 0.03, t.size)
    values = np.where(held_step, t / 100.0 - 0.9 + noise, ret)
    m = _metrics(values, ret, eps)
    assert m["value/insample/kendall_tau"] == pytest.approx(1.0)  # in-sample it looks perfect
    verdict = collapse_check(m, CHECK)
    assert verdict.collapsed
    # these are value reasons: the gate may veto on them or only on the advantage ones
    assert verdict.value_reasons and set(verdict.value_reasons) <= set(verdict.reasons)
    assert not set(verdict.advantage_reasons) & set(verdict.value_reasons)
    text = verdict.reason
    tau, base = (
        m["value/heldout/task/a/kendall_tau"],
        m["value/heldout/task/a/time_baseline/kendall_tau"],
    )
    assert (
        f"task 'a': the world model ranks held-out steps of a no better than the step index "
        f"(Kendall tau {tau:.2f} vs {base:.2f}): train it longer (training.world_model.steps), "
        "check rl.reward.t_max, or add data"
    ) in text
    assert "all: the world model ranks the held-out steps no better" in text
    assert "MAE" in text and "further from the returns than the step index's" in text
    # a margin asks for more than a tie; a looser MAE ratio forgives the MAE
    tie = collapse_check(m, CHECK.model_copy(update={"min_tau_margin": -1.0, "max_mae_ratio": 50}))
    assert not any("step index" in r for r in tie.reasons), tie.reasons


def test_held_out_figures_replace_the_in_sample_ones_and_small_tasks_are_not_checked():
    eps, ret = synthetic()
    m = _metrics(ret, ret, eps)
    m["value/kendall_tau"] = -1.0  # in-sample figures would fail; held-out ones decide
    m["value/mae"] = 0.9
    assert not collapse_check(m, CHECK).collapsed
    # task b with too few held-out steps for min_heldout_steps: not checked
    m["value/heldout/task/b/kendall_tau"] = -0.5
    strict = CHECK.model_copy(update={"min_heldout_steps": 1000})
    assert "task 'b' (held-out)" not in collapse_check(m, strict).checked
    # without a held-out report: the in-sample checks, as before
    no_report = {k: v for k, v in m.items() if not k.startswith("value/heldout")}
    reasons = collapse_check(no_report, CHECK).reasons
    assert any("Kendall tau -1.000 < min_kendall_tau" in r and "in-sample" in r for r in reasons)
    assert any("max_value_mae" in r for r in reasons)
