"""The round manifest: ``<root>/rounds/<r>/manifest.json``, the round's single source of truth.

Why a manifest: a round runs for hours on a cluster where a node can die at 3 a.m. Every stage
records its result here the moment it finishes (one atomic write), so re-running the round skips
what is done and resumes at the first unfinished stage, and the frozen list of input episode ids
makes the retrained models reproducible and traceable (this episode -> that world model -> that
policy). The manifest is small JSON; the episode ids are its bulk (~40 bytes each).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import Field

from ramp.platform.base import StrictModel
from ramp.platform.episodes.fs import StoreFS

MANIFEST_FORMAT_VERSION = 1
ROUNDS_DIR = "rounds"

# The stages of a round, in order. Round 0 is stage 1 -> label -> stage 2 (no rollouts);
# rounds >= 1 collect first. "freeze" fixes the input episode ids and moves new uploads to r+1.
STAGES = ("collect", "freeze", "world_model", "label", "policy", "evaluate", "promote")
Stage = Literal["collect", "freeze", "world_model", "label", "policy", "evaluate", "promote"]
StageState = Literal["pending", "running", "done", "failed", "skipped"]


def stages_of(round_: int) -> tuple[str, ...]:
    return STAGES if round_ >= 1 else STAGES[1:]


def manifest_path(round_: int) -> str:
    return f"{ROUNDS_DIR}/{int(round_)}/manifest.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ManifestError(ValueError):
    """A manifest that cannot be read, or does not belong to this run."""


class StageRecord(StrictModel):
    state: StageState = "pending"
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)  # small: versions, counts, metrics
    mlflow_run_id: str | None = None


class Versions(StrictModel):
    world_model: str | None = None  # trained this round
    policy: str | None = None  # trained this round (the candidate)
    production_before: str | None = None  # the policy that collected this round's rollouts
    production: str | None = None  # the policy in production after this round
    production_world_model: str | None = None


class RoundManifest(StrictModel):
    format_version: int = Field(default=MANIFEST_FORMAT_VERSION, ge=1)
    round: int = Field(ge=0)
    config_name: str
    config_digest: str
    created_at: str = Field(default_factory=now)
    updated_at: str = Field(default_factory=now)
    status: Literal["running", "done", "failed"] = "running"
    stages: dict[str, StageRecord]
    episode_ids: list[str] | None = None  # frozen input: every episode the models train on
    excluded: dict[str, str] = Field(default_factory=dict)  # id -> why it left the input
    versions: Versions = Field(default_factory=Versions)
    mlflow_run_id: str | None = None

    @classmethod
    def new(cls, round_: int, config_name: str, config_digest: str) -> RoundManifest:
        return cls(
            round=round_,
            config_name=config_name,
            config_digest=config_digest,
            stages={s: StageRecord() for s in stages_of(round_)},
        )

    def next_stage(self) -> str | None:
        """The first stage not done (or skipped); None when the round is complete."""
        for name in stages_of(self.round):
            if self.stages[name].state not in ("done", "skipped"):
                return name
        return None

    def done(self, stage: str) -> bool:
        return self.stages[stage].state in ("done", "skipped")

    def training_ids(self) -> list[str]:
        """The frozen input minus what later stages excluded (quarantined on read)."""
        if self.episode_ids is None:
            raise ManifestError(f"round {self.round} has not frozen its input episodes yet")
        return [i for i in self.episode_ids if i not in self.excluded]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1) + "\n"


def load_manifest(fs: StoreFS, round_: int) -> RoundManifest | None:
    text = fs.read_text(manifest_path(round_))
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{fs.full(manifest_path(round_))} is not JSON: {e}") from None
    version = raw.get("format_version")
    if not isinstance(version, int) or version > MANIFEST_FORMAT_VERSION:
        raise ManifestError(
            f"{fs.full(manifest_path(round_))} has format_version {version!r}; this ramp reads "
            f"up to {MANIFEST_FORMAT_VERSION} (upgrade ramp)"
        )
    return RoundManifest.model_validate(raw)


def save_manifest(fs: StoreFS, manifest: RoundManifest) -> None:
    manifest.updated_at = now()
    fs.write_atomic(manifest_path(manifest.round), manifest.to_json().encode())


def rounds_in(fs: StoreFS) -> list[int]:
    """Round numbers that have a manifest, ascending."""
    out = set()
    for rel in fs.list_files(ROUNDS_DIR):
        parts = rel.split("/")
        if len(parts) == 3 and parts[2] == "manifest.json" and parts[1].isdigit():
            out.add(int(parts[1]))
    return sorted(out)
