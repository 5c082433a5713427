"""FrankaKitchen-v1 (gymnasium-robotics) behind the ramp env contract.

- Tasks: ``all-7`` is the long-horizon task (the seven subtasks in ``KITCHEN_SUBTASKS`` order:
  microwave, kettle, bottom burner, top burner, light switch, slide cabinet, hinge cabinet);
  each subtask is also a task of its own (``microwave``, ``light-switch``, ...).
- Success per subtask: the suite's rule (the subtask's joints within 0.3 of their goal, once
  reached it counts as done); the episode succeeds when every subtask of the task is done.
  ``subgoal`` is the first subtask of the sequence not yet done, ``progress`` the share done.
- Actions: 9 joint velocities in [-1, 1] (7 arm joints, 2 fingers), as the suite takes them.
- State: ``full`` is the suite's 59-d observation (robot joint positions and velocities, then the
  objects' joint positions and velocities); ``proprio`` the robot's 18 values.
- Camera: ``overview``, the suite's default free camera (the model's own two cameras see only
  a countertop close up). The suite ships no scripted expert.
"""

from __future__ import annotations

import numpy as np

from ramp.platform.envs.core import EnvSpec, Observation, SimEnv
from ramp.platform.envs.rendering import FastRenderer, FreeCamera
from ramp.platform.envs.settings import EnvConfig
from ramp.platform.envs.suites import KITCHEN_SUBTASKS, SUITES

DEFAULT_MAX_STEPS = SUITES["franka-kitchen"].max_steps
OVERVIEW = FreeCamera(distance=2.2, azimuth=70.0, elevation=-35.0, lookat=(-0.2, 0.5, 2.0))

SUBTASK_INSTRUCTIONS = {
    "microwave": "open the microwave",
    "kettle": "move the kettle to the top left burner",
    "bottom burner": "turn on the bottom burner",
    "top burner": "turn on the top burner",
    "light switch": "turn on the light switch",
    "slide cabinet": "slide the cabinet door open",
    "hinge cabinet": "open the hinge cabinet door",
}

ROBOT_Q = tuple(f"robot_q{i}" for i in range(9))
ROBOT_DQ = tuple(f"robot_dq{i}" for i in range(9))
FULL_STATE_NAMES = (
    *ROBOT_Q,
    *ROBOT_DQ,
    *(f"obj_q{i}" for i in range(21)),
    *(f"obj_dq{i}" for i in range(20)),
)
ACTION_NAMES = (*(f"joint{i}_vel" for i in range(1, 8)), "finger_left_vel", "finger_right_vel")


def subtasks_of(task: str) -> tuple[str, ...]:
    return KITCHEN_SUBTASKS if task == "all-7" else (task.replace("-", " "),)


def instruction_for(task: str) -> str:
    steps = [SUBTASK_INSTRUCTIONS[s] for s in subtasks_of(task)]
    return steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + " and " + steps[-1]


class KitchenSimEnv(SimEnv):
    suite = "franka-kitchen"

    def __init__(self, config: EnvConfig):
        super().__init__(config)
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
            BONUS_THRESH,
            OBS_ELEMENT_GOALS,
            OBS_ELEMENT_INDICES,
            KitchenEnv,
        )

        self._goals = OBS_ELEMENT_GOALS
        self._indices = OBS_ELEMENT_INDICES
        self._thresh = BONUS_THRESH
        self._env = KitchenEnv(
            tasks_to_complete=list(KITCHEN_SUBTASKS),
            terminate_on_tasks_completed=False,
            remove_task_when_completed=False,
        )
        self.model, self.data = self._env.model, self._env.data
        self._ee_site = self.model.site("end_effector").id
        info = SUITES[self.suite]
        self._renderer: FastRenderer | None = None
        if config.render:
            cams = {
                c: OVERVIEW if info.cameras[c] == "free:overview" else info.cameras[c]
                for c in config.camera_list
            }
            self._renderer = FastRenderer(
                self.model, self.data, cams, config.height, config.width, config.fast_rendering
            )
        self.max_steps = config.max_steps or DEFAULT_MAX_STEPS
        self._done: list[str] = []
        self._obs = np.zeros(59)
        self._spec = EnvSpec(
            suite=self.suite,
            embodiment=config.embodiment_name,
            tasks=info.tasks,
            cameras=tuple(config.camera_list),
            height=config.height,
            width=config.width,
            state_names=FULL_STATE_NAMES if config.state == "full" else (*ROBOT_Q, *ROBOT_DQ),
            action_names=ACTION_NAMES,
            action_low=(-1.0,) * 9,
            action_high=(1.0,) * 9,
            fps=12.5,  # frame_skip 40 x timestep 2 ms
            max_steps=self.max_steps,
            has_expert=False,
        )

    @property
    def spec(self) -> EnvSpec:
        return self._spec

    @property
    def raw(self):
        return self._env

    def instruction(self) -> str:
        return instruction_for(self.task)

    # ----------------------------------------------------------------------- subtasks

    def subtask_done(self, subtask: str) -> bool:
        """The suite's completion rule for one subtask, on the current simulator state."""
        q = self.data.qpos[self._indices[subtask]]
        return bool(np.linalg.norm(q - self._goals[subtask]) < self._thresh)

    def _update_subtasks(self) -> list[str]:
        for s in subtasks_of(self.task):
            if s not in self._done and self.subtask_done(s):
                self._done.append(s)
        return self._done

    @property
    def completed_subtasks(self) -> list[str]:
        return list(self._done)

    def _observation(self, reward: float, info: dict) -> Observation:
        subs = subtasks_of(self.task)
        done = self._update_subtasks()
        success = len(done) == len(subs)
        pending = [s for s in subs if s not in done]
        images: dict[str, np.ndarray] = {}
        traj = None
        ee = np.array(self.data.site_xpos[self._ee_site], dtype=np.float64)
        if self._renderer is not None and self._render_on:
            images = self._renderer.render(self.data)
            traj = self._renderer.project(self.data, ee, self._renderer.static_cameras[0])
        state = self._obs if self.config.state == "full" else self._obs[:18]
        terminated = success and self.config.end_on_success
        return Observation(
            images=images,
            state=np.asarray(state, dtype=np.float32).copy(),
            instruction=self.instruction(),
            task=self.task,
            success=success,
            reward=float(reward),
            terminated=terminated,
            truncated=(not terminated) and self._step >= self.max_steps,
            subgoal=SUBTASK_INSTRUCTIONS[pending[0]] if pending else None,
            progress=len(done) / len(subs),
            trajectory_2d=None if traj is None else traj.astype(np.float32),
            ee_position=ee,
            step=self._step,
            info={**info, "completed_subtasks": list(done)},
        )

    # ----------------------------------------------------------------------- the contract

    def reset(self, seed: int) -> Observation:
        obs, info = self._env.reset(seed=int(seed))
        self._obs = np.asarray(obs["observation"], dtype=np.float64)
        self._step = 0
        self._done = []
        if self._renderer is not None:
            self._renderer.orient(self.data)
        return self._observation(0.0, dict(info))

    def step(self, action: np.ndarray) -> Observation:
        a = self.clip_action(action)
        obs, _, _, _, info = self._env.step(a)
        self._step += 1
        self._obs = np.asarray(obs["observation"], dtype=np.float64)
        before = len(self._done)
        ob = self._observation(0.0, dict(info))
        ob.reward = float(len(self._done) - before)  # subtasks completed by this step
        return ob

    def render(self) -> dict[str, np.ndarray]:
        return {} if self._renderer is None else self._renderer.render(self.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
            self._env = None
