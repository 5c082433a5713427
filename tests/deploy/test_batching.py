"""Continuous batching (pure asyncio): batches form from what arrives while the model runs."""

from __future__ import annotations

import asyncio

import pytest

from ramp.deploy.batching import ContinuousBatcher


class Model:
    def __init__(self, seconds: float = 0.05, fail_on: int | None = None):
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list[int]] = []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError("boom")
        return [i * 10 for i in items]


def test_requests_arriving_during_a_batch_form_the_next_one():
    async def main():
        model = Model()
        b = ContinuousBatcher(model, max_batch_size=4, wait_s=0.0)
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.01)  # batch [0] is running
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 7)]
        results = await asyncio.gather(first, *rest)
        return model.batches, results, b.stats()

    batches, results, stats = asyncio.run(main())
    assert results == [i * 10 for i in range(7)]
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]  # max_batch_size caps a batch
    assert stats["batches"] == 3 and stats["mean_batch"] == pytest.approx(7 / 3)


def test_an_idle_model_waits_at_most_wait_s_for_company():
    async def run(wait_s: float) -> list[list[int]]:
        model = Model(seconds=0.0)
        b = ContinuousBatcher(model, max_batch_size=8, wait_s=wait_s)
        a = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0.02)
        await asyncio.gather(a, b.submit(2))
        return model.batches

    assert asyncio.run(run(0.0)) == [[1], [2]]
    assert asyncio.run(run(0.2)) == [[1, 2]]


def test_a_failing_batch_fails_only_its_requests():
    async def main():
        model = Model(seconds=0.02, fail_on=1)
        b = ContinuousBatcher(model, max_batch_size=2)
        first = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="boom"):
            await first
        return await b.submit(5)

    assert asyncio.run(main()) == 50


def test_settings_are_checked():
    with pytest.raises(ValueError):
        ContinuousBatcher(Model(), max_batch_size=0)
    with pytest.raises(ValueError):
        ContinuousBatcher(Model(), wait_s=-1)
