"""LeRobot interop against the real lerobot 0.6.1, run in its side venv (Python 3.12) by
subprocess: a fresh dataset written by lerobot is imported, compared with what lerobot's own
LeRobotDataset reads from it, exported, and the export is read back with LeRobotDataset.

Needs `.venv-lerobot` (`make lerobot-env`, part of `make test`); skips without it (fails on CI).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import build_episode, open_store

from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.lerobot_export import export_lerobot
from ramp.platform.episodes.lerobot_import import import_lerobot

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parents[2] / "fixtures" / "lerobot"


def side(python: str, script: str, *args: object) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SVT_LOG": "1"}
    proc = subprocess.run(
        [python, str(SCRIPTS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


def read_with_lerobot(python: str, dataset: Path, out: Path) -> tuple[dict, dict]:
    side(python, "read_lerobot.py", dataset, out)
    data = np.load(out)
    meta = json.loads(str(data["__meta__"]))
    return {k: data[k] for k in data.files if k != "__meta__"}, meta


def store_columns(store: EpisodeStore) -> dict[str, np.ndarray]:
    """Every step of every episode in id order (= LeRobot frame order after an import)."""
    cols: dict[str, list] = {}
    for entry in store.episodes():
        table = store.read_episode(entry.episode_id)
        meta = store.episode_meta(entry.episode_id)
        n = table.num_rows
        for name in ("state", "action"):
            cols.setdefault(name, []).append(
                np.asarray(table.column(name).combine_chunks().flatten(), np.float32).reshape(n, -1)
            )
        ts = table.column("timestamp").to_numpy()
        cols.setdefault("rel_timestamp", []).append((ts - ts[0]).astype(np.float32))
        for name in ("reward", "success", "done", "intervention"):
            cols.setdefault(name, []).append(table.column(name).to_numpy(zero_copy_only=False))
        for name in ("instruction", "policy_version"):
            cols.setdefault(name, []).append(np.array(table.column(name).to_pylist()))
        for cam, c in meta.cameras.items():
            frames = decode_frames(table.column(f"image.{cam}"), c.encoding, c.height, c.width)
            cols.setdefault(f"image.{cam}", []).append(frames)
    return {k: np.concatenate(v) for k, v in cols.items()}


def check_export_read_by_lerobot(python: str, store: EpisodeStore, tmp_path: Path, mae: float):
    export_lerobot(store, tmp_path / "export")
    back, meta = read_with_lerobot(python, tmp_path / "export", tmp_path / "export.npz")
    ours = store_columns(store)
    assert meta["num_frames"] == len(ours["state"])
    assert meta["total_episodes"] == len(store.episodes())
    np.testing.assert_array_equal(back["observation.state"], ours["state"])
    np.testing.assert_array_equal(back["action"], ours["action"])
    np.testing.assert_array_equal(back["timestamp"], ours["rel_timestamp"])
    assert back["task"].tolist() == ours["instruction"].tolist()
    np.testing.assert_array_equal(back["next.reward"], ours["reward"])
    np.testing.assert_array_equal(back["next.success"], ours["success"])
    np.testing.assert_array_equal(back["next.done"], ours["done"])
    np.testing.assert_array_equal(back["complementary_info.is_intervention"], ours["intervention"])
    assert back["ramp.policy_version"].tolist() == ours["policy_version"].tolist()
    for key in meta["camera_keys"]:
        cam = key[len("observation.images.") :]
        mine = ours[f"image.{cam}"]
        assert back[key].shape == mine.shape
        assert np.abs(back[key].astype(int) - mine).mean() < mae, key
    return back, meta


def test_real_lerobot_dataset_imports_and_exports(lerobot_python, tmp_path):
    src = tmp_path / "wide"
    side(lerobot_python, "make_fixture.py", "--spec", "wide", src)
    theirs, meta = read_with_lerobot(lerobot_python, src, tmp_path / "src.npz")

    store = EpisodeStore(str(tmp_path / "store"))
    report = import_lerobot(src, store)
    assert (report.written, report.frames) == (4, 46)
    assert report.embodiment == "lerobot"  # no robot_type
    assert report.mapped["complementary_info.is_intervention"] == "intervention"
    spec = store.episode_meta("wide-000000")
    assert spec.state_names == [f"state_{i}" for i in range(7)]  # lerobot wrote no names
    assert spec.action_names == ["a0", "a1", "a2", "a3", "gripper"]
    assert spec.fps == 15.0 == meta["fps"]
    assert {c: (m.height, m.width) for c, m in spec.cameras.items()} == {
        "front": (96, 128),
        "left_wrist": (64, 72),
        "wrist_right": (80, 64),  # observation.images.wrist.right
    }
    assert len(list((src / "data").glob("*/*.parquet"))) == 4  # lerobot rolled files over
    assert len(list((src / "videos/observation.images.front").glob("*/*.mp4"))) == 4

    ours = store_columns(store)
    np.testing.assert_array_equal(ours["state"], theirs["observation.state"])
    np.testing.assert_array_equal(ours["action"], theirs["action"])
    np.testing.assert_array_equal(ours["rel_timestamp"], theirs["timestamp"])
    assert ours["instruction"].tolist() == theirs["task"].tolist()
    assert sorted(set(ours["instruction"])) == sorted(meta["tasks"])
    np.testing.assert_array_equal(
        ours["intervention"], theirs["complementary_info.is_intervention"]
    )
    for key in meta["camera_keys"]:  # ramp's frames are what lerobot decodes, exactly
        cam = key[len("observation.images.") :].replace(".", "_")
        np.testing.assert_array_equal(ours[f"image.{cam}"], theirs[key])

    _, back_meta = check_export_read_by_lerobot(lerobot_python, store, tmp_path, mae=3.0)
    assert sorted(back_meta["tasks"]) == sorted(meta["tasks"])
    assert back_meta["robot_type"] == "lerobot"
    features = back_meta["features"]
    assert features["observation.state"]["names"] == spec.state_names
    assert features["observation.images.front"]["shape"] == [96, 128, 3]


def test_real_lerobot_reads_ramp_episodes(lerobot_python, tmp_path):
    """Episodes made by ramp (16x16 and 12x16 cameras, irregular timestamps, per-step policy
    versions and instructions, interventions) load in lerobot's LeRobotDataset."""
    store = open_store(tmp_path / "s")
    for i in range(3):
        store.write(
            build_episode(
                f"ep-{i}",
                num_steps=8 + 3 * i,
                optional=True,
                success=i != 2,
                policy_version=["policy-r2-abc"] * 5 + ["human"] * (3 + 3 * i),
            )
        )
    check_export_read_by_lerobot(lerobot_python, store, tmp_path, mae=4.0)
