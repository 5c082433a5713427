"""The labelling pass: one world-model version's values of many episodes -> label sidecars.

What the labeller does after (or around) world-model inference, with no Ray in it:

1. ``LabelPass(cfg, store, version, ids)`` lists the sidecars ``labels/wm=<version>``: episodes
   that have one are skipped (their values are read back, never recomputed); the rest are
   ``todo``.
2. ``read()`` reads the light per-step columns of every id (episode, step, task, outcome,
   intervention) and the stored values of the skipped ones. An episode file that cannot be read
   is quarantined by the store and reported, not labelled; a sidecar made for other content (the
   episode was replaced) joins ``todo``.
3. The caller values ``todo`` with the world model (``rl.values`` in one process, or the actors
   of ``ramp.actors.labeller`` in parallel) and hands back a ``ValuedEpisodes``.
4. ``finish(valued)`` runs the RL core once over the concatenation of ALL the ids
   (``rl.labelling.label_table``: rewards, returns, n-step advantages, per-task thresholds fitted
   over every step, the indicator), writes sidecars for the ``todo`` episodes only, and returns
   a ``LabelResult`` with the numbers the coordinator logs and small plot data, the value report
   (``rl.value_report``: the values on the episodes the world-model fit held out, against the
   time-only and outcome-oracle baselines) and the P(I=1) separation; the collapse verdict's value
   checks use the held-out figures.

Why thresholds over all ids even when most episodes are skipped: values are deterministic per
episode (``rl.values``), so a pass re-run after a crash fits exactly the thresholds of the pass
it resumes, and the sidecars written before and after the crash agree. Sidecars that exist are
never rewritten.

Interventions (docs/rl.md): rewards and advantages are computed on the raw episodes (their length
is part of the reward) and every step keeps its labels, since a sidecar covers steps 0..T-1.
Transitional steps around takeovers and hand-backs are DROPPED FROM TRAINING where samples are
drawn, by ``rl.interventions.clean_steps`` with the same ``rl.interventions`` settings; this pass
reports what that cleaning removes (``LabelResult.interventions``, ``interventions/*`` metrics)
and the positive fraction among the steps that are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ramp.platform.config import RampConfig
from ramp.platform.episodes.labels import LabelError, check_wm_version, read_label_meta
from ramp.platform.episodes.store import (
    EpisodeNotFoundError,
    EpisodeStore,
    EpisodeUnreadableError,
)
from ramp.platform.rl.collapse import CollapseVerdict, collapse_check, collapse_metrics
from ramp.platform.rl.interventions import InterventionReport, clean_steps
from ramp.platform.rl.labelling import Labels, label_table
from ramp.platform.rl.layout import Episodes, column_bool, column_matrix, episodes_from_table
from ramp.platform.rl.rewards import env_t_max
from ramp.platform.rl.value_report import (
    IndicatorSeparation,
    ValueReport,
    heldout_mask,
    indicator_separation,
    value_report,
)

IO_THREADS = 8  # parallel file reads and writes: the pass is I/O bound on S3, not CPU bound
ADVANTAGE_SAMPLES = 5000  # advantages kept per task for the histogram
CURVES_PER_TASK = 3  # episodes per task whose value curve is plotted


@dataclass(frozen=True)
class ValuedEpisodes:
    """World-model values of some episodes (float32 [T] each) and the ones that could not be
    read (id -> reason), from one valuer or merged over many."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def merged(self, other: ValuedEpisodes) -> ValuedEpisodes:
        return ValuedEpisodes(
            {**self.values, **other.values},
            {**self.unreadable, **other.unreadable},
            self.wall_s + other.wall_s,
        )


@dataclass(frozen=True)
class ValueCurve:
    """One episode's values against its Monte-Carlo returns (the value targets)."""

    episode_id: str
    task: str
    success: bool
    step: np.ndarray  # int32 [T]
    value: np.ndarray  # float32 [T]
    returns: np.ndarray  # float32 [T]


