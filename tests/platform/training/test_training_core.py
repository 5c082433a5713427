"""The trainers' pure core on the demonstration store, without Ray.

Value targets equal the labeller's returns; the batch stream restarts exactly at any step; the
world model's loss falls; a fit interrupted by an injected fault and resumed from its checkpoint
ends with the very parameters of an uninterrupted fit; a RAMP policy fit (z from a frozen world
model, labels from the sidecars) publishes a checkpoint that loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import (
    LABEL_INPUTS,
    episode_ids,
    publish_world_model,
    training_config,
    write_labels,
)

from ramp.platform import faults
from ramp.platform.episodes.samples import TrainingSamples
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.models.checkpoints import load_checkpoint
from ramp.platform.rl.labelling import label_table
from ramp.platform.rl.rewards import env_t_max
from ramp.platform.rl.value_report import split_ids
from ramp.platform.training import data, fit, loop


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as a Ray worker with one CPU gets: on this shared 2-core machine
    torch's default of 2 spinning threads made the same steps 10x slower under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(demo_store) -> EpisodeStore:
    return EpisodeStore.from_config(training_config(demo_store))


@pytest.mark.parametrize("gamma", [1.0, 0.97])
def test_value_targets_are_the_labellers_returns(store, gamma):
    cfg = training_config(store.root, **{"rl.advantage.gamma": gamma})
    ids = episode_ids(store)
    limits = env_t_max(cfg)
    targets = data.value_targets(store, ids, cfg.rl, limits)
    table = store.read(columns=LABEL_INPUTS)
    zeros = np.zeros(table.num_rows, np.float32)
    expected = label_table(table, zeros, cfg.rl, env_t_max=limits).returns
    got = np.concatenate([targets.returns[e] for e in ids])
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= -1.0 and got.max() <= 0.0  # normalised per task
    # one reward scale over the whole id set, fixed by the env's step limit (envs.env.max_steps)
    assert set(targets.scale.t_max) == {e.task for e in store.episodes()}
    assert set(targets.scale.t_max.values()) == {cfg.envs.env.max_steps}
    assert set(targets.scale.t_max_source.values()) == {"env"}


def _stream(store, cfg, start_step, world_size=1, rank=0, n=3):
    tcfg = cfg.training.world_model.model_copy(update={"batch_size": 64})
    samples = data.training_samples(
        cfg, store, episode_ids(store), tcfg, round_=0, rank=rank, world_size=world_size
    )
    it = data.batches(samples, 64, max_state_dim=40, max_action_dim=4, start_step=start_step)
    out = []
    for _ in range(n):
        b = next(it)
        out.append(list(zip(b["episode_id"], b["step"].tolist(), strict=True)))
    return out


def test_batches_restart_exactly_at_any_step_across_epochs(store):
    cfg = training_config(store.root)
    full = _stream(store, cfg, 0, n=10)  # ~442 samples: an epoch is ~6.9 batches of 64
    assert full[0] != full[7]  # a new shuffle in the next epoch
    assert _stream(store, cfg, 6, n=3) == full[6:9]  # straddles the epoch boundary
    assert _stream(store, cfg, 8, n=2) == full[8:10]
    # ranks see disjoint shares of the same epoch
    a = {s for b in _stream(store, cfg, 0, 2, 0, n=3) for s in b}
    b = {s for b in _stream(store, cfg, 0, 2, 1, n=3) for s in b}
    assert not a & b and len(a) == len(b) == 3 * 64


def test_iter_from_reads_only_the_windows_it_yields_from(store, monkeypatch):
    samples = TrainingSamples(store, episode_ids(store), chunk_size=16, future_offsets=[4, 8])
    samples.shuffle_window = 2  # four windows of two episodes
    full = [(s["episode_id"], s["step"]) for s in samples]
    read = []
    original = store.read_episode
    monkeypatch.setattr(
        store, "read_episode", lambda eid, **kw: read.append(eid) or original(eid, **kw)
    )
    start = len(full) - 5  # inside the last window
    assert [(s["episode_id"], s["step"]) for s in samples.iter_from(start)] == full[start:]
    assert len(set(read)) <= 2


def test_samples_the_models_cannot_take_are_refused(store):
    cfg = training_config(store.root)
    bad = cfg.model_copy(update={"sampling": cfg.sampling.model_copy(update={"chunk_size": 8})})
    with pytest.raises(ValueError, match=r"sampling.*chunk_size"):
        data.check_sampling(bad)


def test_world_model_loss_falls_on_the_demo_store(store):
    cfg = training_config(
        store.root,
        **{
            "training.world_model.steps": 24,
            "training.world_model.log_every": 6,
        },
    )
    spec = fit.FitSpec("world-model", 0, tuple(episode_ids(store)), "falls")
    outcome = fit.run(cfg, spec, store=store, publish=False)
    assert outcome is not None
    losses = [h["loss"] for h in outcome.history]
    assert [h["step"] for h in outcome.history] == [6, 12, 18, 24]
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"loss/latent", "loss/value", "loss/proprio", "grad_norm", "lr"} <= set(
        outcome.history[-1]
    )
    # the world model trains on the episodes outside the held-out split only
    train = set(fit.fit_ids(cfg, spec))
    held = set(spec.episode_ids) - train
    fraction = cfg.training.world_model.holdout_fraction
    assert train and held and held == set(split_ids(spec.episode_ids, fraction)[1])
    assert outcome.metrics["data/train_episodes"] == len(train)
    assert outcome.metrics["data/heldout_episodes"] == len(held)
    # the demonstrations have no human in them: cleaning drops nothing, and says so
    steps = sum(e.num_steps for e in store.episodes() if e.episode_id in train)
    assert outcome.metrics["data/steps"] == steps
    assert outcome.metrics["data/cleaned_steps"] == 0


def _checkpoints(base: Path):
    def save(step, write, metrics):
        write(base / f"step-{step}")

    return save


def test_resumed_fit_ends_with_the_parameters_of_an_uninterrupted_one(store, tmp_path, monkeypatch):
    # checkpoint_every 4 but log_every 3: the checkpoint at 4 holds a half-full log window
    over = {
        "training.world_model.steps": 8,
        "training.world_model.checkpoint_every": 4,
        "training.world_model.log_every": 3,
    }
    cfg = training_config(store.root, **over)
    spec = fit.FitSpec("world-model", 0, tuple(episode_ids(store)), "resume")
    whole = fit.run(cfg, spec, store=store, checkpoint=_checkpoints(tmp_path / "a"), publish=False)

    marker = tmp_path / "fired"
    fault = {"train.step": {"at": 6, "action": "raise", "marker": str(marker)}}
    monkeypatch.setenv(faults.ENV, json.dumps(fault))
    with pytest.raises(faults.InjectedFault):
        fit.run(cfg, spec, store=store, checkpoint=_checkpoints(tmp_path / "b"), publish=False)
    assert marker.exists() and not (tmp_path / "b" / "step-8").exists()
    state = loop.read_state(tmp_path / "b" / "step-4", rank=0)
    resumed = fit.run(
        cfg, spec, store=store, state=state, checkpoint=_checkpoints(tmp_path / "b"), publish=False
    )
    assert resumed.resumed_from_step == 4 and whole.resumed_from_step == 0
    assert resumed.history == whole.history
    a = torch.load(tmp_path / "a" / "step-8" / loop.MODEL_FILE)
    b = torch.load(tmp_path / "b" / "step-8" / loop.MODEL_FILE)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # and training moved them
    start = torch.load(tmp_path / "a" / "step-4" / loop.MODEL_FILE)
    assert any(not torch.equal(start[k], a[k]) for k in a)


def test_ramp_policy_fit_publishes_a_checkpoint_that_loads(store):
    cfg = training_config(
        store.root, **{"training.policy.steps": 4, "training.policy.log_every": 2}
    )
    assert cfg.rl.objective.name == "ramp"
    wm = publish_world_model(store, cfg)
    write_labels(store, cfg, wm)
    spec = fit.FitSpec(
        "policy", 0, tuple(episode_ids(store)), "policy", world_model=wm, stage="policy_training"
    )
    fit.check_spec(cfg, store, spec)
    outcome = fit.run(cfg, spec, store=store, extra=lambda s: {"note": "serving specs go here"})
    assert outcome is not None and outcome.version.startswith("policy-r0-")
    assert outcome.path == f"checkpoints/policy/{outcome.version}"
    assert [h["step"] for h in outcome.history] == [2, 4]
    assert np.isfinite(outcome.metrics["loss"]) and "mask/z_dropped" in outcome.metrics
    assert {"data/steps", "data/cleaned_steps"} <= set(outcome.metrics)
    policy = load_checkpoint(store.fs, outcome.path, kind="policy")
    assert policy.checkpoint_version == outcome.version
    assert "metaworld" in policy.norm_stats.embodiments
    recorded = fit.read_result(store, "policy")
    assert recorded is not None and recorded.version == outcome.version


def test_a_policy_without_labels_is_refused_before_training(store):
    cfg = training_config(store.root)
    spec = fit.FitSpec("policy", 0, tuple(episode_ids(store)), "x", world_model="wm-none")
    with pytest.raises(KeyError, match=r"no labels of world model 'wm-none'.*ramp label"):
        fit.check_spec(cfg, store, spec)


def test_a_world_model_fit_with_every_episode_held_out_is_refused(store):
    cfg = training_config(store.root)
    held = split_ids([f"same-success-{k}" for k in range(8)], 0.2)[1]
    assert held  # ids the stable hash holds out at 20%
    spec = fit.FitSpec("world-model", 0, tuple(held), "x")
    with pytest.raises(ValueError, match=r"held-out split.*holdout_fraction 0.2"):
        fit.check_spec(cfg, store, spec)
    off = training_config(store.root, **{"training.world_model.holdout_fraction": 0.0})
    assert fit.fit_ids(off, spec) == spec.episode_ids


@pytest.mark.parametrize("where", ["store version", "local folder"])
def test_init_starts_from_the_named_checkpoint(store, tmp_path, where):
    from ramp.platform.models.checkpoints import save_checkpoint

    cfg = training_config(
        store.root,
        **{
            "training.world_model.steps": 1,
            "training.world_model.warmup_steps": 0,
            "training.world_model.lr": 1e-12,
        },
    )
    init = publish_world_model(store, cfg)
    start = load_checkpoint(store.fs, f"checkpoints/world-model/{init}")
    if where == "local folder":
        save_checkpoint(start, tmp_path / "wm")
        init = str(tmp_path / "wm")
    spec = fit.FitSpec("world-model", 1, tuple(episode_ids(store)), "init", init=init)
    outcome = fit.run(cfg, spec, store=store)
    trained = load_checkpoint(store.fs, outcome.path).state_dict()
    for name, t in start.state_dict().items():  # one step at lr 1e-12: the init's weights
        torch.testing.assert_close(trained[name], t, rtol=0, atol=1e-9)
    assert outcome.version != init and outcome.version.startswith("world-model-r1-")


def test_time_baseline_of_value_targets():
    from ramp.platform.rl.rewards import RewardScale
    from ramp.platform.training.data import ValueTargets

    targets = ValueTargets(
        {
            "a1": np.array([-0.4, -0.2], np.float32),
            "a2": np.array([-0.6, -0.4, -0.2], np.float32),
            "b1": np.array([-1.0], np.float32),
            "held": np.array([9.0], np.float32),
        },
        RewardScale({}, {}, {}),
        {"a1": "a", "a2": "a", "b1": "b", "held": "a"},
    )
    table = targets.time_baseline(["a1", "a2", "b1"])  # "held" is not a training episode
    assert table["a"] == pytest.approx([-0.5, -0.3, -0.2])
    assert table["b"] == pytest.approx([-1.0])
    assert table["*"] == pytest.approx([-2.0 / 3, -0.3, -0.2])
