"""Shared helpers for the simulator tests (a uniquely named module: every test folder has its own
conftest.py, so ``from conftest import ...`` would be ambiguous).

A missing simulator package skips its tests locally (with the reason shown by ``-ra``) but FAILS
them on CI (``CI=true``): `make setup` installs every suite, so a missing one there is a bug.
"""

from __future__ import annotations

import importlib
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")
warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")


def require(module: str, package: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as e:
        message = f"{package} is not installed ({e}); `make setup` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def segmentation_centroid(seg: np.ndarray, geom_ids: set[int]) -> np.ndarray | None:
    """Mean pixel (x, y) of the pixels showing any of `geom_ids`."""
    mask = np.isin(seg, list(geom_ids))
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def body_geoms(model, body_names: list[str]) -> set[int]:
    """Geoms of the named bodies and of every body below them."""
    import mujoco

    roots = {mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in body_names}
    roots.discard(-1)
    bodies = set(roots)
    changed = True
    while changed:
        changed = False
        for b in range(model.nbody):
            if b not in bodies and int(model.body_parentid[b]) in bodies and b != 0:
                bodies.add(b)
                changed = True
    return {g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in bodies}
