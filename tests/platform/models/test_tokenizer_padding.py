"""The shipped tokenizer (offline, reproducible) and padding for mixed-embodiment batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_sample

from ramp.platform.models.padding import collate_padded, pad_sample, resample_points
from ramp.platform.models.tokenizer import ASSETS, build_tokenizer, load_tokenizer, vocab_size


def test_shipped_tokenizer_loads_offline_and_round_trips():
    tok = load_tokenizer("builtin")
    for token in ("<pad>", "<eos>", "<bos>", "<image>", "<sep>", "<act_0>", "<act_255>"):
        assert token in tok.get_vocab()
    text = "Pick up the red block and place it in the box."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.split()) * 2  # a real subword vocabulary, not bytes
    assert vocab_size(tok) % 64 == 0 and vocab_size(tok) >= len(tok)
    assert sum(f.stat().st_size for f in ASSETS.iterdir()) < 300_000


def test_shipped_tokenizer_is_reproducible(tmp_path):
    build_tokenizer(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), name


def test_local_tokenizer_directory(tmp_path):
    load_tokenizer("builtin").save_pretrained(tmp_path / "tok")
    tok = load_tokenizer(str(tmp_path / "tok"))
    assert tok("open the drawer")["input_ids"] == load_tokenizer()("open the drawer")["input_ids"]
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_tokenizer("google/paligemma2-3b-pt-224")


def test_pad_sample_and_mixed_collate():
    rng = np.random.default_rng(0)
    a = make_sample(rng, "arm", ("front",), with_trajectory=True, with_subgoal=True)
    b = make_sample(rng, "bimanual", ("wrist",), with_trajectory=False, with_subgoal=False)
    padded = pad_sample(a, 32, 32, camera_slots=True)
    assert padded["state"].shape == (32,) and padded["state_dim_mask"].sum() == 9
    assert padded["actions"].shape == (50, 32) and padded["action_dim_mask"].sum() == 7
    assert padded["future_state"].shape == (4, 32)
    assert list(padded["images"]) == ["cam0"]
    batch = collate_padded([a, b], 32, 32, camera_slots=True)
    assert batch["state"].shape == (2, 32) and batch["actions"].shape == (2, 50, 32)
    assert batch["images"]["cam0"].shape == (2, 64, 64, 3)
    assert (
        np.isnan(batch["trajectory_2d"][1]).all() and np.isfinite(batch["trajectory_2d"][0]).all()
    )
    assert batch["subgoal"][1] is None
    with pytest.raises(ValueError, match="at most 8"):
        pad_sample(a, 8, 32)


def test_resample_points():
    traj = np.array([0, 0, 10, 20], np.float32)  # two points
    out = resample_points(traj, 3).reshape(3, 2)
    np.testing.assert_allclose(out, [[0, 0], [5, 10], [10, 20]])
    assert resample_points(np.arange(20, dtype=np.float32), 10).shape == (20,)
