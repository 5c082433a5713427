"""The Ray Serve application ``ramp``: one deployment serves the routes and holds the policy.

    HTTP proxy -> RampPolicy (FastAPI: auth, rate limit, decode, validate on the event loop;
                              continuous batching; inference in a worker thread, off the loop)
                     | handle, mode "standard" only
                     v
                  RampWorldModel (future-state tokens and value for a batch)

Why the policy lives in the deployment that terminates HTTP/WebSocket: every extra Serve hop
costs ~2 ms here (measured: WS round trip 2.1 ms to one deployment, 4.0-4.5 ms through a second
one; with a 60 ms model 3.3 ms vs 7.2 ms of overhead), and the issue's budget is 5 ms.

Versions switch inside the running replicas, two-phase, following a small detached actor
(``DeployState``, control.py): *prepare* - every replica loads and warms the new checkpoint in a
loader thread while it keeps serving; *commit* - each swaps its live model between two batches and
acknowledges. A request is bound at admission to the model it was validated against, so requests
queued before a swap finish on the old model and every answer names the version that computed
it. WebSocket sessions survive a switch; a version that fails to load on any replica is aborted
and the live one never stops serving.
"""

import asyncio
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from fastapi import Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from ray import serve

from ramp import __version__
from ramp.deploy import protocol as P
from ramp.deploy import schemas
from ramp.deploy import web as W
from ramp.deploy.auth import AUTH_HINT, Authenticator, RateLimiter
from ramp.deploy.batching import ContinuousBatcher
from ramp.deploy.settings import ServeConfig
from ramp.deploy.versions import CheckpointRef
from ramp.platform.config import EmbodimentConfig
from ramp.platform.models.acting import camera_signature, predict_chunks, stack_observations

log = logging.getLogger("ramp.deploy")

NAMESPACE = "ramp"
STATE_ACTOR = "ramp-deploy-state"
APP = "ramp"
POLICY = "RampPolicy"
WORLD_MODEL = "RampWorldModel"


def _offline() -> None:
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")


def _device(num_gpus: float) -> str:
    """cuda when Ray gave this replica a GPU share, else cpu."""
    import torch

    return "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- models


class _Precomputed:
    """Stands in for the world model inside ``policy.infer``: the prediction already made by the
    world-model deployment (standard mode)."""

    def __init__(self, pred: dict[str, Any], device: Any):
        import torch

        tokens = pred.get("tokens")
        self.pred = SimpleNamespace(
            tokens=None if tokens is None else torch.as_tensor(tokens, device=device),
            value=torch.as_tensor(pred["value"], device=device),
        )

    def predict(self, batch: Any, generator: Any = None) -> Any:
        return self.pred


@dataclass
class LivePolicy:
    """One loaded policy version with what the routes need to validate against it."""

    ref: CheckpointRef
    policy: Any
    specs: dict[str, EmbodimentConfig]
    tasks: dict[str, str]

    @property
    def version(self) -> str:
        return self.ref.version


def load_policy(
    ref: CheckpointRef, cfg: ServeConfig, declared: dict[str, EmbodimentConfig]
) -> LivePolicy:
    """Load, check and warm up a policy checkpoint (blocking: call it from a thread)."""
    _offline()
    from ramp.platform.models.checkpoints import load_checkpoint, read_config

    policy = load_checkpoint(ref.root, ref.rel, kind="policy", device=_device(cfg.num_gpus))
    policy.eval()
    ckpt_config = read_config(ref.root, ref.rel)
    dims = {n: (e.state.dim, e.action.dim) for n, e in policy.norm_stats.embodiments.items()}
    live = LivePolicy(
        ref,
        policy,
        P.serving_specs(ckpt_config, declared, dims),
        P.checkpoint_tasks(ckpt_config, cfg.tasks),
    )
    for name, spec in live.specs.items():  # warm up: the first robot should not pay for it
        item = {
            "embodiment": name,
            "images": {
                c: np.zeros((s.height, s.width, 3), np.uint8) for c, s in spec.cameras.items()
            },
            "state": np.zeros(spec.state_dim, np.float32),
            "instruction": "warm up",
        }
        policy.infer(stack_observations([item]), mode="efficient", num_steps=cfg.num_steps)
    return live


