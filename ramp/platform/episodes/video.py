"""Video files for LeRobot interop: AV1 in MP4 through PyAV (no system ffmpeg needed).

LeRobot v3 keeps each camera of many episodes in one MP4, episode after episode, and finds an
episode's frames by timestamp: frame t of an episode is the video frame nearest to
``from_timestamp + timestamp[t]``. PyAV's wheel (``av`` 18.1) ships the SVT-AV1 encoder and the
dav1d decoder, so both directions work with pip alone.

- ``AV1Writer`` encodes frames with explicit timestamps (several episodes back to back in one
  file); ``encode_av1`` is the one-shot form.
- ``VideoReader`` decodes sequentially and seeks only when asked to go back, so reading the
  episodes of a file in order decodes each frame once and holds one episode in memory.
- ``decode_all`` / ``frames_between`` read a whole (small) file at once, for tests and tools.

Sizes: av 18.1's SVT-AV1 encodes frames from 4x4 px up (measured; 2x2 is refused by the
encoder). ``AV1Writer`` refuses anything below ``MIN_SIDE`` (8 px, the smallest ramp camera) with a
clear error. Odd sizes work (yuv420p subsamples chroma; the decoded frame has the original size).
lerobot 0.6.1's own writer (av 15.1) crashes its encoder process on 16x16 frames; reading videos
ramp wrote is not affected (tested with lerobot's LeRobotDataset).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

MIN_SIDE = 8
# SVT-AV1 prints a configuration banner per encoder to stderr unless told otherwise (1 = errors).
_SVT_LOG_LEVEL = "1"


class VideoError(ValueError):
    """A video that cannot be written or read as asked (the message names the file)."""


def _time_base(fps: float) -> tuple[Fraction, int]:
    """(time base, ticks per frame) for a frame rate: a whole number of ticks per frame period
    (frames on the regular grid get exact timestamps) and at least 100 000 ticks per second
    (irregular frame times are placed within 5 microseconds)."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise VideoError(f"fps must be positive, got {fps}")
    k = 1000 * max(1, math.ceil(100 / rate))
    return Fraction(1, rate.numerator * k), rate.denominator * k


class AV1Writer:
    """Write uint8 (H, W, 3) frames as AV1 (yuv420p) in MP4, each frame at a given time.

    `gop` 2 (a key frame every other frame) is what LeRobot uses: random access to any frame
    stays cheap for training at the cost of size. `crf` 30 and `preset` 12 are LeRobot's defaults
    too (a lower preset compresses better and encodes slower).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        height: int,
        width: int,
        crf: int = 30,
        gop: int = 2,
        preset: int = 8,
    ):
        import av

        if height < MIN_SIDE or width < MIN_SIDE:
            raise VideoError(
                f"{path}: frames of {height}x{width} px are too small for the AV1 encoder "
                f"(at least {MIN_SIDE}x{MIN_SIDE})"
            )
        os.environ.setdefault("SVT_LOG", _SVT_LOG_LEVEL)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.height, self.width = height, width
        self.time_base, self.ticks_per_frame = _time_base(fps)
        self.frames = 0
        self._last_pts = -1
        self._bytes = 0
        self._container = av.open(str(self.path), mode="w")
        try:
            self._stream = self._container.add_stream(
                "libsvtav1",
                rate=Fraction(fps).limit_denominator(1001),
                options={"crf": str(crf), "g": str(gop), "preset": str(preset)},
            )
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = self.time_base
        except Exception:
            self._container.close()
            raise

    def add(self, frame: np.ndarray, t: float | None = None) -> float:
        """Encode one frame shown at `t` seconds (default: right after the previous frame);
        returns the time it was stored at (times are kept strictly increasing)."""
        import av

        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise VideoError(
                f"{self.path}: expected uint8 frames of {(self.height, self.width, 3)}, "
                f"got {frame.dtype} {frame.shape}"
            )
        if t is None:
            pts = self._last_pts + self.ticks_per_frame if self._last_pts >= 0 else 0
        else:
            pts = round(Fraction(t).limit_denominator(10**9) / self.time_base)
        pts = max(int(pts), self._last_pts + 1)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = pts
        vf.time_base = self.time_base
        self._mux(self._stream.encode(vf))
        self._last_pts = pts
        self.frames += 1
        return float(pts * self.time_base)

    def _mux(self, packets) -> None:
        for packet in packets:
            self._bytes += packet.size
            self._container.mux(packet)

    @property
    def end_time(self) -> float:
        """One frame period after the last frame: where the next episode starts."""
        if self._last_pts < 0:
            return 0.0
        return float((self._last_pts + self.ticks_per_frame) * self.time_base)

    def size_bytes(self) -> int:
        """Bytes of encoded video so far (the encoder holds ~25 frames back until it is closed)."""
        return self._bytes

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._mux(self._stream.encode())
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> AV1Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_av1(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float,
    crf: int = 30,
    gop: int = 2,
    preset: int = 8,
    timestamps: Iterable[float] | None = None,
) -> int:
    """Write uint8 (H, W, 3) frames as AV1 (yuv420p) in MP4; returns the frame count.

    Frames are at step / fps unless `timestamps` (seconds, increasing) are given.
    """
    writer: AV1Writer | None = None
    stamps = iter(timestamps) if timestamps is not None else None
    try:
        for frame in frames:
            if writer is None:
                h, w = np.asarray(frame).shape[:2]
                writer = AV1Writer(path, fps, h, w, crf=crf, gop=gop, preset=preset)
            writer.add(frame, next(stamps) if stamps is not None else None)
    finally:
        if writer is not None:
            writer.close()
    return 0 if writer is None else writer.frames


def decode_all(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a video as (N, H, W, 3) uint8 and their timestamps in seconds."""
    import av

    frames, stamps = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            stamps.append(float(frame.pts * stream.time_base) if frame.pts is not None else np.nan)
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
    return np.stack(frames), np.asarray(stamps)


