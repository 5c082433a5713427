"""Unreadable files go to quarantine/ with the reason; `check_store` finds and repairs; files of a
newer schema are refused but left in place."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ramp.platform.episodes import (
    SCHEMA_VERSION,
    EpisodeNotFoundError,
    EpisodeUnreadableError,
    SchemaVersionError,
)
from ramp.platform.episodes.check import check_store
from ramp.platform.episodes.index import index_path
from ramp.platform.episodes.schema import VERSION_KEY


def _truncate(store, eid: str, size: int = 64) -> str:
    rel = store.lookup(eid).path
    with open(store.fs.full(rel), "r+b") as f:
        f.truncate(size)
    return rel


def _restamp(path: Path, version: int) -> None:
    """Rewrite a stored episode file as if a ramp of schema `version` had written it."""
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    metadata[VERSION_KEY] = str(version).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_corrupt_file_is_quarantined_and_the_id_freed(store, make_episode, make_store):
    store.write(make_episode("ok-1"))
    store.write(make_episode("bad-1", round=1, source="robot-3"))
    rel = _truncate(store, "bad-1")

    with pytest.raises(EpisodeUnreadableError, match="quarantine"):
        store.read_episode("bad-1")
    root = Path(store.fs.base)
    assert not (root / rel).exists()
    assert (root / "quarantine" / rel).exists()
    note = json.loads((root / "quarantine" / f"{rel}.reason.json").read_text())
    assert note["original_path"] == rel
    assert "ArrowInvalid" in note["reason"] or "OSError" in note["reason"]
    assert store.quarantined() == [note]

    for view in (store, make_store()):
        assert view.lookup("bad-1") is None
        assert [e.episode_id for e in view.episodes()] == ["ok-1"]
        with pytest.raises(EpisodeNotFoundError):
            view.read_episode("bad-1")
    assert not (root / index_path("bad-1")).exists()

    ep = make_episode("bad-1", round=2)
    assert store.write(ep).status == "written"
    np.testing.assert_array_equal(
        np.array(store.read_episode("bad-1").column("action").to_pylist(), np.float32),
        ep.action,
    )
    assert store.lookup("bad-1").round == 2


def test_corrupt_file_is_skipped_when_iterating(store, make_episode):
    for i in range(3):
        store.write(make_episode(f"it-{i}"))
    _truncate(store, "it-1")
    assert [e.episode_id for e, _ in store.iter_episodes()] == ["it-0", "it-2"]
    assert store.read().num_rows == 12
    assert len(store.quarantined()) == 1
    store.write(make_episode("it-3"))
    _truncate(store, "it-3")
    with pytest.raises(EpisodeUnreadableError):
        list(store.iter_episodes(skip_unreadable=False))


def test_check_store_quarantines_repairs_and_counts(store, make_episode, make_labels, make_store):
    for i in range(4):
        store.write(make_episode(f"ck-{i}", round=i % 2))
    store.write_labels("wm-1", make_labels("ck-0", 6))
    store.write_labels("wm-1", make_labels("ck-1", 6))
    root = Path(store.fs.base)

    bad_rel = _truncate(store, "ck-2")
    (root / index_path("ck-3")).unlink()  # an index entry lost
    (root / "labels/wm=wm-1/ck-1.parquet").write_bytes(b"not parquet")
    (root / "episodes/round=0/stray.txt").write_text("left by someone")

    fresh = make_store()
    assert fresh.lookup("ck-3") is None  # without its entry the id is invisible to lookups
    report = check_store(fresh)
    assert report.episodes_ok == 3
    assert report.labels_ok == 1
    assert report.index_repaired == ["ck-3"]
    quarantined = sorted(p for p, _ in report.quarantined)
    assert quarantined == sorted(
        [bad_rel, "labels/wm=wm-1/ck-1.parquet", "episodes/round=0/stray.txt"]
    )
    assert not report.clean
    assert report.to_json()["episodes_ok"] == 3
    assert "3 episodes ok" in report.format()

    after = make_store()
    assert after.lookup("ck-3") is not None
    assert [e.episode_id for e in after.episodes()] == ["ck-0", "ck-1", "ck-3"]
    assert after.labelled_ids("wm-1") == {"ck-0"}
    assert len(after.quarantined()) == 3
    assert (root / "quarantine" / bad_rel).exists()

    again = check_store(make_store())
    assert again.clean and again.episodes_ok == 3 and again.index_repaired == []


def test_check_store_removes_old_index_entries_without_data(store, make_episode):
    store.write(make_episode("gone"))
    (Path(store.fs.base) / store.lookup("gone").path).unlink()
    young = check_store(store)
    assert young.index_removed == []  # a writer may still be landing its data
    report = check_store(store, stale_after_s=-1)
    assert report.index_removed == ["gone"]
    assert store.index_files() == []


def test_newer_schema_is_refused_and_left_in_place(store, make_episode, make_store):
    store.write(make_episode("future-1"))
    rel = store.lookup("future-1").path
    path = Path(store.fs.full(rel))
    _restamp(path, 99)

    with pytest.raises(SchemaVersionError, match="newer") as info:
        store.read_episode("future-1")
    assert "99" in str(info.value)
    assert path.exists()
    assert store.quarantined() == []
    assert store.lookup("future-1") is not None

    report = check_store(make_store())
    assert report.quarantined == [] and report.clean
    assert len(report.newer_schema) == 1 and rel in report.newer_schema[0]
    assert path.exists()


def test_newer_schema_file_without_an_index_entry(store, make_episode, make_store):
    store.write(make_episode("future-2"))
    store.write(make_episode("today-1"))
    path = Path(store.fs.full(store.lookup("future-2").path))
    _restamp(path, SCHEMA_VERSION + 1)
    (Path(store.fs.base) / index_path("future-2")).unlink()  # e.g. copied in from another store

    fresh = make_store()
    assert [e.episode_id for e in fresh.episodes()] == ["today-1"]
    assert path.exists() and fresh.quarantined() == []


def test_check_store_leaves_a_healthy_store_and_its_labels_alone(
    store, make_episode, make_labels, make_store
):
    store.write(make_episode("h-0", optional=True))
    store.write(make_episode("h-1", embodiment="cart"))
    store.write_labels("wm-1", pa.concat_tables([make_labels("h-0", 6), make_labels("h-1", 6)]))
    root = Path(store.fs.base)
    index_before = {p: (root / p).read_bytes() for p in store.index_files()}

    report = check_store(make_store())
    assert report.clean and report.episodes_ok == 2 and report.labels_ok == 2
    assert report.index_repaired == [] and report.index_removed == []
    assert {p: (root / p).read_bytes() for p in store.index_files()} == index_before
    after = make_store()
    for eid in ("h-0", "h-1"):  # labels still belong to the episodes they were made for
        assert after.read_episode(eid, labels="wm-1").column("value").null_count == 0


def test_quarantining_an_episode_moves_its_labels_along(store, make_episode, make_labels):
    ep = make_episode("q-lab", num_steps=5)
    store.write(ep)
    store.write_labels("wm-a", make_labels("q-lab", 5))
    store.write_labels("wm-b", make_labels("q-lab", 5))
    store.quarantine(store.lookup("q-lab").path, "test: pretend it is corrupt")
    assert "q-lab" not in store.labelled_ids("wm-a")
    assert "q-lab" not in store.labelled_ids("wm-b")
    notes = {n["original_path"]: n["reason"] for n in store.quarantined()}
    assert any("labels/wm=wm-a/q-lab" in p for p in notes)
    assert all("pretend it is corrupt" in r for r in notes.values())


def test_quarantining_the_same_path_twice_keeps_both(store, make_episode):
    for round_ in (0, 0):
        ep = make_episode("q-twice", num_steps=3)
        store.write(ep)
        store.quarantine(store.lookup("q-twice").path, f"pass {round_}")
    assert len(store.quarantined()) == 2
