"""The chunked policy adapter and the lock-step runner (no Ray): a tiny RAMP policy acting in a
real MetaWorld env through the server's batch code, re-planning every replan_steps actions."""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import require

from ramp.platform.envs.lockstep import EpisodeJob

TASK = "reach-v3"


@pytest.fixture(scope="module")
def env():
    require("metaworld", "metaworld")
    from ramp.platform.envs.registry import make_env

    env = make_env(
        "metaworld", tasks=[TASK, "button-press-topdown-v3"], height=64, width=64, state="proprio"
    )
    yield env
    env.close()


@pytest.fixture(scope="module")
def policy(env):
    import torch

    from ramp.platform.models import build_policy, stats_from_arrays

    spec = env.spec
    rng = np.random.default_rng(0)
    stats = stats_from_arrays(
        {
            spec.embodiment: (
                rng.normal(size=(200, len(spec.state_names))),
                rng.uniform(-1, 1, (200, len(spec.action_names))),
            )
        }
    )
    torch.manual_seed(0)
    return build_policy("tiny", stats).eval()


def _source(policy, **kw):
    from ramp.platform.envs.chunking import PolicyChunks

    return PolicyChunks(policy, version="policy-r1-test", **kw)


def test_chunked_policy_replans_every_replan_steps(env, policy):
    from ramp.platform.envs.chunking import ChunkedPolicy, to_item
    from ramp.platform.envs.rollout import run_episode

    source = _source(policy)
    chunked = ChunkedPolicy(source, env.spec.embodiment, replan_steps=4)
    env.set_task(TASK)
    chunked.reset(3)
    ep = run_episode(env, chunked, 3, policy_version="policy-r1-test", max_steps=10)
    assert ep.num_steps == 10
    assert source.calls == 3  # steps 0, 4, 8
    assert ep.policy_version == "policy-r1-test"
    # the first 4 actions are the first chunk's (clipped), predicted from the reset observation
    first = env.reset(3)
    again = source.predict([to_item(env.spec.embodiment, first)], [(3, 0)])[0].actions
    np.testing.assert_allclose(ep.action[:4], np.clip(again[:4], -1, 1), atol=1e-6)
    assert not np.allclose(ep.action[4], np.clip(again[4], -1, 1))  # re-planned at step 4


def test_lockstep_of_one_env_is_run_episode(env, policy):
    from ramp.platform.envs.chunking import ChunkedPolicy
    from ramp.platform.envs.lockstep import run_lockstep
    from ramp.platform.envs.rollout import run_episode

    chunked = ChunkedPolicy(_source(policy), env.spec.embodiment, replan_steps=5)
    env.set_task(TASK)
    chunked.reset(11)
    a = run_episode(env, chunked, 11, episode_id="a", max_steps=12)
    [(job, b)] = run_lockstep(
        [env], [EpisodeJob("b", TASK, 11)], _source(policy), replan_steps=5, max_steps=12
    )
    assert job.seed == 11 and b.episode_id == "b"
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.state, b.state)


def test_lockstep_batches_envs_and_is_deterministic(env, policy):
    from ramp.platform.envs.lockstep import run_lockstep
    from ramp.platform.envs.registry import make_env

    other = make_env(env.config)
    jobs = [
        EpisodeJob("j0", TASK, 0),
        EpisodeJob("j1", "button-press-topdown-v3", 1),
        EpisodeJob("j2", TASK, 2),
    ]
    steps_seen: list[int] = []
    try:
        runs = []
        for _ in range(2):
            source = _source(policy)
            out = list(
                run_lockstep(
                    [env, other],
                    jobs,
                    source,
                    replan_steps=4,
                    max_steps=8,
                    round=3,
                    source_name="rollout",
                    on_step=steps_seen.append,
                )
            )
            runs.append((out, source.calls))
    finally:
        other.close()
    (out, calls), (out2, _) = runs
    assert sorted(j.episode_id for j, _ in out) == ["j0", "j1", "j2"]
    for job, ep in out:
        assert ep.task == job.task and ep.extra_meta["seed"] == job.seed
        assert ep.round == 3 and ep.source == "rollout" and ep.num_steps == 8
    # j0 and j1 share each re-plan (steps 0 and 4): 2 calls; then j2 alone: 2 more
    assert calls == 4
    assert len(steps_seen) == 2 * 3 * 8 and max(steps_seen) == 8
    for (_, a), (_, b) in zip(out, out2, strict=True):
        np.testing.assert_array_equal(a.action, b.action)


