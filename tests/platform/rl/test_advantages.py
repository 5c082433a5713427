"""n-step TD and Monte-Carlo advantages, and returns: hand-computed cases and a slow reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ramp.platform.rl.advantages import (
    advantages,
    discounted_returns,
    monte_carlo_advantages,
    n_step_advantages,
)
from ramp.platform.rl.layout import offsets_from_lengths
from ramp.platform.rl.settings import AdvantageConfig

# One successful episode of 4 steps (raw rewards), values that are off by a little.
R4 = [-1.0, -1.0, -1.0, 0.0]
V4 = [-2.0, -2.0, -2.0, -1.0]


def adv(rewards, values, lengths, n, gamma=1.0):
    return n_step_advantages(
        np.array(rewards, np.float32), np.array(values, np.float32), offsets_from_lengths(lengths),
        n, gamma,
    )  # fmt: skip


def test_n_step_gamma_1_by_hand():
    # A_0 = r0 + r1 + v2 - v0 = -2 - 2 + 2; A_1 = -2 + v3 - v1 = -2 - 1 + 2;
    # A_2: t + n = T, no bootstrap: r2 + r3 - v2 = -1 + 2; A_3 = r3 - v3 = 1
    np.testing.assert_allclose(adv(R4, V4, [4], n=2), [-2.0, -1.0, 1.0, 1.0])


def test_n_step_gamma_half_by_hand():
    # A_0 = -1 + .5(-1) + .25 v2 - v0 = -1.5 - .5 + 2 = 0
    # A_1 = -1 + .5(-1) + .25 v3 - v1 = -1.5 - .25 + 2 = .25
    # A_2 = -1 + .5 * 0 - v2 = 1 ; A_3 = 0 - v3 = 1
    np.testing.assert_allclose(adv(R4, V4, [4], n=2, gamma=0.5), [0.0, 0.25, 1.0, 1.0])


def test_episode_shorter_than_n():
    # failure with C_fail = 5: rewards [-1, -5]; n = 5 > T = 2 so no bootstrap anywhere
    np.testing.assert_allclose(adv([-1, -5], [-4, -3], [2], n=5), [-2.0, -2.0])
    np.testing.assert_allclose(adv([-1, -5], [-4, -3], [2], n=5, gamma=0.5), [0.5, -2.0])


def test_one_step_episodes():
    # success: r = 0, v = -.5 -> .5 ; failure with C_fail 3: r = -3, v = -1 -> -2
    np.testing.assert_allclose(adv([0.0, -3.0], [-0.5, -1.0], [1, 1], n=50), [0.5, -2.0])


def test_episodes_do_not_leak_into_each_other():
    # the 4-step episode, then a 2-step and a 1-step one in the same arrays
    got = adv([*R4, -1, -5, 0], [*V4, -4, -3, -0.5], [4, 2, 1], n=2)
    np.testing.assert_allclose(got, [-2.0, -1.0, 1.0, 1.0, -2.0, -2.0, 0.5])


def test_n_equal_1_is_one_step_td():
    # A_t = r_t + v_{t+1} - v_t inside the episode, r_t - v_t at its last step
    np.testing.assert_allclose(adv(R4, V4, [4], n=1), [-1.0, -1.0, 0.0, 1.0])


def test_monte_carlo_and_returns_by_hand():
    off = offsets_from_lengths([4])
    r, v = np.array(R4, np.float32), np.array(V4, np.float32)
    np.testing.assert_allclose(discounted_returns(r, off, 1.0), [-3, -2, -1, 0])
    # G3 = 0, G2 = -1, G1 = -1 + .5 G2 = -1.5, G0 = -1 + .5 G1 = -1.75
    np.testing.assert_allclose(discounted_returns(r, off, 0.5), [-1.75, -1.5, -1.0, 0.0])
    np.testing.assert_allclose(monte_carlo_advantages(r, v, off, 0.5), [0.25, 0.5, 1.0, 1.0])
    cfg = AdvantageConfig(mode="monte_carlo", gamma=1.0)
    np.testing.assert_allclose(advantages(r, v, off, cfg), [-1.0, 0.0, 1.0, 1.0])


def test_config_picks_n_and_gamma():
    off = offsets_from_lengths([4])
    r, v = np.array(R4, np.float32), np.array(V4, np.float32)
    got = advantages(r, v, off, AdvantageConfig(n_steps=2, gamma=0.5))
    np.testing.assert_allclose(got, [0.0, 0.25, 1.0, 1.0])


def test_bad_inputs_are_refused():
    off = offsets_from_lengths([2])
    with pytest.raises(ValueError, match="values at step index 1 is nan"):
        n_step_advantages(np.zeros(2), np.array([0.0, np.nan]), off, 1)
    with pytest.raises(ValueError, match="shape"):
        n_step_advantages(np.zeros(3), np.zeros(3), off, 1)
    with pytest.raises(ValueError, match="gamma"):
        n_step_advantages(np.zeros(2), np.zeros(2), off, 1, gamma=1.5)
    with pytest.raises(ValueError, match="n_steps"):
        n_step_advantages(np.zeros(2), np.zeros(2), off, 0)


def test_out_buffer_is_written_in_place():
    off = offsets_from_lengths([4])
    out = np.full(4, 7.0, np.float32)
    got = n_step_advantages(np.array(R4), np.array(V4), off, 2, out=out)
    assert got is out
    np.testing.assert_allclose(out, [-2.0, -1.0, 1.0, 1.0])


def slow_advantages(r, v, lengths, n, gamma):
    """The formula read literally, one step at a time."""
    out, s = [], 0
    for length in lengths:
        for t in range(length):
            acc = sum(gamma**k * r[s + t + k] for k in range(min(n, length - t)))
            if t + n < length:
                acc += gamma**n * v[s + t + n]
            out.append(acc - v[s + t])
        s += length
    return np.array(out)


episode_sets = st.lists(st.integers(1, 40), min_size=1, max_size=12).flatmap(
    lambda lengths: st.tuples(
        st.just(lengths),
        st.lists(st.floats(-1, 0, width=32), min_size=sum(lengths), max_size=sum(lengths)),
        st.lists(st.floats(-1, 0, width=32), min_size=sum(lengths), max_size=sum(lengths)),
    )
)


@settings(max_examples=150, deadline=None)
@given(
    data=episode_sets,
    n=st.integers(1, 60),
    gamma=st.one_of(st.just(1.0), st.floats(0.05, 1.0)),
)
def test_vectorised_equals_slow_loop(data, n, gamma):
    lengths, r, v = data
    r32, v32 = np.array(r, np.float32), np.array(v, np.float32)
    got = n_step_advantages(r32, v32, offsets_from_lengths(lengths), n, gamma)
    want = slow_advantages(r32.astype(np.float64), v32.astype(np.float64), lengths, n, gamma)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(data=episode_sets, gamma=st.floats(0.05, 1.0))
def test_returns_equal_monte_carlo_advantage_plus_value(data, gamma):
    lengths, r, v = data
    r32, v32 = np.array(r, np.float32), np.array(v, np.float32)
    off = offsets_from_lengths(lengths)
    want = slow_advantages(r32.astype(np.float64), np.zeros(len(r)), lengths, 10**6, gamma)
    np.testing.assert_allclose(discounted_returns(r32, off, gamma), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        monte_carlo_advantages(r32, v32, off, gamma), want - v32, rtol=1e-5, atol=1e-5
    )
