"""`ramp serve` / `ramp deploy` refuse what they can check before any Ray cluster starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RAMP = str(Path(sys.executable).with_name("ramp"))
TOKENS = "robot-a=0123456789abcdef0123"


def ramp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "RAMP_ROBOT_TOKENS"}
    return subprocess.run(
        [RAMP, *args], capture_output=True, text=True, timeout=120, env={**base, **(env or {})}
    )


def test_serve_fails_fast_on_a_bad_version_or_missing_tokens(tmp_path):
    out = ramp(
        "serve",
        "--checkpoint",
        "policy-r1-nothere",
        "--root",
        str(tmp_path),
        env={"RAMP_ROBOT_TOKENS": TOKENS},
    )
    assert out.returncode == 2 and "unknown policy version 'policy-r1-nothere'" in out.stderr
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"format_version": 1, "kind": "policy", "version": "v"}')
    out = ramp("serve", "--checkpoint", str(folder))
    assert out.returncode == 2 and "RAMP_ROBOT_TOKENS" in out.stderr
    out = ramp("serve", "--checkpoint", str(folder), env={"RAMP_ROBOT_TOKENS": "robot-a=short"})
    assert out.returncode == 2 and "at least 16 characters" in out.stderr
    assert "short" not in out.stderr.replace("at least", "")
    out = ramp("serve", "--checkpoint", str(folder), "--detach")
    assert out.returncode == 2 and "--detach needs --address" in out.stderr
    out = ramp("serve", "--checkpoint", str(folder), "--set", "serve.max_batchsize=3")
    assert out.returncode == 2 and "did you mean 'max_batch_size'" in out.stderr
    for text in (out.stderr,):
        assert "Traceback" not in text


def test_deploy_needs_a_version_or_rollback():
    out = ramp("deploy")
    assert out.returncode == 2 and "give a VERSION, --rollback or --status" in out.stderr
    out = ramp("deploy", "v1", "--rollback")
    assert out.returncode == 2 and "not both" in out.stderr
