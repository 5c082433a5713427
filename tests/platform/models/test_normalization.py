"""Normalisation statistics: computed from the store, applied per embodiment, padded, inverted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ramp.platform.config import CameraConfig, EmbodimentConfig
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.models.normalization import (
    MissingNormStatsError,
    Normalizer,
    NormStats,
    compute_norm_stats,
    stats_from_arrays,
)


def _embodiment(s: int, a: int) -> EmbodimentConfig:
    return EmbodimentConfig(
        cameras={"front": CameraConfig(height=8, width=8)},
        state_names=[f"s{i}" for i in range(s)],
        action_names=[f"a{i}" for i in range(a)],
        action_low=[-5.0] * a,
        action_high=[5.0] * a,
    )


@pytest.fixture
def store(tmp_path) -> tuple[EpisodeStore, dict[str, tuple[np.ndarray, np.ndarray]]]:
    store = EpisodeStore(str(tmp_path), {"arm": _embodiment(3, 2), "cart": _embodiment(2, 4)})
    rng = np.random.default_rng(0)
    data: dict[str, tuple[list, list]] = {"arm": ([], []), "cart": ([], [])}
    for i in range(6):
        emb = "arm" if i % 2 else "cart"
        s_dim, a_dim = (3, 2) if emb == "arm" else (2, 4)
        t = 20 + i
        state = rng.normal(i, 1 + i, size=(t, s_dim)).astype(np.float32)
        action = rng.uniform(-3, 3, size=(t, a_dim)).astype(np.float32)
        store.write(
            Episode(
                episode_id=f"ep-{i}",
                embodiment=emb,
                task="t",
                instruction="do it",
                images={"front": np.zeros((t, 8, 8, 3), np.uint8)},
                state=state,
                action=action,
                success=True,
                source="sim",
                policy_version="scripted",
            )
        )
        data[emb][0].append(state)
        data[emb][1].append(action)
    return store, {k: (np.concatenate(s), np.concatenate(a)) for k, (s, a) in data.items()}


def test_compute_from_store_matches_numpy(store):
    st, arrays = store
    stats = compute_norm_stats(st)
    assert sorted(stats.embodiments) == ["arm", "cart"]
    for name, (state, action) in arrays.items():
        got = stats.embodiments[name]
        for arr, s in ((state, got.state), (action, got.action)):
            x = arr.astype(np.float64)
            np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-9)
            np.testing.assert_allclose(s.std, x.std(0), rtol=1e-6)
            np.testing.assert_allclose(s.q01, np.quantile(x, 0.01, axis=0), rtol=1e-9)
            np.testing.assert_allclose(s.q99, np.quantile(x, 0.99, axis=0), rtol=1e-9)
            assert s.count == len(x)
    only = compute_norm_stats(st, embodiments=["arm"])
    assert list(only.embodiments) == ["arm"]
    with pytest.raises(ValueError, match="no episodes of embodiment"):
        compute_norm_stats(st, embodiments=["robot"])
    sub = compute_norm_stats(st, max_rows=10)  # quantiles from a subsample, moments exact
    np.testing.assert_allclose(
        sub.embodiments["arm"].state.mean, stats.embodiments["arm"].state.mean
    )


def test_json_round_trip(store):
    stats = compute_norm_stats(store[0])
    assert NormStats.from_json(stats.to_json()) == stats


@pytest.mark.parametrize("mode", ["quantile", "meanstd"])
def test_normalize_pads_masks_and_inverts(mode):
    rng = np.random.default_rng(1)
    stats = stats_from_arrays(
        {
            "arm": (rng.normal(3, 2, (500, 3)), rng.uniform(-4, 4, (500, 2))),
            "cart": (rng.normal(size=(500, 5)), rng.uniform(0, 1, (500, 4))),
        }
    )
    norm = Normalizer(8, 6, mode)
    norm.set_stats(stats)
    idx = norm.indices(["cart", "arm", "cart"])
    actions = torch.zeros(3, 10, 4)
    actions[[0, 2]] = torch.rand(2, 10, 4)
    actions[1, :, :2] = torch.rand(10, 2) * 8 - 4
    n = norm.normalize("action", actions, idx)
    assert n.shape == (3, 10, 6)
    dims = norm.dims("action", idx)
    assert dims.sum(-1).tolist() == [4, 2, 4]
    assert (n[~dims[:, None].expand_as(n)] == 0).all()
    if mode == "quantile":  # q01..q99 -> about -1..1
        assert n[dims[:, None].expand_as(n)].abs().max() < 1.2
    back = norm.unnormalize("action", n, idx)
    torch.testing.assert_close(back[:, :, :4] * dims[:, None, :4], actions, atol=1e-5, rtol=1e-5)


def test_missing_and_oversized():
    norm = Normalizer(4, 4)
    with pytest.raises(MissingNormStatsError, match="no normalisation statistics at all"):
        norm.indices(["arm"])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="raise max_state_dim"):
        norm.set_stats(
            stats_from_arrays({"big": (rng.normal(size=(10, 9)), rng.normal(size=(10, 2)))})
        )
    norm.set_stats(stats_from_arrays({"arm": (rng.normal(size=(10, 2)), rng.normal(size=(10, 2)))}))
    with pytest.raises(MissingNormStatsError) as err:
        norm.indices(["arm", "cart"])
    message = str(err.value)
    assert "'cart'" in message and "compute_norm_stats(EpisodeStore(ROOT))" in message
    assert "set_norm_stats" in message
