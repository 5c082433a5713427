"""A Ray cluster of a benchmark's own, so a benchmark never joins (or stops) someone else's."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator


class PrivateRay:
    """Token auth with a fresh token, its own short temp dir, loopback only; ``start()`` when the
    benchmark is ready (set-up that must not compete with Ray comes first)."""

    def __init__(self, num_cpus: int = 2):
        self.num_cpus = num_cpus
        self.temp = tempfile.mkdtemp(prefix="ramp-ray-", dir="/tmp")
        self.started = False

    def start(self) -> None:
        import ray

        ray.init(
            num_cpus=self.num_cpus,
            include_dashboard=False,
            _temp_dir=self.temp,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level="ERROR",
        )
        self.started = True


@contextlib.contextmanager
def private_ray(num_cpus: int = 2) -> Iterator[PrivateRay]:
    """Yields a PrivateRay; on exit shuts it down and restores the caller's Ray auth settings."""
    keys = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(24)
    from ray._raylet import Config

    Config.initialize("")  # the process may have read RAY_AUTH_MODE already
    cluster = PrivateRay(num_cpus)
    try:
        yield cluster
    finally:
        try:
            if cluster.started:
                import ray

                ray.shutdown()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(cluster.temp, ignore_errors=True)
