"""The robot-side client without a server: its imports, the chunk broker, recorder and spool."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from serve_helpers import make_obs

from ramp.deploy.client import (
    ActionChunk,
    ChunkBroker,
    EpisodeRecorder,
    EpisodeUploader,
    RampClient,
    RampHTTPError,
    RampUnavailable,
)
from ramp.deploy.client.codec import unpackb


def test_importing_the_client_loads_neither_torch_nor_ray():
    code = (
        "import sys, ramp.deploy.client as c\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'pyarrow', 'pydantic', 'transformers')"
        " if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the client imported {out.stdout.strip()}"


class FakeSource:
    """An inference stand-in: chunk k holds the value k in every entry; optional latency."""

    def __init__(self, horizon: int = 10, latency_s: float = 0.0, fail: set[int] | None = None):
        self.horizon, self.latency_s, self.fail = horizon, latency_s, fail or set()
        self.calls: list[int] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, obs) -> ActionChunk:
        k = len(self.calls)
        self.calls.append(obs["step"])
        self.release.wait(5)
        time.sleep(self.latency_s)
        if k in self.fail:
            raise RampUnavailable("down")
        acts = np.full((self.horizon, 2), k, np.float32) + np.arange(self.horizon)[:, None] / 100
        return ActionChunk(acts, f"v{k}")


def test_broker_prefetches_at_the_trigger_and_aligns_the_new_chunk():
    src = FakeSource(horizon=10)
    src.release.clear()  # hold the background request until we say so
    broker = ChunkBroker(src, trigger=4)
    src.release.set()
    first = broker.act({"step": 0})
    assert first[0] == 0.0 and src.calls == [0]
    src.release.clear()
    for t in range(1, 8):  # remaining after step 5 is 4 -> request with obs of step 5
        a = broker.act({"step": t})
        assert a[0] == pytest.approx(t / 100), t
    deadline = time.monotonic() + 5
    while len(src.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert src.calls == [0, 5]
    src.release.set()
    broker._pending.result(timeout=5)
    a = broker.act({"step": 8})
    # chunk 1 came from step 5's observation: at step 8 its action 3 is due
    assert a[0] == pytest.approx(1 + 3 / 100)
    assert broker.policy_version == "v1"
    broker.close()


def test_broker_waits_or_holds_when_starved_and_raises_when_it_must():
    src = FakeSource(horizon=2, latency_s=0.2)
    broker = ChunkBroker(src, trigger=0, on_starve="hold")
    broker.act({"step": 0})
    broker.act({"step": 1})
    t0 = time.perf_counter()
    held = broker.act({"step": 2})  # chunk exhausted, next one in flight: repeat the last action
    assert time.perf_counter() - t0 < 0.1 and held[0] == pytest.approx(0.01)
    assert broker.starved_steps == 1
    broker.close()

    waiting = ChunkBroker(FakeSource(horizon=4, latency_s=0.1), trigger=0, on_starve="wait")
    acts = [waiting.act({"step": t})[0] for t in range(5)]
    # chunk 1 is computed from step 3's observation: its action 0 (step 3) has passed at step 4
    assert acts == pytest.approx([0.0, 0.01, 0.02, 0.03, 1.01])
    assert waiting.starved_steps == 0 and waiting.requests == 2

    failing = ChunkBroker(FakeSource(horizon=2, fail={1}), trigger=1)
    failing.act({"step": 0})
    failing.act({"step": 1})  # the background request for the next chunk fails ...
    time.sleep(0.05)
    with pytest.raises(RampUnavailable):  # ... and surfaces when the chunk runs out
        failing.act({"step": 2})


def test_recorder_builds_the_upload_payload():
    rec = EpisodeRecorder("arm", "pick-place", "pick it", robot="r1")
    assert rec.episode_id.startswith("r1-")
    for t in range(4):
        rec.record(make_obs(t), np.zeros(7), intervention=t == 2, policy_version="v1")
    ep = rec.finish(success=True)
    assert ep["images"]["front"].shape == (4, 64, 64, 3) and ep["state"].shape == (4, 9)
    assert ep["intervention"].tolist() == [False, False, True, False]
    assert ep["policy_version"] == ["v1"] * 4
    with pytest.raises(ValueError):
        EpisodeRecorder("arm", "t", "i").finish(True)


class FakeClient:
    def __init__(self, failures: int = 0, refuse: set[str] | None = None):
        self.failures, self.refuse = failures, refuse or set()
        self.stored: dict[str, dict] = {}

    def upload_episode(self, episode):
        if self.failures:
            self.failures -= 1
            raise RampUnavailable("connection refused")
        if episode["episode_id"] in self.refuse:
            raise RampHTTPError(422, "invalid_episode", "bad step", "state")
        self.stored[episode["episode_id"]] = episode
        return {"status": "written"}


def test_uploader_spools_retries_and_rejects(tmp_path):
    client = FakeClient(failures=3, refuse={"bad"})
    up = EpisodeUploader(client, tmp_path / "spool", retry_initial_s=0.01, retry_max_s=0.05)
    for eid in ("e1", "bad", "e2"):
        path = up.submit({"episode_id": eid, "x": np.arange(3)})
        assert path.exists() or eid in client.stored
    assert up.flush(timeout=10)
    assert sorted(client.stored) == ["e1", "e2"]
    assert up.rejected() == ["bad"]
    assert (tmp_path / "spool" / "rejected" / "bad.episode.error.json").exists()
    up.close()


def test_spooled_episodes_survive_the_robot_process(tmp_path):
    down = FakeClient(failures=10**6)
    up = EpisodeUploader(down, tmp_path, retry_initial_s=0.01, retry_max_s=0.02)
    up.submit({"episode_id": "kept", "a": np.ones(2, np.float32)})
    assert not up.flush(timeout=0.2)
    up.close()
    assert unpackb((tmp_path / "kept.episode.msgpack").read_bytes())["a"].tolist() == [1.0, 1.0]
    later = FakeClient()
    up2 = EpisodeUploader(later, tmp_path, retry_initial_s=0.01)
    assert up2.flush(timeout=10) and list(later.stored) == ["kept"]
    up2.close()


def test_client_reports_an_unreachable_server():
    client = RampClient("http://127.0.0.1:9", "t" * 20, timeout=2)  # discard port: refused
    with pytest.raises(RampUnavailable):
        client.health()
    with pytest.raises(ValueError, match="http"):
        RampClient("ftp://x", None)
