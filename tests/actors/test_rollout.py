"""Rollout workers on a real local Ray: collect with the simulated human, idempotent re-runs, a
worker killed mid-episode, evaluation on shared seeds, and actions from a real Serve endpoint."""

from __future__ import annotations

import json
import secrets
import socket
from pathlib import Path

import numpy as np
import pytest
from round_helpers import TASKS, tiny_config

# a random takeover now and then, so every collect has interventions to record
HUMAN = {"envs.human.random_rate": 0.05, "envs.human.warmup_steps": 2}


def _config(root, **overrides):
    return tiny_config(root, **{**HUMAN, **overrides})


@pytest.fixture(scope="module")
def policies(demo_store_template):
    """Two tiny policies (random weights, statistics of the demonstrations) and what the
    server needs to validate observations (the env's embodiment, saved with the checkpoint)."""
    import torch

    from ramp.deploy.protocol import checkpoint_extra
    from ramp.platform.envs.registry import make_env
    from ramp.platform.episodes import EpisodeStore
    from ramp.platform.models import build_policy, compute_norm_stats

    cfg = _config(demo_store_template)
    with make_env(cfg.envs.env) as env:
        spec = env.spec
    stats = compute_norm_stats(EpisodeStore(str(demo_store_template)))
    torch.manual_seed(0)
    first = build_policy(cfg.models, stats)
    second = build_policy(cfg.models, stats)
    extra = checkpoint_extra({spec.embodiment: spec.embodiment_config()})
    return first, second, extra


def _publish(policies, root: Path) -> tuple[str, str]:
    from ramp.platform.models import publish_checkpoint

    first, second, extra = policies
    v1, _ = publish_checkpoint(first, str(root), round_=0, extra=extra)
    v2, _ = publish_checkpoint(second, str(root), round_=1, extra=extra)
    return v1, v2


def _rollout_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "episodes").rglob("*") if p.is_file() and "rollout" in str(p))


def test_collect_writes_episodes_with_interventions_and_reruns_write_nothing(
    ray_cluster, demo_store, policies
):
    from ramp.actors.rollout import collect
    from ramp.platform.episodes import EpisodeStore

    v1, _ = _publish(policies, demo_store)
    cfg = _config(demo_store)
    seen = []
    res = collect(cfg, round_=1, policy=v1, progress=lambda *a: seen.append(a))
    n = len(TASKS) * cfg.envs.rollout.episodes_per_task
    assert res.episodes == n and len(res.written) == n and not res.existing and not res.retried
    assert seen[-1][:2] == (n, n)
    store = EpisodeStore(str(demo_store))
    stored = store.episodes(round=1, source="rollout")
    assert [e.episode_id for e in stored] == sorted(res.episode_ids)
    assert all(e.episode_id.startswith("rollout-r1-metaworld-") for e in stored)
    human_steps = 0
    for entry in stored:
        t = store.read_episode(entry.episode_id, ["policy_version", "intervention", "round"])
        flags = np.asarray(t.column("intervention").to_pylist())
        versions = np.asarray(t.column("policy_version").to_pylist())
        assert set(versions[~flags]) == {v1}
        assert set(versions[flags]) <= {"human"}
        assert set(t.column("round").to_pylist()) == {1}
        human_steps += int(flags.sum())
    assert human_steps > 0  # the simulated human took over somewhere
    assert res.intervention_rate == pytest.approx(human_steps / sum(e.num_steps for e in stored))
    assert set(res.per_task) == set(TASKS)
    assert set(res.per_policy_version) == {v1}
    assert res.steps == sum(e.num_steps for e in stored) and res.env_steps_per_s > 0

    before = {p: p.stat().st_mtime_ns for p in _rollout_files(demo_store)}
    again = collect(cfg, round_=1, policy=v1)
    assert again.written == [] and sorted(again.existing) == sorted(res.episode_ids)
    assert again.steps == 0 and again.success_rate == res.success_rate
    assert {p: p.stat().st_mtime_ns for p in _rollout_files(demo_store)} == before


