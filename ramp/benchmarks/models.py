"""`ramp bench models`: CPU latency, training throughput, parameters and FLOPs of the models.

For the tiny and small presets, batch 1 (one robot asking for one chunk):
- the policy's action chunk in the "efficient" mode (no world model) and the "standard" mode
  (one-step world-model prediction, then the policy), p50 and p99;
- one world-model prediction;
- training samples/s of the policy (RAMP-style loss with z and I, chain of thought included) and
  of the world model, at batch 8, forward + backward + AdamW;
- parameters, and FLOPs per chunk counted by torch's FlopCounterMode (matmuls, convolutions,
  attention; elementwise work is not counted).

Baselines measured in the same run: the raw transformers/diffusers forwards of the same modules
for one efficient chunk (SigLIP + projector + Gemma decoder on a context of the same length with
its default mask, then 10 LTX forwards with a plain Euler update, no tokenizer, normalisation,
masks or scheduler). ``<preset>.efficient_vs_raw`` = raw p50 / ramp p50 (1 = no overhead), and
``<preset>.standard_vs_efficient`` = efficient p50 / standard p50 (the price of the world model).
All latencies of a preset are measured round-robin, so a busy neighbour slows them alike, with
one torch thread (``THREADS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ramp.benchmarks.report import BenchResult
from ramp.platform.models.action_expert import step_features
from ramp.platform.models.backbone import prepare_images
from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.normalization import stats_from_arrays
from ramp.platform.models.padding import collate_padded, to_tensors
from ramp.platform.models.presets import preset
from ramp.platform.rl.contract import Conditioning

PRESETS = ("tiny", "small")
SIZE = 96
CAMERAS = ("front", "wrist")
STATE_DIM, ACTION_DIM = 9, 7
TRAIN_BATCH = 8
# One intra-op thread, as a serving replica on a small robot computer would run: on this shared
# 2-core machine a second OpenMP thread made p99 latencies 10-100x worse whenever a neighbour
# was busy, which measured the neighbour, not ramp.
THREADS = 1


def _batch(n: int, chunk: int, offsets: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        samples.append(
            {
                "embodiment": "bench_arm",
                "instruction": "pick up the red block and place it in the blue box",
                "images": {
                    c: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in CAMERAS
                },
                "state": rng.normal(size=STATE_DIM).astype(np.float32),
                "actions": rng.uniform(-1, 1, (chunk, ACTION_DIM)).astype(np.float32),
                "action_mask": np.ones(chunk, bool),
                "future_images": {
                    c: rng.integers(0, 256, (offsets, SIZE, SIZE, 3), dtype=np.uint8)
                    for c in CAMERAS
                },
                "future_state": rng.normal(size=(offsets, STATE_DIM)).astype(np.float32),
                "future_mask": np.ones(offsets, bool),
                "value": np.float32(-0.5),
                "value_target": np.float32(-0.5),
                "indicator": True,
                "subgoal": "move the gripper above the red block",
                "trajectory_2d": rng.uniform(0, SIZE, 20).astype(np.float32),
            }
        )
    return to_tensors(collate_padded(samples, 32, 32))


def _latencies(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50)) * 1e3, float(np.percentile(times, 99)) * 1e3


def _interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """p50/p99 (ms) of each function, called round-robin so a noisy neighbour hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        order = list(fns.items())
        if i % 2:
            order.reverse()
        for key, fn in order:
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {
        k: (float(np.percentile(v, 50)) * 1e3, float(np.percentile(v, 99)) * 1e3)
        for k, v in times.items()
    }


def _flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _raw_chunk(policy: Any, obs: dict[str, Any], steps: int) -> Callable[[], Any]:
    """The same modules called directly, as a user of transformers/diffusers would."""
    bb = policy.backbone
    size = policy.cfg.backbone.vision.image_size
    pix = torch.cat([prepare_images(v, size) for v in obs["images"].values()])
    ids = torch.tensor([policy.tokenizer(obs["instruction"][0] + "\n")["input_ids"]])
    extra = torch.zeros(1, 3, bb.width)  # state, value, indicator tokens
    h = policy.cfg.chunk_size
    pos = step_features(h, torch.device("cpu"), torch.float32)[None]

    @torch.no_grad()
    def run() -> torch.Tensor:
        img = bb.model.model.get_image_features(pix).pooler_output.reshape(1, -1, bb.width)
        queries = policy.trajectory.query_tokens(1)
        embeds = torch.cat([img, bb.decoder.embed_tokens(ids), extra, queries], 1)
        ctx = bb.decoder(inputs_embeds=embeds).last_hidden_state
        mask = torch.ones(ctx.shape[:2])
        x = torch.randn(1, h, policy.cfg.max_action_dim)
        for i in range(steps):
            t = torch.tensor([1000.0 * (1 - i / steps)])
            v = policy.expert.dit(
                torch.cat([x, pos], -1), ctx, t, mask, num_frames=h, height=1, width=1
            ).sample
            x = x - v / steps
        return x

    return run


