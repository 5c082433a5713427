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

import numpy as np
import pyarrow.parquet as pq

from ramp.benchmarks.report import BenchResult, best_of, paired_medians
from ramp.platform.config import EmbodimentConfig, StoreConfig
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.episodes.images import decode_frames
from ramp.platform.episodes.index import episode_path
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

        # ---- write throughput: store vs plain pyarrow on identical tables --------------------
        store_cfg = StoreConfig()  # the default encoding (raw + zstd)
        probe = EpisodeStore(os.path.join(tmp_root, "probe"), spec, store_cfg)
        tables = [probe.to_table(e) for e in eps]

        def store_write():
            root = tempfile.mkdtemp(dir=tmp_root)
            s = EpisodeStore(root, spec, store_cfg)
            for tb in tables:
                s.write(tb)
            return root

        def plain_write():
            root = tempfile.mkdtemp(dir=tmp_root)
            for tb, e in zip(tables, eps, strict=True):
                path = os.path.join(root, episode_path(e.round, e.source, e.episode_id))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                pq.write_table(tb, path, **parquet_options(tb, store_cfg))
            return root

        store_w, plain_w = paired_medians(
            store_write, plain_write, repeats, after=lambda root: shutil.rmtree(root)
        )
        store_root = store_write()
        plain_root = plain_write()
        disk_bytes = sum(e.bytes for e in EpisodeStore(store_root, spec).episodes())
        mb = disk_bytes / 1e6

        # ---- read throughput ----------------------------------------------------------------
        ids = [e.episode_id for e in eps]
        plain_paths = [
            os.path.join(plain_root, episode_path(e.round, e.source, e.episode_id)) for e in eps
        ]

        def store_read():
            s = EpisodeStore(store_root, spec, store_cfg)  # cold: index entries read too
            for eid in ids:
                s.read_episode(eid)

        def plain_read():
            for p in plain_paths:
                pq.read_table(p)

        store_r, plain_r = paired_medians(store_read, plain_read, repeats)
        list_s = best_of(lambda: EpisodeStore(store_root, spec).episodes(), repeats)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    result.metrics.update(
        {
            "episodes": n_eps,
            "steps": total_steps,
            "store_write_mb_s": mb / store_w,
            "plain_write_mb_s": mb / plain_w,
            "store_write_steps_s": total_steps / store_w,
            "plain_write_steps_s": total_steps / plain_w,
            "store_read_mb_s": mb / store_r,
            "plain_read_mb_s": mb / plain_r,
            "store_read_steps_s": total_steps / store_r,
            "plain_read_steps_s": total_steps / plain_r,
            "list_episodes_ms": list_s * 1e3,
            "bytes_per_step": disk_bytes / total_steps,
        }
    )
    result.ratios = {"write": plain_w / store_w, "read": plain_r / store_r}
    result.targets = {"write": {"min": 0.8}, "read": {"min": 0.8}}
    result.rows = [
        {
            "op": "write",
            "store MB/s": mb / store_w,
            "pyarrow MB/s": mb / plain_w,
            "store steps/s": total_steps / store_w,
            "pyarrow steps/s": total_steps / plain_w,
        },
        {
            "op": "read",
            "store MB/s": mb / store_r,
            "pyarrow MB/s": mb / plain_r,
            "store steps/s": total_steps / store_r,
            "pyarrow steps/s": total_steps / plain_r,
        },
    ]
    for key, (per_step, enc_ms, dec_ms) in enc_rows.items():
        enc, _, kind = key.partition("_")
        result.notes.append(
            f"{enc:>4} frames, {'clean renders' if kind else 'noisy camera'}: "
            f"{per_step / 1024:.1f} KiB/step on disk (2 cameras 96x96), "
            f"encode {enc_ms:.3f} ms/frame, decode {dec_ms:.3f} ms/frame"
        )
    result.notes.append(
        f"{n_eps} episodes x {steps} steps, {mb:.1f} MB on disk (raw frames + zstd level "
        f"{store_cfg.compression_level}); listing all episodes: {list_s * 1e3:.1f} ms"
    )
    return result
