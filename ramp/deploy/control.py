"""Start the ``ramp`` application, switch versions with zero failed requests, roll back.

Called by ``ramp serve`` / ``ramp deploy`` (ramp/pipelines/serve.py) from a driver connected to
the Ray cluster. State shared between those processes and the replicas:

- ``DeployState``: a detached named actor (namespace "ramp"): the live checkpoint, a pending one,
  an epoch that every switch increments, a ``seq`` that every change increments (replicas
  long-poll it), per-replica readiness and acknowledgements, the serving settings, a deploy lock.
- ``<root>/deploy/history.json`` (versions.py): what was live, for ``--rollback``.

A switch (``deploy``), two-phase:
1. prepare: every replica loads and warms the new version beside the live one, and reports;
2. if any replica fails (or the load times out): abort - the new version is dropped everywhere and
   the live one never stopped; else commit: each replica swaps between two batches and acks;
3. the history records the new live version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from ramp.deploy import app as A
from ramp.deploy.auth import resolve_tokens
from ramp.deploy.settings import ServeConfig
from ramp.deploy.versions import CheckpointRef, DeployHistory, VersionError, resolve
from ramp.platform.config import RampConfig, with_absolute_root
from ramp.platform.tracking.settings import TrackingConfig

log = logging.getLogger("ramp.deploy")
ACK_TIMEOUT_S = 60.0
LOCK_TTL_S = 900.0


class DeployError(RuntimeError):
    """A deploy that could not complete; the live version is unchanged."""


@ray.remote(num_cpus=0, max_restarts=-1)
class DeployState:
    """The live version and the switch protocol that replicas follow (see the module docstring)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {
            "seq": 0,
            "epoch": 0,
            "live": None,
            "prepare": None,
            "committed": None,
        }
        self.bundle: dict[str, Any] = {}
        self.ready_: dict[int, dict[str, str | None]] = {}
        self.acks: dict[int, set[str]] = {}
        self.lock_owner: tuple[str, float] | None = None
        self._changed = asyncio.Event()

    def _bump(self, **changes: Any) -> None:
        self.state = {**self.state, **changes, "seq": self.state["seq"] + 1}
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def reset(self, bundle: dict[str, Any], live: dict[str, str]) -> int:
        """``ramp serve``: the settings and the live version new replicas load."""
        self.bundle = bundle
        epoch = self.state["epoch"] + 1
        self._bump(live=live, prepare=None, committed=None, epoch=epoch)
        return epoch

    async def get(self) -> dict[str, Any]:
        return {**self.state, "bundle": self.bundle}

    async def wait(self, seq: int, timeout_s: float) -> dict[str, Any]:
        """The state as soon as it differs from ``seq`` (or after ``timeout_s``)."""
        if self.state["seq"] == seq:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout_s)
        return dict(self.state)

    async def prepare(self, ref: dict[str, str]) -> int:
        pid = self.state["seq"] + 1
        self.ready_[pid] = {}
        self._bump(prepare={"id": pid, "ref": ref})
        return pid

    async def ready(self, replica: str, pid: int, error: str | None) -> None:
        self.ready_.setdefault(pid, {})[replica] = error

    async def readiness(self, pid: int) -> dict[str, str | None]:
        return dict(self.ready_.get(pid, {}))

    async def abort(self, pid: int) -> None:
        if self.state["prepare"] and self.state["prepare"]["id"] == pid:
            self._bump(prepare=None)

    async def commit(self, pid: int) -> int:
        prep = self.state["prepare"]
        if not prep or prep["id"] != pid:
            raise ValueError(f"prepare {pid} is not pending")
        epoch = self.state["epoch"] + 1
        self.acks[epoch] = set()
        self._bump(live=prep["ref"], prepare=None, committed=pid, epoch=epoch)
        return epoch

    async def ack(self, replica: str, epoch: int) -> None:
        self.acks.setdefault(epoch, set()).add(replica)

    async def acked(self, epoch: int) -> list[str]:
        return sorted(self.acks.get(epoch, ()))

    async def lock(self, owner: str) -> str | None:
        """None when ``owner`` now holds the deploy lock, else the current holder."""
        now = time.time()
        held = self.lock_owner
        if held and held[0] != owner and now - held[1] < LOCK_TTL_S:
            return held[0]
        self.lock_owner = (owner, now)
        return None

    async def unlock(self, owner: str) -> None:
        if self.lock_owner and self.lock_owner[0] == owner:
            self.lock_owner = None


