"""`ramp demos`: scripted-expert episodes into the episode store, the base data of stage 1 and 2.

For each task, episodes run with seeds ``seed, seed + 1, ...``; the expert's actions get
N(0, noise) added (the stored action is the one executed). A list of noise levels is a mix of
operators of different skill: attempt k runs with ``noise[k % len(noise)]``. With a target
success rate the collector keeps successes and failures in that ratio (failures teach the world
model what going wrong looks like) and runs up to ``episodes x max_attempts_factor`` attempts
per task to find them.

Episode ids are deterministic: ``<source>-<suite>-<task>-n<noise>-s<seed>``. Re-running the same
command on the same machine writes nothing new (the store sees identical content under the same
ids), so an interrupted collection is resumed by running it again; a different noise level makes
new ids. The embodiment comes from the env itself, so no config file is needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ramp.platform.config import RampConfig
from ramp.platform.envs.settings import DemosConfig, EnvConfig

log = logging.getLogger(__name__)


@dataclass
class TaskReport:
    task: str
    kept: int = 0
    successes: int = 0
    attempts: int = 0
    written: int = 0
    existing: int = 0
    steps: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.kept if self.kept else 0.0


@dataclass
class DemosReport:
    suite: str
    embodiment: str
    root: str
    tasks: list[TaskReport] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [
            f"demos: {self.suite} -> {self.root} (embodiment {self.embodiment!r}, "
            f"{self.seconds:.1f} s)",
            f"{'task':<40} {'kept':>5} {'success':>8} {'tries':>6} {'new':>5} {'had':>5}",
        ]
        for t in self.tasks:
            lines.append(
                f"{t.task[:40]:<40} {t.kept:>5} {t.success_rate:>8.2f} {t.attempts:>6} "
                f"{t.written:>5} {t.existing:>5}"
            )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def demo_episode_id(source: str, suite: str, slug: str, noise: float, seed: int) -> str:
    return f"{source}-{suite}-{slug}-n{noise:g}-s{seed}"


def collect_demos(
    env_config: EnvConfig,
    demos: DemosConfig,
    root: str,
    cfg: RampConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemosReport:
    """Collect scripted-expert episodes for every task of `env_config` into the store at `root`."""
    from ramp.platform.envs.registry import make_env
    from ramp.platform.envs.rollout import run_episode, task_slug
    from ramp.platform.episodes import EpisodeStore

    cfg = cfg or RampConfig()
    t0 = time.perf_counter()
    env = make_env(env_config)
    try:
        expert = env.expert()  # NoExpertError for suites without one, before anything is written
        spec = env.spec
        embodiments = dict(cfg.embodiments)
        declared = embodiments.get(spec.embodiment)
        ours = spec.embodiment_config()
        if declared is not None and declared != ours:
            raise ValueError(
                f"embodiment {spec.embodiment!r} is declared in the config with other dimensions "
                f"than {spec.suite} renders ({env_config.height}x{env_config.width}, cameras "
                f"{', '.join(spec.cameras)}); set envs.env.embodiment to another name"
            )
        embodiments[spec.embodiment] = ours
        store = EpisodeStore(root, embodiments, cfg.store)
        report = DemosReport(spec.suite, spec.embodiment, root)
        for task in env_config.task_list:
            env.set_task(task)
            slug = task_slug(env, task)
            rep = TaskReport(task)
            report.tasks.append(rep)
            want_s = want_f = None
            if demos.target_success_rate is not None:
                want_s = round(demos.episodes * demos.target_success_rate)
                want_f = demos.episodes - want_s
            kept_f = 0
            max_attempts = int(demos.episodes * demos.max_attempts_factor)
            seed = demos.seed
            while rep.kept < demos.episodes and rep.attempts < max_attempts:
                noise = demos.noise_at(rep.attempts)
                rep.attempts += 1
                expert.reset()
                ep = run_episode(
                    env,
                    expert.act,
                    seed,
                    episode_id=demo_episode_id(demos.source, spec.suite, slug, noise, seed),
                    source=demos.source,
                    policy_version="scripted-expert",
                    round=demos.round,
                    action_noise=noise,
                )
                seed += 1
                if want_s is not None:
                    if ep.success and rep.successes >= want_s:
                        continue
                    if not ep.success and kept_f >= want_f:
                        continue
                result = store.write(ep)
                rep.kept += 1
                rep.steps += ep.num_steps
                rep.successes += int(ep.success)
                kept_f += int(not ep.success)
                if result.status == "written":
                    rep.written += 1
                else:
                    rep.existing += 1
                if progress is not None:
                    progress(
                        f"{task}: {rep.kept}/{demos.episodes} kept "
                        f"({rep.successes} successful, {rep.attempts} tries)"
                    )
            if rep.kept < demos.episodes:
                report.warnings.append(
                    f"{task}: kept {rep.kept} of {demos.episodes} after {rep.attempts} tries "
                    f"(success rate {rep.success_rate:.2f}, target "
                    f"{demos.target_success_rate}); raise --noise to get more failures, or "
                    "max_attempts_factor"
                )
    finally:
        env.close()
    report.seconds = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------- command line


def add_arguments(p) -> None:
    """`ramp demos` flags; each overrides the config's envs.env / envs.demos value."""
    p.add_argument("--env", metavar="NAME", help="suite: metaworld (the one with experts), ...")
    p.add_argument("--task", action="append", metavar="TASK", help="a task (repeatable)")
    p.add_argument("--episodes", type=int, metavar="N", help="episodes per task (default 20)")
    p.add_argument("--noise", type=float, metavar="SIGMA", help="action noise std (default 0)")
    p.add_argument(
        "--target-success", type=float, metavar="RATE", help="keep successes at this share"
    )
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--camera", action="append", metavar="CAM", help="a camera (repeatable)")
    p.add_argument("--size", type=int, metavar="PX", help="image height and width")
    p.add_argument("--source", help="source name of the episodes (default demos)")
    p.add_argument("--round", type=int, help="round the episodes belong to (default 0)")
    p.add_argument("--root", help="store root (default: the config's store.root)")
    p.add_argument("--config", metavar="FILE", help="a ramp config (default: built-in defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")


def _overrides(args) -> list[str]:
    out = list(args.set or ())
    if args.env:
        out += [f"envs.env.suite={args.env}"]
    flags = {
        "envs.env.tasks": args.task,
        "envs.env.cameras": args.camera,
        "envs.env.height": args.size,
        "envs.env.width": args.size,
        "envs.demos.episodes": args.episodes,
        "envs.demos.noise": args.noise,
        "envs.demos.target_success_rate": args.target_success,
        "envs.demos.seed": args.seed,
        "envs.demos.source": args.source,
        "envs.demos.round": args.round,
    }
    for key, value in flags.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        out.append(f"{key}={value}")
    return out


def run_cli(args) -> int:
    import sys

    from ramp.platform.config import ConfigError, load_config
    from ramp.platform.envs.core import NoExpertError
    from ramp.platform.envs.registry import SimulatorMissingError

    overrides = _overrides(args)
    if args.config is None and args.env and not args.task:
        # A suite given on the command line uses that suite's default tasks and cameras.
        overrides += ["envs.env.tasks=null"]
    cfg = load_config(args.config, overrides)
    if args.config is not None and args.env and cfg.envs.env.suite != args.env:
        raise ConfigError("--env", [f"{args.env!r} does not match the config"])
    root = args.root or cfg.store.root
    try:
        report = collect_demos(
            cfg.envs.env,
            cfg.envs.demos,
            root,
            cfg,
            progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
    except (NoExpertError, SimulatorMissingError) as e:
        print(f"ramp: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0
