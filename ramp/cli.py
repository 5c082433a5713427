"""`ramp <command>`: one subcommand per pipeline.

Heavy imports (torch, ray) happen inside the command that needs them, so `ramp --help` and
`ramp config check` answer instantly. Errors a user can fix print one clear message and exit 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from ramp import __version__


def _cmd_config_check(args: argparse.Namespace) -> int:
    from ramp.platform.config import dump_config, load_config

    cfg = load_config(args.file, args.set or ())
    print(dump_config(cfg), end="")
    print(f"# ok: {args.file} is a valid ramp config", file=sys.stderr)
    return 0


def _store(root: str, config: str | None = None):
    """A store over ROOT; S3 settings and embodiments come from --config, else the AWS_* env."""
    from ramp.platform.config import load_config
    from ramp.platform.episodes import EpisodeStore

    cfg = load_config(config) if config else None
    if cfg is None:
        return EpisodeStore(root)
    return EpisodeStore(root, dict(cfg.embodiments), cfg.store)


def _cmd_data_copy(args: argparse.Namespace) -> int:
    from ramp.platform.episodes.copy import copy_store

    src, dst = _store(args.src, args.config), _store(args.dst, args.config)
    filters = {k: v for k, v in (("round", args.round), ("source", args.source)) if v is not None}
    report = copy_store(src, dst, workers=args.workers, progress=_progress_printer(), **filters)
    print(report.format())
    return 1 if report.failed else 0


def _progress_printer():
    import time

    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] > 2:
            last[0] = now
            print(f"  {done}/{total} episodes", file=sys.stderr, flush=True)

    return progress


def _cmd_data_import_lerobot(args: argparse.Namespace) -> int:
    from ramp.platform.episodes.lerobot import LeRobotError
    from ramp.platform.episodes.lerobot_import import ImportOptions, import_lerobot

    options = ImportOptions(
        embodiment=args.embodiment,
        id_prefix=args.id_prefix,
        source=args.source,
        policy_version=args.policy_version,
        round=args.round,
        success=args.success,
    )
    try:
        report = import_lerobot(
            args.src, _store(args.root, args.config), options, _progress_printer()
        )
    except LeRobotError as e:
        print(f"ramp: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def _cmd_data_export_lerobot(args: argparse.Namespace) -> int:
    from ramp.platform.episodes.lerobot import LeRobotError
    from ramp.platform.episodes.lerobot_export import ExportOptions, export_lerobot

    options = ExportOptions(crf=args.crf, preset=args.preset)
    try:
        report = export_lerobot(
            _store(args.root, args.config),
            args.dst,
            round=args.round,
            source=args.source,
            task=args.task,
            embodiment=args.embodiment,
            options=options,
            progress=_progress_printer(),
        )
    except LeRobotError as e:
        print(f"ramp: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from ramp.platform.episodes.stats import format_stats, store_stats

    store = _store(args.root, args.config)
    stats = store_stats(store.episodes())
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats, args.root))
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from ramp.platform.episodes.check import check_store

    report = check_store(_store(args.root, args.config))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.format())
    return 0 if report.clean else 1


def _cmd_demos(args: argparse.Namespace) -> int:
    from ramp.pipelines.demos import run_cli

    return run_cli(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from ramp.pipelines.serve import run_serve

    return run_serve(args)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from ramp.pipelines.serve import run_deploy

    return run_deploy(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ramp.benchmarks.registry import names, run_benchmark
    from ramp.benchmarks.report import write_json

    todo = names() if args.name == "all" else [args.name]
    missed = []
    for name in todo:
        result = run_benchmark(name, quick=args.quick)
        print(result.table())
        if args.json:
            target = args.json if (args.name != "all") else f"{args.json.rstrip('/')}/"
            print(f"wrote {write_json(result, target)}")
        missed += result.target_failures()
        print()
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from ramp.platform.config import load_config
    from ramp.platform.tracking.dashboard import run_dashboard

    cfg = load_config(args.config, args.set or ())
    return run_dashboard(cfg, host=args.host, port=args.port, root=args.root)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ramp",
        description="World-model-conditioned continual RL for VLA robot policies, on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"ramp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = sub.add_parser("config", help="check and print configs")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check = config_sub.add_parser(
        "check", help="validate a config and print it with every default resolved"
    )
    check.add_argument("file", help="a YAML file, or the name of a built-in config")
    check.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a key (repeatable)"
    )
    check.set_defaults(func=_cmd_config_check)

    data = sub.add_parser("data", help="inspect and maintain an episode store")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    stats = data_sub.add_parser(
        "stats", help="episodes, steps, success and intervention share per round/source/task"
    )
    stats.add_argument("root", help="store root: a path or s3://bucket/prefix")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.set_defaults(func=_cmd_data_stats)
    validate = data_sub.add_parser(
        "validate", help="check every file, quarantine bad ones, repair the index"
    )
    validate.add_argument("root", help="store root: a path or s3://bucket/prefix")
    validate.add_argument("--json", action="store_true", help="print JSON instead of text")
    validate.set_defaults(func=_cmd_data_validate)

    demos = sub.add_parser(
        "demos", help="write scripted-expert episodes into the store (base demonstrations)"
    )
    from ramp.pipelines.demos import add_arguments as _demos_arguments

    _demos_arguments(demos)
    demos.set_defaults(func=_cmd_demos)

    copy = data_sub.add_parser(
        "copy", help="copy episodes and labels between roots (local <-> S3); resumable"
    )
    copy.add_argument("src", help="source root: a path or s3://bucket/prefix")
    copy.add_argument("dst", help="destination root (created if missing)")
    copy.add_argument("--round", type=int, help="only this round")
    copy.add_argument("--source", help="only this source")
    copy.add_argument("--workers", type=int, default=8, help="parallel transfers (default 8)")
    copy.set_defaults(func=_cmd_data_copy)

    imp = data_sub.add_parser(
        "import-lerobot", help="import a LeRobot v3 dataset (local folder) into a store"
    )
    imp.add_argument("src", help="the LeRobot dataset folder (holds meta/info.json)")
    imp.add_argument("root", help="store root: a path or s3://bucket/prefix")
    imp.add_argument(
        "--embodiment", help="embodiment name (default: the dataset's robot_type, else lerobot)"
    )
    imp.add_argument(
        "--id-prefix", help="episode ids are PREFIX-<episode index> (default: the folder's name)"
    )
    imp.add_argument(
        "--source", help="source of the episodes (default: lerobot, or what a ramp export kept)"
    )
    imp.add_argument(
        "--policy-version",
        help="policy_version of every step (default: human, or what a ramp export kept)",
    )
    imp.add_argument("--round", type=int, default=0, help="round to store them in (default 0)")
    imp.add_argument(
        "--success",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="outcome of episodes when the dataset has no next.success (default: success)",
    )
    imp.set_defaults(func=_cmd_data_import_lerobot)

    exp = data_sub.add_parser(
        "export-lerobot", help="export episodes of one embodiment as a LeRobot v3 dataset"
    )
    exp.add_argument("root", help="store root: a path or s3://bucket/prefix")
    exp.add_argument("dst", help="a new folder for the LeRobot dataset")
    exp.add_argument("--round", type=int, help="only this round")
    exp.add_argument("--source", help="only this source")
    exp.add_argument("--task", help="only this task")
    exp.add_argument("--embodiment", help="only this embodiment (required if there are several)")
    exp.add_argument("--crf", type=int, default=30, help="AV1 quality: lower is better (30)")
    exp.add_argument(
        "--preset", type=int, default=12, help="SVT-AV1 speed preset 0-13 (12, lerobot's)"
    )
    exp.set_defaults(func=_cmd_data_export_lerobot)
    for p in (imp, exp):
        p.add_argument("--config", help="a ramp config: store settings and declared embodiments")
    for p in (stats, validate, copy):
        p.add_argument(
            "--config", help="a ramp config: S3 settings (store.s3) and declared embodiments"
        )

    from ramp.pipelines.serve import add_deploy_arguments, add_serve_arguments

    serve = sub.add_parser("serve", help="serve a policy to robots (Ray Serve; docs/api.md)")
    add_serve_arguments(serve)
    serve.set_defaults(func=_cmd_serve)
    deploy = sub.add_parser(
        "deploy", help="switch the running server to a policy version (zero downtime), or roll back"
    )
    add_deploy_arguments(deploy)
    deploy.set_defaults(func=_cmd_deploy)

    from ramp.pipelines.round import STAGE_COMMANDS
    from ramp.pipelines.round import add_arguments as add_round_arguments

    rnd = sub.add_parser(
        "round", help="run (or resume) one continual-training round (docs/operations.md)"
    )
    add_round_arguments(rnd)
    rnd.set_defaults(func=_cmd_round)
    for name, (_, fixed_round, text) in STAGE_COMMANDS.items():
        stage = sub.add_parser(name, help=text)
        add_round_arguments(stage, round_option=fixed_round is None)
        stage.set_defaults(func=_cmd_stage)

    from ramp.pipelines.value_report import add_arguments as add_value_report_arguments

    vrep = sub.add_parser(
        "value-report",
        help="how well a world model's values rank the returns on held-out episodes, against "
        "time-only and outcome baselines (labels what has no labels yet)",
    )
    add_value_report_arguments(vrep)
    vrep.set_defaults(func=_cmd_value_report)

    from ramp.pipelines.quickstart import add_arguments as add_quickstart_arguments

    quick = sub.add_parser(
        "quickstart", help="the whole loop on this machine: demos, round 0, 2 rounds, serving"
    )
    add_quickstart_arguments(quick)
    quick.set_defaults(func=_cmd_quickstart)

    dash = sub.add_parser("dashboard", help="open the MLflow UI on the config's tracking store")
    dash.add_argument("--config", help="a ramp config (default: the built-in defaults)")
    dash.add_argument("--root", help="store root (default: the config's store.root)")
    dash.add_argument("--port", type=int, default=5000, help="port of the UI (default 5000)")
    dash.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    dash.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    dash.set_defaults(func=_cmd_dashboard)

    bench = sub.add_parser("bench", help="run a benchmark (prints a table; --json writes JSON)")
    bench.add_argument("name", help="a benchmark name, or 'all'")
    bench.add_argument("--quick", action="store_true", help="a smaller run (under a minute)")
    bench.add_argument("--json", metavar="PATH", help="write the JSON result here (file or dir)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from ramp.pipelines.quickstart import run_cli

    return run_cli(args)


def _cmd_value_report(args: argparse.Namespace) -> int:
    from ramp.pipelines.value_report import run

    return run(args)


def _cmd_round(args: argparse.Namespace) -> int:
    from ramp.pipelines.round import run

    return run(args)


def _cmd_stage(args: argparse.Namespace) -> int:
    from ramp.pipelines.round import run_stage_command

    return run_stage_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's start-up chatter
    for chatty in ("mlflow", "alembic"):  # database set-up lines on every new SQLite store
        logging.getLogger(chatty).setLevel(logging.WARNING)
    func = getattr(args, "func", None)
    if func is None:
        # `ramp`, `ramp data` ...: show the help of the deepest command given.
        chosen = [a for a in (args.command, getattr(args, f"{args.command}_command", None)) if a]
        parser.parse_args([*chosen, "--help"])
        return 2
    from ramp.platform.config import ConfigError, UnknownNameError
    from ramp.platform.episodes import (
        EpisodeConflictError,
        EpisodeNotFoundError,
        EpisodeValidationError,
        LabelError,
        StoreUnavailableError,
    )
    from ramp.platform.tracking.uri import TrackingUnavailableError

    try:
        return int(func(args) or 0)
    except (
        ConfigError,
        UnknownNameError,
        EpisodeValidationError,
        EpisodeConflictError,
        EpisodeNotFoundError,
        LabelError,
        StoreUnavailableError,
        TrackingUnavailableError,
        FileNotFoundError,
    ) as e:
        print(f"ramp: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
