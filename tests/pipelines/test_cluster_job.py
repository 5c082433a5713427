"""Beyond one machine: rounds submitted with `ray job submit` to a two-node loopback cluster.

The head has no CPUs, so rollout workers, trainers and labellers can only run on the worker node;
each node has its own temp dir; the store is on the Ceph S3 server and MLflow is a real server,
so nothing can rely on a shared local disk. The config travels in the job's working dir.
"""

from __future__ import annotations

import os

import pytest
from cluster_helpers import LoopbackCluster
from round_helpers import tiny_config

from ramp.platform.config import dump_config
from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.copy import copy_store
from ramp.platform.rounds.manifest import load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(s3_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["AWS_REQUEST_CHECKSUM_CALCULATION"] = "when_required"
    c = LoopbackCluster.start(env)
    try:
        yield c
    finally:
        c.stop()


def test_rounds_as_ray_jobs_on_two_nodes_with_s3_and_an_mlflow_server(
    cluster, s3_bucket, mlflow_server, demo_store_template, tmp_path
):
    root = f"s3://{s3_bucket}/ramp"
    copy_store(EpisodeStore(str(demo_store_template)), EpisodeStore(root))
    cfg = tiny_config(
        root,
        **{
            "tracking.enabled": True,
            "tracking.uri": mlflow_server.url,
            "training.world_model.num_workers": 2,
            "training.world_model.cpus_per_worker": 0.5,
        },
    )
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "round.yaml").write_text(dump_config(cfg))

    for r in (0, 1):
        out = cluster.submit(str(job_dir), "ramp", "round", "--config", "round.yaml")
        assert out.returncode == 0, f"round {r}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        assert "succeeded" in out.stdout + out.stderr

    store = EpisodeStore.from_config(cfg)
    m0, m1 = load_manifest(store.fs, 0), load_manifest(store.fs, 1)
    assert m0.status == "done" and m1.status == "done"
    assert len(store.episodes(round=1, source="rollout")) == 4
    for kind, version in (("world-model", m1.versions.world_model), ("policy", m1.versions.policy)):
        assert store.fs.exists(f"checkpoints/{kind}/{version}/config.json"), version

    # where the work ran: every actor that needed a CPU ran on the worker node
    nodes = cluster.state("nodes")
    worker_ids = {n["node_id"] for n in nodes if n["resources_total"].get("worker")}
    head_ids = {n["node_id"] for n in nodes if n["resources_total"].get("head")}
    assert len(worker_ids) == 1 and len(head_ids) == 1
    placed: dict[str, set[str]] = {}
    for a in cluster.state("actors"):
        name = a["class_name"]
        if any(k in name for k in ("Rollout", "Labeller", "TrainWorker")):
            placed.setdefault(name, set()).add(a["node_id"])
    assert any("Rollout" in n for n in placed) and any("Labeller" in n for n in placed), placed
    assert any("Train" in n for n in placed), placed
    for name, node_ids in placed.items():
        assert node_ids <= worker_ids, (name, node_ids)

    # MLflow (a server) holds both rounds
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`ramp.round` = '1'",
    )
    assert runs, "round 1 has no MLflow run on the server"
