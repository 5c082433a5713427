"""`ramp` as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ramp.platform.config import EmbodimentConfig
from ramp.platform.episodes import Episode, EpisodeStore

RAMP = str(Path(sys.executable).with_name("ramp"))


def ramp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAMP, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def _store(root: Path) -> EpisodeStore:
    spec = EmbodimentConfig(
        cameras={"front": {"height": 8, "width": 8}},
        state_names=["q0", "q1"],
        action_names=["a0"],
        action_low=[-1.0],
        action_high=[1.0],
    )
    store = EpisodeStore(str(root), {"arm": spec})
    rng = np.random.default_rng(0)
    for i, (task, success, rnd, n_int) in enumerate(
        [("pick", True, 0, 0), ("pick", False, 0, 2), ("place", True, 1, 1)]
    ):
        t = 4
        intervention = np.zeros(t, bool)
        intervention[:n_int] = True
        store.write(
            Episode(
                episode_id=f"ep-{i}",
                embodiment="arm",
                task=task,
                instruction=f"{task} the cube",
                images={"front": rng.integers(0, 255, (t, 8, 8, 3), dtype=np.uint8)},
                state=rng.normal(size=(t, 2)),
                action=rng.uniform(-1, 1, size=(t, 1)),
                success=success,
                source="sim",
                policy_version="p0",
                round=rnd,
                intervention=intervention,
            )
        )
    return store


def test_help_lists_commands():
    out = ramp("--help")
    assert out.returncode == 0
    for cmd in ("config", "data", "bench"):
        assert cmd in out.stdout


def test_config_check_prints_resolved_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store:\n  root: /srv/ramp\n")
    out = ramp(
        "config",
        "check",
        str(cfg),
        "--set",
        "sampling.chunk_size=8",
        "--set",
        "models.policy.chunk_size=8",
    )
    assert out.returncode == 0, out.stderr
    assert "root: /srv/ramp" in out.stdout
    assert "chunk_size: 8" in out.stdout
    assert "image_encoding: raw" in out.stdout  # defaults are spelled out


def test_config_check_error_is_one_clear_message(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store:\n  roots: /srv/ramp\n")
    out = ramp("config", "check", str(cfg))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "line 2" in out.stderr and "did you mean 'root'" in out.stderr


def test_data_stats_tables_and_json(tmp_path):
    _store(tmp_path / "store")
    out = ramp("data", "stats", str(tmp_path / "store"), "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["total"]["episodes"] == 3
    assert stats["total"]["steps"] == 12
    assert stats["by"]["task"]["pick"]["success_rate"] == pytest.approx(0.5)
    assert stats["by"]["round"]["1"]["intervention_share"] == pytest.approx(1 / 4)
    assert stats["by"]["round"]["0"]["intervention_share"] == pytest.approx(2 / 8)
    text = ramp("data", "stats", str(tmp_path / "store"))
    assert "3 episodes" in text.stdout and "place" in text.stdout


def test_data_validate_reports_and_quarantines(tmp_path):
    store = _store(tmp_path / "store")
    ok = ramp("data", "validate", str(tmp_path / "store"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 episodes ok" in ok.stdout
    victim_rel = store.lookup("ep-1").path
    victim = tmp_path / "store" / victim_rel
    victim.write_bytes(victim.read_bytes()[:100])
    bad = ramp("data", "validate", str(tmp_path / "store"), "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["episodes_ok"] == 2
    assert [q["path"] for q in report["quarantined"]] == [victim_rel]
    assert (tmp_path / "store" / "quarantine").exists()
    assert not victim.exists()


def test_unknown_benchmark_suggests():
    out = ramp("bench", "episode-stor")
    assert out.returncode == 2
    assert "did you mean 'episode-store'" in out.stderr


def test_episode_store_benchmark_writes_contract_json(tmp_path):
    out = ramp("bench", "episode-store", "--quick", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    assert "ratio write" in out.stdout and "ratio read" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["name"] == "episode-store"
    assert set(result) >= {"name", "machine", "date", "metrics", "ratios", "targets"}
    assert result["targets"]["write"] == {"min": 0.8}
    assert result["ratios"]["write"] > 0 and result["ratios"]["read"] > 0
    for enc in ("raw", "png", "jpeg"):
        assert result["metrics"][f"bytes_per_step_{enc}"] > 0
    # jpeg is lossy and must come out smaller than raw frames on these renders
    assert result["metrics"]["bytes_per_step_jpeg"] < result["metrics"]["bytes_per_step_raw"]
