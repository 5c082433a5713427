"""`ramp dashboard`: the MLflow UI over a local store, or the URL of a configured server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from tracking_helpers import make_config

from ramp.platform.tracking import plots
from ramp.platform.tracking.dashboard import dashboard_plan, run_dashboard
from ramp.platform.tracking.server import free_port, port_free
from ramp.platform.tracking.tracker import RoundTracker


def test_a_remote_server_is_just_printed(tmp_path):
    cfg = make_config(tmp_path, uri="http://mlflow.internal:5000")
    said: list[str] = []
    assert run_dashboard(cfg, echo=said.append) == 0
    assert said == [
        "ramp: tracking goes to the MLflow server at http://mlflow.internal:5000; "
        "open http://mlflow.internal:5000 in a browser"
    ]
    plan = dashboard_plan(make_config(tmp_path))
    assert plan["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}" and not plan["remote"]


def test_a_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        said: list[str] = []
        assert run_dashboard(make_config(tmp_path), port=port, echo=said.append) == 2
    assert f"port {port} on 127.0.0.1 is in use" in said[-1] and "--port" in said[-1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


@pytest.mark.slow
def test_ramp_dashboard_serves_the_runs_and_their_plots(cfg, store, tmp_path):
    tracker = RoundTracker.start(cfg, 1)
    png = plots.advantage_histograms({"t": np.arange(10.0)}, {"t": 3.0})
    tracker.log_png("plots/advantages.png", png)
    tracker.finish()
    config = tmp_path / "cfg.yaml"
    config.write_text(json.dumps({"name": cfg.name, "store": {"root": str(store)}}))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ramp.cli",
            "dashboard",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"ramp dashboard exited: {''.join(lines)}"
            lines.append(line)
            if "MLflow dashboard at" in line:
                break
        url = f"http://127.0.0.1:{port}"
        assert url in lines[-1]
        assert _get(f"{url}/health") == b"OK"
        found = json.loads(
            _get(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={cfg.name}")
        )
        assert found["experiment"]["experiment_id"] == tracker.experiment_id
        got = _get(f"{url}/get-artifact?path=plots/advantages.png&run_uuid={tracker.run_id}")
        assert got == png  # the UI reads the artifacts kept in the store
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    deadline = time.monotonic() + 10
    while not port_free("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_free("127.0.0.1", port), "the MLflow server outlived `ramp dashboard`"
    assert os.path.exists(store / "mlflow-artifacts")
