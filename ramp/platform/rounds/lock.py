"""One coordinator per round: a lease file in the store, renewed while the round runs.

Why a lease in the store (and not only a Ray actor): two coordinators of the same round may run on
two different clusters sharing one S3 bucket. The lease names its holder (host, pid, job) so the
refusal says who holds it; a holder that died stops renewing and its lease goes stale after
``ttl_s``, so a resumed round never waits on a ghost. Local disks get an atomic create (hard
link). Ceph 16 has no conditional PUT, so on S3 the lease is written, left to settle, and read
back: two coordinators starting within the same second could both see their own write only in
the rare interleaving where each reads before the other writes; the coordinator pairs this lease
with a named Ray actor, which excludes coordinators on the same cluster exactly.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from ramp.platform.episodes.fs import StoreFS
from ramp.platform.rounds.manifest import ROUNDS_DIR

log = logging.getLogger(__name__)
LOCK_FORMAT_VERSION = 1


class RoundLockedError(RuntimeError):
    """Another coordinator holds the round."""


def lock_path(round_: int) -> str:
    return f"{ROUNDS_DIR}/{int(round_)}/lock.json"


def default_owner() -> str:
    job = os.environ.get("RAY_JOB_ID") or os.environ.get("RAY_JOB_SUBMISSION_ID") or "-"
    return f"{socket.gethostname()}:{os.getpid()}:{job}:{uuid.uuid4().hex[:6]}"


class RoundLease:
    """``with RoundLease(fs, r, ttl_s=600):`` holds round r, renewing in a daemon thread."""

    def __init__(
        self,
        fs: StoreFS,
        round_: int,
        *,
        ttl_s: float = 600.0,
        owner: str | None = None,
        settle_s: float = 1.0,
        cluster: str | None = None,
    ):
        self.fs, self.round, self.ttl_s = fs, int(round_), float(ttl_s)
        self.owner = owner or default_owner()
        self.cluster = cluster  # the Ray cluster (session) the holder runs in
        self.settle_s = settle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: dict[str, Any] | None = None  # the stale lease this one replaced

    @property
    def rel(self) -> str:
        return lock_path(self.round)

    def _body(self) -> bytes:
        t = time.time()
        return json.dumps(
            {
                "format_version": LOCK_FORMAT_VERSION,
                "owner": self.owner,
                "round": self.round,
                "renewed_at": t,
                "renewed_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
                "ttl_s": self.ttl_s,
                "cluster": self.cluster,
            }
        ).encode()

    def holder(self) -> dict[str, Any] | None:
        text = self.fs.read_text(self.rel)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None  # a torn lease from another tool: treat as absent

    def _stale(self, lease: dict[str, Any]) -> bool:
        ttl = float(lease.get("ttl_s", self.ttl_s))
        return time.time() - float(lease.get("renewed_at", 0)) > ttl

    def acquire(self, cluster_holder_gone: bool = False) -> RoundLease:
        """Take the lease. ``cluster_holder_gone``: the caller knows that no coordinator of this
        round lives on its cluster (it holds the cluster's named-actor lock), so a fresh lease
        written from the same cluster belongs to a killed coordinator and is taken over at once
        instead of after ``ttl_s``."""
        current = self.holder()
        if current is not None and current.get("owner") != self.owner:
            same_cluster = self.cluster is not None and current.get("cluster") == self.cluster
            if not self._stale(current) and not (cluster_holder_gone and same_cluster):
                age = time.time() - float(current.get("renewed_at", 0))
                raise RoundLockedError(
                    f"round {self.round} is being run by {current.get('owner')} (lease renewed "
                    f"{age:.0f} s ago, ttl {current.get('ttl_s')} s); wait for it, or if that "
                    f"coordinator is dead, for the lease to expire "
                    f"({self.fs.full(self.rel)})"
                )
            log.warning("taking over the stale round lease of %s", current.get("owner"))
            self.took_over = current
            self.fs.delete(self.rel)
        if not self.fs.create_exclusive(self.rel, self._body(), known_absent=current is None):
            raise RoundLockedError(
                f"round {self.round} was taken by {(self.holder() or {}).get('owner')} just now"
            )
        if not self.fs.is_local:
            time.sleep(self.settle_s)
            mine = self.holder()
            if mine is None or mine.get("owner") != self.owner:
                raise RoundLockedError(
                    f"round {self.round} was taken by {(mine or {}).get('owner')} just now"
                )
        self._thread = threading.Thread(target=self._renew, name="round-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(max(self.ttl_s / 4, 0.05)):
            try:
                current = self.holder()
                if current is not None and current.get("owner") != self.owner:
                    log.error("round %d lease was taken by %s", self.round, current.get("owner"))
                    return
                self.fs.write_atomic(self.rel, self._body())
            except OSError as e:  # the store blinked: try again next period
                log.warning("could not renew the round lease: %s", e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = self.holder()
        if current is not None and current.get("owner") == self.owner:
            self.fs.delete(self.rel)

    def __enter__(self) -> RoundLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
