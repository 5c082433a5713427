"""The episode store on a real S3 server (single-node Ceph RGW on loopback), both S3 clients.

The same guarantees as on a local disk: round trip, idempotent retry across rounds, conflicts
refused, quarantine, and a writer killed mid-upload leaves nothing visible. Plus what only a
network store has: transient errors are retried, a dead endpoint is an error naming it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import build_episode, embodiments, label_table  # tests/platform/episodes

from ramp.platform.config import S3Config, StoreConfig
from ramp.platform.episodes import (
    EpisodeConflictError,
    EpisodeNotFoundError,
    EpisodeStore,
    EpisodeUnreadableError,
)
from ramp.platform.episodes.check import check_store
from ramp.platform.episodes.fs import StoreUnavailableError
from ramp.platform.episodes.s3 import resolve, s3_filesystem

HERE = Path(__file__).resolve().parent
CLIENTS = ["pyarrow", "s3fs"]


def s3_store(root: str, client: str = "pyarrow", **s3: object) -> EpisodeStore:
    """A store on `root`; endpoint and keys come from the AWS_* environment (s3_env)."""
    cfg = StoreConfig(root=root, s3=S3Config(client=client, **s3))
    return EpisodeStore(root, embodiments(), cfg)


def raw_fs() -> pafs.FileSystem:
    return s3_filesystem(resolve(S3Config()))


@pytest.mark.parametrize("client", CLIENTS)
def test_round_trip_idempotency_and_labels(s3_env, s3_bucket, tmp_path, client):
    root = f"s3://{s3_bucket}/lab/ramp"
    store = s3_store(root, client)
    local = EpisodeStore(str(tmp_path / "local"), embodiments())
    episodes = [
        build_episode("s3-ep-0", optional=True),
        build_episode("s3-ep-1", embodiment="cart", num_steps=4, round=1, source="robot-7"),
    ]
    for ep in episodes:
        assert store.write(ep).status == "written"
        local.write(ep)
    # Everything written is what a local store holds, column for column and in the metadata.
    for ep in episodes:
        ours = store.read_episode(ep.episode_id)
        theirs = local.read_episode(ep.episode_id)
        assert ours.equals(theirs, check_metadata=True)
    assert [e.episode_id for e in store.episodes(round=1)] == ["s3-ep-1"]

    # A fresh process (no cache) sees the same store; a retry in a later round is a no-op.
    again = s3_store(root, client)
    retry = build_episode("s3-ep-0", optional=True, round=3)
    result = again.write(retry)
    assert (result.status, result.path) == ("exists", "episodes/round=0/source=sim/s3-ep-0.parquet")
    with pytest.raises(EpisodeConflictError, match="s3-ep-0"):
        again.write(build_episode("s3-ep-0", seed=7, source="other"))
    assert len(again.episodes()) == 2

    again.write_labels("wm-r1-abc", label_table("s3-ep-0", 6))
    joined = again.read_episode("s3-ep-0", columns=["step", "state"], labels="wm-r1-abc")
    assert joined.column("value").to_pylist() == pytest.approx([s / 10 for s in range(6)])
    report = check_store(again)
    assert report.clean and report.episodes_ok == 2 and report.labels_ok == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_corrupt_object_goes_to_quarantine(s3_env, s3_bucket, client):
    root = f"s3://{s3_bucket}/q"
    store = s3_store(root, client)
    store.write(build_episode("s3-bad"))
    rel = store.lookup("s3-bad").path
    fs = raw_fs()
    with fs.open_output_stream(f"{s3_bucket}/q/{rel}") as out:
        out.write(b"this is not parquet" * 10)
    with pytest.raises(EpisodeUnreadableError, match="quarantine"):
        s3_store(root, client).read_episode("s3-bad")
    notes = store.quarantined()
    assert [n["original_path"] for n in notes] == [rel]
    assert "Parquet" in notes[0]["reason"] or "parquet" in notes[0]["reason"]
    assert fs.get_file_info(f"{s3_bucket}/q/{rel}").type == pafs.FileType.NotFound
    # The id is free again: a robot's re-upload lands.
    assert s3_store(root, client).write(build_episode("s3-bad")).status == "written"


# Runs in a fresh interpreter with the AWS_* env: starts a multipart upload of a large episode,
# sends its first part, touches the marker and stalls until the parent kills it.
STALL_MID_UPLOAD = """
import sys, time
import numpy as np
sys.path.insert(0, {here!r})
from conftest import build_episode
from ramp.platform.config import EmbodimentConfig, StoreConfig
from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.fs import StoreFS

