"""DiT properties: shapes, padding invariance, meta-device build, checkpointing, errors."""

import pytest
import torch

from kinema.models.dit import DiTConfig, sincos_positions, trim_text_padding
from kinema.models.sizes import DIT_SIZES, build_dit

CFG = DiTConfig(
    in_channels=4, out_channels=4, heads=2, head_dim=16, depth_double=1, depth_single=2, depth_refiner=1,
    text_dim=12, pooled_dim=6, rope_dims=(4, 6, 6), guidance_embed=False,
)


def random_model(cfg: DiTConfig = CFG):
    torch.manual_seed(0)
    m = build_dit(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return m


def test_padding_never_changes_real_tokens():
    m = random_model()
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 4, 3, 4, 6, generator=g), torch.tensor([100.0, 900.0])
    text, pooled = torch.randn(2, 5, 12, generator=g), torch.randn(2, 6, generator=g)
    with torch.no_grad():
        base = m(x, t, text, torch.ones(2, 5, dtype=torch.bool), pooled)
        # Pad with garbage to 11 tokens: trailing (fast path) and scattered (general masked path).
        padded = torch.cat([text, 100 * torch.randn(2, 6, 12, generator=g)], dim=1)
        mask = torch.arange(11)[None].expand(2, 11) < 5
        assert torch.allclose(m(x, t, padded, mask, pooled), base, atol=1e-5)
        perm = torch.tensor([0, 5, 1, 6, 2, 7, 3, 8, 4, 9, 10])
        assert not torch.equal(mask[:, perm], mask)  # not trailing any more
        scattered = m(x, t, padded[:, perm], mask[:, perm], pooled)
        assert torch.allclose(scattered, base, atol=1e-4)


def test_trim_text_padding():
    text = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    t, m = trim_text_padding(text, mask)
    assert t.shape == (2, 3, 3) and m.tolist() == [[True] * 3, [True, True, False]]
    t, m = trim_text_padding(text, torch.ones(2, 6, dtype=torch.bool))
    assert t.shape == (2, 6, 3) and m is None


def test_shapes_guidance_and_errors():
    cfg = DiTConfig(**{**CFG.to_dict(), "guidance_embed": True, "patch": (1, 2, 2)})
    m = random_model(cfg)
    x = torch.randn(1, 4, 1, 4, 8)  # an image: one latent frame, non-square
    args = (torch.tensor([500.0]), torch.randn(1, 3, 12), torch.ones(1, 3, dtype=torch.bool), torch.randn(1, 6))
    with torch.no_grad():
        out = m(x, *args, guidance=torch.tensor([6000.0]))
        other = m(x, *args, guidance=torch.tensor([1000.0]))
    assert out.shape == x.shape and not torch.allclose(out, other)  # guidance changes the output
    with pytest.raises(ValueError, match="needs a `guidance`"):
        m(x, *args)
    with pytest.raises(ValueError, match="divisible by the patch size"):
        m(torch.randn(1, 4, 1, 5, 8), *args, guidance=torch.tensor([6000.0]))
    with pytest.raises(ValueError, match="must sum to head_dim"):
        DiTConfig(head_dim=64)


def test_gradient_checkpointing_gives_the_same_gradients():
    m = random_model().train()
    x = torch.randn(2, 4, 3, 4, 4)
    args = (torch.tensor([10.0, 700.0]), torch.randn(2, 4, 12), torch.ones(2, 4, dtype=torch.bool), torch.randn(2, 6))
    m(x, *args).square().mean().backward()
    plain = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.gradient_checkpointing = True
    m(x, *args).square().mean().backward()
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, plain[n], atol=1e-6), n


def test_zero_init_starts_at_zero_velocity_and_every_size_builds_on_meta():
    m = build_dit(CFG)
    out = m(torch.randn(1, 4, 1, 4, 4), torch.tensor([3.0]), torch.randn(1, 2, 12), torch.ones(1, 2, dtype=torch.bool), torch.randn(1, 6))
    assert torch.count_nonzero(out) == 0  # adaLN-Zero: the untrained model is the zero field
    for name in DIT_SIZES:
        with torch.device("meta"):
            assert sum(p.numel() for p in build_dit(name).parameters()) > 0
    with pytest.raises(ValueError, match="unknown DiT size"):
        build_dit("huge")


def test_bfloat16_forward_tracks_float32():
    m = random_model()
    x = torch.randn(1, 4, 3, 4, 4)
    args = (torch.tensor([300.0]), torch.randn(1, 5, 12), torch.ones(1, 5, dtype=torch.bool), torch.randn(1, 6))
    with torch.no_grad():
        full = m(x, *args)
        half = m.to(torch.bfloat16)(x, *args)  # inputs are cast to the weights' dtype
    assert half.dtype == torch.bfloat16
    assert ((half.float() - full).norm() / full.norm()).item() < 0.05


def test_absolute_positions_give_every_token_its_own_closed_form_code():
    table = sincos_positions((3, 4, 5), 32, torch.device("cpu"))  # frame 8 channels, row 12, column 12
    assert table.shape == (60, 32)
    assert len({tuple(row.tolist()) for row in table}) == 60  # no two grid cells alike
    t, h, w = 2, 1, 3
    row = table[(t * 4 + h) * 5 + w]
    assert torch.allclose(row[:4], torch.sin(t / 100.0 ** (torch.arange(4) / 4)))  # frame: sin then cos
    assert torch.allclose(row[14:20], torch.cos(h / 100.0 ** (torch.arange(6) / 6)))  # row: cos half
    assert torch.allclose(row[20:26], torch.sin(w / 100.0 ** (torch.arange(6) / 6)))  # column: sin half


def test_absolute_positions_add_only_the_table_to_the_video_tokens():
    plain = random_model()
    placed = build_dit(DiTConfig(**{**CFG.to_dict(), "absolute_positions": True}))
    placed.load_state_dict(plain.state_dict())  # no new parameters: the table is fixed
    x = torch.randn(2, 4, 2, 4, 6)  # patch (1, 2, 2): a 2×2×3 token grid
    args = (torch.tensor([900.0, 20.0]), torch.randn(2, 3, 12), torch.ones(2, 3, dtype=torch.bool), torch.randn(2, 6))
    table = sincos_positions((2, 2, 3), 32, torch.device("cpu"))  # (N, D)
    embed = plain.img_in.forward
    with torch.no_grad():
        out = placed(x, *args)
        assert not torch.allclose(out, plain(x, *args), atol=1e-3)
        plain.img_in.forward = lambda latents: embed(latents) + table  # the same sum, by hand
        assert torch.allclose(out, plain(x, *args), atol=1e-5)
