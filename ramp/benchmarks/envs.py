"""`ramp bench envs`: steps/s with images for each adapter against the raw suite's own rendering.

Both sides step the same task with the same random actions and return the same cameras at the
same size each step; "raw" is the suite as shipped (MetaWorld's and FrankaKitchen's gymnasium
``render()``, LIBERO's ``OffScreenRenderEnv`` camera observations), "ramp" is the adapter with
the fast rendering settings (docs/envs.md). Each suite runs in its own fresh process, so the
memory column is that process's peak RSS with one adapter and one raw env live (LIBERO's assets
dominate it). Steps are timed in chunks, interleaved, median per side (``paired_medians``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from typing import Any

import numpy as np

from ramp.benchmarks.report import BenchResult, paired_medians

SIZE = 128
SUITES = {
    # suite: (task, cameras, steps per chunk (quick, full), chunks (quick, full))
    "metaworld": ("pick-place-v3", ["corner"], (20, 50), (3, 7)),
    "franka-kitchen": ("all-7", ["overview"], (10, 25), (3, 7)),
    "libero-10": (
        "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it",
        ["agentview", "wrist"],
        (4, 10),
        (3, 5),
    ),
}


def _raw_stepper(suite: str, task: str, cameras: list[str]):
    """A function doing one raw-suite step with images, and its cleanup."""
    if suite == "metaworld":
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        env = ALL_V3_ENVIRONMENTS[task](render_mode="rgb_array", camera_name=cameras[0])
        env.width = env.height = SIZE
        env.mujoco_renderer.width = env.mujoco_renderer.height = SIZE
        env._partially_observable = False
        env._freeze_rand_vec = False
        env._set_task_called = True
        env.max_path_length = 10**9
        env.reset()

        def step(a):
            env.step(a)
            return env.render()

        return step, env.close, 4
    if suite == "franka-kitchen":
        import gymnasium as gym
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        env = gym.make("FrankaKitchen-v1", render_mode="rgb_array", width=SIZE, height=SIZE)
        env.reset(seed=0)

        def step(a):
            env.step(a)
            return env.render()

        return step, env.close, 9
    from libero.libero import benchmark, get_libero_path
    from libero.libero.envs import OffScreenRenderEnv

    bench = benchmark.get_benchmark_dict()["libero_10"]()
    idx = [bench.get_task(i).name for i in range(bench.n_tasks)].index(task)
    t = bench.get_task(idx)
    bddl = os.path.join(get_libero_path("bddl_files"), t.problem_folder, t.bddl_file)
    env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=SIZE, camera_widths=SIZE)
    env.reset()
    env.set_init_state(bench.get_task_init_states(idx)[0])

    def step(a):
        obs, *_ = env.step(a)
        return [obs[f"{c}_image"] for c in ("agentview", "robot0_eye_in_hand")]

    return step, env.close, 7


def _measure(suite: str, quick: bool) -> dict[str, Any]:
    """Runs in a fresh process: ramp adapter vs raw suite for one suite."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from ramp.platform.envs.registry import make_env

    task, cameras, chunk, repeats = SUITES[suite]
    steps, reps = chunk[quick is False], repeats[quick is False]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    env = make_env(suite, tasks=[task], cameras=cameras, height=SIZE, width=SIZE)
    env.reset(0)
    build_s = time.perf_counter() - t0
    rss_env = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    raw_step, raw_close, dim = _raw_stepper(suite, task, cameras)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, size=(steps, dim))

    def ours():
        for a in actions:
            if env.step(a).done:
                env.reset(0)

    def raw():
        for a in actions:
            raw_step(a)

    t_ours, t_raw = paired_medians(ours, raw, reps)
    with env.rendering(False):
        t1 = time.perf_counter()
        for a in actions:
            if env.step(a).done:
                env.reset(0)
        t_state = time.perf_counter() - t1
    t2 = time.perf_counter()
    env.reset(1)
    reset_s = time.perf_counter() - t2
    out = {
        "steps_per_s": steps / t_ours,
        "raw_steps_per_s": steps / t_raw,
        "state_only_steps_per_s": steps / t_state,
        "reset_s": reset_s,
        "build_s": build_s,
        "env_rss_mib": rss_env,
        "process_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    env.close()
    raw_close()
    return out


def _in_subprocess(suite: str, quick: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_measure, (suite, quick))


def run(quick: bool = False) -> BenchResult:
    res = BenchResult("envs")
    for suite in SUITES:
        try:
            m = _in_subprocess(suite, quick)
        except ImportError as e:
            res.notes.append(f"{suite}: not measured ({e})")
            continue
        cams = "+".join(SUITES[suite][1])
        res.rows.append(
            {
                "suite": suite,
                "cameras": f"{cams} @{SIZE}",
                "ramp steps/s": m["steps_per_s"],
                "raw steps/s": m["raw_steps_per_s"],
                "speedup": m["steps_per_s"] / m["raw_steps_per_s"],
                "no-image steps/s": m["state_only_steps_per_s"],
                "reset s": m["reset_s"],
                "env MiB": m["env_rss_mib"],
                "process MiB": m["process_rss_mib"],
            }
        )
        for key, value in m.items():
            res.metrics[f"{suite}.{key}"] = value
        res.ratios[f"{suite}.speedup_vs_raw_render"] = m["steps_per_s"] / m["raw_steps_per_s"]
    res.notes.append(
        "raw = the suite's own rendering (MSAA, shadows, reflections); env MiB = peak RSS growth "
        "from building one adapter; process MiB = peak RSS with the adapter and a raw env"
    )
    return res
