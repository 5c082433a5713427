"""What the trainers read: value targets, normalisation statistics, serving specs and batches.

Value targets: the world model regresses the value at t onto the Monte-Carlo return, scaled
exactly as the labeller scales it (``rl.rewards.episode_rewards`` with ONE ``RewardScale`` over
the whole id set, then ``rl.advantages.discounted_returns``), so the values it later predicts are
on the scale the advantages and thresholds assume. They come from the cheap columns alone (ids,
steps, task, success, reward): no frame is decoded for them.

Batches: ``TrainingSamples`` (pyarrow, one Parquet file per episode, windows of shuffled steps;
sharded by rank) -> ``models.padding.collate_padded`` -> ``to_tensors``. The stream is endless
over epochs (``set_epoch`` per pass, a batch may straddle two epochs), and the position of step
``s`` in it is a pure function of ``s``, so a resumed fit continues with exactly the batches an
uninterrupted one would have seen (``TrainingSamples.iter_from`` skips whole windows unread).
Cleaning: with ``rl.interventions.enabled`` the transitional steps around human takeovers and
hand-backs (``rl.interventions.clean_steps``, the very steps the labeller reports as removed) are
never a sample's start step (``cleaned_steps`` -> ``TrainingSamples(exclude_steps=...)``), for the
world model and the policy alike; the counts come back as ``data/steps``, ``data/cleaned_steps``.
Why not Ray Data: on the demo store it read 28-160x fewer steps/s than pyarrow (docs/training.md),
and a sample needs the whole episode (action chunk, future frames), which a row-shuffled dataset
does not keep together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ramp.platform.config import CameraConfig, EmbodimentConfig, RampConfig
from ramp.platform.episodes.samples import TrainingSamples
from ramp.platform.episodes.store import EpisodeStore
from ramp.platform.models.normalization import NormStats, compute_norm_stats
from ramp.platform.models.padding import collate_padded, to_tensors
from ramp.platform.models.world_model import VALUE_TARGET
from ramp.platform.rl.advantages import discounted_returns
from ramp.platform.rl.interventions import clean_steps
from ramp.platform.rl.layout import (
    column_bool,
    column_float32,
    column_matrix,
    episodes_from_table,
    offsets_from_lengths,
)
from ramp.platform.rl.rewards import RewardScale, episode_rewards
from ramp.platform.rl.settings import InterventionConfig, RLConfig
from ramp.platform.training.settings import TrainerConfig

TARGET_COLUMNS = ["episode_id", "step", "task", "success", "reward"]
IO_THREADS = 8  # parallel reads of the intervention column (I/O bound on S3)


@dataclass(frozen=True)
class ValueTargets:
    """Monte-Carlo returns per episode (float32 [T]) and the reward scale that produced them."""

    returns: dict[str, np.ndarray]
    scale: RewardScale
    tasks: dict[str, str] | None = None  # episode id -> task

    def at(self, episode_id: str, step: int) -> np.float32:
        return self.returns[episode_id][step]

    def time_baseline(self, episode_ids: Sequence[str]) -> dict[str, list[float]]:
        """The time-only baseline of ``episode_ids`` (the world model's training episodes): per
        task, the mean return at each step over the episodes that reach it; '*' over all tasks.
        The value report's time-only baseline is this, fitted on the same train split."""
        groups: dict[str, list[np.ndarray]] = {"*": []}
        for eid in episode_ids:
            r = self.returns[eid]
            groups["*"].append(r)
            if self.tasks is not None:
                groups.setdefault(self.tasks[eid], []).append(r)
        table = {}
        for key, rows in groups.items():
            if not rows:
                continue
            length = max(len(r) for r in rows)
            total, count = np.zeros(length), np.zeros(length)
            for r in rows:
                total[: len(r)] += r
                count[: len(r)] += 1
            table[key] = [float(x) for x in total / np.maximum(count, 1)]
        return table


def steps_table(store: EpisodeStore, episode_ids: Sequence[str]) -> pa.Table:
    """The cheap per-step columns of the episodes, contiguous per episode, sorted by id."""
    ids = sorted(set(episode_ids))
    entries = store.episodes(ids=ids)
    missing = sorted(set(ids) - {e.episode_id for e in entries})
    if missing:
        raise KeyError(f"{len(missing)} episodes are not in the store, e.g. {missing[0]!r}")
    tables = [
        t for _, t in store.iter_episodes(entries, columns=TARGET_COLUMNS, skip_unreadable=False)
    ]
    if not tables:
        raise ValueError("no episodes to train on (the id list is empty)")
    return pa.concat_tables(tables, promote_options="default")


def value_targets(
    store: EpisodeStore,
    episode_ids: Sequence[str],
    rl: RLConfig,
    env_t_max: Mapping[str, int] | None = None,
) -> ValueTargets:
    """The world model's value targets: the labeller's returns, one reward scale over all ids.

    ``env_t_max``: the default T_max per task, ``rl.rewards.env_t_max(cfg)``, exactly what the
    labeller passes (``fit.prepare`` does), so targets and labels share one fixed scale.
    """
    table = steps_table(store, episode_ids)
    episodes = episodes_from_table(table)
    stored = column_float32(table, "reward") if rl.reward.source == "column" else None
    rewards, scale = episode_rewards(episodes, rl.reward, stored, env_t_max)
    returns = discounted_returns(rewards, episodes.offsets, rl.advantage.gamma)
    assert episodes.episode_ids is not None
    out = {
        eid: returns[episodes.offsets[i] : episodes.offsets[i + 1]]
        for i, eid in enumerate(episodes.episode_ids)
    }
    tasks = {
        eid: episodes.task_names[int(episodes.task[i])]
        for i, eid in enumerate(episodes.episode_ids)
    }
    return ValueTargets(out, scale, tasks)


@dataclass(frozen=True)
class CleanedSteps:
    """The steps ``rl.interventions`` keeps out of a fit's samples, and how many steps it has."""

    dropped: dict[str, np.ndarray]  # episode id -> steps starting no sample (only ids with any)
    steps: int  # every step of the fit's episodes

    @property
    def cleaned(self) -> int:
        return int(sum(d.size for d in self.dropped.values()))

    def metrics(self) -> dict[str, float]:
        return {"data/steps": float(self.steps), "data/cleaned_steps": float(self.cleaned)}


def cleaned_steps(
    store: EpisodeStore, episode_ids: Sequence[str], icfg: InterventionConfig
) -> CleanedSteps:
    """``clean_steps`` over the fit's episodes, as the labeller runs it (same settings, same
    columns: ``intervention``, plus ``action`` for rule ``action_jump``; never a frame).

    Disabled cleaning reads nothing (the lengths come from the index). Rows are steps 0..T-1 in
    order (the store's contract), so row positions are the steps ``TrainingSamples`` indexes.
    """
    ids = sorted(set(episode_ids))
    entries = store.episodes(ids=ids)
    missing = sorted(set(ids) - {e.episode_id for e in entries})
    if missing:
        raise KeyError(f"{len(missing)} episodes are not in the store, e.g. {missing[0]!r}")
    if not icfg.enabled:
        return CleanedSteps({}, int(sum(e.num_steps for e in entries)))
    if not ids:
        return CleanedSteps({}, 0)
    columns = ["intervention"] + (["action"] if icfg.rule == "action_jump" else [])
    with ThreadPoolExecutor(IO_THREADS) as pool:
        tables = list(pool.map(lambda eid: store.read_episode(eid, columns=columns), ids))
    offsets = offsets_from_lengths([t.num_rows for t in tables])
    human = np.concatenate([column_bool(t, "intervention") for t in tables])
    actions = None
    if "action" in columns:
        # zero-padded to the widest embodiment: padding never changes a jump within an episode,
        # and jumps across episodes are not jumps (clean_steps zeroes them)
        mats = [column_matrix(t, "action") for t in tables]
        width = max(m.shape[1] for m in mats)
        actions = np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in mats])
    drop = ~clean_steps(human, offsets, icfg, actions).keep
    dropped = {}
    for k in np.flatnonzero(np.add.reduceat(drop.astype(np.int64), offsets[:-1])):
        dropped[ids[k]] = np.flatnonzero(drop[offsets[k] : offsets[k + 1]]).astype(np.int64)
    return CleanedSteps(dropped, int(offsets[-1]))


