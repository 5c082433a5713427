"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``norm_stats.json``, on disk or S3.

Layout (ARCHITECTURE.md): ``<root>/checkpoints/<kind>/<version>/`` with kind "policy" or
"world-model" and version ``<kind>-r<round>-<8 hex of the content hash>``; a checkpoint with a
non-builtin tokenizer also carries it under ``tokenizer/``. Saving is bit-exact (the tensors are
written as they are in memory, in their dtype) and atomic per file (StoreFS). Loading rebuilds the
model from the saved settings (never from the pretrained-weight folders the settings may name:
those paths are cleared on save, the checkpoint holds every weight) and refuses a checkpoint
without norm_stats.json (MissingNormStatsError).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
import xxhash
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ramp import __version__
from ramp.platform.episodes.fs import StoreFS
from ramp.platform.models.normalization import (
    NORM_STATS_FILE,
    MissingNormStatsError,
    NormStats,
)
from ramp.platform.models.tokenizer import BUILTIN

CHECKPOINT_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINTS_DIR = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked; the message says why."""


def _clear_weight_paths(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (None if k == "weights" else _clear_weight_paths(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_clear_weight_paths(v) for v in node]
    return node


def _unique_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with tied tensors stored once; {alias: stored name} for the rest."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...]], str] = {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().contiguous().cpu()
    return tensors, aliases


def _kinds() -> dict[str, type]:
    from ramp.platform.models.policy import RampPolicy
    from ramp.platform.models.world_model import WorldModel

    return {RampPolicy.kind: RampPolicy, WorldModel.kind: WorldModel}


def _fs(dest: str | Path | StoreFS) -> StoreFS:
    return dest if isinstance(dest, StoreFS) else StoreFS.from_root(str(dest))


def _join(rel: str, name: str) -> str:
    return f"{rel.rstrip('/')}/{name}" if rel else name


def serialize(model: nn.Module) -> tuple[bytes, dict[str, Any], str]:
    """(weights bytes, config.json dict, norm_stats.json text) of a model.

    config.json's "content_hash" covers the tensors (names, dtypes, shapes, bytes), the settings
    and the statistics, not the safetensors bytes: their header order is not deterministic.
    """
    stats: NormStats | None = getattr(model, "norm_stats", None)
    if stats is None:
        raise MissingNormStatsError(
            f"cannot save a {model.kind} checkpoint without normalisation statistics"
        )
    tensors, aliases = _unique_state(model)
    weights = save_safetensors(tensors, metadata={"format": "pt", "kind": model.kind})
    settings = _clear_weight_paths(model.cfg.model_dump(mode="json"))
    config = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": model.kind,
        "settings": settings,
        "aliases": aliases,
        "ramp_version": __version__,
        "dtypes": sorted({str(t.dtype) for t in tensors.values()}),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    stats_text = stats.to_json()
    config["content_hash"] = content_hash(tensors, settings, stats_text)
    return weights, config, stats_text


def content_hash(tensors: dict[str, torch.Tensor], settings: Any, norm_stats: str) -> str:
    """xxh3-64 of the tensors (sorted by name), the settings and the statistics."""
    h = xxhash.xxh3_64()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(norm_stats.encode())
    return h.hexdigest()


def make_version(kind: str, round_: int, digest: str) -> str:
    """``<kind>-r<round>-<short hash>`` (ARCHITECTURE.md, checkpoints and versions)."""
    return f"{kind}-r{int(round_)}-{digest[:8]}"


def save_checkpoint(
    model: nn.Module,
    dest: str | Path | StoreFS,
    rel: str = "",
    *,
    version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a checkpoint folder (``rel`` under ``dest``); returns its config.json contents."""
    return _write(model, _fs(dest), rel, serialize(model), version, extra)


