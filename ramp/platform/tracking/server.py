"""Start and stop an ``mlflow server`` subprocess: the dashboard of a local store, and the real
server the test suite tracks against.

Measured here (2 cores, MLflow 3.17): ready in ~6-8 s warm, ~16 s cold; the job-execution
feature (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``) is off: it costs ~0.7 GiB and ramp never
uses it. One worker: a dashboard serves one team, not traffic.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class ServerStartError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``port`` now. SO_REUSEADDR as servers set it: closed
    connections in TIME_WAIT do not block a restart, a live listener does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path | None, n: int = 2000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-n:]


@dataclass
class MlflowServer:
    """A running ``mlflow server`` that this process started (stop() ends only it)."""

    process: subprocess.Popen
    host: str
    port: int
    log_path: Path | None
    start_s: float

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        backend_store_uri: str,
        *,
        artifacts_destination: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        timeout_s: float = 120.0,
    ) -> MlflowServer:
        """Start the server and wait for GET /health; ServerStartError if it does not answer."""
        port = port or free_port(host)
        if not port_free(host, port):
            raise ServerStartError(f"port {port} on {host} is in use; choose another (--port)")
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_store_uri,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        if artifacts_destination:
            cmd += ["--serve-artifacts", "--artifacts-destination", artifacts_destination]
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stop() ends it and its workers
            )
        finally:
            if log_path:
                out.close()
        server = cls(proc, host, port, log_path, 0.0)
        url = f"{server.url}/health"
        while True:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"mlflow server exited with code {proc.returncode}: {_tail(log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout_s:
                server.stop()
                raise ServerStartError(
                    f"mlflow server did not answer {url} within {timeout_s:.0f} s: "
                    f"{_tail(log_path)}"
                )
            time.sleep(0.25)
        server.start_s = time.monotonic() - t0
        return server

    def wait(self) -> int:
        return self.process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM to the server's process group (it and its workers), SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        pgid = self.process.pid  # start_new_session: the group id is the server's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # a worker that outlived the server
