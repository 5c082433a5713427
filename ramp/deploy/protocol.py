"""The wire protocol of the serving routes: pure functions, no ray, no torch (docs/api.md).

- bodies: JSON or msgpack in, JSON or msgpack out (``request_format`` / ``response_format``);
- observations are validated against the embodiment spec served with the checkpoint
  (``parse_observation``): every error is a ``ProtocolError`` whose ``field`` names the offending
  key ("images.front", "state[3]", "task") and whose status is the 4xx to answer;
- openpi observation dicts are mapped onto ramp's (``openpi_observation``);
- served actions are checked and clipped to the embodiment's bounds (``finalize_actions``);
- uploaded episodes become ``Episode`` objects for the store (``parse_episode``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ramp.deploy.client.codec import CodecError, dumps_json, loads_json, packb, unpackb
from ramp.deploy.settings import OpenpiConfig
from ramp.platform.base import did_you_mean
from ramp.platform.config import EmbodimentConfig
from ramp.platform.episodes.episode import Episode

JSON = "json"
MSGPACK = "msgpack"
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
MEDIA = {JSON: "application/json", MSGPACK: "application/msgpack"}
MAX_INSTRUCTION_CHARS = 2000
OBSERVATION_KEYS = (
    "embodiment",
    "images",
    "state",
    "instruction",
    "task",
    "request_id",
    "episode_id",
    "step",
    "timestamp",
)
EXTRA_KEY = "ramp"  # checkpoint config.json "extra" section written by checkpoint_extra()


class ProtocolError(ValueError):
    """A client mistake: the status to answer (4xx), the field it concerns, and why."""

    def __init__(self, status: int, field: str, message: str, code: str = "invalid_request"):
        self.status = status
        self.field = field
        self.message = message
        self.code = code
        super().__init__(f"{field}: {message}" if field else message)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "status": self.status,
                "code": self.code,
                "field": self.field,
                "message": self.message,
            }
        }


class NonFiniteActionsError(RuntimeError):
    """The model produced NaN or infinite actions: a server fault, never sent to a robot."""


# --------------------------------------------------------------------------- bodies


def request_format(content_type: str | None) -> str:
    """JSON (also when the header is absent) or msgpack; 415 for anything else."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("", "application/json") or media.endswith("+json"):
        return JSON
    if media in MSGPACK_TYPES:
        return MSGPACK
    raise ProtocolError(
        415,
        "content-type",
        f"unsupported Content-Type {media!r}; send application/json or application/msgpack",
        "unsupported_media_type",
    )


def response_format(accept: str | None, request_fmt: str) -> str:
    """msgpack if Accept asks for it, JSON if it asks for JSON, else the request's format."""
    accept = (accept or "").lower()
    if any(t in accept for t in MSGPACK_TYPES):
        return MSGPACK
    if "application/json" in accept:
        return JSON
    return request_fmt


def decode(body: bytes | str, fmt: str) -> Any:
    try:
        return unpackb(body) if fmt == MSGPACK else loads_json(body)
    except CodecError as e:
        raise ProtocolError(400, e.field, e.message, "malformed_body") from None


def encode(obj: Any, fmt: str) -> bytes:
    return packb(obj) if fmt == MSGPACK else dumps_json(obj)


# --------------------------------------------------------------------------- specs


