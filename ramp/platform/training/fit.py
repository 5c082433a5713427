"""One trainer fit on one rank, free of Ray: what a Ray Train worker runs, testable in-process.

``run(cfg, spec, rank=..., world_size=...)`` prepares the data (rank 0 computes normalisation
statistics and value targets and, under torch.distributed, broadcasts them: one read of the
store per fit, not one per rank), builds or loads the model, runs ``loop.train`` and, on rank 0,
publishes the final model into ``<root>/checkpoints/<kind>/<version>`` and records the outcome
next to Ray Train's run storage (``<root>/train-runs/<run name>/``):

- ``ramp-result.json``: the finished fit (version, history, metrics); a later call with the same
  run name returns it instead of training again;
- ``ramp-attempts/<fit id>/*.json``: one record per start of the loop within one driver call, so
  the driver can tell how many times the workers failed and restarted.

The world model trains on ``wm.loss`` with the value target (``data.value_targets``), on every
episode but the held-out split (``fit_ids``: ``training.world_model.holdout_fraction``; the
labeller's value report judges the values there); the policy on
``rl.objectives.build_objective(cfg.rl.objective, stage)`` over the label sidecars of the named
world-model version, and, for objectives that use the world model (RAMP), on z from the frozen
world model: ``batch["wm_tokens"]`` is ``wm.predict`` of the samples whose z the objective keeps
(a callable of the keep mask: the world model's pass is half of a step, z_dropout masks most z).
Both skip the transitional steps around human takeovers as start steps when
``rl.interventions.enabled`` (``data.cleaned_steps``, counted in the outcome's ``data/steps``
and ``data/cleaned_steps``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ramp.platform.config import RampConfig
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.checkpoints import CHECKPOINTS_DIR, load_checkpoint, publish_checkpoint
from ramp.platform.models.normalization import NormStats
from ramp.platform.rl.contract import WM_TOKENS
from ramp.platform.rl.objectives import build_objective
from ramp.platform.rl.rewards import env_t_max
from ramp.platform.rl.settings import Stage
from ramp.platform.rl.value_report import split_ids
from ramp.platform.training import data, loop
from ramp.platform.training.settings import TrainerConfig

Kind = Literal["world-model", "policy"]
KINDS: tuple[str, ...] = ("world-model", "policy")
RUNS_DIR = "train-runs"
RESULT_FILE = "ramp-result.json"
ATTEMPTS_DIR = "ramp-attempts"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSpec:
    """What one fit trains: the driver builds it, every worker gets a copy."""

    kind: Kind
    round_: int
    episode_ids: tuple[str, ...]
    run_name: str
    init: str | None = None  # a checkpoint version in the store, or a local checkpoint folder
    world_model: str | None = None  # policy: whose labels (and, for RAMP, whose z)
    stage: Stage = "policy_training"
    fit_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # one per driver call

    @property
    def run_dir(self) -> str:
        return f"{RUNS_DIR}/{self.run_name}"


@dataclass
class FitOutcome:
    """Rank 0's account of a finished fit (the driver adds wall time, setup and failures)."""

    kind: str
    version: str
    path: str
    steps: int
    resumed_from_step: int
    metrics: dict[str, float]
    history: list[dict[str, float]]


def fit_ids(cfg: RampConfig, spec: FitSpec) -> tuple[str, ...]:
    """The episodes a fit draws samples from: the world model leaves out the held-out split
    (``rl.value_report.split_ids`` by a stable hash of the id, the same episodes every round:
    the labeller reports the values on them); the policy trains on every episode."""
    if spec.kind != "world-model":
        return spec.episode_ids
    train, _ = split_ids(spec.episode_ids, cfg.training.world_model.holdout_fraction)
    return tuple(train)


