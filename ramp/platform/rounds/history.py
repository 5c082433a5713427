"""What earlier rounds decided, read from their manifests: which round runs next, what is in
production, and which checkpoint a retrained model starts from."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ramp.platform.episodes.fs import StoreFS
from ramp.platform.rounds.manifest import RoundManifest, load_manifest, rounds_in


def config_digest(cfg: Any) -> str:
    """A short hash of the resolved config (recorded per round; a resume with another config
    is reported, not refused: fixing a bad setting and resuming is legitimate)."""
    raw = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def manifests(fs: StoreFS) -> list[RoundManifest]:
    out = []
    for r in rounds_in(fs):
        m = load_manifest(fs, r)
        if m is not None:
            out.append(m)
    return out


def round_to_run(fs: StoreFS, current_round: int) -> int:
    """An unfinished round resumes; otherwise the round new uploads belong to."""
    unfinished = [m.round for m in manifests(fs) if m.status != "done"]
    return min(unfinished) if unfinished else current_round


def production(fs: StoreFS, before_round: int | None = None) -> tuple[str | None, str | None]:
    """(policy, world model) in production after the last finished round before `before_round`."""
    for m in reversed(manifests(fs)):
        if before_round is not None and m.round >= before_round:
            continue
        if m.status == "done" and m.versions.production:
            return m.versions.production, m.versions.production_world_model
    return None, None


def start_checkpoint(
    fs: StoreFS, kind: str, round_: int, init: str, init_checkpoint: str | None
) -> str | None:
    """The checkpoint a fit of `kind` ("world_model" | "policy") in `round_` starts from."""
    if round_ == 0 or init == "scratch":
        return init_checkpoint if round_ == 0 else None
    if init == "pretrained":
        m = load_manifest(fs, 0)
        version = getattr(m.versions, kind) if m is not None else None
        if version is None:
            raise ValueError(
                f"init 'pretrained' needs round 0's {kind.replace('_', ' ')}; round 0 has not "
                "trained one (run `ramp round` for round 0 first)"
            )
        return version
    for m in reversed(manifests(fs)):  # "previous": the newest earlier round that trained one
        if m.round < round_ and getattr(m.versions, kind):
            return getattr(m.versions, kind)
    return None
