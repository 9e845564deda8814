"""The DiT equals diffusers' HunyuanVideoTransformer3DModel with the same (random) weights."""

import pytest
import torch

from kinema.models.dit import DiT, DiTConfig
from kinema.models.dit_convert import (
    dit_config_from_diffusers,
    dit_config_to_diffusers,
    dit_state_from_diffusers,
    dit_state_to_diffusers,
)

diffusers = pytest.importorskip("diffusers")

TINY = DiTConfig(
    in_channels=4, out_channels=4, heads=2, head_dim=10, depth_double=2, depth_single=2, depth_refiner=1,
    patch=(1, 2, 2), text_dim=16, pooled_dim=8, rope_dims=(2, 4, 4),
)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere: zero-initialised layers hide mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def pair(cfg: DiTConfig) -> tuple[DiT, torch.nn.Module]:
    ref = diffusers.HunyuanVideoTransformer3DModel(**dit_config_to_diffusers(cfg)).eval()
    randomize(ref)
    ours = DiT(cfg).eval()
    ours.load_state_dict(dit_state_from_diffusers(ref.state_dict(), cfg), strict=True)
    return ours, ref


def inputs(cfg: DiTConfig, t: int, h: int, w: int, lengths: list[int], max_len: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    latents = torch.randn(b, cfg.in_channels, t, h, w, generator=g)
    timestep = torch.rand(b, generator=g) * 1000
    text = torch.randn(b, max_len, cfg.text_dim, generator=g)
    mask = torch.arange(max_len)[None] < torch.tensor(lengths)[:, None]
    pooled = torch.randn(b, cfg.pooled_dim, generator=g)
    guidance = torch.full((b,), 6000.0) if cfg.guidance_embed else None
    return latents, timestep, text, mask, pooled, guidance


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    tol = 1e-4 * ref.abs().max().item()
    diff = (ours - ref).abs().max().item()
    assert diff <= tol, f"max abs diff {diff:.3g} > {tol:.3g}"


@pytest.mark.parametrize("t,h,w", [(1, 4, 6), (3, 4, 4), (5, 6, 4)])
@pytest.mark.parametrize("lengths,max_len", [([7, 7], 7), ([5, 9], 12), ([3, 1], 8)])
@pytest.mark.parametrize("guidance", [True, False])
def test_dit_matches_diffusers(t, h, w, lengths, max_len, guidance):
    cfg = DiTConfig(**{**TINY.to_dict(), "guidance_embed": guidance})
    ours, ref = pair(cfg)
    latents, timestep, text, mask, pooled, g = inputs(cfg, t, h, w, lengths, max_len)
    with torch.no_grad():
        expected = ref(latents, timestep, text, mask, pooled, g, return_dict=False)[0]
        got = ours(latents, timestep, text, mask, pooled, g)
    assert_close(got, expected)


def test_state_dict_round_trip_and_config():
    cfg = TINY
    ref = diffusers.HunyuanVideoTransformer3DModel(**dit_config_to_diffusers(cfg))
    randomize(ref, seed=3)
    theirs = ref.state_dict()
    back = dit_state_to_diffusers(dit_state_from_diffusers(theirs, cfg), cfg)
    assert back.keys() == theirs.keys()
    assert all(torch.equal(back[k], theirs[k]) for k in theirs)
    assert dit_config_from_diffusers(dict(ref.config)) == cfg


def test_parameter_count_matches_diffusers_default():
    with torch.device("meta"):
        ours = DiT(DiTConfig())
        ref = diffusers.HunyuanVideoTransformer3DModel()
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in ref.parameters()) == 12_821_012_544