def _measure(name: str, quick: bool, result: BenchResult) -> None:
    torch.manual_seed(0)
    models = preset(name)
    h = models.policy.chunk_size
    k = len(models.world_model.future_offsets)
    rng = np.random.default_rng(0)
    stats = stats_from_arrays(
        {"bench_arm": (rng.normal(size=(500, STATE_DIM)), rng.uniform(-1, 1, (500, ACTION_DIM)))}
    )
    policy = build_policy(models, stats).eval()
    wm = build_world_model(models, stats).eval()
    obs = _batch(1, h, k)
    for key in ("actions", "future_images", "future_state", "subgoal", "trajectory_2d"):
        obs.pop(key)
    repeats = (5 if name == "small" else 10) if quick else (30 if name == "small" else 60)
    steps = models.policy.flow.num_steps

    def efficient() -> Any:
        return policy.infer(obs, "efficient")

    def standard() -> Any:
        return policy.infer(obs, "standard", world_model=wm)

    def predict() -> Any:
        return wm.predict(obs)

    lat = _interleaved(
        {
            "efficient": efficient,
            "raw": _raw_chunk(policy, obs, steps),
            "standard": standard,
            "predict": predict,
        },
        repeats,
    )
    eff, raw_t, std, pred = lat["efficient"], lat["raw"], lat["standard"], lat["predict"]

    train_batch = _batch(TRAIN_BATCH, h, k, seed=1)
    z = wm.predict(train_batch).tokens
    cond = Conditioning(
        z,
        torch.ones(TRAIN_BATCH, dtype=torch.bool),
        train_batch["value"].float(),
        train_batch["indicator"].float(),
        torch.ones(TRAIN_BATCH, dtype=torch.bool),
    )
    policy.train()
    wm.train()
    p_opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    w_opt = torch.optim.AdamW([p for p in wm.parameters() if p.requires_grad], lr=1e-4)

    def policy_step() -> None:
        loss = policy.loss(train_batch, cond).mean()
        p_opt.zero_grad()
        loss.backward()
        p_opt.step()

    def wm_step() -> None:
        loss = wm.loss(train_batch).mean()
        w_opt.zero_grad()
        loss.backward()
        w_opt.step()

    n_train = (1 if name == "small" else 3) if quick else 8
    p_step = _latencies(policy_step, n_train)[0] / 1e3
    w_step = _latencies(wm_step, n_train)[0] / 1e3
    policy.eval()
    wm.eval()
    flops_eff = _flops(efficient)
    flops_std = _flops(standard)
    flops_pred = _flops(predict)
    n_policy = policy.num_parameters()
    n_wm = wm.num_parameters()

    m = result.metrics
    m[f"{name}.policy_params"] = n_policy
    m[f"{name}.world_model_params"] = n_wm
    m[f"{name}.efficient_p50_ms"], m[f"{name}.efficient_p99_ms"] = eff
    m[f"{name}.standard_p50_ms"], m[f"{name}.standard_p99_ms"] = std
    m[f"{name}.wm_predict_p50_ms"], m[f"{name}.wm_predict_p99_ms"] = pred
    m[f"{name}.raw_efficient_p50_ms"], m[f"{name}.raw_efficient_p99_ms"] = raw_t
    m[f"{name}.policy_train_samples_per_s"] = TRAIN_BATCH / p_step
    m[f"{name}.wm_train_samples_per_s"] = TRAIN_BATCH / w_step
    m[f"{name}.efficient_gflop_per_chunk"] = flops_eff / 1e9
    m[f"{name}.standard_gflop_per_chunk"] = flops_std / 1e9
    m[f"{name}.wm_predict_gflop"] = flops_pred / 1e9
    result.ratios[f"{name}.efficient_vs_raw"] = raw_t[0] / eff[0]
    result.ratios[f"{name}.standard_vs_efficient"] = eff[0] / std[0]
    limits = {"tiny": (None, 5e6), "small": (20e6, 50e6)}[name]
    for key in (f"{name}.policy_params", f"{name}.world_model_params"):
        goal = {"max": limits[1]} if limits[0] is None else {"min": limits[0], "max": limits[1]}
        result.targets[key] = goal

    def row(
        what: str,
        lat: tuple[float, float] | None,
        sps: float | None,
        gflop: float | None,
        params: int | None,
    ) -> dict[str, Any]:
        return {
            "preset": name,
            "measure": what,
            "p50 ms": lat[0] if lat else None,
            "p99 ms": lat[1] if lat else None,
            "samples/s": sps,
            "GFLOP": gflop,
            "params (M)": params / 1e6 if params else None,
        }

    result.rows += [
        row("chunk, efficient", eff, None, flops_eff / 1e9, n_policy),
        row("chunk, standard", std, None, flops_std / 1e9, n_policy + n_wm),
        row("world-model predict", pred, None, flops_pred / 1e9, n_wm),
        row("chunk, raw modules (baseline)", raw_t, None, None, None),
        row(f"policy training (batch {TRAIN_BATCH})", None, TRAIN_BATCH / p_step, None, n_policy),
        row(f"world-model training (batch {TRAIN_BATCH})", None, TRAIN_BATCH / w_step, None, n_wm),
    ]


def run(quick: bool = False, threads: int = THREADS) -> BenchResult:
    result = BenchResult(name="models")
    torch.set_grad_enabled(True)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name in PRESETS:
            _measure(name, quick, result)
    finally:
        torch.set_num_threads(saved)
    result.notes.append(
        f"batch 1, {len(CAMERAS)} cameras at {SIZE} px, chunk of 50 x {ACTION_DIM}; "
        f"torch threads {threads}; FLOPs: matmul/conv/attention only"
    )
    return result