def test_standard_mode_needs_and_uses_the_world_model(env, policy):
    from ramp.platform.envs.chunking import ChunkedPolicy, PolicyChunks
    from ramp.platform.envs.rollout import run_episode
    from ramp.platform.models import build_world_model

    with pytest.raises(ValueError, match="world model"):
        PolicyChunks(policy, mode="standard")
    wm = build_world_model("tiny", policy.norm_stats).eval()
    source = PolicyChunks(policy, mode="standard", world_model=wm, version="v")
    chunked = ChunkedPolicy(source, env.spec.embodiment, replan_steps=4)
    env.set_task(TASK)
    chunked.reset(0)
    ep = run_episode(env, chunked, 0, max_steps=4)
    efficient = ChunkedPolicy(_source(policy), env.spec.embodiment, replan_steps=4)
    efficient.reset(0)
    ep2 = run_episode(env, efficient, 0, max_steps=4)
    assert source.calls == 1
    assert not np.allclose(ep.action, ep2.action)  # z and the value change the chunk


def test_human_steps_are_flagged_and_counted(env, policy):
    from ramp.platform.envs.collect import EpisodeOutcome, summarize
    from ramp.platform.envs.human import simulated_human
    from ramp.platform.envs.lockstep import run_lockstep
    from ramp.platform.envs.settings import HumanConfig

    human = simulated_human(env, HumanConfig(random_rate=0.5, warmup_steps=2, hand_back_steps=3))
    [(job, ep)] = run_lockstep(
        [env],
        [EpisodeJob("h", TASK, 4)],
        _source(policy),
        replan_steps=4,
        humans=[human],
        policy_version="policy-r1-test",
        max_steps=30,
    )
    flags = ep.intervention
    assert flags.any() and not flags.all()
    versions = np.asarray(ep.policy_version)
    assert set(versions[flags]) == {"human"} and set(versions[~flags]) == {"policy-r1-test"}
    out = EpisodeOutcome.from_episode(ep, job.seed, "written")
    assert out.policy_version == "policy-r1-test"
    assert out.intervention_steps == int(flags.sum())
    s = summarize([out])
    assert s["overall"]["intervention_rate"] == pytest.approx(flags.mean())
    assert s["per_task"][TASK]["intervened_episode_rate"] == 1.0
    assert set(s["per_policy_version"]) == {"policy-r1-test"}


def test_rates_per_policy_version_leave_out_names_that_are_no_policy():
    from ramp.platform.envs.collect import NON_POLICY_NAMES, policy_version_rates
    from ramp.platform.episodes.index import IndexEntry

    def entry(eid, versions, success, steps, human):
        return IndexEntry(
            episode_id=eid,
            path=f"{eid}.parquet",
            content_hash="0",
            round=1,
            source="robot",
            task="reach",
            embodiment="arm",
            success=success,
            num_steps=steps,
            intervention_steps=human,
            policy_versions=versions,
        )

    rates = policy_version_rates(
        [
            entry("a", ["policy-r1-a", "human"], True, 10, 4),
            entry("b", ["policy-r1-a", "unknown"], False, 30, 0),
            entry("c", ["policy-r0-b"], True, 20, 0),
            entry("demo", ["scripted-expert"], True, 50, 0),  # no policy drove these two
            entry("teleop", ["human"], True, 40, 40),
        ]
    )
    assert {"human", "scripted-expert", "unknown"} == set(NON_POLICY_NAMES)
    assert set(rates) == {"policy-r0-b", "policy-r1-a"}
    a = rates["policy-r1-a"]
    assert (a["episodes"], a["success_rate"], a["intervention_rate"]) == (2, 0.5, 0.1)
    assert rates["policy-r0-b"]["intervention_rate"] == 0.0


def test_jobs_ids_seeds_and_calls():
    from ramp.platform.config import load_config
    from ramp.platform.envs.collect import (
        SEED_STRIDE,
        evaluation_jobs,
        plan_calls,
        rollout_jobs,
    )

    cfg = load_config("quickstart", ["envs.rollout.episodes_per_task=3"])
    r1, r2 = rollout_jobs(cfg, 1), rollout_jobs(cfg, 2)
    assert len(r1) == 3 * len(cfg.envs.env.task_list)
    assert r1 == rollout_jobs(cfg, 1)  # deterministic
    assert r1[0].episode_id == f"rollout-r1-metaworld-reach-v3-s{1000 + SEED_STRIDE}"
    assert not {j.seed for j in r1} & {j.seed for j in r2}  # rounds never reuse seeds
    assert len({j.episode_id for j in r1 + r2}) == len(r1) + len(r2)
    a, b = evaluation_jobs(cfg, "candidate"), evaluation_jobs(cfg, "production")
    assert [(j.task, j.seed) for j in a] == [(j.task, j.seed) for j in b]
    n = cfg.envs.evaluation.episodes_per_task
    assert {j.seed for j in a} == set(range(1_000_000, 1_000_000 + n))
    for envs_per_worker, workers in ((1, 2), (2, 2), (4, 1), (3, 8)):
        calls = plan_calls(r1, envs_per_worker, workers)
        assert [j for c in calls for j in c] == r1
        assert max(len(c) for c in calls) <= max(1, 2 * envs_per_worker)
