"""`ramp bench serving`: what the Serve endpoint costs on top of the model (docs/api.md).

One run: a local 2-CPU Ray with the ``ramp`` application serving a tiny-preset policy (one 64 px
camera, 9-d state, 7-d actions), and the same checkpoint loaded in this process with the same
torch thread count. Measured:

- p50 / p99 latency and throughput for 1, 4 and 16 concurrent clients on POST /v1/act (JSON
  and msgpack) and WS /v1/stream; the 1-client figures are taken interleaved with the in-process
  call (a burst on the shared machine hits both), so the overhead is their difference;
- 16 clients on /v1/stream with batching off (max_batch_size 1, same replica) against on.

Targets (the issue): /v1/stream p50 overhead <= 5 ms; batching >= 2x the throughput at 16 clients.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ramp.benchmarks.cluster import private_ray
from ramp.benchmarks.report import BenchResult

EMBODIMENT = "arm"
STATE_DIM, ACTION_DIM, SIZE = 9, 7, 64
ROUTES = ("act_json", "act_msgpack", "stream")


def _spec() -> Any:
    from ramp.platform.config import EmbodimentConfig

    return EmbodimentConfig(
        cameras={"front": {"height": SIZE, "width": SIZE}},
        state_names=[f"q{i}" for i in range(STATE_DIM)],
        action_names=[f"a{i}" for i in range(ACTION_DIM)],
        action_low=[-1.0] * ACTION_DIM,
        action_high=[1.0] * ACTION_DIM,
    )


def _obs(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "embodiment": EMBODIMENT,
        "images": {"front": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)},
        "state": rng.normal(size=STATE_DIM).astype(np.float32),
        "instruction": "pick up the red block",
    }


def _checkpoint(root: str) -> str:
    import torch

    from ramp.deploy.protocol import checkpoint_extra
    from ramp.platform.models import build_policy, publish_checkpoint, stats_from_arrays

    rng = np.random.default_rng(0)
    stats = stats_from_arrays(
        {EMBODIMENT: (rng.normal(size=(500, STATE_DIM)), rng.uniform(-1, 1, (500, ACTION_DIM)))}
    )
    torch.manual_seed(0)
    policy = build_policy("tiny", stats)
    version, _ = publish_checkpoint(
        policy, root, round_=1, extra=checkpoint_extra({EMBODIMENT: _spec()})
    )
    return version


def _percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _clients(url: str, ws: str, token: str) -> dict[str, Callable[[], Callable]]:
    """route -> a factory of one client's act(obs) (each thread makes its own connection)."""
    from ramp.deploy.client import RampClient, StreamSession

    return {
        "act_json": lambda: RampClient(url, token, fmt="json").act,
        "act_msgpack": lambda: RampClient(url, token, fmt="msgpack").act,
        "stream": lambda: StreamSession(ws, token).connect().act,
    }


