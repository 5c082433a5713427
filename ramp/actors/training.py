"""The Ray Train shell both trainers share: a TorchTrainer around ``platform.training.fit.run``.

The driver checks the request, then runs one ``TorchTrainer`` (DDP ranks = workers; CPUs/GPUs,
fractions allowed, from ``cfg.training.<kind>``) whose run storage is ``<root>/train-runs`` in the
store itself (an ``s3://`` root passes the store's pyarrow file system), so checkpoints survive
any node and workers need no shared disk: each worker reads the store on its own.

Resuming: Ray Train V2 keeps a checkpoint-manager snapshot in ``<root>/train-runs/<run name>``;
a new ``fit()`` with the same name and storage loads it and ``ray.train.get_checkpoint()`` hands
the latest checkpoint to the workers. So a worker that dies is restarted from the last checkpoint
(``max_failures``), and a driver that died mid-fit resumes by calling again with the same
``run_name``. A run that already finished is not trained again: its recorded outcome is returned.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ramp.platform import faults
from ramp.platform.config import RampConfig
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.training import data, fit, loop

CONSUMED_TIMEOUT_S = 60.0


@dataclass
class TrainResult:
    kind: str  # "world-model" | "policy"
    version: str  # published version, `<kind>-r<round>-<hash8>`
    path: str  # store-relative folder: checkpoints/<kind>/<version>
    steps: int
    resumed_from_step: int  # 0 for a fresh fit
    metrics: dict[str, float]  # last log window's loss terms, samples_per_s, wall_s, setup_s, ...
    history: list[dict[str, float]]  # one dict per log_every steps: step, loss, terms, lr


def _serving_extra(episode_ids: tuple[str, ...], store: EpisodeStore) -> dict[str, Any]:
    from ramp.deploy.protocol import checkpoint_extra

    return checkpoint_extra(*data.serving_specs(store, episode_ids))


def _wait_until_registered() -> None:
    """Block until the controller has taken this worker's last report.

    ``ray.train.report`` uploads the checkpoint synchronously but the controller only collects
    it at its next poll (every 2 s in Ray 2.60); a worker dying before that would lose it and the
    run would resume from an older checkpoint. Costs at most one poll interval per checkpoint.
    """
    try:
        from ray.train.v2._internal.execution.context import get_train_context

        q = get_train_context().get_result_queue()
    except (ImportError, AttributeError):  # another Ray version: resume may be one step older
        return
    deadline = time.monotonic() + CONSUMED_TIMEOUT_S
    while q.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.05)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: restore, train, checkpoint through ``ray.train.report``."""
    import ray.train
    import ray.train.torch

    cfg: RampConfig = config["cfg"]
    spec: fit.FitSpec = config["spec"]
    # as many intra-op threads as CPUs reserved, rounded up (1.75 CPUs beside a 0.25-CPU Serve
    # replica are 2 threads): more threads than cores spin against each other (10x slower steps
    # measured on a shared 2-core machine)
    torch.set_num_threads(max(1, math.ceil(fit.trainer_config(cfg, spec.kind).cpus_per_worker)))
    ctx = ray.train.get_context()
    rank, world_size = ctx.get_world_rank(), ctx.get_world_size()
    state = None
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state = loop.read_state(folder, rank)

    last = fit.trainer_config(cfg, spec.kind).steps

    def checkpoint(step: int, write: Any, metrics: dict[str, float]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            write(Path(folder))
            ray.train.report(
                {k: v for k, v in metrics.items() if math.isfinite(v)},
                checkpoint=ray.train.Checkpoint.from_directory(folder),
                checkpoint_dir_name=f"checkpoint-step-{step:08d}",
            )
        if step < last:  # losing the last one costs a retrain of the same result, no more
            _wait_until_registered()

    fit.run(
        cfg,
        spec,
        rank=rank,
        world_size=world_size,
        device=ray.train.torch.get_device(),
        state=state,
        checkpoint=checkpoint,
        extra=functools.partial(_serving_extra, spec.episode_ids),
    )


def run_storage(store: EpisodeStore) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) of Ray Train's run storage inside the store."""
    path = store.fs.full(fit.RUNS_DIR)
    return (path, None) if store.fs.is_local else (path, store.fs.fs)


