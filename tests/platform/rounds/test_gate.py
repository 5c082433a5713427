"""The promotion gate: a paired exact McNemar test on the same (task, seed) evaluation episodes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ramp.platform.envs.collect import EpisodeOutcome
from ramp.platform.rounds.gate import align_outcomes, decide

TASKS = ("reach-v3", "drawer-close-v3", "button-press-v3")


def outcomes(successes: list[bool], tasks=TASKS, seed0: int = 1_000_000) -> list[dict]:
    """Evaluation outcomes as the manifest stores them: 15 seeds per task, task by task."""
    per = len(successes) // len(tasks)
    return [
        {"task": tasks[i // per], "seed": seed0 + i % per, "success": s, "steps": 10}
        for i, s in enumerate(successes)
    ]


def pair(b: int, c: int, a: int = 0, n: int = 45) -> tuple[list[dict], list[dict]]:
    """n pairs: a both succeed, b only the candidate, c only production, the rest neither."""
    cand = [True] * a + [True] * b + [False] * c
    prod = [True] * a + [False] * b + [True] * c
    cand += [False] * (n - len(cand))
    prod += [False] * (n - len(prod))
    return outcomes(cand), outcomes(prod)


def gate(cand, prod, **kw):
    kw = {"level": 0.1, "margin": 0.0, "collapsed": False, "collapse_veto": True} | kw
    return decide(cand, prod, **kw)


def test_identical_outcomes_keep_production():
    cand, _ = pair(0, 0, a=20)
    d = gate(cand, cand)
    assert not d.promote and d.p_value == 1.0 and d.difference == 0.0
    assert "not better with this evidence" in d.reason
    assert "smallest detectable difference at n=45: 0.09" in d.reason


def test_twenty_discordant_all_for_the_candidate_promote():
    d = gate(*pair(20, 0, a=5))
    assert d.promote, d.reason
    assert d.n == 45 and d.discordant == [20, 0] and d.difference == pytest.approx(20 / 45)
    assert d.p_value == pytest.approx(0.5**20)
    assert d.interval[0] > 0 and d.interval_level == pytest.approx(0.8)
    assert d.reason.startswith("candidate 0.56 vs production 0.11 on 45 paired episodes")
    assert d.reason.endswith("< 0.1: promote")


def test_six_against_five_is_not_evidence():
    d = gate(*pair(6, 5, a=10))
    assert not d.promote and d.p_value > 0.1, d.reason
    assert d.difference == pytest.approx(1 / 45)
    assert d.reason.endswith("(smallest detectable difference at n=45: 0.09)")
    assert "p=0.5 >= 0.1" in d.reason


def test_the_level_decides():
    cand, prod = pair(6, 1)  # p = 0.0625
    assert gate(cand, prod, level=0.1).promote
    assert not gate(cand, prod, level=0.05).promote


def test_margin_is_required_too():
    cand, prod = pair(6, 1)  # difference 5/45 = 0.11, p = 0.0625
    assert gate(cand, prod, margin=0.1).promote
    d = gate(cand, prod, margin=0.2)
    assert not d.promote and "<= margin 0.2" in d.reason


def test_veto_wins():
    d = gate(*pair(20, 0), collapsed=True, collapse_reason="tau 0.1 < 0.3")
    assert not d.promote and d.reason == "advantage collapse veto: tau 0.1 < 0.3"
    assert d.p_value is not None  # the evidence is still recorded
    assert gate(*pair(20, 0), collapsed=True, collapse_veto=False).promote


def test_first_policy_promoted_even_under_the_alarm():
    cand, _ = pair(5, 0)
    d = gate(cand, None)
    assert d.promote and "first policy" in d.reason
    assert d.candidate_success == pytest.approx(5 / 45) and d.production_success is None
    assert d.candidate_interval is not None and d.p_value is None
    assert gate(None, None).promote  # round 0 without evaluation
    alarmed = gate(cand, None, collapsed=True, collapse_reason="tau 0.1 < 0.3")
    assert alarmed.promote  # nothing to fall back on: round 1 collects with production
    assert "collapse alarm is raised: tau 0.1 < 0.3" in alarmed.reason


def test_unevaluated_candidate_keeps_production():
    _, prod = pair(0, 5)
    assert not gate(None, prod).promote
    assert not gate(prod, []).promote


def test_mismatched_seeds_are_refused():
    cand, prod = pair(20, 0)
    prod[0] = dict(prod[0], seed=7)
    with pytest.raises(ValueError, match=r"same \(task, seed\).*reach-v3 s1000000.*reach-v3 s7"):
        gate(cand, prod)
    with pytest.raises(ValueError, match="more than one outcome"):
        align_outcomes(cand + cand[:1], prod)


def test_alignment_is_by_task_and_seed_not_order():
    cand, prod = pair(20, 0)
    d_sorted = gate(cand, prod)
    d_shuffled = gate(cand, list(reversed(prod)))
    assert d_shuffled.to_json() == d_sorted.to_json()
    # EpisodeOutcome objects pair the same as their dict form
    objs = [
        EpisodeOutcome(f"e{i}", o["task"], o["success"], 10, 0, "p", "evaluated", o["seed"])
        for i, o in enumerate(prod)
    ]
    assert gate(cand, objs).to_json() == d_sorted.to_json()


def test_json_keys_and_per_task():
    d = gate(*pair(20, 0)).to_json()
    for key in ("promote", "reason", "candidate_success", "production_success", "margin"):
        assert key in d  # read by quickstart's table, the round summary and the tracker
    assert d["test"] == "mcnemar-exact-one-sided" and d["level"] == 0.1
    for key in (
        "p_value",
        "difference",
        "interval",
        "n",
        "discordant",
        "candidate_interval",
        "production_interval",
        "min_detectable_difference",
    ):
        assert d[key] is not None, key
    assert sum(t["b"] for t in d["per_task"].values()) == 20
    assert d["per_task"]["reach-v3"] == {"n": 15, "candidate": 15, "production": 0, "b": 15, "c": 0}
    json.dumps(d)


def test_level_out_of_range():
    with pytest.raises(ValueError):
        gate(*pair(1, 0), level=0.5)


def test_round_stages_promote_reads_the_manifest_outcomes(tmp_path):
    """RoundStages.promote on a manifest that went through JSON, as a resumed round reads it."""
    from ramp.actors.round_stages import RoundStages
    from ramp.platform.config import RampConfig
    from ramp.platform.episodes.fs import StoreFS
    from ramp.platform.rounds.manifest import RoundManifest

    cfg = RampConfig.model_validate({"round": {"deploy": "never"}})
    said: list[str] = []
    stages = RoundStages(cfg, SimpleNamespace(fs=StoreFS.from_root(str(tmp_path))), said.append)
    m = RoundManifest.new(1, "lab", "x")
    m.versions.policy, m.versions.world_model = "policy-r1-a", "world-model-r1-a"
    m.versions.production_before = "policy-r0-a"
    cand, prod = pair(20, 0)
    m.stages["evaluate"].result = {
        "success": {"candidate": 0.44, "production": 0.0},
        "policies": {
            "candidate": {"label": "candidate", "outcomes": cand},
            "production": {"label": "production", "outcomes": prod},
        },
    }
    m.stages["label"].result = {"verdict": {"collapsed": False}}
    m = RoundManifest.model_validate_json(m.model_dump_json())
    res = stages.promote(m)
    assert res["gate"]["promote"] and m.versions.production == "policy-r1-a"
    assert res["gate"]["n"] == 45 and res["gate"]["level"] == cfg.envs.evaluation.test_level
    assert said == [f"  gate: PROMOTE: {res['gate']['reason']}"]


def test_veto_reasons_follow_veto_on():
    from ramp.platform.rounds.gate import veto_reasons

    verdict = {
        "collapsed": True,
        "reasons": ["all: advantages are collapsing to 0", "all: ranks no better than the step"],
        "advantage_reasons": ["all: advantages are collapsing to 0"],
        "value_reasons": ["all: ranks no better than the step"],
    }
    assert veto_reasons(verdict, ["advantages", "values"]) == verdict["reasons"]
    assert veto_reasons(verdict, ["advantages"]) == ["all: advantages are collapsing to 0"]
    assert veto_reasons(verdict, []) == []
    values_only = dict(verdict, advantage_reasons=[])
    assert veto_reasons(values_only, ["advantages"]) == []  # tracked, not vetoing
    assert veto_reasons({"collapsed": False}, ["advantages"]) == []
    old = {"collapsed": True, "reasons": ["tau 0.1 < 0.3"]}  # a manifest from before the kinds
    assert veto_reasons(old, ["advantages"]) == ["tau 0.1 < 0.3"]
