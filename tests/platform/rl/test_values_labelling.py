"""The labelling pass without Ray: world-model values of a small store, then the RL core.

A tiny random-init world model (``build_world_model``) values synthetic episodes of two tasks
(16 px frames, mixed outcomes, a few human takeovers). Checks: values are reproducible per
episode whatever the company; the sidecars hold exactly ``rl.labelling.label_table`` of the
concatenation; episodes already labelled by a version are read back, not valued again, and still
count in the thresholds; an unreadable file is reported, not fatal; and the collapse verdict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import pytest
import torch

from ramp.platform.config import RampConfig, load_config
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.episodes.labels import read_label_meta
from ramp.platform.rl.labelling import label_table
from ramp.platform.rl.relabel import (
    LabelPass,
    ValuedEpisodes,
    label_episodes,
    step_columns,
)
from ramp.platform.rl.rewards import env_t_max
from ramp.platform.rl.value_report import heldout_mask
from ramp.platform.rl.values import EpisodeValuer, episode_seed

WM = "world-model-r1-0123abcd"
ARM = {
    "cameras": {"front": {"height": 16, "width": 16}},
    "state_names": ["q0", "q1", "q2", "grip"],
    "action_names": ["dx", "dy"],
    "action_low": [-1.0, -1.0],
    "action_high": [1.0, 1.0],
    "fps": 10.0,
}


def make_config(root: Path, **overrides: object) -> RampConfig:
    base = {
        "store.root": str(root),
        "embodiments.arm": ARM,
        "training.labeller.batch_size": 16,
        "rl.advantage.mode": "n_step",
        "rl.advantage.n_steps": 5,
    }
    base.update(overrides)
    return load_config("quickstart", [f"{k}={json.dumps(v)}" for k, v in base.items()])


def episode(
    eid: str, task: str, steps: int, success: bool, seed: int, takeover: int | None = None
) -> Episode:
    """Frames and states that drift with the step, so the observations differ along the way."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float32)
    frames = np.empty((steps, 16, 16, 3), np.uint8)
    for i in range(steps):
        frames[i] = (rng.integers(0, 40, (16, 16, 3)) + 6 * i + (80 if task == "b" else 0)) % 256
    state = np.stack([t / steps, np.sin(t / 3), np.cos(t / 5), rng.normal(size=steps)], -1)
    intervention = np.zeros(steps, bool)
    if takeover is not None:
        intervention[takeover : takeover + 4] = True
    return Episode(
        episode_id=eid,
        embodiment="arm",
        task=task,
        instruction=f"do task {task}",
        images={"front": frames},
        state=state.astype(np.float32),
        action=rng.uniform(-1, 1, (steps, 2)).astype(np.float32),
        success=success,
        source="rollout",
        policy_version="policy-r0-00000000",
        round=1,
        intervention=intervention,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """12 episodes: tasks a and b, 14-30 steps, mixed outcomes, takeovers in three of them."""
    root = tmp_path_factory.mktemp("values") / "store"
    store = EpisodeStore.from_config(make_config(root))
    for k in range(12):
        task = "a" if k % 2 else "b"
        store.write(
            episode(
                f"ep-{k:02d}",
                task,
                steps=14 + (k * 7) % 17,
                success=k % 3 != 0,
                seed=k,
                takeover=6 if k in (1, 4, 7) else None,
            )
        )
    return root


@pytest.fixture
def cfg(template, tmp_path) -> RampConfig:
    import shutil

    root = tmp_path / "store"
    shutil.copytree(template, root)
    return make_config(root)


@pytest.fixture(scope="module")
def world_model(template):
    from training_helpers import random_world_model

    cfg = make_config(template)
    return random_world_model(EpisodeStore.from_config(cfg), cfg)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ids_of(store: EpisodeStore) -> list[str]:
    return [e.episode_id for e in store.episodes()]


def test_values_are_seeded_per_episode(cfg, world_model):
    store = EpisodeStore.from_config(cfg)
    ids = ids_of(store)
    first = EpisodeValuer.from_config(world_model, store, cfg).value_episodes(ids)
    assert set(first.values) == set(ids) and not first.unreadable
    for eid in ids:
        assert first.values[eid].shape == (store.lookup(eid).num_steps,)
        assert first.values[eid].dtype == np.float32
    # another valuer, other company, other order: the same numbers (a retried chunk)
    again = EpisodeValuer.from_config(world_model, store, cfg).value_episodes(ids[::-3])
    for eid, v in again.values.items():
        np.testing.assert_array_equal(v, first.values[eid])
    # the quickstart reads the value from the head (value_readout: head): no sampling, so
    # another labeller seed gives the same values
    other = make_config(cfg.store.root, **{"training.labeller.seed": 1})
    same = EpisodeValuer.from_config(world_model, store, other).value_episodes(ids[:1])
    np.testing.assert_array_equal(same.values[ids[0]], first.values[ids[0]])
    # where the readout samples (value_readout: flow) the seed is really used
    from training_helpers import random_world_model

    flow = {"models.world_model.value_readout": "flow"}
    flow_cfg = make_config(cfg.store.root, **flow)
    flow_wm = random_world_model(store, flow_cfg)
    seeded = EpisodeValuer.from_config(flow_wm, store, flow_cfg).value_episodes(ids[:1])
    flow_other = make_config(cfg.store.root, **flow, **{"training.labeller.seed": 1})
    moved = EpisodeValuer.from_config(flow_wm, store, flow_other).value_episodes(ids[:1])
    assert not np.array_equal(moved.values[ids[0]], seeded.values[ids[0]])
    assert episode_seed(0, "a") == episode_seed(0, "a") != episode_seed(0, "b")


def concatenated(cfg: RampConfig, store: EpisodeStore, ids: list[str]) -> pa.Table:
    cols = step_columns(cfg)
    return pa.concat_tables([store.read_episode(e, columns=cols) for e in sorted(ids)])


def test_sidecars_hold_label_table_of_all_episodes(cfg, world_model):
    store = EpisodeStore.from_config(cfg)
    ids = ids_of(store)
    valuer = EpisodeValuer.from_config(world_model, store, cfg)
    result = label_episodes(cfg, store, WM, ids, valuer.value_episodes)
    assert (result.labelled, result.skipped, result.unreadable) == (len(ids), 0, {})
    assert result.episode_ids == sorted(ids) and store.labelled_ids(WM) == set(ids)

    table = concatenated(cfg, store, ids)
    values = np.concatenate([store.read_labels(WM, e).column("value").to_numpy() for e in ids])
    expected = label_table(table, values, cfg.rl, env_t_max=env_t_max(cfg))
    got = {c: [] for c in ("advantage", "indicator", "return", "reward")}
    for eid in ids:
        labels = store.read_labels(WM, eid)
        assert read_label_meta(labels)["wm_version"] == WM
        for c in got:
            got[c].append(labels.column(c).to_numpy())
    np.testing.assert_array_equal(np.concatenate(got["advantage"]), expected.advantage)
    np.testing.assert_array_equal(np.concatenate(got["indicator"]), expected.indicator)
    np.testing.assert_array_equal(np.concatenate(got["return"]), expected.returns)
    np.testing.assert_array_equal(np.concatenate(got["reward"]), expected.reward)
    assert result.thresholds == expected.thresholds.epsilon
    assert set(result.thresholds) == {"a", "b"}

    m = result.metrics
    assert m["adv/steps"] == result.steps == table.num_rows
    assert m["adv/pos_frac"] == pytest.approx(expected.indicator.mean())
    assert -1 <= m["value/kendall_tau"] <= 1 and m["value/mae"] >= 0
    for task in ("a", "b"):
        assert f"adv/task/{task}/pos_frac" in m and f"threshold/task/{task}/epsilon" in m
        assert 0 < result.plots.advantages[task].size <= 5000
        curves = result.plots.curves[task]
        assert 2 <= len(curves) <= 3 and {c.success for c in curves} == {True, False}
        for c in curves:
            np.testing.assert_array_equal(c.value, store.read_labels(WM, c.episode_id)["value"])
            assert c.step.shape == c.value.shape == c.returns.shape
    # three takeovers (4 human steps each): found, and their windows reported, not dropped here
    report = result.interventions
    assert (report.takeovers, report.handbacks, report.episodes_with_interventions) == (3, 3, 3)
    # takeover at 6: window [4, 11); hand-back at 10: [8, 15); together 11 steps per episode
    assert report.removed == 3 * 11
    assert m["interventions/removed_steps"] == report.removed
    assert m["adv/kept_frac"] == pytest.approx(1 - report.removed / result.steps)
    assert isinstance(result.collapse.collapsed, bool) and result.collapse.reason
    assert m["collapse/alarm"] == float(result.collapse.collapsed)
    # the value report: on the episodes the world-model fit leaves out (stable id hash)
    report = result.value_report
    held = heldout_mask(result.episode_ids, cfg.training.world_model.holdout_fraction)
    assert report is not None and report.overall.heldout_episodes == int(held.sum()) > 0
    assert m["value/heldout/episodes"] == held.sum()
    assert {r.task for r in report.tasks} == {"a", "b"}
    assert "value/insample/kendall_tau" in m and "tau wm" in report.table()
    # P(I=1) by outcome and position, human steps (forced to 1) left out
    sep = result.separation
    assert sep is not None and sep.overall.human_steps == 3 * 4 and sep.n_steps == 5
    assert 0 <= m["label/pos_frac_success"] <= 1 and "label/task/a/pos_frac_final" in m


def test_labelled_episodes_are_read_back_and_still_fitted(cfg, world_model):
    store = EpisodeStore.from_config(cfg)
    ids = ids_of(store)
    valuer = EpisodeValuer.from_config(world_model, store, cfg)
    asked: list[list[str]] = []

    def value(todo: list[str]) -> ValuedEpisodes:
        asked.append(list(todo))
        return valuer.value_episodes(todo)

    early, late = ids[:5], ids[5:]
    label_episodes(cfg, store, WM, early, value)
    before = {e: store.read_labels(WM, e) for e in early}
    result = label_episodes(cfg, store, WM, ids, value)
    assert asked == [early, late]  # the first five were never valued again
    assert (result.labelled, result.skipped) == (len(late), len(early))
    for eid in early:  # existing sidecars are left as they were
        assert store.read_labels(WM, eid).equals(before[eid])

    # thresholds and new labels come from ALL ids: stored values + new ones
    table = concatenated(cfg, store, ids)
    values = np.concatenate([store.read_labels(WM, e).column("value").to_numpy() for e in ids])
    expected = label_table(table, values, cfg.rl, env_t_max=env_t_max(cfg))
    assert result.thresholds == expected.thresholds.epsilon
    n_early = sum(store.lookup(e).num_steps for e in early)
    new = np.concatenate([store.read_labels(WM, e).column("indicator").to_numpy() for e in late])
    np.testing.assert_array_equal(new, expected.indicator[n_early:])

    # everything labelled: nothing is valued, everything is skipped
    again = label_episodes(cfg, store, WM, ids, value)
    assert (again.labelled, again.skipped, len(asked)) == (0, len(ids), 2)
    assert again.thresholds == result.thresholds


def test_an_unreadable_episode_is_reported_and_the_rest_labelled(cfg, world_model):
    store = EpisodeStore.from_config(cfg)
    ids = ids_of(store)
    bad = ids[3]
    path = Path(cfg.store.root) / store.lookup(bad).path
    path.write_bytes(b"PAR1 this is not parquet PAR1")
    valuer = EpisodeValuer.from_config(world_model, store, cfg)
    result = label_episodes(cfg, store, WM, ids, valuer.value_episodes)
    assert list(result.unreadable) == [bad] and "quarantine" in result.unreadable[bad]
    assert result.labelled == len(ids) - 1 and bad not in result.episode_ids
    assert store.labelled_ids(WM) == set(ids) - {bad}
    assert any(n["original_path"].endswith(f"{bad}.parquet") for n in store.quarantined())

    # an episode gone between listing and valuing is reported by the valuer as well
    gone = EpisodeValuer.from_config(world_model, store, cfg).value_episodes([bad, ids[0]])
    assert set(gone.unreadable) == {bad} and set(gone.values) == {ids[0]}


def oracle(cfg: RampConfig, store: EpisodeStore):
    """Values of a world model that learned the data: the mean return of the task's episodes
    at each step. Where the observation decides the outcome it is exact."""

    def value(todo: list[str]) -> ValuedEpisodes:
        table = concatenated(cfg, store, todo)
        returns = label_table(table, np.zeros(table.num_rows, np.float32), cfg.rl).returns
        key = [
            f"{t}/{s}"
            for t, s in zip(table["task"].to_pylist(), table["step"].to_pylist(), strict=True)
        ]
        sums: dict[str, list[float]] = {}
        for k, g in zip(key, returns, strict=True):
            sums.setdefault(k, []).append(float(g))
        v = np.array([np.mean(sums[k]) for k in key], np.float32)
        out, start = {}, 0
        for eid in sorted(todo):
            n = store.lookup(eid).num_steps
            out[eid] = v[start : start + n]
            start += n
        return ValuedEpisodes(out)

    return value


def test_identical_successes_collapse_the_advantages(tmp_path):
    """Every episode succeeds the same way: a world model that learns the data predicts every
    return, so every advantage is 0 and the alarm fires. The same observations with outcomes
    the observation cannot tell apart keep advantages alive."""
    collapsed = make_config(tmp_path / "same")
    store = EpisodeStore.from_config(collapsed)
    for k in range(8):
        store.write(episode(f"same-{k}", "a", steps=20, success=True, seed=0))
    result = label_episodes(collapsed, store, WM, ids_of(store), oracle(collapsed, store))
    assert result.collapse.collapsed
    assert any("collapsing to 0" in r for r in result.collapse.reasons), result.collapse.reasons
    assert result.metrics["adv/small_frac"] == 1.0 and result.metrics["collapse/alarm"] == 1.0

    mixed = make_config(tmp_path / "mixed")
    store = EpisodeStore.from_config(mixed)
    for k in range(8):
        store.write(episode(f"mixed-{k}", "a", steps=20, success=k % 2 == 0, seed=0))
    result = label_episodes(mixed, store, WM, ids_of(store), oracle(mixed, store))
    assert not any("collapsing to 0" in r for r in result.collapse.reasons)
    assert result.metrics["adv/small_frac"] < 0.9


def test_pass_refuses_nothing_to_label(cfg):
    store = EpisodeStore.from_config(cfg)
    with pytest.raises(ValueError, match="no episode ids"):
        LabelPass(cfg, store, WM, [])
