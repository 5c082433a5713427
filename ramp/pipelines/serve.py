"""`ramp serve` and `ramp deploy`: thin shells over ramp.deploy.control (docs/api.md).

`ramp serve` connects to a Ray cluster (``--address``, else it starts a local one in this
process), deploys the application and, unless ``--detach``, stays in the foreground until Ctrl-C
(then it removes what it deployed). `ramp deploy` connects to the cluster that runs the server and
switches versions; the deploy state lives in the cluster and the history under the store root, so
any process can do it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a ramp config (store, embodiments, the serve section)")
    p.add_argument(
        "--checkpoint", help="policy: a version in <root>/checkpoints/policy/, 'latest', or a path"
    )
    p.add_argument("--world-model", help="world model for --mode standard (version or path)")
    p.add_argument("--mode", choices=["efficient", "standard"], help="default: serve.mode")
    p.add_argument("--root", help="store root (default: store.root of the config)")
    p.add_argument("--host", help="default: serve.host (127.0.0.1)")
    p.add_argument("--port", type=int, help="default: serve.port (8000)")
    p.add_argument("--address", help="Ray cluster to deploy on (default: start a local one)")
    p.add_argument("--detach", action="store_true", help="return after deploying (needs --address)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")


def add_deploy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", nargs="?", help="policy version, 'latest', or a checkpoint folder")
    p.add_argument("--rollback", action="store_true", help="return to the previous version")
    p.add_argument("--status", action="store_true", help="print what is live and the history")
    p.add_argument("--root", help="store root (default: the running server's)")
    p.add_argument(
        "--address", help="Ray cluster running the server (default: $RAY_ADDRESS, else auto)"
    )


def _fail(message: str) -> int:
    print(f"ramp: {message}", file=sys.stderr)
    return 2


def _connect(address: str | None) -> bool:
    """ray.init; True when this process started the (local) cluster."""
    import ray

    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return False
    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",  # a local cluster stays on loopback
    )
    return True


def run_serve(args: argparse.Namespace) -> int:
    from ramp.deploy.auth import resolve_tokens
    from ramp.deploy.control import DeployError, start, stop
    from ramp.deploy.versions import VersionError, resolve
    from ramp.platform.config import load_config

    overrides = list(args.set or [])
    for key in ("mode", "host", "port"):
        if getattr(args, key) is not None:
            overrides.append(f"serve.{key}={getattr(args, key)}")
    cfg = load_config(args.config, overrides)
    if args.detach and not args.address:
        return _fail("--detach needs --address: a local cluster ends with this process")
    try:  # everything that can be checked without Ray fails here, before a cluster starts
        root = args.root or cfg.store.root
        spec = args.checkpoint or cfg.serve.checkpoint
        if spec is None:
            return _fail("no checkpoint to serve: give --checkpoint VERSION|PATH|latest")
        resolve(spec, root, "policy", cfg.tracking if cfg.tracking.enabled else None)
        resolve_tokens(cfg.serve)
    except (VersionError, ValueError) as e:
        return _fail(str(e))
    try:
        started_ray = _connect(args.address)
    except ConnectionError as e:
        return _fail(f"cannot reach the Ray cluster at {args.address}: {e}")
    import ray

    try:
        result = start(
            cfg, checkpoint=args.checkpoint, world_model=args.world_model, root=args.root
        )
    except (DeployError, VersionError, ValueError) as e:
        if started_ray:
            ray.shutdown()
        return _fail(str(e))
    address = ray.get_runtime_context().gcs_address
    print(f"ramp: serving {result.version} ({cfg.serve.mode}) at {result.url}", flush=True)
    print(
        f"ramp: API docs at {result.url}/docs; switch versions with "
        f"`ramp deploy VERSION --address {address}`",
        flush=True,
    )
    if args.detach:
        return 0
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    print("ramp: stopping the server", file=sys.stderr)
    if started_ray:
        ray.shutdown()  # the whole local cluster, Serve included
    else:
        stop()  # only what `ramp serve` deployed on the shared cluster
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    import json

    from ramp.deploy.control import DeployError, deploy, status
    from ramp.deploy.versions import VersionError

    if not args.status and not args.rollback and not args.version:
        return _fail("give a VERSION, --rollback or --status")
    if args.rollback and args.version:
        return _fail("give either a VERSION or --rollback, not both")
    try:
        _connect(args.address or os.environ.get("RAY_ADDRESS") or "auto")
    except ConnectionError as e:
        return _fail(f"no Ray cluster to deploy on ({e}); give --address")
    try:
        if args.status:
            print(json.dumps(status(args.root), indent=2))
            return 0
        result = deploy(args.version, rollback=args.rollback, root=args.root)
    except (DeployError, VersionError) as e:
        return _fail(str(e))
    print(f"ramp: {result.format()}")
    return 0
