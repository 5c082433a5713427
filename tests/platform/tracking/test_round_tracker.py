"""RoundTracker on a real MLflow SQLite store: nested runs, resume without duplicates, params,
metrics, histories, artifacts, link tags and the collapse alarm, all read back with MlflowClient."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow import MlflowClient
from tracking_helpers import make_config

from ramp.platform.rl.collapse import CollapseVerdict
from ramp.platform.tracking import plots
from ramp.platform.tracking import uri as U
from ramp.platform.tracking.runs import PARAM_VALUE_LIMIT, clean_key, flatten, truncate
from ramp.platform.tracking.tracker import RoundTracker, TrackingDisabledError


def _client(cfg) -> MlflowClient:
    uri = U.tracking_uri(cfg.tracking, cfg.store.root)
    return MlflowClient(uri, uri)


def _all_runs(cfg) -> list:
    client = _client(cfg)
    exp = client.get_experiment_by_name(cfg.name)
    return client.search_runs([exp.experiment_id])


def test_truncate_clean_key_and_flatten():
    long = "x" * 1234
    cut = truncate(long, PARAM_VALUE_LIMIT)
    kept, marker = cut.split("...[+")
    assert len(cut) == PARAM_VALUE_LIMIT and kept == long[: len(kept)]
    assert len(kept) + int(marker.removesuffix(" chars]")) == len(long)  # says what was cut
    assert truncate("short", 500) == "short"
    for n in (499, 500, 501, 10_000, 10**7):
        assert len(truncate("y" * n, 500)) == min(n, 500)
    assert clean_key("adv/task/pick place/pos_frac") == "adv/task/pick place/pos_frac"
    assert clean_key("adv/task/tâche:1/x") == "adv/task/t_che_1/x"
    assert clean_key("/../a//b") == "a/b" and clean_key("../x") == "_../x"
    assert len(clean_key("k" * 400)) == 250
    flat = flatten(
        {
            "a": {"b": 1, "c": [1, 2], "d": None, "e": True},
            "serve": {"tokens": {"robot": "**********"}, "api_token": "t0ps3cret"},
            "s3": {"secret_access_key": "abc", "access_key_id": None},
        }
    )
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]"
    assert flat["a.d"] == "null" and flat["a.e"] == "true"
    assert flat["serve.tokens"] == "***" and flat["serve.api_token"] == "***"
    assert flat["s3.secret_access_key"] == "***" and flat["s3.access_key_id"] == "null"


def test_round_run_with_nested_stages_params_metrics_artifacts_and_tags(cfg):
    tracker = RoundTracker.start(cfg, 3)
    assert not tracker.resumed
    changed = tracker.log_config(cfg)
    assert changed == []
    wm = tracker.stage("world_model")
    wm.log_metrics({"loss": 0.5, "samples_per_s": np.float32(120.0), "ok": True, "note": "x"})
    history = [{"step": s, "loss": 1.0 / (s + 1), "lr": 1e-3} for s in range(0, 50, 10)]
    assert wm.log_history(history, prefix="train/") == 10
    wm.finish()
    label = tracker.stage("label")
    adv = {"pick": np.random.default_rng(0).normal(size=500), "push": np.linspace(-1, 1, 50)}
    label.log_png(
        "plots/advantages.png", plots.advantage_histograms(adv, {"pick": 0.3, "push": 0.0})
    )
    label.log_metrics({"adv/task/pick/pos_frac": 0.3}, step=3)
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    label.log_figure("plots/custom.png", fig)
    label.finish("FAILED")
    tracker.link(episodes=120, world_model="world-model-r3-aaaa1111", policy="policy-r3-bbbb2222")
    tracker.link(deployment="policy-r3-bbbb2222")
    tracker.set_collapse(CollapseVerdict(True, ["adv/std 0.001 < 0.01", "value tau 0.99"]))
    tracker.log_manifest({"round": 3, "episode_ids": ["e1", "e2"]})
    tracker.finish()

    client = _client(cfg)
    runs = {r.info.run_name: r for r in _all_runs(cfg)}
    assert set(runs) == {"round-3", "r3-world_model", "r3-label"}
    root_run = runs["round-3"]
    assert root_run.info.run_id == tracker.run_id
    assert root_run.info.status == "FINISHED"
    for name, status in (("r3-world_model", "FINISHED"), ("r3-label", "FAILED")):
        assert runs[name].data.tags["mlflow.parentRunId"] == tracker.run_id
        assert runs[name].info.status == status
    tags = root_run.data.tags
    assert tags["ramp.round"] == "3" and tags["ramp.episodes.count"] == "120"
    assert tags["ramp.world_model.version"] == "world-model-r3-aaaa1111"
    assert tags["ramp.policy.version"] == "policy-r3-bbbb2222"
    assert tags["ramp.deployment"] == "policy-r3-bbbb2222"
    assert tags["ramp.episodes.manifest"].endswith("rounds/3/manifest.json")
    assert len(tags.get("mlflow.source.git.commit", "")) == 40  # the tests run in a git checkout
    assert tags["ramp.collapse"].startswith("ALARM: adv/std 0.001 < 0.01; value tau")
    assert root_run.data.metrics["collapse/alarm"] == 1.0
    params = root_run.data.params
    assert params["training.policy.lr"] == str(cfg.training.policy.lr)
    assert params["store.root"] == str(cfg.store.root)
    assert all(len(v) <= PARAM_VALUE_LIMIT for v in params.values())

    wm_run = runs["r3-world_model"]
    assert wm_run.data.metrics == {
        "loss": 0.5,
        "samples_per_s": 120.0,
        "ok": 1.0,
        **{"train/loss": 1.0 / 41, "train/lr": 1e-3},
    }
    hist = client.get_metric_history(wm_run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in hist] == [(h["step"], h["loss"]) for h in history]

    arts = tracker.artifacts()
    assert {"config.yaml", "manifest.json"} <= set(arts)
    label_arts = [a.path for a in client.list_artifacts(runs["r3-label"].info.run_id, "plots")]
    assert label_arts == ["plots/advantages.png", "plots/custom.png"]
    local = client.download_artifacts(runs["r3-label"].info.run_id, "plots/advantages.png")
    with open(local, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    manifest = client.download_artifacts(tracker.run_id, "manifest.json")
    with open(manifest) as f:
        assert json.load(f)["episode_ids"] == ["e1", "e2"]
    assert U.artifact_location(cfg.tracking, cfg.store.root) in root_run.info.artifact_uri


def test_resume_by_id_or_by_tags_reuses_the_runs(cfg):
    first = RoundTracker.start(cfg, 1)
    first.log_config(cfg)
    wm = first.stage("world_model")
    history = [{"step": s, "loss": float(10 - s)} for s in range(5)]
    wm.log_history(history)
    wm.log_metrics({"final": 1.0})
    ids = {"round": first.run_id, "world_model": wm.run_id}
    # the coordinator dies here: runs stay RUNNING

    again = RoundTracker.start(cfg, 1, run_id=ids["round"])
    assert again.resumed and again.run_id == ids["round"]
    assert again.log_config(cfg) == []  # same values again: no error, nothing changed
    wm2 = again.stage("world_model", run_id=ids["world_model"])
    assert wm2.resumed and wm2.run_id == ids["world_model"]
    # a replayed history (the trainer resumed from a checkpoint) is not logged twice,
    # a re-computed point with a new value is
    assert wm2.log_history([*history, {"step": 5, "loss": 5.0}]) == 1
    assert wm2.log_metrics({"final": 1.0}) == 0
    assert wm2.log_metrics({"final": 0.9}) == 1

    # no ids at all (died before the manifest was saved): found by tags, still no duplicates
    third = RoundTracker.start(cfg, 1)
    assert third.run_id == ids["round"]
    assert third.stage("world_model").run_id == ids["world_model"]
    label = third.stage("label")
    assert not label.resumed

    runs = _all_runs(cfg)
    assert len(runs) == 3  # round, world_model, label
    client = _client(cfg)
    by_id = {r.info.run_id: r for r in runs}
    assert by_id[ids["round"]].data.tags["ramp.attempts"] == "3"
    steps = [(m.step, m.value) for m in client.get_metric_history(ids["world_model"], "loss")]
    assert steps == [(s, float(10 - s)) for s in range(5)] + [(5, 5.0)]
    assert by_id[ids["world_model"]].data.metrics["final"] == 0.9  # the latest value wins
    assert by_id[ids["world_model"]].info.status == "RUNNING"

    # a changed config value is reported and tagged, never an MLflow error
    edited = cfg.model_copy(deep=True)
    edited.training.policy.lr = cfg.training.policy.lr * 2
    assert third.log_config(edited) == ["training.policy.lr"]
    assert third.tags()["ramp.params.changed"] == "training.policy.lr"


def test_a_finished_round_is_not_taken_over_without_its_id(cfg):
    done = RoundTracker.start(cfg, 2)
    done.finish()
    redo = RoundTracker.start(cfg, 2)
    assert redo.run_id != done.run_id and not redo.resumed
    explicit = RoundTracker.start(cfg, 2, run_id=done.run_id)
    assert explicit.run_id == done.run_id and explicit.status() == "RUNNING"
    other_round = RoundTracker.start(cfg, 4, run_id=done.run_id)  # a wrong id is not reused
    assert other_round.run_id not in (done.run_id, redo.run_id)


def test_stage_run_as_context_manager_and_stale_ids(cfg):
    tracker = RoundTracker.start(cfg, 5)
    with pytest.raises(RuntimeError), tracker.stage("policy") as stage:
        raise RuntimeError("trainer died")
    assert stage.status() == "FAILED"
    with tracker.stage("policy", run_id="0" * 32) as again:  # an id from another server
        pass
    assert again.run_id == stage.run_id and again.status() == "FINISHED"


def test_collapse_ok_and_disabled_tracking(cfg, store):
    tracker = RoundTracker.start(cfg, 6)
    tracker.set_collapse(False)
    assert tracker.tags()["ramp.collapse"] == "ok"
    assert tracker.metrics()["collapse/alarm"] == 0.0
    with pytest.raises(TrackingDisabledError):
        RoundTracker.start(make_config(store, enabled=False), 1)
    assert tracker.registry is not None
    assert RoundTracker.start(make_config(store, registry=False), 6).registry is None


def test_many_metrics_and_params_are_batched(cfg):
    tracker = RoundTracker.start(cfg, 7)
    n = tracker.log_history([{"step": s, **{f"m{i}": s * i for i in range(30)}} for s in range(50)])
    assert n == 1500
    tracker.log_params({f"p{i}": i for i in range(250)})
    run = _client(cfg).get_run(tracker.run_id)
    assert len(run.data.params) == 250 and len(run.data.metrics) == 30
