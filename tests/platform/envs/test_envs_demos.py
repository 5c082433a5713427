"""`ramp demos` writes valid scripted-expert episodes that the store reads back."""

from __future__ import annotations

import numpy as np
import pytest
from envs_helpers import require

from ramp.platform.envs.settings import DemosConfig, EnvConfig


@pytest.fixture(autouse=True)
def _metaworld():
    require("metaworld", "metaworld")


def test_collect_writes_episodes_the_store_reads_back(tmp_path):
    from ramp.pipelines.demos import collect_demos
    from ramp.platform.envs.metaworld import FULL_STATE_NAMES
    from ramp.platform.episodes import EpisodeStore

    env_cfg = EnvConfig(tasks=["reach-v3", "drawer-close-v3"], height=32, width=32)
    report = collect_demos(env_cfg, DemosConfig(episodes=2, noise=0.05), str(tmp_path))
    assert [(t.task, t.kept, t.written) for t in report.tasks] == [
        ("reach-v3", 2, 2),
        ("drawer-close-v3", 2, 2),
    ]
    store = EpisodeStore(str(tmp_path))  # no config: the files describe themselves
    entries = store.episodes(source="demos")
    assert [e.episode_id for e in entries] == sorted(
        f"demos-metaworld-{t}-n0.05-s{s}" for t in ("reach-v3", "drawer-close-v3") for s in (0, 1)
    )
    for entry, table in store.iter_episodes(entries):
        assert entry.success and entry.embodiment == "metaworld"
        assert table.column("image.corner").type.byte_width == 32 * 32 * 3
        assert len(table.column("state")[0].as_py()) == len(FULL_STATE_NAMES)
        assert set(table.column("policy_version").to_pylist()) == {"scripted-expert"}
        assert not any(table.column("intervention").to_pylist())
        traj = np.array(table.column("trajectory_2d").to_pylist())
        assert traj.shape[1] == 2 and (traj >= 0).all() and (traj <= 32).all()
        actions = np.array(table.column("action").to_pylist())
        assert np.abs(actions).max() <= 1.0
    # the same command again writes nothing new
    again = collect_demos(env_cfg, DemosConfig(episodes=2, noise=0.05), str(tmp_path))
    assert [(t.written, t.existing) for t in again.tasks] == [(0, 2), (0, 2)]


def test_target_success_rate_keeps_failures(tmp_path):
    from ramp.pipelines.demos import collect_demos

    # reach-v3 with noise 0.2 and 55 steps succeeds in 5 of seeds 0-7: the collector must skip
    # the third success to keep 2 + 2.
    env_cfg = EnvConfig(tasks=["reach-v3"], height=16, width=16, max_steps=55)
    demos = DemosConfig(episodes=4, noise=0.2, target_success_rate=0.5)
    report = collect_demos(env_cfg, demos, str(tmp_path))
    task = report.tasks[0]
    assert task.kept == 4 and task.successes == 2, report.format()
    assert task.attempts > 4 and not report.warnings


def test_noise_changes_actions_deterministically(tmp_path):
    from ramp.platform.envs.registry import make_env
    from ramp.platform.envs.rollout import run_episode

    env = make_env("metaworld", tasks=["reach-v3"], render=False)
    ex = env.expert()
    a = run_episode(env, ex.act, 0, action_noise=0.3, max_steps=20)
    b = run_episode(env, ex.act, 0, action_noise=0.3, max_steps=20)
    c = run_episode(env, ex.act, 0, action_noise=0.0, max_steps=20)
    np.testing.assert_array_equal(a.action, b.action)
    assert not np.allclose(a.action, c.action)
    env.close()


def test_cli_demos_and_its_errors(tmp_path, capsys):
    from ramp.cli import main

    root = str(tmp_path / "store")
    argv = ["demos", "--env", "metaworld", "--task", "reach-v3", "--episodes", "1", "--size", "16"]
    assert main([*argv, "--root", root]) == 0
    assert "reach-v3" in capsys.readouterr().out
    assert main(["demos", "--env", "metaworl", "--root", root]) == 2
    assert "did you mean 'metaworld'" in capsys.readouterr().err
    assert main([*argv, "--size", "4", "--root", root]) == 2
    assert "envs.env.height" in capsys.readouterr().err
    assert main(["demos", "--env", "franka-kitchen", "--root", root]) == 2
    assert "no scripted expert" in capsys.readouterr().err


def test_a_list_of_noise_levels_mixes_operators(tmp_path):
    from ramp.pipelines.demos import collect_demos
    from ramp.platform.episodes import EpisodeStore

    env_cfg = EnvConfig(tasks=["reach-v3"], height=32, width=32, max_steps=40)
    collect_demos(env_cfg, DemosConfig(episodes=3, noise=[0.1, 1.5]), str(tmp_path))
    ids = sorted(e.episode_id for e in EpisodeStore(str(tmp_path)).episodes())
    assert ids == [
        "demos-metaworld-reach-v3-n0.1-s0",
        "demos-metaworld-reach-v3-n0.1-s2",
        "demos-metaworld-reach-v3-n1.5-s1",
    ]
    with pytest.raises(ValueError, match=r"noise must lie in \[0, 2\]"):
        DemosConfig(noise=[0.1, 3.0])
    with pytest.raises(ValueError, match="non-empty list"):
        DemosConfig(noise=[])
