"""Camera frames to bytes and back.

Three encodings, chosen per store (``store.image_encoding``): ``raw`` keeps uint8 H x W x 3 as a
fixed-size binary cell and lets the file's zstd compress it (fastest to decode, lossless, and
decoding a whole episode is one zero-copy reshape); ``png`` is lossless and smaller on flat
renders, but slower; ``jpeg`` is lossy and smallest for camera photos. The measured trade-off is in
docs/episode-format.md.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import pyarrow as pa

Encoding = Literal["raw", "png", "jpeg"]
ENCODINGS: tuple[str, ...] = ("raw", "png", "jpeg")


def frame_type(encoding: str, height: int, width: int) -> pa.DataType:
    """Arrow type of one camera column."""
    if encoding == "raw":
        return pa.binary(height * width * 3)
    if encoding in ("png", "jpeg"):
        return pa.binary()
    raise ValueError(f"unknown image encoding {encoding!r}; allowed: {', '.join(ENCODINGS)}")


def encode_frames(frames: np.ndarray, encoding: str, quality: int = 95) -> pa.Array:
    """(T, H, W, 3) uint8 -> an Arrow array of T cells."""
    frames = np.ascontiguousarray(frames)
    t, h, w, _ = frames.shape
    if encoding == "raw":
        return pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(h * w * 3), t, [None, pa.py_buffer(frames.reshape(-1))]
        )
    from PIL import Image

    out = []
    for frame in frames:
        buf = io.BytesIO()
        img = Image.fromarray(frame)
        if encoding == "png":
            img.save(buf, format="PNG", compress_level=1)
        elif encoding == "jpeg":
            img.save(buf, format="JPEG", quality=quality)
        else:
            raise ValueError(
                f"unknown image encoding {encoding!r}; allowed: {', '.join(ENCODINGS)}"
            )
        out.append(buf.getvalue())
    return pa.array(out, type=pa.binary())


def decode_frames(
    column: pa.Array | pa.ChunkedArray, encoding: str, height: int, width: int
) -> np.ndarray:
    """An Arrow camera column -> (T, H, W, 3) uint8. Raw frames are a zero-copy view."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    if encoding == "raw":
        buf = column.buffers()[1]
        size = height * width * 3
        flat = np.frombuffer(buf, dtype=np.uint8, count=(column.offset + n) * size)
        return flat[column.offset * size :].reshape(n, height, width, 3)
    from PIL import Image

    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i, cell in enumerate(column):
        with Image.open(io.BytesIO(cell.as_py())) as img:
            out[i] = np.asarray(img.convert("RGB"))
    return out


def decode_frame(cell: bytes, encoding: str, height: int, width: int) -> np.ndarray:
    """One stored cell -> (H, W, 3) uint8."""
    if encoding == "raw":
        return np.frombuffer(cell, dtype=np.uint8).reshape(height, width, 3)
    from PIL import Image

    with Image.open(io.BytesIO(cell)) as img:
        return np.asarray(img.convert("RGB"))


def encoded_size(cell: bytes, encoding: str) -> tuple[int, int] | None:
    """(height, width) read from an encoded frame's header without decoding it; None for raw."""
    if encoding == "raw":
        return None
    from PIL import Image

    with Image.open(io.BytesIO(cell)) as img:
        w, h = img.size
    return h, w
