"""The same RoundTracker and registry against a real `mlflow server` (what a cluster uses)."""

from __future__ import annotations

import uuid

import numpy as np
from mlflow import MlflowClient
from tracking_helpers import fake_checkpoint, make_config

from ramp.deploy.versions import resolve
from ramp.platform.tracking import plots
from ramp.platform.tracking.tracker import RoundTracker


def test_round_tracking_and_registry_through_a_server(mlflow_server, store):
    name = f"server-{uuid.uuid4().hex[:8]}"
    cfg = make_config(store, name=name, uri=mlflow_server.url, policy_model=f"{name}-policy")
    for v in ("policy-r1-aaaaaaaa", "policy-r2-bbbbbbbb"):
        fake_checkpoint(store, "policy", v)

    tracker = RoundTracker.start(cfg, 1)
    tracker.log_config(cfg)
    stage = tracker.stage("policy")
    stage.log_history([{"step": s, "loss": 1.0 / (s + 1)} for s in range(3)])
    stage.log_png("plots/advantages.png", plots.advantage_histograms({"t": np.ones(4)}, {}))
    stage.set_collapse(True, ["adv/std below 0.01"])
    info = tracker.registry.set_alias(
        "policy", "candidate", "policy-r1-aaaaaaaa", run_id=stage.run_id
    )
    # the server refuses local paths as sources: a pointer logged to the stage run instead
    assert info.source == f"runs:/{stage.run_id}/ramp-checkpoints/policy/policy-r1-aaaaaaaa"
    tracker.registry.promote("policy", "policy-r1-aaaaaaaa")
    tracker.registry.set_alias("policy", "candidate", "policy-r2-bbbbbbbb", run_id=stage.run_id)
    assert resolve("production", str(store), tracking=cfg.tracking).version == "policy-r1-aaaaaaaa"
    assert resolve("candidate", str(store), tracking=cfg.tracking).version == "policy-r2-bbbbbbbb"
    assert tracker.url().startswith(f"{mlflow_server.url}/#/experiments/")

    again = RoundTracker.start(cfg, 1, run_id=tracker.run_id)  # a resumed coordinator
    assert again.run_id == tracker.run_id
    assert again.stage("policy", run_id=stage.run_id).run_id == stage.run_id
    again.stage("policy").finish()
    again.finish()

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    exp = client.get_experiment_by_name(name)
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # proxied by the server
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    child = client.get_run(stage.run_id)
    assert child.data.tags["mlflow.parentRunId"] == tracker.run_id
    assert child.data.tags["ramp.collapse"] == "ALARM: adv/std below 0.01"
    assert [m.value for m in client.get_metric_history(stage.run_id, "loss")] == [1.0, 0.5, 1 / 3]
    arts = {a.path for a in client.list_artifacts(stage.run_id, "plots")}
    assert arts == {"plots/advantages.png"}
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert client.get_run(tracker.run_id).data.params["store.root"] == str(store)
