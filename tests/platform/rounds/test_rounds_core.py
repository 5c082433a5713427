"""The round's pure core: manifest round trip and resume order, the store lease (the gate:
test_gate.py)."""

from __future__ import annotations

import json
import time

import pytest

from ramp.platform.episodes.fs import StoreFS
from ramp.platform.rounds import history
from ramp.platform.rounds.lock import RoundLease, RoundLockedError, lock_path
from ramp.platform.rounds.manifest import (
    ManifestError,
    RoundManifest,
    load_manifest,
    manifest_path,
    save_manifest,
    stages_of,
)


@pytest.fixture
def fs(tmp_path) -> StoreFS:
    return StoreFS.from_root(str(tmp_path))


def test_round_zero_has_no_rollouts_and_later_rounds_collect_first():
    assert stages_of(0)[0] == "freeze" and "collect" not in stages_of(0)
    assert stages_of(3)[:2] == ("collect", "freeze")
    assert stages_of(3)[-2:] == ("evaluate", "promote")


def test_manifest_round_trip_and_next_stage(fs):
    m = RoundManifest.new(2, "lab", "abc")
    assert m.next_stage() == "collect"
    m.stages["collect"].state = "done"
    m.stages["freeze"].state = "done"
    m.episode_ids = ["a", "b", "c"]
    m.excluded["b"] = "corrupt"
    save_manifest(fs, m)
    back = load_manifest(fs, 2)
    assert back is not None and back.next_stage() == "world_model"
    assert back.training_ids() == ["a", "c"]
    raw = json.loads(fs.read_text(manifest_path(2)))
    assert raw["format_version"] == 1 and raw["round"] == 2
    assert load_manifest(fs, 5) is None


def test_manifest_from_a_newer_ramp_is_refused(fs):
    m = RoundManifest.new(0, "lab", "abc")
    save_manifest(fs, m)
    raw = json.loads(fs.read_text(manifest_path(0)))
    raw["format_version"] = 99
    fs.write_atomic(manifest_path(0), json.dumps(raw).encode())
    with pytest.raises(ManifestError, match="format_version 99"):
        load_manifest(fs, 0)


def test_training_ids_before_freeze_is_an_error():
    with pytest.raises(ManifestError, match="not frozen"):
        RoundManifest.new(1, "lab", "x").training_ids()


def test_lease_excludes_a_second_coordinator_and_is_released(fs):
    a = RoundLease(fs, 1, ttl_s=30, owner="host-a:1")
    b = RoundLease(fs, 1, ttl_s=30, owner="host-b:2")
    with a:
        with pytest.raises(RoundLockedError, match="host-a:1"):
            b.acquire()
        assert json.loads(fs.read_text(lock_path(1)))["owner"] == "host-a:1"
    assert fs.read_text(lock_path(1)) is None
    with b:  # free again
        pass


def test_a_stale_lease_is_taken_over_and_a_live_one_is_renewed(fs):
    dead = RoundLease(fs, 4, ttl_s=0.2, owner="dead:1")
    dead.acquire()
    dead._stop.set()  # the holder "dies": it stops renewing
    time.sleep(0.5)
    fresh = RoundLease(fs, 4, ttl_s=0.2, owner="new:2")
    with fresh:
        assert fresh.took_over is not None and fresh.took_over["owner"] == "dead:1"
        first = json.loads(fs.read_text(lock_path(4)))["renewed_at"]
        time.sleep(0.3)
        assert json.loads(fs.read_text(lock_path(4)))["renewed_at"] > first  # renewed


def test_history_production_and_start_checkpoints(fs):
    m0 = RoundManifest.new(0, "lab", "x")
    m0.status = "done"
    m0.versions.world_model, m0.versions.policy = "world-model-r0-a", "policy-r0-a"
    m0.versions.production = "policy-r0-a"
    save_manifest(fs, m0)
    m1 = RoundManifest.new(1, "lab", "x")
    m1.versions.world_model, m1.versions.policy = "world-model-r1-b", "policy-r1-b"
    save_manifest(fs, m1)  # running: not in production yet
    assert history.production(fs) == ("policy-r0-a", None)
    assert history.round_to_run(fs, current_round=2) == 1  # the unfinished round resumes
    assert history.start_checkpoint(fs, "policy", 2, "pretrained", None) == "policy-r0-a"
    assert history.start_checkpoint(fs, "policy", 2, "previous", None) == "policy-r1-b"
    assert history.start_checkpoint(fs, "policy", 2, "scratch", "x") is None
    assert history.start_checkpoint(fs, "world_model", 0, "pretrained", "/w") == "/w"


def test_a_killed_coordinator_of_the_same_cluster_is_taken_over_at_once(fs):
    killed = RoundLease(fs, 2, ttl_s=600, owner="killed:1", cluster="c1")
    killed.acquire()
    killed._stop.set()  # SIGKILL: no release, the lease stays fresh for 10 minutes
    other_cluster = RoundLease(fs, 2, ttl_s=600, owner="b:2", cluster="c2")
    with pytest.raises(RoundLockedError):
        other_cluster.acquire(cluster_holder_gone=True)  # another cluster cannot know
    same_cluster = RoundLease(fs, 2, ttl_s=600, owner="c:3", cluster="c1")
    same_cluster.acquire(cluster_holder_gone=True)
    assert same_cluster.took_over["owner"] == "killed:1"
    same_cluster.release()
