"""Factories and helpers of the serving tests (observations, episodes, the test embodiment)."""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np
import pytest

from ramp.platform.config import EmbodimentConfig

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, why: str) -> None:
    """Fail on CI, skip elsewhere (tests/conftest.py's rule)."""
    message = f"{what} is unavailable: {why}"
    if ON_CI:
        pytest.fail(f"{message} (CI=true: a service that cannot start is a failure)")
    pytest.skip(message)


EMBODIMENT = "arm"
CAMERAS = {"front": (64, 64), "wrist": (32, 32)}
STATE_DIM, ACTION_DIM = 9, 7
TASKS = {"pick-place": "pick up the red block and place it in the bin"}


def arm_spec() -> EmbodimentConfig:
    return EmbodimentConfig(
        cameras={c: {"height": h, "width": w} for c, (h, w) in CAMERAS.items()},
        state_names=[f"q{i}" for i in range(STATE_DIM)],
        action_names=[f"a{i}" for i in range(ACTION_DIM)],
        action_low=[-1.0] * ACTION_DIM,
        action_high=[1.0] * ACTION_DIM,
        fps=10.0,
    )


def make_obs(seed: int = 0, **override: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    obs = {
        "embodiment": EMBODIMENT,
        "images": {
            c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c, (h, w) in CAMERAS.items()
        },
        "state": rng.normal(size=STATE_DIM).astype(np.float32),
        "instruction": "pick up the red block",
    }
    obs.update(override)
    return obs


def make_episode(episode_id: str, steps: int = 6, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "episode_id": episode_id,
        "embodiment": EMBODIMENT,
        "task": "pick-place",
        "instruction": TASKS["pick-place"],
        "images": {
            c: rng.integers(0, 256, (steps, h, w, 3), dtype=np.uint8)
            for c, (h, w) in CAMERAS.items()
        },
        "state": rng.normal(size=(steps, STATE_DIM)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(steps, ACTION_DIM)).astype(np.float32),
        "success": True,
        "policy_version": "policy-test",
        "intervention": np.arange(steps) % 3 == 0,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openpi_policy(url: str, token: str):
    """The real openpi-client's WebsocketClientPolicy (`make setup` installs it, --no-deps)."""
    try:
        from openpi_client.websocket_client_policy import WebsocketClientPolicy
    except ImportError as e:
        unavailable(
            "openpi-client",
            f"{e}; install it with `pip install --no-deps openpi-client==0.1.2` (make setup does)",
        )
    return WebsocketClientPolicy(url, api_key=token)
