"""Versions: a redeploy under concurrent robots with zero failed requests, rollback from another
process (the CLI), refused deploys that leave the live version serving, and standard mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import ACTION_DIM, make_obs, openpi_policy

from ramp.deploy import control
from ramp.deploy.client import RampClient, StreamSession
from ramp.deploy.versions import DeployHistory, VersionError

RAMP = str(Path(sys.executable).with_name("ramp"))
MAX_REQUESTS = 2000  # per robot: loops are bounded even if the stop signal were lost


def ramp_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAMP, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


class Robots:
    """Four robots acting in a loop over every transport, recording versions and failures."""

    def __init__(self, server):
        self.server = server
        self.stop = threading.Event()
        self.versions: dict[str, list[str]] = {}
        self.failures: list[tuple[str, str]] = []
        self.threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True)
            for name in ("http-msgpack", "http-json", "stream", "openpi")
        ]

    def _act(self, name: str):
        token = self.server.tokens["robot-a" if name != "openpi" else "robot-b"]
        if name.startswith("http"):
            client = RampClient(self.server.url, token, fmt=name.split("-")[1])
            return lambda obs: client.act(obs).policy_version
        if name == "stream":
            session = StreamSession(self.server.ws_url, token).connect()
            return lambda obs: session.act(obs).policy_version
        policy = openpi_policy(f"{self.server.ws_url}/v1/openpi", token)

        def infer(obs):
            out = policy.infer(
                {
                    "observation/image": obs["images"]["front"],
                    "observation/wrist_image": obs["images"]["wrist"],
                    "observation/state": obs["state"],
                    "prompt": obs["instruction"],
                }
            )
            assert out["actions"].shape == (50, ACTION_DIM)
            return out["policy_version"]

        return infer

    def _run(self, name: str) -> None:
        seen = self.versions.setdefault(name, [])
        try:
            act = self._act(name)
        except Exception as e:  # pragma: no cover - reported by the test
            self.failures.append((name, f"connect: {e!r}"))
            return
        obs = make_obs(seed=len(self.versions))
        for _ in range(MAX_REQUESTS):
            if self.stop.is_set():
                return
            try:
                seen.append(act(obs))
            except Exception as e:
                self.failures.append((name, repr(e)))

    def __enter__(self) -> Robots:
        for t in self.threads:
            t.start()
        return self

    def wait_for(self, version: str, timeout: float = 60.0) -> None:
        """Until every robot got an answer from ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(v and v[-1] == version for v in self.versions.values()) and len(
                self.versions
            ) == len(self.threads):
                return
            time.sleep(0.05)
        raise AssertionError(f"not every robot reached {version}: {self.last()}")

    def last(self) -> dict[str, str | None]:
        return {k: (v[-1] if v else None) for k, v in self.versions.items()}

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def runs(seq: list[str]) -> list[str]:
    """["a", "a", "b", "b", "a"] -> ["a", "b", "a"]."""
    return [v for i, v in enumerate(seq) if i == 0 or seq[i - 1] != v]


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")
def test_redeploy_and_rollback_under_concurrent_robots_fail_no_request(live):
    server = live
    v1, v2 = server.versions
    with Robots(server) as robots:
        robots.wait_for(v1)
        result = control.deploy(v2)  # what `ramp deploy v2` runs
        assert (result.action, result.version, result.previous) == ("deploy", v2, v1)
        robots.wait_for(v2)
        counts = {k: len(v) for k, v in robots.versions.items()}
        out = ramp_cli("deploy", "--rollback", "--address", server.address)  # another process
        assert out.returncode == 0, out.stderr
        assert f"rollback: {v1} is live (was {v2})" in out.stdout
        robots.wait_for(v1)
    assert robots.failures == [], robots.failures[:5]
    for name, seen in robots.versions.items():
        assert runs(seen) == [v1, v2, v1], (name, runs(seen))
        assert len(seen) > counts[name] > 0
    history = DeployHistory.load(server.root)
    assert [e["version"] for e in history.live][-1] == v1
    assert [e["action"] for e in history.events][-2:] == ["deploy", "rollback"]
    status = ramp_cli("deploy", "--status", "--address", server.address)
    assert status.returncode == 0 and f'"version": "{v1}"' in status.stdout


def test_deploys_that_cannot_work_leave_the_live_version_serving(live):
    server = live
    v1 = server.versions[0]
    with pytest.raises(VersionError, match=f"did you mean '{v1}'"):
        control.deploy(v1[:-1] + ("0" if v1[-1] != "0" else "1"))
    assert control.deploy(v1).action == "noop"
    out = ramp_cli("deploy", "policy-r99-nothere", "--address", server.address)
    assert out.returncode == 2 and "unknown policy version 'policy-r99-nothere'" in out.stderr
    assert "Traceback" not in out.stderr

    broken = Path(server.root) / "checkpoints" / "policy" / "policy-r9-broken0"
    shutil.copytree(Path(server.root) / "checkpoints" / "policy" / v1, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    try:
        with pytest.raises(control.DeployError, match="did not load"):
            control.deploy("policy-r9-broken0")
    finally:
        shutil.rmtree(broken)
    assert control.status()["version"] == v1
    chunk = RampClient(server.url, server.tokens["robot-a"]).act(make_obs())
    assert chunk.policy_version == v1


def test_standard_mode_composes_the_world_model_through_handles(server, world_model_version):
    """A second application in standard mode (the same code `ramp serve --mode standard` runs),
    called through its handle API: the world model deployment is composed in front."""
    import ray
    from ray import serve

    from ramp.deploy.app import NAMESPACE, STATE_ACTOR
    from ramp.deploy.versions import resolve

    state = ray.get(ray.get_actor(STATE_ACTOR, namespace=NAMESPACE).get.remote())
    bundle = dict(state["bundle"])
    bundle["settings"] = {**bundle["settings"], "mode": "standard"}
    bundle["world_model"] = resolve(world_model_version, server.root, "world-model").to_json()
    name = "ramp-test-standard"
    try:
        handle = serve.run(control.application(bundle, {}), name=name, route_prefix=None)
        info = handle.info.remote().result(timeout_s=60)
        assert info["mode"] == "standard" and info["world_model_version"] == world_model_version
        result = handle.act.remote(make_obs()).result(timeout_s=60)
        assert result["mode"] == "standard" and result["policy_version"] == server.versions[0]
        assert result["actions"].shape == (50, ACTION_DIM) and np.isfinite(result["actions"]).all()
    finally:
        serve.delete(name)