def norm_stats(store: EpisodeStore, episode_ids: Sequence[str]) -> NormStats:
    """Statistics of the training episodes only (not of whatever else the store holds)."""
    return compute_norm_stats(store, episode_ids=sorted(set(episode_ids)))


def serving_specs(
    store: EpisodeStore, episode_ids: Sequence[str]
) -> tuple[dict[str, EmbodimentConfig], dict[str, str]]:
    """(embodiment specs, task -> instruction) as the training episodes describe them.

    A published checkpoint carries them so that the server can validate observations and clip
    actions without the training config (``deploy.protocol.checkpoint_extra``). One metadata read
    per embodiment and one tiny column read per task.
    """
    entries = store.episodes(ids=sorted(set(episode_ids)))
    first_of: dict[str, str] = {}
    first_task: dict[str, str] = {}
    for e in entries:
        first_of.setdefault(e.embodiment, e.episode_id)
        first_task.setdefault(e.task, e.episode_id)
    specs = {}
    for name, eid in sorted(first_of.items()):
        meta = store.episode_meta(eid)
        specs[name] = EmbodimentConfig(
            cameras={
                c: CameraConfig(height=m.height, width=m.width) for c, m in meta.cameras.items()
            },
            state_names=meta.state_names,
            action_names=meta.action_names,
            action_low=meta.action_low,
            action_high=meta.action_high,
            fps=meta.fps,
        )
    tasks = {}
    for task, eid in sorted(first_task.items()):
        instr = store.read_episode(eid, columns=["instruction"]).column("instruction")
        tasks[task] = str(instr[0].as_py()) if len(instr) else task
    return specs, tasks


