"""Action chunks -> the per-observation policy that ``run_episode`` and rollout workers step.

A RAMP policy predicts a chunk of H actions from one observation. A robot executes the first
``replan_steps`` of them (``envs.rollout.replan_steps``), then asks again from the observation it
has reached. ``ChunkCursor`` is that bookkeeping for one env; ``ChunkedPolicy`` wraps it with a
chunk source into the ``Policy`` callable ``run_episode`` takes; the lock-step runner
(envs/lockstep.py) keeps one cursor per env and asks the source once for all envs that need a
chunk at the same control step.

Two chunk sources, one interface (``predict(items, keys) -> [Chunk]``):
- ``PolicyChunks``: a policy copy in this process (efficient mode; standard mode with a world
  model copy that predicts z first). The observations become one batch and one ``infer`` call
  through the same code the server runs (models/acting.py), so a local rollout acts exactly as
  the served version would. The flow-matching noise is seeded from the (episode seed, step) keys
  of the batch: a rerun of the same episodes with the same batches gives the same actions.
- ``RemoteChunks``: the serving endpoint through a robot client's ``act`` (action_source
  "serve"); the observations of one call go out concurrently so that the server's continuous
  batcher fuses them. Each chunk carries the version the server says computed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import xxhash

from ramp.platform.envs.core import Observation
from ramp.platform.models.acting import (
    camera_signature,
    observation_item,
    predict_chunks,
    stack_observations,
)

Key = tuple[int, int]  # (episode seed, control step): what the noise of one sample depends on


@dataclass
class Chunk:
    """One predicted action chunk and the policy version that produced it."""

    actions: np.ndarray  # (H, action_dim) float32, the embodiment's units
    policy_version: str


@dataclass(frozen=True)
class ModelRef:
    """Where a checkpoint is: ``load_checkpoint(root, rel)``; ``version`` is recorded."""

    root: str
    rel: str
    version: str


class ChunkSource(Protocol):
    def predict(self, items: list[dict[str, Any]], keys: Sequence[Key]) -> list[Chunk]:
        """One chunk per observation item (``models.acting.observation_item``)."""


def to_item(embodiment: str, obs: Observation) -> dict[str, Any]:
    """An env observation as the server's routes see a robot's."""
    return observation_item(embodiment, obs.images, obs.state, obs.instruction)


def noise_seed(keys: Sequence[Key], base: int = 0) -> int:
    """A stable 63-bit seed from a batch's keys (same batch, same noise; any process)."""
    h = xxhash.xxh3_64()
    h.update(str(int(base)).encode())
    for seed, step in keys:
        h.update(f"|{int(seed)},{int(step)}".encode())
    return h.intdigest() & (2**63 - 1)


class PolicyChunks:
    """Chunks from a policy copy held in this process (see the module docstring)."""

    def __init__(
        self,
        policy: Any,
        *,
        version: str | None = None,
        mode: str = "efficient",
        world_model: Any = None,
        cfg_beta: float = 1.0,
        num_steps: int | None = None,
        seed: int = 0,
    ):
        if mode == "standard" and world_model is None:
            raise ValueError("inference_mode 'standard' needs a world model version")
        self.policy = policy
        self.version = version or getattr(policy, "checkpoint_version", None) or "unknown"
        self.mode, self.world_model = mode, world_model
        self.cfg_beta, self.num_steps, self.seed = cfg_beta, num_steps, seed
        self.calls = 0  # inference calls (one per batch)

    @classmethod
    def load(
        cls,
        policy: ModelRef,
        *,
        world_model: ModelRef | None = None,
        mode: str = "efficient",
        device: str = "cpu",
        **kwargs: Any,
    ) -> PolicyChunks:
        """Load the policy (and, in standard mode, the world model) checkpoints."""
        from ramp.platform.models.checkpoints import load_checkpoint

        model = load_checkpoint(policy.root, policy.rel, kind="policy", device=device).eval()
        wm = None
        if mode == "standard":
            if world_model is None:
                raise ValueError(
                    "envs.rollout.inference_mode is 'standard' but no world model version was "
                    "given; pass world_model=... or use 'efficient'"
                )
            wm = load_checkpoint(world_model.root, world_model.rel, kind="world-model")
            wm = wm.to(device).eval()
        return cls(model, version=policy.version, mode=mode, world_model=wm, **kwargs)

    def predict(self, items: list[dict[str, Any]], keys: Sequence[Key]) -> list[Chunk]:
        import torch

        out: list[Chunk | None] = [None] * len(items)
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(camera_signature(item), []).append(i)
        for idxs in groups.values():
            gen = torch.Generator().manual_seed(noise_seed([keys[i] for i in idxs], self.seed))
            batch = stack_observations([items[i] for i in idxs])
            batch["step"] = np.array([keys[i][1] for i in idxs], np.int64)  # time_input models
            chunks = predict_chunks(
                self.policy,
                batch,
                mode=self.mode,
                world_model=self.world_model,
                cfg_beta=self.cfg_beta,
                num_steps=self.num_steps,
                generator=gen,
            )
            self.calls += 1
            for i, c in zip(idxs, chunks, strict=True):
                out[i] = Chunk(np.asarray(c, dtype=np.float32), self.version)
        return [c for c in out if c is not None]