def trainer_key(kind: str) -> str:
    """The config section of a fit's trainer, as errors name it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return "training.world_model" if kind == "world-model" else "training.policy"


def trainer_config(cfg: RampConfig, kind: str) -> TrainerConfig:
    return getattr(cfg.training, trainer_key(kind).removeprefix("training."))


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


# ------------------------------------------------------------------------- checks and models


def check_spec(cfg: RampConfig, store: EpisodeStore, spec: FitSpec) -> None:
    """Cheap checks worth doing before workers start (a Ray Train fit costs ~20 s to set up)."""
    trainer_config(cfg, spec.kind)
    data.check_sampling(cfg)
    if not spec.episode_ids:
        raise ValueError(f"no episodes to train the {spec.kind} on (the id list is empty)")
    if not fit_ids(cfg, spec):
        raise ValueError(
            f"all {len(spec.episode_ids)} episodes fall in the world model's held-out split "
            f"(training.world_model.holdout_fraction "
            f"{cfg.training.world_model.holdout_fraction:g}); add episodes or set it to 0"
        )
    if spec.kind == "policy":
        if not spec.world_model:
            raise ValueError("the policy trains on the labels of a world model: name its version")
        labelled = store.labelled_ids(spec.world_model)
        missing = sorted(set(spec.episode_ids) - labelled)
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(set(spec.episode_ids))} episodes have no labels of world "
                f"model {spec.world_model!r}, e.g. {missing[0]!r} (run `ramp label` first)"
            )
        objective = build_objective(cfg.rl.objective, spec.stage)
        if getattr(objective, "use_world_model", False):
            rel = f"{CHECKPOINTS_DIR}/world-model/{spec.world_model}/config.json"
            if not store.fs.exists(rel):
                raise FileNotFoundError(
                    f"objective {objective.name!r} conditions on the world model, but "
                    f"{store.fs.full(rel)} does not exist"
                )


def load_init(store: EpisodeStore, kind: str, init: str, device: torch.device | str) -> nn.Module:
    """``init`` as a local checkpoint folder, else as a version in the store."""
    if Path(init).is_dir():
        return load_checkpoint(init, device=device, kind=kind)
    return load_checkpoint(store.fs, f"{CHECKPOINTS_DIR}/{kind}/{init}", device=device, kind=kind)


def build_model(
    cfg: RampConfig,
    spec: FitSpec,
    store: EpisodeStore,
    stats: NormStats,
    device: torch.device | str,
    seed: int,
) -> nn.Module:
    """Random init from ``cfg.models`` (seeded: every rank builds the same weights) or ``init``.

    A loaded checkpoint keeps its own statistics for the embodiments it knows (its weights were
    trained on that scale) and gains the training data's for new embodiments.
    """
    torch.manual_seed(seed)
    if spec.init:
        model = load_init(store, spec.kind, spec.init, device)
        model.set_norm_stats(stats.merged(model.norm_stats))
    elif spec.kind == "world-model":
        model = build_world_model(cfg.models, stats)
    else:
        model = build_policy(cfg.models, stats)
    s = cfg.sampling
    if spec.kind == "policy" and model.cfg.chunk_size != s.chunk_size:
        raise ValueError(
            f"the policy predicts chunks of {model.cfg.chunk_size} steps, sampling.chunk_size is "
            f"{s.chunk_size}; set them equal"
        )
    if spec.kind == "world-model" and list(model.cfg.future_offsets) != list(s.future_offsets):
        raise ValueError(
            f"the world model predicts offsets {model.cfg.future_offsets}, "
            f"sampling.future_offsets is {s.future_offsets}; set them equal"
        )
    return model.to(device)


def world_model_step(model: nn.Module) -> loop.StepFn:
    """``wm.loss(batch).mean()``, with the mean of each loss term as a metric."""

    def step(batch: dict[str, Any]) -> loop.StepOutput:
        terms = model.loss_terms(batch)
        loss = terms["loss"].mean()
        metrics = {"loss": float(loss.detach())}
        for name, value in terms.items():
            if name != "loss" and value.dtype.is_floating_point:
                metrics[f"loss/{name}"] = float(value.detach().mean())
        return loop.StepOutput(loss, metrics)

    return step


def policy_step(
    cfg: RampConfig,
    spec: FitSpec,
    model: nn.Module,
    store: EpisodeStore,
    device: torch.device | str,
    generator: torch.Generator,
) -> loop.StepFn:
    """The configured objective; objectives that use the world model get z from a frozen one."""
    objective = build_objective(cfg.rl.objective, spec.stage)
    wm: nn.Module | None = None
    if getattr(objective, "use_world_model", False):
        rel = f"{CHECKPOINTS_DIR}/world-model/{spec.world_model}"
        wm = load_checkpoint(store.fs, rel, device=device, kind="world-model")
        wm.eval().requires_grad_(False)

    def step(batch: dict[str, Any]) -> loop.StepOutput:
        if wm is not None:
            # z only for the samples whose z the objective keeps: the world model's forward pass
            # is half of a step's time (measured), and z_dropout masks most samples' z anyway
            batch[WM_TOKENS] = functools.partial(_tokens_where, wm, batch, generator, spec)
        out = objective(model, batch, generator)
        return loop.StepOutput(out.loss, out.metrics)

    return step


def _select(value: Any, idx: list[int]) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value[idx]
    if isinstance(value, dict):
        return {k: _select(v, idx) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [value[i] for i in idx]
    return value


def _tokens_where(
    wm: nn.Module, batch: dict[str, Any], generator: torch.Generator, spec: FitSpec, keep: Any
) -> torch.Tensor:
    """World-model tokens (B, Nz, Dz) for the samples where ``keep`` is True; zeros elsewhere
    (the policy never reads a masked z). With none kept, one sample gives the shape."""
    keep = torch.as_tensor(keep).cpu()
    idx = [int(i) for i in keep.nonzero().flatten()] or [0]
    sub = {k: _select(v, idx) for k, v in batch.items() if k != WM_TOKENS}
    tokens = wm.predict(sub, generator=generator).tokens
    if tokens is None:
        raise ValueError(
            f"the objective conditions on the world model's tokens, but {spec.world_model!r} "
            "(value_predictor 'vlm') predicts none"
        )
    out = tokens.new_zeros((keep.shape[0], *tokens.shape[1:]))
    if bool(keep.any()):
        out[idx] = tokens
    return out


# ------------------------------------------------------------------------- data preparation


@dataclass
class Prepared:
    stats: NormStats
    targets: data.ValueTargets | None
    cleaned: data.CleanedSteps  # steps that start no sample: the same on every rank


def prepare(
    cfg: RampConfig, store: EpisodeStore, spec: FitSpec, rank: int, world_size: int
) -> Prepared:
    """Statistics, the steps cleaning drops (and the world model's value targets) on rank 0,
    shared with the others. A resumed fit recomputes them: they are functions of the store's
    episodes and the config, so the resumed batch stream is the uninterrupted one."""
    distributed = world_size > 1 and torch.distributed.is_initialized()
    prepared = None
    ids = fit_ids(cfg, spec)
    if rank == 0 or not distributed:
        stats = data.norm_stats(store, ids)
        # targets over every id: the reward scale is the labeller's (same ids, same env_t_max)
        targets = (
            data.value_targets(store, spec.episode_ids, cfg.rl, env_t_max(cfg))
            if spec.kind == "world-model"
            else None
        )
        cleaned = data.cleaned_steps(store, ids, cfg.rl.interventions)
        prepared = Prepared(stats, targets, cleaned)
    if distributed:
        box = [prepared]
        torch.distributed.broadcast_object_list(box, src=0)
        prepared = box[0]
    assert prepared is not None
    return prepared


# ------------------------------------------------------------------------- records


def read_result(store: EpisodeStore, run_name: str) -> FitOutcome | None:
    """The recorded outcome of a finished run, if its published checkpoint is still there."""
    text = store.fs.read_text(f"{RUNS_DIR}/{run_name}/{RESULT_FILE}")
    if text is None:
        return None
    outcome = FitOutcome(**json.loads(text))
    return outcome if store.fs.exists(f"{outcome.path}/config.json") else None


def attempts(store: EpisodeStore, spec: FitSpec) -> list[dict[str, Any]]:
    """The loop starts of this driver call, oldest first."""
    rels = store.fs.list_files(f"{spec.run_dir}/{ATTEMPTS_DIR}/{spec.fit_id}")
    records = [json.loads(store.fs.read_text(r) or "{}") for r in rels]
    return sorted(records, key=lambda r: r.get("time", 0.0))


def _record_attempt(store: EpisodeStore, spec: FitSpec, start_step: int) -> None:
    record = {"time": time.time(), "start_step": start_step}
    rel = f"{spec.run_dir}/{ATTEMPTS_DIR}/{spec.fit_id}/{uuid.uuid4().hex}.json"
    store.fs.write_atomic(rel, json.dumps(record).encode())


# ------------------------------------------------------------------------- the fit


def _progress(store: EpisodeStore, spec: FitSpec, steps: int, entry: dict[str, float]) -> None:
    """Rank 0's log line, and ``progress.json`` in the run folder: the driver polls it for its
    progress bar (a worker's stdout does not reach a `ray job` log reliably)."""
    log.info(
        "%s %s step %d/%d: loss %.4f",
        spec.kind,
        spec.run_name,
        entry["step"],
        steps,
        entry.get("loss", float("nan")),
    )
    body = {"step": int(entry["step"]), "steps": steps, "loss": entry.get("loss"), "t": time.time()}
    try:
        store.fs.write_atomic(f"{spec.run_dir}/progress.json", json.dumps(body).encode())
    except OSError as e:  # progress is cosmetic: never fail a fit on it
        log.debug("could not write progress: %s", e)


def run(
    cfg: RampConfig,
    spec: FitSpec,
    *,
    store: EpisodeStore | None = None,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    state: loop.LoopState | None = None,
    checkpoint: loop.CheckpointFn | None = None,
    extra: Callable[[EpisodeStore], dict[str, Any]] | None = None,
    publish: bool = True,
) -> FitOutcome | None:
    """Train on this rank from ``state`` (or from the start); rank 0 returns the outcome.

    ``checkpoint`` persists the loop's state every ``checkpoint_every`` steps (Ray Train's
    report in the trainer actors); ``extra`` gives the ``config.json`` extra of the published
    checkpoint (the serving specs); ``publish=False`` skips publishing (tests of the loop).
    """
    store = store or EpisodeStore.from_config(cfg)
    tcfg = trainer_config(cfg, spec.kind)
    prepared = prepare(cfg, store, spec, rank, world_size)
    stats = NormStats.from_json(state.info["norm_stats"]) if state is not None else prepared.stats
    model = build_model(cfg, spec, store, stats, device, _seed(tcfg.seed, spec.round_))
    stats = model.norm_stats  # with an init checkpoint's statistics merged in
    if spec.kind == "world-model" and model.cfg.value_baseline == "time":
        assert prepared.targets is not None
        # refitted every fit on this fit's training episodes (never the held-out split)
        model.cfg.value_baseline_table = prepared.targets.time_baseline(fit_ids(cfg, spec))
    torch.manual_seed(_seed(tcfg.seed, spec.round_, rank + 1))  # noise differs per rank
    generator = torch.Generator().manual_seed(_seed(tcfg.seed, spec.round_, rank + 1, 1))
    if spec.kind == "world-model":
        step_fn = world_model_step(model)
        action_dim = max(e.action.dim for e in stats.embodiments.values())
    else:
        step_fn = policy_step(cfg, spec, model, store, device, generator)
        action_dim = model.cfg.max_action_dim
    ids = fit_ids(cfg, spec)
    samples = data.training_samples(
        cfg,
        store,
        ids,
        tcfg,
        round_=spec.round_,
        rank=rank,
        world_size=world_size,
        labels=spec.world_model if spec.kind == "policy" else None,
        exclude_steps=prepared.cleaned.dropped,
    )
    start = state.step if state is not None else 0
    batches = data.batches(
        samples,
        tcfg.batch_size,
        max_state_dim=model.cfg.max_state_dim,
        max_action_dim=action_dim,
        start_step=start,
        targets=prepared.targets,
        device=device,
    )
    if rank == 0:
        _record_attempt(store, spec, start)
    result = loop.train(
        model,
        batches,
        step_fn,
        tcfg,
        generator=generator,
        state=state,
        checkpoint=checkpoint,
        rank=rank,
        world_size=world_size,
        device=device,
        info={"norm_stats": stats.to_json(), "kind": spec.kind},
        on_log=lambda h: _progress(store, spec, tcfg.steps, h) if rank == 0 else None,
    )
    if rank != 0:
        return None
    version = path = ""
    if publish:
        model.eval()
        version, path = publish_checkpoint(
            model.cpu(), store.fs, round_=spec.round_, extra=extra(store) if extra else None
        )
    metrics = {
        **result.metrics,
        **prepared.cleaned.metrics(),
        "data/train_episodes": float(len(ids)),
        "data/heldout_episodes": float(len(spec.episode_ids) - len(ids)),
        "samples_per_s": result.samples / result.train_s if result.train_s > 0 else 0.0,
        "train_s": result.train_s,
    }
    outcome = FitOutcome(
        kind=spec.kind,
        version=version,
        path=path,
        steps=result.steps,
        resumed_from_step=result.start_step,
        metrics=metrics,
        history=result.history,
    )
    if publish:
        store.fs.write_atomic(
            f"{spec.run_dir}/{RESULT_FILE}", (json.dumps(asdict(outcome), indent=1) + "\n").encode()
        )
    return outcome