@pytest.mark.slow
def test_worker_killed_mid_episode_leaves_no_partial_episode(
    ray_cluster, demo_store, policies, tmp_path, monkeypatch
):
    from ramp.actors.rollout import collect
    from ramp.platform.episodes import EpisodeStore

    v1, _ = _publish(policies, demo_store)
    marker = tmp_path / "killed"
    fault = {"rollout.step": {"at": 15, "action": "kill", "marker": str(marker)}}
    monkeypatch.setenv("RAMP_FAULTS", json.dumps(fault))
    cfg = _config(demo_store, **{"envs.rollout.num_workers": 1})
    res = collect(cfg, round_=2, policy=v1)
    assert marker.exists()  # a worker really died at step 15 of its first episode
    assert res.retried  # ... and its episode ran again on a fresh worker
    n = len(TASKS) * cfg.envs.rollout.episodes_per_task
    store = EpisodeStore(str(demo_store))
    stored = store.episodes(round=2, source="rollout")
    assert len(stored) == n == len(res.written)
    for entry in stored:  # every stored episode is whole: it ran to its own end
        table = store.read_episode(entry.episode_id, ["step", "done"])
        assert table.column("step").to_pylist() == list(range(entry.num_steps))
        assert entry.num_steps == 60 or entry.success
    leftovers = [p for p in (demo_store / "episodes").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_evaluate_uses_the_same_seeds_and_repeats_exactly(ray_cluster, demo_store, policies):
    from ramp.actors.rollout import evaluate
    from ramp.platform.episodes import EpisodeStore

    v1, v2 = _publish(policies, demo_store)
    cfg = _config(demo_store, **{"envs.evaluation.max_steps": 30})
    before = len(EpisodeStore(str(demo_store)).episodes())
    first = evaluate(cfg, round_=1, policies={"candidate": v2, "production": v1})
    second = evaluate(cfg, round_=1, policies={"production": v1})
    cand, prod = first.policies["candidate"], first.policies["production"]
    assert cand.version == v2 and prod.version == v1
    assert first.versions == {"candidate": v2, "production": v1}
    assert first.success == {"candidate": cand.success_rate, "production": prod.success_rate}
    keys = [(o.task, o.seed) for o in cand.outcomes]
    assert keys == [(o.task, o.seed) for o in prod.outcomes]
    assert keys == [(t, s) for t in sorted(first.seeds) for s in first.seeds[t]]
    assert first.seeds == second.seeds
    assert all(o.intervention_steps == 0 for o in cand.outcomes + prod.outcomes)  # no human
    again = second.policies["production"]
    assert [(o.success, o.steps, o.total_reward) for o in again.outcomes] == [
        (o.success, o.steps, o.total_reward) for o in prod.outcomes
    ]
    assert again.success_rate == prod.success_rate and set(prod.per_task) == set(TASKS)
    assert [o.total_reward for o in cand.outcomes] != [o.total_reward for o in prod.outcomes]
    assert len(EpisodeStore(str(demo_store)).episodes()) == before  # nothing written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_collect_with_actions_from_the_serve_endpoint(ray_cluster, demo_store, policies):
    from ray import serve

    from ramp.actors.rollout import collect
    from ramp.deploy import control
    from ramp.platform.episodes import EpisodeStore

    v1, _ = _publish(policies, demo_store)
    token = secrets.token_urlsafe(24)
    cfg = _config(
        demo_store,
        **{
            "serve.port": _free_port(),
            "serve.tokens": {"rollout-bot": token},
            "envs.rollout.action_source": "serve",
            "envs.rollout.serve_token": token,
            "envs.rollout.human": False,
            "envs.rollout.episodes_per_task": 1,
        },
    )
    control.start(cfg, checkpoint=v1)
    try:
        res = collect(cfg, round_=3, policy=v1)
    finally:
        control.stop()
        serve.shutdown()  # the next test that serves picks its own port
    assert res.action_source == "serve" and res.warnings == []
    assert set(res.per_policy_version) == {v1}
    store = EpisodeStore(str(demo_store))
    stored = store.episodes(round=3, source="rollout")
    assert len(stored) == len(TASKS)
    for entry in stored:
        assert entry.policy_versions == [v1] and entry.intervention_steps == 0
