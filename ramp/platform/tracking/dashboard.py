"""`ramp dashboard`: the MLflow UI over a config's tracking store.

A local store keeps its runs in ``<root>/mlflow.db``: this starts ``mlflow server`` on it (on
loopback unless told otherwise), prints the URL and serves until Ctrl-C. A config that tracks to
a server already has a dashboard: the command just prints its URL.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ramp.platform.tracking import uri as U
from ramp.platform.tracking.server import MlflowServer, ServerStartError, port_free


def dashboard_plan(cfg: object, root: str | None = None) -> dict[str, str | None]:
    """What `ramp dashboard` would do: {"tracking_uri", "remote" ("1" or None), "artifacts"}."""
    tracking = cfg.tracking  # type: ignore[attr-defined]
    root = root or cfg.store.root  # type: ignore[attr-defined]
    uri = U.tracking_uri(tracking, root)
    remote = U.is_server_uri(uri)
    artifacts = None
    if not remote and U.is_local_root(root):
        artifacts = str(U.local_root_path(root) / U.ARTIFACTS_DIR)
    return {"tracking_uri": uri, "remote": "1" if remote else None, "artifacts": artifacts}


def run_dashboard(
    cfg: object,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    root: str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Serve the MLflow UI until interrupted; 0 on a clean stop, 2 when it cannot start."""
    plan = dashboard_plan(cfg, root)
    uri = plan["tracking_uri"]
    assert uri is not None
    if plan["remote"]:
        echo(f"ramp: tracking goes to the MLflow server at {uri}; open {uri} in a browser")
        return 0
    if not cfg.tracking.enabled:  # type: ignore[attr-defined]
        echo("ramp: note: tracking.enabled is false in this config; showing what was logged before")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        echo(f"ramp: no runs yet ({uri[len('sqlite:///') :]} does not exist); starting anyway")
    if not port_free(host, port):
        echo(f"ramp: port {port} on {host} is in use (another dashboard?); pass --port N")
        return 2
    if plan["artifacts"]:
        Path(plan["artifacts"]).mkdir(parents=True, exist_ok=True)
    echo(f"ramp: starting the MLflow UI on {uri} ...")
    try:
        server = MlflowServer.start(
            uri, artifacts_destination=plan["artifacts"], host=host, port=port
        )
    except ServerStartError as e:
        echo(f"ramp: the MLflow UI did not start: {e}")
        return 2
    echo(
        f"ramp: MLflow dashboard at {server.url} (ready in {server.start_s:.1f} s; Ctrl-C stops it)"
    )
    sys.stdout.flush()
    restore = _stop_on_signals()
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
        restore()
    return 0 if code in (0, -15, 143) else 2


def _stop_on_signals() -> Callable[[], None]:
    """SIGTERM / SIGHUP end the dashboard like Ctrl-C (the server runs in its own session and
    would otherwise outlive a killed `ramp dashboard`)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    saved = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for s, handler in saved.items():
            signal.signal(s, handler)

    return restore
