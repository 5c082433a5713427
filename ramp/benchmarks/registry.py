"""Named benchmarks: `ramp bench NAME` looks the name up here.

Each entry is a module under ramp.benchmarks with `run(quick: bool) -> BenchResult`; modules are
imported only when run, so a benchmark's heavy dependencies never slow the CLI.
"""

from __future__ import annotations

import importlib

from ramp.benchmarks.report import BenchResult
from ramp.platform.config import UnknownNameError

BENCHMARKS: dict[str, str] = {
    "episode-store": "ramp.benchmarks.episode_store",
    "envs": "ramp.benchmarks.envs",
    "labelling-math": "ramp.benchmarks.labelling_math",
    "serving": "ramp.benchmarks.serving",
    "models": "ramp.benchmarks.models",
    "rollout": "ramp.benchmarks.rollout",
}


def names() -> list[str]:
    return sorted(BENCHMARKS)


def run_benchmark(name: str, quick: bool = False) -> BenchResult:
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, [*BENCHMARKS, "all"])
    module = importlib.import_module(BENCHMARKS[name])
    return module.run(quick=quick)
