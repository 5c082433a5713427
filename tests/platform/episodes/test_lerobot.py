"""LeRobot v3 import and export against the committed fixture (no lerobot needed).

The fixture (tests/fixtures/lerobot/tiny) was written by the real lerobot 0.6.1 with
tests/fixtures/lerobot/make_fixture.py; test_lerobot_real.py (slow) writes fresh datasets of another
shape with lerobot and reads ramp's exports back with lerobot's own LeRobotDataset.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import build_episode, open_store, stored_files
from PIL import Image

from ramp.cli import main
from ramp.platform.config import CameraConfig, EmbodimentConfig, StoreConfig
from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.lerobot import (
    LeRobotError,
    camera_name,
    flat_names,
    image_stats,
    sample_indices,
    slug,
)
from ramp.platform.episodes.lerobot_export import ExportOptions, export_lerobot
from ramp.platform.episodes.lerobot_import import ImportOptions, import_lerobot
from ramp.platform.episodes.video import decode_all

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lerobot" / "tiny"
CAMERAS = {"top": (64, 96), "wrist": (64, 64), "side": (64, 80)}
VIDEO_CAMERAS = ("top", "wrist")


def data_rows(root: Path, episode: int) -> dict[str, np.ndarray]:
    """An episode's rows of a LeRobot data parquet, read directly with pyarrow."""
    tables = [pq.read_table(f) for f in sorted((root / "data").glob("*/*.parquet"))]
    table = pa.concat_tables(tables)
    table = table.filter(pa.compute.equal(table.column("episode_index"), episode))
    table = table.sort_by("frame_index")
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_fixed_size_list(col.type):
            out[name] = np.stack([np.asarray(v, np.float32) for v in col.to_pylist()])
        elif name.startswith("observation.images."):
            out[name] = col.to_pylist()
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def episodes_meta(root: Path) -> list[dict]:
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def tasks_of(root: Path) -> dict[int, str]:
    t = pq.read_table(root / "meta/tasks.parquet")
    return dict(zip(t.column("task_index").to_pylist(), t.column("task").to_pylist(), strict=True))


def frames_of(store: EpisodeStore, episode_id: str) -> dict[str, np.ndarray]:
    table = store.read_episode(episode_id)
    meta = store.episode_meta(episode_id)
    return {
        cam: decode_frames(table.column(f"image.{cam}"), c.encoding, c.height, c.width)
        for cam, c in meta.cameras.items()
    }


@pytest.fixture
def imported(tmp_path):
    store = EpisodeStore(str(tmp_path / "store"))
    report = import_lerobot(FIXTURE, store)
    return store, report


