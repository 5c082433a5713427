"""Simulators behind one contract: adapters, fast headless rendering, scripted experts, the
simulated human and the rollout helper (docs/envs.md).

Only the settings and the static suite table are imported eagerly (``ramp.platform.config``
composes them); everything that touches a simulator is imported on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Headless rendering everywhere; must be set before anything imports mujoco (docs/envs.md).
os.environ.setdefault("MUJOCO_GL", "egl")

from ramp.platform.envs.settings import DemosConfig
from ramp.platform.envs.suites import SUITES, SuiteInfo

_LAZY = {
    "Observation": "ramp.platform.envs.core",
    "EnvSpec": "ramp.platform.envs.core",
    "SimEnv": "ramp.platform.envs.core",
    "Expert": "ramp.platform.envs.core",
    "NoExpertError": "ramp.platform.envs.core",
    "make_env": "ramp.platform.envs.registry",
    "env_names": "ramp.platform.envs.registry",
    "SimulatorMissingError": "ramp.platform.envs.registry",
    "InterventionSource": "ramp.platform.envs.human",
    "SimulatedHuman": "ramp.platform.envs.human",
    "run_episode": "ramp.platform.envs.rollout",
    "EpisodeRun": "ramp.platform.envs.rollout",
    "ChunkedPolicy": "ramp.platform.envs.chunking",
}

__all__ = [
    "SUITES",
    "DemosConfig",
    "EnvConfig",
    "EnvsConfig",
    "HumanConfig",
    "SuiteInfo",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
