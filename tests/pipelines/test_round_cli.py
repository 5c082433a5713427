"""`ramp round` and the stage commands fail fast, before any cluster, on what can be checked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from round_helpers import tiny_config

from ramp.platform.config import dump_config


def ramp(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ramp.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "round.yaml"
    path.write_text(dump_config(tiny_config(tmp_path / "store")))
    return path


def test_collect_before_round_zero_is_explained(config_file):
    out = ramp("collect", "--config", str(config_file))
    assert out.returncode == 2
    assert "round 0 has no rollouts" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_s3_store_without_an_mlflow_server_is_refused_at_submit_time(tmp_path):
    path = tmp_path / "s3.yaml"
    cfg = tiny_config("s3://bucket/ramp", **{"tracking.enabled": True})
    path.write_text(dump_config(cfg))
    out = ramp("round", "--config", str(path))
    assert out.returncode == 2, out.stderr
    assert "tracking.uri" in out.stderr and "Traceback" not in out.stderr


def test_a_misspelt_key_fails_with_a_suggestion(config_file):
    out = ramp("round", "--config", str(config_file), "--set", "training.polcy.steps=5")
    assert out.returncode == 2
    assert "did you mean 'policy'" in out.stderr


def test_negative_round_and_unknown_config(config_file, tmp_path):
    out = ramp("round", "--config", str(config_file), "--round", "-1")
    assert out.returncode == 2 and "--round must be >= 0" in out.stderr
    out = ramp("round", "--config", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "nope.yaml" in out.stderr


def test_stage_commands_are_listed():
    out = ramp("--help")
    for cmd in (
        "round",
        "pretrain-world-model",
        "label",
        "train-policy",
        "collect",
        "quickstart",
        "dashboard",
    ):
        assert cmd in out.stdout
    out = ramp("pretrain-world-model", "--help")
    assert "--round" not in out.stdout  # stage 1 is always round 0
