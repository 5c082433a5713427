"""Loading pretrained weights from local folders (never from a hub).

transformers models load with ``from_pretrained(dir, local_files_only=True)`` (they know their
own legacy key names). diffusers components whose shapes ramp changes (the world model's DiT has
wider input and output channels than Wan2.2's, to carry the value and proprio planes) load through
``load_widened``: the checkpoint's tensors are copied into the leading slice of each wider
parameter and the new slice starts at zero, so the widened model computes exactly what the
pretrained one did until training moves the new channels (the ControlNet / Wan-I2V recipe).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn


def _require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(
            f"{what} weights {str(path)!r} is not a local directory; ramp never downloads "
            "weights: fetch them once (e.g. `huggingface-cli download REPO --local-dir DIR`) "
            "and point the config at DIR"
        )
    return p


def read_safetensors_dir(path: str | Path, what: str = "model") -> dict[str, torch.Tensor]:
    """Every tensor of a folder's ``*.safetensors`` files (sharded checkpoints included)."""
    p = _require_dir(path, what)
    files = sorted(p.glob("*.safetensors"))
    index = sorted(p.glob("*.safetensors.index.json"))
    if index:
        names = sorted(set(json.loads(index[0].read_text())["weight_map"].values()))
        files = [p / n for n in names]
    if not files:
        raise FileNotFoundError(f"{what} weights: no *.safetensors files in {p}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def load_widened(
    module: nn.Module,
    path: str | Path,
    what: str = "model",
    *,
    widen: bool = True,
    groups: dict[str, int] | None = None,
) -> list[str]:
    """Load a diffusers folder into ``module``; returns the names of parameters that were widened.

    With ``widen``, any dimension may be wider in the module than in the checkpoint (never
    narrower); every key must match. ``groups`` names parameters whose first dimension is several
    equal blocks laid out block-major (Wan's ``proj_out`` holds ``patch x channels`` rows): each
    block is widened on its own, so channel c of block k stays channel c of block k.
    """
    groups = groups or {}
    source = read_safetensors_dir(path, what)
    target = module.state_dict()
    missing = sorted(set(target) - set(source))
    unexpected = sorted(set(source) - set(target))
    if missing or unexpected:
        raise ValueError(
            f"{what} weights in {path} do not fit the configured model: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; "
            "check the model settings against the checkpoint's config.json"
        )
    widened = []
    merged = {}
    for name, want in target.items():
        got = source[name]
        if got.shape == want.shape:
            merged[name] = got.to(want.dtype)
            continue
        k = groups.get(name, 1)
        g_shape = (k, got.shape[0] // k, *got.shape[1:])
        w_shape = (k, want.shape[0] // k, *want.shape[1:])
        if (
            not widen
            or got.ndim != want.ndim
            or got.shape[0] % k
            or want.shape[0] % k
            or any(g > w for g, w in zip(g_shape, w_shape, strict=True))
        ):
            raise ValueError(
                f"{what} weight {name}: checkpoint shape {tuple(got.shape)} does not fit "
                f"{tuple(want.shape)}"
            )
        wide = torch.zeros(w_shape, dtype=want.dtype)
        wide[tuple(slice(0, g) for g in g_shape)] = got.reshape(g_shape).to(want.dtype)
        merged[name] = wide.reshape(want.shape)
        widened.append(name)
    module.load_state_dict(merged, strict=True, assign=False)
    return widened
