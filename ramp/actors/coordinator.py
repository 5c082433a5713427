"""The round coordinator: runs one round's stages in order on the driver, resumably.

It holds the round (a named Ray actor on this cluster plus a lease in the store for other
clusters), walks the manifest's pending stages, calls the stage actors (rollouts, trainers,
labeller), records each result in the manifest the moment the stage ends, and is the only writer
to MLflow (``RoundTracking``). What each stage computes lives in the actor modules and in
ramp/platform; this file only sequences them.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import ray

from ramp.platform import faults
from ramp.platform.config import RampConfig
from ramp.platform.episodes import EpisodeStore
from ramp.platform.rounds import history
from ramp.platform.rounds.lock import RoundLease, RoundLockedError
from ramp.platform.rounds.manifest import (
    RoundManifest,
    load_manifest,
    now,
    save_manifest,
    stages_of,
)

log = logging.getLogger(__name__)
NAMESPACE = "ramp"
Progress = Callable[[str], None]


@ray.remote(num_cpus=0)
class _RoundMutex:
    """Exists while its owner (the coordinator's driver) lives; its name is the lock."""

    def owner(self) -> str:
        return self._owner

    def set_owner(self, owner: str) -> None:
        self._owner = owner


def _mutex(root: str, round_: int, owner: str) -> Any:
    import hashlib

    name = f"ramp-round-{hashlib.sha256(root.encode()).hexdigest()[:12]}-r{round_}"
    try:
        actor = _RoundMutex.options(name=name, namespace=NAMESPACE).remote()
    except ValueError:
        holder = "another job"
        with contextlib.suppress(Exception):
            holder = ray.get(ray.get_actor(name, namespace=NAMESPACE).owner.remote(), timeout=10)
        raise RoundLockedError(f"round {round_} of {root} is being run by {holder}") from None
    ray.get(actor.set_owner.remote(owner))
    return actor


def _cluster_id() -> str:
    """This Ray cluster's session (unique per cluster start)."""
    import ray._private.worker as worker

    node = worker.global_worker.node
    return f"{ray.get_runtime_context().gcs_address}/{getattr(node, 'session_name', '?')}"


class Coordinator:
    """``Coordinator(cfg).run()`` runs (or resumes) the next round; ``until`` stops after a
    stage (the single-stage commands: `ramp pretrain-world-model` = until "world_model")."""

    def __init__(self, cfg: RampConfig, *, progress: Progress | None = None):
        from ramp.actors.round_stages import RoundStages
        from ramp.platform.tracking.round_log import RoundLog

        self.cfg = cfg
        self.store = EpisodeStore.from_config(cfg)
        self.fs = self.store.fs
        self.say = progress or (lambda msg: log.info("%s", msg))
        self.tracking = RoundLog(cfg)
        self.stages = RoundStages(cfg, self.store, self.say)

    def run(self, round_: int | None = None, until: str | None = None) -> RoundManifest:
        r = history.round_to_run(self.fs, self.store.current_round()) if round_ is None else round_
        if until is not None and until not in stages_of(r):
            raise ValueError(
                f"round {r} has no stage {until!r}; its stages: {', '.join(stages_of(r))}"
            )
        lease = RoundLease(self.fs, r, ttl_s=self.cfg.round.lock_ttl_s, cluster=_cluster_id())
        mutex = _mutex(self.store.root, r, lease.owner)
        try:
            lease.acquire(cluster_holder_gone=True)
            try:
                return self._run(r, until)
            finally:
                lease.release()
        finally:
            ray.kill(mutex)

    def _manifest(self, r: int) -> RoundManifest:
        digest = history.config_digest(self.cfg)
        m = load_manifest(self.fs, r)
        if m is None:
            m = RoundManifest.new(r, self.cfg.name, digest)
            save_manifest(self.fs, m)
            self.say(f"round {r}: new ({', '.join(stages_of(r))})")
        else:
            done = [s for s in stages_of(r) if m.done(s)]
            self.say(f"round {r}: resuming; done: {', '.join(done) or 'nothing yet'}")
            if m.config_digest != digest:
                self.say(f"round {r}: note: the config changed since the round started")
                m.config_digest = digest
        return m

    def _run(self, r: int, until: str | None) -> RoundManifest:
        m = self._manifest(r)
        if m.status == "done":
            self.say(f"round {r} is already complete")
            return m
        m.status = "running"
        m.mlflow_run_id = self.tracking.start_round(m)
        save_manifest(self.fs, m)
        order = stages_of(r)
        for index, name in enumerate(order):
            if m.done(name):
                continue
            self._stage(m, index, name)
            if until == name:
                self.tracking.pause_round(m)
                return m
        m.status = "done"
        save_manifest(self.fs, m)
        self.tracking.end_round(m)
        return m

    def _stage(self, m: RoundManifest, index: int, name: str) -> None:
        rec = m.stages[name]
        rec.state, rec.attempts, rec.error = "running", rec.attempts + 1, None
        rec.started_at = now()
        rec.mlflow_run_id = self.tracking.start_stage(m, name)
        save_manifest(self.fs, m)
        self.say(f"round {m.round}: {name} ...")
        t0 = time.monotonic()
        try:
            result = getattr(self.stages, name)(m)
        except BaseException as e:
            rec.state, rec.error = "failed", f"{type(e).__name__}: {e}"
            rec.wall_s = time.monotonic() - t0
            m.status = "failed"
            save_manifest(self.fs, m)
            self.tracking.fail_stage(m, name, traceback.format_exc())
            raise
        rec.state = "skipped" if result.pop("skipped", False) else "done"
        rec.finished_at, rec.wall_s = now(), time.monotonic() - t0
        # plots and per-step histories go to MLflow, not into the manifest
        extra = {k.lstrip("_"): result.pop(k) for k in list(result) if k.startswith("_")}
        extra.setdefault("history", result.pop("history", None))
        rec.result = result
        save_manifest(self.fs, m)
        self.tracking.end_stage(m, name, {**result, "wall_s": rec.wall_s}, extra)
        self.say(f"round {m.round}: {name} {rec.state} in {rec.wall_s:.0f} s")
        faults.point("round.stage", index + 1)  # killed "after stage k" in the resume test
