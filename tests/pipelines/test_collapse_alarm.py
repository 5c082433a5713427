"""Advantage collapse reaches MLflow: a round whose data all succeed the same way.

Identical successful episodes give every step the same Monte-Carlo return at the same step, so a
world model that has learned the data predicts exactly that and the n-step advantages are all ~0:
no step is better than another. The round's label stage must raise the alarm in MLflow (tag and
metric on the round run, where the dashboard shows it). The same stage on the real, mixed
demonstrations (successes and failures) is the control: advantages do not collapse there.
"""

from __future__ import annotations

import shutil

import pytest
from round_helpers import copies_of_one_success, tiny_config

from ramp.platform.episodes import EpisodeStore

pytestmark = pytest.mark.slow

# enough world-model steps to learn one repeated episode's values (tiny preset, 64 px)
FIT = {
    "tracking.enabled": True,
    "training.world_model.steps": 150,
    "training.world_model.checkpoint_every": 150,
    "training.world_model.batch_size": 8,
    "training.world_model.lr": 2e-3,
    # "near zero" must sit above the tiny world model's own value noise: its one-step values scatter
    # by ~0.025 (std of the advantages measured on identical episodes), so |A| < 0.01 never holds
    # even when there is nothing to learn; configs/quickstart.yaml uses the same 0.05
    "rl.collapse.delta": 0.05,
    # the n-step advantages this test is about (the quickstart itself uses Monte-Carlo ones)
    "rl.advantage.mode": "n_step",
    "rl.advantage.n_steps": 10,
}


def _label_round0(root):
    from ramp.actors.coordinator import Coordinator

    cfg = tiny_config(root, **FIT)
    m = Coordinator(cfg).run(round_=0, until="label")
    return cfg, m


def _round_run(cfg, m):
    from mlflow import MlflowClient

    from ramp.platform.tracking.uri import tracking_uri

    return MlflowClient(tracking_uri(cfg.tracking, cfg.store.root)).get_run(m.mlflow_run_id)


def _advantage_reasons(reasons: list[str]) -> list[str]:
    return [r for r in reasons if "collapsing to 0" in r or "advantage std" in r]


def test_identical_successes_raise_the_collapse_alarm_in_mlflow(
    ray_cluster, demo_store_template, tmp_path
):
    root = tmp_path / "same"
    copies_of_one_success(
        EpisodeStore(str(demo_store_template)),
        8,
        into=EpisodeStore(str(root)),
        round_=0,
        source="demos",
    )
    cfg, m = _label_round0(root)
    verdict = m.stages["label"].result["verdict"]
    assert verdict["collapsed"], verdict
    assert _advantage_reasons(verdict["reasons"]), verdict["reasons"]
    run = _round_run(cfg, m)
    assert run.data.tags["ramp.collapse"].startswith("ALARM"), run.data.tags
    assert (
        "collapsing to 0" in run.data.tags["ramp.collapse"]
        or "advantage std" in (run.data.tags["ramp.collapse"])
    )
    assert run.data.metrics["collapse/alarm"] == 1.0
    assert m.next_stage() == "policy"  # `until="label"` stopped the round there


def test_mixed_outcomes_do_not_collapse_the_advantages(ray_cluster, demo_store_template, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(demo_store_template, root)
    cfg, m = _label_round0(root)
    verdict = m.stages["label"].result["verdict"]
    assert not _advantage_reasons(verdict["reasons"]), verdict["reasons"]
    run = _round_run(cfg, m)
    assert "collapsing to 0" not in run.data.tags["ramp.collapse"]
