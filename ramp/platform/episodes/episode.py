"""An episode in memory (numpy arrays), as producers build it, and its conversion to Arrow.

Rollout workers, demo collectors and the robot-upload route build an ``Episode``; the store turns
it into one validated Arrow table. Producers never build Arrow tables by hand, so the schema has
one writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ramp.platform.config import EmbodimentConfig
from ramp.platform.episodes.images import encode_frames
from ramp.platform.episodes.schema import (
    REQUIRED_COLUMNS,
    CameraMeta,
    EpisodeMeta,
    arrow_schema,
    camera_column,
)


class EpisodeValidationError(ValueError):
    """An episode that cannot be stored; names the episode, the step and the column."""

    def __init__(self, episode_id: str, column: str, message: str, step: int | None = None):
        self.episode_id = episode_id
        self.column = column
        self.step = step
        self.reason = message
        where = f"episode {episode_id!r}"
        if step is not None:
            where += f", step {step}"
        super().__init__(f"{where}, column {column!r}: {message}")


@dataclass
class Episode:
    """One finished episode. Arrays are indexed by step; T = len(action)."""

    episode_id: str
    embodiment: str
    task: str
    instruction: str
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8
    state: np.ndarray  # (T, S)
    action: np.ndarray  # (T, A)
    success: bool
    source: str
    policy_version: str | Sequence[str]
    round: int = 0
    reward: np.ndarray | None = (
        None  # (T,); default: -1 per step, terminal 0 (the stored raw signal)
    )
    intervention: np.ndarray | None = None  # (T,) bool; default all False
    timestamp: np.ndarray | None = None  # (T,) seconds; default step / fps
    step: np.ndarray | None = None  # (T,); default 0..T-1 (given only to re-check foreign data)
    done: np.ndarray | None = None  # (T,) bool; default True at the last step only
    instructions: Sequence[str] | None = None  # per-step instruction, when it changes
    subgoal: Sequence[str | None] | None = None
    progress: np.ndarray | None = None  # (T,) float in [0, 1]
    trajectory_2d: np.ndarray | None = None  # (T, 2K) end-effector pixels
    extra_meta: dict = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(np.asarray(self.action).shape[0])


def _list_array(values: np.ndarray, column: str, episode_id: str, steps: int) -> pa.Array:
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise EpisodeValidationError(
            episode_id, column, f"expected a (steps, dim) array, got shape {arr.shape}"
        )
    t, d = arr.shape
    if t != steps:
        raise EpisodeValidationError(episode_id, column, f"has {t} steps, action has {steps}")
    flat = pa.array(np.ascontiguousarray(arr).reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (t + 1) * d, d, dtype=np.int32), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def episode_to_table(
    ep: Episode,
    spec: EmbodimentConfig,
    image_encoding: str = "raw",
    jpeg_quality: int = 95,
) -> pa.Table:
    """Build the canonical Arrow table of an episode (validation happens in the store)."""
    eid = ep.episode_id
    t = ep.num_steps
    if t < 1:
        raise EpisodeValidationError(eid, "action", "an episode needs at least one step")

    def per_step(value, column: str, dtype, default):
        if value is None:
            return default
        arr = np.asarray(value)
        if arr.shape[:1] != (t,):
            raise EpisodeValidationError(
                eid, column, f"has {arr.shape[0] if arr.ndim else 0} steps, action has {t}"
            )
        return arr.astype(dtype, copy=False)

    cameras = {}
    image_cols = {}
    for cam, cam_spec in spec.cameras.items():
        if cam not in ep.images:
            raise EpisodeValidationError(
                eid,
                camera_column(cam),
                f"camera {cam!r} of embodiment {ep.embodiment!r} is missing "
                f"(declared: {', '.join(spec.cameras)})",
            )
        frames = np.asarray(ep.images[cam])
        want = (t, cam_spec.height, cam_spec.width, 3)
        if frames.shape != want or frames.dtype != np.uint8:
            raise EpisodeValidationError(
                eid,
                camera_column(cam),
                f"frames must be uint8 {want}, got {frames.dtype} {frames.shape}",
            )
        image_cols[camera_column(cam)] = encode_frames(frames, image_encoding, jpeg_quality)
        cameras[cam] = CameraMeta(
            height=cam_spec.height, width=cam_spec.width, encoding=image_encoding
        )
    for cam in ep.images:
        if cam not in spec.cameras:
            raise EpisodeValidationError(
                eid,
                camera_column(cam),
                f"camera {cam!r} is not declared for embodiment {ep.embodiment!r} "
                f"(declared: {', '.join(spec.cameras)})",
            )

    intervention = per_step(ep.intervention, "intervention", np.bool_, np.zeros(t, np.bool_))
    done = per_step(ep.done, "done", np.bool_, np.arange(t) == t - 1)
    default_reward = -np.ones(t, np.float32)
    default_reward[-1] = 0.0 if ep.success else -1.0
    reward = per_step(ep.reward, "reward", np.float32, default_reward)
    timestamp = per_step(
        ep.timestamp, "timestamp", np.float64, np.arange(t, dtype=np.float64) / spec.fps
    )
    step = per_step(ep.step, "step", np.int32, np.arange(t, dtype=np.int32))
    success = np.zeros(t, np.bool_)
    success[-1] = bool(ep.success)
    if isinstance(ep.policy_version, str):
        versions = [ep.policy_version] * t
    else:
        versions = list(ep.policy_version)
        if len(versions) != t:
            raise EpisodeValidationError(
                eid, "policy_version", f"has {len(versions)} entries, action has {t}"
            )
    instructions = list(ep.instructions) if ep.instructions is not None else [ep.instruction] * t
    if len(instructions) != t:
        raise EpisodeValidationError(
            eid, "instruction", f"has {len(instructions)} entries, action has {t}"
        )

    cols: dict[str, pa.Array] = {
        "episode_id": pa.array([eid] * t, pa.string()),
        "step": pa.array(step, pa.int32()),
        "timestamp": pa.array(timestamp, pa.float64()),
        "embodiment": pa.array([ep.embodiment] * t, pa.string()),
        "task": pa.array([ep.task] * t, pa.string()),
        "instruction": pa.array(instructions, pa.string()),
        "state": _list_array(ep.state, "state", eid, t),
        "action": _list_array(ep.action, "action", eid, t),
        "reward": pa.array(reward, pa.float32()),
        "done": pa.array(done, pa.bool_()),
        "success": pa.array(success, pa.bool_()),
        "intervention": pa.array(intervention, pa.bool_()),
        "policy_version": pa.array(versions, pa.string()),
        "source": pa.array([ep.source] * t, pa.string()),
        "round": pa.array(np.full(t, ep.round, np.int32), pa.int32()),
    }
    assert list(cols)[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    cols.update(image_cols)
    optional = []
    if ep.subgoal is not None:
        if len(ep.subgoal) != t:
            raise EpisodeValidationError(eid, "subgoal", f"has {len(ep.subgoal)} entries, not {t}")
        cols["subgoal"] = pa.array(list(ep.subgoal), pa.string())
        optional.append("subgoal")
    if ep.progress is not None:
        cols["progress"] = pa.array(per_step(ep.progress, "progress", np.float32, None))
        optional.append("progress")
    if ep.trajectory_2d is not None:
        cols["trajectory_2d"] = _list_array(ep.trajectory_2d, "trajectory_2d", eid, t)
        optional.append("trajectory_2d")

    meta = EpisodeMeta(
        episode_id=eid,
        embodiment=ep.embodiment,
        task=ep.task,
        source=ep.source,
        round=int(ep.round),
        num_steps=t,
        success=bool(ep.success),
        intervention_steps=int(intervention.sum()),
        policy_versions=sorted(set(versions)),
        fps=spec.fps,
        cameras=cameras,
        state_names=list(spec.state_names),
        action_names=list(spec.action_names),
        action_low=list(spec.action_low),
        action_high=list(spec.action_high),
        optional_columns=optional,
    )
    return pa.Table.from_pydict(cols, schema=arrow_schema(meta))