def frames_between(
    frames: np.ndarray, stamps: np.ndarray, start: float, count: int, fps: float
) -> np.ndarray:
    """The `count` frames of an episode whose first frame is at `start` seconds in the file.

    Frames are matched to the nearest timestamp, as LeRobot does (its tolerance is 1e-4 s plus
    half a frame here, since AV1 timestamps are rounded to the stream's time base).
    """
    wanted = start + np.arange(count) / fps
    idx = np.searchsorted(stamps, wanted - 0.5 / fps)
    idx = np.clip(idx, 0, len(stamps) - 1)
    off = np.abs(stamps[idx] - wanted)
    if count and off.max() > 0.5 / fps:
        bad = int(np.argmax(off))
        raise ValueError(
            f"no frame within half a frame of t={wanted[bad]:.4f}s "
            f"(nearest {stamps[idx[bad]]:.4f}s)"
        )
    return frames[idx]


class VideoReader:
    """Frames of one video file at requested times, decoded in order.

    ``frames_at(times, tolerance)`` returns, for every time, the decoded frame nearest to it and
    refuses (``VideoError``) when the nearest is more than `tolerance` seconds away. Requests that
    move forward through the file continue decoding where the last one stopped; a request that
    goes back seeks to the key frame before it.
    """

    def __init__(self, path: str | Path):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"video file {self.path} is missing")
        try:
            self._container = av.open(str(self.path))
        except av.FFmpegError as e:
            raise VideoError(f"{self.path} is not a readable video: {e}") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.height = self._stream.codec_context.height
        self.width = self._stream.codec_context.width
        self.last_offset = 0.0  # largest |frame time - requested time| of the last request
        self._restart(None)

    def _restart(self, t: float | None) -> None:
        if t is not None and t > 0:
            tb = self._stream.time_base
            self._container.seek(
                max(int(t / tb) - 1, 0), stream=self._stream, backward=True, any_frame=False
            )
        elif t is not None:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._frames: Iterator = self._decode()
        self._prev: tuple[float, object] | None = None
        self._cur: tuple[float, object] | None = next(self._frames, None)

    def _decode(self) -> Iterator[tuple[float, object]]:
        tb = self._stream.time_base
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is not None:
                    yield float(frame.pts * tb), frame
        except Exception as e:  # a truncated or corrupt file surfaces while decoding
            raise VideoError(f"{self.path}: decoding failed: {e}") from None

    def frames_at(self, times: np.ndarray, tolerance: float) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        out = np.empty((len(times), self.height, self.width, 3), np.uint8)
        if not len(times):
            return out
        self.last_offset = 0.0
        order = np.argsort(times, kind="stable")
        first = float(times[order[0]])
        behind = self._prev is not None and self._prev[0] > first + tolerance
        if behind or (
            self._prev is None and self._cur is not None and self._cur[0] > first + tolerance
        ):
            self._restart(first - tolerance)
        for i in order:
            t = float(times[i])
            while self._cur is not None and self._cur[0] < t:
                self._prev, self._cur = self._cur, next(self._frames, None)
            candidates = [c for c in (self._prev, self._cur) if c is not None]
            if not candidates:
                raise VideoError(f"{self.path} has no frames")
            ts, frame = min(candidates, key=lambda c: abs(c[0] - t))
            if abs(ts - t) > tolerance:
                last = self._cur or self._prev
                where = (
                    f"the video ends at {last[0]:.4f}s"
                    if self._cur is None and t > last[0]
                    else f"the nearest frame is at {ts:.4f}s"
                )
                raise VideoError(
                    f"{self.path}: no frame within {tolerance:.4f}s of t={t:.4f}s ({where})"
                )
            self.last_offset = max(self.last_offset, abs(ts - t))
            out[i] = frame.to_ndarray(format="rgb24")
        return out

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _measure(height: int, width: int, frames: int = 600, preset: int = 12) -> str:
    """Encode and decode `frames` synthetic frames (a gradient with a moving square, like the
    LeRobot test fixture); one line with frames per second and the mean absolute error."""
    import tempfile
    import time

    y = np.arange(height, dtype=np.float32)[:, None, None]
    x = np.arange(width, dtype=np.float32)[None, :, None]
    base = 30 + 120 * x / width + 60 * y / height + 25 * np.arange(3, dtype=np.float32)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = base.copy()
        cy, cx = (5 + 3 * t) % max(height - 16, 1), (7 + 4 * t) % max(width - 16, 1)
        img[cy : cy + 16, cx : cx + 16] += 70
        video[t] = np.clip(img, 0, 255)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        start = time.perf_counter()
        with AV1Writer(path, 30, height, width, preset=preset) as writer:
            for frame in video:
                writer.add(frame)
        encode = frames / (time.perf_counter() - start)
        start = time.perf_counter()
        with VideoReader(path) as reader:
            back = reader.frames_at(np.arange(frames) / 30, 0.25 / 30)
        decode = frames / (time.perf_counter() - start)
    mae = np.abs(back.astype(np.int16) - video).mean()
    return (
        f"{height}x{width}, {frames} frames, preset {preset}: encode {encode:.0f} frames/s, "
        f"decode {decode:.0f} frames/s, mean abs error {mae:.2f}"
    )


if __name__ == "__main__":  # python -m ramp.platform.episodes.video 224x224 [frames] [preset]
    import sys

    h, w = (int(v) for v in sys.argv[1].split("x"))
    print(_measure(h, w, *(int(v) for v in sys.argv[2:4])))