def checkpoint_extra(
    embodiments: Mapping[str, EmbodimentConfig], tasks: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a trainer passes as ``publish_checkpoint(..., extra=...)`` so that the server can
    validate observations and clip actions without the training config."""
    return {
        EXTRA_KEY: {
            "embodiments": {k: v.model_dump(mode="json") for k, v in embodiments.items()},
            "tasks": dict(tasks or {}),
        }
    }


def serving_specs(
    checkpoint_config: Mapping[str, Any],
    config_embodiments: Mapping[str, EmbodimentConfig],
    dims: Mapping[str, tuple[int, int]],
) -> dict[str, EmbodimentConfig]:
    """The embodiments a checkpoint can serve: those it has statistics for (``dims``: name ->
    (state dim, action dim)) and a spec for (saved with it, else from the config)."""
    saved = (checkpoint_config.get("extra") or {}).get(EXTRA_KEY, {}).get("embodiments", {})
    out: dict[str, EmbodimentConfig] = {}
    for name, (s_dim, a_dim) in sorted(dims.items()):
        raw = saved.get(name)
        spec = EmbodimentConfig.model_validate(raw) if raw is not None else None
        spec = spec or config_embodiments.get(name)
        if spec is None:
            continue
        if (spec.state_dim, spec.action_dim) != (s_dim, a_dim):
            raise ValueError(
                f"embodiment {name!r}: the spec declares {spec.state_dim} state and "
                f"{spec.action_dim} action dimensions, the checkpoint's statistics have "
                f"{s_dim} and {a_dim}"
            )
        out[name] = spec
    if not out:
        raise ValueError(
            f"the checkpoint has statistics for {sorted(dims)} but no embodiment spec for any of "
            "them: declare them under `embodiments:` in the config, or publish checkpoints with "
            "extra=ramp.deploy.protocol.checkpoint_extra(...)"
        )
    return out


def checkpoint_tasks(checkpoint_config: Mapping[str, Any], extra: Mapping[str, str]) -> dict:
    saved = (checkpoint_config.get("extra") or {}).get(EXTRA_KEY, {}).get("tasks", {})
    return {**saved, **extra}


def describe_spec(spec: EmbodimentConfig) -> dict[str, Any]:
    """The public description of an embodiment (GET /v1/version)."""
    return {
        "cameras": {c: [s.height, s.width, 3] for c, s in spec.cameras.items()},
        "state_dim": spec.state_dim,
        "state_names": list(spec.state_names),
        "action_dim": spec.action_dim,
        "action_names": list(spec.action_names),
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "fps": spec.fps,
    }


# --------------------------------------------------------------------------- observations


@dataclass
class Observation:
    embodiment: str
    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8
    state: np.ndarray  # (S,) float32
    instruction: str
    task: str | None = None
    request_id: str | None = None

    def item(self) -> dict[str, Any]:
        """What the routes hand the batcher (numpy arrays and strings only)."""
        return {
            "embodiment": self.embodiment,
            "images": self.images,
            "state": self.state,
            "instruction": self.instruction,
        }


def _invalid(field: str, message: str, code: str = "invalid_observation") -> ProtocolError:
    return ProtocolError(422, field, message, code)


def _as_array(value: Any, field: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            raise _invalid(field, "ragged or mixed nested lists") from None
        if arr.dtype.kind not in "biuf":
            raise _invalid(field, f"must hold numbers, got {arr.dtype.kind!r}-kind values")
        return arr
    raise _invalid(field, f"must be an array (a list, or an ndarray object), got {_kind(value)}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _image(value: Any, field: str, h: int, w: int, chw_ok: bool = False) -> np.ndarray:
    arr = _as_array(value, field)
    if chw_ok and arr.ndim == 3 and arr.shape == (3, h, w) and (h, w) != (3, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape != (h, w, 3):
        raise _invalid(field, f"expected shape ({h}, {w}, 3) (height, width, RGB), got {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind in "iu" and arr.size and (arr.min() < 0 or arr.max() > 255):
            raise _invalid(field, f"expected uint8 pixels, got {arr.dtype} outside 0..255")
        if arr.dtype.kind not in "iu":
            raise _invalid(field, f"expected uint8 pixels, got dtype {arr.dtype}")
        arr = arr.astype(np.uint8)  # JSON lists decode as int64
    return np.ascontiguousarray(arr)


def _state(value: Any, field: str, dim: int) -> np.ndarray:
    arr = _as_array(value, field)
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise _invalid(field, f"expected {dim} values (a flat list), got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise _invalid(field, "expected numbers, got booleans")
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise _invalid(f"{field}[{i}]", f"is {arr[i]} (every state value must be finite)")
    return arr


def _string(obj: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _invalid(key, "is required")
        return None
    if not isinstance(value, str):
        raise _invalid(key, f"must be a string, got {_kind(value)}")
    if len(value) > MAX_INSTRUCTION_CHARS:
        raise _invalid(key, f"is longer than {MAX_INSTRUCTION_CHARS} characters")
    return value


def parse_observation(
    obj: Any,
    specs: Mapping[str, EmbodimentConfig],
    tasks: Mapping[str, str],
    *,
    chw_ok: bool = False,
) -> Observation:
    """Validate a decoded observation against the served embodiments; 4xx ProtocolError if not.

    ``{"embodiment", "images": {camera: (H, W, 3) uint8}, "state": (S,), "instruction" and/or
    "task", optional "request_id"}``. A ``task`` must be one the server knows; its instruction is
    used when no ``instruction`` is given.
    """
    if not isinstance(obj, dict):
        raise _invalid("body", f"must be a map/object, got {_kind(obj)}")
    for key in obj:
        if key not in OBSERVATION_KEYS:
            allowed = ", ".join(OBSERVATION_KEYS)
            raise _invalid(
                str(key), f"unknown field{did_you_mean(key, OBSERVATION_KEYS)}; allowed: {allowed}"
            )
    name = _string(obj, "embodiment", required=True)
    spec = specs.get(name)
    if spec is None:
        raise _invalid(
            "embodiment",
            f"unknown embodiment {name!r}{did_you_mean(name, specs)}; this policy serves: "
            f"{', '.join(sorted(specs))}",
            "unknown_embodiment",
        )
    images = obj.get("images")
    if not isinstance(images, dict):
        raise _invalid("images", f"must be a map camera -> image, got {_kind(images)}")
    for cam in images:
        if cam not in spec.cameras:
            raise _invalid(
                f"images.{cam}",
                f"camera {cam!r} is not declared for embodiment {name!r}"
                f"{did_you_mean(cam, spec.cameras)}; declared: {', '.join(spec.cameras)}",
            )
    frames = {}
    for cam, cs in spec.cameras.items():
        if cam not in images:
            raise _invalid(
                f"images.{cam}",
                f"camera {cam!r} is missing (embodiment {name!r} declares "
                f"{', '.join(spec.cameras)})",
            )
        frames[cam] = _image(images[cam], f"images.{cam}", cs.height, cs.width, chw_ok)
    if "state" not in obj:
        raise _invalid("state", f"is required ({spec.state_dim} values)")
    state = _state(obj["state"], "state", spec.state_dim)
    instruction = _string(obj, "instruction")
    task = _string(obj, "task")
    if task is not None and task not in tasks:
        known = ", ".join(sorted(tasks)) or "none (send 'instruction' instead)"
        raise _invalid(
            "task",
            f"unknown task {task!r}{did_you_mean(task, tasks)}; known: {known}",
            "unknown_task",
        )
    if instruction is None:
        if task is None:
            raise _invalid("instruction", "send an 'instruction' (or a known 'task')")
        instruction = tasks[task]
    request_id = obj.get("request_id")
    if request_id is not None and not isinstance(request_id, str | int):
        raise _invalid("request_id", "must be a string or an integer")
    return Observation(
        name, frames, state, instruction, task, None if request_id is None else str(request_id)
    )


# --------------------------------------------------------------------------- openpi


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"observation": {"image": x}} -> {"observation/image": x} (arrays are leaves)."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _camera_keys(spec: EmbodimentConfig, cfg: OpenpiConfig) -> dict[str, list[str]]:
    """camera -> the openpi keys that may carry it, in order of preference."""
    if cfg.cameras:
        keys: dict[str, list[str]] = {c: [] for c in spec.cameras}
        for key, cam in cfg.cameras.items():
            keys.setdefault(cam, []).append(key)
        return keys
    cams = list(spec.cameras)
    keys = {c: [f"observation/{c}", f"images/{c}", f"observation/images/{c}", c] for c in cams}
    keys[cams[0]].append("observation/image")
    if len(cams) > 1:
        keys[cams[1]].append("observation/wrist_image")
    return keys


def openpi_observation(
    obj: Any,
    cfg: OpenpiConfig,
    specs: Mapping[str, EmbodimentConfig],
    tasks: Mapping[str, str],
) -> Observation:
    """An openpi observation dict -> a validated ramp Observation (errors name openpi keys)."""
    if not isinstance(obj, dict):
        raise _invalid("observation", f"must be a map, got {_kind(obj)}")
    flat = flatten(obj)
    name = flat.get("embodiment", cfg.embodiment)
    if name is None:
        if len(specs) != 1:
            raise _invalid(
                "embodiment",
                f"this policy serves {sorted(specs)}: send 'embodiment' or set "
                "serve.openpi.embodiment",
            )
        name = next(iter(specs))
    if not isinstance(name, str) or name not in specs:
        raise _invalid(
            "embodiment",
            f"unknown embodiment {name!r}{did_you_mean(str(name), specs)}; this policy serves: "
            f"{', '.join(sorted(specs))}",
            "unknown_embodiment",
        )
    spec = specs[name]
    images, origin = {}, {}
    for cam, keys in _camera_keys(spec, cfg).items():
        found = next((k for k in keys if k in flat), None)
        if found is None:
            raise _invalid(
                keys[0] if keys else cam,
                f"camera {cam!r} of embodiment {name!r} is missing: send one of "
                f"{', '.join(repr(k) for k in keys)} (serve.openpi.cameras maps keys to cameras)",
            )
        images[cam], origin[f"images.{cam}"] = flat[found], found
    state_keys = cfg.state_keys
    if state_keys is None:
        state_keys = ["observation/state"] if "observation/state" in flat else ["state"]
    parts = []
    for key in state_keys:
        if key not in flat:
            raise _invalid(key, f"is required (the state, {spec.state_dim} values in all)")
        value = flat[key]
        arr = np.atleast_1d(value) if isinstance(value, np.ndarray | np.generic) else value
        parts.append(_as_array(arr if not isinstance(arr, int | float) else [arr], key).ravel())
        origin["state"] = key
    prompt = flat.get(cfg.prompt_key)
    native: dict[str, Any] = {
        "embodiment": name,
        "images": images,
        "state": np.concatenate(parts) if len(parts) > 1 else parts[0],
    }
    if prompt is not None:
        native["instruction"] = prompt
    elif "task" in flat:
        native["task"] = flat["task"]
    try:
        return parse_observation(native, specs, tasks, chw_ok=True)
    except ProtocolError as e:
        field = e.field
        for native_field, key in origin.items():
            if field == native_field or field.startswith(native_field + "["):
                field = key + field[len(native_field) :]
        if field == "instruction":
            field = cfg.prompt_key
        raise ProtocolError(e.status, field, e.message, e.code) from None


# --------------------------------------------------------------------------- actions


def finalize_actions(actions: np.ndarray, spec: EmbodimentConfig) -> tuple[np.ndarray, dict]:
    """Refuse non-finite actions and clip to the bounds: (H, A) float32, and a clip report."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != spec.action_dim:
        raise NonFiniteActionsError(
            f"the policy returned actions of shape {actions.shape}, expected (H, {spec.action_dim})"
        )
    if not np.isfinite(actions).all():
        raise NonFiniteActionsError(
            f"the policy produced {int((~np.isfinite(actions)).sum())} non-finite action values"
        )
    lo = np.asarray(spec.action_low, np.float32)
    hi = np.asarray(spec.action_high, np.float32)
    clipped = np.clip(actions, lo, hi)
    changed = clipped != actions
    report = {
        "values": int(changed.sum()),
        "dims": [n for n, c in zip(spec.action_names, changed.any(0), strict=True) if c],
    }
    return clipped, report


def act_reply(result: Mapping[str, Any], obs: Observation, server_ms: float) -> dict[str, Any]:
    """The /v1/act and /v1/stream answer."""
    reply = {
        "actions": result["actions"],
        "policy_version": result["policy_version"],
        "embodiment": obs.embodiment,
        "mode": result["mode"],
        "clipped": result["clipped"],
        "timing": {
            "infer_ms": result["infer_ms"],
            "queue_ms": result["queue_ms"],
            "server_ms": round(server_ms, 3),
            "batch_size": result["batch_size"],
        },
    }
    if obs.request_id is not None:
        reply["request_id"] = obs.request_id
    return reply


def openpi_reply(result: Mapping[str, Any], server_ms: float) -> dict[str, Any]:
    """The /v1/openpi answer: openpi's "actions" and "server_timing", plus ramp's extras."""
    return {
        "actions": result["actions"],
        "server_timing": {
            "infer_ms": result["infer_ms"],
            "queue_ms": result["queue_ms"],
            "server_ms": round(server_ms, 3),
        },
        "policy_version": result["policy_version"],
        "clipped": result["clipped"],
    }


# --------------------------------------------------------------------------- episodes

EPISODE_ARRAYS = (
    "state",
    "action",
    "reward",
    "intervention",
    "timestamp",
    "done",
    "progress",
    "trajectory_2d",
)
EPISODE_STRINGS = ("episode_id", "embodiment", "task", "instruction")
EPISODE_KEYS = (
    *EPISODE_STRINGS,
    "images",
    *EPISODE_ARRAYS,
    "success",
    "policy_version",
    "instructions",
    "subgoal",
)


def parse_episode(
    obj: Any, specs: Mapping[str, EmbodimentConfig], source: str, round_: int
) -> Episode:
    """An uploaded episode -> an ``Episode`` for the store (which checks shapes and values)."""
    if not isinstance(obj, dict):
        raise _invalid("body", f"must be a map/object, got {_kind(obj)}", "invalid_episode")
    for key in obj:
        if key not in EPISODE_KEYS:
            raise _invalid(
                str(key),
                f"unknown field{did_you_mean(key, EPISODE_KEYS)}; "
                f"allowed: {', '.join(EPISODE_KEYS)}",
                "invalid_episode",
            )
    for key in (*EPISODE_STRINGS, "images", "state", "action", "success", "policy_version"):
        if key not in obj:
            raise _invalid(key, "is required", "invalid_episode")
    for key in EPISODE_STRINGS:
        if not isinstance(obj[key], str):
            raise _invalid(key, f"must be a string, got {_kind(obj[key])}", "invalid_episode")
    if obj["embodiment"] not in specs:
        raise _invalid(
            "embodiment",
            f"unknown embodiment {obj['embodiment']!r}{did_you_mean(obj['embodiment'], specs)}; "
            f"known: {', '.join(sorted(specs))}",
            "unknown_embodiment",
        )
    if not isinstance(obj["success"], bool):
        raise _invalid(
            "success", f"must be true or false, got {_kind(obj['success'])}", "invalid_episode"
        )
    images = obj["images"]
    if not isinstance(images, dict):
        raise _invalid("images", "must be a map camera -> (T, H, W, 3) uint8", "invalid_episode")
    arrays = {}
    for key in EPISODE_ARRAYS:
        if obj.get(key) is not None:
            try:
                arrays[key] = _as_array(obj[key], key)
            except ProtocolError as e:
                raise ProtocolError(422, e.field, e.message, "invalid_episode") from None
    frames = {}
    for cam, value in images.items():
        try:
            frames[str(cam)] = _as_array(value, f"images.{cam}")
        except ProtocolError as e:
            raise ProtocolError(422, e.field, e.message, "invalid_episode") from None
    version = obj["policy_version"]
    if not (
        isinstance(version, str)
        or (isinstance(version, list) and all(isinstance(v, str) for v in version))
    ):
        raise _invalid(
            "policy_version",
            "must be a string or a list of strings (one per step)",
            "invalid_episode",
        )
    for key in ("instructions", "subgoal"):
        value = obj.get(key)
        if value is not None and not (
            isinstance(value, list) and all(v is None or isinstance(v, str) for v in value)
        ):
            raise _invalid(key, "must be a list of strings (one per step)", "invalid_episode")
    return Episode(
        episode_id=obj["episode_id"],
        embodiment=obj["embodiment"],
        task=obj["task"],
        instruction=obj["instruction"],
        images=frames,
        state=arrays["state"],
        action=arrays["action"],
        success=obj["success"],
        source=source,
        policy_version=version,
        round=round_,
        reward=arrays.get("reward"),
        intervention=arrays.get("intervention"),
        timestamp=arrays.get("timestamp"),
        done=arrays.get("done"),
        instructions=obj.get("instructions"),
        subgoal=obj.get("subgoal"),
        progress=arrays.get("progress"),
        trajectory_2d=arrays.get("trajectory_2d"),
    )
