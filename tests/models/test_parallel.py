"""Ulysses sequence parallelism on 2 CPU processes (gloo): attention, the DiT forward and its gradients
equal one process's, for even and uneven token counts, with and without padding masks; so does
`kinema generate` under torchrun."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kinema.models.dit import DiTConfig
from kinema.models.layers import attention
from kinema.models.parallel import SequenceParallel, enable_sequence_parallel, sequence_parallel
from kinema.models.sizes import build_dit

WORLD = 2
CFG = DiTConfig(
    in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=2, depth_refiner=1,
    text_dim=12, pooled_dim=6, rope_dims=(4, 6, 6), guidance_embed=False,
)
# name: (latent shape (B, C, T, H, W), text lengths per sample (None: no mask), gradient checkpointing)
DIT_CASES = {
    "even_no_mask": ((2, 4, 3, 4, 6), None, False),  # 18 video + 4 text tokens, nothing padded
    "odd_tokens_text_mask": ((2, 4, 3, 2, 6), [5, 3], False),  # 9 video + 5 text tokens: both padded
    "odd_text_checkpointed": ((1, 4, 2, 4, 4), [3], True),  # 8 video + 3 text tokens, recomputed in backward
}


def random_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_dit(CFG)
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised layers would hide mistakes
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def dit_inputs(shape: tuple, lengths: list[int] | None) -> tuple:
    g = torch.Generator().manual_seed(1)
    b = shape[0]
    latents = torch.randn(shape, generator=g)
    timestep = torch.rand(b, generator=g) * 1000
    text_len = 4 if lengths is None else 7
    text = torch.randn(b, text_len, CFG.text_dim, generator=g)
    pooled = torch.randn(b, CFG.pooled_dim, generator=g)
    if lengths is None:
        mask = torch.ones(b, text_len, dtype=torch.bool)
    else:
        mask = torch.arange(text_len)[None] < torch.tensor(lengths)[:, None]
    weight = torch.randn(shape, generator=g)  # the loss is (output · weight).sum()
    return latents, timestep, text, mask, pooled, weight


def run_dit(model: torch.nn.Module, case: str) -> dict[str, torch.Tensor]:
    shape, lengths, checkpointed = DIT_CASES[case]
    latents, timestep, text, mask, pooled, weight = dit_inputs(shape, lengths)
    model.zero_grad()
    model.train().gradient_checkpointing = checkpointed
    out = model(latents, timestep, text, mask, pooled)
    (out * weight).sum().backward()
    return {"out": out.detach(), **{n: p.grad.clone() for n, p in model.named_parameters()}}


# ---------------------------------------------------------------------------------------------- workers


def attention_case(rank: int, lengths: list[int] | None) -> dict[str, torch.Tensor]:
    """This rank's output and q/k/v gradients for 8 tokens split 4 + 4."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 8, 16, generator=g) for _ in range(3))  # (B, H, L, Dh)
    mask = None if lengths is None else torch.arange(8)[None] < torch.tensor(lengths)[:, None]
    local = [t[:, :, rank * 4 : (rank + 1) * 4].clone().requires_grad_() for t in (q, k, v)]
    sp = SequenceParallel()
    out = sp.attention(*local, None if mask is None else mask[:, rank * 4 : (rank + 1) * 4])  # (B, 4, H·Dh)
    out.pow(2).sum().backward()
    return {"out": out.detach(), **{name: t.grad for name, t in zip("qkv", local)}}


def scenarios(rank: int) -> dict[str, object]:
    results: dict[str, object] = {}
    results["attention_even"] = attention_case(rank, None)
    results["attention_masked"] = attention_case(rank, [8, 5])
    model = random_model()
    with sequence_parallel(model):
        for case in DIT_CASES:
            grads = run_dit(model, case)
            for name, grad in grads.items():
                if name != "out":
                    dist.all_reduce(grad)  # what DDP / FSDP do with the ranks' gradients
            results[case] = grads
    blocks = [*model.double_blocks, *model.single_blocks]
    results["restored"] = model.sequence_parallel is None and all(b.attention is attention for b in blocks)
    try:
        enable_sequence_parallel(build_dit(DiTConfig(**{**CFG.to_dict(), "heads": 1, "head_dim": 32,
                                                       "rope_dims": (8, 12, 12)})))
        results["heads_error"] = ""
    except ValueError as e:
        results["heads_error"] = str(e)
    return results


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        torch.save(scenarios(rank), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("sp")
    ctx = mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=False, start_method="spawn")
    for _ in range(120):  # up to 2 minutes, then fail instead of hanging
        if ctx.join(timeout=1):
            break
    else:
        for p in ctx.processes:
            p.kill()
        pytest.fail("sequence-parallel workers did not finish in 2 minutes")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("case, lengths", [("attention_even", None), ("attention_masked", [8, 5])])
