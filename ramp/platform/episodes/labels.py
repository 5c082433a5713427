"""Label sidecars: value, advantage and indicator per step, one file per (world model, episode).

Why sidecars instead of new columns: raw episodes are never rewritten, and every world-model
version relabels every episode the policy trains on, so labels are many-to-one with episodes.
Each sidecar records the content hash of the episode it labels; a label whose episode changed
(quarantined and uploaded again) is stale and is treated as missing rather than joined.
"""

from __future__ import annotations

import datetime as _dt
import json
import re

import numpy as np
import pyarrow as pa

LABEL_SCHEMA_VERSION = 1
LABEL_META_KEY = b"ramp.labels"
LABELS_DIR = "labels"
WM_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
REQUIRED_LABEL_COLUMNS: dict[str, pa.DataType] = {
    "episode_id": pa.string(),
    "step": pa.int32(),
    "value": pa.float32(),
    "advantage": pa.float32(),
    "indicator": pa.bool_(),
}
# Columns a label table may carry besides the required ones (all float32, per step).
OPTIONAL_LABEL_COLUMNS = ("return", "reward", "value_target")


class LabelError(ValueError):
    """Labels that cannot be written or are not there to join."""


def check_wm_version(wm_version: str) -> None:
    if not isinstance(wm_version, str) or not re.match(WM_VERSION_PATTERN, wm_version):
        raise LabelError(
            f"world-model version {wm_version!r} must match {WM_VERSION_PATTERN} "
            "(for example 'world_model-r3-1a2b3c4')"
        )


def label_path(wm_version: str, episode_id: str) -> str:
    return f"{LABELS_DIR}/wm={wm_version}/{episode_id}.parquet"


def label_columns(table: pa.Table) -> list[str]:
    """The label columns of a label table (everything but the join keys)."""
    return [c for c in table.column_names if c not in ("episode_id", "step")]


def prepare_label_table(
    table: pa.Table, wm_version: str, episode_id: str, num_steps: int, episode_hash: str
) -> pa.Table:
    """Check one episode's labels and attach the sidecar metadata."""
    for name, typ in REQUIRED_LABEL_COLUMNS.items():
        if name not in table.column_names:
            raise LabelError(f"labels for {episode_id!r}: column {name!r} is missing")
        if table.schema.field(name).type != typ:
            try:
                table = table.set_column(
                    table.schema.get_field_index(name), name, table.column(name).cast(typ)
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise LabelError(
                    f"labels for {episode_id!r}: column {name!r} has type "
                    f"{table.schema.field(name).type}, expected {typ}"
                ) from None
    extra = [c for c in table.column_names if c not in REQUIRED_LABEL_COLUMNS]
    unknown = [c for c in extra if c not in OPTIONAL_LABEL_COLUMNS]
    if unknown:
        raise LabelError(
            f"labels for {episode_id!r}: unknown column {unknown[0]!r}; allowed besides "
            f"{', '.join(REQUIRED_LABEL_COLUMNS)}: {', '.join(OPTIONAL_LABEL_COLUMNS)}"
        )
    for name in extra:
        table = table.set_column(
            table.schema.get_field_index(name), name, table.column(name).cast(pa.float32())
        )
    table = table.sort_by("step")
    steps = table.column("step").to_numpy()
    if len(steps) != num_steps or not np.array_equal(steps, np.arange(num_steps)):
        raise LabelError(
            f"labels for {episode_id!r} must cover steps 0..{num_steps - 1} exactly once "
            f"(got {len(steps)} rows)"
        )
    for name in ["value", "advantage", *extra]:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise LabelError(
                f"labels for {episode_id!r}, step {int(bad[0])}, column {name!r}: not finite"
            )
    if table.column("indicator").null_count:
        raise LabelError(f"labels for {episode_id!r}: indicator has missing values")
    meta = {
        "schema_version": LABEL_SCHEMA_VERSION,
        "wm_version": wm_version,
        "episode_id": episode_id,
        "episode_hash": episode_hash,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return table.replace_schema_metadata({LABEL_META_KEY: json.dumps(meta).encode()})


def read_label_meta(table: pa.Table) -> dict:
    md = table.schema.metadata or {}
    if LABEL_META_KEY not in md:
        raise LabelError("not a ramp label file (no ramp.labels metadata)")
    meta = json.loads(md[LABEL_META_KEY])
    if int(meta.get("schema_version", 0)) > LABEL_SCHEMA_VERSION:
        raise LabelError(
            f"label schema version {meta['schema_version']} is newer than this ramp "
            f"understands ({LABEL_SCHEMA_VERSION})"
        )
    return meta
