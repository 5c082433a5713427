"""Intervention cleaning in the training data path (no Ray): the steps ``rl.interventions``
flags around human takeovers and hand-backs start no training sample, and nothing else changes.

A small synthetic store (one tiny embodiment) holds an episode with a takeover and a hand-back in
the middle, one that starts under human control, one without a human and one wholly human; the
expected flags come from ``clean_steps`` run on each episode alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import training_config

from ramp.platform.config import CameraConfig, EmbodimentConfig, StoreConfig
from ramp.platform.episodes import Episode, EpisodeStore
from ramp.platform.rl.interventions import clean_steps
from ramp.platform.training import data, fit

H = 16  # the quickstart's sampling.chunk_size
ARM = EmbodimentConfig(
    cameras={"front": CameraConfig(height=16, width=16)},
    state_names=["q0", "q1", "q2"],
    action_names=["dx", "dy"],
    action_low=[-1.0, -1.0],
    action_high=[1.0, 1.0],
    fps=10.0,
)


def _flags(n: int, *human: tuple[int, int]) -> np.ndarray:
    h = np.zeros(n, bool)
    for lo, hi in human:
        h[lo:hi] = True
    return h


# episode id -> intervention flags: a takeover at 15 and a hand-back at 25; a start under human
# control (its only boundary is the hand-back at 6); no human; two short takeovers close together;
# wholly human (no boundary); one that loses every step
INTERVENTIONS = {
    "ep-middle": _flags(40, (15, 25)),
    "ep-starts-human": _flags(30, (0, 6)),
    "ep-robot": _flags(35),
    "ep-twice": _flags(28, (4, 7), (10, 12)),
    "ep-all-human": _flags(9, (0, 9)),
    "ep-short": _flags(5, (2, 5)),  # the takeover's window covers the whole episode
}


def _episode(eid: str, flags: np.ndarray, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    t = flags.size
    # smooth actions with a jump where the controller changes: rule action_jump finds them
    action = np.cumsum(rng.uniform(-0.05, 0.05, size=(t, 2)), axis=0).astype(np.float32)
    action[flags] += 0.8
    return Episode(
        episode_id=eid,
        embodiment="arm",
        task="pick",
        instruction="pick the block",
        images={"front": rng.integers(0, 255, size=(t, 16, 16, 3), dtype=np.uint8)},
        state=rng.normal(size=(t, 3)).astype(np.float32),
        action=np.clip(action, -1, 1),
        success=bool(seed % 2),
        source="rollout",
        policy_version=["human" if f else "policy-r0-abc" for f in flags],
        intervention=flags,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> EpisodeStore:
    root = tmp_path_factory.mktemp("cleaning") / "store"
    store = EpisodeStore(str(root), {"arm": ARM}, StoreConfig(root=str(root)))
    for seed, (eid, flags) in enumerate(INTERVENTIONS.items()):
        store.write(_episode(eid, flags, seed))
    return store


def _cfg(store: EpisodeStore, other: dict | None = None, **over):
    over = {f"rl.interventions.{k}": v for k, v in over.items()}
    return training_config(store.root, **over, **(other or {}))


def _expected(store: EpisodeStore, icfg) -> set[tuple[str, int]]:
    """(episode, step) flagged by clean_steps, each episode on its own."""
    out = set()
    for eid, flags in INTERVENTIONS.items():
        action = np.asarray(
            store.read_episode(eid, columns=["action"]).column("action").to_pylist()
        )
        keep = clean_steps(flags, np.array([0, flags.size]), icfg, action).keep
        out |= {(eid, int(t)) for t in np.flatnonzero(~keep)}
    return out


def _samples(cfg, store, cleaned, **kw):
    tcfg = cfg.training.world_model.model_copy(update={"shuffle_window": 2})  # 3 windows
    return data.training_samples(
        cfg, store, list(INTERVENTIONS), tcfg, round_=0, exclude_steps=cleaned.dropped, **kw
    )


ALL = {(eid, t) for eid, flags in INTERVENTIONS.items() for t in range(flags.size)}


@pytest.mark.parametrize("rule", ["window", "action_jump"])
def test_start_steps_exclude_exactly_the_steps_clean_steps_flags(store, rule):
    cfg = _cfg(store, rule=rule)
    cleaned = data.cleaned_steps(store, list(INTERVENTIONS), cfg.rl.interventions)
    flagged = _expected(store, cfg.rl.interventions)
    # around the takeover at 15 and the hand-back at 25 (windows: 2 before, 5 from it on)
    middle = {t for eid, t in flagged if eid == "ep-middle"}
    if rule == "window":
        assert middle == set(range(13, 20)) | set(range(23, 30))
    else:  # the only jumps are at the boundaries
        assert middle == {15, 25}
    assert not any(eid in ("ep-robot", "ep-all-human") for eid, _ in flagged)
    if rule == "window":
        assert {t for eid, t in flagged if eid == "ep-short"} == set(range(5))
    got = {(eid, int(t)) for eid, steps in cleaned.dropped.items() for t in steps}
    assert got == flagged
    assert cleaned.metrics() == {"data/steps": len(ALL), "data/cleaned_steps": len(flagged)}

    samples = _samples(cfg, store, cleaned)
    index = samples.index()
    assert len(index) == len(set(index)) == len(samples)
    assert set(index) == ALL - flagged  # world size 1: drop_last drops nothing
    assert samples.excluded == len(flagged)


def test_a_kept_step_still_reads_the_dropped_steps_after_it(store):
    cfg = _cfg(store)
    cleaned = data.cleaned_steps(store, list(INTERVENTIONS), cfg.rl.interventions)
    assert 12 not in cleaned.dropped["ep-middle"] and 13 in cleaned.dropped["ep-middle"]
    action = np.asarray(
        store.read_episode("ep-middle", columns=["action"]).column("action").to_pylist()
    )
    [s] = [
        s
        for s in _samples(cfg, store, cleaned)
        if (s["episode_id"], s["step"]) == ("ep-middle", 12)
    ]
    np.testing.assert_allclose(s["actions"], action[12 : 12 + H])  # 13..20 were dropped as starts


def test_disabled_cleaning_drops_nothing_and_reads_nothing(store, monkeypatch):
    cfg = _cfg(store, enabled=False)
    monkeypatch.setattr(store, "read_episode", lambda *a, **k: pytest.fail("read an episode"))
    cleaned = data.cleaned_steps(store, list(INTERVENTIONS), cfg.rl.interventions)
    monkeypatch.undo()
    assert cleaned.dropped == {} and cleaned.metrics()["data/cleaned_steps"] == 0
    assert cleaned.steps == len(ALL)
    samples = _samples(cfg, store, cleaned)
    assert set(samples.index()) == ALL and samples.excluded == 0
    # and the order is the one of samples made without any exclusion at all
    tcfg = cfg.training.world_model.model_copy(update={"shuffle_window": 2})
    plain = data.training_samples(cfg, store, list(INTERVENTIONS), tcfg, round_=0)
    assert samples.index() == plain.index()


def _stream(samples, start_step, n, batch_size=16):
    it = data.batches(samples, batch_size, max_state_dim=4, max_action_dim=2, start_step=start_step)
    out = []
    for _ in range(n):
        b = next(it)
        out.append(list(zip(b["episode_id"], b["step"].tolist(), strict=True)))
    return out


def test_resume_gives_the_same_batches_and_ranks_stay_disjoint(store):
    cfg = _cfg(store)
    cleaned = data.cleaned_steps(store, list(INTERVENTIONS), cfg.rl.interventions)
    flagged = {(eid, int(t)) for eid, steps in cleaned.dropped.items() for t in steps}
    full = _stream(_samples(cfg, store, cleaned), 0, n=20)  # ~7 batches of 16 per epoch
    assert full[0] != full[8]  # a new shuffle in the next epoch
    for start in (3, 6, 13):  # inside an epoch and straddling the epoch boundaries
        assert _stream(_samples(cfg, store, cleaned), start, n=4) == full[start : start + 4]
    assert not {s for b in full for s in b} & flagged

    samples = _samples(cfg, store, cleaned)
    for k in (10, len(samples) - 3):
        whole = [(s["episode_id"], s["step"]) for s in samples]
        assert [(s["episode_id"], s["step"]) for s in samples.iter_from(k)] == whole[k:]

    for world_size in (2, 3):
        shards = [
            _samples(cfg, store, cleaned, rank=r, world_size=world_size).index()
            for r in range(world_size)
        ]
        sets = [set(s) for s in shards]
        assert len({len(s) for s in shards}) == 1  # drop_last: equal shares (DDP)
        assert sum(len(s) for s in sets) == len(set().union(*sets))  # disjoint
        assert set().union(*sets) <= ALL - flagged
        assert len(ALL - flagged) - len(set().union(*sets)) < world_size


def test_a_fit_reports_what_cleaning_dropped(store):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as a one-CPU Ray worker (see test_training_core)
    try:
        other = {
            "training.world_model.steps": 2,
            "training.world_model.log_every": 1,
            "training.world_model.holdout_fraction": 0.0,  # every episode: counts of all of them
        }
        cfg = _cfg(store, other)
        spec = fit.FitSpec("world-model", 0, tuple(INTERVENTIONS), "cleaning")
        outcome = fit.run(cfg, spec, store=store, publish=False)
    finally:
        torch.set_num_threads(before)
    assert outcome is not None
    assert outcome.metrics["data/steps"] == len(ALL)
    assert outcome.metrics["data/cleaned_steps"] == len(_expected(store, cfg.rl.interventions))
