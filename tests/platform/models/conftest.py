"""Factories for the model tests: synthetic samples of two embodiments, statistics, tiny models.

Samples look exactly like ``episodes.samples.TrainingSamples.sample`` output and go through
``models.padding.collate_padded``, so the tests exercise the path a trainer takes.
Nothing here may touch a hub: HF_HUB_OFFLINE is set before transformers is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from ramp.platform.models.normalization import NormStats, stats_from_arrays
from ramp.platform.models.padding import collate_padded, to_tensors
from ramp.platform.models.presets import preset
from ramp.platform.models.settings import ModelsConfig

# embodiment -> (state dim, action dim)
EMBODIMENTS = {"arm": (9, 7), "bimanual": (14, 14)}
CHUNK = 50
OFFSETS = 4
SIZE = 64
INSTRUCTIONS = ["pick up the red block", "open the top drawer", "fold the towel"]


def norm_stats_for(embodiments: dict[str, tuple[int, int]] = EMBODIMENTS) -> NormStats:
    rng = np.random.default_rng(7)
    arrays = {}
    for name, (s, a) in embodiments.items():
        state = rng.normal(0.0, 2.0, size=(400, s)) + rng.normal(size=s)
        action = rng.uniform(-1.5, 1.5, size=(400, a))
        arrays[name] = (state, action)
    return stats_from_arrays(arrays)


def make_sample(
    rng: np.random.Generator,
    embodiment: str,
    cameras: Sequence[str],
    *,
    size: int = SIZE,
    labels: bool = True,
    with_subgoal: bool | None = None,
    with_trajectory: bool | None = None,
) -> dict[str, Any]:
    s_dim, a_dim = EMBODIMENTS[embodiment]
    valid_steps = int(rng.integers(CHUNK // 2, CHUNK + 1))
    actions = rng.uniform(-1, 1, size=(CHUNK, a_dim)).astype(np.float32)
    actions[valid_steps:] = 0.0
    with_subgoal = bool(rng.random() < 0.5) if with_subgoal is None else with_subgoal
    with_trajectory = bool(rng.random() < 0.5) if with_trajectory is None else with_trajectory
    future_mask = np.arange(OFFSETS) < int(rng.integers(1, OFFSETS + 1))
    sample: dict[str, Any] = {
        "episode_id": f"ep-{rng.integers(1 << 30)}",
        "step": int(rng.integers(100)),
        "task": "task-0",
        "embodiment": embodiment,
        "instruction": INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))],
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cameras},
        "state": rng.normal(size=s_dim).astype(np.float32),
        "actions": actions,
        "action_mask": np.arange(CHUNK) < valid_steps,
        "future_images": {
            c: rng.integers(0, 256, (OFFSETS, size, size, 3), dtype=np.uint8) for c in cameras
        },
        "future_state": rng.normal(size=(OFFSETS, s_dim)).astype(np.float32),
        "future_mask": future_mask,
        "intervention": False,
        "reward": -1.0,
        "subgoal": "move the gripper above the red block" if with_subgoal else None,
        "trajectory_2d": rng.uniform(0, size, 2 * 10).astype(np.float32)
        if with_trajectory
        else None,
    }
    if labels:
        sample["value"] = np.float32(-rng.random())
        sample["advantage"] = np.float32(rng.normal() * 0.1)
        sample["indicator"] = bool(rng.random() < 0.3)
        sample["value_target"] = np.float32(-rng.random())
    return sample


def make_batch(
    n: int = 4,
    embodiments: Sequence[str] = ("arm",),
    cameras: Sequence[str] = ("front",),
    *,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """A padded, tensor batch; embodiments alternate over the samples."""
    rng = np.random.default_rng(seed)
    samples = [
        make_sample(rng, embodiments[i % len(embodiments)], cameras, **kwargs) for i in range(n)
    ]
    return to_tensors(collate_padded(samples, 32, 32))


@pytest.fixture(scope="session")
def tiny() -> ModelsConfig:
    return preset("tiny")


@pytest.fixture(scope="session")
def norm_stats() -> NormStats:
    return norm_stats_for()


@pytest.fixture(autouse=True)
def _seeded_single_thread():
    """Seeded, and one intra-op thread: these models are small, and on a shared 2-core machine a
    second OpenMP thread makes steps far slower whenever a neighbour is busy (measured 10x)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clip_frames(num_steps: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """(T, size, size, 3) uint8: a shaded background and a soft red object moving across it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([0.3 + 0.4 * yy, 0.35 + 0.2 * xx, 0.5 - 0.2 * yy], axis=-1)
    start, end = rng.uniform(0.2, 0.35, 2), rng.uniform(0.65, 0.8, 2)
    red = np.array([0.9, 0.2, 0.1], np.float32)
    frames = np.empty((num_steps, size, size, 3), np.uint8)
    for t in range(num_steps):
        c = start + (end - start) * t / max(num_steps - 1, 1)
        blob = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / 0.02)[..., None]
        frames[t] = ((base * (1 - blob) + red * blob) * 255).astype(np.uint8)
    return frames


def clip_batch(
    steps: Sequence[int], num_steps: int = 80, offsets: Sequence[int] = (12, 24, 36, 48)
) -> dict[str, Any]:
    """World-model samples at ``steps`` of one synthetic episode, with a monotone value.

    The value at t is -(T - 1 - t) / (T - 1): minus the normalised steps still to go.
    """
    frames = clip_frames(num_steps)
    t_all = np.arange(num_steps, dtype=np.float32)
    state = np.stack(
        [np.sin(t_all / 9.0), np.cos(t_all / 13.0), t_all / num_steps]
        + [np.sin(t_all / (5.0 + k)) for k in range(6)],
        axis=-1,
    ).astype(np.float32)  # (T, 9): the "arm" embodiment
    samples = []
    offs = np.asarray(offsets)
    for t in steps:
        fut = t + offs
        clamped = np.minimum(fut, num_steps - 1)
        samples.append(
            {
                "embodiment": "arm",
                "instruction": "pick up the red block",
                "images": {"front": frames[t]},
                "state": state[t],
                "future_images": {"front": frames[clamped]},
                "future_state": state[clamped],
                "future_mask": fut < num_steps,
                "value_target": np.float32(-(num_steps - 1 - t) / (num_steps - 1)),
            }
        )
    return to_tensors(collate_padded(samples, 32, 32))