def _result(outcome: fit.FitOutcome, **metrics: float) -> TrainResult:
    return TrainResult(
        kind=outcome.kind,
        version=outcome.version,
        path=outcome.path,
        steps=outcome.steps,
        resumed_from_step=outcome.resumed_from_step,
        metrics={**outcome.metrics, **metrics},
        history=outcome.history,
    )


def _worker_resources(tcfg: Any) -> dict[str, float]:
    """What one Ray Train worker asks for (GPU only when asked)."""
    resources = {"CPU": tcfg.cpus_per_worker}
    if tcfg.gpus_per_worker > 0:
        resources["GPU"] = tcfg.gpus_per_worker
    return resources


def wait_for_resources(kind: str, tcfg: Any, say: Any = None) -> None:
    """Fail fast, naming the fields, when the fit's workers cannot be placed.

    Ray Train waits for resources forever: a fit asking for more CPUs than the cluster has, or
    than a live Serve replica leaves free, hangs with no message. A request the cluster can never
    meet fails here at once; one it cannot meet now is waited for ``resource_wait_s``.
    """
    import ray

    need = {r: a * tcfg.num_workers for r, a in _worker_resources(tcfg).items()}
    key = fit.trainer_key(kind)
    total = ray.cluster_resources()
    for res, amount in need.items():
        if total.get(res, 0.0) + 1e-9 < amount:
            field = "cpus_per_worker" if res == "CPU" else "gpus_per_worker"
            raise ValueError(
                f"{key}: num_workers x {field} asks for {amount:g} {res}s but the Ray cluster has "
                f"{total.get(res, 0.0):g}; lower {key}.{field} or {key}.num_workers, or add nodes"
            )
    deadline = time.monotonic() + tcfg.resource_wait_s
    told = False
    while True:
        free = ray.available_resources()
        short = {r: a for r, a in need.items() if free.get(r, 0.0) + 1e-9 < a}
        if not short:
            return
        what = ", ".join(f"{a:g} {r}s (free: {free.get(r, 0.0):g})" for r, a in short.items())
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{kind} fit: waited {tcfg.resource_wait_s:g} s ({key}.resource_wait_s) "
                f"for {what}; "
                "other actors hold them (a Serve replica, another fit: see the Ray dashboard). "
                f"Lower {key}.cpus_per_worker or serve.num_cpus, or stop what holds them"
            )
        if not told and say is not None:
            say(f"  {kind} fit waiting for {what}")
            told = True
        time.sleep(1.0)


def train(cfg: RampConfig, spec: fit.FitSpec) -> TrainResult:
    """Run (or resume, or return the finished) fit ``spec`` on the connected Ray cluster."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    t0 = time.time()
    store = EpisodeStore.from_config(cfg)
    tcfg = fit.trainer_config(cfg, spec.kind)
    done = fit.read_result(store, spec.run_name)
    if done is not None:  # finished before (the driver died after it, say): nothing to train
        done.resumed_from_step = done.steps
        return _result(
            done,
            wall_s=time.time() - t0,
            setup_s=0.0,
            num_workers=float(tcfg.num_workers),
            failures=0.0,
        )
    fit.check_spec(cfg, store, spec)
    wait_for_resources(spec.kind, tcfg, print)
    path, filesystem = run_storage(store)
    resources = _worker_resources(tcfg)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg, "spec": spec},
        scaling_config=ScalingConfig(
            num_workers=tcfg.num_workers,
            use_gpu=tcfg.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=spec.run_name,
            storage_path=path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=tcfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env=faults.runtime_env(),
        ),
    )
    trainer.fit()
    outcome = fit.read_result(store, spec.run_name)
    if outcome is None:
        raise RuntimeError(f"fit {spec.run_name!r} ended without publishing a checkpoint")
    starts = fit.attempts(store, spec)
    return _result(
        outcome,
        wall_s=time.time() - t0,
        setup_s=starts[0]["time"] - t0 if starts else math.nan,
        num_workers=float(tcfg.num_workers),
        failures=float(max(0, len(starts) - 1)),
    )
