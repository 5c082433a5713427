"""End to end on the tiny preset: round 0 and round 1 of the loop, with faults (see conftest).

Everything here reads what the shared run left behind: the store, the manifests, MLflow.
"""

from __future__ import annotations

import collections
import signal

import pyarrow.parquet as pq
import pytest

from ramp.platform.episodes import EpisodeStore
from ramp.platform.rounds.manifest import load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tiny_rounds) -> EpisodeStore:
    return EpisodeStore.from_config(tiny_rounds.cfg)


@pytest.fixture(scope="module")
def m0(tiny_rounds, store):
    return load_manifest(store.fs, 0)


@pytest.fixture(scope="module")
def m1(tiny_rounds, store):
    return load_manifest(store.fs, 1)


def test_coordinator_killed_after_the_world_model_resumes_there(tiny_rounds, m0, store):
    assert tiny_rounds.killed.returncode == -signal.SIGKILL, tiny_rounds.killed.stderr[-2000:]
    assert (tiny_rounds.markers / "after-world-model").exists()
    assert m0.status == "done"
    assert m0.stages["world_model"].attempts == 1  # not trained again after the kill
    assert m0.stages["freeze"].attempts == 1
    for stage in ("label", "policy", "evaluate", "promote"):
        assert m0.stages[stage].state == "done" and m0.stages[stage].attempts == 1, stage
    # no duplicate episodes or labels: one sidecar per training episode, one file per id
    ids = m0.training_ids()
    assert len(ids) == len(set(ids))
    assert store.labelled_ids(m0.versions.world_model) == set(ids)
    files = [p.stem for p in (tiny_rounds.root / "episodes").rglob("*.parquet")]
    assert len(files) == len(set(files))
    assert "resuming" in tiny_rounds.resumed.stderr


def test_train_worker_killed_mid_fit_resumes_from_its_checkpoint(tiny_rounds, m0):
    assert (tiny_rounds.markers / "train-step").exists()
    wm = m0.stages["world_model"].result
    assert wm["steps"] == tiny_rounds.cfg.training.world_model.steps
    assert wm["resumed_from_step"] == 10, wm  # checkpoint_every 10, killed at step 12


def test_corrupt_file_is_quarantined_and_the_round_completes(tiny_rounds, m0, store):
    assert tiny_rounds.corrupt_id in m0.excluded
    assert tiny_rounds.corrupt_id not in m0.training_ids()
    reasons = {q["original_path"]: q["reason"] for q in store.quarantined()}
    assert any(tiny_rounds.corrupt_id in path for path in reasons), reasons
    assert all(reasons.values())
    assert m0.stages["freeze"].result["quarantined"] == 1


def test_rollout_worker_killed_mid_episode_leaves_no_partial_episode(tiny_rounds, m1, store):
    assert (tiny_rounds.markers / "rollout-step").exists()
    cfg = tiny_rounds.cfg
    want = cfg.envs.rollout.episodes_per_task * len(cfg.envs.env.task_list)
    entries = store.episodes(round=1, source="rollout")
    assert len(entries) == want
    for e in entries:  # every stored rollout is whole: steps 0..T-1, a last step, readable
        table = store.read_episode(e.episode_id)
        assert table.column("step").to_pylist() == list(range(e.num_steps))
        assert table.column("policy_version").to_pylist()[0] in (
            m1.versions.production_before,
            "human",
        )
    collect = m1.stages["collect"].result
    assert len(collect["retried"]) >= 1, collect
    leftovers = [p for p in (tiny_rounds.root / "episodes").rglob("*") if p.name.startswith(".tmp")]
    assert not leftovers


def test_round_one_retrains_on_base_plus_rollouts_and_gates(tiny_rounds, m0, m1, store):
    assert m1.status == "done"
    assert set(m0.training_ids()) < set(m1.training_ids())
    assert m1.versions.production_before == m0.versions.production
    assert m1.versions.world_model != m0.versions.world_model
    assert store.labelled_ids(m1.versions.world_model) >= set(m1.training_ids())
    gate = m1.stages["promote"].result["gate"]
    assert gate["production_success"] is not None and gate["candidate_success"] is not None
    expected = m1.versions.policy if gate["promote"] else m0.versions.production
    assert m1.versions.production == expected
    assert store.current_round() == 2
    sources = collections.Counter(e.source for e in store.episodes(ids=m1.training_ids()))
    assert sources["rollout"] > 0 and sources["demos"] > 0


def test_labels_are_tagged_with_their_world_model(tiny_rounds, m1, store):
    eid = m1.training_ids()[0]
    table = store.read_labels(m1.versions.world_model, eid)
    meta = pq.read_schema(str(next((tiny_rounds.root / "labels").rglob(f"{eid}.parquet")))).metadata
    assert table.num_rows > 0 and meta is not None


