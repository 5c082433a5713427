"""Labeller actors on the session's Ray: real MetaWorld demonstrations, a tiny world model.

The world model is random-init (build_world_model) and published into each test's private store
copy the way a trainer publishes; the actors load it from there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from round_helpers import copies_of_one_success, tiny_config
from training_helpers import random_world_model

from ramp.actors.labeller import label
from ramp.platform.config import RampConfig
from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.labels import read_label_meta

# MetaWorld's proprio has 39 dimensions; the tiny preset pads to 32.
MODELS = {"models.world_model.max_state_dim": 40}


@pytest.fixture(scope="module")
def world_model(demo_store_template):
    cfg = tiny_config(demo_store_template, **MODELS)
    return random_world_model(EpisodeStore.from_config(cfg), cfg)


def setup(root, world_model, **overrides) -> tuple[RampConfig, EpisodeStore, str]:
    from ramp.platform.models.checkpoints import publish_checkpoint

    cfg = tiny_config(root, **{**MODELS, "training.labeller.num_actors": 2, **overrides})
    version, _ = publish_checkpoint(world_model, str(root), round_=1)
    return cfg, EpisodeStore.from_config(cfg), version


def test_two_actors_label_every_episode_once(ray_cluster, demo_store, world_model):
    cfg, store, version = setup(demo_store, world_model)
    ids = [e.episode_id for e in store.episodes()]
    seen: list[tuple[int, int]] = []
    result = label(
        cfg, world_model=version, episode_ids=ids, progress=lambda d, t: seen.append((d, t))
    )
    assert (result.labelled, result.skipped, result.unreadable) == (len(ids), 0, {})
    assert result.world_model == version and result.episode_ids == sorted(ids)
    assert seen[-1] == (len(ids), len(ids))
    assert store.labelled_ids(version) == set(ids)
    for eid in ids:
        labels = store.read_labels(version, eid)
        assert read_label_meta(labels)["wm_version"] == version
        assert labels.num_rows == store.lookup(eid).num_steps
    assert result.steps == sum(store.lookup(e).num_steps for e in ids)
    assert set(result.thresholds) == {"reach-v3", "button-press-topdown-v3"}
    # the per-task quantile threshold gives the configured fraction (up to ties at the cut)
    assert abs(result.metrics["adv/pos_frac"] - cfg.rl.threshold.positive_fraction) < 0.05

    # the actors' values are the ones this process computes (seeded per episode)
    from ramp.platform.models.checkpoints import load_checkpoint
    from ramp.platform.rl.values import EpisodeValuer

    torch.set_num_threads(1)
    local = EpisodeValuer.from_config(
        load_checkpoint(str(demo_store), f"checkpoints/world-model/{version}"), store, cfg
    )
    np.testing.assert_array_equal(
        local.episode_values(ids[0]), store.read_labels(version, ids[0])["value"].to_numpy()
    )

    again = label(cfg, world_model=version, episode_ids=ids)
    assert (again.labelled, again.skipped) == (0, len(ids))
    assert again.thresholds == result.thresholds


def test_a_corrupt_episode_is_quarantined_and_reported(ray_cluster, demo_store, world_model):
    cfg, store, version = setup(demo_store, world_model, **{"training.labeller.num_actors": 1})
    ids = [e.episode_id for e in store.episodes()]
    bad = ids[2]
    path = demo_store / store.lookup(bad).path
    path.write_bytes(path.read_bytes()[:300] + b"\0" * 300)
    result = label(cfg, world_model=version, episode_ids=ids)
    assert list(result.unreadable) == [bad] and "quarantine" in result.unreadable[bad]
    assert result.labelled == len(ids) - 1 and bad not in result.episode_ids
    assert store.labelled_ids(version) == set(ids) - {bad}
    assert not path.exists()
    assert [n["original_path"] for n in store.quarantined()] == [store_rel(demo_store, path)]


def store_rel(root, path) -> str:
    return str(path.relative_to(root))


def test_identical_successes_raise_the_collapse_alarm(ray_cluster, demo_store, world_model):
    """Every episode succeeds the same way. The verdict and its reasons come back for the
    coordinator to log. (An untrained world model fails the ranking check on any data; that
    advantages themselves collapse to 0 once a world model learns such data is checked in
    tests/platform/rl/test_values_labelling.py.)"""
    cfg, store, version = setup(demo_store, world_model, **{"training.labeller.num_actors": 1})
    ids = copies_of_one_success(store, 6)
    result = label(cfg, world_model=version, episode_ids=ids)
    assert result.labelled == 6 and result.collapse.collapsed
    assert result.collapse.reasons and result.metrics["collapse/alarm"] == 1.0
    assert result.metrics["adv/task/reach-v3/steps"] == result.steps


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_its_chunk_valued_again(
    ray_cluster, demo_store, world_model, tmp_path, monkeypatch
):
    import json

    cfg, store, version = setup(demo_store, world_model, **{"training.labeller.num_actors": 1})
    ids = [e.episode_id for e in store.episodes()]
    marker = tmp_path / "fired"
    spec = {"label.episode": {"at": 3, "action": "kill", "marker": str(marker)}}
    monkeypatch.setenv("RAMP_FAULTS", json.dumps(spec))
    result = label(cfg, world_model=version, episode_ids=ids)
    assert marker.exists()  # the actor died at its fourth episode
    assert (result.labelled, result.unreadable) == (len(ids), {})
    assert store.labelled_ids(version) == set(ids)


def test_an_unknown_world_model_is_refused_before_any_actor_starts(demo_store):
    from ramp.platform.models.checkpoints import CheckpointError

    cfg = tiny_config(demo_store, **MODELS)
    ids = [e.episode_id for e in EpisodeStore.from_config(cfg).episodes()]
    with pytest.raises(CheckpointError, match="world-model-r9-deadbeef"):
        label(cfg, world_model="world-model-r9-deadbeef", episode_ids=ids)
