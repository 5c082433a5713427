"""Small helpers both models use on their inputs: tensors from numpy, embodiments, dtypes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """numpy / list / tensor -> tensor on device (no copy when already there)."""
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)


def batch_embodiments(batch: Mapping[str, Any], b: int) -> list[str]:
    """The embodiment name of each sample (a single string applies to all)."""
    emb = batch.get("embodiment")
    if emb is None:
        raise KeyError("the batch has no 'embodiment' (needed to pick normalisation statistics)")
    out = [emb] * b if isinstance(emb, str) else list(emb)
    if len(out) != b:
        raise ValueError(f"the batch has {b} samples but {len(out)} embodiment names")
    return out


def batch_size_of(batch: Mapping[str, Any]) -> int:
    state = batch["state"]
    return int(state.shape[0]) if hasattr(state, "shape") else len(state)


def cast_dtype(module: nn.Module, dtype: torch.dtype) -> None:
    """Cast to ``dtype``, except what the library marks float32-only (``_keep_in_fp32_modules``:
    Wan's norms and time embedding, T5's ``wo``), as ``from_pretrained(torch_dtype=...)`` does."""
    nn.Module.to(module, dtype)
    if dtype == torch.float32:
        return
    for m in module.modules():
        keep = getattr(m, "_keep_in_fp32_modules", None) or []
        if not keep:
            continue
        for name, p in m.named_parameters():
            if any(k in name.split(".") for k in keep):
                p.data = p.data.float()
