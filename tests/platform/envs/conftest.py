"""Fixtures of the simulator tests; the helpers live in envs_helpers.py."""

from __future__ import annotations

import pytest
from envs_helpers import require


@pytest.fixture(scope="module")
def metaworld_env():
    require("metaworld", "metaworld")
    from ramp.platform.envs.registry import make_env

    env = make_env("metaworld", tasks=["pick-place-v3"], height=96, width=96)
    yield env
    env.close()
