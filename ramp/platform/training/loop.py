"""The optimizer step loop shared by both trainers, and its exactly-resumable state.

One step: ``faults.point("train.step", step)``, the next batch, the step function (the world
model's loss, or the policy objective), backward, gradient averaging over ranks, clipping, AdamW,
the schedule (linear warm-up, then cosine to zero at the last step). Every ``log_every`` steps
the means of the window's metrics (over ranks too) become one history entry; every
``checkpoint_every`` steps, and at the last, the state is handed to ``checkpoint``.

Why gradients are averaged by hand instead of wrapping the model in DistributedDataParallel:
DDP's reducer expects one forward per backward through its own ``forward`` and, unless put in its
slower find-unused mode, every parameter to get a gradient every step. The policy breaks both:
the objectives call ``policy.loss`` (twice per step with the two-pass estimator), and masked
inputs or absent chain-of-thought targets leave parameters unused for a batch. One all-reduce of
the flattened gradients after backward is correct for all of that; it gives up DDP's overlap of
communication with the backward pass, which only matters at paper scale (where FSDP is the tool).

Resuming: the state holds the model, the optimizer and the schedule (written by rank 0, read by
every rank), and per rank the
torch RNG, the step generator and the unfinished log window. The data stream is a function of the
step (``data.batches``), so a fit resumed from step k takes the same steps as one that never
stopped: bit-identical parameters on CPU (tested).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ramp.platform import faults
from ramp.platform.training.settings import TrainerConfig

MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer.json"


def rank_file(rank: int) -> str:
    return f"rank-{rank}.pt"


@dataclass(frozen=True)
class StepOutput:
    """The scalar to backpropagate and float metrics (the same keys on every rank)."""

    loss: Tensor
    metrics: dict[str, float]


StepFn = Callable[[dict[str, Any]], StepOutput]
# checkpoint(step, write, metrics): make a folder, call write(folder) on every rank, persist it
CheckpointFn = Callable[[int, Callable[[Path], None], dict[str, float]], None]


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak rate at 0-based ``step``: linear warm-up, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(
    model: nn.Module, tcfg: TrainerConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters (no weight decay on biases and norms) + schedule."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else plain).append(p)
    groups = [{"params": decay, "weight_decay": tcfg.weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: lr_factor(i, tcfg.warmup_steps, tcfg.steps)
    )
    return opt, sched


def _distributed(world_size: int) -> bool:
    return (
        world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
    )


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Mean of every gradient over ranks (a missing gradient counts as zero on that rank)."""
    if not _distributed(world_size):
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def check_in_sync(model: nn.Module, world_size: int) -> None:
    """Raise if the ranks' weights drifted apart (they take identical steps from identical
    weights; a difference means a bug, and a checkpoint of rank 0 alone would hide it)."""
    if not _distributed(world_size):
        return
    with torch.no_grad():
        total = sum(p.detach().double().sum() for p in model.parameters()).reshape(1)
    lo, hi = total.clone(), total.clone()
    torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError(f"the ranks' weights differ (sums from {lo.item()} to {hi.item()})")


def broadcast_parameters(model: nn.Module, world_size: int) -> None:
    """Start every rank from rank 0's weights (whatever each rank built or loaded)."""
    if not _distributed(world_size):
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            torch.distributed.broadcast(t.data, src=0)