def test_ulysses_attention_equals_full_attention(ranks, case, lengths):
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 8, 16, generator=g).requires_grad_() for _ in range(3))
    mask = None if lengths is None else torch.arange(8)[None] < torch.tensor(lengths)[:, None]
    out = attention(q, k, v, mask)  # (B, L, H·Dh)
    out.pow(2).sum().backward()
    for rank, result in enumerate(ranks):
        sl = slice(rank * 4, (rank + 1) * 4)
        torch.testing.assert_close(result[case]["out"], out.detach()[:, sl], atol=1e-6, rtol=1e-5)
        for name, t in zip("qkv", (q, k, v)):
            torch.testing.assert_close(result[case][name], t.grad[:, :, sl], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", list(DIT_CASES))
def test_sequence_parallel_dit_equals_one_process(ranks, case):
    reference = run_dit(random_model(), case)
    assert reference["out"].abs().mean() > 0.1  # a random model, not a zero one
    for result in ranks:
        torch.testing.assert_close(result[case]["out"], reference["out"], atol=1e-5, rtol=1e-5)
        for name, grad in reference.items():
            torch.testing.assert_close(result[case][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_heads_must_split_evenly_and_leaving_the_context_restores_attention(ranks):
    assert "1 attention heads cannot be split over 2" in ranks[0]["heads_error"]
    assert ranks[0]["restored"] and ranks[1]["restored"]


def test_needs_torch_distributed():
    with pytest.raises(RuntimeError, match="torchrun"):
        SequenceParallel()


# ------------------------------------------------------------------------------------------- generation


def test_sequence_parallel_generation_equals_one_process(tmp_path, monkeypatch):
    import subprocess
    import sys

    import cv2
    import numpy as np

    from kinema.media import contact_sheet
    from kinema.models import VAEConfig, build_vae
    from kinema.options import SamplingDefaults
    from kinema.pipeline import Pipeline
    from kinema.pipeline_folder import PipelineSpec, save_pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # MiniLM's weights come from the installed package
    torch.manual_seed(0)
    dit = random_model_for_text(384)
    vae = build_vae(VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                              norm_num_groups=4, scaling_factor=1.0))
    # 9 frames of 48×48 -> 3×6×6 latents -> 27 video tokens (odd: padded over 2 ranks); CFG batches two prompts.
    defaults = SamplingDefaults(steps=2, shift=3.0, cfg_scale=3.0, frames=9, height=48, width=48)
    folder = save_pipeline(tmp_path / "pipe", dit, vae, PipelineSpec("minilm", defaults))
    prompt = "a red circle moves to the right"

    out = tmp_path / "sp.mp4"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "kinema", "generate", prompt, "--checkpoint", str(folder), "-o", str(out), "--seed", "3"]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone writes and reports

    alone = Pipeline.from_pretrained(folder)(prompt, seed=3)
    want = contact_sheet(alone.frames).astype(int)
    got = cv2.cvtColor(cv2.imread(str(out.with_suffix(".png"))), cv2.COLOR_BGR2RGB).astype(int)
    assert got.shape == want.shape and want.std() > 5  # a random model paints noise, not a flat frame
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding may flip a rare pixel by one level


def random_model_for_text(text_dim: int) -> torch.nn.Module:
    """CFG's tiny DiT reading `text_dim`-wide text states, with random weights."""
    cfg = DiTConfig(**{**CFG.to_dict(), "text_dim": text_dim, "pooled_dim": text_dim})
    model = build_dit(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model
