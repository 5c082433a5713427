"""Refuse bad episodes before anything is written.

Every check is vectorised over the episode's Arrow columns (no Python loop over steps), and each
failure names the episode, the first bad step and the column, so a robot team can find the bug in
their recorder from the error alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ramp.platform.config import NAME_PATTERN, EmbodimentConfig
from ramp.platform.episodes.episode import EpisodeValidationError
from ramp.platform.episodes.images import encoded_size
from ramp.platform.episodes.schema import (
    OPTIONAL_COLUMNS,
    EpisodeMeta,
    SchemaVersionError,
    arrow_schema,
    camera_column,
    decode_metadata,
    upgrade,
)

EPISODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


def check_episode_id(episode_id: str) -> None:
    if not isinstance(episode_id, str) or not re.match(EPISODE_ID_PATTERN, episode_id):
        raise EpisodeValidationError(
            str(episode_id),
            "episode_id",
            f"must match {EPISODE_ID_PATTERN} (letters, digits, '_', '.', '-'; at most 128; "
            "globally unique, made by the producer, e.g. '<robot>-<utc time>-<counter>')",
        )


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True, or None."""
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _np(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.to_numpy(zero_copy_only=False)


def read_meta(table: pa.Table) -> EpisodeMeta:
    """The episode metadata attached to a table's schema, upgraded to the current version."""
    version, raw = decode_metadata(table.schema.metadata)
    meta, _ = upgrade(version, raw, None)
    return meta


def _check_nulls(table: pa.Table, eid: str, nullable: set[str]) -> None:
    for name in table.column_names:
        col = table.column(name)
        if name not in nullable and col.null_count:
            step = _first(_np(pc.is_null(col)))
            raise EpisodeValidationError(eid, name, "missing value (null)", step)


def _check_constant(table: pa.Table, column: str, expected, eid: str) -> None:
    eq = _np(pc.equal(table.column(column), pa.scalar(expected, table.schema.field(column).type)))
    bad = _first(~eq)
    if bad is not None:
        got = table.column(column)[bad].as_py()
        raise EpisodeValidationError(
            eid,
            column,
            f"must be {expected!r} on every step (it is constant per episode), got {got!r}",
            bad,
        )


def _check_vectors(table: pa.Table, column: str, dim: int, eid: str, what: str) -> None:
    col = table.column(column).combine_chunks()
    lengths = _np(pc.list_value_length(col))
    bad = _first(lengths != dim)
    if bad is not None:
        raise EpisodeValidationError(
            eid, column, f"has {lengths[bad]} values, the embodiment declares {dim} ({what})", bad
        )
    values = col.flatten().to_numpy()
    bad = _first(~np.isfinite(values))
    if bad is not None:
        raise EpisodeValidationError(
            eid, column, f"{values[bad]} is not finite", bad // max(dim, 1)
        )


def _check_finite(table: pa.Table, column: str, eid: str) -> np.ndarray:
    values = _np(table.column(column)).astype(np.float64)
    bad = _first(~np.isfinite(values))
    if bad is not None:
        raise EpisodeValidationError(eid, column, f"{values[bad]} is not finite", bad)
    return values


def validate_table(
    table: pa.Table,
    embodiments: Mapping[str, EmbodimentConfig] | None,
) -> EpisodeMeta:
    """Check one episode table completely; return its metadata or raise EpisodeValidationError.

    ``embodiments`` is the store's registry; ``None`` validates against the dimensions the file
    itself declares (used when checking files already in a store).
    """
    try:
        meta = read_meta(table)
    except SchemaVersionError as e:
        eid = "?"
        if "episode_id" in table.column_names and len(table):
            eid = str(table.column("episode_id")[0].as_py())
        raise EpisodeValidationError(eid, "(file metadata)", str(e)) from None
    eid = meta.episode_id
    check_episode_id(eid)

    if embodiments is not None:
        spec = embodiments.get(meta.embodiment)
        if spec is None:
            declared = ", ".join(sorted(embodiments)) or "none"
            raise EpisodeValidationError(
                eid,
                "embodiment",
                f"embodiment {meta.embodiment!r} has no declared dimensions (declare it under "
                f"`embodiments:` in the config; declared: {declared})",
            )
        for field in ("state_names", "action_names"):
            if list(getattr(spec, field)) != getattr(meta, field):
                raise EpisodeValidationError(
                    eid,
                    field.replace("_names", ""),
                    f"{field} {getattr(meta, field)} differ from "
                    f"embodiment {meta.embodiment!r}: {list(getattr(spec, field))}",
                )
        missing = [c for c in spec.cameras if c not in meta.cameras]
        if missing:
            raise EpisodeValidationError(
                eid,
                camera_column(missing[0]),
                f"camera {missing[0]!r} of embodiment {meta.embodiment!r} is missing",
            )
        extra = [c for c in meta.cameras if c not in spec.cameras]
        if extra:
            raise EpisodeValidationError(
                eid,
                camera_column(extra[0]),
                f"camera {extra[0]!r} is not declared for embodiment "
                f"{meta.embodiment!r} (declared: {', '.join(spec.cameras)})",
            )
        for cam, cam_meta in meta.cameras.items():
            want = spec.cameras[cam]
            if (cam_meta.height, cam_meta.width) != (want.height, want.width):
                raise EpisodeValidationError(
                    eid,
                    camera_column(cam),
                    f"frames are {cam_meta.height}x{cam_meta.width}, the "
                    f"embodiment declares {want.height}x{want.width}",
                )

    if not re.match(NAME_PATTERN, meta.source):
        raise EpisodeValidationError(eid, "source", f"{meta.source!r} must match {NAME_PATTERN}")
    if meta.round < 0:
        raise EpisodeValidationError(eid, "round", f"must be >= 0, got {meta.round}")
    unknown = [c for c in meta.optional_columns if c not in OPTIONAL_COLUMNS]
    if unknown:
        raise EpisodeValidationError(
            eid, unknown[0], f"unknown optional column; allowed: {', '.join(OPTIONAL_COLUMNS)}"
        )

    # Exact schema: names, order and types.
    expected = arrow_schema(meta)
    for field in expected:
        if field.name not in table.column_names:
            raise EpisodeValidationError(eid, field.name, "column is missing")
        got = table.schema.field(field.name).type
        if got != field.type:
            raise EpisodeValidationError(eid, field.name, f"type {got} is not {field.type}")
    extra_cols = [c for c in table.column_names if c not in expected.names]
    if extra_cols:
        raise EpisodeValidationError(eid, extra_cols[0], "column is not part of the episode schema")

    t = table.num_rows
    if t < 1:
        raise EpisodeValidationError(eid, "step", "an episode needs at least one step")
    if t != meta.num_steps:
        raise EpisodeValidationError(eid, "step", f"has {t} rows, metadata says {meta.num_steps}")
    nullable = {"subgoal", "progress", "trajectory_2d"}
    _check_nulls(table, eid, nullable)

    step = _np(table.column("step"))
    bad = _first(step != np.arange(t))
    if bad is not None:
        raise EpisodeValidationError(
            eid, "step", f"steps must be 0..{t - 1} in order; row {bad} has step {step[bad]}", bad
        )
    _check_constant(table, "episode_id", eid, eid)
    _check_constant(table, "embodiment", meta.embodiment, eid)
    _check_constant(table, "task", meta.task, eid)
    _check_constant(table, "source", meta.source, eid)
    _check_constant(table, "round", meta.round, eid)

    _check_vectors(table, "state", len(meta.state_names), eid, "state_names")
    _check_vectors(table, "action", len(meta.action_names), eid, "action_names")
    _check_finite(table, "reward", eid)
    ts = _check_finite(table, "timestamp", eid)
    bad = _first(np.diff(ts) < 0)
    if bad is not None:
        raise EpisodeValidationError(eid, "timestamp", "timestamps must not decrease", bad + 1)

    done = _np(table.column("done")).astype(bool)
    if not done[-1]:
        raise EpisodeValidationError(eid, "done", "the last step must have done=True", t - 1)
    bad = _first(done[:-1])
    if bad is not None:
        raise EpisodeValidationError(eid, "done", "done=True before the last step", bad)
    success = _np(table.column("success")).astype(bool)
    if bool(success[-1]) != meta.success:
        raise EpisodeValidationError(eid, "success", "last step disagrees with metadata", t - 1)
    intervention = _np(table.column("intervention")).astype(bool)
    if int(intervention.sum()) != meta.intervention_steps:
        raise EpisodeValidationError(eid, "intervention", "count disagrees with metadata")
    empty_version = _first(_np(pc.equal(pc.utf8_length(table.column("policy_version")), 0)))
    if empty_version is not None:
        raise EpisodeValidationError(
            eid,
            "policy_version",
            "must name the policy (or 'human', 'scripted-expert')",
            empty_version,
        )

    for cam, cam_meta in meta.cameras.items():
        name = camera_column(cam)
        if cam_meta.encoding != "raw":
            col = table.column(name)
            lengths = _np(pc.binary_length(col))
            bad = _first(lengths == 0)
            if bad is not None:
                raise EpisodeValidationError(eid, name, "empty frame", bad)
            try:
                size = encoded_size(col[0].as_py(), cam_meta.encoding)
            except Exception as e:
                raise EpisodeValidationError(
                    eid, name, f"frame is not a valid {cam_meta.encoding}: {e}", 0
                ) from None
            if size != (cam_meta.height, cam_meta.width):
                raise EpisodeValidationError(
                    eid,
                    name,
                    f"frame is {size[0]}x{size[1]}, metadata says "
                    f"{cam_meta.height}x{cam_meta.width}",
                    0,
                )

    if "progress" in meta.optional_columns:
        p = _np(table.column("progress")).astype(np.float64)
        bad = _first(~np.isnan(p) & ((p < 0) | (p > 1)))
        if bad is not None:
            raise EpisodeValidationError(eid, "progress", f"{p[bad]} is outside [0, 1]", bad)
    if "trajectory_2d" in meta.optional_columns:
        col = table.column("trajectory_2d").combine_chunks()
        lengths = _np(pc.list_value_length(col))
        present = lengths[~_np(pc.is_null(col))]
        if present.size and (present.min() != present.max() or present[0] % 2):
            raise EpisodeValidationError(
                eid, "trajectory_2d", "every step needs the same even number of values (x, y pairs)"
            )
        values = col.flatten().to_numpy()
        bad = _first(~np.isfinite(values))
        if bad is not None:
            raise EpisodeValidationError(eid, "trajectory_2d", f"{values[bad]} is not finite")
    return meta
