"""Episode schema v1: the contract between rollout workers, robots, trainers and the labeller.

One Parquet file per episode, one row per time step. The file's own metadata describes the
episode completely (embodiment dimensions, cameras and their encoding, fps, action bounds), so a
file read years later, or copied to another store, needs nothing else to be understood.

Versioning: ``ramp.schema_version`` in the file metadata. Readers upgrade older versions through
``UPGRADERS`` (one function per version step) and refuse newer ones with a message that says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ramp.platform.episodes.images import frame_type

SCHEMA_VERSION = 1
META_KEY = b"ramp.episode"
VERSION_KEY = b"ramp.schema_version"
IMAGE_PREFIX = "image."

# Required per-step columns (the image.<camera> columns come from the embodiment's cameras).
REQUIRED_COLUMNS: dict[str, pa.DataType] = {
    "episode_id": pa.string(),
    "step": pa.int32(),
    "timestamp": pa.float64(),
    "embodiment": pa.string(),
    "task": pa.string(),
    "instruction": pa.string(),
    "state": pa.list_(pa.float32()),
    "action": pa.list_(pa.float32()),
    "reward": pa.float32(),
    "done": pa.bool_(),
    "success": pa.bool_(),
    "intervention": pa.bool_(),
    "policy_version": pa.string(),
    "source": pa.string(),
    "round": pa.int32(),
}
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {
    "subgoal": pa.string(),
    "progress": pa.float32(),
    "trajectory_2d": pa.list_(pa.float32()),
}
# Columns that do not describe the episode's content: a robot's retried upload after a round
# boundary differs only in these and must count as the same episode.
PLACEMENT_COLUMNS = ("round",)


class CameraMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    height: int
    width: int
    encoding: str


class EpisodeMeta(BaseModel):
    """The file-level metadata of one episode (stored as JSON under ``ramp.episode``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    episode_id: str
    embodiment: str
    task: str
    source: str
    round: int
    num_steps: int
    success: bool
    intervention_steps: int
    policy_versions: list[str]
    fps: float
    cameras: dict[str, CameraMeta]
    state_names: list[str]
    action_names: list[str]
    action_low: list[float]
    action_high: list[float]
    optional_columns: list[str] = Field(default_factory=list)

    def content_dict(self) -> dict[str, Any]:
        """What identifies the episode's content (placement, i.e. the round, excluded)."""
        d = self.model_dump(mode="json")
        for key in PLACEMENT_COLUMNS:
            d.pop(key, None)
        return d


def camera_column(camera: str) -> str:
    return f"{IMAGE_PREFIX}{camera}"


def arrow_schema(meta: EpisodeMeta) -> pa.Schema:
    """The exact Arrow schema of an episode file, with its metadata attached."""
    fields = [pa.field(name, typ) for name, typ in REQUIRED_COLUMNS.items()]
    for cam, spec in meta.cameras.items():
        fields.append(
            pa.field(camera_column(cam), frame_type(spec.encoding, spec.height, spec.width))
        )
    for name in meta.optional_columns:
        fields.append(pa.field(name, OPTIONAL_COLUMNS[name]))
    return pa.schema(fields, metadata=encode_metadata(meta))


def encode_metadata(meta: EpisodeMeta) -> dict[bytes, bytes]:
    return {
        VERSION_KEY: str(meta.schema_version).encode(),
        META_KEY: json.dumps(meta.model_dump(mode="json"), sort_keys=True).encode(),
    }


class SchemaVersionError(ValueError):
    """A file written by a newer ramp, or without ramp metadata at all."""


# version -> function taking (metadata dict, table) of that version, returning version + 1.
Upgrader = Callable[[dict[str, Any], pa.Table], tuple[dict[str, Any], pa.Table]]
UPGRADERS: dict[int, Upgrader] = {}


def decode_metadata(schema_metadata: dict[bytes, bytes] | None) -> tuple[int, dict[str, Any]]:
    """(schema version, raw metadata dict) from a file's schema metadata."""
    if not schema_metadata or META_KEY not in schema_metadata:
        raise SchemaVersionError("no ramp episode metadata (not a ramp episode file)")
    try:
        version = int(schema_metadata.get(VERSION_KEY, b"0"))
        raw = json.loads(schema_metadata[META_KEY])
    except (ValueError, json.JSONDecodeError) as e:
        raise SchemaVersionError(f"unreadable ramp metadata: {e}") from None
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"episode schema version {version} is newer than this ramp understands "
            f"({SCHEMA_VERSION}); upgrade ramp to read it"
        )
    if version < 1:
        raise SchemaVersionError(f"invalid episode schema version {version}")
    return version, raw


def upgrade(
    version: int, raw: dict[str, Any], table: pa.Table | None
) -> tuple[EpisodeMeta, pa.Table | None]:
    """Bring metadata (and the table, when given) from `version` up to SCHEMA_VERSION."""
    while version < SCHEMA_VERSION:
        step = UPGRADERS.get(version)
        if step is None:
            raise SchemaVersionError(f"no upgrade path from episode schema version {version}")
        raw, table = step(raw, table) if table is not None else step(raw, pa.table({}))
        version += 1
        raw["schema_version"] = version
    return EpisodeMeta.model_validate(raw), table
