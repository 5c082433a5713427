"""Several embodiments in one model and one batch: pad state/action dims, fill missing labels.

Why per sample, before ``collate``: ``episodes.samples.collate`` stacks arrays and refuses samples
whose shapes differ (a 7-dof arm next to a 14-dof bimanual robot). ``pad_sample`` zero-pads state,
actions and future state to the model's maximum widths (the released GigaBrain code pads to 32)
and adds the dimension masks; optional labels a sample lacks become NaN so they stack and the
model masks them per sample. Cameras can be renamed to positional slots (``cam0``, ``cam1``, ...)
so embodiments with differently named (but equally many) cameras batch together; the models read
cameras by position anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ramp.platform.episodes.samples import collate


def pad_last(x: np.ndarray, width: int, what: str = "array") -> np.ndarray:
    """Zero-pad the last axis of ``x`` to ``width`` (an error if it is wider)."""
    x = np.asarray(x, dtype=np.float32)
    d = x.shape[-1]
    if d > width:
        raise ValueError(f"{what} has {d} dimensions; the model pads to at most {width}")
    if d == width:
        return x
    pad = [(0, 0)] * (x.ndim - 1) + [(0, width - d)]
    return np.pad(x, pad)


def resample_points(traj: np.ndarray, points: int) -> np.ndarray:
    """(2K,) x,y pairs -> (2 * points,) by linear interpolation along the point index."""
    xy = np.asarray(traj, dtype=np.float32).reshape(-1, 2)
    if len(xy) == points:
        return xy.reshape(-1)
    if len(xy) == 1:
        return np.repeat(xy, points, axis=0).reshape(-1)
    src = np.linspace(0.0, 1.0, len(xy))
    dst = np.linspace(0.0, 1.0, points)
    out = np.stack([np.interp(dst, src, xy[:, k]) for k in range(2)], axis=-1)
    return out.astype(np.float32).reshape(-1)


def pad_sample(
    sample: Mapping[str, Any],
    max_state_dim: int,
    max_action_dim: int,
    *,
    trajectory_points: int = 10,
    camera_slots: bool = False,
) -> dict[str, Any]:
    """One training sample made stackable with samples of other embodiments."""
    out = dict(sample)
    state_dim = np.asarray(sample["state"]).shape[-1]
    out["state"] = pad_last(sample["state"], max_state_dim, "state")
    out["state_dim_mask"] = np.arange(max_state_dim) < state_dim
    if "future_state" in sample:
        out["future_state"] = pad_last(sample["future_state"], max_state_dim, "future_state")
    if "actions" in sample:
        action_dim = np.asarray(sample["actions"]).shape[-1]
        out["actions"] = pad_last(sample["actions"], max_action_dim, "actions")
        out["action_dim_mask"] = np.arange(max_action_dim) < action_dim
    if "trajectory_2d" in sample:
        t = sample["trajectory_2d"]
        out["trajectory_2d"] = (
            np.full(2 * trajectory_points, np.nan, np.float32)
            if t is None
            else resample_points(t, trajectory_points)
        )
    if "progress" in sample:
        p = sample["progress"]
        out["progress"] = np.float32(np.nan if p is None else p)
    if camera_slots:
        for key in ("images", "future_images"):
            if key in sample:
                out[key] = {f"cam{i}": v for i, v in enumerate(sample[key].values())}
    return out


def collate_padded(
    samples: Sequence[Mapping[str, Any]],
    max_state_dim: int,
    max_action_dim: int,
    *,
    trajectory_points: int = 10,
    camera_slots: bool = False,
) -> dict[str, Any]:
    """``collate`` of padded samples: a batch that may mix embodiments."""
    keys = set().union(*(s.keys() for s in samples))
    filled = []
    for s in samples:
        s = dict(s)
        for optional in ("trajectory_2d", "progress", "subgoal"):
            if optional in keys and optional not in s:
                s[optional] = None
        filled.append(
            pad_sample(
                s,
                max_state_dim,
                max_action_dim,
                trajectory_points=trajectory_points,
                camera_slots=camera_slots,
            )
        )
    return collate(filled)


def to_tensors(batch: Mapping[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """numpy arrays (also inside camera dicts) -> tensors on ``device``; strings stay lists."""

    def conv(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(v)).to(device)
        if isinstance(v, torch.Tensor):
            return v.to(device)
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, np.generic):
            return torch.as_tensor(v.item(), device=device)
        return v

    return {k: conv(v) for k, v in batch.items()}