def test_every_round_is_tracked_in_mlflow(tiny_rounds, m0, m1):
    from mlflow import MlflowClient

    from ramp.platform.tracking.registry import Registry
    from ramp.platform.tracking.uri import tracking_uri

    cfg = tiny_rounds.cfg
    client = MlflowClient(tracking_uri(cfg.tracking, cfg.store.root))
    experiments = [e.experiment_id for e in client.search_experiments()]
    rounds = client.search_runs(experiments, filter_string="tags.`ramp.kind` = 'round'")
    by_round = collections.Counter(r.data.tags["ramp.round"] for r in rounds)
    assert by_round == {"0": 1, "1": 1}  # round 0 was resumed into the same run
    run1 = client.get_run(m1.mlflow_run_id)
    assert run1.info.status == "FINISHED"
    tags, metrics = run1.data.tags, run1.data.metrics
    assert tags["ramp.world_model.version"] == m1.versions.world_model
    assert tags["ramp.policy.version"] == m1.versions.policy
    assert tags["ramp.deployment"] == m1.versions.production
    assert tags["ramp.collapse"].startswith(("ALARM", "ok"))
    for key in (
        "collect/success_rate",
        "label/positive_fraction",
        "evaluate/success/candidate",
        "world_model/loss",
        "policy/loss",
        "collapse/alarm",
    ):
        assert key in metrics, (key, sorted(metrics)[:40])
    history = client.get_metric_history(run1.info.run_id, "world_model/loss")
    assert len(history) >= 2  # the per-step curve, not only the final value
    stages = client.search_runs(
        experiments, filter_string=f"tags.`mlflow.parentRunId` = '{m1.mlflow_run_id}'"
    )
    assert {r.data.tags["ramp.stage"] for r in stages} == set(m1.stages)
    artifacts = {a.path for a in client.list_artifacts(m1.mlflow_run_id)}
    assert {"advantages.png", "value_curves.png"} <= artifacts, artifacts
    registry = Registry.from_config(cfg)
    assert registry.alias("policy", "production") == m1.versions.production
    assert registry.alias("policy", "candidate") == m1.versions.policy
    assert registry.alias("world-model", "candidate") == m1.versions.world_model


def test_quickstart_summary_pairs_round0_and_final_on_fresh_seeds(tiny_rounds, m0, m1, store):
    """The quickstart's closing comparison and summary JSON, on the shared rounds: round 0's
    policy and the final one run the same fresh seeds (not the gate's) and the difference is
    the paired one, with its interval."""
    import json

    from ramp.pipelines.quickstart import closing_comparison, write_summary
    from ramp.platform.stats import wilson_interval

    lines: list[str] = []
    final = closing_comparison(tiny_rounds.cfg, [m0, m1], 2, 2_000_000, lines.append)
    assert lines and "closing comparison" in lines[0]
    tasks = tiny_rounds.cfg.envs.env.task_list
    assert final["episodes_per_policy"] == 2 * len(tasks)
    assert final["seeds"] == [2_000_000, 2_000_001]
    gate_seeds = m1.stages["evaluate"].result["seeds"]
    assert all(2_000_000 not in s for s in gate_seeds.values())
    lo, hi = final["interval"]
    assert lo <= final["difference"] <= hi
    assert final["difference"] == pytest.approx(
        final["final"]["success"] - final["round0"]["success"]
    )
    assert final["round0"]["policy"] == m0.versions.production
    assert final["final"]["policy"] == m1.versions.production
    path = write_summary(tiny_rounds.cfg, [m0, m1], final)
    body = json.loads(store.fs.read_text("quickstart-summary.json"))
    assert path.endswith("quickstart-summary.json") and body["format_version"] == 1
    rows = body["rounds"]
    assert [r["round"] for r in rows] == [0, 1]
    for key in (
        "production_success",
        "production_interval",
        "candidate_success",
        "decision",
        "p_value",
        "value_tau_heldout",
        "value_tau_time_baseline",
        "episodes_per_policy",
    ):
        assert all(key in r for r in rows), key
    assert rows[0]["decision"] == "promote"  # the first policy
    for r, m in zip(rows, (m0, m1), strict=True):  # production's success with its 95% interval
        ev = m.stages["evaluate"].result["policies"]
        label = "candidate" if r["decision"] == "promote" else "production"
        k = round(ev[label]["success_rate"] * ev[label]["episodes"])
        assert r["interval_level"] == 0.95
        assert r["production_interval"] == pytest.approx(
            list(wilson_interval(k, ev[label]["episodes"], 0.95))
        )
    for r in rows:  # every task's held-out tau sits next to its time-only baseline's
        per_task = r["value_tau_per_task"]
        assert set(per_task) == set(tasks), per_task
        assert all(set(v) == {"heldout", "time_baseline"} for v in per_task.values())
    assert rows[1]["p_value"] is not None and rows[1]["episodes_per_policy"] == 2 * len(tasks)
    assert body["final_vs_round0"]["interval"] == [lo, hi]
