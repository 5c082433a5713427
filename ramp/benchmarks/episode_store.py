"""`ramp bench episode-store`: the store's own overhead against plain pyarrow, and frame encodings.

Both sides write and read the same Arrow tables to the same layout (one Parquet file per episode,
round/source partitions, the same Parquet writer settings), so the ratio isolates what the store
adds:
validation, the content hash, the index claim and the atomic rename. Frames are two 96x96x3
cameras per step, rendered-like (smooth shading, moving objects, a little sensor noise) rather
than white noise, because compressibility decides the encoding choice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ramp.benchmarks.report import BenchResult, best_of, paired_medians
from ramp.platform.config import EmbodimentConfig, S3Config, StoreConfig
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.index import episode_path
from ramp.platform.episodes.s3 import ensure_bucket, resolve, s3_filesystem
from ramp.platform.episodes.store import parquet_options

SIZE = 96
CAMERAS = ("front", "wrist")


def synthetic_frames(t: int, seed: int, noise: float = 1.5) -> np.ndarray:
    """(t, 96, 96, 3) frames: shading and two moving shapes, plus camera-like noise (sigma in
    grey levels; 0 gives clean simulator renders)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    base = np.stack([0.3 + 0.4 * yy, 0.35 + 0.2 * xx, 0.5 - 0.2 * yy], axis=-1)
    frames = np.empty((t, SIZE, SIZE, 3), np.uint8)
    p = rng.uniform(0.2, 0.8, size=2)
    v = rng.normal(0, 0.01, size=2)
    for i in range(t):
        img = base.copy()
        c = p + v * i
        mask = (xx - c[0] % 1) ** 2 + (yy - c[1] % 1) ** 2 < 0.01
        img[mask] = (0.9, 0.2, 0.1)
        box = (np.abs(xx - 0.5) < 0.12) & (np.abs(yy - (0.7 - 0.001 * i)) < 0.05)
        img[box] = (0.2, 0.2, 0.8)
        noisy = img * 255 + (rng.normal(0, noise, size=img.shape) if noise else 0.0)
        frames[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return frames


def _embodiment() -> EmbodimentConfig:
    return EmbodimentConfig(
        cameras={c: {"height": SIZE, "width": SIZE} for c in CAMERAS},
        state_names=[f"q{i}" for i in range(9)],
        action_names=[f"a{i}" for i in range(7)],
        action_low=[-1.0] * 7,
        action_high=[1.0] * 7,
        fps=10,
    )


def _episodes(n: int, t: int, noise: float = 1.5) -> list[Episode]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        out.append(
            Episode(
                episode_id=f"bench-{i:05d}",
                embodiment="bench_arm",
                task=f"task-{i % 5}",
                instruction="pick up the red ball and place it in the blue box",
                images={
                    c: synthetic_frames(t, seed=i * 7 + k, noise=noise)
                    for k, c in enumerate(CAMERAS)
                },
                state=rng.normal(size=(t, 9)).astype(np.float32),
                action=rng.uniform(-1, 1, size=(t, 7)).astype(np.float32),
                success=bool(i % 2),
                source="sim",
                policy_version="bench-policy",
                round=i % 2,
            )
        )
    return out


def run(quick: bool = False) -> BenchResult:
    n_eps, steps = (12, 100) if quick else (40, 200)
    repeats = 5 if quick else 9
    spec = {"bench_arm": _embodiment()}
    eps = _episodes(n_eps, steps)
    result = BenchResult("episode-store")
    total_steps = n_eps * steps
    tmp_root = tempfile.mkdtemp(prefix="ramp-bench-store-")
    try:
        # ---- frame encodings: size on disk and decode speed (store with each, read back) -----
        enc_rows = {}
        n_sample = max(2, n_eps // 4)
        clean = _episodes(n_sample, steps, noise=0.0)
        for enc, frames in [(e, f) for f in ("camera", "render") for e in ("raw", "png", "jpeg")]:
            cfg = StoreConfig(image_encoding=enc)
            store = EpisodeStore(os.path.join(tmp_root, f"enc-{enc}-{frames}"), spec, cfg)
            sample = eps[:n_sample] if frames == "camera" else clean
            tables = []
            encode_s = best_of(lambda s=store, e=sample: [s.to_table(x) for x in e], 1)
            tables = [store.to_table(x) for x in sample]
            for tb in tables:
                store.write(tb)
            nbytes = sum(e.bytes for e in store.episodes())
            n_frames = sum(tb.num_rows for tb in tables) * len(CAMERAS)

            def decode_all(tables=tables, enc=enc):
                for tb in tables:
                    for c in CAMERAS:
                        decode_frames(tb.column(f"image.{c}"), enc, SIZE, SIZE)

            decode_s = best_of(decode_all, repeats)
            per_step = nbytes / (n_frames / len(CAMERAS))
            key = enc if frames == "camera" else f"{enc}_render"
            enc_rows[key] = (per_step, encode_s / n_frames * 1e3, decode_s / n_frames * 1e3)
            result.metrics[f"bytes_per_step_{key}"] = per_step
            result.metrics[f"decode_ms_per_frame_{key}"] = decode_s / n_frames * 1e3
            result.metrics[f"encode_ms_per_frame_{key}"] = encode_s / n_frames * 1e3

        # ---- write and read throughput: store vs plain pyarrow on identical tables ----------
        store_cfg = StoreConfig()  # the default encoding (raw + zstd)
        probe = EpisodeStore(os.path.join(tmp_root, "probe"), spec, store_cfg)
        tables = [probe.to_table(e) for e in eps]
        places = [("local", _LocalPlace(tmp_root))]
        if os.environ.get("AWS_ENDPOINT_URL"):
            places.append(("s3", _S3Place()))
        for place_name, place in places:
            times = _measure(place, spec, store_cfg, tables, eps, repeats)
            _report(result, place_name, times, total_steps)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    for key, (per_step, enc_ms, dec_ms) in enc_rows.items():
        enc, _, kind = key.partition("_")
        result.notes.append(
            f"{enc:>4} frames, {'clean renders' if kind else 'noisy camera'}: "
            f"{per_step / 1024:.1f} KiB/step on disk (2 cameras 96x96), "
            f"encode {enc_ms:.3f} ms/frame, decode {dec_ms:.3f} ms/frame"
        )
    result.notes.append(
        f"{n_eps} episodes x {steps} steps, {result.metrics['local_mb'] or 0:.1f} MB on disk "
        f"(raw frames + zstd level 1); listing all episodes: "
        f"{result.metrics['local_list_episodes_ms']:.1f} ms"
    )
    if "s3_mb" not in result.metrics:
        result.notes.append("no S3 section: set AWS_ENDPOINT_URL (and keys) to measure one")
    return result


class _LocalPlace:
    """Roots in a local scratch folder."""

    def __init__(self, base: str):
        self.base = base
        self.fs = pafs.LocalFileSystem()

    def new_root(self) -> tuple[str, str]:
        """(store root, the same place as a pyarrow path) for one trial."""
        root = tempfile.mkdtemp(dir=self.base)
        return root, root

    def remove(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


class _S3Place:
    """Roots in a scratch bucket on the S3 server named by AWS_ENDPOINT_URL."""

    def __init__(self):
        settings = resolve(S3Config(create_bucket=True))
        self.fs = s3_filesystem(settings)
        self.bucket = f"ramp-bench-{uuid.uuid4().hex[:8]}"
        ensure_bucket(self.fs, self.bucket, settings)

    def new_root(self) -> tuple[str, str]:
        prefix = uuid.uuid4().hex[:8]
        return f"s3://{self.bucket}/{prefix}", f"{self.bucket}/{prefix}"

    def remove(self, path: str) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=True)


def _measure(place, spec, store_cfg, tables, eps, repeats) -> dict[str, float]:
    """Median write and read times of the store and of plain pyarrow at one place."""
    cfg = store_cfg.model_copy(update={"s3": S3Config(create_bucket=True)})

    def store_write():
        root, path = place.new_root()
        s = EpisodeStore(root, spec, cfg)
        for tb in tables:
            s.write(tb)
        return path

    def plain_write():
        _, path = place.new_root()
        for tb, e in zip(tables, eps, strict=True):
            target = f"{path}/{episode_path(e.round, e.source, e.episode_id)}"
            if isinstance(place, _LocalPlace):
                os.makedirs(os.path.dirname(target), exist_ok=True)
            pq.write_table(tb, target, filesystem=place.fs, **parquet_options(tb, store_cfg))
        return path

    store_w, plain_w = paired_medians(store_write, plain_write, repeats, after=place.remove)
    store_root, _ = place.new_root()
    s = EpisodeStore(store_root, spec, cfg)
    for tb in tables:
        s.write(tb)
    plain_path = plain_write()
    disk_bytes = sum(e.bytes for e in EpisodeStore(store_root, spec, cfg).episodes())
    ids = [e.episode_id for e in eps]
    plain_paths = [f"{plain_path}/{episode_path(e.round, e.source, e.episode_id)}" for e in eps]

    def store_read():
        fresh = EpisodeStore(store_root, spec, cfg)  # cold: index entries are read too
        for eid in ids:
            fresh.read_episode(eid)

    def plain_read():
        for p in plain_paths:
            pq.read_table(p, filesystem=place.fs)

    store_r, plain_r = paired_medians(store_read, plain_read, repeats)
    list_s = best_of(lambda: EpisodeStore(store_root, spec, cfg).episodes(), repeats)
    return {
        "store_w": store_w,
        "plain_w": plain_w,
        "store_r": store_r,
        "plain_r": plain_r,
        "list_s": list_s,
        "mb": disk_bytes / 1e6,
    }


def _report(result: BenchResult, place: str, t: dict[str, float], steps: int) -> None:
    """Metrics, ratios (`write`/`read` for local disk, `s3_write`/`s3_read`) and table rows."""
    mb = t["mb"]
    prefix = "" if place == "local" else f"{place}_"
    result.metrics.update(
        {
            f"{place}_mb": mb,
            f"{prefix}store_write_mb_s": mb / t["store_w"],
            f"{prefix}plain_write_mb_s": mb / t["plain_w"],
            f"{prefix}store_write_steps_s": steps / t["store_w"],
            f"{prefix}plain_write_steps_s": steps / t["plain_w"],
            f"{prefix}store_read_mb_s": mb / t["store_r"],
            f"{prefix}plain_read_mb_s": mb / t["plain_r"],
            f"{prefix}store_read_steps_s": steps / t["store_r"],
            f"{prefix}plain_read_steps_s": steps / t["plain_r"],
            f"{place}_list_episodes_ms": t["list_s"] * 1e3,
        }
    )
    if place == "local":
        result.metrics["bytes_per_step"] = mb * 1e6 / steps
    for op, key in (("write", "w"), ("read", "r")):
        ratio = f"{prefix}{op}"
        result.ratios[ratio] = t[f"plain_{key}"] / t[f"store_{key}"]
        result.targets[ratio] = {"min": 0.8}
        result.rows.append(
            {
                "where": place,
                "op": op,
                "store MB/s": mb / t[f"store_{key}"],
                "pyarrow MB/s": mb / t[f"plain_{key}"],
                "store steps/s": steps / t[f"store_{key}"],
                "pyarrow steps/s": steps / t[f"plain_{key}"],
            }
        )
