"""Export store episodes as a LeRobot v3 dataset (`ramp data export-lerobot ROOT DST`).

Written with pyarrow and PyAV only, in the layout lerobot 0.6.1 writes and reads:
meta/info.json, meta/tasks.parquet, meta/episodes/chunk-*/file-*.parquet (per-episode rows with
statistics), meta/stats.json, data/chunk-*/file-*.parquet (one row group per episode) and one AV1
MP4 per camera per file with the episodes back to back. Files roll over to the next file index
at episode boundaries past `data_file_mb` / `video_file_mb`, like lerobot's writer.

The dataset is built in a temporary sibling folder and renamed into place at the end, so a
failed export leaves nothing behind. Episodes are exported in episode-id order.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.lerobot import (
    ACTION,
    CAMERA_PREFIX,
    CODEBASE_VERSION,
    DATA_PATH,
    DONE,
    EPISODES_PATH,
    INFO_PATH,
    INTERVENTION,
    POLICY_VERSION,
    RAMP_EPISODE,
    REWARD,
    STATE,
    STATS_PATH,
    SUCCESS,
    TASKS_PATH,
    VIDEO_PATH,
    LeRobotError,
    aggregate_stats,
    image_stats,
    vector_stats,
)
from ramp.platform.episodes.schema import EpisodeMeta, camera_column
from ramp.platform.episodes.validate import read_meta
from ramp.platform.episodes.video import AV1Writer, VideoError

MB = 1024 * 1024


@dataclass
class ExportOptions:
    crf: int = 30
    preset: int = 12  # lerobot's default; lower compresses better and encodes slower
    gop: int = 2
    data_file_mb: float = 100.0
    video_file_mb: float = 200.0
    chunks_size: int = 1000


@dataclass
class ExportReport:
    dst: str
    embodiment: str
    episodes: int = 0
    frames: int = 0
    tasks: int = 0
    cameras: dict[str, str] = field(default_factory=dict)  # ramp camera -> LeRobot key
    data_files: int = 0
    video_files: int = 0
    not_exported: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [
            f"exported {self.episodes} episodes ({self.frames} frames, {self.tasks} tasks) of "
            f"embodiment {self.embodiment!r} to {self.dst} (LeRobot {CODEBASE_VERSION})",
            "  cameras: " + ", ".join(f"{c} -> {k} (AV1)" for c, k in self.cameras.items()),
            f"  files: {self.data_files} data, {self.video_files} video",
            f"  ramp columns kept as features: {REWARD}, {DONE}, {SUCCESS}, {INTERVENTION}, "
            f"{POLICY_VERSION}; task, source, id in meta/episodes {RAMP_EPISODE}",
        ]
        if self.not_exported:
            lines.append("  not exported (no LeRobot feature):")
            lines += [f"    {k}: {v}" for k, v in sorted(self.not_exported.items())]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _spec_key(meta: EpisodeMeta) -> tuple:
    cams = tuple((c, m.height, m.width) for c, m in sorted(meta.cameras.items()))
    return cams, tuple(meta.state_names), tuple(meta.action_names), round(meta.fps, 9)


def _fixed_list(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    d = values.shape[1]
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, d)


def _next_index(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    file += 1
    if file >= chunks_size:
        return chunk + 1, 0
    return chunk, file


class _DataWriter:
    """data/chunk-*/file-*.parquet, one row group per episode, rolling over by size."""

    def __init__(self, root: Path, schema: pa.Schema, opts: ExportOptions):
        self.root, self.schema, self.opts = root, schema, opts
        self.chunk, self.file = 0, 0
        self.files = 0
        self._sink: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> tuple[int, int]:
        if self._writer is not None and self._sink.tell() >= self.opts.data_file_mb * MB:
            self.close()
            self.chunk, self.file = _next_index(self.chunk, self.file, self.opts.chunks_size)
        if self._writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = pa.OSFile(str(path), "wb")
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="snappy")
            self.files += 1
        self._writer.write_table(table.cast(self.schema))
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None


class _VideoFiles:
    """One camera's MP4 files: episodes back to back, a new file past the size limit."""

    def __init__(self, root: Path, key: str, fps: float, h: int, w: int, opts: ExportOptions):
        self.root, self.key, self.fps, self.h, self.w, self.opts = root, key, fps, h, w, opts
        self.chunk, self.file = 0, 0
        self.files = 0
        self.writer: AV1Writer | None = None

    def write_episode(
        self, frames: np.ndarray, rel_ts: np.ndarray
    ) -> tuple[int, int, float, float]:
        """(chunk, file, from_timestamp, to_timestamp) of the episode in its file."""
        if self.writer is not None and self.writer.size_bytes() >= self.opts.video_file_mb * MB:
            self.writer.close()
            self.writer = None
            self.chunk, self.file = _next_index(self.chunk, self.file, self.opts.chunks_size)
        if self.writer is None:
            path = self.root / VIDEO_PATH.format(
                video_key=self.key, chunk_index=self.chunk, file_index=self.file
            )
            try:
                self.writer = AV1Writer(
                    path,
                    self.fps,
                    self.h,
                    self.w,
                    crf=self.opts.crf,
                    gop=self.opts.gop,
                    preset=self.opts.preset,
                )
            except (VideoError, ValueError) as e:
                raise LeRobotError(f"camera {self.key}: {e}") from None
            self.files += 1
        start = self.writer.end_time
        # LeRobot looks frame t up at from_timestamp + timestamp[t] (float32): place it there.
        for frame, t in zip(frames, rel_ts, strict=True):
            self.writer.add(frame, start + float(t))
        return self.chunk, self.file, start, self.writer.end_time

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tasks_table(tasks: dict[str, int]) -> pa.Table:
    """meta/tasks.parquet as lerobot writes it: pandas metadata makes `task` the index."""
    table = pa.table(
        {
            "task_index": pa.array(list(tasks.values()), pa.int64()),
            "task": pa.array(list(tasks.keys()), pa.string()),
        }
    )
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _json_stats(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def export_lerobot(
    store,
    dst: str | Path,
    *,
    round: Any = None,
    source: Any = None,
    task: Any = None,
    embodiment: Any = None,
    options: ExportOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the matching episodes of `store` (one embodiment) as a LeRobot v3 dataset at `dst`."""
    opts = options or ExportOptions()
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise LeRobotError(f"{dst} exists and is not empty; export into a new folder")
    entries = store.episodes(round=round, source=source, task=task, embodiment=embodiment)
    if not entries:
        filters = {
            k: v
            for k, v in (
                ("round", round),
                ("source", source),
                ("task", task),
                ("embodiment", embodiment),
            )
            if v is not None
        }
        raise LeRobotError(f"no episodes in {store.root} match {filters or 'the store'}")
    names = sorted({e.embodiment for e in entries})
    if len(names) > 1:
        raise LeRobotError(
            f"a LeRobot dataset holds one embodiment; these episodes have {', '.join(names)} "
            "(choose one with --embodiment)"
        )
    tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        report = _export(store, entries, tmp, dst, names[0], opts, progress)
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _export(store, entries, root: Path, dst: Path, embodiment: str, opts, progress):
    first = store.episode_meta(entries[0].episode_id)
    fps = first.fps
    fps_out: int | float = int(fps) if float(fps).is_integer() else fps
    cams = {cam: CAMERA_PREFIX + cam for cam in first.cameras}
    report = ExportReport(dst=str(dst), embodiment=embodiment, cameras=dict(cams))
    if not float(fps).is_integer():
        report.notes.append(f"fps {fps:g} is not an integer; lerobot declares fps as int")
    s_dim, a_dim = len(first.state_names), len(first.action_names)
    schema = pa.schema(
        [
            pa.field(STATE, pa.list_(pa.float32(), s_dim)),
            pa.field(ACTION, pa.list_(pa.float32(), a_dim)),
            pa.field(REWARD, pa.float32()),
            pa.field(DONE, pa.bool_()),
            pa.field(SUCCESS, pa.bool_()),
            pa.field(INTERVENTION, pa.bool_()),
            pa.field(POLICY_VERSION, pa.string()),
            pa.field("timestamp", pa.float32()),
            pa.field("frame_index", pa.int64()),
            pa.field("episode_index", pa.int64()),
            pa.field("index", pa.int64()),
            pa.field("task_index", pa.int64()),
        ]
    )
    data = _DataWriter(root, schema, opts)
    videos = {
        cam: _VideoFiles(root, key, fps, first.cameras[cam].height, first.cameras[cam].width, opts)
        for cam, key in cams.items()
    }
    tasks: dict[str, int] = {}
    ep_rows: list[dict[str, Any]] = []
    ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
    skipped_optional: dict[str, int] = {}
    shifted = 0
    total = 0
    try:
        for i, entry in enumerate(entries):
            table = store.read_episode(entry.episode_id)
            meta = read_meta(table)
            if _spec_key(meta) != _spec_key(first):
                raise LeRobotError(
                    f"episode {meta.episode_id!r} describes embodiment {embodiment!r} with other "
                    f"cameras, names or fps than {first.episode_id!r}; export them separately"
                )
            for col in meta.optional_columns:
                if table.column(col).null_count < table.num_rows:
                    skipped_optional[col] = skipped_optional.get(col, 0) + 1
            n = table.num_rows
            state = np.asarray(
                table.column("state").combine_chunks().flatten().to_numpy(), np.float32
            ).reshape(n, s_dim)
            action = np.asarray(
                table.column("action").combine_chunks().flatten().to_numpy(), np.float32
            ).reshape(n, a_dim)
            ts = table.column("timestamp").to_numpy()
            if ts[0] != 0:
                shifted += 1
            rel = (ts - ts[0]).astype(np.float32)
            instructions = table.column("instruction").to_pylist()
            task_index = np.array(
                [tasks.setdefault(text, len(tasks)) for text in instructions], np.int64
            )
            reward = table.column("reward").to_numpy().astype(np.float32)
            done = table.column("done").to_numpy(zero_copy_only=False).astype(bool)
            success = table.column("success").to_numpy(zero_copy_only=False).astype(bool)
            intervention = table.column("intervention").to_numpy(zero_copy_only=False).astype(bool)
            columns = {
                STATE: _fixed_list(state, pa.float32()),
                ACTION: _fixed_list(action, pa.float32()),
                REWARD: pa.array(reward, pa.float32()),
                DONE: pa.array(done, pa.bool_()),
                SUCCESS: pa.array(success, pa.bool_()),
                INTERVENTION: pa.array(intervention, pa.bool_()),
                POLICY_VERSION: table.column("policy_version").combine_chunks(),
                "timestamp": pa.array(rel, pa.float32()),
                "frame_index": pa.array(np.arange(n, dtype=np.int64)),
                "episode_index": pa.array(np.full(n, i, np.int64)),
                "index": pa.array(np.arange(total, total + n, dtype=np.int64)),
                "task_index": pa.array(task_index),
            }
            chunk, file = data.write(pa.table(columns))
            row: dict[str, Any] = {
                "episode_index": i,
                "tasks": list(dict.fromkeys(instructions)),
                "length": n,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": total,
                "dataset_to_index": total + n,
            }
            stats: dict[str, dict[str, np.ndarray]] = {
                STATE: vector_stats(state),
                ACTION: vector_stats(action),
                REWARD: vector_stats(reward),
                DONE: vector_stats(done),
                SUCCESS: vector_stats(success),
                INTERVENTION: vector_stats(intervention),
                "timestamp": vector_stats(rel),
                "frame_index": vector_stats(np.arange(n)),
                "episode_index": vector_stats(np.full(n, i)),
                "index": vector_stats(np.arange(total, total + n)),
                "task_index": vector_stats(task_index),
            }
            for cam, key in cams.items():
                c = meta.cameras[cam]
                frames = decode_frames(
                    table.column(camera_column(cam)), c.encoding, c.height, c.width
                )
                v_chunk, v_file, start, end = videos[cam].write_episode(frames, rel)
                row[f"videos/{key}/chunk_index"] = v_chunk
                row[f"videos/{key}/file_index"] = v_file
                row[f"videos/{key}/from_timestamp"] = start
                row[f"videos/{key}/to_timestamp"] = end
                stats[key] = image_stats(frames)
            for feat, st in stats.items():
                for name, value in st.items():
                    row[f"stats/{feat}/{name}"] = np.asarray(value).tolist()
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            row[RAMP_EPISODE] = json.dumps(
                {
                    "episode_id": meta.episode_id,
                    "task": meta.task,
                    "source": meta.source,
                    "round": meta.round,
                    "success": meta.success,
                    "policy_versions": meta.policy_versions,
                },
                sort_keys=True,
            )
            ep_rows.append(row)
            ep_stats.append(stats)
            total += n
            if progress is not None:
                progress(i + 1, len(entries))
    finally:
        data.close()
        for v in videos.values():
            v.close()

    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), episodes_path, compression="snappy")
    pq.write_table(_tasks_table(tasks), root / TASKS_PATH)
    dataset_stats = {
        feat: _json_stats(aggregate_stats([s[feat] for s in ep_stats])) for feat in ep_stats[0]
    }
    (root / STATS_PATH).write_text(json.dumps(dataset_stats, indent=4))

    video_info = {
        "video.codec": "av1",
        "video.pix_fmt": "yuv420p",
        "video.fps": fps_out,
        "video.channels": 3,
        "has_audio": False,
        "video.g": opts.gop,
        "video.crf": opts.crf,
        "video.preset": opts.preset,
        "video.fast_decode": 0,
        "video.video_backend": "pyav",
        "video.extra_options": {},
        "is_depth_map": False,
    }
    scalar = {"shape": [1], "names": None}
    features: dict[str, Any] = {
        STATE: {"dtype": "float32", "shape": [s_dim], "names": list(first.state_names)},
        ACTION: {"dtype": "float32", "shape": [a_dim], "names": list(first.action_names)},
    }
    for cam, key in cams.items():
        c = first.cameras[cam]
        features[key] = {
            "dtype": "video",
            "shape": [c.height, c.width, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.height": c.height, "video.width": c.width, **video_info},
        }
    features.update(
        {
            REWARD: {"dtype": "float32", **scalar},
            DONE: {"dtype": "bool", **scalar},
            SUCCESS: {"dtype": "bool", **scalar},
            INTERVENTION: {"dtype": "bool", **scalar},
            POLICY_VERSION: {"dtype": "string", **scalar},
            "timestamp": {"dtype": "float32", **scalar},
            "frame_index": {"dtype": "int64", **scalar},
            "episode_index": {"dtype": "int64", **scalar},
            "index": {"dtype": "int64", **scalar},
            "task_index": {"dtype": "int64", **scalar},
        }
    )
    info = {
        "codebase_version": CODEBASE_VERSION,
        "fps": fps_out,
        "features": features,
        "total_episodes": len(ep_rows),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": opts.chunks_size,
        "data_files_size_in_mb": _number(opts.data_file_mb),
        "video_files_size_in_mb": _number(opts.video_file_mb),
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "robot_type": embodiment,
        "splits": {"train": f"0:{len(ep_rows)}"},
    }
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))

    report.episodes, report.frames, report.tasks = len(ep_rows), total, len(tasks)
    report.data_files = data.files
    report.video_files = sum(v.files for v in videos.values())
    for col, count in skipped_optional.items():
        report.not_exported[col] = f"present in {count} episode(s)"
    if shifted:
        report.notes.append(
            f"{shifted} episode(s) had timestamps not starting at 0; LeRobot timestamps start at "
            "0 in every episode, so they were shifted"
        )
    return report
