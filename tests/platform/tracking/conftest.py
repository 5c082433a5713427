"""Fixtures for the tracking tests: a fresh local store and a config over it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tracking_helpers import make_config

from ramp.platform.config import RampConfig
from ramp.platform.tracking.uri import DB_FILE


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow SQLite file with its tables made once: creating them costs 1.5-4 s per store
    (alembic migrations), copying the file a millisecond."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / DB_FILE
    uri = f"sqlite:///{path}"
    MlflowClient(uri, uri).search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_mlflow_db) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    shutil.copyfile(empty_mlflow_db, root / DB_FILE)
    return root


@pytest.fixture
def cfg(store) -> RampConfig:
    return make_config(store)