def check_sampling(cfg: RampConfig) -> None:
    """Refuse, before any worker starts, samples the configured models cannot consume."""
    try:
        cfg.models.check_sampling(cfg.sampling.chunk_size, list(cfg.sampling.future_offsets))
    except ValueError as e:
        raise ValueError(
            f"the training samples (section `sampling`) cannot feed the models: {e}"
        ) from None


def sampling_seed(cfg: RampConfig, tcfg: TrainerConfig, round_: int) -> int:
    """One seed per (sampling seed, trainer seed, round): each round draws a new order."""
    return int(np.random.SeedSequence([cfg.sampling.seed, tcfg.seed, round_]).generate_state(1)[0])


def training_samples(
    cfg: RampConfig,
    store: EpisodeStore,
    episode_ids: Sequence[str],
    tcfg: TrainerConfig,
    *,
    round_: int,
    rank: int = 0,
    world_size: int = 1,
    labels: str | None = None,
    exclude_steps: Mapping[str, np.ndarray] | None = None,
) -> TrainingSamples:
    """This rank's share of the samples, as ``cfg.sampling`` (and the trainer) ask, without
    ``exclude_steps`` as start steps (``cleaned_steps(...).dropped``; every rank must get the same
    mapping, or the shards would overlap)."""
    check_sampling(cfg)
    s = cfg.sampling
    return TrainingSamples(
        store,
        episode_ids,
        chunk_size=s.chunk_size,
        future_offsets=s.future_offsets,
        labels=labels,
        seed=sampling_seed(cfg, tcfg, round_),
        rank=rank,
        world_size=world_size,
        shuffle_window=tcfg.shuffle_window or s.shuffle_window,
        drop_last=s.drop_last,
        exclude_steps=exclude_steps,
    )


def batches(
    samples: TrainingSamples,
    batch_size: int,
    *,
    max_state_dim: int,
    max_action_dim: int,
    start_step: int = 0,
    targets: ValueTargets | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[dict[str, Any]]:
    """Endless tensor batches; the first is the one an uninterrupted run takes at ``start_step``.

    ``targets`` adds ``value_target`` (the world model's); label fields come with the samples
    when they were made with ``labels=``. Cameras become positional slots (``cam0``...): the
    models read cameras by position, and embodiments with other camera names then batch together.
    """
    per_epoch = len(samples)
    if per_epoch < 1:
        raise ValueError(
            f"rank {samples.rank} of {samples.world_size} gets no training samples from "
            f"{len(samples.episode_ids)} episodes; give it more episodes or fewer workers"
        )
    epoch, offset = divmod(start_step * batch_size, per_epoch)
    buf: list[dict[str, Any]] = []
    while True:
        samples.set_epoch(epoch)
        for sample in samples.iter_from(offset):
            if targets is not None:
                sample[VALUE_TARGET] = np.float32(targets.at(sample["episode_id"], sample["step"]))
            buf.append(sample)
            if len(buf) == batch_size:
                batch = collate_padded(buf, max_state_dim, max_action_dim, camera_slots=True)
                buf = []
                yield to_tensors(batch, device)
        epoch, offset = epoch + 1, 0
