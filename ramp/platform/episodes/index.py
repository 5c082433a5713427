"""The global episode index: episode id -> location, content hash and a summary.

Why an index next to the files: episode ids are unique across the whole store (every round,
every source), so a robot's retried upload after a round boundary must find the earlier copy
without scanning every partition; and stats and filters on task, embodiment or success should
not open thousands of Parquet footers. One small JSON file per episode keeps writes independent
(no shared file to lock) and works the same on a disk and on S3.
"""

from __future__ import annotations

import datetime as _dt
import json

import pyarrow as pa
import pyarrow.ipc as ipc
import xxhash
from pydantic import BaseModel, ConfigDict

from ramp.platform.episodes.schema import PLACEMENT_COLUMNS, EpisodeMeta

INDEX_FORMAT_VERSION = 1
INDEX_DIR = "index/episodes"
EPISODES_DIR = "episodes"


class IndexEntry(BaseModel):
    """Where an episode lives and what it holds (enough for filters and stats)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = INDEX_FORMAT_VERSION
    episode_id: str
    path: str
    content_hash: str
    round: int
    source: str
    task: str
    embodiment: str
    success: bool
    num_steps: int
    intervention_steps: int
    policy_versions: list[str]
    bytes: int = 0
    written_at: str = ""

    @classmethod
    def from_meta(cls, meta: EpisodeMeta, path: str, content_hash: str, size: int) -> IndexEntry:
        return cls(
            episode_id=meta.episode_id,
            path=path,
            content_hash=content_hash,
            round=meta.round,
            source=meta.source,
            task=meta.task,
            embodiment=meta.embodiment,
            success=meta.success,
            num_steps=meta.num_steps,
            intervention_steps=meta.intervention_steps,
            policy_versions=meta.policy_versions,
            bytes=size,
            written_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )


def episode_path(round_: int, source: str, episode_id: str) -> str:
    return f"{EPISODES_DIR}/round={round_}/source={source}/{episode_id}.parquet"


def parse_episode_path(rel: str) -> tuple[int, str, str] | None:
    """(round, source, episode id) from a data file's relative path, or None if it is not one."""
    parts = rel.split("/")
    if (
        len(parts) != 4
        or parts[0] != EPISODES_DIR
        or not parts[1].startswith("round=")
        or not parts[2].startswith("source=")
        or not parts[3].endswith(".parquet")
    ):
        return None
    try:
        round_ = int(parts[1][len("round=") :])
    except ValueError:
        return None
    return round_, parts[2][len("source=") :], parts[3][: -len(".parquet")]


def index_path(episode_id: str) -> str:
    """Entries are spread over 256 folders so no listing grows unbounded."""
    shard = xxhash.xxh64_hexdigest(episode_id.encode())[:2]
    return f"{INDEX_DIR}/{shard}/{episode_id}.json"


def _canonical_type(typ: pa.DataType) -> pa.DataType:
    """`typ` with list items named as Arrow names them ('item').

    Parquet reads list items back as 'element' and the IPC stream spells the name, so without
    this a stored file would hash differently from the table it was written from.
    """
    if pa.types.is_list(typ):
        return pa.list_(_canonical_type(typ.value_type))
    return typ


def content_hash(table: pa.Table, meta: EpisodeMeta) -> str:
    """A hash of what the episode holds, independent of which round it was filed under.

    Computed over the Arrow IPC stream of the table without placement columns or schema
    metadata (plus the metadata's content fields), with list item names and chunking made
    canonical, so the same steps hash the same however the producer built them and whether
    they come from memory or from the stored file; a mismatch is still confirmed by a full
    comparison before a write is refused (see EpisodeStore.write).
    """
    h = xxhash.xxh3_128()
    h.update(json.dumps(meta.content_dict(), sort_keys=True).encode())
    body = table.drop_columns([c for c in PLACEMENT_COLUMNS if c in table.column_names])
    body = body.replace_schema_metadata(None)
    # Raw frames are most of the bytes: hash their buffers in place instead of copying them
    # into the IPC stream (a third of the store's write overhead when measured).
    raw = [
        name
        for name, typ in zip(body.column_names, body.schema.types, strict=True)
        if pa.types.is_fixed_size_binary(typ) and body.column(name).null_count == 0
    ]
    rest = body.drop_columns(raw)
    rest = rest.cast(
        pa.schema([f.with_type(_canonical_type(f.type)) for f in rest.schema])
    ).combine_chunks()
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, rest.schema) as writer:
        writer.write_table(rest)
    h.update(memoryview(sink.getvalue()))
    for name in raw:
        width = body.schema.field(name).type.byte_width
        h.update(name.encode())
        for chunk in body.column(name).chunks:
            data = chunk.buffers()[1]
            h.update(memoryview(data)[chunk.offset * width : (chunk.offset + len(chunk)) * width])
    return h.hexdigest()