def _load(make: Callable[[], Callable], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` threads acting back to back for ``seconds``: latencies and throughput."""
    latencies: list[float] = []
    batches: list[int] = []
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        act = make()
        obs = _obs(i)
        act(obs)  # connection warm-up, not timed
        start.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                chunk = act(obs)
            except Exception as e:  # counted, reported
                errors.append(repr(e))
                continue
            latencies.append(time.perf_counter() - t0)
            batches.append(int(chunk.timing.get("batch_size", 1)))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - t0
    p50, p99 = _percentiles(latencies)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "rps": len(latencies) / elapsed,
        "mean_batch": float(np.mean(batches)) if batches else 0.0,
        "errors": float(len(errors)),
    }


def _paired_single(makers: dict[str, Callable], local: Callable, repeats: int) -> dict:
    """One client per route, interleaved with the in-process call in rotating order."""
    acts = {k: m() for k, m in makers.items()}
    acts["inprocess"] = local
    obs = _obs(0)
    for act in acts.values():
        act(obs)
    times: dict[str, list[float]] = {k: [] for k in acts}
    order = list(acts)
    for i in range(repeats):
        rot = order[i % len(order) :] + order[: i % len(order)]
        for key in rot:
            t0 = time.perf_counter()
            acts[key](obs)
            times[key].append(time.perf_counter() - t0)
    return times


def run(quick: bool = False) -> BenchResult:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ramp.deploy import app as A
    from ramp.deploy import control
    from ramp.platform.config import RampConfig
    from ramp.platform.models.checkpoints import load_checkpoint

    seconds = 1.5 if quick else 5.0
    repeats = 24 if quick else 120
    root = tempfile.mkdtemp(prefix="ramp-bench-serving-")
    cluster = contextlib.ExitStack()
    ray_ = cluster.enter_context(private_ray())
    token = secrets.token_urlsafe(24)
    result = BenchResult("serving")
    try:
        version = _checkpoint(root)
        ray_.start()
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = RampConfig.model_validate(
            {
                "store": {"root": root},
                "serve": {
                    "port": port,
                    "tokens": {"bench": token},
                    "rate_limit": {"requests_per_s": 1e6, "burst": 10**6},
                    "max_batch_size": 16,
                },
            }
        )
        control.start(cfg, checkpoint=version)
        url, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        torch.set_num_threads(cfg.serve.torch_threads)  # what the replica uses
        policy = load_checkpoint(root, f"checkpoints/policy/{version}").eval()

        def local(obs: dict[str, Any]) -> Any:
            batch = {
                "images": {"front": obs["images"]["front"][None]},
                "state": obs["state"][None],
                "instruction": [obs["instruction"]],
                "embodiment": [EMBODIMENT],
            }
            return policy.infer(batch).per_sample()[0]

        makers = _clients(url, ws, token)
        times = _paired_single(makers, local, repeats)
        base50, base99 = _percentiles(times["inprocess"])
        result.metrics["inprocess_p50_ms"] = base50
        result.metrics["inprocess_p99_ms"] = base99
        result.rows.append(
            {
                "route": "in-process",
                "clients": 1,
                "p50 ms": base50,
                "p99 ms": base99,
                "req/s": len(times["inprocess"]) / sum(times["inprocess"]),
                "mean batch": 1.0,
                "overhead p50 ms": 0.0,
            }
        )
        for route in ROUTES:
            p50, p99 = _percentiles(times[route])
            key = f"{route}_c1"
            result.metrics[f"{key}_p50_ms"] = p50
            result.metrics[f"{key}_p99_ms"] = p99
            result.metrics[f"{key}_rps"] = len(times[route]) / sum(times[route])
            result.metrics[f"{route}_overhead_p50_ms"] = p50 - base50
            result.ratios[f"{route}_vs_inprocess_p50"] = base50 / p50
            result.rows.append(
                {
                    "route": route,
                    "clients": 1,
                    "p50 ms": p50,
                    "p99 ms": p99,
                    "req/s": result.metrics[f"{key}_rps"],
                    "mean batch": 1.0,
                    "overhead p50 ms": p50 - base50,
                }
            )
        for clients in (4, 16):
            for route in ROUTES:
                cell = _load(makers[route], clients, seconds)
                key = f"{route}_c{clients}"
                for name in ("p50_ms", "p99_ms", "rps", "mean_batch", "errors"):
                    result.metrics[f"{key}_{name}"] = cell[name]
                result.rows.append(
                    {
                        "route": route,
                        "clients": clients,
                        "p50 ms": cell["p50_ms"],
                        "p99 ms": cell["p99_ms"],
                        "req/s": cell["rps"],
                        "mean batch": cell["mean_batch"],
                        "overhead p50 ms": None,
                    }
                )
        from ray import serve

        handle = serve.get_app_handle(A.APP)  # one replica: the call reaches it
        handle.configure_batching.remote(1, 0.0).result(timeout_s=60)
        cell = _load(makers["stream"], 16, seconds)
        handle.configure_batching.remote(16, cfg.serve.batch_wait_timeout_s).result(timeout_s=60)
        result.metrics["stream_c16_nobatch_rps"] = cell["rps"]
        result.metrics["stream_c16_nobatch_p50_ms"] = cell["p50_ms"]
        result.rows.append(
            {
                "route": "stream (no batching)",
                "clients": 16,
                "p50 ms": cell["p50_ms"],
                "p99 ms": cell["p99_ms"],
                "req/s": cell["rps"],
                "mean batch": cell["mean_batch"],
                "overhead p50 ms": None,
            }
        )
        result.ratios["batching_throughput_c16"] = result.metrics["stream_c16_rps"] / cell["rps"]
        result.targets = {
            "stream_overhead_p50_ms": {"max": 5},
            "batching_throughput_c16": {"min": 2},
        }
        errors = sum(v for k, v in result.metrics.items() if k.endswith("_errors"))
        result.notes.append(
            f"tiny preset, 1 camera {SIZE}px, chunk 50; torch threads {cfg.serve.torch_threads}; "
            f"{'quick: ' if quick else ''}{seconds:g} s per cell, {repeats} paired 1-client "
            f"requests; failed requests: {errors:.0f}"
        )
    finally:
        try:
            cluster.close()  # ray.shutdown, the caller's auth settings back
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return result
