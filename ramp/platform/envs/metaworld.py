"""MetaWorld v3 (Sawyer arm, 50 tasks) behind the ramp env contract, with its scripted experts.

- One MetaWorld env per task (built on ``set_task``/first reset, ~0.2 s), goal observable.
- Seeds: ``reset(seed)`` seeds the env's own generator, which draws the object and goal positions
  (MetaWorld's "seeded rand vec" mode), so a seed is one fixed initial state.
- Actions: 4 values in [-1, 1]: end-effector delta x, y, z (scaled by the suite to 1 cm) and the
  gripper effort (+1 closes).
- State: ``full`` is MetaWorld's 39-d observation (hand, gripper, object poses, the previous
  frame's copy of those, goal); ``proprio`` is hand x, y, z and gripper opening.
- Success: MetaWorld's ``info["success"]``; episodes end on it by default.
- Experts: ``metaworld.policies`` (one scripted policy per task) acting on the full observation,
  whatever the state mode.
"""

from __future__ import annotations

import warnings

import numpy as np

from ramp.platform.envs.core import EnvSpec, Observation, SimEnv
from ramp.platform.envs.rendering import FastRenderer
from ramp.platform.envs.settings import EnvConfig
from ramp.platform.envs.suites import SUITES

# MetaWorld's scripted experts warn on every episode that their gains exceed the action range;
# the env clips, as intended, so the warning carries no information for ramp's users.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)

DEFAULT_MAX_STEPS = SUITES["metaworld"].max_steps  # MetaWorld's own max_path_length

INSTRUCTIONS = {
    "reach-v3": "reach the goal position",
    "push-v3": "push the puck to the goal",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "door-open-v3": "open the door",
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "button-press-topdown-v3": "press the button from the top",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "window-open-v3": "slide the window open",
    "window-close-v3": "slide the window closed",
}


def instruction_for(task: str) -> str:
    """Hand-written for MT10; other tasks get their name in words (dial-turn-v3: "dial turn")."""
    if task in INSTRUCTIONS:
        return INSTRUCTIONS[task]
    return task.removesuffix("-v3").replace("-", " ")


def _state_names() -> tuple[str, ...]:
    frame = ["hand_x", "hand_y", "hand_z", "gripper"]
    for k in range(2):
        frame += [f"obj{k}_{a}" for a in ("x", "y", "z", "qw", "qx", "qy", "qz")]
    return (*frame, *(f"prev_{n}" for n in frame), "goal_x", "goal_y", "goal_z")


FULL_STATE_NAMES = _state_names()
PROPRIO_STATE_NAMES = FULL_STATE_NAMES[:4]
ACTION_NAMES = ("dx", "dy", "dz", "gripper")


class MetaWorldEnv(SimEnv):
    suite = "metaworld"

    def __init__(self, config: EnvConfig):
        super().__init__(config)
        self._info = SUITES[self.suite]
        self._env = None
        self._env_task: str | None = None
        self._renderer: FastRenderer | None = None
        self._full_obs = np.zeros(39)
        self.max_steps = config.max_steps or DEFAULT_MAX_STEPS
        self._spec = EnvSpec(
            suite=self.suite,
            embodiment=config.embodiment_name,
            tasks=self._info.tasks,
            cameras=tuple(config.camera_list),
            height=config.height,
            width=config.width,
            state_names=FULL_STATE_NAMES if config.state == "full" else PROPRIO_STATE_NAMES,
            action_names=ACTION_NAMES,
            action_low=(-1.0,) * 4,
            action_high=(1.0,) * 4,
            fps=80.0,  # frame_skip 5 x timestep 2.5 ms
            max_steps=self.max_steps,
            has_expert=True,
        )

    @property
    def spec(self) -> EnvSpec:
        return self._spec

    # ----------------------------------------------------------------------- suite plumbing

    def _build(self) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.close()
        env = ALL_V3_ENVIRONMENTS[self.task]()
        env._partially_observable = False  # the goal is part of the state (experts need it)
        # The observation bounds are cached with the goal hidden (zero width), which would clip
        # the goal to 0: drop the cache as MetaWorld's own goal-observable classes do.
        env.__dict__.pop("sawyer_observation_space", None)
        env._freeze_rand_vec = False
        env._set_task_called = True
        env.seeded_rand_vec = True
        env.max_path_length = self.max_steps
        self._env, self._env_task = env, self.task
        if self.config.render:
            cams = {c: self._info.cameras[c] for c in self.config.camera_list}
            self._renderer = FastRenderer(
                env.model,
                env.data,
                cams,
                self.config.height,
                self.config.width,
                fast=self.config.fast_rendering,
            )

    @property
    def raw(self):
        """The underlying MetaWorld env (built on first use)."""
        if self._env is None or self._env_task != self.task:
            self._build()
        return self._env

    def instruction(self) -> str:
        return instruction_for(self.task)

    def _observation(self, reward: float, info: dict, success: bool) -> Observation:
        env = self._env
        state = self._full_obs if self.config.state == "full" else self._full_obs[:4]
        images: dict[str, np.ndarray] = {}
        traj = None
        if self._renderer is not None and self._render_on:
            images = self._renderer.render(env.data)
            traj = self.trajectory_2d()
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
            trajectory_2d=traj,
            ee_position=np.array(env.tcp_center, dtype=np.float64),
            step=self._step,
            info=info,
        )

    def trajectory_2d(self) -> np.ndarray | None:
        r = self._renderer
        if r is None:
            return None
        cams = r.static_cameras
        if not cams:
            return None
        return r.project(self._env.data, self._env.tcp_center, cams[0]).astype(np.float32)

    # ----------------------------------------------------------------------- the contract

    def reset(self, seed: int) -> Observation:
        env = self.raw
        env.seed(int(seed))
        obs, info = env.reset()
        self._full_obs = np.asarray(obs, dtype=np.float64)
        self._step = 0
        if self._renderer is not None:
            self._renderer.orient(env.data)
        return self._observation(0.0, dict(info), False)

    def step(self, action: np.ndarray) -> Observation:
        env = self._env
        if env is None:
            raise RuntimeError("call reset(seed) before step()")
        a = self.clip_action(action).astype(np.float32)
        obs, reward, _, _, info = env.step(a)
        self._step += 1
        self._full_obs = np.asarray(obs, dtype=np.float64)
        return self._observation(float(reward), dict(info), bool(info.get("success", False)))

    def render(self) -> dict[str, np.ndarray]:
        if self._renderer is None:
            return {}
        return self._renderer.render(self._env.data)

    def expert(self) -> MetaWorldExpert:
        return MetaWorldExpert(self)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
            self._env = None
            self._env_task = None

    # ----------------------------------------------------------------------- privileged access

    @property
    def full_observation(self) -> np.ndarray:
        """MetaWorld's 39-d observation of the current step (what the scripted experts read)."""
        return self._full_obs


class MetaWorldExpert:
    """MetaWorld's scripted policy for the env's current task (re-picked on every reset)."""

    def __init__(self, env: MetaWorldEnv):
        self.env = env
        self._policy = None
        self._task: str | None = None

    def reset(self) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        if self._task != self.env.task:
            self._policy = ENV_POLICY_MAP[self.env.task]()
            self._task = self.env.task

    def act(self, obs: Observation) -> np.ndarray:
        if self._task != self.env.task:
            self.reset()
        action = self._policy.get_action(self.env.full_observation)
        return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
