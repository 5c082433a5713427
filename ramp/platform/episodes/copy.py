"""`ramp data copy SRC DST`: copy a store (episodes, labels, current round) between any two roots.

Why not `aws s3 sync`: the destination keeps the store's guarantees. Every episode goes through
the same validation and id claim as a fresh write, so a copy into a store that already holds
other data never creates a duplicate id, and an interrupted copy resumes by simply running again:
episodes already present (same content) are skipped, nothing is half-written. Files are copied
byte for byte, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ramp.platform.episodes.episode import EpisodeValidationError
from ramp.platform.episodes.index import IndexEntry
from ramp.platform.episodes.labels import label_path
from ramp.platform.episodes.store import EpisodeConflictError, EpisodeStore

Progress = Callable[[int, int], None]  # (episodes done, episodes total)


@dataclass
class CopyReport:
    copied: int = 0
    skipped: int = 0  # already in the destination with the same content
    labels_copied: int = 0
    labels_skipped: int = 0
    bytes_copied: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (episode id, why)

    def format(self) -> str:
        lines = [
            f"episodes: {self.copied} copied, {self.skipped} already there, "
            f"{len(self.failed)} failed; {self.bytes_copied / 2**20:.1f} MiB",
            f"labels: {self.labels_copied} copied, {self.labels_skipped} already there",
        ]
        lines += [f"  failed {eid}: {why}" for eid, why in self.failed]
        return "\n".join(lines)


def copy_store(
    src: EpisodeStore,
    dst: EpisodeStore,
    workers: int = 8,
    progress: Progress | None = None,
    **filters,
) -> CopyReport:
    """Copy every episode matching `filters` (as in `EpisodeStore.episodes`) and its labels."""
    report = CopyReport()
    entries = src.episodes(**filters)
    done = 0

    def one(entry: IndexEntry) -> tuple[str, int, str | None]:
        existing = dst.lookup(entry.episode_id)
        if existing is not None and existing.content_hash == entry.content_hash:
            return "skipped", 0, None
        data = src.fs.read_bytes(entry.path)
        try:
            result = dst.import_file(data)
        except (EpisodeConflictError, EpisodeValidationError) as e:
            return "failed", 0, str(e)
        return ("copied", len(data), None) if result.status == "written" else ("skipped", 0, None)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry, (status, nbytes, why) in zip(entries, pool.map(one, entries), strict=True):
            if status == "copied":
                report.copied += 1
                report.bytes_copied += nbytes
            elif status == "skipped":
                report.skipped += 1
            else:
                report.failed.append((entry.episode_id, why or ""))
            done += 1
            if progress is not None:
                progress(done, len(entries))

        copied_ids = {e.episode_id for e in entries} - {eid for eid, _ in report.failed}
        jobs = []
        for version in src.label_versions():
            have = dst.labelled_ids(version)
            for eid in sorted(src.labelled_ids(version) & copied_ids):
                if eid in have:
                    report.labels_skipped += 1
                else:
                    jobs.append(label_path(version, eid))

        def copy_label(rel: str) -> None:
            dst.fs.write_atomic(rel, src.fs.read_bytes(rel))

        for _ in pool.map(copy_label, jobs):
            report.labels_copied += 1

    if src.current_round() > dst.current_round():
        dst.set_current_round(src.current_round())
    return report
