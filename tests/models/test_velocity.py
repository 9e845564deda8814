"""kinema.models.velocity: the DiT at flow time t, classifier-free and embedded guidance, on a tiny DiT."""

import pytest
import torch

from kinema.models import DiTConfig, build_dit
from kinema.models.text import TextEmbedding
from kinema.models.velocity import cfg_velocity, dit_velocity, guided_velocity

B, L, D = 2, 6, 32


def tiny(guidance_embed: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    dit = build_dit(DiTConfig(in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=1,
                              depth_refiner=1, text_dim=D, pooled_dim=D, rope_dims=(4, 6, 6),
                              guidance_embed=guidance_embed))
    with torch.no_grad():
        for p in dit.parameters():  # adaLN-Zero starts at zero velocity: make the output depend on the inputs
            p.add_(torch.randn_like(p) * 0.1)
    return dit.eval()


def text(seed: int) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(L)[None] < torch.tensor([L, 3])[:, None]
    return TextEmbedding(torch.randn(B, L, D, generator=g), mask, torch.randn(B, D, generator=g))


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, 4, 2, 4, 4, generator=g), torch.tensor([0.9, 0.3]), text(2), text(3)


@torch.no_grad()
def test_the_dit_reads_time_and_guidance_times_1000(inputs):
    dit = tiny(guidance_embed=True)
    x, t, cond, _ = inputs
    g = torch.tensor([6.0, 3.5])
    direct = dit(x, t * 1000, cond.states, cond.mask, cond.pooled, g * 1000)
    torch.testing.assert_close(dit_velocity(dit, x, t, cond, g), direct)
    # guided_velocity hands a guidance-embedded model its scale as the embedded guidance: one forward.
    torch.testing.assert_close(guided_velocity(dit, x, t, cond, text(4), g), direct)


@torch.no_grad()
@pytest.mark.parametrize("embedded", [False, True])
def test_classifier_free_guidance_is_two_forwards_in_one_batch(inputs, embedded):
    dit = tiny(guidance_embed=embedded)
    x, t, cond, uncond = inputs
    g = torch.tensor([6.0, 2.0]) if embedded else None
    v_c, v_u = dit_velocity(dit, x, t, cond, g), dit_velocity(dit, x, t, uncond, g)
    assert (v_c - v_u).abs().mean() > 1e-3  # the prompt matters, so the test can fail
    for scale in (3.0, torch.tensor([1.0, 4.0])):
        s = scale.view(-1, 1, 1, 1, 1) if isinstance(scale, torch.Tensor) else scale
        torch.testing.assert_close(cfg_velocity(dit, x, t, cond, uncond, scale, g), v_u + s * (v_c - v_u),
                                   rtol=1e-5, atol=1e-5)
    if not embedded:
        torch.testing.assert_close(guided_velocity(dit, x, t, cond, uncond, 3.0), v_u + 3.0 * (v_c - v_u),
                                   rtol=1e-5, atol=1e-5)
