"""The dashboard's PNGs: valid images, one panel per task, robust to odd inputs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ramp.platform.tracking import plots

PNG = b"\x89PNG\r\n\x1a\n"


def _image(data: bytes) -> Image.Image:
    assert data.startswith(PNG)
    img = Image.open(io.BytesIO(data))
    img.load()  # decodes every chunk: a truncated file fails here
    return img


def test_advantage_histograms_are_pngs_with_a_panel_per_task():
    rng = np.random.default_rng(0)
    adv = {
        "pick-place-v3": rng.normal(size=2000),
        "push-v3": np.concatenate([rng.normal(size=300), [np.nan, np.inf]]),
        "reach-v3": np.array([], dtype=np.float32),
    }
    one = _image(plots.advantage_histograms({"pick-place-v3": adv["pick-place-v3"]}, {}))
    three = _image(
        plots.advantage_histograms(
            adv, {"pick-place-v3": 0.2, "push-v3": -0.1}, positive_fraction={"push-v3": 0.4}
        )
    )
    assert three.width > one.width  # three panels side by side
    many = _image(plots.advantage_histograms({f"t{i}": adv["push-v3"] for i in range(9)}, {}))
    assert many.height > three.height  # wraps into rows of four
    assert _image(plots.advantage_histograms({}, {})).width > 0  # "no advantages"


def test_value_curves_are_pngs():
    steps = np.arange(60)
    ep = {"step": steps, "value": np.linspace(0, 1, 60), "return": np.linspace(0, 1, 60) ** 2}
    curves = {
        "pick": [ep, {**ep, "episode_id": "demo-pick-0001"}],
        "push": [{"value": np.ones(5), "return": np.zeros(7)}],  # no steps, ragged lengths
        "reach": [],
    }
    img = _image(plots.value_curves(curves))
    assert img.width > img.height
    assert _image(plots.value_curves({})).width > 0