@serve.deployment(name=WORLD_MODEL)
class WorldModelServer:
    """The world model of standard mode: tokens and value for a batch of observations."""

    def __init__(self, checkpoint: dict[str, str], settings: dict[str, Any]):
        _offline()
        import torch

        from ramp.platform.models.checkpoints import load_checkpoint

        cfg = ServeConfig.model_validate(settings)
        torch.set_num_threads(cfg.torch_threads)
        ref = CheckpointRef.from_json(checkpoint)
        device = _device(cfg.world_model_num_gpus)
        self.model = load_checkpoint(ref.root, ref.rel, kind="world-model", device=device).eval()
        self.version = ref.version
        self._pool = ThreadPoolExecutor(
            1, "ramp-wm", initializer=torch.set_num_threads, initargs=(cfg.torch_threads,)
        )

    def _predict(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        with torch.no_grad():
            pred = self.model.predict(batch)
        tokens = None if pred.tokens is None else pred.tokens.float().cpu().numpy()
        return {"tokens": tokens, "value": pred.value.float().cpu().numpy()}

    async def predict(self, batch: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._predict, batch)

    async def info(self) -> dict[str, Any]:
        return {"version": self.version}


@serve.deployment(name=POLICY)
@serve.ingress(W.api)
class PolicyServer:
    """The ``ramp`` deployment: routes (docs/api.md) and the live policy, batched."""

    async def __init__(
        self,
        settings: dict[str, Any],
        token_digests: dict[str, str],
        store: dict[str, Any],
        embodiments: dict[str, Any],
        world_model: Any = None,
        world_model_version: str | None = None,
    ):
        import ray
        import torch

        self.cfg = ServeConfig.model_validate(settings)
        torch.set_num_threads(self.cfg.torch_threads)
        self.auth = Authenticator(token_digests, open_access=self.cfg.auth == "none")
        self.limiter = RateLimiter(self.cfg.rate_limit, dict(self.cfg.rate_limits))
        self.store_settings = store
        self.declared = {k: EmbodimentConfig.model_validate(v) for k, v in embodiments.items()}
        self._store: Any = None
        self.world_model = world_model
        self.world_model_version = world_model_version
        if self.cfg.mode == "standard" and world_model is None:
            raise ValueError("mode 'standard' needs a world-model deployment")
        ctx = serve.get_replica_context()
        self.replica = f"{ctx.app_name}:{ctx.replica_id.unique_id}"
        # torch's thread setting is per OS thread: set it in the threads that run the model
        threads = self.cfg.torch_threads
        self._infer_pool = ThreadPoolExecutor(
            1, "ramp-infer", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self._load_pool = ThreadPoolExecutor(
            1, "ramp-load", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self.batcher = ContinuousBatcher(
            self._run_batch, self.cfg.max_batch_size, self.cfg.batch_wait_timeout_s
        )
        self.prepared: dict[int, LivePolicy] = {}
        self.state_actor = ray.get_actor(STATE_ACTOR, namespace=NAMESPACE)
        state = await self.state_actor.get.remote()
        self.live = await self._load(state["live"])
        await self.state_actor.ack.remote(self.replica, state["epoch"])
        self._watcher = asyncio.get_running_loop().create_task(self._watch(state["seq"]))

    # ------------------------------------------------------------------ versions

    async def _load(self, ref_json: dict[str, str]) -> LivePolicy:
        ref = CheckpointRef.from_json(ref_json)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._load_pool, load_policy, ref, self.cfg, self.declared
        )

    async def _follow(self, state: dict[str, Any]) -> None:
        """Act on one DeployState: prepare a pending version, drop aborted ones, swap on commit."""
        prep = state.get("prepare")
        if prep and prep["id"] not in self.prepared and prep["ref"]["version"] != self.live.version:
            try:
                self.prepared[prep["id"]] = await self._load(prep["ref"])
                await self.state_actor.ready.remote(self.replica, prep["id"], None)
            except Exception as e:
                log.exception("could not load %s", prep["ref"]["version"])
                why = f"{type(e).__name__}: {e}"
                await self.state_actor.ready.remote(self.replica, prep["id"], why)
        keep = {p for p in ((prep or {}).get("id"), state.get("committed")) if p is not None}
        for pid in [p for p in self.prepared if p not in keep]:
            del self.prepared[pid]  # aborted: free the memory
        if state["live"]["version"] != self.live.version:
            new = self.prepared.pop(state.get("committed"), None)
            if new is None or new.version != state["live"]["version"]:
                new = await self._load(state["live"])  # a replica that missed the prepare
            old, self.live = self.live, new  # queued requests keep their own LivePolicy
            log.info("now serving %s (was %s)", new.version, old.version)
        await self.state_actor.ack.remote(self.replica, state["epoch"])

    async def _watch(self, seq: int) -> None:
        while True:
            try:
                state = await self.state_actor.wait.remote(seq, 20.0)
                if state["seq"] != seq:
                    seq = state["seq"]
                    await self._follow(state)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the deploy state failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ inference

    def _forward(self, live: LivePolicy, batch: dict, pred: dict | None) -> tuple[list, float]:
        t0 = time.perf_counter()
        wm = _Precomputed(pred, live.policy.device) if pred is not None else None
        chunks = predict_chunks(
            live.policy,
            batch,
            mode=self.cfg.mode,
            world_model=wm,
            cfg_beta=self.cfg.cfg_beta,
            num_steps=self.cfg.num_steps,
        )
        return chunks, time.perf_counter() - t0

    async def _run_batch(self, requests: list[tuple[float, LivePolicy, dict]]) -> list[dict]:
        """One forward pass per (model, camera layout) group, in the inference thread."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (_, live, item) in enumerate(requests):
            groups[(id(live), camera_signature(item))].append(i)
        results: list[dict[str, Any]] = [{} for _ in requests]
        for idxs in groups.values():
            live = requests[idxs[0]][1]
            batch = stack_observations([requests[i][2] for i in idxs])
            wm_ms, pred = 0.0, None
            try:
                if self.cfg.mode == "standard":
                    t0 = time.perf_counter()
                    pred = await self.world_model.predict.remote(batch)
                    wm_ms = (time.perf_counter() - t0) * 1e3
                actions, infer_s = await loop.run_in_executor(
                    self._infer_pool, self._forward, live, batch, pred
                )
            except Exception as e:
                log.exception("inference failed on %s", live.version)
                for i in idxs:
                    results[i] = {
                        "error": f"inference failed ({type(e).__name__})",
                        "code": "inference_failed",
                    }
                continue
            for j, i in enumerate(idxs):
                arrived, _, item = requests[i]
                try:
                    acts, clipped = P.finalize_actions(actions[j], live.specs[item["embodiment"]])
                except P.NonFiniteActionsError as e:
                    log.error("policy %s: %s", live.version, e)
                    results[i] = {"error": str(e), "code": "non_finite_actions"}
                    continue
                results[i] = {
                    "actions": acts,
                    "clipped": clipped,
                    "policy_version": live.version,
                    "mode": self.cfg.mode,
                    "infer_ms": round(infer_s * 1e3 + wm_ms, 3),
                    "queue_ms": round((start - arrived) * 1e3, 3),
                    "batch_size": len(idxs),
                }
        return results

    # ------------------------------------------------------------------ for Ray callers

    async def act(self, item: dict[str, Any]) -> dict[str, Any]:
        """Handle API for Ray-side callers (simulated robots, tests): an observation dict as
        /v1/act takes it (numpy arrays) -> the result dict; ProtocolError if it is invalid."""
        obs = P.parse_observation(item, self.live.specs, self.live.tasks)
        return await self._infer(self.live, obs)

    async def info(self) -> dict[str, Any]:
        live = self.live
        return {
            "policy_version": live.version,
            "mode": self.cfg.mode,
            "world_model_version": self.world_model_version,
            "chunk_size": live.policy.cfg.chunk_size,
            "embodiments": {k: v.model_dump(mode="json") for k, v in live.specs.items()},
            "tasks": live.tasks,
            "checkpoint": live.ref.path,
            "batching": self.batcher.stats(),
        }

    async def configure_batching(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        """Change batching on the replica that receives this call, without a restart (the
        serving benchmark compares batch size 1 and N on one replica this way)."""
        self.batcher.set_max_batch_size(int(max_batch_size))
        self.batcher.set_wait_s(float(batch_wait_timeout_s))

    # ------------------------------------------------------------------ shared steps

    def _robot(self, authorization: str | None) -> str:
        robot = self.auth.robot(authorization)
        if robot is None:
            raise P.ProtocolError(
                401,
                "authorization",
                f"missing or invalid robot token; {AUTH_HINT}",
                "unauthorized",
            )
        return robot

    def _admit(self, robot: str) -> None:
        wait = self.limiter.check(robot)
        if wait > 0:
            err = P.ProtocolError(429, "", self.limiter.message(robot, wait), "rate_limited")
            err.retry_after = wait  # type: ignore[attr-defined]
            raise err

    async def _infer(self, live: LivePolicy, obs: P.Observation) -> dict[str, Any]:
        """Through the batcher, on the model ``obs`` was validated against."""
        result = await self.batcher.submit((time.perf_counter(), live, obs.item()))
        if "error" in result:
            raise W.ServerFault(500, result["code"], result["error"])
        return result

    def _check_size(self, data: bytes | str) -> None:
        if len(data) > self.cfg.max_request_bytes:
            raise P.ProtocolError(
                413,
                "body",
                f"{len(data)} bytes exceed the limit of "
                f"{self.cfg.max_request_bytes} (serve.max_request_bytes)",
                "body_too_large",
            )

    async def _answer(self, data: bytes | str, fmt: str, openpi: bool = False) -> dict:
        """One admitted observation -> the reply dict (ProtocolError / ServerFault if not)."""
        t0 = time.perf_counter()
        obj = await W.decode(data, fmt)
        live = self.live
        if openpi:
            obs = P.openpi_observation(obj, self.cfg.openpi, live.specs, live.tasks)
        else:
            obs = P.parse_observation(obj, live.specs, live.tasks)
        result = await self._infer(live, obs)
        server_ms = (time.perf_counter() - t0) * 1e3
        return P.openpi_reply(result, server_ms) if openpi else P.act_reply(result, obs, server_ms)

    async def _frame_reply(self, robot: str, data: bytes | str, fmt: str, openpi: bool) -> dict:
        """A WebSocket frame: admission and size are checked per frame; any failure becomes an
        error answer and the session goes on."""
        self._admit(robot)
        self._check_size(data)
        try:
            return await self._answer(data, fmt, openpi)
        except P.ProtocolError:
            raise
        except Exception as e:
            log.exception("a WebSocket frame failed")
            raise W.ServerFault(500, "internal", f"internal error ({type(e).__name__})") from e

    # ------------------------------------------------------------------ HTTP routes

    @W.api.get("/healthz", response_model=schemas.HealthOut, tags=["meta"])
    async def healthz(self) -> dict[str, Any]:
        """Liveness (no token needed; openpi's servers answer it too)."""
        return {"status": "ok", "policy_version": self.live.version}

    @W.api.get("/v1/version", response_model=schemas.VersionOut, responses=W.ERRORS, tags=["meta"])
    async def version(self, request: Request) -> Response:
        """The live policy version, its embodiments (cameras, dims, bounds), tasks and limits."""
        robot = self._robot(request.headers.get("authorization"))
        self._admit(robot)
        live = self.live
        lim = self.limiter.limits(robot)
        body = {
            "policy_version": live.version,
            "mode": self.cfg.mode,
            "world_model_version": self.world_model_version,
            "chunk_size": live.policy.cfg.chunk_size,
            "embodiments": {k: P.describe_spec(v) for k, v in live.specs.items()},
            "tasks": live.tasks,
            "ramp_version": __version__,
            "robot": robot,
            "limits": {
                "max_request_bytes": self.cfg.max_request_bytes,
                "max_episode_bytes": self.cfg.max_episode_bytes,
                "requests_per_s": lim.requests_per_s,
                "burst": lim.burst,
            },
        }
        headers = {"X-Ramp-Policy-Version": live.version}
        return Response(P.encode(body, P.JSON), headers=headers, media_type=P.MEDIA[P.JSON])

    @W.api.post(
        "/v1/act",
        responses={
            200: {"model": schemas.ActionOut, "content": {"application/msgpack": {}}},
            **W.ERRORS,
        },
        openapi_extra=W.body_doc("act"),
        tags=["act"],
    )
    async def post_act(self, request: Request) -> Response:
        """One observation -> one action chunk (JSON or msgpack, by Content-Type / Accept)."""
        robot = self._robot(request.headers.get("authorization"))
        fmt = P.request_format(request.headers.get("content-type"))
        self._admit(robot)
        data = await W.read_body(request, self.cfg.max_request_bytes, "serve.max_request_bytes")
        reply = await self._answer(data, fmt)
        out = P.response_format(request.headers.get("accept"), fmt)
        headers = {
            "X-Ramp-Policy-Version": reply["policy_version"],
            "X-Ramp-Infer-Ms": str(reply["timing"]["infer_ms"]),
        }
        return Response(P.encode(reply, out), headers=headers, media_type=P.MEDIA[out])

    @W.api.post(
        "/v1/episodes",
        status_code=201,
        responses={
            201: {"model": schemas.EpisodeOut},
            200: {"model": schemas.EpisodeOut},
            409: {"model": schemas.ErrorOut, "description": "the id exists with other content"},
            **W.ERRORS,
        },
        openapi_extra=W.body_doc("episodes"),
        tags=["episodes"],
    )
    async def episodes(self, request: Request) -> Response:
        """Store a finished episode in the current round (validated; idempotent by id)."""
        from ramp.platform.episodes import (
            EpisodeConflictError,
            EpisodeValidationError,
            StoreUnavailableError,
        )

        robot = self._robot(request.headers.get("authorization"))
        fmt = P.request_format(request.headers.get("content-type"))
        self._admit(robot)
        data = await W.read_body(request, self.cfg.max_episode_bytes, "serve.max_episode_bytes")
        obj = await asyncio.to_thread(P.decode, data, fmt)
        store = self._episode_store()
        specs = dict(store.embodiments)
        try:
            round_ = await asyncio.to_thread(store.current_round)
            episode = P.parse_episode(obj, specs, f"robot-{robot}", round_)
            result = await asyncio.to_thread(store.write, episode)
        except EpisodeValidationError as e:
            raise P.ProtocolError(422, e.column, str(e), "invalid_episode") from None
        except EpisodeConflictError as e:
            raise P.ProtocolError(409, "episode_id", str(e), "episode_conflict") from None
        except StoreUnavailableError as e:
            return W.error_response(P.ProtocolError(503, "", str(e), "store_unavailable"))
        body = {
            "episode_id": result.episode_id,
            "status": result.status,
            "round": round_,
            "source": episode.source,
            "path": result.path,
        }
        status = 201 if result.status == "written" else 200
        headers = {"X-Ramp-Policy-Version": self.live.version}
        return Response(P.encode(body, P.JSON), status, headers, media_type=P.MEDIA[P.JSON])

    def _episode_store(self) -> Any:
        from ramp.platform.config import StoreConfig
        from ramp.platform.episodes import EpisodeStore

        specs = dict(self.live.specs)
        specs.update(self.declared)
        if self._store is None or set(self._store.embodiments) != set(specs):
            cfg = StoreConfig.model_validate(self.store_settings["config"])
            self._store = EpisodeStore(self.store_settings["root"], specs, cfg)
        return self._store

    # ------------------------------------------------------------------ WebSockets

    async def _accept(self, ws: WebSocket) -> str | None:
        """Authenticate the handshake; refuse it (HTTP 403 at the handshake) without a token."""
        try:
            return self._robot(ws.headers.get("authorization"))
        except P.ProtocolError:
            await ws.close(code=1008, reason="missing or invalid robot token")
            return None

    @W.api.websocket("/v1/stream")
    async def stream(self, ws: WebSocket) -> None:
        """A session: hello frame, then one answer frame per observation frame (same type)."""
        robot = await self._accept(ws)
        if robot is None:
            return
        await ws.accept()
        fmt = P.JSON if ws.query_params.get("format") == "json" else P.MSGPACK
        try:
            live = self.live
            hello = {
                "type": "hello",
                "policy_version": live.version,
                "embodiments": {k: P.describe_spec(v) for k, v in live.specs.items()},
                "chunk_size": live.policy.cfg.chunk_size,
                "robot": robot,
            }
            await self._send(ws, hello, fmt)
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data, frame_fmt = W.frame(msg)
                try:
                    reply = await self._frame_reply(robot, data, frame_fmt, openpi=False)
                except P.ProtocolError as err:
                    reply = err.to_json()
                    if err.status == 413:
                        await self._send(ws, reply, frame_fmt)
                        await ws.close(code=1009, reason="message too big")
                        return
                await self._send(ws, reply, frame_fmt)
        except (WebSocketDisconnect, RuntimeError):
            return

    @W.api.websocket("/v1/openpi")
    async def openpi(self, ws: WebSocket) -> None:
        """openpi's policy-server protocol: metadata frame, then msgpack frame each way."""
        robot = await self._accept(ws)
        if robot is None:
            return
        await ws.accept()
        try:
            live = self.live
            meta = {
                "server": "ramp",
                "policy_version": live.version,
                "action_horizon": live.policy.cfg.chunk_size,
                "embodiments": {k: P.describe_spec(v) for k, v in live.specs.items()},
            }
            await ws.send_bytes(P.encode(meta, P.MSGPACK))
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data, frame_fmt = W.frame(msg)
                if frame_fmt != P.MSGPACK:
                    await ws.send_text("ramp 400 malformed_body: send binary msgpack frames")
                    continue
                try:
                    reply = await self._frame_reply(robot, data, P.MSGPACK, openpi=True)
                except P.ProtocolError as err:
                    where = f"{err.field}: " if err.field else ""
                    await ws.send_text(f"ramp {err.status} {err.code}: {where}{err.message}")
                    continue
                await ws.send_bytes(P.encode(reply, P.MSGPACK))
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _send(self, ws: WebSocket, obj: Any, fmt: str) -> None:
        if fmt == P.MSGPACK:
            await ws.send_bytes(P.encode(obj, P.MSGPACK))
        else:
            await ws.send_text(P.encode(obj, P.JSON).decode())
