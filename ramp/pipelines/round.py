"""`ramp round` and the single-stage commands: one continual-training round, resumable.

`ramp round --config X` runs the round that is due (an unfinished one resumes at its first
unfinished stage). The stage commands run the same state machine up to their stage:
`ramp pretrain-world-model` (stage 1, round 0), `ramp label`, `ramp train-policy` (stage 2 in
round 0), `ramp collect` (stage 3, rounds >= 1). Inside `ray job submit` the driver joins the
job's cluster (RAY_ADDRESS); on a laptop it starts a local Ray.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

STAGE_COMMANDS = {
    "pretrain-world-model": ("world_model", 0, "stage 1: pretrain the world model (round 0)"),
    "label": ("label", None, "label advantages with the round's world model"),
    "train-policy": ("policy", None, "train the policy (stage 2 in round 0, else stage 4)"),
    "collect": ("collect", None, "stage 3: human-in-the-loop rollouts of the round"),
}


def add_arguments(p: argparse.ArgumentParser, *, round_option: bool = True) -> None:
    p.add_argument("--config", required=True, help="a ramp config (YAML path or built-in name)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    if round_option:
        p.add_argument(
            "--round", type=int, help="round number (default: the unfinished or the due round)"
        )
    p.add_argument(
        "--address",
        help="Ray cluster (default: $RAY_ADDRESS, e.g. inside ray job submit; "
        "else a local Ray in this process)",
    )


def connect(address: str | None, *, dashboard: bool = False, num_cpus: int | None = None) -> bool:
    """Join the cluster, or start a local one; True when this process started it."""
    import ray

    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",  # a local cluster stays on loopback
    )
    return True


class Printer:
    """Stage lines with elapsed time, and progress bars for long stages.

    On a terminal a bar redraws in place; in a log (a `ray job` log, CI) it prints a line at each
    tenth of the work, so the log stays readable and still shows the job is moving.
    """

    WIDTH = 24

    def __init__(self, prefix: str = "", stream: Any = None):
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open = False  # a bar is drawn on the current terminal line
        self._last: dict[str, int] = {}

    def _stamp(self) -> str:
        elapsed = time.monotonic() - self.t0
        return f"[{elapsed // 60:02.0f}:{elapsed % 60:04.1f}] {self.prefix}"

    def __call__(self, message: str) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
        print(f"{self._stamp()}{message}", file=self.stream, flush=True)

    def bar(self, label: str, done: int, total: int, info: str = "") -> None:
        total = max(int(total), 1)
        done = min(int(done), total)
        filled = round(self.WIDTH * done / total)
        line = (
            f"{self._stamp()}  {label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done}/{total}{'  ' + info if info else ''}"
        )
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._open = done < total
            if done >= total:
                self.stream.write("\n")
            return
        tenth = done * 10 // total
        if self._last.get(label, -1) < tenth or done == total:
            self._last[label] = tenth
            print(line, file=self.stream, flush=True)


def printer(prefix: str = "") -> Printer:
    return Printer(prefix)


def summary(manifest: Any) -> str:
    """A few lines a user reads in the job log: versions, counts, success, gate, timings."""
    m = manifest
    st = m.stages
    lines = [f"round {m.round}: {m.status}"]
    v = m.versions
    lines.append(f"  world model   {v.world_model or '-'}")
    lines.append(f"  policy        {v.policy or '-'} (candidate)")
    lines.append(f"  production    {v.production or '-'}")
    if m.episode_ids is not None:
        lines.append(f"  episodes      {len(m.training_ids())} ({len(m.excluded)} excluded)")
    lab = st["label"].result if "label" in st else {}
    if lab:
        pos = lab.get("positive_fraction")
        tau = lab.get("value_kendall_tau")
        lines.append(
            f"  advantages    positive fraction {pos if pos is None else f'{pos:.3f}'}, "
            f"value tau {tau if tau is None else f'{tau:.3f}'}"
        )
    verdict = lab.get("verdict", {}) if isinstance(lab, dict) else {}
    if verdict.get("collapsed"):
        lines.append(f"  COLLAPSE ALARM {verdict.get('reason', '')}")
    ev = st["evaluate"].result if "evaluate" in st else {}
    for name, rate in (ev.get("success", {}) if isinstance(ev, dict) else {}).items():
        lines.append(f"  success       {name} {rate:.3f}")
    gate = (st["promote"].result or {}).get("gate") if "promote" in st else None
    if gate:
        lines.append(
            f"  gate          {'promoted' if gate['promote'] else 'kept'}: {gate['reason']}"
        )
    timings = ", ".join(
        f"{k} {r.wall_s:.0f}s" for k, r in st.items() if r.wall_s is not None and r.state == "done"
    )
    lines.append(f"  stage time    {timings}")
    return "\n".join(lines)


def preflight(cfg: Any, round_: int | None, until: str | None) -> int:
    """Everything that can fail without Ray fails here, before a cluster is joined: the store is
    reachable, the tracking URI is usable, the round and the stage exist. Returns the round."""
    from ramp.platform.episodes import EpisodeStore
    from ramp.platform.rounds import history
    from ramp.platform.rounds.manifest import stages_of
    from ramp.platform.tracking.uri import tracking_uri

    if cfg.tracking.enabled:
        tracking_uri(cfg.tracking, cfg.store.root)  # e.g. an S3 store without an MLflow server
    store = EpisodeStore.from_config(cfg)
    r = history.round_to_run(store.fs, store.current_round()) if round_ is None else round_
    if r < 0:
        raise ValueError(f"--round must be >= 0, got {r}")
    if until is not None and until not in stages_of(r):
        first = "round 0 has no rollouts: `ramp round` runs it (stage 1 -> label -> stage 2)"
        raise ValueError(first if until == "collect" else f"round {r} has no stage {until!r}")
    return r


def run(args: argparse.Namespace, until: str | None = None, round_: int | None = None) -> int:
    from ramp.actors.coordinator import Coordinator
    from ramp.platform.config import load_config, with_absolute_root
    from ramp.platform.rounds.lock import RoundLockedError

    asked = getattr(args, "round", None) if round_ is None else round_
    try:
        cfg = with_absolute_root(load_config(args.config, args.set or ()))
        r = preflight(cfg, asked, until)
    except ValueError as e:  # ConfigError is one too
        print(f"ramp: {e}", file=sys.stderr)
        return 2
    connect(args.address)
    say = printer()
    try:
        manifest = Coordinator(cfg, progress=say).run(round_=r, until=until)
    except RoundLockedError as e:
        print(f"ramp: {e}", file=sys.stderr)
        return 3
    print(summary(manifest))
    return 0


def run_stage_command(args: argparse.Namespace) -> int:
    stage, round_, _ = STAGE_COMMANDS[args.command]
    return run(args, until=stage, round_=round_ if round_ is not None else args.round)
