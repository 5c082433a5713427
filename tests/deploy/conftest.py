"""Serving fixtures: a tiny checkpoint store, and ONE Ray + Serve for the whole session.

Ray runs with token auth on (its own random cluster token in the environment, inherited by the
`ramp` subprocesses the tests start), in its own short temp dir (Unix socket paths are limited to
107 bytes); only what these fixtures started is stopped, never `ray stop`. Everything listens on
127.0.0.1.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_helpers import (
    ACTION_DIM,
    EMBODIMENT,
    TASKS,
    arm_spec,
    free_port,
    make_episode,
)

from ramp.platform.config import RampConfig


@dataclass
class Checkpoints:
    root: str
    versions: list[str]  # two policy versions, round 1 and round 2
    world_model: str | None = None


def _write_demo_episodes(root: str) -> None:
    from ramp.platform.episodes import Episode, EpisodeStore

    store = EpisodeStore(root, {EMBODIMENT: arm_spec()})
    for i in range(3):
        ep = make_episode(f"demo-{i}", steps=40, seed=i)
        ep["action"] = np.random.default_rng(i).uniform(-1.5, 1.5, (40, ACTION_DIM))
        store.write(Episode(**ep, source="demo", round=0))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> Checkpoints:
    """Two tiny policy versions (random weights, statistics from synthetic episodes)."""
    import torch

    from ramp.deploy.protocol import checkpoint_extra
    from ramp.platform.episodes import EpisodeStore
    from ramp.platform.models import build_policy, compute_norm_stats, publish_checkpoint

    root = str(tmp_path_factory.mktemp("serve-store"))
    _write_demo_episodes(root)
    stats = compute_norm_stats(EpisodeStore(root))
    extra = checkpoint_extra({EMBODIMENT: arm_spec()}, TASKS)
    torch.manual_seed(0)
    policy = build_policy("tiny", stats)
    versions = []
    for round_ in (1, 2):
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 1e-3)
        version, _ = publish_checkpoint(policy, root, round_=round_, extra=extra)
        versions.append(version)
    return Checkpoints(root, versions)


@pytest.fixture(scope="session")
def world_model_version(checkpoints) -> str:
    import torch

    from ramp.platform.episodes import EpisodeStore
    from ramp.platform.models import build_world_model, compute_norm_stats, publish_checkpoint

    torch.manual_seed(1)
    wm = build_world_model("tiny", compute_norm_stats(EpisodeStore(checkpoints.root)))
    version, _ = publish_checkpoint(wm, checkpoints.root, round_=1)
    return version


@dataclass
class Server:
    url: str
    ws_url: str
    address: str
    root: str
    versions: list[str]
    tokens: dict[str, str]
    cfg: RampConfig
    temp_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, robot: str = "robot-a", scheme: str = "Bearer") -> dict[str, str]:
        return {"Authorization": f"{scheme} {self.tokens[robot]}"}


MAX_REQUEST_BYTES = 512 * 1024


@pytest.fixture(scope="session")
def server(ray_cluster, checkpoints) -> Iterator[Server]:
    """`ramp serve` (control.start) of version 1 on a free loopback port."""
    import ray

    from ramp.deploy import control

    tokens = {r: secrets.token_urlsafe(24) for r in ("robot-a", "robot-b", "slowbot", "fuzzbot")}
    port = free_port()
    cfg = RampConfig.model_validate(
        {
            "store": {"root": checkpoints.root},
            "embodiments": {EMBODIMENT: arm_spec().model_dump()},
            "serve": {
                "port": port,
                "tokens": tokens,
                "rate_limit": {"requests_per_s": 2000, "burst": 2000},
                "rate_limits": {"slowbot": {"requests_per_s": 0.2, "burst": 2}},
                "max_request_bytes": MAX_REQUEST_BYTES,
                "max_episode_bytes": 4 * 1024 * 1024,
                "max_batch_size": 8,
                "batch_wait_timeout_s": 0.002,
            },
        }
    )
    control.start(cfg, checkpoint=checkpoints.versions[0])
    temp = ray._private.worker._global_node.get_session_dir_path()
    srv = Server(
        url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}",
        address=ray_cluster,
        root=checkpoints.root,
        versions=checkpoints.versions,
        tokens=tokens,
        cfg=cfg,
        temp_dir=temp,
    )
    yield srv  # torn down with the cluster (ray_cluster): stopping Serve app by app is slow


@pytest.fixture
def live(server) -> Iterator[Server]:
    """The server, put back on version 1 after a test that redeploys."""
    yield server
    from ramp.deploy import control

    if control.status()["version"] != server.versions[0]:
        control.deploy(server.versions[0])


def root_path(server: Server) -> Path:
    return Path(server.root)
