"""`ramp data validate`: read every file in a store, quarantine what is bad, repair the index.

Why a separate pass: the writer guarantees what it writes, but stores also receive files by copy,
outlive bugs and suffer disks; this pass re-checks every file against its own declared schema
and content hash, so a bad file is found by a command rather than in the middle of training.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from ramp.platform.episodes.episode import EpisodeValidationError
from ramp.platform.episodes.index import (
    EPISODES_DIR,
    INDEX_DIR,
    IndexEntry,
    content_hash,
    index_path,
    parse_episode_path,
)
from ramp.platform.episodes.labels import LABELS_DIR, LabelError, read_label_meta
from ramp.platform.episodes.schema import SchemaVersionError
from ramp.platform.episodes.store import EpisodeStore, EpisodeUnreadableError
from ramp.platform.episodes.validate import validate_table


@dataclass
class CheckReport:
    episodes_ok: int = 0
    labels_ok: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    index_repaired: list[str] = field(default_factory=list)
    index_removed: list[str] = field(default_factory=list)
    temporaries_removed: int = 0
    newer_schema: list[str] = field(default_factory=list)
    hash_mismatch: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.quarantined

    def to_json(self) -> dict:
        return {
            "episodes_ok": self.episodes_ok,
            "labels_ok": self.labels_ok,
            "quarantined": [{"path": p, "reason": r} for p, r in self.quarantined],
            "index_repaired": self.index_repaired,
            "index_removed": self.index_removed,
            "temporaries_removed": self.temporaries_removed,
            "newer_schema": self.newer_schema,
            "hash_mismatch": self.hash_mismatch,
        }

    def format(self) -> str:
        lines = [
            f"{self.episodes_ok} episodes ok, {self.labels_ok} label files ok, "
            f"{len(self.quarantined)} quarantined"
        ]
        lines += [f"  quarantined {p}: {r}" for p, r in self.quarantined]
        if self.index_repaired:
            lines.append(f"index: {len(self.index_repaired)} entries rebuilt from their files")
        if self.index_removed:
            lines.append(f"index: {len(self.index_removed)} entries without data removed")
        if self.temporaries_removed:
            lines.append(f"{self.temporaries_removed} temporaries of killed writers removed")
        if self.hash_mismatch:
            lines.append(
                f"{len(self.hash_mismatch)} episodes hash differently from their index entry "
                "(kept: labels are keyed to it), e.g. " + self.hash_mismatch[0]
            )
        if self.newer_schema:
            lines.append(f"{len(self.newer_schema)} files need a newer ramp (left in place)")
        return "\n".join(lines)


def _age_s(written_at: str) -> float:
    try:
        then = _dt.datetime.fromisoformat(written_at)
    except ValueError:
        return float("inf")
    return (_dt.datetime.now(_dt.UTC) - then).total_seconds()


def check_store(store: EpisodeStore, stale_after_s: float = 3600.0) -> CheckReport:
    """Validate every episode and label file; quarantine bad ones; make the index match."""
    report = CheckReport()
    fs = store.fs
    seen: dict[str, str] = {}
    for rel in fs.list_files(EPISODES_DIR):
        parsed = parse_episode_path(rel)
        if parsed is None:
            store.quarantine(
                rel, "not an episode file (expected episodes/round=R/source=S/ID.parquet)"
            )
            report.quarantined.append((rel, "unexpected file"))
            continue
        round_, source, eid = parsed
        try:
            table = store._read_file(rel, None)
            meta = validate_table(table, None)
            if (meta.round, meta.source, meta.episode_id) != (round_, source, eid):
                raise EpisodeValidationError(
                    eid,
                    "(path)",
                    f"file says round={meta.round} source={meta.source} "
                    f"id={meta.episode_id}, its path says otherwise",
                )
            if eid in seen:
                raise EpisodeValidationError(eid, "episode_id", f"duplicate of {seen[eid]}")
        except SchemaVersionError as e:
            report.newer_schema.append(f"{rel}: {e}")
            continue
        except EpisodeUnreadableError as e:
            report.quarantined.append((rel, str(e.__cause__ or e)))
            continue
        except EpisodeValidationError as e:
            store.quarantine(rel, str(e))
            report.quarantined.append((rel, str(e)))
            continue
        seen[eid] = rel
        digest = content_hash(table, meta)
        entry = store._read_entry(eid)
        if entry is not None and entry.path == rel and entry.content_hash != digest:
            # Same file, another hash: the hash function changed (a pyarrow upgrade can do that)
            # or the bytes did. Keep the entry, because label sidecars are keyed to its hash and
            # rewriting it would make every label stale; writes still confirm by comparison.
            report.hash_mismatch.append(eid)
        if entry is None or entry.path != rel:
            fresh = IndexEntry.from_meta(meta, rel, digest, fs.size(rel))
            fs.write_atomic(index_path(eid), fresh.model_dump_json().encode())
            store._entries[eid] = fresh
            report.index_repaired.append(eid)
        report.episodes_ok += 1

    for rel in fs.list_files(INDEX_DIR):
        eid = rel.rsplit("/", 1)[1].removesuffix(".json")
        if eid not in seen:
            entry = store._read_entry(eid)
            if entry is not None and _age_s(entry.written_at) < stale_after_s:
                continue  # a writer may be between claiming the id and landing its data
            if entry is None or not fs.exists(entry.path):
                fs.delete(rel)
                store._entries.pop(eid, None)
                report.index_removed.append(eid)

    for rel in fs.list_files(LABELS_DIR):
        try:
            read_label_meta(pq.read_table(fs.full(rel), filesystem=fs.fs))
            report.labels_ok += 1
        except (OSError, ValueError, LabelError) as e:
            reason = f"{type(e).__name__}: {e}"
            store.quarantine(rel, reason)
            report.quarantined.append((rel, reason))
    report.temporaries_removed = fs.remove_stale_temporaries("", stale_after_s)
    return report
