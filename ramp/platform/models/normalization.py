"""Per-embodiment state/action normalisation statistics, computed from the store, saved with models.

Why a hard error when they are missing: a policy run on unnormalised values acts on the wrong scale
with no error and no warning (a LeRobot bug report). So statistics are computed once from the
episode store (``compute_norm_stats``), travel with every checkpoint (``norm_stats.json``), and a
model asked to act or train on an embodiment it has no statistics for raises
``MissingNormStatsError`` saying how to compute them.

Both the q01/q99 quantiles and the mean/std are stored, so the normalisation mode is a model
setting, not a property of the file. ``quantile`` maps [q01, q99] onto [-1, 1] (what the discrete
action tokens bin); ``meanstd`` standardises. Padded dimensions (the model pads every embodiment to
``max_state_dim`` / ``max_action_dim``) are zero after normalisation and carry a False mask.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from ramp.platform.base import StrictModel

NORM_STATS_FORMAT_VERSION = 1
NORM_STATS_FILE = "norm_stats.json"
EPS = 1e-6
HOW_TO_COMPUTE = (
    "compute them from the episode store and attach them:\n"
    "    from ramp.platform.episodes import EpisodeStore\n"
    "    from ramp.platform.models import compute_norm_stats\n"
    "    stats = compute_norm_stats(EpisodeStore(ROOT))   # every embodiment in the store\n"
    "    model.set_norm_stats(stats)   # saved as norm_stats.json with the next checkpoint"
)


class MissingNormStatsError(ValueError):
    """Normalisation statistics are absent for an embodiment (or a checkpoint lacks the file)."""

    def __init__(self, what: str):
        super().__init__(f"{what}; {HOW_TO_COMPUTE}")


class ArrayStats(StrictModel):
    """Statistics of one vector quantity (state or action) of one embodiment."""

    mean: list[float]
    std: list[float]
    q01: list[float]
    q99: list[float]
    count: int = Field(ge=0, description="rows the statistics were computed from")

    @model_validator(mode="after")
    def _same_length(self) -> ArrayStats:
        n = len(self.mean)
        for name in ("std", "q01", "q99"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values, mean has {n}")
        return self

    @property
    def dim(self) -> int:
        return len(self.mean)


class EmbodimentStats(StrictModel):
    state: ArrayStats
    action: ArrayStats


class NormStats(StrictModel):
    """Everything norm_stats.json holds: statistics per embodiment name."""

    format_version: int = Field(
        default=NORM_STATS_FORMAT_VERSION, ge=1, le=NORM_STATS_FORMAT_VERSION
    )
    embodiments: dict[str, EmbodimentStats] = Field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> NormStats:
        return cls.model_validate(json.loads(text))

    def merged(self, other: NormStats) -> NormStats:
        """These statistics with ``other``'s added (other wins for an embodiment in both)."""
        return NormStats(embodiments={**self.embodiments, **other.embodiments})


