"""The episode store: immutable per-episode Parquet files under one root (a path or s3://...).

Guarantees (ARCHITECTURE.md, "Storage layout"):
- A write is all or nothing: a killed writer never leaves a visible partial episode.
- Episode ids are unique across the whole store. Writing an id that exists anywhere with the
  same content is a no-op; with different content it is refused.
- Files that cannot be read are moved to quarantine/ with the reason, never silently skipped.

Write protocol: validate -> hash -> claim the id in the index (create-if-absent) -> write the data
file atomically. The index entry is written first so a retry after a crash finds the claim; an
entry whose data file never landed is stale and the next write of that id takes it over.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import numbers
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ramp.platform.config import EmbodimentConfig, RampConfig, StoreConfig
from ramp.platform.episodes.episode import Episode, EpisodeValidationError, episode_to_table
from ramp.platform.episodes.fs import StoreFS, StoreUnavailableError
from ramp.platform.episodes.index import (
    EPISODES_DIR,
    INDEX_DIR,
    IndexEntry,
    content_hash,
    episode_path,
    index_path,
    parse_episode_path,
)
from ramp.platform.episodes.labels import (
    LABELS_DIR,
    LabelError,
    check_wm_version,
    label_columns,
    label_path,
    prepare_label_table,
    read_label_meta,
)
from ramp.platform.episodes.schema import (
    IMAGE_PREFIX,
    OPTIONAL_COLUMNS,
    PLACEMENT_COLUMNS,
    SCHEMA_VERSION,
    EpisodeMeta,
    SchemaVersionError,
    decode_metadata,
    upgrade,
)
from ramp.platform.episodes.validate import check_episode_id, validate_table

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
CURRENT_ROUND = "rounds/current"


class EpisodeConflictError(ValueError):
    """An episode id that already exists in the store with different content."""


class EpisodeNotFoundError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class EpisodeUnreadableError(OSError):
    """A stored file that could not be read; it has been moved to quarantine/."""


@dataclass(frozen=True)
class WriteResult:
    episode_id: str
    path: str
    status: Literal["written", "exists"]
    content_hash: str


Filter = Any  # a value, or a collection of accepted values


def _accepts(value: Any, wanted: Filter) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str | bytes | numbers.Number):  # numpy scalars included
        return value == wanted
    return value in set(wanted)


def parquet_options(table: pa.Table, config: StoreConfig) -> dict[str, Any]:
    """Writer settings for an episode file: one row group, no dictionary or min/max statistics
    on frame columns (both cost time on megabytes of pixels and help no reader)."""
    plain = [c for c in table.column_names if not c.startswith(IMAGE_PREFIX)]
    return {
        "compression": config.compression,
        "compression_level": config.compression_level if config.compression == "zstd" else None,
        "use_dictionary": [c for c in plain if pa.types.is_string(table.schema.field(c).type)],
        "write_statistics": plain,
    }


@dataclass
class EpisodeStore:
    """Read and write episodes and their labels under one root."""

    root: str
    embodiments: Mapping[str, EmbodimentConfig] = field(default_factory=dict)
    config: StoreConfig = field(default_factory=StoreConfig)
    filesystem: Any = None  # a pyarrow FileSystem, for roots that need explicit options

    def __post_init__(self) -> None:
        self.fs = StoreFS.from_root(self.root, self.filesystem, self.config.s3)
        self._entries: dict[str, IndexEntry] = {}
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, cfg: RampConfig, root: str | None = None) -> EpisodeStore:
        return cls(root or cfg.store.root, dict(cfg.embodiments), cfg.store)

    # ------------------------------------------------------------------------------ writing

    def to_table(self, episode: Episode) -> pa.Table:
        spec = self.embodiments.get(episode.embodiment)
        if spec is None:
            declared = ", ".join(sorted(self.embodiments)) or "none"
            raise EpisodeValidationError(
                episode.episode_id,
                "embodiment",
                f"embodiment {episode.embodiment!r} has no declared dimensions (declare it under "
                f"`embodiments:` in the config; declared: {declared})",
            )
        check_episode_id(episode.episode_id)
        return episode_to_table(episode, spec, self.config.image_encoding, self.config.jpeg_quality)

    def _serialize(self, table: pa.Table, sink: Any) -> None:
        """Parquet bytes of an episode into `sink` (a path or a stream)."""
        pq.write_table(table, sink, **parquet_options(table, self.config))

    def write(self, episode: Episode | pa.Table) -> WriteResult:
        """Validate and store one episode; idempotent by episode id (see module docstring)."""
        table = self.to_table(episode) if isinstance(episode, Episode) else episode
        meta = validate_table(table, self.embodiments)
        return self._commit(table, meta, lambda sink: self._serialize(table, sink))

    def import_file(self, data: bytes) -> WriteResult:
        """Store an episode file from another store byte for byte (no re-encoding), with the
        same checks and the same idempotency as `write`. Validated against the dimensions the
        file declares, so copying needs no config."""
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (OSError, pa.ArrowInvalid) as e:
            raise EpisodeValidationError("?", "(file)", f"not a readable Parquet file: {e}") from e
        meta = validate_table(table, None)

        def produce(sink: Any) -> None:
            if isinstance(sink, str):
                with open(sink, "wb") as f:
                    f.write(data)
            else:
                sink.write(data)

        return self._commit(table, meta, produce)

    def _commit(self, table: pa.Table, meta: EpisodeMeta, produce: Any) -> WriteResult:
        """Claim the id, then land the data (see the module docstring for the protocol)."""
        digest = content_hash(table, meta)
        rel = episode_path(meta.round, meta.source, meta.episode_id)
        entry = IndexEntry.from_meta(meta, rel, digest, 0)
        claim = entry.model_dump_json().encode()

        for _ in range(3):
            if self.fs.is_local:
                state, existing = self._claim_state(meta.episode_id)
                data_there = state != "present" and self.fs.exists(rel)
            else:
                # Two independent round trips to the server: ask both at once.
                claim_f = self._pool().submit(self._claim_state, meta.episode_id)
                data_f = self._pool().submit(self.fs.exists, rel)
                (state, existing), data_there = claim_f.result(), data_f.result()
            if state == "present":
                assert existing is not None
                if existing.content_hash == digest or self._same_content(existing, table):
                    return WriteResult(
                        meta.episode_id, existing.path, "exists", existing.content_hash
                    )
                raise EpisodeConflictError(
                    f"episode {meta.episode_id!r} already exists at {existing.path} with different "
                    "content; episode ids must be globally unique (make a new id for new data)"
                )
            if data_there and self._index_unindexed(rel, meta.episode_id):
                continue  # a data file without its index entry is there now: compare with it
            if state == "stale":
                # A writer died between claiming the id and landing the data: take over.
                self.fs.write_atomic(index_path(meta.episode_id), claim)
                break
            if self.fs.create_exclusive(index_path(meta.episode_id), claim, known_absent=True):
                break
        else:  # pragma: no cover - needs three lost races in a row
            raise EpisodeConflictError(
                f"episode {meta.episode_id!r}: concurrent writers keep racing"
            )

        size = self.fs.write_atomic_with(rel, produce)
        entry = entry.model_copy(update={"bytes": size})
        self._entries[meta.episode_id] = entry
        return WriteResult(meta.episode_id, rel, "written", digest)

    def _pool(self) -> ThreadPoolExecutor:
        """A few threads for overlapping independent requests to a remote store."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ramp-store")
        return self._executor

    def _index_unindexed(self, rel: str, episode_id: str) -> bool:
        """Index a data file found where a write would land but absent from the index (copied in,
        or its entry lost), so the write compares with it instead of replacing it. False when the
        file was bad and went to quarantine (the path is free)."""
        try:
            found = self._entry_from_file(rel)
        except EpisodeUnreadableError:
            return False  # already quarantined by the read
        except EpisodeValidationError as e:
            self.quarantine(rel, str(e))
            return False
        self.fs.write_atomic(index_path(episode_id), found.model_dump_json().encode())
        self._entries[episode_id] = found
        return True

    def _same_content(self, existing: IndexEntry, table: pa.Table) -> bool:
        """Full comparison, used only when hashes differ (e.g. a producer chunked differently)."""
        try:
            stored = self._read_file(existing.path, None)
        except EpisodeUnreadableError:
            return False
        drop = [c for c in PLACEMENT_COLUMNS if c in table.column_names]
        a = stored.drop_columns(drop).replace_schema_metadata(None)
        b = table.drop_columns(drop).replace_schema_metadata(None)
        try:
            ma, mb = decode_metadata(stored.schema.metadata), decode_metadata(table.schema.metadata)
        except SchemaVersionError:
            return False
        same_meta = {k: v for k, v in ma[1].items() if k not in PLACEMENT_COLUMNS} == {
            k: v for k, v in mb[1].items() if k not in PLACEMENT_COLUMNS
        }
        return same_meta and a.equals(b)

    # ------------------------------------------------------------------------------ index

    def _read_entry(self, episode_id: str) -> IndexEntry | None:
        text = self.fs.read_text(index_path(episode_id))
        if text is None:
            return None
        try:
            return IndexEntry.model_validate_json(text)
        except ValueError:
            log.warning("index entry for %s is unreadable; ignoring it", episode_id)
            return None

    def _claim_state(
        self, episode_id: str
    ) -> tuple[Literal["absent", "stale", "present"], IndexEntry | None]:
        """Whether an id is free, claimed by a writer whose data never landed, or stored."""
        cached = self._entries.get(episode_id)
        if cached is not None and self.fs.exists(cached.path):
            return "present", cached
        text = self.fs.read_text(index_path(episode_id))
        if text is None:
            return "absent", None
        try:
            entry = IndexEntry.model_validate_json(text)
        except ValueError:
            return "stale", None  # an unreadable claim: nobody's data can depend on it
        if not self.fs.exists(entry.path):
            return "stale", entry
        self._entries[episode_id] = entry
        return "present", entry

    def lookup(self, episode_id: str) -> IndexEntry | None:
        """Where an episode lives, or None. Entries whose data never landed count as absent."""
        cached = self._entries.get(episode_id)
        if cached is not None:
            return cached
        entry = self._read_entry(episode_id)
        if entry is None or not self.fs.exists(entry.path):
            return None
        self._entries[episode_id] = entry
        return entry

    def _entry_from_file(self, rel: str) -> IndexEntry:
        """Rebuild an index entry from a data file's own metadata (for files without one)."""
        table = self._read_file(rel, None)
        meta = validate_table(table, None)
        return IndexEntry.from_meta(meta, rel, content_hash(table, meta), self.fs.size(rel))

    def episodes(
        self,
        *,
        round: Filter = None,
        source: Filter = None,
        task: Filter = None,
        embodiment: Filter = None,
        success: bool | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[IndexEntry]:
        """Episodes matching every given filter (a value or a collection of values), by id."""
        wanted_ids = set(ids) if ids is not None else None
        prefixes = [EPISODES_DIR]
        if isinstance(round, numbers.Integral) and not isinstance(round, bool):
            prefixes = [f"{EPISODES_DIR}/round={int(round)}"]
        out = []
        for prefix in prefixes:
            for rel, size in sorted(self.fs.list_sizes(prefix).items()):
                parsed = parse_episode_path(rel)
                if parsed is None:
                    continue
                r, src, eid = parsed
                if not (_accepts(r, round) and _accepts(src, source)):
                    continue
                if wanted_ids is not None and eid not in wanted_ids:
                    continue
                entry = self._entries.get(eid) or self._read_entry(eid)
                if entry is None or entry.path != rel:
                    try:
                        entry = self._entry_from_file(rel)
                    except (
                        EpisodeUnreadableError,
                        EpisodeValidationError,
                        SchemaVersionError,  # written by a newer ramp: left in place
                    ) as e:
                        log.warning("skipping %s: %s", rel, e)
                        continue
                if entry.bytes != size:
                    entry = entry.model_copy(update={"bytes": size})
                self._entries[eid] = entry
                if (
                    _accepts(entry.task, task)
                    and _accepts(entry.embodiment, embodiment)
                    and (success is None or entry.success == success)
                ):
                    out.append(entry)
        return sorted(out, key=lambda e: e.episode_id)

    # ------------------------------------------------------------------------------ reading

    def _read_file(self, rel: str, columns: list[str] | None) -> pa.Table:
        try:
            if columns is None and not self.fs.is_local:
                # One GET of the whole object instead of a HEAD plus ranged GETs: whole-episode
                # reads on S3 cost one round trip. Transport errors surface from read_bytes as
                # StoreUnavailableError, parse errors from the buffer below.
                table = pq.read_table(pa.BufferReader(self.fs.read_bytes(rel)))
            elif columns is None:
                table = pq.read_table(self.fs.full(rel), filesystem=self.fs.fs)
            else:
                table = self._read_columns(rel, columns)
            if self.config.verify_on_read:
                version, raw = decode_metadata(table.schema.metadata)
                if version < SCHEMA_VERSION:
                    _, table = upgrade(version, raw, table)
        except FileNotFoundError:
            raise EpisodeNotFoundError(f"{rel} does not exist") from None
        except StoreUnavailableError:
            raise
        except (OSError, pa.ArrowInvalid, SchemaVersionError, ValueError) as e:
            if isinstance(e, SchemaVersionError) and "newer than" in str(e):
                raise  # a newer ramp wrote it: not corrupt, do not quarantine
            # An OSError is corruption (pyarrow's decompressors raise it) only if the file is
            # plainly there and the error is no system I/O error; an unreachable server or a
            # permission problem must never send healthy files to quarantine.
            if (
                isinstance(e, OSError)
                and not isinstance(e, pa.ArrowException)
                and (e.errno is not None or not self.fs.exists(rel))
            ):
                raise
            reason = f"{type(e).__name__}: {e}"
            self.quarantine(rel, reason)
            raise EpisodeUnreadableError(
                f"{rel} is unreadable ({reason}); moved to quarantine/"
            ) from e
        return table

    def _read_columns(self, rel: str, columns: list[str]) -> pa.Table:
        """Only `columns`, in that order. A column this file lacks (an optional column it never
        had, another embodiment's camera) comes back all null: asking for it is no sign of a
        corrupt file, and readers of many episodes get one column set."""
        with self.fs.fs.open_input_file(self.fs.full(rel)) as f:
            parquet = pq.ParquetFile(f)
            names = set(parquet.schema_arrow.names)
            table = parquet.read(columns=[c for c in columns if c in names])
            num_rows = parquet.metadata.num_rows
        for i, name in enumerate(columns):
            if name not in names:
                typ = OPTIONAL_COLUMNS.get(name, pa.null())
                table = table.add_column(i, pa.field(name, typ), pa.nulls(num_rows, typ))
        return table

    def read_episode(
        self, episode_id: str, columns: list[str] | None = None, labels: str | None = None
    ) -> pa.Table:
        """One episode's steps (optionally only `columns`), joined with `labels` when named."""
        # No existence check before the read: the read itself says whether the data is there
        # (one request fewer per episode on S3).
        entry = self._entries.get(episode_id) or self._read_entry(episode_id)
        missing = EpisodeNotFoundError(f"episode {episode_id!r} is not in the store {self.root}")
        if entry is None:
            raise missing
        try:
            table = self._read_file(entry.path, columns)
        except EpisodeNotFoundError:
            self._entries.pop(episode_id, None)
            raise missing from None
        self._entries[episode_id] = entry
        if labels is not None:
            table = self._join_labels(table, entry, labels)
        return table

    def iter_episodes(
        self,
        entries: Iterable[IndexEntry] | None = None,
        columns: list[str] | None = None,
        labels: str | None = None,
        skip_unreadable: bool = True,
    ) -> Iterator[tuple[IndexEntry, pa.Table]]:
        """(entry, table) per episode; unreadable files are quarantined and skipped (logged)."""
        for entry in self.episodes() if entries is None else entries:
            try:
                table = self._read_file(entry.path, columns)
            except EpisodeUnreadableError as e:
                if not skip_unreadable:
                    raise
                log.warning("%s", e)
                continue
            if labels is not None:
                table = self._join_labels(table, entry, labels)
            yield entry, table

    def read(
        self,
        columns: list[str] | None = None,
        labels: str | None = None,
        **filters: Any,
    ) -> pa.Table:
        """All matching episodes as one table (columns missing in some embodiments become null)."""
        tables = [t for _, t in self.iter_episodes(self.episodes(**filters), columns, labels)]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="default")

    # ------------------------------------------------------------------------------ labels

    def write_labels(self, wm_version: str, table: pa.Table) -> list[str]:
        """Store labels of a world-model version for one or more episodes; returns their ids.

        Every episode's labels are checked before any is written, so a bad batch writes nothing.
        """
        check_wm_version(wm_version)
        if "episode_id" not in table.column_names:
            raise LabelError("labels need an 'episode_id' column")
        import pyarrow.compute as pc

        prepared = []
        for eid in pc.unique(table.column("episode_id")).to_pylist():
            entry = self.lookup(eid)
            if entry is None:
                raise LabelError(f"labels for {eid!r}: no such episode in the store")
            part = table.filter(pc.equal(table.column("episode_id"), eid))
            prepared.append(
                (
                    eid,
                    prepare_label_table(part, wm_version, eid, entry.num_steps, entry.content_hash),
                )
            )
        for eid, part in prepared:
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression="zstd")
            self.fs.write_atomic(label_path(wm_version, eid), sink.getvalue())
        return [eid for eid, _ in prepared]

    def labelled_ids(self, wm_version: str) -> set[str]:
        """Episodes that have labels of this world-model version (stale ones included)."""
        check_wm_version(wm_version)
        prefix = f"{LABELS_DIR}/wm={wm_version}"
        return {rel.rsplit("/", 1)[1][: -len(".parquet")] for rel in self.fs.list_files(prefix)}

    def label_versions(self) -> list[str]:
        rels = self.fs.list_files(LABELS_DIR)
        return sorted({r.split("/")[1][len("wm=") :] for r in rels if r.count("/") == 2})

    def read_labels(self, wm_version: str, episode_id: str) -> pa.Table:
        check_wm_version(wm_version)
        rel = label_path(wm_version, episode_id)
        try:
            table = pq.read_table(self.fs.full(rel), filesystem=self.fs.fs)
        except FileNotFoundError:
            raise LabelError(
                f"episode {episode_id!r} has no labels of world model {wm_version!r} "
                "(run `ramp label` with that version first)"
            ) from None
        except (OSError, pa.ArrowInvalid) as e:
            self.quarantine(rel, f"{type(e).__name__}: {e}")
            raise LabelError(f"labels {rel} are unreadable; moved to quarantine/") from e
        read_label_meta(table)
        return table

    def _join_labels(self, table: pa.Table, entry: IndexEntry, wm_version: str) -> pa.Table:
        labels = self.read_labels(wm_version, entry.episode_id)
        meta = read_label_meta(labels)
        if meta.get("episode_hash") != entry.content_hash:
            raise LabelError(
                f"labels of {entry.episode_id!r} by {wm_version!r} were made for other content "
                "(the episode was replaced); relabel it"
            )
        if "step" in table.column_names:
            steps = table.column("step").to_numpy()
            labels = labels.take(pa.array(steps))
        elif table.num_rows != labels.num_rows:
            raise LabelError("cannot join labels without the 'step' column on a partial read")
        for name in label_columns(labels):
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(labels.schema.field(name), labels.column(name))
        return table

    # ------------------------------------------------------------------------------ upkeep

    def quarantine(self, rel: str, reason: str) -> str:
        """Move a bad file out of the way, with a JSON note of why; returns its new path."""
        dst = f"{QUARANTINE_DIR}/{rel}"
        if self.fs.exists(dst):  # keep earlier quarantined copies and their reasons
            stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            dst = f"{dst}.{stamp}"
        try:
            self.fs.move(rel, dst)
        except FileNotFoundError:
            return dst
        note = {
            "original_path": rel,
            "reason": reason,
            "quarantined_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        self.fs.write_atomic(f"{dst}.reason.json", json.dumps(note, indent=2).encode())
        parsed = parse_episode_path(rel)
        if parsed is not None:
            eid = parsed[2]
            entry = self._read_entry(eid)
            if entry is not None and entry.path == rel:
                self.fs.delete(index_path(eid))
            self._entries.pop(eid, None)
            # Its labels describe content that is no longer in the store: move them along, so
            # a re-upload of the id is relabelled instead of counted as already labelled.
            for version in self.label_versions():
                label_rel = label_path(version, eid)
                if self.fs.exists(label_rel):
                    self.quarantine(label_rel, f"its episode was quarantined: {reason}")
        log.warning("quarantined %s: %s", rel, reason)
        return dst

    def quarantined(self) -> list[dict[str, Any]]:
        """The notes of every quarantined file."""
        out = []
        for rel in self.fs.list_files(QUARANTINE_DIR):
            if rel.endswith(".reason.json"):
                text = self.fs.read_text(rel)
                if text:
                    out.append(json.loads(text))
        return out

    def current_round(self) -> int:
        """The round that new uploads belong to (0 before any round ran)."""
        text = self.fs.read_text(CURRENT_ROUND)
        return int(text.strip()) if text and text.strip() else 0

    def set_current_round(self, round_: int) -> None:
        if round_ < 0:
            raise ValueError(f"round must be >= 0, got {round_}")
        self.fs.write_atomic(CURRENT_ROUND, f"{round_}\n".encode())

    def index_files(self) -> list[str]:
        return self.fs.list_files(INDEX_DIR)

    def episode_meta(self, episode_id: str) -> EpisodeMeta:
        """The file-level metadata (cameras, dimensions, fps, bounds) of a stored episode."""
        entry = self.lookup(episode_id)
        if entry is None:
            raise EpisodeNotFoundError(f"episode {episode_id!r} is not in the store {self.root}")
        schema = pq.read_schema(self.fs.full(entry.path), filesystem=self.fs.fs)
        version, raw = decode_metadata(schema.metadata)
        meta, _ = upgrade(version, raw, None)
        return meta
