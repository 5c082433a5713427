"""Headless MuJoCo rendering that is fast on a CPU and right way up.

Why our own renderer instead of each suite's: the suites render with 4x MSAA, 4096-pixel shadow
maps and reflections, which on llvmpipe (software OpenGL) cost ~45 ms a frame; with
``offsamples = 0`` (set before the GL context exists) and shadows and reflections off (set on
the scene every frame, because ``update_scene`` is free to rewrite the scene) a 128 px frame
takes 2-7 ms. The suites also disagree on orientation: MetaWorld's corner cameras are mounted
upside down (their "up" axis points at the floor) and robosuite returns OpenGL's bottom-up
buffer. ``mujoco.Renderer`` returns top-down rows, and a fixed camera whose up axis points below
the horizon is turned 180 degrees (rows *and* columns: a row flip alone would mirror the scene,
swapping the robot's left and right). Tracking cameras (wrist views) are left as mounted.

The same camera model projects world points to pixels (``project``), which is how
``trajectory_2d`` is made; the tests check the projection against a segmentation render so the
image and the projection cannot drift apart.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco


@dataclass(frozen=True)
class FreeCamera:
    """A camera the model does not define (e.g. FrankaKitchen's default view)."""

    distance: float
    azimuth: float
    elevation: float
    lookat: tuple[float, float, float]


def apply_fast_settings(model: mujoco.MjModel) -> None:
    """Model-side settings; must run before a GL context (Renderer) is made for the model."""
    model.vis.quality.offsamples = 0


def _fast_scene(scene: mujoco.MjvScene) -> None:
    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


class FastRenderer:
    """Renders named cameras of one model into uint8 (H, W, 3) arrays, right way up.

    ``cameras`` maps ramp's camera name to the model's camera name or a ``FreeCamera``.
    Re-create the renderer when the suite rebuilds its model (LIBERO does on hard resets);
    ``matches(model)`` tells whether it still belongs to a model.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        cameras: dict[str, str | FreeCamera],
        height: int,
        width: int,
        fast: bool = True,
    ):
        self.model = model
        self.height, self.width = height, width
        self.fast = fast
        if fast:
            apply_fast_settings(model)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._renderer = mujoco.Renderer(model, height, width)
        self._cams: dict[str, mujoco.MjvCamera] = {}
        self._fixed: dict[str, bool] = {}
        for name, cam in cameras.items():
            v = mujoco.MjvCamera()
            if isinstance(cam, FreeCamera):
                v.type = mujoco.mjtCamera.mjCAMERA_FREE
                v.distance, v.azimuth, v.elevation = cam.distance, cam.azimuth, cam.elevation
                v.lookat[:] = cam.lookat
                self._fixed[name] = True
            else:
                cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)
                if cid < 0:
                    raise ValueError(f"camera {cam!r} is not in the model")
                v.type = mujoco.mjtCamera.mjCAMERA_FIXED
                v.fixedcamid = cid
                # Static: fixed to the world body. Cameras on moving bodies (wrist views) keep
                # the orientation they are mounted with.
                self._fixed[name] = int(model.cam_bodyid[cid]) == 0 and int(
                    model.cam_mode[cid]
                ) == int(mujoco.mjtCamLight.mjCAMLIGHT_FIXED)
            self._cams[name] = v
        self._rotate = {name: False for name in cameras}
        self._option = mujoco.MjvOption()
        self.orient(data)

    def matches(self, model: mujoco.MjModel) -> bool:
        return model is self.model

    @property
    def cameras(self) -> list[str]:
        return list(self._cams)

    @property
    def static_cameras(self) -> list[str]:
        """Cameras that do not move with the robot (trajectory_2d uses the first of them)."""
        return [c for c in self._cams if self._fixed[c]]

    def _update(self, data: mujoco.MjData, name: str) -> mujoco.MjvScene:
        self._renderer.update_scene(data, camera=self._cams[name], scene_option=self._option)
        scene = self._renderer.scene
        if self.fast:
            _fast_scene(scene)
        return scene

    def orient(self, data: mujoco.MjData) -> None:
        """Decide per fixed camera whether it is mounted upside down (its up axis points down)."""
        for name in self._cams:
            if not self._fixed[name]:
                continue
            _, _, up, _ = self._pose(data, name)
            self._rotate[name] = bool(up[2] < -1e-6)

    def render(self, data: mujoco.MjData, names: list[str] | None = None) -> dict[str, np.ndarray]:
        out = {}
        for name in names or self._cams:
            self._update(data, name)
            img = self._renderer.render()
            out[name] = np.ascontiguousarray(img[::-1, ::-1]) if self._rotate[name] else img
        return out

    def segmentation(self, data: mujoco.MjData, name: str) -> np.ndarray:
        """(H, W) geom id per pixel (-1 = background), oriented like ``render`` (for tests)."""
        self._renderer.enable_segmentation_rendering()
        try:
            self._update(data, name)
            raw = self._renderer.render()
            seg, objtype = raw[..., 0].copy(), raw[..., 1]
        finally:
            self._renderer.disable_segmentation_rendering()
        seg[objtype != int(mujoco.mjtObj.mjOBJ_GEOM)] = -1
        return np.ascontiguousarray(seg[::-1, ::-1]) if self._rotate[name] else seg

    def _pose(
        self, data: mujoco.MjData, name: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Camera position, forward and up unit vectors (world) and vertical field of view."""
        scene = self._renderer.scene
        mujoco.mjv_updateCamera(self.model, data, self._cams[name], scene)
        glcam = scene.camera[0]
        pos = np.array(glcam.pos, dtype=np.float64)
        fwd = np.array(glcam.forward, dtype=np.float64)
        up = np.array(glcam.up, dtype=np.float64)
        fovy = 2.0 * math.atan2(glcam.frustum_top - glcam.frustum_bottom, 2 * glcam.frustum_near)
        return pos, fwd, up, fovy

    def project(self, data: mujoco.MjData, point: np.ndarray, name: str) -> np.ndarray:
        """Pixel (x, y) of a world point in camera `name`'s image (x right, y down, pixel
        centres at +0.5), in the same orientation as ``render``. NaN when behind the camera."""
        pos, fwd, up, fovy = self._pose(data, name)
        right = np.cross(fwd, up)
        rel = np.asarray(point, dtype=np.float64) - pos
        z = float(rel @ fwd)
        if z <= 1e-9:
            return np.array([np.nan, np.nan])
        f = 0.5 * self.height / math.tan(0.5 * fovy)
        x = 0.5 * self.width + f * float(rel @ right) / z
        y = 0.5 * self.height - f * float(rel @ up) / z
        if self._rotate[name]:
            x, y = self.width - x, self.height - y
        return np.array([x, y])

    def close(self) -> None:
        r = getattr(self, "_renderer", None)
        if r is not None:
            r.close()
            self._renderer = None  # type: ignore[assignment]

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()