root, marker = sys.argv[1:3]

real_write_atomic = StoreFS.write_atomic

def stalled_write_atomic(self, rel, data):
    if not rel.endswith(".parquet"):  # the index claim goes through as usual
        return real_write_atomic(self, rel, data)
    with self.fs.open_output_stream(self.full(rel)) as out:
        view = memoryview(data)
        out.write(view[: len(view) // 2])  # more than one 5 MiB part: the upload has begun
        out.flush()
        open(marker, "w").close()
        time.sleep(120)  # the parent kills us here
        out.write(view[len(view) // 2 :])

StoreFS.write_atomic = stalled_write_atomic
# 40 steps of incompressible 256x256 frames, uncompressed: ~8 MB, several upload parts.
spec = EmbodimentConfig(
    cameras={{"front": {{"height": 256, "width": 256}}}}, state_names=["q0", "q1", "q2", "grip"],
    action_names=["dx", "dy", "dgrip"], action_low=[-1, -1, 0], action_high=[1, 1, 1], fps=10,
)
store = EpisodeStore(root, {{"arm": spec}}, StoreConfig(root=root, compression="none"))
ep = build_episode("s3-killed", num_steps=40)
ep.images = {{"front": np.random.default_rng(0).integers(0, 255, (40, 256, 256, 3), np.uint8)}}
store.write(ep)
"""


def test_writer_killed_mid_upload_leaves_nothing_visible(s3_env, s3_bucket, tmp_path):
    root = f"s3://{s3_bucket}/kill"
    script = tmp_path / "stall.py"
    script.write_text(STALL_MID_UPLOAD.format(here=str(HERE)))
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(script), root, str(marker)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the writer exited before reaching the stall"
            assert time.monotonic() < deadline, "the writer never reached the stall"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = s3_store(root)
    assert store.episodes() == []
    with pytest.raises(EpisodeNotFoundError):
        store.read_episode("s3-killed")
    selector = pafs.FileSelector(f"{s3_bucket}/kill", recursive=True, allow_not_found=True)
    listed = [i.path for i in raw_fs().get_file_info(selector)]
    assert any("/index/episodes/" in p for p in listed)  # it died after claiming the id ...
    assert not [p for p in listed if p.endswith(".parquet")]  # ... and before any data showed
    # The claim it left is stale; the next write of the id takes over and lands.
    assert store.write(build_episode("s3-killed")).status == "written"
    assert store.read_episode("s3-killed").num_rows == 6


def test_unreachable_endpoint_is_an_error_naming_it(monkeypatch, s3_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError) as e:
        s3_store("s3://any-bucket/x", max_attempts=2, connect_timeout_s=1, request_timeout_s=2)
    assert dead in str(e.value)
    assert time.monotonic() - t0 < 60  # bounded by the configured retries, never a hang


class FlakyProxy:
    """A TCP proxy to the S3 server that slams the door on its first `failures` connections."""

    def __init__(self, target_port: int, failures: int):
        self.target_port = target_port
        self.failures = failures
        self.refused = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.refused < self.failures:
                self.refused += 1
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                client.close()  # RST: the client sees a connection reset
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.stopping = True
        self.sock.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_transient_connection_failures_are_retried(
    s3_env, s3_server, s3_bucket, monkeypatch, client
):
    proxy = FlakyProxy(s3_server.port, failures=3)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        store = s3_store(f"s3://{s3_bucket}/flaky", client, max_attempts=8)
        assert store.write(build_episode("s3-flaky")).status == "written"
        assert store.read_episode("s3-flaky").num_rows == 6
        assert proxy.refused == 3  # the failures happened, and were absorbed by retries
    finally:
        proxy.close()


def test_missing_bucket_says_how_to_fix(s3_env):
    with pytest.raises(StoreUnavailableError, match="create_bucket"):
        s3_store("s3://no-such-bucket-here/x")
