"""LeRobot v3 datasets <-> ramp episodes: the names and rules import and export share.

The mapping, LeRobot v3 -> ramp (the table is in docs/episode-format.md, "LeRobot v3 import and
export"):
- one episode (`episode_index` i) -> one episode, id `<prefix>-<i:06d>`;
- `observation.images.<cam>` (video or image feature) -> camera `<cam>` (sanitised to
  `[a-z0-9_]`), column `image.<cam>`;
- `observation.state`, `action` and their `names` -> `state`, `action`, `state_names`,
  `action_names`;
- the task text of each frame (`task_index` -> meta/tasks.parquet) -> `instruction` per step;
  `task` is a slug of the episode's first task text;
- `timestamp` (float32, from 0 in each episode) -> `timestamp` (float64, same values);
- `fps`, stats.json `action` min/max -> the embodiment's `fps`, `action_low`, `action_high`;
- `next.reward` -> `reward`, `next.success` (last frame) -> `success`, `next.done` -> checked
  against `done`, `complementary_info.is_intervention` (or `intervention`) -> `intervention`;
- written by ramp's export and read back: `ramp.policy_version` (a string feature) ->
  `policy_version`, meta/episodes `ramp/episode` (JSON) -> `task`, `source`.

Import lives in ``lerobot_import``, export in ``lerobot_export``; both use pyarrow and PyAV only
(lerobot itself needs Python 3.12 and is not importable here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

STATE = "observation.state"
ACTION = "action"
CAMERA_PREFIX = "observation.images."
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
INTERVENTION = "complementary_info.is_intervention"
INTERVENTION_KEYS = (INTERVENTION, "intervention", "is_intervention")
POLICY_VERSION = "ramp.policy_version"
RAMP_EPISODE = "ramp/episode"
# Per-frame bookkeeping every v3 dataset has; ramp rebuilds its own equivalents.
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}

CAMERA_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


class LeRobotError(ValueError):
    """A dataset ramp cannot import, or an export that cannot be made (one clear message)."""


def slug(text: str, max_len: int = 64, allowed: str = "a-z0-9", sep: str = "_") -> str:
    """A lower-case name made of `allowed` characters and `sep`, at most `max_len` long.

    A text longer than that keeps its first characters and gets a short hash of the whole, so
    two long instructions that differ only at the end stay apart.
    """
    s = re.sub(f"[^{allowed}]+", sep, str(text).lower()).strip(sep + "_-.")
    if not s:
        s = "x"
    if len(s) > max_len:
        digest = xxhash.xxh3_64_hexdigest(str(text).encode())[:8]
        s = s[: max_len - 9].rstrip(sep + "_-.") + sep + digest
    return s


def camera_name(key: str, taken: set[str]) -> str:
    """ramp's camera name for a LeRobot image/video key: `observation.images.top` -> `top`."""
    base = key[len(CAMERA_PREFIX) :] if key.startswith(CAMERA_PREFIX) else key
    if base.startswith("observation."):
        base = base[len("observation.") :]
    name = slug(base, max_len=32)
    if not name[0].isalnum():
        name = "c" + name[:31]
    out, n = name, 2
    while out in taken:
        suffix = f"_{n}"
        out = name[: 32 - len(suffix)] + suffix
        n += 1
    taken.add(out)
    return out


def flat_names(names: Any, dim: int, fallback: str) -> tuple[list[str], bool]:
    """A feature's `names` as one flat list of `dim` unique strings; (names, generated?).

    LeRobot writes names as a list, as a dict of lists (`{"motors": [...]}`), nested lists for
    2-D features, or null. Missing or mis-sized names become `<fallback>_<i>`.
    """
    flat: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)
        elif x is not None:
            flat.append(str(x))

    walk(names)
    if len(flat) != dim or any(not n for n in flat):
        return [f"{fallback}_{i}" for i in range(dim)], True
    seen: dict[str, int] = {}
    out = []
    for n in flat:
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        seen.setdefault(n, 0)
        out.append(n)
    return out, False


def shape_size(shape: Any) -> int:
    return int(np.prod([int(s) for s in shape])) if shape else 1