class RemoteChunks:
    """Chunks from the serving endpoint: ``act(item)`` returns a reply with ``actions`` and
    ``policy_version`` (``ramp.deploy.client.RampClient.act``)."""

    def __init__(self, act: Callable[[dict[str, Any]], Any], max_concurrency: int = 16):
        self.act = act
        self._pool = ThreadPoolExecutor(max(1, max_concurrency), thread_name_prefix="ramp-act")
        self.calls = 0

    def predict(self, items: list[dict[str, Any]], keys: Sequence[Key]) -> list[Chunk]:
        self.calls += 1
        one = len(items) == 1  # no thread hop for a single env
        replies = [self.act(items[0])] if one else list(self._pool.map(self.act, items))
        return [Chunk(np.asarray(r.actions, dtype=np.float32), r.policy_version) for r in replies]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ChunkCursor:
    """Which action of the current chunk comes next, and when to re-plan."""

    def __init__(self, replan_steps: int):
        if replan_steps < 1:
            raise ValueError("replan_steps must be >= 1")
        self.replan_steps = replan_steps
        self.reset()

    def reset(self) -> None:
        self.chunk: Chunk | None = None
        self.index = 0
        self.left = 0  # actions of this chunk still to execute before the next re-plan

    @property
    def needs_chunk(self) -> bool:
        return self.left <= 0

    def set(self, chunk: Chunk) -> None:
        if len(chunk.actions) == 0:
            raise ValueError("the policy returned an empty action chunk")
        self.chunk, self.index = chunk, 0
        self.left = min(self.replan_steps, len(chunk.actions))

    def next_action(self) -> tuple[np.ndarray, str]:
        """The next action and the version that produced it."""
        if self.chunk is None or self.left <= 0:
            raise RuntimeError("no chunk to act from: call set() when needs_chunk")
        action = self.chunk.actions[self.index]
        self.index += 1
        self.left -= 1
        return action, self.chunk.policy_version


class ChunkedPolicy:
    """The ``Policy`` callable of ``run_episode`` for one env: a chunk every ``replan_steps``.

    Call ``reset(seed)`` before each episode (the seed keys the sampling noise, as in the
    lock-step runner, so both give the same episode for one env).
    """

    def __init__(self, source: ChunkSource, embodiment: str, replan_steps: int):
        self.source, self.embodiment = source, embodiment
        self.cursor = ChunkCursor(replan_steps)
        self.seed = 0
        self.step = 0

    def reset(self, seed: int = 0) -> None:
        self.cursor.reset()
        self.seed, self.step = int(seed), 0

    @property
    def policy_version(self) -> str | None:
        chunk = self.cursor.chunk
        return chunk.policy_version if chunk is not None else None

    def __call__(self, obs: Observation) -> np.ndarray:
        if self.cursor.needs_chunk:
            item = to_item(self.embodiment, obs)
            self.cursor.set(self.source.predict([item], [(self.seed, self.step)])[0])
        self.step += 1
        return self.cursor.next_action()[0]
