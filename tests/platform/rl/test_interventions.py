"""Takeover / hand-back boundaries and the removal of transitional steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stand_in import episode_table

from ramp.platform.rl.interventions import (
    HANDBACK,
    TAKEOVER,
    action_jumps,
    clean_steps,
    clean_table,
    find_boundaries,
)
from ramp.platform.rl.layout import offsets_from_lengths
from ramp.platform.rl.settings import InterventionConfig


def human_mask(n: int, steps: list[int]) -> np.ndarray:
    h = np.zeros(n, bool)
    h[steps] = True
    return h


# episode 0 (steps 0-9): human at 3-5 -> takeover at 3, hand-back at 6
# episode 1 (steps 10-15): human from its start at 10-11 -> no takeover, hand-back at 12
H = human_mask(16, [3, 4, 5, 10, 11])
OFF = offsets_from_lengths([10, 6])
WINDOWS = dict(takeover_before=1, takeover_after=2, handback_before=1, handback_after=1)


def test_boundaries_by_hand():
    index, kind = find_boundaries(H, OFF)
    assert index.tolist() == [3, 6, 12]
    assert kind.tolist() == [TAKEOVER, HANDBACK, HANDBACK]


def test_window_rule_by_hand():
    res = clean_steps(H, OFF, InterventionConfig(**WINDOWS))
    # takeover 3: [2, 5) ; hand-back 6: [5, 7) ; hand-back 12: [11, 13)
    assert np.flatnonzero(~res.keep).tolist() == [2, 3, 4, 5, 6, 11, 12]
    assert res.reason[[2, 3, 4]].tolist() == [TAKEOVER] * 3
    assert res.reason[[5, 6, 11, 12]].tolist() == [HANDBACK] * 4
    r = res.report
    assert (r.takeovers, r.handbacks, r.removed, r.episodes_with_interventions) == (1, 2, 7, 2)
    assert (r.removed_takeover, r.removed_handback) == (3, 4)
    assert r.metrics()["interventions/removed_frac"] == pytest.approx(7 / 16)
    assert "1 takeovers and 2 hand-backs in 2 episodes" in r.summary()


def test_windows_are_clipped_to_their_episode():
    cfg = InterventionConfig(**{**WINDOWS, "handback_before": 5, "handback_after": 10})
    res = clean_steps(H, OFF, cfg)
    # hand-back 6: [1, 10) stays in episode 0; hand-back 12: [10, 16) clipped at episode 1's start
    assert np.flatnonzero(res.reason & HANDBACK).tolist() == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        *range(10, 16),
    ]


def test_disabled_keeps_everything():
    res = clean_steps(H, OFF, InterventionConfig(enabled=False))
    assert res.keep.all() and res.report.rule == "disabled" and res.report.takeovers == 1


def test_action_jump_rule_by_hand():
    # takeover at 3; jumps: step 3 (0 -> 5) and step 5 (5.1 -> 9); window after = 4 (steps 3-6)
    actions = np.array([0, 0, 0, 5, 5.1, 9, 9, 9], np.float32)[:, None]
    h = human_mask(8, [3, 4, 5, 6, 7])
    off = offsets_from_lengths([8])
    np.testing.assert_allclose(action_jumps(actions, off), [0, 0, 0, 5, 0.1, 3.9, 0, 0], rtol=1e-5)
    cfg = InterventionConfig(
        rule="action_jump", action_jump=1.0, takeover_before=2, takeover_after=4
    )
    res = clean_steps(h, off, cfg, actions)
    assert np.flatnonzero(~res.keep).tolist() == [3, 4, 5]  # from the boundary to the last jump
    # a jump before the boundary: steps from it up to the boundary go
    actions = np.array([0, 0, 3, 3, 3, 3], np.float32)[:, None]
    h = human_mask(6, [4, 5])
    res = clean_steps(
        h, offsets_from_lengths([6]), cfg.model_copy(update={"takeover_before": 3}), actions
    )
    assert np.flatnonzero(~res.keep).tolist() == [2, 3]
    # no jump in the window: nothing goes
    res = clean_steps(h, offsets_from_lengths([6]), cfg, np.zeros((6, 1), np.float32))
    assert res.keep.all()


def test_l2_norm_of_jumps():
    actions = np.array([[0, 0], [3, 4]], np.float32)
    np.testing.assert_allclose(action_jumps(actions, offsets_from_lengths([2]), "l2"), [0, 5])
    np.testing.assert_allclose(action_jumps(actions, offsets_from_lengths([2]), "linf"), [0, 4])
    np.testing.assert_allclose(action_jumps(actions, offsets_from_lengths([1, 1])), [0, 0])


def test_action_jump_needs_actions():
    with pytest.raises(ValueError, match="needs the action column"):
        clean_steps(H, OFF, InterventionConfig(rule="action_jump"))


def test_clean_table_leaves_the_raw_table_alone():
    table = episode_table([10, 6], intervention=H)
    before = table.to_pydict()
    cleaned, res = clean_table(table, InterventionConfig(**WINDOWS))
    assert table.to_pydict() == before
    assert cleaned.num_rows == 16 - 7
    assert cleaned.column("step").to_pylist()[:3] == [0, 1, 7]  # original steps kept, with a gap
    cleaned, res = clean_table(table, InterventionConfig(rule="action_jump", **WINDOWS))
    assert cleaned.num_rows == 16 and res.report.removed == 0  # no action jumps, nothing goes


def windows_of(h, lengths, cfg):
    """Slow reference: for every step, the kinds of the windows it lies in."""
    inside = np.zeros(h.size, np.uint8)
    s = 0
    for length in lengths:
        for t in range(1, length):
            if h[s + t] != h[s + t - 1]:
                kind = TAKEOVER if h[s + t] else HANDBACK
                before = cfg.takeover_before if kind == TAKEOVER else cfg.handback_before
                after = cfg.takeover_after if kind == TAKEOVER else cfg.handback_after
                for u in range(max(0, t - before), min(length, t + after)):
                    inside[s + u] |= kind
        s += length
    return inside


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    seed=st.integers(0, 2**31 - 1),
    windows=st.tuples(*[st.integers(0, 6)] * 4),
    rule=st.sampled_from(["window", "action_jump"]),
)
def test_cleaning_never_removes_a_step_outside_the_window(lengths, seed, windows, rule):
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    h = rng.random(n) < 0.3
    actions = rng.normal(size=(n, 2)).astype(np.float32)
    cfg = InterventionConfig(rule=rule, action_jump=1.0, **dict(zip(WINDOWS, windows, strict=True)))
    res = clean_steps(h, offsets_from_lengths(lengths), cfg, actions)
    inside = windows_of(h, lengths, cfg)
    assert not np.any(~res.keep & (inside == 0))  # nothing outside a window goes
    assert np.all((res.reason & ~inside) == 0)  # and its reason names a window it lies in
    if rule == "window":
        np.testing.assert_array_equal(res.reason, inside)  # the window rule drops all of them
