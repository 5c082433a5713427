"""AV1 video through PyAV: sizes the encoder takes, explicit frame times, ordered reads."""

from __future__ import annotations

import numpy as np
import pytest

from ramp.platform.episodes.video import (
    MIN_SIDE,
    AV1Writer,
    VideoError,
    VideoReader,
    decode_all,
    encode_av1,
    frames_between,
)


def smooth(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    y = np.arange(h)[:, None, None]
    x = np.arange(w)[None, :, None]
    c = np.arange(3)[None, None, :]
    return np.stack(
        [np.clip(40 + 100 * x / w + 50 * y / h + 20 * c + 4 * t + seed, 0, 255) for t in range(n)]
    ).astype(np.uint8)


@pytest.mark.parametrize("size", [(16, 16), (12, 16), (8, 8), (65, 67), (64, 96)])
def test_av1_round_trip_within_codec_loss(tmp_path, size):
    """Small (down to the 8 px ramp camera minimum) and odd sizes encode and decode to the
    original size; pixel values stay within a few grey levels on smooth frames."""
    h, w = size
    frames = smooth(6, h, w)
    assert encode_av1(frames, tmp_path / "v.mp4", fps=10) == 6
    decoded, stamps = decode_all(tmp_path / "v.mp4")
    assert decoded.shape == frames.shape
    np.testing.assert_allclose(stamps, np.arange(6) / 10, atol=1e-6)
    assert np.abs(decoded.astype(int) - frames).mean() < 3.0


@pytest.mark.parametrize("size", [(4, 64), (64, 7), (2, 2)])
def test_frames_below_minimum_are_refused_clearly(tmp_path, size):
    with pytest.raises(VideoError, match=rf"too small for the AV1 encoder \(at least {MIN_SIDE}x"):
        encode_av1(smooth(2, *size), tmp_path / "v.mp4", fps=10)
    assert not (tmp_path / "v.mp4").exists()


def test_wrong_frame_shape_is_refused(tmp_path):
    with AV1Writer(tmp_path / "v.mp4", 10, 16, 16) as writer:
        writer.add(smooth(1, 16, 16)[0])
        with pytest.raises(VideoError, match="expected uint8 frames"):
            writer.add(smooth(1, 16, 20)[0])


def test_explicit_times_and_episodes_back_to_back(tmp_path):
    """Irregular frame times survive exactly enough for LeRobot's 1e-4 s lookup; a second
    episode starts one frame period after the first one's last frame."""
    first, second = smooth(5, 32, 48), smooth(4, 32, 48, seed=60)
    times = np.array([0.0, 0.1, 0.23, 0.3, 0.41])
    with AV1Writer(tmp_path / "v.mp4", 10, 32, 48) as writer:
        placed = [writer.add(f, t) for f, t in zip(first, times, strict=True)]
        start = writer.end_time
        for i, f in enumerate(second):
            writer.add(f, start + i / 10)
    np.testing.assert_allclose(placed, times, atol=1e-5)
    assert start == pytest.approx(0.51)
    decoded, stamps = decode_all(tmp_path / "v.mp4")
    np.testing.assert_allclose(stamps, [*times, *(start + np.arange(4) / 10)], atol=1e-5)
    with VideoReader(tmp_path / "v.mp4") as reader:
        a = reader.frames_at(times, tolerance=1e-4)
        b = reader.frames_at(start + np.arange(4) / 10, tolerance=1e-4)
        again = reader.frames_at(times[:2], tolerance=1e-4)  # going back seeks
    np.testing.assert_array_equal(a, decoded[:5])
    np.testing.assert_array_equal(b, decoded[5:])
    np.testing.assert_array_equal(again, decoded[:2])
    np.testing.assert_array_equal(frames_between(decoded, stamps, start, 4, 10), decoded[5:])


def test_reader_refuses_times_without_a_frame(tmp_path):
    encode_av1(smooth(3, 16, 16), tmp_path / "v.mp4", fps=10)
    with VideoReader(tmp_path / "v.mp4") as reader:
        with pytest.raises(VideoError, match=r"no frame within .*\(the video ends at 0\.2000s\)"):
            reader.frames_at(np.array([0.0, 0.1, 0.2, 0.3]), tolerance=0.025)
        with pytest.raises(VideoError, match=r"nearest frame is at 0\.1000s"):
            reader.frames_at(np.array([0.15]), tolerance=0.025)
    with pytest.raises(VideoError, match="is missing"):
        VideoReader(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        VideoReader(tmp_path / "bad.mp4")