def array_stats(x: np.ndarray) -> ArrayStats:
    """Mean, std, 1st and 99th percentile per column of a (rows, dims) array."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"need a non-empty (rows, dims) array, got shape {x.shape}")
    q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
    return ArrayStats(
        mean=x.mean(0).tolist(),
        std=x.std(0).tolist(),
        q01=q01.tolist(),
        q99=q99.tolist(),
        count=int(x.shape[0]),
    )


def stats_from_arrays(
    per_embodiment: dict[str, tuple[np.ndarray, np.ndarray]],
) -> NormStats:
    """NormStats from {embodiment: (states (N, S), actions (N, A))}: for tests and importers."""
    return NormStats(
        embodiments={
            name: EmbodimentStats(state=array_stats(s), action=array_stats(a))
            for name, (s, a) in per_embodiment.items()
        }
    )


def _matrix(table: Any, column: str) -> np.ndarray:
    col = table.column(column).combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def compute_norm_stats(
    store: Any,
    *,
    embodiments: Iterable[str] | None = None,
    episode_ids: Iterable[str] | None = None,
    max_rows: int = 1_000_000,
    seed: int = 0,
) -> NormStats:
    """Statistics of every (or the named) embodiment's states and actions in an EpisodeStore.

    Means and standard deviations use every row; quantiles use at most ``max_rows`` rows per
    embodiment (a seeded subsample when there are more), which bounds memory on large stores.
    """
    wanted = set(embodiments) if embodiments is not None else None
    entries = store.episodes(ids=episode_ids)
    groups: dict[str, list[Any]] = defaultdict(list)
    for e in entries:
        if wanted is None or e.embodiment in wanted:
            groups[e.embodiment].append(e)
    if wanted is not None and (absent := sorted(wanted - set(groups))):
        raise ValueError(f"the store has no episodes of embodiment(s) {absent}")
    if not groups:
        raise ValueError(f"the store at {store.root} has no episodes to compute statistics from")
    rng = np.random.default_rng(seed)
    out: dict[str, EmbodimentStats] = {}
    for name, group in sorted(groups.items()):
        total = sum(e.num_steps for e in group)
        keep_p = min(1.0, max_rows / max(total, 1))
        sums: dict[str, list[np.ndarray]] = {"state": [], "action": []}
        kept: dict[str, list[np.ndarray]] = {"state": [], "action": []}
        for _, table in store.iter_episodes(group, columns=["state", "action"]):
            for col in ("state", "action"):
                x = _matrix(table, col).astype(np.float64)
                sums[col].append(np.stack([x.sum(0), (x * x).sum(0)]))
                if keep_p < 1.0:
                    x = x[rng.random(len(x)) < keep_p]
                kept[col].append(x)
        parts = {}
        for col in ("state", "action"):
            s = np.sum(sums[col], axis=0)
            quant = array_stats(np.concatenate(kept[col]))
            mean = s[0] / total
            std = np.sqrt(np.maximum(s[1] / total - mean * mean, 0.0))
            parts[col] = quant.model_copy(
                update={"mean": mean.tolist(), "std": std.tolist(), "count": total}
            )
        out[name] = EmbodimentStats(**parts)
    return NormStats(embodiments=out)


class Normalizer(nn.Module):
    """Normalises padded state/action tensors per sample, by each sample's embodiment.

    Buffers are not persistent: the statistics live in norm_stats.json, not in the weights, so a
    checkpoint's weights are independent of them and ``set_norm_stats`` can replace them.
    """

    def __init__(self, max_state_dim: int, max_action_dim: int | None, mode: str = "quantile"):
        super().__init__()
        self.max_state_dim = max_state_dim
        self.max_action_dim = max_action_dim
        self.kinds = {"state": max_state_dim}
        if max_action_dim is not None:  # the world model reads no actions
            self.kinds["action"] = max_action_dim
        self.mode = mode
        self.stats: NormStats | None = None
        self.names: list[str] = []
        for kind, dim in self.kinds.items():
            self.register_buffer(f"{kind}_offset", torch.zeros(0, dim), persistent=False)
            self.register_buffer(f"{kind}_scale", torch.ones(0, dim), persistent=False)
            self.register_buffer(f"{kind}_mask", torch.zeros(0, dim, dtype=torch.bool), False)

    def set_stats(self, stats: NormStats) -> None:
        device = self.state_offset.device
        names = sorted(stats.embodiments)
        for kind, max_dim in self.kinds.items():
            offset = torch.zeros(len(names), max_dim, dtype=torch.float64)
            scale = torch.ones(len(names), max_dim, dtype=torch.float64)
            mask = torch.zeros(len(names), max_dim, dtype=torch.bool)
            for i, name in enumerate(names):
                a: ArrayStats = getattr(stats.embodiments[name], kind)
                if a.dim > max_dim:
                    raise ValueError(
                        f"embodiment {name!r} has {a.dim} {kind} dimensions but the model pads "
                        f"to {max_dim}; raise max_{kind}_dim in the model settings"
                    )
                if self.mode == "quantile":
                    lo = torch.tensor(a.q01, dtype=torch.float64)
                    hi = torch.tensor(a.q99, dtype=torch.float64)
                    offset[i, : a.dim] = (lo + hi) / 2
                    scale[i, : a.dim] = (hi - lo).clamp_min(EPS) / 2
                else:
                    offset[i, : a.dim] = torch.tensor(a.mean, dtype=torch.float64)
                    scale[i, : a.dim] = torch.tensor(a.std, dtype=torch.float64).clamp_min(EPS)
                mask[i, : a.dim] = True
            setattr(self, f"{kind}_offset", offset.float().to(device))
            setattr(self, f"{kind}_scale", scale.float().to(device))
            setattr(self, f"{kind}_mask", mask.to(device))
        self.stats = stats
        self.names = names

    def indices(self, embodiments: Sequence[str]) -> Tensor:
        """Row of each sample's embodiment; MissingNormStatsError for an unknown one."""
        if self.stats is None:
            raise MissingNormStatsError("the model has no normalisation statistics at all")
        lookup = {n: i for i, n in enumerate(self.names)}
        missing = sorted({e for e in embodiments if e not in lookup})
        if missing:
            raise MissingNormStatsError(
                f"no normalisation statistics for embodiment(s) {missing} (the model has "
                f"{self.names})"
            )
        return torch.tensor([lookup[e] for e in embodiments], device=self.state_offset.device)

    def dims(self, kind: str, idx: Tensor) -> Tensor:
        """Bool mask (B, max_dim) of each sample's real dimensions."""
        return getattr(self, f"{kind}_mask")[idx]

    def _pad(self, x: Tensor, max_dim: int, kind: str) -> Tensor:
        d = x.shape[-1]
        if d > max_dim:
            raise ValueError(f"{kind} has {d} dimensions; the model pads to at most {max_dim}")
        if d < max_dim:
            x = torch.nn.functional.pad(x, (0, max_dim - d))
        return x

    def normalize(self, kind: str, x: Tensor, idx: Tensor) -> Tensor:
        """(B, [T,] D) raw values, padded to the model's width -> normalised, padding zeroed."""
        x = self._pad(x.to(self.state_offset.dtype), self.kinds[kind], kind)
        offset, scale, mask = (
            getattr(self, f"{kind}_{p}")[idx] for p in ("offset", "scale", "mask")
        )
        if x.ndim == 3:
            offset, scale, mask = offset[:, None], scale[:, None], mask[:, None]
        return torch.where(mask, (x - offset) / scale, torch.zeros_like(x))

    def unnormalize(self, kind: str, x: Tensor, idx: Tensor) -> Tensor:
        """Inverse of ``normalize`` (padding stays zero)."""
        offset, scale, mask = (
            getattr(self, f"{kind}_{p}")[idx] for p in ("offset", "scale", "mask")
        )
        if x.ndim == 3:
            offset, scale, mask = offset[:, None], scale[:, None], mask[:, None]
        x = x.to(offset.dtype)
        return torch.where(mask, x * scale + offset, torch.zeros_like(x))
