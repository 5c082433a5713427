"""Session-wide services for the suite: started once, shared, stopped at the end.

A service a test needs that cannot start is a failure on CI (CI=true) and a skip elsewhere, with
a message saying how to enable it; never a silent pass.
"""

from __future__ import annotations

import os
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
