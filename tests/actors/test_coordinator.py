"""One coordinator per round: a second one on the same cluster is refused, naming the holder."""

from __future__ import annotations

import pytest
import ray
from round_helpers import tiny_config

from ramp.actors.coordinator import Coordinator, _mutex
from ramp.platform.rounds.lock import RoundLockedError
from ramp.platform.rounds.manifest import load_manifest


def test_a_second_coordinator_of_a_held_round_is_refused(ray_cluster, demo_store):
    cfg = tiny_config(demo_store)
    holder = _mutex(str(demo_store), 0, "nightly-job:4242")
    try:
        with pytest.raises(RoundLockedError, match="nightly-job:4242"):
            Coordinator(cfg).run(round_=0)
    finally:
        ray.kill(holder)
    coordinator = Coordinator(cfg)
    assert load_manifest(coordinator.fs, 0) is None  # the refused run touched nothing
    # the holder gone (its driver died), the round is free again: run only its first stage
    m = coordinator.run(round_=0, until="freeze")
    assert m.done("freeze") and not m.done("world_model")
    assert coordinator.store.current_round() == 1  # new uploads now belong to round 1
    assert len(m.training_ids()) == 8