@dataclass(frozen=True)
class LabelPlots:
    """Small data for the tracker's PNGs (a few kB per task)."""

    advantages: dict[str, np.ndarray]  # task -> a seeded sample of <= 5000 advantages (float32)
    curves: dict[str, list[ValueCurve]]  # task -> 2-3 episodes (a success and a failure first)


@dataclass(frozen=True)
class LabelResult:
    """What one labelling pass did and measured; only the coordinator logs it."""

    world_model: str  # the version whose sidecars labels/wm=<version> were written
    labelled: int  # episodes valued by the world model and given sidecars by this call
    skipped: int  # episodes that already had sidecars of this version (values read back)
    steps: int  # steps of labelled + skipped episodes: what the thresholds were fitted over
    episode_ids: list[str]  # every id with labels of this version now: what the policy trains on
    unreadable: dict[str, str]  # id -> reason: quarantined or missing, not labelled, left out
    thresholds: dict[str, float]  # eps per task
    metrics: dict[str, float]  # flat keys for the tracker (see ``pass_metrics``)
    collapse: CollapseVerdict  # rl.collapse.collapse_check of the metrics
    interventions: InterventionReport  # what cleaning drops from training
    plots: LabelPlots
    wall_s: float  # the whole pass
    values_wall_s: float  # world-model inference of the labelled episodes (summed over actors)
    # values vs returns on the episodes the world model never trained on, next to the time-only
    # and outcome-oracle baselines (rl.value_report); None when holdout_fraction is 0
    value_report: ValueReport | None = None
    separation: IndicatorSeparation | None = None  # P(I=1) by outcome and by position


def step_columns(cfg: RampConfig) -> list[str]:
    """The per-step columns the RL core reads (never the frames)."""
    cols = ["episode_id", "step", "task", "success", "intervention"]
    if cfg.rl.reward.source == "column":
        cols.append("reward")
    if cfg.rl.interventions.enabled and cfg.rl.interventions.rule == "action_jump":
        cols.append("action")
    return cols


