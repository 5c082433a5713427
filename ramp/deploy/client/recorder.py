"""Record episodes on the robot and upload them without ever losing one.

``EpisodeRecorder`` collects steps (observation, executed action, intervention flag, policy
version) and ``finish(success)`` returns the upload payload. ``EpisodeUploader.submit`` first
writes it to a local spool folder (atomically, fsynced), then a background thread uploads spooled
episodes oldest first, with exponential back-off while the server is unreachable, busy or
restarting. A spooled file is deleted only once the server has stored the episode (uploads are
idempotent by episode id, so a retry after a lost answer is harmless); an episode the server
refuses for good (422 invalid, 409 conflicting id) moves to ``spool/rejected/`` with the reason.
Files left in the spool by a previous run are uploaded by the next uploader on the same folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .codec import CodecError, packb, unpackb
from .errors import RampError, RampHTTPError
from .rest import RampClient

log = logging.getLogger(__name__)
SPOOL_SUFFIX = ".episode.msgpack"


def new_episode_id(robot: str) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{robot}-{stamp}-{uuid.uuid4().hex[:8]}"


class EpisodeRecorder:
    """``record(obs, action, ...)`` once per control step, then ``finish(success)``."""

    def __init__(
        self,
        embodiment: str,
        task: str,
        instruction: str,
        *,
        robot: str = "robot",
        episode_id: str | None = None,
    ):
        self.episode_id = episode_id or new_episode_id(robot)
        self.embodiment, self.task, self.instruction = embodiment, task, instruction
        self.images: dict[str, list[np.ndarray]] = {}
        self.state: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.intervention: list[bool] = []
        self.versions: list[str] = []

    def __len__(self) -> int:
        return len(self.action)

    def record(
        self,
        obs: dict[str, Any],
        action: np.ndarray,
        *,
        intervention: bool = False,
        policy_version: str | None = None,
    ) -> None:
        """One step: the observation, the action executed (policy or human), who produced it."""
        for cam, frame in obs["images"].items():
            self.images.setdefault(cam, []).append(np.array(frame, dtype=np.uint8, copy=True))
        self.state.append(np.asarray(obs["state"], dtype=np.float32).copy())
        self.action.append(np.asarray(action, dtype=np.float32).copy())
        self.intervention.append(bool(intervention))
        self.versions.append(policy_version or ("human" if intervention else "unknown"))

    def finish(self, success: bool) -> dict[str, Any]:
        if not self.action:
            raise ValueError("an episode needs at least one recorded step")
        return {
            "episode_id": self.episode_id,
            "embodiment": self.embodiment,
            "task": self.task,
            "instruction": self.instruction,
            "images": {cam: np.stack(frames) for cam, frames in self.images.items()},
            "state": np.stack(self.state),
            "action": np.stack(self.action),
            "intervention": np.asarray(self.intervention, dtype=bool),
            "policy_version": self.versions,
            "success": bool(success),
        }


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # never matches the spool glob
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some file systems refuse directory fsync
        pass


class EpisodeUploader:
    """A local spool plus a background uploader thread (see the module docstring)."""

    def __init__(
        self,
        client: RampClient,
        spool_dir: str | os.PathLike[str],
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 60.0,
        start: bool = True,
    ):
        self.client = client
        self.spool = Path(spool_dir)
        self.spool.mkdir(parents=True, exist_ok=True)
        (self.spool / "rejected").mkdir(exist_ok=True)
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.uploaded: list[str] = []
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ramp-uploader", daemon=True)
            self._thread.start()

    def submit(self, episode: dict[str, Any]) -> Path:
        """Spool the episode (durably) and return at once; it uploads in the background."""
        path = self.spool / f"{episode['episode_id']}{SPOOL_SUFFIX}"
        _atomic_write(path, packb(episode))
        self._idle.clear()
        self._wake.set()
        return path

    def pending(self) -> list[str]:
        """Episode ids waiting in the spool, oldest first."""
        found = []
        for p in self.spool.glob(f"*{SPOOL_SUFFIX}"):
            try:
                found.append((p.stat().st_mtime, p.name[: -len(SPOOL_SUFFIX)]))
            except FileNotFoundError:  # uploaded meanwhile
                continue
        return [name for _, name in sorted(found)]

    def rejected(self) -> list[str]:
        return sorted(
            p.name[: -len(SPOOL_SUFFIX)] for p in (self.spool / "rejected").glob(f"*{SPOOL_SUFFIX}")
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the spool is empty; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending():
            self._wake.set()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._idle.wait(0.05 if left is None else min(0.05, left))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; anything not uploaded stays in the spool for the next uploader."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _upload(self, path: Path) -> bool:
        """True when the server has the episode (or refused it for good); False: retry later."""
        try:
            episode = unpackb(path.read_bytes())
        except CodecError as e:  # cannot happen with atomic writes, but never block the queue
            self._reject(path, {"status": 0, "code": "corrupt_spool_file", "message": str(e)})
            return True
        except OSError:
            return False
        try:
            self.client.upload_episode(episode)
        except RampHTTPError as e:
            self.last_error = str(e)
            if e.retryable or e.status in (401, 403):
                log.warning("upload of %s will be retried: %s", path.name, e)
                return False
            log.error("the server refused %s for good: %s", path.name, e)
            reason = {"status": e.status, "code": e.code, "field": e.field, "message": e.message}
            self._reject(path, reason)
            return True
        except (RampError, OSError) as e:
            self.last_error = str(e)
            log.info("upload of %s will be retried: %s", path.name, e)
            return False
        path.unlink(missing_ok=True)
        self.uploaded.append(path.name[: -len(SPOOL_SUFFIX)])
        self.last_error = None
        return True

    def _reject(self, path: Path, reason: dict[str, Any]) -> None:
        dest = self.spool / "rejected" / path.name
        _atomic_write(dest.with_suffix(".error.json"), json.dumps(reason).encode())
        os.replace(path, dest)

    def _run(self) -> None:
        backoff = self.retry_initial_s
        while not self._stop.is_set():
            self._wake.clear()
            failed = False
            try:
                for name in self.pending():
                    if self._stop.is_set():
                        return
                    if not self._upload(self.spool / f"{name}{SPOOL_SUFFIX}"):
                        failed = True
                        break
            except Exception as e:  # never let the thread die: the spool is the safety net
                log.exception("uploader pass failed")
                self.last_error = str(e)
                failed = True
            if failed:
                self._wake.wait(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
                continue
            backoff = self.retry_initial_s
            self._idle.set()
            self._wake.wait(1.0)
