"""A real multi-node Ray cluster on loopback: `ray start --head` and `ray start --address`, each
node with its own temp dir, token auth on. Stopped by killing exactly the processes of these
nodes (found by their temp dirs and GCS port): never `ray stop`, which kills every Ray of the
user (the session cluster of the other tests included)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LoopbackCluster:
    gcs_port: int
    dashboard_port: int
    env: dict[str, str]
    temp_dirs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [str(BIN / "ray"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tempfile.gettempdir(),
        )
        if out.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    @classmethod
    def start(cls, env: dict[str, str], worker_cpus: int = 2) -> LoopbackCluster:
        env = dict(env)
        env.setdefault("RAY_AUTH_MODE", "token")
        env.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(24))
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `ramp` for the job entrypoint
        cluster = cls(free_port(), free_port(), env)
        head = tempfile.mkdtemp(prefix="rh-", dir="/tmp")
        worker = tempfile.mkdtemp(prefix="rw-", dir="/tmp")
        cluster.temp_dirs = [head, worker]
        common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]

        def own_ports() -> list[str]:
            # Each node's agents get ports of their own: the defaults (e.g. the dashboard agent's
            # 52365) are taken when another Ray runs on this machine (the suite's session
            # cluster), and the head then answers every job with "No available agent".
            return [
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                f"--ray-client-server-port={free_port()}",
            ]

        try:
            # The head has no CPUs: every actor that needs one (rollouts, trainers, labeller)
            # must land on the worker node; only drivers and zero-CPU actors run on the head.
            cluster._ray(
                "start", "--head", f"--port={cluster.gcs_port}",
                f"--dashboard-port={cluster.dashboard_port}", "--dashboard-host=127.0.0.1",
                "--num-cpus=0", f"--temp-dir={head}", "--resources={\"head\": 1}", *common,
                *own_ports(),
            )  # fmt: skip
            cluster._ray(
                "start", f"--address={cluster.address}", f"--num-cpus={worker_cpus}",
                f"--temp-dir={worker}", "--resources={\"worker\": 1}", *common,
                *own_ports(),
            )  # fmt: skip
        except Exception:
            cluster.stop()
            raise
        return cluster

    def submit(self, working_dir: str, *entrypoint: str, timeout: float = 900):
        """`ray job submit` and wait for the job. Right after `ray start` the head's job agent
        may not be up yet ("No available agent"): nothing was submitted then, so try again."""
        deadline = time.monotonic() + 90
        while True:
            out = subprocess.run(
                [
                    str(BIN / "ray"),
                    "job",
                    "submit",
                    "--address",
                    self.dashboard,
                    "--working-dir",
                    working_dir,
                    "--",
                    *entrypoint,
                ],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tempfile.gettempdir(),
            )
            if "No available agent" not in out.stderr or time.monotonic() > deadline:
                return out
            time.sleep(3)

    def state(self, what: str) -> list[dict]:
        """`ray list <what> --detail` of this cluster (its own token), as dicts."""
        import json

        out = self._ray(
            "list", what, "--detail", "--format=json", "--limit=10000",
            f"--address={self.dashboard}",
        )  # fmt: skip
        return json.loads(out.stdout)

    def _pids(self) -> list[int]:
        marks = [*self.temp_dirs, f":{self.gcs_port}"]
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            except OSError:
                continue
            if any(m in cmd for m in marks):
                out.append(int(proc.name))
        return out

    def stop(self) -> None:
        for _ in range(3):
            pids = [p for p in self._pids() if p != os.getpid()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(1)
        import shutil

        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
