"""Helpers for the tracking tests: a config over a local store, and checkpoint folders."""

from __future__ import annotations

import json
from pathlib import Path

from ramp.platform.config import RampConfig, validate_config


def make_config(root: Path | str, name: str = "tracking-test", **tracking) -> RampConfig:
    return validate_config({"name": name, "store": {"root": str(root)}, "tracking": tracking})


def fake_checkpoint(root: Path, kind: str, version: str) -> Path:
    """A checkpoint folder as deploy/versions sees one (config.json only: nothing loads it)."""
    folder = root / "checkpoints" / kind / version
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"format_version": 1, "kind": kind, "version": version})
    )
    return folder
