"""`ramp value-report`: how well a world model's values rank the returns, on any store.

Picks the world-model version (``--world-model``, else the one the latest round manifest names,
else the newest checkpoint in ``checkpoints/world-model/``) and the episodes (that round's
training ids, else every episode of the store), then runs the labelling pass of ``ramp label``:
episodes that already have label sidecars of that version are read back, never valued again; only
missing ones need the world model (labeller actors on Ray, started as ``ramp label`` starts them:
``pipelines.round.connect``). Prints the value report (``rl.value_report``: held-out Kendall tau and
MAE against the time-only and outcome-oracle baselines), the P(I=1) separation and the collapse
verdict. docs/rl.md, "The value report".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

WM_DIR = "checkpoints/world-model"
_ROUND = re.compile(r"^world-model-r(\d+)-")


class NoWorldModelError(ValueError):
    """The store has no world model to report on."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a ramp config (YAML path or built-in name)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument(
        "--world-model",
        metavar="VERSION",
        help="world-model version (default: the latest round's, else the newest in the store)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead")
    p.add_argument(
        "--address",
        help="Ray cluster, only needed when episodes lack labels of the version (default: "
        "$RAY_ADDRESS, else a local Ray in this process)",
    )


def world_model_versions(fs: Any) -> list[str]:
    """Versions with a complete checkpoint (a config.json) in the store, oldest round first."""
    found = {
        rel.split("/")[2]
        for rel in fs.list_files(WM_DIR)
        if rel.count("/") == 3 and rel.endswith("/config.json")
    }

    def key(v: str) -> tuple[int, str]:
        m = _ROUND.match(v)
        return (int(m.group(1)) if m else -1, v)

    return sorted(found, key=key)


def choose(fs: Any, asked: str | None) -> tuple[str, Any]:
    """(world-model version, the manifest of the round that trained it, or None)."""
    from ramp.platform.rounds import history

    rounds = history.manifests(fs)
    if asked:
        return asked, next((m for m in reversed(rounds) if m.versions.world_model == asked), None)
    for m in reversed(rounds):
        if m.versions.world_model:
            return m.versions.world_model, m
    versions = world_model_versions(fs)
    if not versions:
        raise NoWorldModelError(
            f"no world model in {fs.full(WM_DIR)} and no round names one: train one first "
            "(`ramp pretrain-world-model --config ...`) or name one with --world-model"
        )
    return versions[-1], None


def report(cfg: Any, world_model: str | None, address: str | None = None) -> Any:
    """The ``LabelResult`` of a labelling pass of the chosen version (read back where labelled)."""
    from ramp.platform.episodes import EpisodeStore
    from ramp.platform.rl.relabel import LabelPass, ValuedEpisodes

    store = EpisodeStore.from_config(cfg)
    version, manifest = choose(store.fs, world_model)
    ids = (
        manifest.training_ids()
        if manifest is not None and manifest.episode_ids is not None
        else [e.episode_id for e in store.episodes()]
    )
    if not ids:
        raise ValueError(f"the store {cfg.store.root} has no episodes to report on")
    job = LabelPass(cfg, store, version, ids)
    job.read()
    if not job.todo:  # every episode has labels of this version: no world model, no Ray
        return job.finish(ValuedEpisodes())
    if not store.fs.exists(f"{WM_DIR}/{version}/config.json"):
        raise NoWorldModelError(
            f"{len(job.todo)} of {len(ids)} episodes have no labels of {version!r}, and the "
            f"store has no such checkpoint ({store.fs.full(WM_DIR)}/{version}) to value them with"
        )
    from ramp.actors.labeller import label
    from ramp.pipelines.round import connect, printer

    say = printer()
    say(f"{len(job.todo)} of {len(ids)} episodes have no labels of {version}: labelling them")
    connect(address)
    return label(
        cfg, world_model=version, episode_ids=ids, progress=lambda d, t: say.bar("episodes", d, t)
    )


def format_result(res: Any, holdout_fraction: float) -> str:
    lines = [
        f"world model {res.world_model}: {len(res.episode_ids)} episodes, {res.steps} steps "
        f"({res.labelled} labelled now, {res.skipped} read back)"
    ]
    if res.value_report is not None:
        lines.append(res.value_report.table())
    else:
        lines.append(
            f"no held-out report: training.world_model.holdout_fraction is {holdout_fraction:g}"
        )
    if res.separation is not None:
        lines += res.separation.lines()
    lines.append(f"collapse check: {res.collapse.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ramp.platform.config import load_config, with_absolute_root

    try:
        cfg = with_absolute_root(load_config(args.config, args.set or ()))
        res = report(cfg, args.world_model, args.address)
    except ValueError as e:  # ConfigError and NoWorldModelError are ones too
        print(f"ramp: {e}", file=sys.stderr)
        return 2
    if args.json:
        body = {
            "world_model": res.world_model,
            "episodes": len(res.episode_ids),
            "value_report": res.value_report.to_json() if res.value_report else None,
            "separation": res.separation.to_json() if res.separation else None,
            "collapse": {"collapsed": res.collapse.collapsed, "reasons": res.collapse.reasons},
        }
        print(json.dumps(body, indent=1))
    else:
        print(format_result(res, cfg.training.world_model.holdout_fraction))
    return 0
