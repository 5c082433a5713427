"""The env registry: one name per simulator suite, with a "did you mean" for unknown names.

``make_env("metaworld", tasks=["pick-place-v3"])`` or ``make_env(EnvConfig(...))``. The adapter
module (and its simulator) is imported only here, on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ramp.platform.config import UnknownNameError
from ramp.platform.envs.core import SimEnv
from ramp.platform.envs.settings import EnvConfig
from ramp.platform.envs.suites import SUITES, SuiteInfo


class SimulatorMissingError(ImportError):
    """The suite's package is not installed in this interpreter."""


def suite_info(name: str) -> SuiteInfo:
    if name not in SUITES:
        raise UnknownNameError("env", name, SUITES)
    return SUITES[name]


def env_names() -> list[str]:
    return sorted(SUITES)


def adapter_class(name: str) -> type[SimEnv]:
    info = suite_info(name)
    module_name, cls_name = info.adapter.split(":")
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, cls_name)
    except ImportError as e:
        if (e.name or "").startswith("ramp"):
            raise
        raise SimulatorMissingError(
            f"env {name!r} needs the {info.package!r} package ({e}); `make setup` installs it"
        ) from e


def make_env(config: EnvConfig | str, **overrides: Any) -> SimEnv:
    """Build the adapter for a config (or a suite name plus EnvConfig fields as keywords)."""
    if isinstance(config, str):
        suite_info(config)
        config = EnvConfig(suite=config, **overrides)
    elif overrides:
        config = config.model_copy(update=overrides)
        config = EnvConfig.model_validate(config.model_dump())
    return adapter_class(config.suite)(config)
