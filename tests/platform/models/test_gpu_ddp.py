"""One DDP training step of the paper architecture (paper widths, reduced depth) on a GPU.

Skipped without CUDA (this suite also runs on CPU-only machines); where a GPU exists it checks the
scale-up path: bfloat16 paper widths, PaliGemma-2 vocabulary, Wan2.2 VAE and DiT widths, NCCL,
DistributedDataParallel around the models' ``forward`` (= their per-sample loss).
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch, norm_stats_for

from ramp.platform.models.build import build_policy, build_world_model
from ramp.platform.models.padding import to_tensors
from ramp.platform.models.presets import preset
from ramp.platform.rl.contract import Conditioning

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REDUCED = {
    "policy": {
        "backbone": {"vision": {"num_layers": 2}, "text": {"num_layers": 2}},
        "action_expert": {"num_layers": 2},
    },
    "world_model": {
        "transformer": {"num_layers": 2},
        "text_encoder": {"num_layers": 2},
    },
}


@pytest.fixture
def process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    torch.cuda.set_device(0)
    yield
    dist.destroy_process_group()


def test_one_ddp_step_of_the_paper_architecture(process_group):
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.manual_seed(0)
    cfg = preset("paper", **REDUCED)
    stats = norm_stats_for()
    batch = to_tensors(make_batch(2, ("arm", "bimanual"), ("front", "wrist")), "cuda")

    policy = build_policy(cfg, stats, device="cuda")
    assert policy.expert.dit.proj_in.weight.dtype == torch.bfloat16
    ddp = DDP(policy, device_ids=[0], find_unused_parameters=True)
    opt = torch.optim.AdamW([p for p in ddp.parameters() if p.requires_grad], lr=1e-5)
    cond = Conditioning.unconditional(2, "cuda")
    loss = ddp(batch, cond).mean()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    grads = [p.grad for p in policy.expert.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g.float()).all() for g in grads)
    out = policy.infer(batch)
    assert out.actions.shape == (2, 50, 32) and torch.isfinite(out.actions).all()
    del ddp, opt, policy
    torch.cuda.empty_cache()

    wm = build_world_model(cfg, stats, device="cuda")
    ddp_wm = DDP(wm, device_ids=[0], find_unused_parameters=True)
    opt = torch.optim.AdamW([p for p in ddp_wm.parameters() if p.requires_grad], lr=1e-5)
    loss = ddp_wm(batch).mean()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    pred = wm.predict(batch)
    assert pred.tokens.shape[-1] == cfg.world_model.token_dim
    assert torch.isfinite(pred.value).all()
