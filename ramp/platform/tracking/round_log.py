"""What the coordinator tells MLflow about a round: the mapping from stage results to runs,
metrics, artifacts, registry aliases and link tags. No Ray; tracking off = every call a no-op.

Why one place: the stages return plain results (the manifest keeps them); deciding which of those
numbers are metrics, which are plots and which versions move which alias is tracking policy, and
it should be readable in one file rather than spread over the stage code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

KIND = {"world_model": "world-model", "policy": "policy"}


def numeric_leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite number (bools as 0/1) in a nested result, keyed by its '/'-joined path."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric_leaves(value, f"{name}/"))
        elif isinstance(value, int | float) and math.isfinite(float(value)):  # bools too
            out[name] = float(value)
    return out


class RoundLog:
    """The coordinator's tracker: ``RoundLog(cfg)``; every method takes the manifest."""

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.enabled = bool(cfg.tracking.enabled)
        self.round_run: Any = None
        self.stage_runs: dict[str, Any] = {}

    # ------------------------------------------------------------------------- round

    def start_round(self, m: Any) -> str | None:
        if not self.enabled:
            return None
        from ramp.platform.tracking.tracker import RoundTracker

        self.round_run = RoundTracker.start(self.cfg, m.round, run_id=m.mlflow_run_id)
        self.round_run.log_config(self.cfg)
        self.round_run.set_tags({"ramp.status": "running", "mlflow.runName": f"round-{m.round}"})
        return self.round_run.run_id

    def end_round(self, m: Any) -> None:
        if self.round_run is None:
            return
        self.round_run.log_manifest(m.model_dump(mode="json"))
        self.round_run.link(
            episodes=len(m.training_ids()) if m.episode_ids is not None else None,
            world_model=m.versions.world_model,
            policy=m.versions.policy,
            deployment=m.versions.production,
        )
        self.round_run.set_tags({"ramp.status": m.status})
        self.round_run.finish("FINISHED")

    def pause_round(self, m: Any) -> None:
        """A stage command stopped the round early: the run stays open for `ramp round`."""
        if self.round_run is not None:
            self.round_run.log_manifest(m.model_dump(mode="json"))
            self.round_run.set_tags({"ramp.status": f"paused after {m.next_stage()}"})
            self.round_run.finish("KILLED")

    # ------------------------------------------------------------------------- stages

    def start_stage(self, m: Any, name: str) -> str | None:
        if self.round_run is None:
            return None
        run = self.round_run.stage(name, run_id=m.stages[name].mlflow_run_id)
        self.stage_runs[name] = run
        return run.run_id

    def fail_stage(self, m: Any, name: str, error: str) -> None:
        run = self.stage_runs.get(name)
        if run is None:
            return
        run.log_text("error.txt", error)
        run.finish("FAILED")
        self.round_run.set_tags({"ramp.status": f"failed in {name}"})
        self.round_run.finish("FAILED")

    def end_stage(self, m: Any, name: str, result: dict[str, Any], extra: dict[str, Any]) -> None:
        """Log one finished stage: its numbers on the stage run (and the headline ones on the
        round run, where the dashboard compares rounds), plots, versions and aliases."""
        run = self.stage_runs.get(name)
        if run is None:
            return
        try:
            self._stage(m, name, run, result, extra)
        finally:
            run.finish("FINISHED")

    def _stage(self, m: Any, name: str, run: Any, result: dict, extra: dict) -> None:
        history = extra.get("history") or result.get("history") or []
        metrics = numeric_leaves({k: v for k, v in result.items() if k != "history"})
        run.log_metrics(metrics)
        self.round_run.log_metrics(metrics, prefix=f"{name}/")
        if history:
            run.log_history(history)
            self.round_run.log_history(history, prefix=f"{name}/")
        registry = self.round_run.registry
        if name in KIND and registry is not None:
            version = getattr(m.versions, name)
            registry.set_alias(KIND[name], "candidate", version, run_id=run.run_id)
            self.round_run.link(**{name: version})
        if name == "freeze":
            self.round_run.link(episodes=result.get("episodes"))
        if name == "label":
            self._label(run, result, extra)
        if name == "promote" and registry is not None and result.get("gate", {}).get("promote"):
            registry.promote("policy", m.versions.production, run_id=run.run_id)
            if m.versions.production_world_model:
                registry.promote(
                    "world-model", m.versions.production_world_model, run_id=run.run_id
                )
        if name == "promote":
            self.round_run.link(deployment=m.versions.production)

    def _label(self, run: Any, result: dict, extra: dict) -> None:
        from ramp.platform.tracking import plots

        verdict = result.get("verdict") or {}
        reasons = verdict.get("reasons") or ([verdict["reason"]] if verdict.get("reason") else [])
        for target in (run, self.round_run):
            target.set_collapse(bool(verdict.get("collapsed")), reasons)
        plot = extra.get("plots") or {}
        try:
            if plot.get("advantages"):
                png = plots.advantage_histograms(
                    plot["advantages"],
                    plot.get("thresholds", {}),
                    positive_fraction=plot.get("positive_fraction"),
                )
                run.log_png("advantages.png", png)
                self.round_run.log_png("advantages.png", png)
            if plot.get("curves"):
                png = plots.value_curves(plot["curves"])
                run.log_png("value_curves.png", png)
                self.round_run.log_png("value_curves.png", png)
        except Exception as e:  # a plot must never fail a round; say so in the log
            log.warning("could not draw the label plots: %s", e)
