"""Shared factories for the episode-store tests: small embodiments, episodes and stores.

The plain functions (``embodiments``, ``build_episode``, ``open_store``) are also imported by the
crash-safety tests' writer subprocesses, so they must not depend on pytest fixtures.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ramp.platform.config import CameraConfig, EmbodimentConfig, StoreConfig
from ramp.platform.episodes import Episode, EpisodeStore

HERE = Path(__file__).resolve().parent

ARM = "arm"  # two cameras, one of them not square (catches height/width mix-ups)
CART = "cart"  # a second embodiment with other dimensions


def embodiments() -> dict[str, EmbodimentConfig]:
    return {
        ARM: EmbodimentConfig(
            cameras={
                "front": CameraConfig(height=16, width=16),
                "wrist": CameraConfig(height=12, width=16),
            },
            state_names=["q0", "q1", "q2", "grip"],
            action_names=["dx", "dy", "dgrip"],
            action_low=[-1.0, -1.0, 0.0],
            action_high=[1.0, 1.0, 1.0],
            fps=10.0,
        ),
        CART: EmbodimentConfig(
            cameras={"head": CameraConfig(height=8, width=8)},
            state_names=["x", "y"],
            action_names=["v", "w"],
            action_low=[-2.0, -0.5],
            action_high=[2.0, 0.5],
            fps=5.0,
        ),
    }


def open_store(root: str | Path, **store_options: Any) -> EpisodeStore:
    """A store over `root` with both test embodiments declared."""
    return EpisodeStore(str(root), embodiments(), StoreConfig(root=str(root), **store_options))


def frames_for(episode_id: str, camera: str, num_steps: int, height: int, width: int) -> np.ndarray:
    """Deterministic, smooth frames (JPEG-friendly) that differ per episode, camera and step."""
    seed = zlib.crc32(f"{episode_id}/{camera}".encode())
    base = seed % 50
    y = np.arange(height)[:, None, None]
    x = np.arange(width)[None, :, None]
    c = np.arange(3)[None, None, :]
    out = np.empty((num_steps, height, width, 3), np.uint8)
    for t in range(num_steps):
        out[t] = 20 + base + 3 * y + 2 * x + 15 * c + (2 * t) % 60
    return out


def build_episode(
    episode_id: str = "ep-0",
    *,
    embodiment: str = ARM,
    num_steps: int = 6,
    task: str = "pick",
    source: str = "sim",
    round: int = 0,
    success: bool = True,
    policy_version: str | list[str] = "policy-r0-abc123",
    optional: bool = False,
    seed: int | None = None,
    **overrides: Any,
) -> Episode:
    """A valid episode whose numbers depend on its id (or `seed`); `overrides` set any field.

    ``optional=True`` also fills every optional column (subgoal, progress, trajectory_2d), per-
    step instructions and a few interventions.
    """
    specs = embodiments()
    spec = specs.get(embodiment, specs[ARM])  # an undeclared embodiment gets the arm's arrays
    rng = np.random.default_rng(zlib.crc32(episode_id.encode()) if seed is None else seed)
    t = num_steps
    fields: dict[str, Any] = dict(
        episode_id=episode_id,
        embodiment=embodiment,
        task=task,
        instruction=f"{task} the block",
        images={
            cam: frames_for(episode_id, cam, t, c.height, c.width)
            for cam, c in spec.cameras.items()
        },
        state=rng.normal(size=(t, spec.state_dim)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(t, spec.action_dim)).astype(np.float32),
        success=success,
        source=source,
        policy_version=policy_version,
        round=round,
    )
    if optional:
        intervention = np.zeros(t, bool)
        intervention[1 : min(3, t)] = True
        fields.update(
            reward=rng.normal(size=t).astype(np.float32),
            intervention=intervention,
            timestamp=np.cumsum(rng.uniform(0.05, 0.2, size=t)),
            instructions=[f"{task} step {i}" for i in range(t)],
            subgoal=[f"subgoal {i // 2}" if i % 3 else None for i in range(t)],
            progress=np.linspace(0.0, 1.0, t).astype(np.float32),
            trajectory_2d=rng.uniform(0, 16, size=(t, 4)).astype(np.float32),
        )
    fields.update(overrides)
    return Episode(**fields)


def label_table(
    episode_id: str, num_steps: int, offset: float = 0.0, order: str = "forward"
) -> pa.Table:
    """Labels for one episode: value = offset + step / 10, advantage = -value, indicator odd."""
    steps = np.arange(num_steps, dtype=np.int32)
    if order == "reverse":
        steps = steps[::-1].copy()
    value = (offset + steps / 10).astype(np.float32)
    return pa.table(
        {
            "episode_id": [episode_id] * num_steps,
            "step": steps,
            "value": value,
            "advantage": -value,
            "indicator": steps % 2 == 1,
        }
    )


def stored_files(root: str | Path) -> list[str]:
    """Every file under a store root (temporaries included), relative, sorted."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def make_episode():
    return build_episode


@pytest.fixture
def make_store(tmp_path):
    """Stores under tmp_path: make_store() -> the default one; make_store(name, **options)."""

    def make(name: str = "store", **store_options: Any) -> EpisodeStore:
        return open_store(tmp_path / name, **store_options)

    return make


@pytest.fixture
def store(make_store) -> EpisodeStore:
    return make_store()


@pytest.fixture
def specs() -> dict[str, EmbodimentConfig]:
    return embodiments()


@pytest.fixture
def make_labels():
    return label_table


@pytest.fixture
def files():
    return stored_files
