"""The causal VAE on its own: shapes, sizes, causality, the posterior, input errors, training."""

import pytest
import torch
from torch import nn

from kinema.models.vae import VAE_SIZES, CausalVAE, DiagonalGaussian, GroupNorm, VAEConfig, build_vae

TINY = VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)


def randomized(cfg: VAEConfig = TINY, seed: int = 0) -> CausalVAE:
    """A VAE with every parameter random: zero-initialised layers hide mistakes."""
    torch.manual_seed(seed)
    model = CausalVAE(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("frames,height,width", [(1, 16, 16), (1, 24, 40), (5, 16, 24), (9, 32, 16), (17, 8, 8)])
def test_shapes_images_and_videos(frames, height, width):
    model = randomized()
    video = torch.randn(2, 3, frames, height, width)
    with torch.no_grad():
        posterior = model.encode(video)
        k = (frames - 1) // 4
        assert posterior.mean.shape == (2, 4, k + 1, height // 8, width // 8)  # 4k+1 frames -> k+1, 8× space
        assert posterior.logvar.shape == posterior.mean.shape
        assert TINY.latent_size(frames, height, width) == posterior.mean.shape[2:]
        assert model.decode(posterior.mode()).shape == video.shape
        out = model(video, generator=torch.Generator().manual_seed(0))
    assert out.reconstruction.shape == video.shape
    assert out.reconstruction.is_contiguous() and posterior.mean.is_contiguous()


def test_hunyuan_parameter_count_on_meta_device():
    with torch.device("meta"):
        model = build_vae("hunyuan")
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 246_478_803
    assert model.cfg.scaling_factor == 0.476986 and model.cfg.latent_channels == 16


@pytest.mark.parametrize("name", sorted(VAE_SIZES))
def test_every_named_size_builds(name):
    with torch.device("meta"):
        model = build_vae(name)
    assert model.cfg == VAE_SIZES[name]()
    assert model.cfg.spatial_compression_ratio == (4 if name == "toy" else 8) and model.cfg.temporal_compression_ratio == 4


def test_unknown_size_and_bad_configs_are_errors_for_people():
    with pytest.raises(ValueError, match="unknown VAE size 'huge'"):
        build_vae("huge")
    with pytest.raises(ValueError, match="norm_num_groups 3 must divide"):
        VAEConfig(block_out_channels=(8, 8, 8, 8), norm_num_groups=3)
    with pytest.raises(ValueError, match="temporal_compression_ratio must be a power of two"):
        VAEConfig(temporal_compression_ratio=3)
    assert VAEConfig(block_out_channels=[8, 8, 8, 8], norm_num_groups=4).block_out_channels == (8, 8, 8, 8)  # from JSON


def test_group_norm_on_channels_last_input_is_accurate():
    """Groups whose mean is large against their spread (as after a conv on small inputs, which leaves
    mostly its bias): the float64 answer within float32 rounding in both memory layouts, gradients
    included. torch's own channels-last CPU kernel is off by 40% of the output here."""
    g = torch.Generator().manual_seed(0)
    x = 1 + 1e-3 * (torch.randn(2, 32, 1, 1, 1, generator=g) + torch.randn(2, 32, 9, 24, 40, generator=g))
    norm = GroupNorm(8, 32, eps=1e-6)
    with torch.no_grad():
        norm.weight.add_(torch.randn(32, generator=g))
        norm.bias.add_(torch.randn(32, generator=g))
    exact = nn.GroupNorm(8, 32, eps=1e-6).double()
    exact.load_state_dict(norm.state_dict())
    x64 = x.double().requires_grad_()
    y64 = exact(x64)
    grad_out = torch.randn(y64.shape, generator=g, dtype=torch.float64)
    y64.backward(grad_out)
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        norm.zero_grad()
        x32 = x.contiguous(memory_format=layout).detach().requires_grad_()
        y32 = norm(x32)
        y32.backward(grad_out.float())
        assert y32.is_contiguous(memory_format=layout)
        assert (y32.double() - y64).abs().max() <= 1e-4 * y64.abs().max(), layout
        assert (x32.grad.double() - x64.grad).abs().max() <= 1e-4 * x64.grad.abs().max(), layout
        assert (norm.weight.grad.double() - exact.weight.grad).abs().max() <= 1e-3 * exact.weight.grad.abs().max()


def test_bad_inputs_say_what_was_expected():
    model = randomized()
    with pytest.raises(ValueError, match="4k\\+1 frames and height/width divisible by 8, got 8×16×16"):
        model.encode(torch.zeros(1, 3, 8, 16, 16))
    with pytest.raises(ValueError, match="got 5×12×16"):
        model.encode(torch.zeros(1, 3, 5, 12, 16))
    with pytest.raises(ValueError, match="video must be \\(batch, 3, frames, height, width\\)"):
        model.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match="latents must be \\(batch, 4, frames, height, width\\)"):
        model.decode(torch.zeros(1, 16, 2, 2, 2))


class _FrozenStatsGroupNorm(nn.Module):
    """GroupNorm that records its statistics on one input and reuses them on the next ones."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        g = self.norm.num_groups
        grouped = x.reshape(b, g, -1)
        if self.stats is None:
            var, mean = torch.var_mean(grouped, dim=-1, unbiased=False, keepdim=True)
            self.stats = (mean, var)
        mean, var = self.stats
        y = ((grouped - mean) / torch.sqrt(var + self.norm.eps)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.ndim - 2)
        return y * self.norm.weight.reshape(shape) + self.norm.bias.reshape(shape)


def _freeze_norm_statistics(model: nn.Module) -> None:
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.GroupNorm):
                setattr(module, name, _FrozenStatsGroupNorm(child))


def _assert_causal(model: CausalVAE, k: int) -> None:
    """Perturbing frames ≥ k (latent frames ≥ k/4 when decoding) leaves everything before unchanged."""
    _freeze_norm_statistics(model)  # statistics from the clean input, reused for the perturbed one
    g = torch.Generator().manual_seed(1)
    video = torch.randn(1, 3, 17, 16, 24, generator=g)
    perturbed = video.clone()
    perturbed[:, :, k:] += torch.randn(perturbed[:, :, k:].shape, generator=g)
    with torch.no_grad():
        a, b = model.encode(video).mean, model.encode(perturbed).mean
        n = (k - 1) // 4 + 1  # latent j sees frames ≤ 4j
        assert torch.equal(a[:, :, :n], b[:, :, :n]), "encoder: a later frame changed an earlier latent"
        assert not torch.equal(a[:, :, n:], b[:, :, n:])
        m = 2  # perturb latents ≥ 2: frames 0..4 come from latents 0 and 1 only
        z2 = a.clone()
        z2[:, :, m:] += 1.0
        x, y = model.decode(a), model.decode(z2)
    last = 4 * (m - 1)
    assert torch.equal(x[:, :, : last + 1], y[:, :, : last + 1]), "decoder: a later latent changed an earlier frame"
    assert not torch.equal(x[:, :, last + 1 :], y[:, :, last + 1 :])


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_causality_with_normalisation_statistics_fixed(k):
    """The wiring is causal: convolutions, down/upsampling and mid-block attention never look ahead.

    GroupNorm statistics span every frame (as in the reference, whose weights kinema loads), so they
    are recorded on the clean video and held fixed; any other path from the future would show.
    """
    _assert_causal(randomized(), k)


def test_causality_check_catches_a_conv_that_looks_ahead():
    model = randomized()
    model.encoder.down_blocks[0].resnets[0].conv1.padding = (1, 1, 1, 1, 1, 1)  # symmetric in time
    model.decoder.up_blocks[3].resnets[0].conv2.padding = (1, 1, 1, 1, 1, 1)
    with pytest.raises(AssertionError, match="changed an earlier"):
        _assert_causal(model, 5)


def test_posterior_closed_forms():
    mean = torch.tensor([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1, 1).repeat(2, 1, 1, 2, 2)
    logvar = torch.tensor([0.0, 1.0, -2.0]).reshape(1, 3, 1, 1, 1).expand_as(mean)
    posterior = DiagonalGaussian.from_moments(torch.cat([mean, logvar], dim=1))
    assert torch.equal(posterior.mode(), mean)
    # KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − log σ²) per element, summed over all 3·1·2·2 elements.
    per_channel = [0.5 * (m**2 + torch.tensor(v).exp() - 1 - v) for m, v in [(0.5, 0.0), (-1.0, 1.0), (2.0, -2.0)]]
    expected = 4 * sum(float(x) for x in per_channel)
    assert torch.allclose(posterior.kl(), torch.tensor([expected, expected]), rtol=1e-6)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    got = posterior.sample(torch.Generator().manual_seed(7))
    assert torch.allclose(got, mean + torch.exp(0.5 * logvar) * eps)
    huge = DiagonalGaussian.from_moments(torch.cat([mean, torch.full_like(mean, 100.0)], dim=1))
    assert huge.logvar.max() == 20.0  # clamped as in the reference


def test_training_step_reaches_every_parameter():
    model = randomized(VAE_SIZES["toy"]()).train()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    out = model(video, generator=torch.Generator().manual_seed(0))
    loss = (out.reconstruction - video).abs().mean() + 1e-3 * out.posterior.kl().mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    # The key bias is the one parameter attention ignores (it shifts every score of a query equally).
    assert all(g.abs().sum() > 0 for n, g in grads.items() if not n.endswith("to_k.bias"))
