"""What each stage of a round does, as calls into the stage actors; results go to the manifest.

Every method takes the manifest, may fill its frozen fields (episode ids, versions), and returns a
small dict of results (counts, versions, metrics) that the coordinator records and tracks. A
method must be safe to re-run after a crash: rollouts skip episodes that exist, trainers resume
their Ray Train run by name, the labeller skips episodes already labelled by the version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ramp.platform.config import RampConfig
from ramp.platform.envs.collect import policy_version_rates
from ramp.platform.episodes import EpisodeStore
from ramp.platform.episodes.store import EpisodeUnreadableError
from ramp.platform.rounds import history
from ramp.platform.rounds.gate import decide, veto_reasons
from ramp.platform.rounds.manifest import RoundManifest, load_manifest

log = logging.getLogger(__name__)


class RoundStages:
    def __init__(self, cfg: RampConfig, store: EpisodeStore, say: Callable[[str], None]):
        self.cfg, self.store, self.say = cfg, store, say
        self.fs = store.fs

    def _run_name(self, m: RoundManifest, kind: str) -> str:
        return f"{self.cfg.name}-r{m.round}-{kind}"

    def _bar(self, label: str) -> Callable[..., None] | None:
        """A progress callback for the stage actors (done, total[, message]) -> the printer."""
        bar = getattr(self.say, "bar", None)
        if bar is None:
            return None
        return lambda done, total, message="": bar(label, done, total, message)

    @contextlib.contextmanager
    def _watch_fit(self, run_name: str, label: str) -> Iterator[None]:
        """Poll the fit's progress.json (written by rank 0 every log_every steps) into a bar."""
        bar = self._bar(label)
        stop = threading.Event()

        def poll() -> None:
            seen = -1
            while not stop.wait(2.0):
                try:
                    text = self.fs.read_text(f"train-runs/{run_name}/progress.json")
                    p = json.loads(text) if text else None
                except (OSError, ValueError):
                    continue
                if p and p["step"] != seen:
                    seen = p["step"]
                    loss = p.get("loss")
                    bar(p["step"], p["steps"], "" if loss is None else f"loss {loss:.3f}")

        thread = threading.Thread(target=poll, daemon=True) if bar else None
        if thread:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread:
                thread.join(timeout=5)

    # ---------------------------------------------------------------------------- stage 3

    def collect(self, m: RoundManifest) -> dict[str, Any]:
        policy, world_model = history.production(self.fs, before_round=m.round)
        m.versions.production_before = policy
        if not self.cfg.round.collect:
            return {"skipped": True, "reason": "round.collect is false: robot uploads only"}
        if policy is None:
            raise RuntimeError(
                f"round {m.round} needs a policy in production to collect with; run round 0 "
                "(stage 1 -> label -> stage 2) first: `ramp round` on a store without rounds"
            )
        from ramp.actors.rollout import collect

        res = collect(
            self.cfg,
            round_=m.round,
            policy=policy,
            world_model=world_model,
            progress=self._bar("episodes"),
        )
        return _plain(res)

    # ---------------------------------------------------------------------------- freeze

    def freeze(self, m: RoundManifest) -> dict[str, Any]:
        """Fix the input: every readable episode of rounds 0..r; new uploads now go to r+1."""
        if m.versions.production_before is None:
            m.versions.production_before = history.production(self.fs, m.round)[0]
        self.store.set_current_round(m.round + 1)
        entries = self.store.episodes(round=list(range(m.round + 1)))
        before = load_manifest(self.fs, m.round - 1) if m.round > 0 else None
        known = set(before.episode_ids or ()) if before is not None else set()
        new = [e for e in entries if e.episode_id not in known]
        bad = self._unreadable([e.episode_id for e in new])
        ids = [e.episode_id for e in entries if e.episode_id not in bad]
        if m.round > 0 and len(ids) - len(known & set(ids)) < self.cfg.round.min_new_episodes:
            raise RuntimeError(
                f"round {m.round} has {len(new) - len(bad)} new episodes, fewer than "
                f"round.min_new_episodes ({self.cfg.round.min_new_episodes})"
            )
        m.episode_ids = ids
        m.excluded.update(bad)
        per_source: dict[str, int] = {}
        for e in entries:
            if e.episode_id not in bad:
                per_source[e.source] = per_source.get(e.source, 0) + 1
        return {
            "episodes": len(ids),
            "new_episodes": len(new) - len(bad),
            "quarantined": len(bad),
            "steps": sum(e.num_steps for e in entries if e.episode_id not in bad),
            **{f"episodes/{k}": v for k, v in sorted(per_source.items())},
            # success and intervention rates per policy version of this round's episodes
            "robot_stats": policy_version_rates(e for e in entries if e.round == m.round),
        }

    def _unreadable(self, ids: list[str]) -> dict[str, str]:
        """Read every new episode once: a corrupt file is quarantined (by the store) here, before
        trainers meet it; healthy files are not touched."""

        def check(eid: str) -> tuple[str, str | None]:
            try:
                self.store.read_episode(eid)
                return eid, None
            except EpisodeUnreadableError as e:
                log.warning("%s", e)
                return eid, str(e)

        with ThreadPoolExecutor(8) as pool:
            found = dict(pool.map(check, ids))
        for eid, why in found.items():
            if why:
                self.say(f"  quarantined {eid}: {why}")
        return {eid: why for eid, why in found.items() if why}

    # ---------------------------------------------------------------------------- training

    def world_model(self, m: RoundManifest) -> dict[str, Any]:
        from ramp.actors.world_model_trainer import fit_world_model

        t = self.cfg.training.world_model
        init = history.start_checkpoint(self.fs, "world_model", m.round, t.init, t.init_checkpoint)
        run_name = self._run_name(m, "world-model")
        with self._watch_fit(run_name, "steps"):
            res = fit_world_model(
                self.cfg,
                round_=m.round,
                episode_ids=m.training_ids(),
                init=init,
                run_name=run_name,
            )
        m.versions.world_model = res.version
        return {**_plain(res), "init": init}

    def label(self, m: RoundManifest) -> dict[str, Any]:
        from ramp.actors.labeller import label

        res = label(
            self.cfg,
            world_model=m.versions.world_model,
            episode_ids=m.training_ids(),
            progress=self._bar("episodes"),
        )
        for eid, why in res.unreadable.items():
            m.excluded[eid] = why
        verdict = res.collapse
        report = res.value_report
        overall = report.to_json()["overall"] if report else {}
        for line in report.table().splitlines() if report else ():
            self.say(f"  {line}")
        for line in res.separation.lines() if res.separation else ():
            self.say(f"  {line}")
        if verdict.collapsed:
            self.say(f"  ADVANTAGE COLLAPSE ALARM: {verdict.reason}")
        plots = {
            "advantages": res.plots.advantages,
            "thresholds": res.thresholds,
            "positive_fraction": {
                t: v
                for t in res.thresholds
                if (v := res.metrics.get(f"adv/task/{t}/pos_frac")) is not None
            },
            "curves": {
                task: [{"step": c.step, "value": c.value, "return": c.returns} for c in curves]
                for task, curves in res.plots.curves.items()
            },
        }
        return {
            "labelled": res.labelled,
            "skipped": res.skipped,
            "steps": res.steps,
            "unreadable": len(res.unreadable),
            "thresholds": res.thresholds,
            "metrics": res.metrics,
            "positive_fraction": res.metrics.get("adv/pos_frac"),
            "value_kendall_tau": res.metrics.get("value/kendall_tau"),
            # rl.value_report: values on the episodes the world model never trained on, next to
            # the time-only baseline (None when the held-out split is off or too small)
            "value_report": report.to_json() if report else None,
            "value_tau_heldout": overall.get("tau_wm"),
            "value_tau_time_baseline": overall.get("tau_time"),
            "separation": res.separation.to_json() if res.separation else None,
            "verdict": {
                "collapsed": verdict.collapsed,
                "reasons": list(verdict.reasons),
                "reason": verdict.reason,
                "advantage_reasons": verdict.advantage_reasons,
                "value_reasons": list(verdict.value_reasons),
            },
            "interventions": res.interventions.metrics(),
            "wall_s": res.wall_s,
            "_plots": plots,
        }

    def policy(self, m: RoundManifest) -> dict[str, Any]:
        from ramp.actors.policy_trainer import fit_policy

        t = self.cfg.training.policy
        init = history.start_checkpoint(self.fs, "policy", m.round, t.init, t.init_checkpoint)
        run_name = self._run_name(m, "policy")
        with self._watch_fit(run_name, "steps"):
            res = fit_policy(
                self.cfg,
                round_=m.round,
                episode_ids=m.training_ids(),
                world_model=m.versions.world_model,
                init=init,
                run_name=run_name,
                stage="policy_training" if m.round == 0 else "continual_training",
            )
        m.versions.policy = res.version
        return {**_plain(res), "init": init}

    # ---------------------------------------------------------------------------- gate

    def evaluate(self, m: RoundManifest) -> dict[str, Any]:
        if not self.cfg.round.evaluate:
            return {"skipped": True, "reason": "round.evaluate is false"}
        from ramp.actors.rollout import evaluate

        policies = {"candidate": m.versions.policy}
        world_models = {"candidate": m.versions.world_model}
        if m.versions.production_before:
            policies["production"] = m.versions.production_before
            world_models["production"] = history.production(self.fs, m.round)[1]
        res = evaluate(
            self.cfg,
            round_=m.round,
            policies=policies,
            world_model=world_models,
            progress=self._bar("episodes"),
        )
        return _plain(res)

    def promote(self, m: RoundManifest) -> dict[str, Any]:
        ev = m.stages["evaluate"].result
        evaluated = ev.get("policies", {}) if isinstance(ev, dict) else {}

        def outcomes(label: str) -> list[dict[str, Any]]:  # [{task, seed, success, ...}]
            return list((evaluated.get(label) or {}).get("outcomes") or [])

        verdict = m.stages["label"].result.get("verdict", {})
        vetoing = veto_reasons(verdict, self.cfg.envs.evaluation.veto_on)
        decision = decide(
            outcomes("candidate") or None,
            outcomes("production") if m.versions.production_before else None,
            level=self.cfg.envs.evaluation.test_level,
            margin=self.cfg.envs.evaluation.margin,
            collapsed=bool(vetoing),
            collapse_veto=self.cfg.envs.evaluation.collapse_veto,
            collapse_reason="; ".join(vetoing),
        )
        if decision.promote:
            m.versions.production = m.versions.policy
            m.versions.production_world_model = m.versions.world_model
        else:
            prev_policy, prev_wm = history.production(self.fs, m.round)
            m.versions.production = prev_policy
            m.versions.production_world_model = prev_wm
        self.say(
            f"  gate: {'PROMOTE' if decision.promote else 'keep production'}: {decision.reason}"
        )
        deployed = self._deploy(m.versions.production, m.versions.production_world_model)
        return {"gate": decision.to_json(), "deployed": deployed}

    def _deploy(self, policy: str | None, world_model: str | None) -> dict[str, Any]:
        mode = self.cfg.round.deploy
        if policy is None or mode == "never":
            return {"action": "none"}
        from ramp.deploy import control

        try:
            live = control.status(self.cfg.store.root).get("version")
        except Exception:
            live = None
        if live is None and mode == "if-serving":
            return {"action": "none", "reason": "no Serve app is running"}
        if live is None:
            res = control.start(self.cfg, checkpoint=policy, world_model=world_model)
        else:
            res = control.deploy(policy, root=self.cfg.store.root)
        self.say(f"  serving {res.version} ({res.action})")
        return {"action": res.action, "version": res.version, "previous": res.previous}


def _plain(result: Any) -> dict[str, Any]:
    """A stage actor's result dataclass as JSON-able dict (big arrays are the tracker's, not
    the manifest's: keys starting with '_' and numpy arrays are dropped)."""
    import dataclasses

    import numpy as np

    raw = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)

    def clean(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return None
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if not str(k).startswith("_")}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return {k: clean(v) for k, v in raw.items() if not k.startswith("_")}