def _write(
    model: nn.Module,
    fs: StoreFS,
    rel: str,
    serialized: tuple[bytes, dict[str, Any], str],
    version: str | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    weights, config, stats = serialized
    config["version"] = version
    if extra:
        config["extra"] = extra
    tokenizer_spec = getattr(model.cfg, "tokenizer", BUILTIN)
    if tokenizer_spec != BUILTIN:
        with tempfile.TemporaryDirectory() as tmp:
            model.tokenizer.save_pretrained(tmp)
            for f in sorted(Path(tmp).iterdir()):
                fs.write_atomic(_join(rel, f"{TOKENIZER_DIR}/{f.name}"), f.read_bytes())
        config["tokenizer"] = TOKENIZER_DIR
    fs.write_atomic(_join(rel, WEIGHTS_FILE), weights)
    fs.write_atomic(_join(rel, NORM_STATS_FILE), stats.encode())
    # config.json last: a folder with a config.json is complete.
    fs.write_atomic(_join(rel, CONFIG_FILE), (json.dumps(config, indent=1) + "\n").encode())
    return config


def publish_checkpoint(
    model: nn.Module,
    root: str | Path | StoreFS,
    *,
    round_: int,
    extra: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Save under ``<root>/checkpoints/<kind>/<version>/``; returns (version, folder rel path)."""
    serialized = serialize(model)
    version = make_version(model.kind, round_, serialized[1]["content_hash"])
    rel = f"{CHECKPOINTS_DIR}/{model.kind}/{version}"
    _write(model, _fs(root), rel, serialized, version, extra)
    return version, rel


def read_config(src: str | Path | StoreFS, rel: str = "") -> dict[str, Any]:
    fs = _fs(src)
    text = fs.read_text(_join(rel, CONFIG_FILE))
    if text is None:
        raise CheckpointError(f"{fs.full(_join(rel, CONFIG_FILE))} does not exist")
    config = json.loads(text)
    fv = config.get("format_version")
    if not isinstance(fv, int) or fv > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {fs.full(rel)} has format_version {fv!r}; this ramp reads up to "
            f"{CHECKPOINT_FORMAT_VERSION} (upgrade ramp)"
        )
    return config


def load_checkpoint(
    src: str | Path | StoreFS,
    rel: str = "",
    *,
    device: torch.device | str = "cpu",
    kind: str | None = None,
) -> nn.Module:
    """Rebuild a policy or world model from a checkpoint folder, weights bit-exact."""
    from ramp.platform.models.settings import PolicyConfig, WorldModelConfig

    fs = _fs(src)
    config = read_config(fs, rel)
    kinds = _kinds()
    got = config.get("kind")
    if got not in kinds or (kind is not None and got != kind):
        raise CheckpointError(f"checkpoint {fs.full(rel)} holds {got!r}, expected {kind or kinds}")
    stats_text = fs.read_text(_join(rel, NORM_STATS_FILE))
    if stats_text is None:
        raise MissingNormStatsError(f"checkpoint {fs.full(rel)} has no {NORM_STATS_FILE}")
    stats = NormStats.from_json(stats_text)
    settings = dict(config["settings"])
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if config.get("tokenizer"):
        tok_rel = _join(rel, config["tokenizer"])
        if fs.is_local:
            settings["tokenizer"] = fs.full(tok_rel)
        else:
            tmp = tempfile.TemporaryDirectory()
            for f in fs.list_files(tok_rel):
                (Path(tmp.name) / Path(f).name).write_bytes(fs.read_bytes(f))
            settings["tokenizer"] = tmp.name
    cfg_cls = PolicyConfig if got == "policy" else WorldModelConfig
    model = kinds[got](cfg_cls.model_validate(settings))
    tensors = load_safetensors(fs.read_bytes(_join(rel, WEIGHTS_FILE)))
    result = model.load_state_dict(tensors, strict=False)
    missing = set(result.missing_keys) - set(config.get("aliases", {}))
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {fs.full(rel)} does not match its settings: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]}"
        )
    model.set_norm_stats(stats)
    model.checkpoint_version = config.get("version")
    if tmp is not None:
        model._tokenizer_tmp = tmp  # keep the folder alive as long as the model
    return model.to(device)
