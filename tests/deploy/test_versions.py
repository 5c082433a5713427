"""Version resolution from the store's checkpoints/ and the deploy history (no Ray, no models)."""

from __future__ import annotations

import json
import os
import time

import pytest

from ramp.deploy.versions import (
    HISTORY_FILE,
    CheckpointRef,
    DeployHistory,
    VersionError,
    list_versions,
    resolve,
)


def fake_checkpoint(root, kind: str, version: str, mtime: float | None = None):
    folder = root / "checkpoints" / kind / version
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"format_version": 1, "kind": kind, "version": version, "content_hash": "ab" * 8}
        )
    )
    if mtime is not None:
        os.utime(folder / "config.json", (mtime, mtime))
    return folder


def test_versions_resolve_from_the_store(tmp_path):
    now = time.time()
    fake_checkpoint(tmp_path, "policy", "policy-r2-aaaaaaaa", now - 10)
    fake_checkpoint(tmp_path, "policy", "policy-r10-bbbbbbbb", now - 100)
    fake_checkpoint(tmp_path, "policy", "policy-r10-cccccccc", now - 50)
    (tmp_path / "checkpoints" / "policy" / "incomplete").mkdir()
    fake_checkpoint(tmp_path, "world-model", "world-model-r1-dddddddd")
    root = str(tmp_path)
    assert list_versions(root) == [
        "policy-r10-bbbbbbbb",
        "policy-r10-cccccccc",
        "policy-r2-aaaaaaaa",
    ]
    ref = resolve("policy-r2-aaaaaaaa", root)
    assert ref == CheckpointRef(
        root, "checkpoints/policy/policy-r2-aaaaaaaa", ref.version, "policy"
    )
    assert resolve("latest", root).version == "policy-r10-cccccccc"  # highest round, newest
    assert resolve("latest", root, "world-model").version == "world-model-r1-dddddddd"
    with pytest.raises(VersionError, match="did you mean 'policy-r2-aaaaaaaa'"):
        resolve("policy-r2-aaaaaaab", root)
    with pytest.raises(VersionError, match=r"no world-model checkpoints|unknown"):
        resolve("latest", str(tmp_path / "empty"), "world-model")
    with pytest.raises(VersionError, match="store root"):
        resolve("policy-r2-aaaaaaaa", None)


def test_a_checkpoint_folder_path_resolves_too(tmp_path):
    folder = fake_checkpoint(tmp_path, "policy", "policy-r1-eeeeeeee")
    ref = resolve(str(folder), None)
    assert ref.version == "policy-r1-eeeeeeee" and ref.rel == "" and ref.path == str(folder)
    with pytest.raises(VersionError, match=r"not 'world-model'|holds a 'policy'"):
        resolve(str(folder), None, "world-model")
    with pytest.raises(VersionError, match="does not exist"):
        resolve(str(tmp_path / "nope"), None)
    with pytest.raises(VersionError, match=r"no config\.json"):
        resolve(str(tmp_path), None)


def _ref(v: str) -> CheckpointRef:
    return CheckpointRef("/r", f"checkpoints/policy/{v}", v, "policy")


def test_history_is_a_stack_that_rollback_pops(tmp_path):
    root = str(tmp_path)
    h = DeployHistory.load(root)
    with pytest.raises(VersionError, match="nothing to roll back to"):
        h.previous()
    h.record("serve", _ref("v1"))
    h.record("serve", _ref("v1"))  # a restart of the same version is not a new entry
    h.record("deploy", _ref("v2"))
    h.record("deploy", _ref("v3"))
    h.save()
    h = DeployHistory.load(root)
    assert [e["version"] for e in h.live] == ["v1", "v2", "v3"]
    assert h.previous()["version"] == "v2"
    h.record("rollback", _ref("v2"))
    assert [e["version"] for e in h.live] == ["v1", "v2"]
    assert h.previous()["version"] == "v1"
    assert [e["action"] for e in h.events] == ["serve", "serve", "deploy", "deploy", "rollback"]
    assert h.events[-1]["previous"] == "v3"
    data = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert data["format_version"] == 1
    data["format_version"] = 99
    (tmp_path / HISTORY_FILE).write_text(json.dumps(data))
    with pytest.raises(VersionError, match="upgrade ramp"):
        DeployHistory.load(root)