def test_fixture_is_small_and_complete():
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size < 400_000
    info = json.loads((FIXTURE / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_tasks"] == 2


def test_import_values_match_the_dataset(imported):
    store, report = imported
    assert (report.written, report.existing, report.frames) == (3, 0, 21)
    assert report.embodiment == "tiny_arm"  # the dataset's robot_type
    tasks = tasks_of(FIXTURE)
    stats = json.loads((FIXTURE / "meta/stats.json").read_text())
    for ep in episodes_meta(FIXTURE):
        i = ep["episode_index"]
        rows = data_rows(FIXTURE, i)
        table = store.read_episode(f"tiny-{i:06d}")
        n = ep["length"]
        assert table.num_rows == n == len(rows["frame_index"])
        np.testing.assert_array_equal(
            np.stack(table.column("state").to_numpy(zero_copy_only=False)),
            rows["observation.state"],
        )
        np.testing.assert_array_equal(
            np.stack(table.column("action").to_numpy(zero_copy_only=False)), rows["action"]
        )
        # float32 timestamps stored as float64 without change
        np.testing.assert_array_equal(
            table.column("timestamp").to_numpy(), rows["timestamp"].astype(np.float64)
        )
        texts = [tasks[int(t)] for t in rows["task_index"]]
        assert table.column("instruction").to_pylist() == texts
        assert set(table.column("task").to_pylist()) == {slug(texts[0])}
        np.testing.assert_array_equal(table.column("reward").to_numpy(), rows["next.reward"])
        success = table.column("success").to_pylist()
        assert success == [False] * (n - 1) + [bool(rows["next.success"][-1])]
        assert table.column("done").to_pylist() == list(rows["next.done"])
        assert not any(table.column("intervention").to_pylist())
        assert set(table.column("policy_version").to_pylist()) == {"human"}
        assert set(table.column("source").to_pylist()) == {"lerobot"}
        assert set(table.column("round").to_pylist()) == {0}
    # the third episode switches task midway: per-step instructions
    third = store.read_episode("tiny-000002").column("instruction").to_pylist()
    assert third[0] == "pick the cube" and third[-1] == "place the cube"
    assert [e.success for e in store.episodes()] == [True, False, True]

    meta = store.episode_meta("tiny-000000")
    assert meta.state_names == ["x", "y", "z"] and meta.action_names == ["vx", "vy"]
    assert {c: (m.height, m.width) for c, m in meta.cameras.items()} == CAMERAS
    assert meta.fps == 10.0
    assert meta.action_low == pytest.approx(stats["action"]["min"], abs=0)
    assert meta.action_high == pytest.approx(stats["action"]["max"], abs=0)


def test_import_frames_are_exactly_the_decoded_video(imported):
    """ramp stores the frames PyAV decodes from the AV1 video (and the PNGs of image features)."""
    store, _ = imported
    decoded = {
        cam: decode_all(FIXTURE / f"videos/observation.images.{cam}/chunk-000/file-000.mp4")
        for cam in VIDEO_CAMERAS
    }
    for ep in episodes_meta(FIXTURE):
        i = ep["episode_index"]
        rows = data_rows(FIXTURE, i)
        stored = frames_of(store, f"tiny-{i:06d}")
        for cam in VIDEO_CAMERAS:
            frames, stamps = decoded[cam]
            wanted = ep[f"videos/observation.images.{cam}/from_timestamp"] + rows["timestamp"]
            idx = np.abs(stamps[None, :] - wanted[:, None]).argmin(axis=1)
            assert np.abs(stamps[idx] - wanted).max() < 1e-4
            np.testing.assert_array_equal(stored[cam], frames[idx])
        pngs = [
            np.asarray(Image.open(io.BytesIO(c["bytes"])).convert("RGB"))
            for c in rows["observation.images.side"]
        ]
        np.testing.assert_array_equal(stored["side"], np.stack(pngs))


def test_reimport_is_a_noop(imported, tmp_path):
    store, _ = imported
    before = {f: (tmp_path / "store" / f).stat().st_mtime_ns for f in stored_files(store.root)}
    again = import_lerobot(FIXTURE, EpisodeStore(store.root))
    assert (again.written, again.existing) == (0, 3)
    after = {f: (tmp_path / "store" / f).stat().st_mtime_ns for f in stored_files(store.root)}
    assert after == before
    other = import_lerobot(FIXTURE, EpisodeStore(store.root), ImportOptions(id_prefix="copy2"))
    assert (other.written, other.first_id) == (3, "copy2-000000")


def test_reimport_after_the_dataset_grew_keeps_the_stored_bounds(tmp_path):
    """A dataset that grew (lerobot's resume) has other stats: its first episodes must still be
    recognised as already imported, not refused as conflicting content."""
    src = _copy_fixture(tmp_path)
    import_lerobot(src, EpisodeStore(str(tmp_path / "store")))
    stats = json.loads((src / "meta/stats.json").read_text())
    stats["action"]["min"] = [-5.0, -5.0]
    (src / "meta/stats.json").write_text(json.dumps(stats))
    again = import_lerobot(src, EpisodeStore(str(tmp_path / "store")))
    assert (again.written, again.existing) == (0, 3)
    assert any("exceed the bounds" in note for note in again.notes)


def test_report_says_what_was_mapped_and_dropped(imported):
    _, report = imported
    assert set(report.dropped) == {"observation.environment_state"}
    assert report.mapped["next.reward"] == "reward"
    assert report.mapped["next.done"].startswith("done")
    assert report.mapped["observation.images.side"] == "image.side"
    assert report.max_frame_offset_s < 1e-4
    text = report.format()
    assert "observation.environment_state: float32 (2,)" in text
    assert "3 written, 0 already there" in text
    assert "tiny_arm:" in text and "state_names: [x, y, z]" in text  # config to declare


def test_import_options(tmp_path):
    src = tmp_path / "no-success"
    shutil.copytree(FIXTURE, src)
    info = json.loads((src / "meta/info.json").read_text())
    del info["features"]["next.success"]  # as if the dataset had no outcome
    (src / "meta/info.json").write_text(json.dumps(info))
    store = EpisodeStore(str(tmp_path / "store"))
    report = import_lerobot(
        src,
        store,
        ImportOptions(
            embodiment="arm-7",
            source="lab-demos",
            policy_version="teleop-v2",
            round=3,
            success=False,
        ),
    )
    assert report.first_id == "no-success-000000"  # prefix: the folder's name
    entries = store.episodes()
    assert {(e.embodiment, e.source, e.round, e.success) for e in entries} == {
        ("arm-7", "lab-demos", 3, False)
    }
    table = store.read_episode("no-success-000001")
    assert set(table.column("policy_version").to_pylist()) == {"teleop-v2"}
    default = import_lerobot(src, EpisodeStore(str(tmp_path / "s2")))
    assert all(e.success for e in EpisodeStore(str(tmp_path / "s2")).episodes())
    assert "next.success" in default.dropped  # still in the data, but not declared: reported


def test_declared_embodiment_must_match(tmp_path):
    declared = EmbodimentConfig(
        cameras={c: CameraConfig(height=h, width=w) for c, (h, w) in CAMERAS.items()},
        state_names=["x", "y", "z"],
        action_names=["vx", "vy"],
        action_low=[-2.0, -2.0],
        action_high=[2.0, 2.0],
        fps=10.0,
    )
    store = EpisodeStore(str(tmp_path / "a"), {"tiny_arm": declared})
    report = import_lerobot(FIXTURE, store)
    assert not report.declared_by_import
    assert store.episode_meta("tiny-000000").action_low == [-2.0, -2.0]  # the config's bounds

    other = declared.model_copy(update={"state_names": ["a", "b", "c"], "fps": 20.0})
    store = EpisodeStore(str(tmp_path / "b"), {"tiny_arm": other})
    with pytest.raises(LeRobotError, match=r"'tiny_arm' \(declared in the config\) does not") as e:
        import_lerobot(FIXTURE, store)
    assert "state_names ['a', 'b', 'c']" in str(e.value) and "fps 20" in str(e.value)
    assert store.episodes() == []


def test_same_name_with_other_dimensions_in_the_store_is_refused(tmp_path):
    open_store(tmp_path / "s").write(build_episode("ep-0"))  # embodiment 'arm' (16x16 cameras)
    with pytest.raises(LeRobotError, match="of episodes already in the store"):
        import_lerobot(FIXTURE, EpisodeStore(str(tmp_path / "s")), ImportOptions(embodiment="arm"))


def _compare_round_trip(a: EpisodeStore, a_id: str, b: EpisodeStore, b_id: str, max_mae: float):
    ta, tb = a.read_episode(a_id), b.read_episode(b_id)
    for col in (
        "state",
        "action",
        "reward",
        "done",
        "success",
        "intervention",
        "instruction",
        "task",
        "policy_version",
        "source",
        "step",
    ):
        assert ta.column(col).to_pylist() == tb.column(col).to_pylist(), col
    ts = ta.column("timestamp").to_numpy()
    np.testing.assert_array_equal(
        tb.column("timestamp").to_numpy(), (ts - ts[0]).astype(np.float32).astype(np.float64)
    )
    fa, fb = frames_of(a, a_id), frames_of(b, b_id)
    assert fa.keys() == fb.keys()
    for cam in fa:
        assert fa[cam].shape == fb[cam].shape
        assert np.abs(fa[cam].astype(int) - fb[cam]).mean() < max_mae, cam
    ma, mb = a.episode_meta(a_id), b.episode_meta(b_id)
    assert (ma.state_names, ma.action_names, ma.fps) == (mb.state_names, mb.action_names, mb.fps)


def test_export_then_import_round_trip(imported, tmp_path):
    store, _ = imported
    dst = tmp_path / "export"
    report = export_lerobot(store, dst)
    assert (report.episodes, report.frames, report.tasks) == (3, 21, 2)
    info = json.loads((dst / "meta/info.json").read_text())
    assert info["fps"] == 10 and info["total_frames"] == 21 and info["robot_type"] == "tiny_arm"
    assert info["features"]["observation.state"]["names"] == ["x", "y", "z"]
    assert info["features"]["observation.images.top"]["shape"] == [64, 96, 3]
    assert info["features"]["observation.images.side"]["dtype"] == "video"
    tasks = pq.read_table(dst / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    stats = json.loads((dst / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [21]
    rows = episodes_meta(dst)
    assert [r["length"] for r in rows] == [6, 8, 7]
    assert json.loads(rows[1]["ramp/episode"])["episode_id"] == "tiny-000001"
    assert rows[2]["tasks"] == ["pick the cube", "place the cube"]
    # the data parquet holds exactly the values of the original dataset
    for i in range(3):
        mine, theirs = data_rows(dst, i), data_rows(FIXTURE, i)
        for key in ("observation.state", "action", "timestamp", "frame_index", "next.reward"):
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)

    back = EpisodeStore(str(tmp_path / "back"))
    again = import_lerobot(dst, back)
    assert again.dropped == {}
    for i in range(3):
        _compare_round_trip(store, f"tiny-{i:06d}", back, f"export-{i:06d}", max_mae=3.0)
    # the export re-encodes: AV1 loss is small almost everywhere (edges of the square excepted)
    for cam in CAMERAS:
        a = frames_of(store, "tiny-000000")[cam].astype(int)
        b = frames_of(back, "export-000000")[cam]
        assert np.percentile(np.abs(a - b), 99) <= 12


def test_export_of_ramp_episodes_keeps_every_field_lerobot_can_hold(tmp_path):
    """Small cameras (16x16, 12x16), per-step policy versions and instructions, interventions,
    rewards and irregular timestamps that do not start at 0 all survive export -> import."""
    store = open_store(tmp_path / "s")
    for i in range(3):
        ep = build_episode(
            f"ep-{i}",
            num_steps=9 + i,
            optional=True,
            success=i != 1,
            policy_version=["policy-r1-abc"] * 4 + ["human"] * (5 + i),
        )
        store.write(ep)
    report = export_lerobot(store, tmp_path / "lr")
    assert set(report.not_exported) == {"subgoal", "progress", "trajectory_2d"}
    assert any("shifted" in n for n in report.notes)
    back = EpisodeStore(str(tmp_path / "back"))
    import_lerobot(tmp_path / "lr", back, ImportOptions(id_prefix="re"))
    for i in range(3):
        _compare_round_trip(store, f"ep-{i}", back, f"re-{i:06d}", max_mae=4.0)
    assert [e.success for e in back.episodes()] == [True, False, True]


def test_export_rolls_files_over_and_import_follows(tmp_path):
    store = open_store(tmp_path / "s")
    for i in range(4):
        store.write(build_episode(f"ep-{i}", num_steps=30))  # the encoder holds ~25 frames back
    tiny = ExportOptions(data_file_mb=1e-6, video_file_mb=1e-6, chunks_size=2)
    report = export_lerobot(store, tmp_path / "lr", options=tiny)
    assert report.data_files == 4 and report.video_files == 8
    rows = episodes_meta(tmp_path / "lr")
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert all(r["videos/observation.images.front/from_timestamp"] == 0.0 for r in rows)
    assert (tmp_path / "lr/videos/observation.images.wrist/chunk-001/file-001.mp4").exists()
    single = export_lerobot(store, tmp_path / "lr1")
    assert single.data_files == 1 and single.video_files == 2
    a, b = EpisodeStore(str(tmp_path / "a")), EpisodeStore(str(tmp_path / "b"))
    import_lerobot(tmp_path / "lr", a, ImportOptions(id_prefix="x"))
    import_lerobot(tmp_path / "lr1", b, ImportOptions(id_prefix="x"))
    for e in a.episodes():
        assert a.read_episode(e.episode_id).equals(b.read_episode(e.episode_id))


def test_export_filters_and_errors(tmp_path):
    store = open_store(tmp_path / "s")
    store.write(build_episode("arm-0", task="pick"))
    store.write(build_episode("arm-1", task="push", source="robot"))
    store.write(build_episode("cart-0", embodiment="cart"))
    with pytest.raises(LeRobotError, match="one embodiment; these episodes have arm, cart"):
        export_lerobot(store, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert export_lerobot(store, tmp_path / "a", embodiment="arm").episodes == 2
    assert export_lerobot(store, tmp_path / "b", embodiment="arm", task="push").episodes == 1
    assert export_lerobot(store, tmp_path / "c", source="sim", embodiment="arm").episodes == 1
    with pytest.raises(LeRobotError, match="exists and is not empty"):
        export_lerobot(store, tmp_path / "a", embodiment="arm")
    with pytest.raises(LeRobotError, match=r"no episodes .* match \{'round': 5\}"):
        export_lerobot(store, tmp_path / "d", round=5)
    (tmp_path / "e").mkdir()  # an empty folder is fine
    assert export_lerobot(store, tmp_path / "e", embodiment="cart").episodes == 1


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    import ramp.platform.episodes.lerobot_export as exp

    store = open_store(tmp_path / "s")
    store.write(build_episode("ep-0"))
    store.write(build_episode("ep-1"))
    calls = []

    def boom(frames):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("disk full")
        return image_stats(frames)

    monkeypatch.setattr(exp, "image_stats", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_lerobot(store, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def _copy_fixture(tmp_path: Path) -> Path:
    src = tmp_path / "broken"
    shutil.copytree(FIXTURE, src)
    return src


def test_import_errors_are_one_clear_message(tmp_path):
    store = EpisodeStore(str(tmp_path / "store"))
    with pytest.raises(LeRobotError, match="is not a folder"):
        import_lerobot(tmp_path / "nope", store)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LeRobotError, match=r"not a LeRobot dataset: meta/info\.json is missing"):
        import_lerobot(tmp_path / "empty", store)

    src = _copy_fixture(tmp_path)
    info = json.loads((src / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (src / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotError, match=r"codebase_version v2\.1 is not supported.*convert"):
        import_lerobot(src, store)

    shutil.rmtree(src)
    src = _copy_fixture(tmp_path)
    (src / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    with pytest.raises(
        LeRobotError,
        match=r"video file videos/observation.images.wrist/chunk-000/file-000.mp4 \(camera "
        r"observation.images.wrist, episode 0\) is missing",
    ):
        import_lerobot(src, store)
    assert store.episodes() == []

    shutil.rmtree(src)
    src = _copy_fixture(tmp_path)
    path = src / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    key = "videos/observation.images.top/from_timestamp"
    shifted = pa.array([v + 0.05 if i == 1 else v for i, v in enumerate(table[key].to_pylist())])
    pq.write_table(table.set_column(table.schema.get_field_index(key), key, shifted), path)
    with pytest.raises(LeRobotError, match=r"episode 1, camera observation.images.top: .*no frame"):
        import_lerobot(src, store)
    assert [e.episode_id for e in store.episodes()] == ["broken-000000"]  # written before


def test_helpers():
    taken: set[str] = set()
    assert camera_name("observation.images.cam_high", taken) == "cam_high"
    assert camera_name("observation.images.Cam-High", taken) == "cam_high_2"
    assert camera_name("observation.image", taken) == "image"
    assert camera_name("observation.images.top.left", taken) == "top_left"
    assert flat_names({"motors": ["a", "b"]}, 2, "state") == (["a", "b"], False)
    assert flat_names(None, 2, "state") == (["state_0", "state_1"], True)
    assert flat_names(["a"], 2, "action") == (["action_0", "action_1"], True)
    assert flat_names(["a", "a", "b"], 3, "s") == (["a", "a_1", "b"], False)
    long = slug("put the red block in the top drawer and close it " * 3)
    assert len(long) <= 64 and long != slug("put the red block in the top drawer and close x " * 3)
    assert slug("Pick up the cube.") == "pick_up_the_cube"


def test_image_stats_match_numpy():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 20, 30, 3), dtype=np.uint8)
    stats = image_stats(frames)
    pixels = frames[sample_indices(7)].reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(stats["mean"].reshape(3), pixels.mean(axis=0))
    np.testing.assert_allclose(stats["std"].reshape(3), pixels.std(axis=0))
    for key, q in (("q01", 0.01), ("q50", 0.5), ("q99", 0.99)):
        np.testing.assert_allclose(stats[key].reshape(3), np.quantile(pixels, q, axis=0))
    assert stats["count"].tolist() == [7]


def test_cli_import_and_export(tmp_path, capsys):
    root, dst = str(tmp_path / "store"), str(tmp_path / "lr")
    assert main(["data", "import-lerobot", str(FIXTURE), root, "--source", "demos"]) == 0
    assert "3 written, 0 already there" in capsys.readouterr().out
    assert main(["data", "import-lerobot", str(FIXTURE), root, "--source", "demos"]) == 0
    assert "0 written, 3 already there" in capsys.readouterr().out
    assert main(["data", "export-lerobot", root, dst, "--source", "demos"]) == 0
    assert "exported 3 episodes (21 frames, 2 tasks)" in capsys.readouterr().out
    assert main(["data", "export-lerobot", root, dst]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ramp: ") and "not empty" in err and err.count("\n") == 1
    assert main(["data", "import-lerobot", str(tmp_path), root]) == 2
    assert "meta/info.json is missing" in capsys.readouterr().err


def test_cli_import_with_a_config(tmp_path, capsys):
    cfg = tmp_path / "ramp.yaml"
    cfg.write_text(
        f"store: {{root: {tmp_path / 'store'}, image_encoding: png}}\n"
        "embodiments:\n  tiny_arm:\n    cameras: {top: {height: 64, width: 96}, "
        "wrist: {height: 64, width: 64}, side: {height: 64, width: 80}}\n"
        "    state_names: [x, y, z]\n    action_names: [vx, vy]\n"
        "    action_low: [-1, -1]\n    action_high: [1, 1]\n    fps: 10\n"
    )
    root = str(tmp_path / "store")
    assert main(["data", "import-lerobot", str(FIXTURE), root, "--config", str(cfg)]) == 0
    assert "(from the config)" in capsys.readouterr().out
    store = EpisodeStore(root, config=StoreConfig(root=root))
    assert store.episode_meta("tiny-000000").cameras["top"].encoding == "png"  # store settings