class LabelPass:
    """One labelling pass of ``episode_ids`` by the world model ``world_model`` (see the module
    docstring for the order of calls)."""

    def __init__(
        self, cfg: RampConfig, store: EpisodeStore, world_model: str, episode_ids: Sequence[str]
    ):
        check_wm_version(world_model)
        self.cfg = cfg
        self.store = store
        self.world_model = world_model
        self.ids = sorted(set(episode_ids))
        if not self.ids:
            raise ValueError("no episode ids to label")
        self.started = time.perf_counter()
        labelled = store.labelled_ids(world_model)
        self.todo = [e for e in self.ids if e not in labelled]
        self.skipped = [e for e in self.ids if e in labelled]
        self._labelled = set(self.skipped)
        self.tables: dict[str, pa.Table] = {}
        self.stored_values: dict[str, np.ndarray] = {}
        self.unreadable: dict[str, str] = {}
        self._read = False

    def _read_one(self, eid: str) -> tuple[pa.Table | None, np.ndarray | None, str | None]:
        """(step table, stored values or None, reason it is unreadable or None)."""
        try:
            table = self.store.read_episode(eid, columns=step_columns(self.cfg))
        except (EpisodeUnreadableError, EpisodeNotFoundError) as e:
            return None, None, str(e)
        if eid not in self._labelled:
            return table, None, None
        try:
            labels = self.store.read_labels(self.world_model, eid)
            meta = read_label_meta(labels)
        except LabelError:
            return table, None, None  # unreadable sidecar (quarantined by the store): relabel
        entry = self.store.lookup(eid)
        if entry is None or meta.get("episode_hash") != entry.content_hash:
            return table, None, None  # made for content that was replaced: relabel
        if labels.num_rows != table.num_rows:
            return table, None, None
        values = labels.sort_by("step").column("value").to_numpy().astype(np.float32)
        return table, values, None

    def read(self) -> None:
        """Read step columns of every id and the stored values of the skipped ones."""
        with ThreadPoolExecutor(IO_THREADS) as pool:
            results = list(pool.map(self._read_one, self.ids))
        relabel = []
        for eid, (table, values, problem) in zip(self.ids, results, strict=True):
            if problem is not None:
                self.unreadable[eid] = problem
                continue
            assert table is not None
            self.tables[eid] = table
            if values is not None:
                self.stored_values[eid] = values
            elif eid in self._labelled:
                relabel.append(eid)
        self.todo = sorted({e for e in self.todo if e not in self.unreadable} | set(relabel))
        self.skipped = [e for e in self.skipped if e in self.stored_values]
        self._read = True

    def finish(self, valued: ValuedEpisodes) -> LabelResult:
        """Label every readable id at once, write the missing sidecars, measure."""
        if not self._read:
            self.read()
        unreadable = {**self.unreadable, **valued.unreadable}
        for eid in self.todo:
            if eid not in valued.values and eid not in unreadable:
                raise ValueError(f"the valuer returned no values for {eid!r}")
        ids = [e for e in self.ids if e not in unreadable]
        if not ids:
            raise ValueError(
                f"none of the {len(self.ids)} episodes could be read: "
                + "; ".join(f"{k}: {v}" for k, v in list(unreadable.items())[:3])
            )
        values_by_id = {**self.stored_values, **valued.values}
        for eid in ids:
            if values_by_id[eid].shape != (self.tables[eid].num_rows,):
                raise ValueError(
                    f"{eid!r} has {self.tables[eid].num_rows} steps but "
                    f"{values_by_id[eid].shape[0]} values"
                )
        table = pa.concat_tables([self.tables[e] for e in ids], promote_options="default")
        values = np.concatenate([values_by_id[e] for e in ids])
        labels = label_table(table, values, self.cfg.rl, env_t_max=env_t_max(self.cfg))
        episodes = episodes_from_table(table)
        if list(episodes.episode_ids) != ids:  # rows are concatenated in id order
            raise AssertionError("episode order changed while labelling")
        todo = [e for e in self.todo if e in valued.values]
        self._write(episodes, table, values, labels, set(todo))

        icfg = self.cfg.rl.interventions
        actions = column_matrix(table, "action") if "action" in step_columns(self.cfg) else None
        human = column_bool(table, "intervention")
        cleaned = clean_steps(human, episodes.offsets, icfg, actions)
        ccfg = self.cfg.rl.collapse
        metrics = collapse_metrics(
            labels.advantage, labels.indicator, episodes, ccfg, values, labels.returns
        )
        fraction = self.cfg.training.world_model.holdout_fraction
        report = None
        if fraction > 0:  # the episodes the world-model fit left out (training.fit)
            report = value_report(
                episodes,
                values,
                labels.returns,
                heldout_mask(ids, fraction),
                holdout_fraction=fraction,
                tau_max_samples=ccfg.tau_max_samples,
                seed=ccfg.seed,
            )
            metrics.update(report.metrics())
        separation = indicator_separation(
            episodes,
            labels.indicator,
            human,
            n_steps=self.cfg.rl.advantage.n_steps
            if self.cfg.rl.advantage.mode == "n_step"
            else None,
            exclude_human=self.cfg.rl.threshold.force_human_positive,
        )
        metrics.update(separation.metrics())
        verdict = collapse_check(metrics, ccfg)
        wall = time.perf_counter() - self.started
        metrics.update(labels.metrics())
        metrics.update(cleaned.report.metrics())
        kept = cleaned.keep
        metrics["adv/kept_frac"] = float(kept.mean())
        metrics["adv/kept_pos_frac"] = (
            float(labels.indicator[kept].mean()) if kept.any() else float("nan")
        )
        metrics.update(
            {
                "label/episodes": float(len(ids)),
                "label/labelled": float(len(todo)),
                "label/skipped": float(len(self.skipped)),
                "label/unreadable": float(len(unreadable)),
                "label/steps": float(episodes.n_steps),
                "label/wall_s": wall,
                "label/values_wall_s": valued.wall_s,
                "collapse/alarm": float(verdict.collapsed),
            }
        )
        return LabelResult(
            world_model=self.world_model,
            labelled=len(todo),
            skipped=len(self.skipped),
            steps=episodes.n_steps,
            episode_ids=ids,
            unreadable=unreadable,
            thresholds=dict(labels.thresholds.epsilon),
            metrics=metrics,
            collapse=verdict,
            interventions=cleaned.report,
            plots=plot_data(episodes, labels, values, self.cfg.rl.collapse.seed),
            wall_s=wall,
            values_wall_s=valued.wall_s,
            value_report=report,
            separation=separation,
        )

    def _write(
        self,
        episodes: Episodes,
        table: pa.Table,
        values: np.ndarray,
        labels: Labels,
        todo: set[str],
    ) -> None:
        """One sidecar per todo episode (each write is atomic; existing ones are left alone)."""
        step = table.column("step").to_numpy().astype(np.int32)
        parts = []
        for k, eid in enumerate(episodes.episode_ids):
            if eid not in todo:
                continue
            s, e = int(episodes.offsets[k]), int(episodes.offsets[k + 1])
            parts.append(
                pa.table(
                    {
                        "episode_id": pa.array([eid] * (e - s), pa.string()),
                        "step": step[s:e],
                        "value": values[s:e],
                        "advantage": labels.advantage[s:e],
                        "indicator": labels.indicator[s:e],
                        "return": labels.returns[s:e],
                        "reward": labels.reward[s:e],
                    }
                )
            )
        with ThreadPoolExecutor(IO_THREADS) as pool:
            list(pool.map(lambda part: self.store.write_labels(self.world_model, part), parts))


