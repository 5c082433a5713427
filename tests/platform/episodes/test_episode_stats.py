"""Store statistics per round, source, task and embodiment; the store's current round."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramp.platform.episodes.stats import format_stats, store_stats


def _interventions(num_steps: int, n: int) -> np.ndarray:
    out = np.zeros(num_steps, bool)
    out[:n] = True
    return out


# id, round, source, task, embodiment, success, steps, intervention steps
LAYOUT = [
    ("a", 0, "sim", "pick", "arm", True, 4, 0),
    ("b", 0, "sim", "pick", "arm", False, 6, 3),
    ("c", 1, "robot-1", "place", "arm", True, 5, 5),
    ("d", 1, "robot-1", "pick", "cart", True, 5, 1),
]


@pytest.fixture
def stats_store(store, make_episode):
    for eid, round_, source, task, emb, success, steps, n_int in LAYOUT:
        store.write(
            make_episode(
                eid,
                round=round_,
                source=source,
                task=task,
                embodiment=emb,
                success=success,
                num_steps=steps,
                intervention=_interventions(steps, n_int),
            )
        )
    return store


def test_store_stats_per_group(stats_store):
    stats = store_stats(stats_store.episodes())
    total = stats["total"]
    assert total["episodes"] == 4 and total["steps"] == 20
    assert total["success_rate"] == pytest.approx(3 / 4)
    assert total["intervention_share"] == pytest.approx(9 / 20)
    assert total["bytes"] == sum(e.bytes for e in stats_store.episodes()) > 0

    by = stats["by"]
    assert set(by) == {"round", "source", "task", "embodiment"}
    assert set(by["round"]) == {"0", "1"}
    r0, r1 = by["round"]["0"], by["round"]["1"]
    assert (r0["episodes"], r0["steps"]) == (2, 10)
    assert r0["success_rate"] == pytest.approx(0.5)
    assert r0["intervention_share"] == pytest.approx(3 / 10)
    assert (r1["episodes"], r1["steps"]) == (2, 10)
    assert r1["success_rate"] == pytest.approx(1.0)
    assert r1["intervention_share"] == pytest.approx(6 / 10)

    assert by["source"]["sim"]["episodes"] == 2 and by["source"]["robot-1"]["episodes"] == 2
    pick = by["task"]["pick"]
    assert (pick["episodes"], pick["steps"]) == (3, 15)
    assert pick["success_rate"] == pytest.approx(2 / 3)
    assert pick["intervention_share"] == pytest.approx(4 / 15)
    assert by["task"]["place"]["intervention_share"] == pytest.approx(1.0)
    cart = by["embodiment"]["cart"]
    assert (cart["episodes"], cart["steps"], cart["success_rate"]) == (1, 5, 1.0)
    assert cart["intervention_share"] == pytest.approx(1 / 5)
    assert by["embodiment"]["arm"]["success_rate"] == pytest.approx(2 / 3)

    json.dumps(stats)  # JSON-ready
    text = format_stats(stats, "mem://x")
    assert "4 episodes, 20 steps, success 75.0%, intervention 45.0%" in text
    assert "place" in text and "robot-1" in text


def test_stats_of_a_filtered_view_and_of_nothing(stats_store):
    only = store_stats(stats_store.episodes(task="pick", success=True))
    assert only["total"]["episodes"] == 2 and only["total"]["steps"] == 9
    assert only["total"]["intervention_share"] == pytest.approx(1 / 9)

    empty = store_stats([])
    assert empty["total"] == {
        "episodes": 0,
        "steps": 0,
        "success_rate": 0.0,
        "intervention_share": 0.0,
        "bytes": 0,
    }
    assert all(rows == {} for rows in empty["by"].values())
    assert "0 episodes" in format_stats(empty, "mem://x")


def test_current_round(store, make_store):
    assert store.current_round() == 0
    store.set_current_round(3)
    assert store.current_round() == 3
    assert make_store().current_round() == 3  # persisted under the root
    store.set_current_round(0)
    assert make_store().current_round() == 0
    with pytest.raises(ValueError, match=">= 0"):
        store.set_current_round(-1)
    assert store.current_round() == 0
    assert make_store("other").current_round() == 0
