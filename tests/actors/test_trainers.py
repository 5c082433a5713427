"""The Ray Train trainers on the demonstration store, on the session's 2-CPU Ray.

A world-model fit on two workers loses a worker to a kill at step 12 and resumes from its step-10
checkpoint (not from 0), then publishes a checkpoint that loads and carries the serving specs; the
same run name again returns that fit without training. A RAMP policy fit trains on label sidecars
and z from a frozen world model. A driver killed mid-fit is resumed by calling again with the
same run name. Each Ray Train fit costs ~16-21 s of setup here, so there are few of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_helpers import episode_ids, publish_world_model, training_config, write_labels

from ramp.actors.policy_trainer import fit_policy
from ramp.actors.world_model_trainer import fit_world_model
from ramp.deploy.protocol import serving_specs
from ramp.platform import faults
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.models.checkpoints import load_checkpoint, read_config

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]


def test_world_model_fit_on_two_workers_resumes_after_a_worker_is_killed(
    ray_cluster, demo_store, tmp_path, monkeypatch
):
    marker = tmp_path / "fault-fired"
    fault = {"train.step": {"at": 12, "action": "kill", "marker": str(marker)}}
    monkeypatch.setenv(faults.ENV, json.dumps(fault))
    cfg = training_config(
        demo_store,
        **{"training.world_model.num_workers": 2, "training.world_model.cpus_per_worker": 0.5},
    )
    store = EpisodeStore.from_config(cfg)
    ids = episode_ids(store)

    res = fit_world_model(cfg, round_=0, episode_ids=ids, init=None, run_name="wm-r0")

    assert "train.step at 12" in marker.read_text()  # a worker process really died there
    assert res.kind == "world-model" and res.steps == 20
    assert res.resumed_from_step == 10, res  # the step-10 checkpoint, not a restart from 0
    assert res.metrics["failures"] == 1 and res.metrics["num_workers"] == 2
    assert res.metrics["samples_per_s"] > 0 and 0 < res.metrics["setup_s"] < res.metrics["wall_s"]
    assert [h["step"] for h in res.history] == [10, 20]  # steps before the kill are kept
    assert all(h["loss"] > 0 for h in res.history)
    assert res.history[-1]["loss"] == res.metrics["loss"]
    assert res.version.startswith("world-model-r0-")
    assert res.path == f"checkpoints/world-model/{res.version}"
    wm = load_checkpoint(store.fs, res.path, kind="world-model")
    assert wm.checkpoint_version == res.version
    extra = read_config(store.fs, res.path)["extra"]["ramp"]
    assert set(extra["embodiments"]) == {"metaworld"}
    assert set(extra["tasks"]) == {"reach-v3", "button-press-topdown-v3"}

    # the coordinator calling again (it died after the fit, say): the finished fit, not a new one
    t = time.monotonic()
    again = fit_world_model(cfg, round_=0, episode_ids=ids, init=None, run_name="wm-r0")
    assert time.monotonic() - t < 5
    assert again.version == res.version and again.resumed_from_step == 20
    assert again.history == res.history


def test_ramp_policy_fit_trains_on_labels_and_world_model_tokens(ray_cluster, demo_store):
    cfg = training_config(demo_store)
    assert cfg.rl.objective.name == "ramp"
    store = EpisodeStore.from_config(cfg)
    ids = episode_ids(store)
    wm = publish_world_model(store, cfg)  # the labeller's job in production
    write_labels(store, cfg, wm)

    res = fit_policy(
        cfg,
        round_=1,
        episode_ids=ids,
        world_model=wm,
        init=None,
        run_name="policy-r1",
        stage="continual_training",
    )

    assert res.kind == "policy" and res.version.startswith("policy-r1-")
    assert res.resumed_from_step == 0 and res.metrics["failures"] == 0
    assert [h["step"] for h in res.history] == [10, 20]
    assert "mask/z_dropped" in res.metrics  # z from the frozen world model was in the batch
    policy = load_checkpoint(store.fs, res.path, kind="policy")
    assert policy.checkpoint_version == res.version
    # the server can take it as is: embodiment specs and tasks travel with the checkpoint
    config = read_config(store.fs, res.path)
    specs = serving_specs(config, {}, {"metaworld": (39, 4)})
    assert specs["metaworld"].cameras
    assert all(config["extra"]["ramp"]["tasks"].values())


CHILD = """
import sys
import ray
from training_helpers import episode_ids, training_config
from ramp.actors.world_model_trainer import fit_world_model
from ramp.platform.episodes.store import EpisodeStore

cfg = training_config(sys.argv[2], **{"training.world_model.steps": 60})
ray.init(address=sys.argv[1], log_to_driver=False)
ids = episode_ids(EpisodeStore.from_config(cfg))
fit_world_model(cfg, round_=0, episode_ids=ids, init=None, run_name="wm-driver")
print("the fit finished before the driver was killed")
"""


def test_a_driver_killed_mid_fit_is_resumed_by_the_same_run_name(ray_cluster, demo_store, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(CHILD)
    log = (tmp_path / "driver.log").open("w")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, str(script), ray_cluster, str(demo_store)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    snapshot = demo_store / "train-runs" / "wm-driver" / "checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if snapshot.exists() and "checkpoint-step-00000010" in snapshot.read_text():
                break
            time.sleep(0.1)
        assert child.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    cfg = training_config(demo_store, **{"training.world_model.steps": 60})
    ids = episode_ids(EpisodeStore.from_config(cfg))
    res = fit_world_model(cfg, round_=0, episode_ids=ids, init=None, run_name="wm-driver")
    assert res.steps == 60
    assert res.resumed_from_step in (10, 20, 30, 40, 50), res.resumed_from_step
    assert [h["step"] for h in res.history] == [10, 20, 30, 40, 50, 60]


def test_a_fit_the_cluster_cannot_place_fails_with_the_field_instead_of_hanging(
    ray_cluster, demo_store
):
    """Ray Train waits for resources forever; ramp names the field at once (more CPUs than the
    cluster has) or after ``resource_wait_s`` (CPUs held by another actor)."""
    import ray

    from ramp.actors.training import wait_for_resources

    cfg = training_config(demo_store, **{"training.world_model.cpus_per_worker": 3.0})
    with pytest.raises(ValueError, match=r"training\.world_model.*3 CPUs.*cluster has 2"):
        wait_for_resources("world-model", cfg.training.world_model)

    @ray.remote(num_cpus=0)
    class Holder:
        def ready(self) -> bool:
            return True

    free = ray.available_resources().get("CPU", 0.0)
    holder = Holder.options(num_cpus=free).remote()  # every CPU the session has free now
    try:
        ray.get(holder.ready.remote())
        tcfg = training_config(
            demo_store,
            **{"training.policy.cpus_per_worker": 0.5, "training.policy.resource_wait_s": 2},
        ).training.policy
        said: list[str] = []
        with pytest.raises(TimeoutError, match=r"training\.policy\.resource_wait_s.*0\.5 CPUs"):
            wait_for_resources("policy", tcfg, said.append)
        assert said and "waiting for 0.5 CPUs" in said[0]
    finally:
        ray.kill(holder)
