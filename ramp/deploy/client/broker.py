"""``ChunkBroker``: hand out one action per control step; infer the next chunk meanwhile.

At 30-50 Hz a robot cannot wait for inference every step. The broker executes the current chunk
and, when ``trigger`` actions of it remain, asks for the next chunk in a background thread with the
latest observation. When that chunk arrives it takes over, skipping the actions whose time has
passed (the chunk starts at the observation it was computed from: ``align=True``). If the current
chunk runs out first, ``on_starve="wait"`` blocks until the next one arrives and ``"hold"`` repeats
the last action without blocking.

    broker = ChunkBroker(client.act, trigger=10)
    while running:
        robot.apply(broker.act(robot.observe()))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .rest import ActionChunk

log = logging.getLogger(__name__)


class ChunkBroker:
    def __init__(
        self,
        source: Callable[[dict[str, Any]], ActionChunk],
        *,
        trigger: int | None = None,
        on_starve: str = "wait",
        align: bool = True,
    ):
        if on_starve not in ("wait", "hold"):
            raise ValueError("on_starve must be 'wait' or 'hold'")
        if trigger is not None and trigger < 0:
            raise ValueError("trigger must be >= 0 (remaining actions that start the next request)")
        self.source = source
        self.trigger = trigger
        self.on_starve = on_starve
        self.align = align
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ramp-broker")
        self.reset()

    def reset(self) -> None:
        """Forget the chunks (a new episode starts from a fresh observation)."""
        self.chunk: ActionChunk | None = None
        self.index = 0
        self.steps = 0  # control steps taken
        self._pending: Future | None = None
        self._pending_step = 0
        self._last: np.ndarray | None = None
        self.requests = 0
        self.starved_steps = 0

    @property
    def policy_version(self) -> str | None:
        """The version that produced the action last returned (record it with the step)."""
        return self.chunk.policy_version if self.chunk else None

    def _remaining(self) -> int:
        return 0 if self.chunk is None else len(self.chunk.actions) - self.index

    def _request(self, obs: dict[str, Any], step: int) -> None:
        """Ask for a chunk computed from ``obs``, the observation of control step ``step``."""
        self.requests += 1
        self._pending_step = step
        self._pending = self._pool.submit(self.source, obs)

    def _take_pending(self, block: bool) -> bool:
        if self._pending is None or (not block and not self._pending.done()):
            return False
        future, self._pending = self._pending, None
        chunk = future.result()  # re-raises the request's error
        # action 0 is for the step whose observation produced the chunk; skip the steps since
        skip = self.steps - self._pending_step if self.align else 0
        self.chunk, self.index = chunk, min(skip, len(chunk.actions) - 1)
        return True

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The action for this control step (shape (action_dim,))."""
        step = self.steps
        if self.chunk is None and self._pending is None:
            self._request(obs, step)
            self._take_pending(block=True)
        else:
            try:
                self._take_pending(block=False)
            except Exception:
                if self._remaining() <= 0:
                    raise
                log.warning("next chunk failed; executing the current one", exc_info=True)
        if self._remaining() <= 0:
            if self._pending is None:
                self._request(obs, step)
            if self.on_starve == "wait" or self._last is None:
                self._take_pending(block=True)
            else:
                self.starved_steps += 1
                self.steps += 1
                return self._last
        assert self.chunk is not None
        trigger = len(self.chunk.actions) // 2 if self.trigger is None else self.trigger
        action = self.chunk.actions[self.index]
        self.index += 1
        self.steps += 1
        if self._pending is None and self._remaining() <= trigger:
            self._request(obs, step)
        self._last = action
        return action

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
