"""Import a LeRobot v3 dataset into an episode store (`ramp data import-lerobot SRC ROOT`).

Streaming: data files are read one at a time, each camera's video is decoded in order (one
episode's frames in memory), and every episode goes through the store's normal validated,
idempotent write. Importing the same dataset again with the same settings is a no-op per episode.
The mapping is in ``ramp.platform.episodes.lerobot`` and docs/episode-format.md.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from ramp.platform.config import NAME_PATTERN, CameraConfig, EmbodimentConfig
from ramp.platform.episodes.episode import Episode
from ramp.platform.episodes.lerobot import (
    ACTION,
    CODEBASE_VERSION,
    DATA_PATH,
    DONE,
    EPISODES_DIR,
    INDEX_FEATURES,
    INFO_PATH,
    INTERVENTION_KEYS,
    POLICY_VERSION,
    RAMP_EPISODE,
    REWARD,
    STATE,
    STATS_PATH,
    SUCCESS,
    TASKS_PATH,
    VIDEO_PATH,
    LeRobotError,
    camera_name,
    flat_names,
    image_hw,
    matrix,
    read_json,
    shape_size,
    slug,
)
from ramp.platform.episodes.validate import EPISODE_ID_PATTERN
from ramp.platform.episodes.video import VideoError, VideoReader

# A video frame counts as the frame of a data row when it is within this share of a frame period
# of `from_timestamp + timestamp` (lerobot's own reader allows 1e-4 s; its files are exact).
FRAME_TOLERANCE = 0.25


@dataclass
class ImportOptions:
    embodiment: str | None = None  # default: the dataset's robot_type, else "lerobot"
    id_prefix: str | None = None  # default: a slug of the dataset folder's name
    source: str | None = None  # default: the one a ramp export recorded, else "lerobot"
    policy_version: str | None = None  # default: ramp.policy_version if present, else "human"
    round: int = 0
    success: bool | None = None  # when the dataset has no next.success; default True


@dataclass
class CameraSource:
    key: str  # the LeRobot feature
    kind: str  # "video" or "image"
    height: int
    width: int


@dataclass
class ImportReport:
    src: str
    root: str
    embodiment: str
    spec: EmbodimentConfig
    declared_by_import: bool
    episodes_total: int = 0
    written: int = 0
    existing: int = 0
    frames: int = 0
    first_id: str | None = None
    last_id: str | None = None
    cameras: dict[str, CameraSource] = field(default_factory=dict)
    mapped: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    max_frame_offset_s: float = 0.0

    def embodiment_yaml(self) -> str:
        import yaml

        body = {self.embodiment: self.spec.model_dump(mode="json")}
        return yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)

    def format(self) -> str:
        s = self.spec
        cams = ", ".join(
            f"{cam} {c.height}x{c.width} ({c.kind} {c.key})" for cam, c in self.cameras.items()
        )
        lines = [
            f"imported LeRobot dataset {self.src} into {self.root}",
            f"  episodes: {self.written} written, {self.existing} already there "
            f"(of {self.episodes_total}; ids {self.first_id} .. {self.last_id}), "
            f"{self.frames} frames",
            f"  embodiment {self.embodiment!r} "
            + ("(declared for this import)" if self.declared_by_import else "(from the config)")
            + f": fps {s.fps:g}, state {s.state_dim}, action {s.action_dim}",
            f"  cameras: {cams}",
            f"  frame timing: largest video/data offset {self.max_frame_offset_s * 1e3:.3f} ms",
        ]
        if self.mapped:
            lines.append(
                "  mapped: " + "; ".join(f"{k} -> {v}" for k, v in sorted(self.mapped.items()))
            )
        if self.dropped:
            lines.append("  dropped (no ramp column):")
            lines += [f"    {k}: {v}" for k, v in sorted(self.dropped.items())]
        else:
            lines.append("  dropped: nothing")
        lines += [f"  note: {n}" for n in self.notes]
        if self.declared_by_import:
            lines.append(
                "  to train on these episodes, declare the embodiment in your config "
                "(under `embodiments:`):"
            )
            lines += ["    " + ln for ln in self.embodiment_yaml().splitlines()]
        return "\n".join(lines)


@dataclass
class LeRobotEpisodeData:
    index: int
    length: int
    columns: dict[str, np.ndarray]
    tasks: list[str]
    frames: dict[str, np.ndarray]  # ramp camera -> (T, H, W, 3)
    ramp_meta: dict[str, Any]


class LeRobotSource:
    """A LeRobot v3 dataset on local disk, read with pyarrow and PyAV."""

    def __init__(self, src: str | Path):
        self.root = Path(src)
        if not self.root.is_dir():
            raise LeRobotError(f"{src} is not a folder (expected a LeRobot v3 dataset)")
        try:
            self.info = read_json(self.root / INFO_PATH)
        except FileNotFoundError:
            raise LeRobotError(f"{src} is not a LeRobot dataset: {INFO_PATH} is missing") from None
        if not isinstance(self.info, dict) or "features" not in self.info:
            raise LeRobotError(f"{src}/{INFO_PATH} has no `features`: not a LeRobot dataset")
        version = str(self.info.get("codebase_version", "?"))
        if not version.startswith("v3."):
            hint = (
                " (convert it first: `python -m lerobot.scripts.convert_dataset_v21_to_v30`)"
                if version.startswith("v2")
                else ""
            )
            raise LeRobotError(
                f"{src}: LeRobot codebase_version {version} is not supported; ramp reads "
                f"{CODEBASE_VERSION} datasets{hint}"
            )
        self.version = version
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        try:
            self.fps = float(self.info["fps"])
        except (KeyError, TypeError, ValueError):
            raise LeRobotError(f"{src}/{INFO_PATH}: missing or invalid fps") from None
        if not self.fps > 0:
            raise LeRobotError(f"{src}/{INFO_PATH}: fps must be positive, got {self.fps}")
        self.data_path = self.info.get("data_path") or DATA_PATH
        self.video_path = self.info.get("video_path") or VIDEO_PATH
        self.robot_type = self.info.get("robot_type")
        self._plan()
        self.tasks = self._load_tasks()
        self.episodes = self._load_episodes()
        self._data_cache: tuple[str, pa.Table, np.ndarray] | None = None
        self._videos: dict[str, tuple[Path, VideoReader]] = {}

    # ---------------------------------------------------------------------------- structure

    def _plan(self) -> None:
        """Decide what every feature becomes; nothing is dropped without saying so."""
        self.cameras: dict[str, CameraSource] = {}
        self.mapped: dict[str, str] = {}
        self.dropped: dict[str, str] = {}
        self.notes: list[str] = []
        taken: set[str] = set()
        for key, ft in self.features.items():
            dtype = ft.get("dtype")
            if dtype in ("video", "image"):
                info = ft.get("info") or ft.get("video_info") or {}
                if info.get("is_depth_map") or info.get("video.is_depth_map"):
                    self.dropped[key] = "depth map: ramp stores RGB camera frames only"
                    continue
                h, w = image_hw(ft)
                cam = camera_name(key, taken)
                self.cameras[cam] = CameraSource(key, dtype, h, w)
                self.mapped[key] = f"image.{cam}"
        if not self.cameras:
            raise LeRobotError(
                f"{self.root}: no camera (image or video feature); ramp episodes need at least one"
            )
        for key, what in ((STATE, "state"), (ACTION, "action")):
            if key not in self.features:
                raise LeRobotError(f"{self.root}: no `{key}` feature; ramp episodes need {what}")
            dt = self.features[key].get("dtype")
            if dt not in ("float32", "float64", "float16", "int64", "int32", "int16", "int8"):
                raise LeRobotError(f"{self.root}: `{key}` has dtype {dt}; expected numbers")
            if dt != "float32":
                self.notes.append(f"{key} ({dt}) is stored as float32")
            self.mapped[key] = what
        self.state_dim = shape_size(self.features[STATE].get("shape"))
        self.action_dim = shape_size(self.features[ACTION].get("shape"))
        self.state_names, self.state_generated = flat_names(
            self.features[STATE].get("names"), self.state_dim, "state"
        )
        self.action_names, self.action_generated = flat_names(
            self.features[ACTION].get("names"), self.action_dim, "action"
        )
        self.reward_key = REWARD if REWARD in self.features else None
        self.success_key = SUCCESS if SUCCESS in self.features else None
        self.done_key = DONE if DONE in self.features else None
        self.intervention_key = next((k for k in INTERVENTION_KEYS if k in self.features), None)
        self.policy_key = POLICY_VERSION if POLICY_VERSION in self.features else None
        for key, target in (
            (self.reward_key, "reward"),
            (self.success_key, "success (its value on the last frame)"),
            (self.intervention_key, "intervention"),
            (self.policy_key, "policy_version"),
        ):
            if key:
                self.mapped[key] = target
        for key in INTERVENTION_KEYS:
            if key in self.features and key != self.intervention_key:
                self.dropped[key] = f"{self.intervention_key} already gives intervention"
        for key, ft in self.features.items():
            if key in self.mapped or key in self.dropped or key in INDEX_FEATURES:
                continue
            if key == self.done_key:
                continue  # decided per episode (checked against ramp's done)
            shape = ft.get("shape")
            self.dropped[key] = f"{ft.get('dtype')} {tuple(shape) if shape else ()}"

    def _load_tasks(self) -> dict[int, str]:
        path = self.root / TASKS_PATH
        if not path.exists():
            raise LeRobotError(f"{self.root}: {TASKS_PATH} is missing")
        table = pq.read_table(path)
        if "task" not in table.column_names or "task_index" not in table.column_names:
            raise LeRobotError(f"{path}: expected columns task_index and task")
        return dict(
            zip(
                table.column("task_index").to_pylist(),
                table.column("task").to_pylist(),
                strict=True,
            )
        )

    def _load_episodes(self) -> list[dict[str, Any]]:
        files = sorted((self.root / EPISODES_DIR).glob("*/*.parquet"))
        if not files and not self.info.get("total_episodes"):
            return []  # an empty dataset (lerobot writes no episode metadata until one is saved)
        if not files:
            raise LeRobotError(f"{self.root}: no episode metadata under {EPISODES_DIR}/")
        rows: list[dict[str, Any]] = []
        for f in files:
            names = pq.read_schema(f).names
            cols = [c for c in names if not c.startswith("stats/")]
            rows += pq.read_table(f, columns=cols).to_pylist()
        rows.sort(key=lambda r: r["episode_index"])
        for r in rows:
            for key in ("episode_index", "length", "data/chunk_index", "data/file_index"):
                if r.get(key) is None:
                    raise LeRobotError(
                        f"{self.root}: episode metadata lacks {key!r} "
                        f"(episode {r.get('episode_index')})"
                    )
        return rows

    def embodiment(self) -> EmbodimentConfig:
        """The embodiment this dataset describes (cameras, names, fps, action bounds)."""
        low, high = self._action_bounds()
        try:
            return EmbodimentConfig(
                cameras={
                    cam: CameraConfig(height=c.height, width=c.width)
                    for cam, c in self.cameras.items()
                },
                state_names=self.state_names,
                action_names=self.action_names,
                action_low=low,
                action_high=high,
                fps=self.fps,
            )
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise LeRobotError(
                f"{self.root}: cannot describe it as a ramp embodiment: {problems}"
            ) from None

    def _action_bounds(self) -> tuple[list[float], list[float]]:
        """stats.json action min/max (else the data's); a constant dimension is widened."""
        lo = hi = None
        try:
            stats = read_json(self.root / STATS_PATH).get(ACTION, {})
            lo = np.asarray(stats["min"], np.float64).reshape(-1)
            hi = np.asarray(stats["max"], np.float64).reshape(-1)
            if lo.size != self.action_dim or hi.size != self.action_dim or (lo > hi).any():
                lo = hi = None
        except (FileNotFoundError, KeyError, TypeError, ValueError, AttributeError):
            lo = hi = None
        if lo is None or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            self.notes.append("action bounds computed from the data (stats.json lacks them)")
            lo, hi = self._data_action_bounds()
        pad = 1e-3 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        same = ~(hi - lo > 0)
        if same.any():
            names = [self.action_names[i] for i in np.flatnonzero(same)]
            self.notes.append(
                f"action {', '.join(names)} is constant in the dataset; its bounds are widened "
                "by 0.1% (at least 0.001) on each side"
            )
        lo = np.where(same, lo - pad, lo)
        hi = np.where(same, hi + pad, hi)
        return [float(x) for x in lo], [float(x) for x in hi]

    def _data_action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(self.action_dim, np.inf)
        hi = np.full(self.action_dim, -np.inf)
        for f in sorted((self.root / "data").glob("*/*.parquet")):
            t = pq.read_table(f, columns=[ACTION])
            a = matrix(t.column(ACTION), t.num_rows, ACTION).astype(np.float64)
            if len(a):
                lo, hi = np.minimum(lo, a.min(axis=0)), np.maximum(hi, a.max(axis=0))
        if not np.isfinite(lo).all():
            raise LeRobotError(f"{self.root}: no action values to derive bounds from")
        return lo, hi

    # ---------------------------------------------------------------------------- reading

    def _data_file(self, ep: dict[str, Any]) -> tuple[pa.Table, np.ndarray]:
        rel = self.data_path.format(
            chunk_index=int(ep["data/chunk_index"]), file_index=int(ep["data/file_index"])
        )
        if self._data_cache is not None and self._data_cache[0] == rel:
            return self._data_cache[1], self._data_cache[2]
        path = self.root / rel
        if not path.exists():
            raise LeRobotError(
                f"{self.root}: data file {rel} of episode {ep['episode_index']} is missing"
            )
        names = set(pq.read_schema(path).names)
        for name in sorted(names - set(self.features)):
            self.dropped.setdefault(name, "a data column that info.json does not declare")
        wanted = [STATE, ACTION, "timestamp", "frame_index", "episode_index", "task_index"]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise LeRobotError(f"{path}: columns {missing} are missing")
        extra = [
            k
            for k in (
                self.reward_key,
                self.success_key,
                self.done_key,
                self.intervention_key,
                self.policy_key,
                *(c.key for c in self.cameras.values() if c.kind == "image"),
            )
            if k and k in names
        ]
        table = pq.read_table(path, columns=wanted + extra)
        episode_index = table.column("episode_index").to_numpy()
        self._data_cache = (rel, table, episode_index)
        return table, episode_index

    def _video(self, cam: CameraSource, ep: dict[str, Any]) -> VideoReader:
        prefix = f"videos/{cam.key}/"
        try:
            rel = self.video_path.format(
                video_key=cam.key,
                chunk_index=int(ep[prefix + "chunk_index"]),
                file_index=int(ep[prefix + "file_index"]),
            )
        except (KeyError, TypeError):
            raise LeRobotError(
                f"{self.root}: episode {ep['episode_index']} has no video location for {cam.key}"
            ) from None
        path = self.root / rel
        current = self._videos.get(cam.key)
        if current is not None and current[0] == path:
            return current[1]
        if current is not None:
            current[1].close()
        if not path.exists():
            raise LeRobotError(
                f"{self.root}: video file {rel} (camera {cam.key}, episode "
                f"{ep['episode_index']}) is missing"
            )
        try:
            reader = VideoReader(path)
        except VideoError as e:
            raise LeRobotError(str(e)) from None
        if (reader.height, reader.width) != (cam.height, cam.width):
            reader.close()
            raise LeRobotError(
                f"{path}: frames are {reader.height}x{reader.width}, info.json says "
                f"{cam.height}x{cam.width}"
            )
        self._videos[cam.key] = (path, reader)
        return reader

    def close(self) -> None:
        for _, reader in self._videos.values():
            reader.close()
        self._videos.clear()

    def read_episode(self, ep: dict[str, Any]) -> tuple[LeRobotEpisodeData, float]:
        """One episode's values and frames; also the largest video/data time offset seen."""
        idx = int(ep["episode_index"])
        table, episode_index = self._data_file(ep)
        rows = np.flatnonzero(episode_index == idx)
        if len(rows) == 0:
            raise LeRobotError(f"{self.root}: episode {idx} has no rows in its data file")
        part = table.take(pa.array(rows))
        order = np.argsort(part.column("frame_index").to_numpy(), kind="stable")
        if (order != np.arange(len(order))).any():
            part = part.take(pa.array(order))
        n = part.num_rows
        if n != int(ep["length"]):
            raise LeRobotError(
                f"{self.root}: episode {idx} has {n} data rows, its metadata says {ep['length']}"
            )
        cols: dict[str, np.ndarray] = {
            "state": matrix(part.column(STATE), n, STATE).astype(np.float32),
            "action": matrix(part.column(ACTION), n, ACTION).astype(np.float32),
            "timestamp": matrix(part.column("timestamp"), n, "timestamp")[:, 0].astype(np.float64),
        }
        if cols["state"].shape[1] != self.state_dim or cols["action"].shape[1] != self.action_dim:
            raise LeRobotError(
                f"{self.root}: episode {idx}: state/action have {cols['state'].shape[1]}/"
                f"{cols['action'].shape[1]} values, info.json says "
                f"{self.state_dim}/{self.action_dim}"
            )
        for key in (self.reward_key, self.success_key, self.done_key, self.intervention_key):
            if key and key in part.column_names:
                cols[key] = matrix(part.column(key), n, key)[:, 0]
        if self.policy_key and self.policy_key in part.column_names:
            cols[self.policy_key] = np.asarray(part.column(self.policy_key).to_pylist(), object)
        task_index = part.column("task_index").to_numpy()
        try:
            tasks = [self.tasks[int(i)] for i in task_index]
        except KeyError as e:
            raise LeRobotError(
                f"{self.root}: episode {idx} uses task_index {e.args[0]}, which "
                f"{TASKS_PATH} does not list"
            ) from None

        frames: dict[str, np.ndarray] = {}
        worst = 0.0
        tol = FRAME_TOLERANCE / self.fps
        for cam, c in self.cameras.items():
            if c.kind == "image":
                frames[cam] = self._images(part, c, idx)
                continue
            start = ep.get(f"videos/{c.key}/from_timestamp")
            if start is None:
                raise LeRobotError(f"{self.root}: episode {idx} has no from_timestamp for {c.key}")
            reader = self._video(c, ep)
            wanted = float(start) + cols["timestamp"]
            try:
                frames[cam] = reader.frames_at(wanted, tol)
            except VideoError as e:
                raise LeRobotError(f"episode {idx}, camera {c.key}: {e}") from None
            worst = max(worst, reader.last_offset)
        ramp_meta: dict[str, Any] = {}
        if ep.get(RAMP_EPISODE):
            try:
                ramp_meta = json.loads(ep[RAMP_EPISODE])
            except ValueError:
                self.notes.append(f"episode {idx}: unreadable {RAMP_EPISODE} ignored")
        return LeRobotEpisodeData(idx, n, cols, tasks, frames, ramp_meta), worst

    def _images(self, part: pa.Table, cam: CameraSource, idx: int) -> np.ndarray:
        from PIL import Image

        if cam.key not in part.column_names:
            raise LeRobotError(f"{self.root}: image column {cam.key} is missing from the data")
        out = np.empty((part.num_rows, cam.height, cam.width, 3), np.uint8)
        for i, cell in enumerate(part.column(cam.key).to_pylist()):
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if not data and isinstance(cell, dict) and cell.get("path"):
                p = Path(cell["path"])
                p = p if p.is_absolute() else self.root / p
                data = p.read_bytes() if p.exists() else None
            if not data:
                raise LeRobotError(f"episode {idx}, frame {i}: {cam.key} has no image")
            with Image.open(io.BytesIO(data)) as img:
                arr = np.asarray(img.convert("RGB"))
            if arr.shape != (cam.height, cam.width, 3):
                raise LeRobotError(
                    f"episode {idx}, frame {i}: {cam.key} is {arr.shape[0]}x{arr.shape[1]}, "
                    f"info.json says {cam.height}x{cam.width}"
                )
            out[i] = arr
        return out

    def iter_episodes(self) -> Iterator[tuple[LeRobotEpisodeData, float]]:
        try:
            for ep in self.episodes:
                yield self.read_episode(ep)
        finally:
            self.close()


def _check_declared(name: str, declared: EmbodimentConfig, src: LeRobotSource, where: str) -> None:
    """A declared embodiment must describe the dataset (names only when the dataset has real
    names; generated ones defer to the declaration)."""
    derived_cams = {cam: (c.height, c.width) for cam, c in src.cameras.items()}
    declared_cams = {cam: (c.height, c.width) for cam, c in declared.cameras.items()}
    problems = []
    if derived_cams != declared_cams:
        problems.append(f"cameras {declared_cams} vs the dataset's {derived_cams}")
    for what, names, generated in (
        ("state", src.state_names, src.state_generated),
        ("action", src.action_names, src.action_generated),
    ):
        mine = list(getattr(declared, f"{what}_names"))
        if len(mine) != len(names):
            problems.append(f"{what} has {len(mine)} values vs the dataset's {len(names)}")
        elif not generated and mine != names:
            problems.append(f"{what}_names {mine} vs the dataset's {names}")
    if abs(declared.fps - src.fps) > 1e-9:
        problems.append(f"fps {declared.fps:g} vs the dataset's {src.fps:g}")
    if problems:
        raise LeRobotError(
            f"embodiment {name!r} ({where}) does not match the dataset {src.root}: "
            + "; ".join(problems)
            + ". Import under another name (--embodiment NAME) or fix the declaration."
        )


def _stored_spec(store, name: str) -> EmbodimentConfig | None:
    """The embodiment as episodes already in the store describe it (None if there are none)."""
    entries = store.episodes(embodiment=name)
    if not entries:
        return None
    meta = store.episode_meta(entries[0].episode_id)
    return EmbodimentConfig(
        cameras={
            cam: CameraConfig(height=c.height, width=c.width) for cam, c in meta.cameras.items()
        },
        state_names=meta.state_names,
        action_names=meta.action_names,
        action_low=meta.action_low,
        action_high=meta.action_high,
        fps=meta.fps,
    )


def import_lerobot(
    src: str | Path,
    store,
    options: ImportOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Write every episode of the LeRobot v3 dataset `src` into `store` (an EpisodeStore)."""
    opts = options or ImportOptions()
    source = LeRobotSource(src)
    name = opts.embodiment or slug(source.robot_type or "lerobot", allowed="a-z0-9_.-")
    if not re.match(NAME_PATTERN, name):
        raise LeRobotError(f"embodiment name {name!r} must match {NAME_PATTERN}")
    prefix = opts.id_prefix or slug(Path(src).resolve().name, max_len=100, allowed="a-z0-9_.-")
    if not re.match(EPISODE_ID_PATTERN, f"{prefix}-000000") or len(prefix) > 100:
        raise LeRobotError(
            f"--id-prefix {prefix!r}: episode ids must match {EPISODE_ID_PATTERN} "
            "(letters, digits, '_', '.', '-'; a prefix of at most 100)"
        )
    for what, value in (("source", opts.source), ("policy version", opts.policy_version)):
        if value is not None and not value.strip():
            raise LeRobotError(f"the {what} must not be empty")

    declared = store.embodiments.get(name)
    if declared is not None:
        _check_declared(name, declared, source, "declared in the config")
        spec = declared
    else:
        spec = source.embodiment()
        stored = _stored_spec(store, name)
        if stored is not None:
            # Episodes of this embodiment are in the store already (an earlier import, perhaps of
            # this dataset before it grew): keep their names and bounds, so episodes imported
            # before are recognised as the same content and the embodiment stays one thing.
            _check_declared(name, stored, source, "of episodes already in the store")
            wider = any(lo < s for lo, s in zip(spec.action_low, stored.action_low, strict=True))
            wider |= any(hi > s for hi, s in zip(spec.action_high, stored.action_high, strict=True))
            if wider:
                source.notes.append(
                    f"actions exceed the bounds of the {name!r} episodes already in the store; "
                    "those bounds are kept (declare the embodiment with wider ones to change them)"
                )
            spec = spec.model_copy(
                update={
                    k: getattr(stored, k)
                    for k in ("state_names", "action_names", "action_low", "action_high")
                }
            )
        store.embodiments = {**store.embodiments, name: spec}

    report = ImportReport(
        src=str(src),
        root=str(store.root),
        embodiment=name,
        spec=spec,
        declared_by_import=declared is None,
        episodes_total=len(source.episodes),
        cameras=dict(source.cameras),
        mapped=dict(source.mapped),
        dropped=dict(source.dropped),
    )
    done_mismatch = 0
    for i, (data, offset) in enumerate(source.iter_episodes()):
        report.max_frame_offset_s = max(report.max_frame_offset_s, offset)
        episode = _to_episode(data, source, opts, name, prefix)
        if source.done_key and source.done_key in data.columns:
            ramp_done = np.arange(data.length) == data.length - 1
            if not np.array_equal(data.columns[source.done_key].astype(bool), ramp_done):
                done_mismatch += 1
        result = store.write(episode)
        if result.status == "written":
            report.written += 1
        else:
            report.existing += 1
        report.frames += data.length
        report.first_id = report.first_id or episode.episode_id
        report.last_id = episode.episode_id
        if progress is not None:
            progress(i + 1, len(source.episodes))
    if source.done_key:
        if done_mismatch:
            report.dropped[source.done_key] = (
                f"differs from ramp's done (True on the last step only) in {done_mismatch} "
                "episode(s); ramp's rule is used"
            )
        else:
            report.mapped[source.done_key] = "done (True on the last frame only: consistent)"
    for key, why in source.dropped.items():  # data columns found while reading included
        report.dropped.setdefault(key, why)
    report.notes = list(dict.fromkeys(source.notes))
    return report


def _to_episode(
    data: LeRobotEpisodeData,
    source: LeRobotSource,
    opts: ImportOptions,
    embodiment: str,
    prefix: str,
) -> Episode:
    cols = data.columns
    if source.success_key and source.success_key in cols:
        success = bool(cols[source.success_key][-1])
    else:
        success = True if opts.success is None else opts.success
    if opts.policy_version is not None:
        policy_version: str | list[str] = opts.policy_version
    elif source.policy_key and source.policy_key in cols:
        policy_version = [str(v) if v else "human" for v in cols[source.policy_key]]
    else:
        policy_version = "human"
    intervention = None
    if source.intervention_key and source.intervention_key in cols:
        intervention = cols[source.intervention_key].astype(np.float64) > 0.5
    reward = None
    if source.reward_key and source.reward_key in cols:
        reward = cols[source.reward_key].astype(np.float32)
    task = data.ramp_meta.get("task") or slug(data.tasks[0])
    return Episode(
        episode_id=f"{prefix}-{data.index:06d}",
        embodiment=embodiment,
        task=str(task),
        instruction=data.tasks[0],
        instructions=data.tasks,
        images=data.frames,
        state=cols["state"],
        action=cols["action"],
        success=success,
        source=opts.source or str(data.ramp_meta.get("source") or "lerobot"),
        policy_version=policy_version,
        round=opts.round,
        reward=reward,
        intervention=intervention,
        timestamp=cols["timestamp"],
    )
