"""The model registry on a real MLflow SQLite store: versions that point at checkpoint folders,
aliases candidate -> production, and deploy/versions.resolve("production")."""

from __future__ import annotations

import pytest
from tracking_helpers import fake_checkpoint, make_config

from ramp.deploy.versions import VersionError, resolve
from ramp.platform.tracking.registry import Registry, RegistryError
from ramp.platform.tracking.tracker import RoundTracker

P1, P2 = "policy-r1-aaaaaaaa", "policy-r2-bbbbbbbb"
WM1 = "world-model-r1-cccccccc"


def test_register_points_at_the_checkpoint_and_is_idempotent(cfg, store):
    folder = fake_checkpoint(store, "policy", P1)
    tracker = RoundTracker.start(cfg, 1)
    reg = tracker.registry
    info = reg.register("policy", P1, run_id=tracker.run_id)
    assert info.model == "ramp-policy" and info.number == "1" and info.version == P1
    assert info.source == str(folder)  # no weights copied: the store's folder itself
    mv = reg.client.get_model_version("ramp-policy", "1")
    assert mv.run_id == tracker.run_id
    assert mv.tags["ramp.version"] == P1 and mv.tags["ramp.kind"] == "policy"
    assert mv.tags["ramp.checkpoint"] == str(folder)
    assert reg.register("policy", P1) == info  # a resumed round registers again: same version
    assert len(reg.client.search_model_versions("name = 'ramp-policy'")) == 1
    with pytest.raises(RegistryError, match="not a complete checkpoint"):
        reg.register("policy", "policy-r9-deadbeef")
    with pytest.raises(RegistryError, match="unknown checkpoint kind"):
        reg.register("value-model", P1)


def test_aliases_move_candidate_to_production_and_resolve_through_deploy(cfg, store):
    for v in (P1, P2):
        fake_checkpoint(store, "policy", v)
    fake_checkpoint(store, "world-model", WM1)
    reg = Registry.from_config(cfg)
    assert reg.alias("policy", "production") is None  # nothing registered yet

    reg.set_alias("policy", "candidate", P1)
    reg.promote("policy", P1)
    reg.set_alias("world-model", "production", WM1)
    assert reg.aliases("policy") == {"candidate": P1, "production": P1}
    ref = resolve("production", str(store), "policy", tracking=cfg.tracking)
    assert (ref.version, ref.rel) == (P1, f"checkpoints/policy/{P1}")

    reg.set_alias("policy", "candidate", P2)  # round 2's candidate
    assert reg.aliases("policy") == {"candidate": P2, "production": P1}
    assert resolve("candidate", str(store), "policy", tracking=cfg.tracking).version == P2
    assert resolve("production", str(store), "policy", tracking=cfg.tracking).version == P1
    reg.promote("policy", P2)  # the gate passed
    assert resolve("production", str(store), "policy", tracking=cfg.tracking).version == P2
    assert resolve("alias:production", str(store), tracking=cfg.tracking).version == P2
    wm = resolve("production", str(store), "world-model", tracking=cfg.tracking)
    assert wm.version == WM1 and wm.kind == "world-model"
    # the previous behaviour stays for everything that is not an alias
    assert resolve(P1, str(store), "policy", tracking=cfg.tracking).version == P1
    assert resolve("latest", str(store), "policy").version == P2

    with pytest.raises(VersionError, match="no policy version has the alias 'stable'"):
        resolve("alias:stable", str(store), tracking=cfg.tracking)
    with pytest.raises(VersionError, match="needs the config"):
        resolve("production", str(store), "policy")
    off = make_config(store, enabled=False)
    with pytest.raises(VersionError, match=r"tracking\.enabled is false"):
        resolve("production", str(store), "policy", tracking=off.tracking)
    with pytest.raises(RegistryError):
        reg.set_alias("policy", "v3", P1)  # MLflow reserves v<N>
    reg.clear_alias("policy", "candidate")
    assert reg.alias("policy", "candidate") is None


def test_model_names_come_from_the_config(store):
    fake_checkpoint(store, "policy", P1)
    cfg = make_config(store, policy_model="arm-policy", world_model_model="arm-wm")
    reg = Registry.from_config(cfg)
    assert reg.model_name("world-model") == "arm-wm"
    assert reg.set_alias("policy", "candidate", P1).model == "arm-policy"
    assert resolve("candidate", str(store), tracking=cfg.tracking).version == P1
