"""`ramp value-report` without Ray: a store whose episodes already have label sidecars of a
world-model version is read back and reported; a store without world models is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ramp.cli import main
from ramp.pipelines.value_report import choose, world_model_versions
from ramp.platform.config import load_config
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.rl.relabel import LabelPass, ValuedEpisodes
from ramp.platform.rl.value_report import heldout_mask

WM = "world-model-r1-0123abcd"
ARM = {
    "cameras": {"front": {"height": 8, "width": 8}},
    "state_names": ["q0", "q1"],
    "action_names": ["a0"],
    "action_low": [-1.0],
    "action_high": [1.0],
}


def sets(root: Path) -> list[str]:
    return ["--set", f"store.root={root}", "--set", f"embodiments.arm={json.dumps(ARM)}"]


def make_store(root: Path, labelled: bool = True) -> list[str]:
    cfg = load_config("quickstart", sets(root)[1::2])
    store = EpisodeStore.from_config(cfg)
    rng = np.random.default_rng(0)
    ids = []
    for k in range(16):
        t = 6 + k % 5
        ids.append(f"ep-{k:02d}")
        store.write(
            Episode(
                episode_id=ids[-1],
                embodiment="arm",
                task="pick" if k % 2 else "place",
                instruction="move",
                images={"front": rng.integers(0, 255, (t, 8, 8, 3), dtype=np.uint8)},
                state=rng.normal(size=(t, 2)),
                action=rng.uniform(-1, 1, size=(t, 1)),
                success=k % 3 != 0,
                source="rollout",
                policy_version="p0",
                round=0,
            )
        )
    if labelled:  # sidecars as the labeller writes them, from made-up values
        job = LabelPass(cfg, store, WM, ids)
        job.read()
        values = {e: rng.uniform(-1, 0, store.lookup(e).num_steps).astype(np.float32) for e in ids}
        job.finish(ValuedEpisodes(values))
    return ids


def test_a_labelled_store_is_read_back_and_reported(tmp_path, capsys):
    ids = make_store(tmp_path / "store")
    assert main(["value-report", "--config", "quickstart", *sets(tmp_path / "store"),
                 "--world-model", WM]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"world model {WM}: 16 episodes" in out and "(0 labelled now, 16 read back)" in out
    assert "tau wm" in out and "tau time" in out and "in-sample tau" in out
    assert "P(I=1)" in out and "collapse check:" in out
    assert main(["value-report", "--config", "quickstart", *sets(tmp_path / "store"),
                 "--world-model", WM, "--json"]) == 0  # fmt: skip
    body = json.loads(capsys.readouterr().out)
    held = int(heldout_mask(sorted(ids), 0.2).sum())
    assert body["value_report"]["overall"]["heldout_episodes"] == held > 0
    assert {t["task"] for t in body["value_report"]["tasks"]} == {"pick", "place"}
    # the split off: no held-out report, said so
    off = [*sets(tmp_path / "store"), "--set", "training.world_model.holdout_fraction=0"]
    assert main(["value-report", "--config", "quickstart", *off, "--world-model", WM]) == 0
    assert "no held-out report" in capsys.readouterr().out


def test_a_store_without_world_models_is_one_clear_error(tmp_path, capsys):
    make_store(tmp_path / "store", labelled=False)
    assert main(["value-report", "--config", "quickstart", *sets(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ramp: no world model in") and "--world-model" in err
    # a named version without a checkpoint, and episodes it never labelled: refused before Ray
    code = main(
        ["value-report", "--config", "quickstart", *sets(tmp_path / "store"), "--world-model", WM]
    )
    assert code == 2 and "no such checkpoint" in capsys.readouterr().err


def test_the_default_version_is_the_newest_checkpoint(tmp_path):
    store = EpisodeStore(str(tmp_path / "s"))
    for v in ("world-model-r0-aaaaaaaa", "world-model-r2-cccccccc", "world-model-r10-bbbbbbbb"):
        store.fs.write_atomic(f"checkpoints/world-model/{v}/config.json", b"{}")
    store.fs.write_atomic("checkpoints/world-model/world-model-r11-half/weights.bin", b"")
    assert world_model_versions(store.fs)[-1] == "world-model-r10-bbbbbbbb"
    assert choose(store.fs, None) == ("world-model-r10-bbbbbbbb", None)
    assert choose(store.fs, "world-model-r0-aaaaaaaa")[0] == "world-model-r0-aaaaaaaa"


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["value-report", "--help"])
    assert "--world-model" in capsys.readouterr().out
