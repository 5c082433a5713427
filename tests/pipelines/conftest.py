"""ONE tiny end-to-end run of the loop shared by the round tests, with the faults injected.

Round 0 (stage 1 -> label -> stage 2) runs as `ramp round` in a subprocess joined to the session's
Ray cluster, with a Ray Train worker killed mid-fit and the coordinator itself killed right after
the world-model stage; a second `ramp round` resumes it. One demonstration file is corrupt before
anything starts. Round 1 (rollouts with the simulated human -> retrain both -> gate) runs with a
rollout worker killed mid-episode. The tests then read the store, the manifests and MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from round_helpers import tiny_config

from ramp.platform.config import RampConfig, dump_config

TIMEOUT_S = 900


@dataclass
class TinyRounds:
    root: Path
    config_file: Path
    cfg: RampConfig
    killed: subprocess.CompletedProcess  # round 0, coordinator killed after the world model
    resumed: subprocess.CompletedProcess  # round 0 again: resumes
    round1: subprocess.CompletedProcess
    corrupt_id: str
    markers: Path


def ramp_round(config: Path, address: str, faults: dict | None = None, *args: str):
    env = dict(os.environ)
    env.pop("RAMP_FAULTS", None)
    if faults:
        env["RAMP_FAULTS"] = json.dumps(faults)
    cmd = [sys.executable, "-m", "ramp.cli", "round", "--config", str(config), "--address", address]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def corrupt_one(root: Path) -> str:
    """Cut a demonstration file in half (its footer gone): unreadable, as a torn copy would be."""
    files = sorted((root / "episodes").rglob("*.parquet"))
    victim = files[-1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    return victim.stem


@pytest.fixture(scope="session")
def tiny_rounds(ray_cluster, demo_store_template, tmp_path_factory) -> TinyRounds:
    base = tmp_path_factory.mktemp("tiny-rounds")
    root = base / "store"
    shutil.copytree(demo_store_template, root)
    corrupt_id = corrupt_one(root)
    cfg = tiny_config(root, **{"tracking.enabled": True})
    config_file = base / "tiny.yaml"
    config_file.write_text(dump_config(cfg))
    markers = base / "markers"
    round0_faults = {
        "train.step": {"at": 12, "action": "kill", "marker": str(markers / "train-step")},
        "round.stage": {"at": 2, "action": "kill", "marker": str(markers / "after-world-model")},
    }
    killed = ramp_round(config_file, ray_cluster, round0_faults)
    resumed = ramp_round(config_file, ray_cluster, round0_faults)
    if resumed.returncode != 0:
        pytest.fail(f"round 0 did not finish:\n{killed.stderr[-3000:]}\n{resumed.stderr[-5000:]}")
    round1_faults = {
        "rollout.step": {"at": 5, "action": "kill", "marker": str(markers / "rollout-step")},
    }
    round1 = ramp_round(config_file, ray_cluster, round1_faults)
    if round1.returncode != 0:
        pytest.fail(f"round 1 did not finish:\n{round1.stderr[-5000:]}")
    return TinyRounds(root, config_file, cfg, killed, resumed, round1, corrupt_id, markers)
