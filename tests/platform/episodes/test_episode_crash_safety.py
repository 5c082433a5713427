"""A writer killed with SIGKILL never leaves a visible partial episode (real processes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ramp.platform.episodes import EpisodeNotFoundError
from ramp.platform.episodes.check import check_store
from ramp.platform.episodes.fs import TMP_PREFIX
from ramp.platform.episodes.validate import validate_table

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

HERE = Path(__file__).resolve().parent

# Runs in a fresh interpreter; argv: store root, marker path, episode id.
STALL_IN_RENAME = """
import sys, time
sys.path.insert(0, {here!r})
from conftest import build_episode, open_store
import ramp.platform.episodes.fs as store_fs

root, marker, eid = sys.argv[1:4]
real_replace = store_fs.os.replace

def stalled_replace(src, dst):
    if str(dst).endswith(".parquet"):
        open(marker, "w").close()  # the data file is complete under its temporary name
        time.sleep(120)  # ... and the parent kills us here, before the rename
    return real_replace(src, dst)

store_fs.os.replace = stalled_replace
store = open_store(root)
store.write(build_episode(eid, optional=True))
"""

# Writes episodes loop-0000, loop-0001, ... until killed (ids that exist are a no-op).
WRITE_FOREVER = """
import sys
sys.path.insert(0, {here!r})
from conftest import build_episode, open_store

store = open_store(sys.argv[1])
for i in range(100000):
    store.write(build_episode(f"loop-{{i:04d}}", num_steps=3 + i % 5, optional=i % 2 == 0))
"""


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body.format(here=str(HERE))))
    return path


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            _kill(proc)
            raise AssertionError("writer never reached the expected point")
        time.sleep(0.01)


def test_killed_mid_write_leaves_nothing_visible(tmp_path, make_store, make_episode):
    root, marker = tmp_path / "store", tmp_path / "marker"
    script = _script(tmp_path, "stall.py", STALL_IN_RENAME)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(marker), "crash-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for(marker.exists, proc)
    _kill(proc)

    store = make_store()
    assert store.episodes() == []
    assert store.lookup("crash-1") is None
    with pytest.raises(EpisodeNotFoundError):
        store.read_episode("crash-1")
    assert store.read().num_rows == 0
    leftovers = list((root / "episodes").rglob(f"{TMP_PREFIX}*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # it died mid-write
    assert store.index_files() != []  # the claim landed before the data: a stale claim

    ep = make_episode("crash-1", optional=True)
    result = store.write(ep)
    assert result.status == "written"
    table = store.read_episode("crash-1")
    np.testing.assert_array_equal(
        np.array(table.column("action").to_pylist(), np.float32), ep.action
    )
    assert [e.episode_id for e in make_store().episodes()] == ["crash-1"]
    assert make_store().write(ep).status == "exists"

    report = check_store(make_store(), stale_after_s=-1)  # the dead writer's temporary goes
    assert report.temporaries_removed == 1 and report.clean and report.episodes_ok == 1
    assert report.index_removed == [] and report.index_repaired == []
    assert not list(root.rglob(f"{TMP_PREFIX}*"))


def test_killed_at_random_moments_never_exposes_a_bad_episode(
    tmp_path, make_store, make_episode, specs
):
    root = tmp_path / "store"
    script = _script(tmp_path, "loop.py", WRITE_FOREVER)
    rng = random.Random(1234)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        start = len(make_store().episodes())
        target = start + rng.randint(1, 8)
        _wait_for(lambda target=target: len(make_store().episodes()) >= target, proc)
        time.sleep(rng.uniform(0.0, 0.05))
        _kill(proc)

    store = make_store()
    visible = store.episodes()
    assert len(visible) >= 4
    for entry in visible:
        table = store.read_episode(entry.episode_id)
        meta = validate_table(table, specs)
        assert meta.num_steps == table.num_rows == entry.num_steps
    assert store.quarantined() == []

    # Every id the writers may have touched can be written (again) and reads back whole.
    last = max(int(e.episode_id.split("-")[1]) for e in visible) + 1
    for i in range(last + 1):
        ep = make_episode(f"loop-{i:04d}", num_steps=3 + i % 5, optional=i % 2 == 0)
        assert store.write(ep).status in ("written", "exists")
        got = store.read_episode(ep.episode_id, columns=["action"])
        np.testing.assert_array_equal(
            np.array(got.column("action").to_pylist(), np.float32), ep.action
        )
    report = check_store(make_store())
    assert report.clean and report.episodes_ok == last + 1
