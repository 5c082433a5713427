"""Session-wide services for the suite: started once, shared, stopped at the end.

A service a test needs that cannot start is a failure on CI (CI=true) and a skip elsewhere, with
a message saying how to enable it; never a silent pass.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import pytest

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, why: str) -> None:
    """Fail on CI, skip (with the fix) elsewhere."""
    message = f"{what} is unavailable: {why}"
    if ON_CI:
        pytest.fail(f"{message} (CI=true: a service that cannot start is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator:
    """A real S3 server: single-node Ceph with RGW on loopback (ramp.devtools.ceph_rgw)."""
    from ramp.devtools.ceph_rgw import CephRGW, CephUnavailable

    try:
        server = CephRGW.start(tmp_path_factory.mktemp("ceph"))
    except CephUnavailable as e:
        unavailable("the S3 server (Ceph RGW)", str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> dict[str, str]:
    """The standard AWS variables pointing at the test server, set for this test."""
    env = s3_server.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket on the test server."""
    import pyarrow.fs as pafs

    from ramp.platform.config import S3Config
    from ramp.platform.episodes.s3 import resolve, s3_filesystem

    settings = resolve(
        S3Config(
            endpoint_url=s3_server.endpoint,
            access_key_id=s3_server.access_key,
            secret_access_key=s3_server.secret_key,
            create_bucket=True,
        )
    )
    fs = s3_filesystem(settings)
    name = f"ramp-{uuid.uuid4().hex[:12]}"
    fs.create_dir(name)
    assert fs.get_file_info(name).type == pafs.FileType.Directory
    return name


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator:
    """ONE real `mlflow server` on a free loopback port for the session (SQLite backend, proxied
    artifacts, job execution off: ~6-16 s to start); `.url` is its tracking URI."""
    from ramp.platform.tracking.server import MlflowServer, ServerStartError

    folder = tmp_path_factory.mktemp("mlflow-server")
    try:
        server = MlflowServer.start(
            f"sqlite:///{folder / 'mlflow.db'}",
            artifacts_destination=str(folder / "artifacts"),
            log_path=folder / "server.log",
        )
    except ServerStartError as e:
        unavailable("an MLflow server", str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lerobot_python() -> str:
    """The side venv's interpreter with the real lerobot 0.6.1 (Python 3.12): `make test` builds
    it (`make lerobot-env`, ramp.devtools.lerobot_env); lerobot cannot live in ramp's venv."""
    from ramp.devtools.lerobot_env import DEFAULT_VENV, HINT, find_python312, is_ready, venv_python

    if not is_ready(DEFAULT_VENV):
        why = f"{DEFAULT_VENV} is not built"
        if find_python312() is None:
            why += " and no Python 3.12 was found"
        unavailable("the LeRobot side environment", f"{why}; {HINT}")
    return str(venv_python(DEFAULT_VENV))


_EARLY_TEARDOWN: list = []  # set by ray_cluster: stops the cluster after the last test using it


def pytest_runtest_teardown(item, nextitem) -> None:
    """Stop the session's Ray as soon as no later test needs it, so the rest of `make test` does
    not run beside an idle cluster (and its Serve replicas)."""
    if not _EARLY_TEARDOWN or nextitem is None:
        return
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any("ray_cluster" in getattr(i, "fixturenames", ()) for i in later):
        _EARLY_TEARDOWN.pop()()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """ONE 2-CPU local Ray for the whole session, token auth on; yields its GCS address.

    Its own random cluster token is in the environment (inherited by the `ramp` subprocesses
    tests start) and its own short temp dir (Unix socket paths are limited to 107 bytes); only
    what this fixture started is stopped, never `ray stop`. Everything listens on 127.0.0.1.
    """
    import ray

    if ray.is_initialized():  # a cluster this process already joined: share it, leave it running
        yield ray.get_runtime_context().gcs_address
        return
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}

    def restore() -> None:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(24)
    from ray._raylet import Config

    Config.initialize("")  # the process may have read RAY_AUTH_MODE already (ray does the same)
    temp = tempfile.mkdtemp(prefix="ramp-ray-", dir="/tmp")
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _temp_dir=temp,
            _node_ip_address="127.0.0.1",  # all traffic on loopback
            log_to_driver=False,
        )
    except Exception as e:  # pragma: no cover - depends on the machine
        shutil.rmtree(temp, ignore_errors=True)
        restore()
        unavailable("a local Ray cluster", str(e))

    def stop() -> None:
        try:
            ray.shutdown()  # this process started the cluster: this stops all of it
        finally:
            restore()
            shutil.rmtree(temp, ignore_errors=True)

    _EARLY_TEARDOWN.append(stop)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        if stop in _EARLY_TEARDOWN:
            _EARLY_TEARDOWN.remove(stop)
            stop()


@pytest.fixture(scope="session")
def demo_store_template(tmp_path_factory):
    """A store of real MetaWorld demonstrations: 4 noisy scripted-expert episodes per task (2
    tasks, 64 px, <= 60 steps; successes and failures). Copy it (`demo_store`) before writing."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from round_helpers import TASKS, tiny_config

    from ramp.pipelines.demos import collect_demos

    root = tmp_path_factory.mktemp("demo-store") / "store"
    cfg = tiny_config(root)
    report = collect_demos(cfg.envs.env, cfg.envs.demos, str(root), cfg)
    assert sum(t.kept for t in report.tasks) == 4 * len(TASKS), report.format()
    return root


@pytest.fixture
def demo_store(demo_store_template, tmp_path):
    """A private copy of the demonstration store for one test."""
    root = tmp_path / "store"
    shutil.copytree(demo_store_template, root)
    return root