@dataclass
class Window:
    """Sums and counts of the metrics since the last log line (NaN values are not counted)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.sums.setdefault(k, 0.0)
            self.counts.setdefault(k, 0)
            if math.isfinite(v):
                self.sums[k] += float(v)
                self.counts[k] += 1

    def means(self, world_size: int, device: torch.device | str) -> dict[str, float]:
        """Means over the window and over ranks (every rank must call this together)."""
        keys = sorted(self.sums)
        t = torch.tensor(
            [[self.sums[k] for k in keys], [float(self.counts[k]) for k in keys]],
            dtype=torch.float64,
        )
        if _distributed(world_size):
            t = t.to(device)
            torch.distributed.all_reduce(t)
            t = t.cpu()
        return {
            k: float(t[0, i] / t[1, i]) if t[1, i] > 0 else math.nan for i, k in enumerate(keys)
        }


@dataclass
class LoopState:
    """Everything a resumed loop needs (the shared part and this rank's part)."""

    step: int
    history: list[dict[str, float]]
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    rank: dict[str, Any]
    info: dict[str, Any]


def save_state(
    folder: Path,
    *,
    rank: int,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    window: Window,
    history: list[dict[str, float]],
    info: dict[str, Any],
) -> None:
    """Write this rank's part of a checkpoint folder (rank 0 also writes the shared part)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_rank = {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generator": generator.get_state(),
        "window": {"sums": window.sums, "counts": window.counts},
    }
    torch.save(per_rank, folder / rank_file(rank))
    if rank != 0:
        return
    torch.save(model.state_dict(), folder / MODEL_FILE)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        folder / OPTIMIZER_FILE,
    )
    # trainer.json last: a folder with it is complete for rank 0
    (folder / STATE_FILE).write_text(
        json.dumps({"step": step, "history": history, "info": info}, indent=1) + "\n"
    )


def read_state(folder: str | Path, rank: int) -> LoopState:
    """Load a checkpoint folder written by ``save_state`` (for this rank) into memory."""
    folder = Path(folder)
    meta = json.loads((folder / STATE_FILE).read_text())
    per_rank_path = folder / rank_file(rank)
    if not per_rank_path.exists():
        raise FileNotFoundError(
            f"checkpoint {folder} has no state of rank {rank}: it was written by fewer workers; "
            "resume with the same training.*.num_workers, or start a new run name"
        )
    per_rank = torch.load(per_rank_path, weights_only=False)
    # every rank reads the shared part itself (the folder holds all ranks' files)
    model = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    optimizer = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=False)
    return LoopState(meta["step"], meta["history"], model, optimizer, per_rank, meta["info"])


@dataclass
class LoopResult:
    """What a finished loop reports (the history includes steps from before a resume)."""

    steps: int
    start_step: int
    history: list[dict[str, float]]
    metrics: dict[str, float]
    train_s: float
    samples: int


def train(
    model: nn.Module,
    batches: Iterator[dict[str, Any]],
    step_fn: StepFn,
    tcfg: TrainerConfig,
    *,
    generator: torch.Generator,
    state: LoopState | None = None,
    checkpoint: CheckpointFn | None = None,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    info: dict[str, Any] | None = None,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> LoopResult:
    """Run optimizer steps from ``state.step`` (or 0) to ``tcfg.steps``.

    ``batches`` must already start at that step (``data.batches(start_step=...)``). The model
    holds its initial weights on entry; a ``state`` overwrites them, and rank 0's weights are
    broadcast either way, so every rank starts from the same ones.
    """
    opt, sched = make_optimizer(model, tcfg)
    params = [p for g in opt.param_groups for p in g["params"]]
    history: list[dict[str, float]] = []
    window = Window()
    start = 0
    if state is not None:
        start, history = state.step, list(state.history)
        model.load_state_dict(state.model)
        opt.load_state_dict(state.optimizer["optimizer"])
        sched.load_state_dict(state.optimizer["scheduler"])
        torch.set_rng_state(state.rank["torch_rng"])
        if state.rank.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.rank["cuda_rng"])
        generator.set_state(state.rank["generator"])
        window = Window(**state.rank["window"])
    broadcast_parameters(model, world_size)
    model.train()
    last_window: dict[str, float] = {}
    if history:
        last_window = {k: v for k, v in history[-1].items() if k not in ("step", "lr")}
    max_norm = tcfg.grad_clip if tcfg.grad_clip is not None else math.inf
    t0 = time.perf_counter()
    for step in range(start + 1, tcfg.steps + 1):
        faults.point("train.step", step)
        batch = next(batches)
        out = step_fn(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        average_gradients(params, world_size)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        lr = float(sched.get_last_lr()[0])
        opt.step()
        sched.step()
        window.add({**out.metrics, "grad_norm": grad_norm})
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            last_window = window.means(world_size, device)
            history.append({"step": float(step), **last_window, "lr": lr})
            window = Window()
            if on_log is not None and rank == 0:
                on_log(history[-1])
        if checkpoint is not None and (step % tcfg.checkpoint_every == 0 or step == tcfg.steps):
            check_in_sync(model, world_size)

            def write(folder: Path, step: int = step, window: Window = window) -> None:
                save_state(
                    folder,
                    rank=rank,
                    step=step,
                    model=model,
                    optimizer=opt,
                    scheduler=sched,
                    generator=generator,
                    window=window,
                    history=history,
                    info=info or {},
                )

            checkpoint(step, write, {"step": float(step), **last_window})
    train_s = time.perf_counter() - t0
    trained = max(0, tcfg.steps - start)
    return LoopResult(
        steps=tcfg.steps,
        start_step=start,
        history=history,
        metrics=last_window,
        train_s=train_s,
        samples=trained * tcfg.batch_size * world_size,
    )
