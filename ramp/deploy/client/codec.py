"""The wire encoding, shared by the robot-side client and the server (numpy + msgpack only).

msgpack frames carry numpy arrays the way openpi does (so ``openpi-client`` frames decode as they
are): a map with BYTES keys ``__ndarray__: True, data: <C-order bytes>, dtype: "<f4", shape: [..]``;
numpy scalars use ``__npgeneric__``. JSON bodies carry arrays as nested lists, or compactly as
``{"__ndarray__": true, "dtype": "|u1", "shape": [64, 64, 3], "data": "<base64>"}``.

Decoding never trusts the sender: only bool/int/uint/float dtypes, at most 8 dimensions, and the
byte count must match the shape; an error names the field it happened in ("images.front").
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgpack
import numpy as np

ND, GEN = "__ndarray__", "__npgeneric__"
ALLOWED_KINDS = "biuf"
MAX_DIMS = 8


class CodecError(ValueError):
    """A body or frame that cannot be decoded; ``field`` says where."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in ALLOWED_KINDS:
            raise TypeError(f"cannot send arrays of dtype {obj.dtype}")
        return {
            b"__ndarray__": True,
            b"data": np.ascontiguousarray(obj).tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


def _key(k: Any) -> Any:
    return k.decode("utf-8", "replace") if isinstance(k, bytes) else k


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _dtype(raw: Any, path: str) -> np.dtype:
    raw = _key(raw)
    try:
        dtype = np.dtype(raw)
    except Exception:  # numpy's comma-string parser raises SyntaxError too ("i4,(2"; fuzz-found)
        raise CodecError(path, f"unknown dtype {str(raw)[:32]!r}") from None
    if dtype.kind not in ALLOWED_KINDS:
        raise CodecError(path, f"dtype {dtype} is not allowed (bool, int, uint or float only)")
    return dtype


def _array(node: dict[str, Any], path: str) -> np.ndarray:
    dtype = _dtype(node.get("dtype"), path)
    shape = node.get("shape")
    if not isinstance(shape, list | tuple) or len(shape) > MAX_DIMS:
        raise CodecError(path, f"array shape must be a list of at most {MAX_DIMS} sizes")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise CodecError(path, f"array shape {list(shape)[:8]} must hold non-negative integers")
    data = node.get("data")
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except ValueError:
            raise CodecError(path, "array data is not valid base64") from None
    if not isinstance(data, bytes | bytearray):
        raise CodecError(path, "array data must be bytes (msgpack) or base64 (JSON)")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if need != len(data):
        raise CodecError(
            path,
            f"array of shape {list(shape)} and dtype {dtype.str} needs {need} bytes, got "
            f"{len(data)} (truncated or mislabelled)",
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def restore(node: Any, path: str = "") -> Any:
    """Plain decoded data -> the same with array maps turned into numpy arrays."""
    if isinstance(node, dict):
        node = {_key(k): v for k, v in node.items()}
        if node.get(ND) is True:
            return _array(node, path)
        if node.get(GEN) is True:
            dtype = _dtype(node.get("dtype"), path)
            try:
                return dtype.type(node.get("data"))
            except (TypeError, ValueError, OverflowError):
                raise CodecError(path, f"bad {dtype} scalar") from None
        return {k: restore(v, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [restore(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def unpackb(data: bytes) -> Any:
    """Decode one msgpack frame (arrays restored); CodecError for anything malformed."""
    try:
        raw = msgpack.unpackb(data, raw=False)
    except msgpack.ExtraData:
        raise CodecError("body", "extra bytes after the msgpack object") from None
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise CodecError("body", f"truncated or malformed msgpack ({e})") from None
    return _restore_top(raw)


def _restore_top(raw: Any) -> Any:
    try:
        return restore(raw)
    except RecursionError:
        raise CodecError("body", "nested too deeply") from None


def ndarray_json(arr: np.ndarray) -> dict[str, Any]:
    """The compact JSON form of an array (base64 data)."""
    arr = np.ascontiguousarray(arr)
    return {
        ND: True,
        "dtype": arr.dtype.str,
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode(),
    }


def jsonable(obj: Any, compact: bool = False) -> Any:
    """Arrays -> nested lists (or base64 objects when ``compact``), numpy scalars -> Python."""
    if isinstance(obj, np.ndarray):
        return ndarray_json(obj) if compact else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): jsonable(v, compact) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, compact) for v in obj]
    return obj


def dumps_json(obj: Any, compact: bool = False) -> bytes:
    return json.dumps(jsonable(obj, compact), allow_nan=False, separators=(",", ":")).encode()


def loads_json(data: bytes | str) -> Any:
    """Decode a JSON body (arrays in base64 form restored); CodecError with line and column."""
    try:
        raw = json.loads(data)
    except UnicodeDecodeError:
        raise CodecError("body", "JSON must be UTF-8") from None
    except json.JSONDecodeError as e:
        raise CodecError(
            "body", f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise CodecError("body", "JSON nested too deeply") from None
    return _restore_top(raw)
