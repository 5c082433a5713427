"""`ramp data copy`: byte-identical, resumable, never a duplicate id; local <-> S3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_episode, label_table, open_store

from ramp.platform.episodes.copy import copy_store

RAMP = str(Path(sys.executable).with_name("ramp"))


def _fill(store) -> None:
    store.write(build_episode("c-0", optional=True))
    store.write(build_episode("c-1", embodiment="cart", num_steps=4, round=1))
    store.write(build_episode("c-2", round=1, source="robot-1", success=False))
    store.write_labels("wm-a", label_table("c-0", 6))
    store.write_labels("wm-a", label_table("c-2", 6))
    store.set_current_round(2)


def _same(src, dst) -> None:
    assert [e.episode_id for e in dst.episodes()] == [e.episode_id for e in src.episodes()]
    for e in src.episodes():
        d = dst.lookup(e.episode_id)
        assert (d.path, d.content_hash) == (e.path, e.content_hash)
        assert dst.fs.read_bytes(d.path) == src.fs.read_bytes(e.path)  # byte for byte


def test_copy_is_complete_and_byte_identical(tmp_path):
    src = open_store(tmp_path / "src")
    _fill(src)
    dst = open_store(tmp_path / "dst")
    report = copy_store(src, dst, workers=2)
    assert (report.copied, report.skipped, report.failed) == (3, 0, [])
    assert report.labels_copied == 2
    _same(src, dst)
    assert dst.labelled_ids("wm-a") == {"c-0", "c-2"}
    joined = dst.read_episode("c-0", labels="wm-a")
    assert joined.column("value").to_pylist() == pytest.approx([s / 10 for s in range(6)])
    assert dst.current_round() == 2


def test_copy_resumes_where_it_stopped(tmp_path):
    src = open_store(tmp_path / "src")
    _fill(src)
    dst = open_store(tmp_path / "dst")
    first = copy_store(src, dst, round=1)  # an interrupted copy: only part of it landed
    assert (first.copied, first.skipped) == (2, 0)
    second = copy_store(src, dst)
    assert (second.copied, second.skipped) == (1, 2)
    assert second.labels_skipped == 1 and second.labels_copied == 1
    _same(src, dst)


def test_copy_into_a_store_with_a_clashing_id_reports_it(tmp_path):
    src = open_store(tmp_path / "src")
    _fill(src)
    dst = open_store(tmp_path / "dst")
    dst.write(build_episode("c-1", seed=5, source="elsewhere"))  # same id, other content
    report = copy_store(src, dst)
    assert report.copied == 2
    assert [eid for eid, _ in report.failed] == ["c-1"]
    assert "different content" in report.failed[0][1]
    assert dst.lookup("c-1").path.endswith("source=elsewhere/c-1.parquet")  # untouched


def test_cli_copy_local_to_s3_and_back(s3_env, s3_bucket, tmp_path):
    src = open_store(tmp_path / "src")
    _fill(src)
    s3_root = f"s3://{s3_bucket}/copied"
    out = subprocess.run(
        [RAMP, "data", "copy", str(tmp_path / "src"), s3_root], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "3 copied" in out.stdout and "3/3 episodes" in out.stderr
    again = subprocess.run(
        [RAMP, "data", "copy", str(tmp_path / "src"), s3_root], capture_output=True, text=True
    )
    assert "0 copied, 3 already there" in again.stdout
    back = subprocess.run(
        [RAMP, "data", "copy", s3_root, str(tmp_path / "back")], capture_output=True, text=True
    )
    assert back.returncode == 0, back.stderr
    _same(src, open_store(tmp_path / "back"))
    stats = subprocess.run(
        [RAMP, "data", "stats", s3_root, "--json"], capture_output=True, text=True
    )
    assert '"episodes": 3' in stats.stdout