def plot_data(episodes: Episodes, labels: Labels, values: np.ndarray, seed: int = 0) -> LabelPlots:
    """Per task: a seeded sample of advantages, and value curves of a few episodes (a success and
    a failure first, when the task has both), in episode id order."""
    rng = np.random.default_rng(seed)
    step_task = episodes.step_task()
    advantages: dict[str, np.ndarray] = {}
    curves: dict[str, list[ValueCurve]] = {}
    for code, task in enumerate(episodes.task_names):
        adv = labels.advantage[step_task == code]
        if adv.size > ADVANTAGE_SAMPLES:
            adv = adv[np.sort(rng.choice(adv.size, ADVANTAGE_SAMPLES, replace=False))]
        advantages[task] = np.asarray(adv, np.float32)
        mine = np.flatnonzero(episodes.task == code)
        order = sorted(mine, key=lambda e: episodes.episode_ids[e])
        first = [next((e for e in order if episodes.success[e] == s), None) for s in (True, False)]
        chosen = [e for e in first if e is not None]
        chosen += [e for e in order if e not in chosen][: CURVES_PER_TASK - len(chosen)]
        curves[task] = []
        for e in chosen:
            s, t = int(episodes.offsets[e]), int(episodes.offsets[e + 1])
            curves[task].append(
                ValueCurve(
                    episode_id=episodes.episode_ids[e],
                    task=task,
                    success=bool(episodes.success[e]),
                    step=np.arange(t - s, dtype=np.int32),
                    value=values[s:t].copy(),
                    returns=labels.returns[s:t].copy(),
                )
            )
    return LabelPlots(advantages, curves)


def label_episodes(
    cfg: RampConfig,
    store: EpisodeStore,
    world_model: str,
    episode_ids: Sequence[str],
    value_episodes: Callable[[list[str]], ValuedEpisodes],
) -> LabelResult:
    """The whole pass in one process: ``value_episodes(todo)`` supplies the missing values
    (an ``EpisodeValuer.value_episodes``, or a fan-out over actors)."""
    job = LabelPass(cfg, store, world_model, episode_ids)
    job.read()
    valued = value_episodes(job.todo) if job.todo else ValuedEpisodes()
    return job.finish(valued)
