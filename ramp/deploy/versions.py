"""Which checkpoint a version string means, and the deployment history that rollback reads.

Versions resolve from the store: ``<root>/checkpoints/<kind>/<version>/`` (a folder with a
``config.json``); ``latest`` is the highest round (ties: the newest folder); a path to a checkpoint
folder works too. Registry aliases (``production``, ``candidate``, or ``alias:NAME``) resolve
through the MLflow registry to a version when the caller passes the config's tracking section.

The history lives next to the data, ``<root>/deploy/history.json`` (versioned JSON, written
atomically through the store's file system, so local roots and S3 behave the same), so that
``ramp deploy --rollback`` works from any process that can reach the store:

    {"format_version": 1,
     "live": [{"version", "checkpoint", "deployed_at"}, ...],   # a stack: last = live now
     "events": [{"action": "serve|deploy|rollback", "version", "previous", "at"}, ...]}

A deploy pushes onto ``live``; a rollback pops the live version and deploys the one below.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ramp.platform.config import did_you_mean
from ramp.platform.episodes.fs import StoreFS
from ramp.platform.tracking.settings import TrackingConfig

CHECKPOINTS_DIR = "checkpoints"
DEPLOY_DIR = "deploy"
HISTORY_FILE = f"{DEPLOY_DIR}/history.json"
HISTORY_FORMAT_VERSION = 1
MAX_EVENTS = 1000
ROUND_RE = re.compile(r"-r(\d+)-")
REGISTRY_ALIASES = ("production", "candidate")


class VersionError(ValueError):
    """A version that does not resolve, or a rollback with nothing to return to."""


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint: ``load_checkpoint(root, rel)`` loads it."""

    root: str
    rel: str
    version: str
    kind: str

    @property
    def path(self) -> str:
        return StoreFS.from_root(self.root).full(self.rel) if self.rel else self.root

    def to_json(self) -> dict[str, str]:
        return {"root": self.root, "rel": self.rel, "version": self.version, "kind": self.kind}

    @classmethod
    def from_json(cls, d: dict[str, str]) -> CheckpointRef:
        return cls(d["root"], d["rel"], d["version"], d["kind"])


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _config(fs: StoreFS, rel: str) -> dict[str, Any] | None:
    text = fs.read_text(f"{rel}/config.json" if rel else "config.json")
    return json.loads(text) if text else None


def list_versions(root: str, kind: str = "policy") -> list[str]:
    """Complete checkpoints (folders with a config.json) of ``kind`` in the store."""
    fs = StoreFS.from_root(root)
    base = f"{CHECKPOINTS_DIR}/{kind}"
    out = set()
    for rel in fs.list_files(base):
        parts = rel[len(base) + 1 :].split("/")
        if len(parts) == 2 and parts[1] == "config.json":
            out.add(parts[0])
    return sorted(out)


def _latest(root: str, kind: str, versions: list[str]) -> str:
    fs = StoreFS.from_root(root)

    def key(v: str) -> tuple[int, float]:
        m = ROUND_RE.search(v)
        info = fs.fs.get_file_info(fs.full(f"{CHECKPOINTS_DIR}/{kind}/{v}/config.json"))
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        return (int(m.group(1)) if m else -1, mtime)

    return max(versions, key=key)


