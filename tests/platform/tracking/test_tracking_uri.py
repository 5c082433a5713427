"""Where MLflow lives for a config: derived URIs, the S3-without-server error, a dead server."""

from __future__ import annotations

import time

import pytest
from tracking_helpers import make_config

from ramp.platform.config import ConfigError
from ramp.platform.tracking import uri as U
from ramp.platform.tracking.server import free_port


def test_local_store_tracks_into_sqlite_next_to_the_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_config("./data")
    uri = U.tracking_uri(cfg.tracking, cfg.store.root)
    assert uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert U.artifact_location(cfg.tracking, cfg.store.root) == (
        (tmp_path / "data" / "mlflow-artifacts").as_uri()
    )
    assert U.experiment_name(cfg.tracking, cfg.name) == "tracking-test"
    client = U.make_client(cfg.tracking, cfg.store.root)
    assert client.tracking_uri == uri
    assert (tmp_path / "data").is_dir()


def test_explicit_settings_win(tmp_path):
    cfg = make_config(
        tmp_path,
        uri="http://mlflow.example:5000",
        artifact_location="s3://bucket/arts",
        experiment="exp",
    )
    assert U.tracking_uri(cfg.tracking, str(tmp_path)) == "http://mlflow.example:5000"
    assert U.artifact_location(cfg.tracking, str(tmp_path)) == "s3://bucket/arts"
    assert U.experiment_name(cfg.tracking, cfg.name) == "exp"
    served = make_config(tmp_path, uri="http://mlflow.example:5000")
    assert U.artifact_location(served.tracking, str(tmp_path)) is None  # the server decides


def test_s3_store_without_a_server_is_a_config_error_that_says_what_to_set():
    cfg = make_config("s3://bucket/project")
    with pytest.raises(ConfigError) as e:
        U.tracking_uri(cfg.tracking, cfg.store.root)
    msg = str(e.value)
    assert "tracking.uri" in msg and "MLflow server" in msg and "s3://bucket/project" in msg
    ok = make_config("s3://bucket/project", uri="http://10.0.0.5:5000")
    assert U.tracking_uri(ok.tracking, ok.store.root) == "http://10.0.0.5:5000"
    assert U.artifact_location(ok.tracking, ok.store.root) is None


def test_store_id_is_stable_per_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert U.store_id("./a") == U.store_id(str(tmp_path / "a"))
    assert U.store_id("./a") != U.store_id("./b")
    assert U.store_id("s3://b/p/") == U.store_id("s3://b/p")


def test_a_dead_server_fails_fast_with_its_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    cfg = make_config(tmp_path, uri=url)
    t0 = time.monotonic()
    with pytest.raises(U.TrackingUnavailableError, match=url):
        U.make_client(cfg.tracking, str(tmp_path))
    assert time.monotonic() - t0 < 5
