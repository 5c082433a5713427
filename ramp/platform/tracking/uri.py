"""Where MLflow lives for a config: the tracking URI, the artifact location, the experiment.

Why derived from the store root: the embedded default must need no setup, and keeping the SQLite
database and the artifacts next to the episodes and checkpoints means one folder holds the whole
history of a project (copy it, and the dashboard comes along). An S3 store is shared by many
machines, and SQLite on object storage does not work, so it needs a real MLflow server: that is a
config error with the fix in the message, not a silent local database on whichever node ran.

MLflow is imported lazily (~1 s): `ramp --help` and config checks must not pay for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramp.platform.tracking.settings import TrackingConfig

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlflow-artifacts"
SERVER_SCHEMES = ("http://", "https://")


def is_local_root(root: str) -> bool:
    """A store root on this machine's file system (a plain path or file://)."""
    return "://" not in str(root) or str(root).startswith("file://")


def local_root_path(root: str) -> Path:
    """The absolute folder of a local store root."""
    text = str(root)
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text).expanduser().resolve()


class TrackingUnavailableError(ConnectionError):
    """The MLflow server named by tracking.uri does not answer; the message names it."""


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (one GET /health) when a tracking server is down: MLflow's own client retries
    with back-off for minutes before giving up, which looks like a hang."""
    import urllib.error
    import urllib.request

    url = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            if r.status == 200:
                return
            why = f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):  # behind an auth proxy: reachable, let MLflow's auth handle it
            return
        why = f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        why = str(getattr(e, "reason", e))
    raise TrackingUnavailableError(
        f"the MLflow server at {uri} does not answer ({why}): start it, or fix tracking.uri"
    )


def is_server_uri(uri: str) -> bool:
    """A tracking URI served over HTTP (an `mlflow server`), as opposed to a database file."""
    return uri.startswith(SERVER_SCHEMES)


def store_id(root: str) -> str:
    """A short stable id of a store root: runs of two stores in one experiment stay apart."""
    norm = str(local_root_path(root)) if is_local_root(root) else str(root).rstrip("/")
    return hashlib.sha256(norm.encode()).hexdigest()[:12]


def tracking_uri(tracking: TrackingConfig, root: str) -> str:
    """``tracking.uri``, else ``sqlite:///<absolute root>/mlflow.db`` for a local store.

    Raises ConfigError for an S3 (or other remote) store without ``tracking.uri``.
    """
    if tracking.uri:
        return tracking.uri
    if not is_local_root(root):
        from ramp.platform.config import ConfigError

        raise ConfigError(
            "tracking",
            [
                f"tracking.uri is not set and store.root is {root}: a shared (S3) store needs an "
                "MLflow server; set tracking.uri to it (for example http://mlflow-host:5000, "
                "started with `mlflow server --backend-store-uri ... --serve-artifacts`), or "
                "tracking.enabled=false to run without MLflow"
            ],
        )
    return f"sqlite:///{local_root_path(root) / DB_FILE}"


def artifact_location(tracking: TrackingConfig, root: str) -> str | None:
    """Where a NEW experiment keeps artifacts; None = let the tracking server decide.

    ``tracking.artifact_location`` if set; else ``<root>/mlflow-artifacts`` for a local store
    tracked in a local database (a server decides for itself: with ``--serve-artifacts`` it
    proxies uploads, so clients need no access to its storage).
    """
    if tracking.artifact_location:
        return tracking.artifact_location
    uri = tracking_uri(tracking, root)
    if is_server_uri(uri) or not is_local_root(root):
        return None
    return (local_root_path(root) / ARTIFACTS_DIR).as_uri()


def experiment_name(tracking: TrackingConfig, config_name: str) -> str:
    """``tracking.experiment``, else the config's name."""
    return tracking.experiment or config_name


def make_client(tracking: TrackingConfig, root: str) -> MlflowClient:
    """An MlflowClient for tracking and registry (the same URI), creating a local store's folder.

    The first use of a fresh SQLite file creates its tables (~1.6 s, measured); a server is
    checked to answer first (TrackingUnavailableError).
    """
    from mlflow import MlflowClient

    uri = tracking_uri(tracking, root)
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///") :]) or ".", exist_ok=True)
    elif is_server_uri(uri):
        check_server(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def get_or_create_experiment(client: MlflowClient, name: str, location: str | None) -> str:
    """The id of experiment ``name``, created (or restored from the bin) when needed.

    Two processes creating it at once is fine: the loser reads the winner's.
    """
    from mlflow.exceptions import MlflowException

    found: Any = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            log.warning("MLflow experiment %r was deleted; restoring it", name)
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as e:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        log.debug("experiment %r created concurrently (%s)", name, e.error_code)
        return found.experiment_id