def image_hw(ft: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of an image/video feature (shape is (H, W, C), or (C, H, W) in a few
    converted datasets whose names say so)."""
    shape = [int(s) for s in ft.get("shape") or []]
    names = ft.get("names") or []
    if len(shape) != 3:
        raise LeRobotError(f"image feature with shape {shape}: expected 3 dimensions")
    if isinstance(names, list) and len(names) == 3 and str(names[0]).startswith("channel"):
        return shape[1], shape[2]
    if shape[2] not in (1, 3, 4) and shape[0] in (1, 3, 4):
        return shape[1], shape[2]
    return shape[0], shape[1]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise LeRobotError(f"{path} is not readable JSON: {e}") from None


def matrix(column: pa.ChunkedArray | pa.Array, rows: int, what: str) -> np.ndarray:
    """A (nested) list column -> (rows, d) numpy array; a scalar column -> (rows, 1)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise LeRobotError(f"{what} has missing values (null)")
    while (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    if rows == 0:
        return values.reshape(0, 0)
    if values.size % rows:
        raise LeRobotError(f"{what}: {values.size} values do not split into {rows} frames")
    return values.reshape(rows, -1)


# ----------------------------------------------------------------------------------- stats


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of (N, d) values: per-dimension arrays of shape (d,)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    out = {
        "min": v.min(axis=0),
        "max": v.max(axis=0),
        "mean": v.mean(axis=0),
        "std": v.std(axis=0),
        "count": np.array([len(v)], dtype=np.int64),
    }
    qs = np.quantile(v, list(QUANTILES.values()), axis=0)
    for i, key in enumerate(QUANTILES):
        out[key] = qs[i]
    return out


def sample_indices(n: int) -> np.ndarray:
    """The frames LeRobot samples for image statistics (compute_stats.sample_indices)."""
    num = max(min(100, n), min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, num)).astype(int)


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1) as LeRobot
    stores them; quantiles are exact (from the 256-bin histogram of the sampled frames)."""
    idx = sample_indices(len(frames))
    sampled = frames[idx]
    h, w = sampled.shape[1:3]
    if max(h, w) >= 300:  # LeRobot downsamples large frames before its statistics
        f = int(w / 150) if w > h else int(h / 150)
        sampled = sampled[:, ::f, ::f]
    stats: dict[str, list] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILES)}
    levels = np.arange(256, dtype=np.float64)
    for c in range(3):
        hist = np.bincount(sampled[..., c].reshape(-1), minlength=256).astype(np.float64)
        total = hist.sum()
        nz = np.flatnonzero(hist)
        mean = (hist * levels).sum() / total
        var = (hist * (levels - mean) ** 2).sum() / total
        cum = np.cumsum(hist)
        stats["min"].append(levels[nz[0]])
        stats["max"].append(levels[nz[-1]])
        stats["mean"].append(mean)
        stats["std"].append(np.sqrt(var))
        for key, q in QUANTILES.items():
            pos = q * (total - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, int(total) - 1)
            v_lo = np.searchsorted(cum, lo, side="right")
            v_hi = np.searchsorted(cum, hi, side="right")
            stats[key].append(v_lo + (pos - lo) * (v_hi - v_lo))
    out = {k: (np.asarray(v, np.float64) / 255.0).reshape(3, 1, 1) for k, v in stats.items()}
    out["count"] = np.array([len(idx)], dtype=np.int64)
    return out


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones, as LeRobot aggregates them (count-weighted
    mean and quantiles, pooled variance, overall min and max)."""
    counts = np.stack([s["count"] for s in per_episode]).astype(np.float64)
    means = np.stack([s["mean"] for s in per_episode])
    total = counts.sum(axis=0)
    w = counts
    while w.ndim < means.ndim:
        w = w[..., None]
    mean = (means * w).sum(axis=0) / total
    var = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2) * w).sum(
        axis=0
    ) / total
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": total.astype(np.int64),
    }
    for key in QUANTILES:
        out[key] = (np.stack([s[key] for s in per_episode]) * w).sum(axis=0) / total
    return out