def _state_actor(create: bool = False) -> Any:
    if create:
        return DeployState.options(
            name=A.STATE_ACTOR, namespace=A.NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote()
    try:
        return ray.get_actor(A.STATE_ACTOR, namespace=A.NAMESPACE)
    except ValueError:
        raise DeployError(
            "no ramp server runs on this Ray cluster (start one with `ramp serve`, or give "
            "--address of the cluster that runs it)"
        ) from None


def _settings(cfg: ServeConfig) -> dict[str, Any]:
    """The settings replicas get: everything but the tokens (replicas get digests only)."""
    return cfg.model_dump(mode="json", exclude={"tokens"})


def application(bundle: dict[str, Any], digests: dict[str, str]) -> Any:
    """The Serve application: the policy deployment, and the world model in standard mode."""
    cfg = ServeConfig.model_validate(bundle["settings"])
    wm, wm_version = None, None
    if cfg.mode == "standard":
        wm_ref = CheckpointRef.from_json(bundle["world_model"])
        wm_version = wm_ref.version
        wm = A.WorldModelServer.options(
            num_replicas=cfg.replicas,
            max_ongoing_requests=max(8, 2 * cfg.max_batch_size),
            ray_actor_options={
                "num_cpus": cfg.world_model_num_cpus,
                "num_gpus": cfg.world_model_num_gpus,
            },
        ).bind(wm_ref.to_json(), bundle["settings"])
    return A.PolicyServer.options(
        num_replicas=cfg.replicas,
        max_ongoing_requests=cfg.max_ongoing_requests,
        ray_actor_options={"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
    ).bind(bundle["settings"], digests, bundle["store"], bundle["embodiments"], wm, wm_version)


def _check_world_model(policy: CheckpointRef, wm: CheckpointRef) -> None:
    """Standard mode: the world model must know every embodiment the policy has stats for."""
    import json

    from ramp.platform.episodes.fs import StoreFS

    def names(ref: CheckpointRef) -> set[str]:
        rel = f"{ref.rel}/norm_stats.json" if ref.rel else "norm_stats.json"
        text = StoreFS.from_root(ref.root).read_text(rel)
        return set(json.loads(text)["embodiments"]) if text else set()

    missing = names(policy) - names(wm)
    if missing:
        raise DeployError(
            f"world model {wm.version} has no statistics for {sorted(missing)}, which policy "
            f"{policy.version} serves; train or pick a world model that covers them"
        )


def _replicas(app: str = A.APP) -> int:
    status = serve.status().applications.get(app)
    if status is None or A.POLICY not in status.deployments:
        return 0
    return int(status.deployments[A.POLICY].replica_states.get("RUNNING", 0))


def _mine(replicas: list[str] | dict[str, Any], app: str = A.APP) -> list[str]:
    return [r for r in replicas if r.startswith(f"{app}:")]


def _wait_acks(actor: Any, epoch: int, timeout_s: float = ACK_TIMEOUT_S) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if len(_mine(ray.get(actor.acked.remote(epoch)))) >= _replicas():
            return time.monotonic() - t0
        time.sleep(0.02)
    log.warning("not every replica acknowledged epoch %d within %.0f s", epoch, timeout_s)
    return time.monotonic() - t0


@dataclass
class DeployResult:
    version: str
    previous: str | None
    action: str
    load_s: float = 0.0
    switch_s: float = 0.0
    url: str | None = None

    def format(self) -> str:
        if self.action == "noop":
            return f"{self.version} is already live"
        line = f"{self.action}: {self.version} is live"
        if self.previous:
            line += f" (was {self.previous})"
        return line + f"; loaded in {self.load_s:.1f} s, switched in {self.switch_s * 1e3:.0f} ms"


def start(
    cfg: RampConfig,
    *,
    checkpoint: str | None = None,
    world_model: str | None = None,
    root: str | None = None,
) -> DeployResult:
    """Deploy the whole application on the connected Ray cluster (``ramp serve``)."""
    scfg = cfg.serve
    root = root or with_absolute_root(cfg).store.root  # replicas run in another directory
    spec = checkpoint or scfg.checkpoint
    if spec is None:
        raise VersionError(
            "no checkpoint to serve: give --checkpoint VERSION|PATH or set serve.checkpoint"
        )
    tracking = cfg.tracking if cfg.tracking.enabled else None
    ref = resolve(spec, root, "policy", tracking)
    bundle: dict[str, Any] = {
        "settings": _settings(scfg),
        "root": root,
        "store": {"root": root, "config": cfg.store.model_dump(mode="json")},
        "embodiments": {k: v.model_dump(mode="json") for k, v in cfg.embodiments.items()},
        "world_model": None,
        "tracking": tracking.model_dump(mode="json") if tracking is not None else None,
    }
    if scfg.mode == "standard":
        wm_spec = world_model or scfg.world_model
        if wm_spec is None:
            raise VersionError(
                "mode 'standard' needs a world model: --world-model or serve.world_model"
            )
        wm_ref = resolve(wm_spec, root, "world-model", tracking)
        _check_world_model(ref, wm_ref)
        bundle["world_model"] = wm_ref.to_json()
    digests = resolve_tokens(scfg)
    serve.start(http_options={"host": scfg.host, "port": scfg.port})
    actor = _state_actor(create=True)
    previous = (ray.get(actor.get.remote()).get("live") or {}).get("version")
    ray.get(actor.reset.remote(bundle, ref.to_json()))
    t0 = time.monotonic()
    try:
        serve.run(application(bundle, digests), name=A.APP, route_prefix="/")
    except Exception as e:
        raise DeployError(f"the server did not start with {ref.version}: {e}") from e
    load_s = time.monotonic() - t0
    history = DeployHistory.load(root)
    history.record("serve", ref)
    history.save()
    url = f"http://{scfg.host}:{scfg.port}"
    return DeployResult(ref.version, previous, "serve", load_s, 0.0, url)


def deploy(
    spec: str | None = None,
    *,
    rollback: bool = False,
    root: str | None = None,
    load_timeout_s: float | None = None,
) -> DeployResult:
    """Switch the running server to another policy version (or back, with ``rollback``)."""
    actor = _state_actor()
    state = ray.get(actor.get.remote())
    bundle = state["bundle"]
    if not bundle or not state.get("live"):
        raise DeployError(
            "the deploy state of the running server was lost (its actor restarted); run "
            "`ramp serve` again"
        )
    root = root or bundle["root"]
    settings = ServeConfig.model_validate(bundle["settings"])
    timeout = load_timeout_s or settings.load_timeout_s
    owner = f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"
    holder = ray.get(actor.lock.remote(owner))
    if holder is not None:
        raise DeployError(f"another deploy is in progress ({holder}); try again when it is done")
    try:
        history = DeployHistory.load(root)
        if rollback:
            ref = CheckpointRef.from_json(history.previous()["checkpoint"])
        elif spec is None:
            raise VersionError("give a VERSION (or a checkpoint folder) or --rollback")
        else:
            tracking = bundle.get("tracking")
            ref = resolve(
                spec,
                root,
                "policy",
                TrackingConfig.model_validate(tracking) if tracking else None,
            )
        previous = state["live"]["version"]
        if ref.version == previous:
            return DeployResult(ref.version, previous, "noop")
        if bundle["settings"]["mode"] == "standard":
            _check_world_model(ref, CheckpointRef.from_json(bundle["world_model"]))
        t0 = time.monotonic()
        pid = ray.get(actor.prepare.remote(ref.to_json()))
        while True:
            ready = ray.get(actor.readiness.remote(pid))
            failed = {r: e for r, e in ready.items() if e is not None}
            if failed:
                ray.get(actor.abort.remote(pid))
                replica, error = next(iter(failed.items()))
                raise DeployError(
                    f"version {ref.version} did not load on replica {replica}: {error}; "
                    f"{previous} stays live"
                )
            need = _replicas()
            if need and len(_mine(ready)) >= need:
                break
            if time.monotonic() - t0 > timeout:
                ray.get(actor.abort.remote(pid))
                raise DeployError(
                    f"version {ref.version} was not loaded by every replica within {timeout:.0f} s "
                    f"(serve.load_timeout_s); {previous} stays live"
                )
            time.sleep(0.05)
        load_s = time.monotonic() - t0
        epoch = ray.get(actor.commit.remote(pid))
        switch_s = _wait_acks(actor, epoch)
        action = "rollback" if rollback else "deploy"
        history.record(action, ref)
        history.save()
        return DeployResult(ref.version, previous, action, load_s, switch_s)
    finally:
        ray.get(actor.unlock.remote(owner))


def status(root: str | None = None) -> dict[str, Any]:
    """What is live, and the deploy history."""
    state = ray.get(_state_actor().get.remote())
    root = root or state["bundle"].get("root")
    history = DeployHistory.load(root) if root else None
    return {
        "version": (state.get("live") or {}).get("version"),
        "epoch": state.get("epoch"),
        "pending": (state.get("prepare") or {}).get("ref", {}).get("version"),
        "mode": state["bundle"].get("settings", {}).get("mode"),
        "replicas": _replicas(),
        "root": root,
        "live_stack": [e["version"] for e in history.live] if history else [],
    }


def stop() -> None:
    """Delete the application and the deploy state (the history stays in the store)."""
    if A.APP in serve.status().applications:
        serve.delete(A.APP)
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(A.STATE_ACTOR, namespace=A.NAMESPACE))