def resolve(
    spec: str, root: str | None, kind: str = "policy", tracking: TrackingConfig | None = None
) -> CheckpointRef:
    """A version (``policy-r3-1a2b3c4d``), ``latest``, a checkpoint folder, or a registry alias
    (``production``, ``candidate``, ``alias:NAME``; needs ``tracking``) -> CheckpointRef."""
    alias = spec[len("alias:") :] if spec.startswith("alias:") else None
    if alias is not None or spec in REGISTRY_ALIASES:
        alias = alias or spec
        if tracking is None or root is None:
            raise VersionError(
                f"{spec!r} is a model-registry alias: resolving it needs the config (--config) "
                "whose tracking section names the registry, and its store root"
            )
        from mlflow.exceptions import MlflowException

        from ramp.platform.tracking.registry import resolve_alias

        try:
            spec = resolve_alias(tracking, root, kind, alias)
        except (ValueError, ConnectionError, MlflowException) as e:
            raise VersionError(str(e)) from e
    looks_like_path = "/" in spec or spec.startswith(".") or spec.startswith("s3://")
    if looks_like_path:
        local = not spec.startswith("s3://")
        if local and not Path(spec).exists():
            raise VersionError(f"checkpoint folder {spec} does not exist")
        fs = StoreFS.from_root(spec if not local else str(Path(spec).resolve()))
        config = _config(fs, "")
        if config is None:
            raise VersionError(f"{spec} is not a checkpoint folder (it has no config.json)")
        if config.get("kind") != kind:
            raise VersionError(f"{spec} holds a {config.get('kind')!r} checkpoint, not {kind!r}")
        version = config.get("version") or f"{kind}-path-{config.get('content_hash', 'x')[:8]}"
        return CheckpointRef(fs.uri, "", version, kind)
    if root is None:
        raise VersionError(
            f"cannot resolve version {spec!r} without a store root (give --root or --config)"
        )
    versions = list_versions(root, kind)
    if spec == "latest":
        if not versions:
            raise VersionError(f"no {kind} checkpoints under {root}/{CHECKPOINTS_DIR}/{kind}/")
        spec = _latest(root, kind, versions)
    if spec not in versions:
        shown = ", ".join(versions[-12:]) or "none"
        raise VersionError(
            f"unknown {kind} version {spec!r} in {root}/{CHECKPOINTS_DIR}/{kind}/"
            f"{did_you_mean(spec, versions)}; available: {shown} (or 'latest', or a folder path)"
        )
    return CheckpointRef(root, f"{CHECKPOINTS_DIR}/{kind}/{spec}", spec, kind)


# --------------------------------------------------------------------------- history


@dataclass
class DeployHistory:
    """The deploy stack and event log of one store root (see the module docstring)."""

    root: str
    live: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @classmethod
    def load(cls, root: str) -> DeployHistory:
        text = StoreFS.from_root(root).read_text(HISTORY_FILE)
        if not text:
            return cls(root, [], [])
        data = json.loads(text)
        fv = data.get("format_version")
        if not isinstance(fv, int) or fv > HISTORY_FORMAT_VERSION:
            raise VersionError(
                f"{root}/{HISTORY_FILE} has format_version {fv!r}; this ramp reads up to "
                f"{HISTORY_FORMAT_VERSION} (upgrade ramp)"
            )
        return cls(root, list(data.get("live", [])), list(data.get("events", [])))

    def save(self) -> None:
        data = {
            "format_version": HISTORY_FORMAT_VERSION,
            "live": self.live[-MAX_EVENTS:],
            "events": self.events[-MAX_EVENTS:],
        }
        StoreFS.from_root(self.root).write_atomic(
            HISTORY_FILE, (json.dumps(data, indent=1) + "\n").encode()
        )

    @property
    def current(self) -> dict[str, Any] | None:
        return self.live[-1] if self.live else None

    def previous(self) -> dict[str, Any]:
        """The entry a rollback returns to."""
        if len(self.live) < 2:
            only = self.live[-1]["version"] if self.live else "nothing"
            raise VersionError(
                f"nothing to roll back to: {self.root}/{HISTORY_FILE} records only {only}"
            )
        return self.live[-2]

    def record(self, action: str, ref: CheckpointRef) -> None:
        """Note that ``ref`` went live by ``action`` ("serve", "deploy" or "rollback")."""
        previous = self.current["version"] if self.current else None
        entry = {"version": ref.version, "checkpoint": ref.to_json(), "deployed_at": _now()}
        if action == "rollback":
            self.live.pop()
            self.live[-1] = entry
        elif previous != ref.version:
            self.live.append(entry)
        self.events.append(
            {"action": action, "version": ref.version, "previous": previous, "at": _now()}
        )
