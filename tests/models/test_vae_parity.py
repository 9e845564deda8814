"""The VAE equals diffusers' AutoencoderKLHunyuanVideo with the same random weights, tiled or not,
and official-layout and diffusers-layout checkpoints of the same weights give the same model."""

import json

import pytest
import torch

from kinema.models.checkpoints import load_vae
from kinema.models.tiling import TilingConfig
from kinema.models.vae import CausalVAE, VAEConfig
from kinema.models.vae_convert import (
    vae_config_from_diffusers,
    vae_config_from_official,
    vae_config_to_diffusers,
    vae_state_from_diffusers,
    vae_state_from_official,
    vae_state_to_diffusers,
)

diffusers = pytest.importorskip("diffusers")

TINY = VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb every parameter (GroupNorm's ones and zeros included): zero-initialised layers hide mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.fixture(scope="module")
def pair() -> tuple[CausalVAE, torch.nn.Module]:
    ref = diffusers.AutoencoderKLHunyuanVideo(**vae_config_to_diffusers(TINY)).eval()
    randomize(ref)
    ours = CausalVAE(TINY).eval()
    ours.load_state_dict(vae_state_from_diffusers(ref.state_dict()), strict=True)
    return ours, ref


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    tol = 1e-4 * ref.abs().max().item()
    diff = (ours - ref).abs().max().item()
    assert diff <= tol, f"max abs diff {diff:.3g} > {tol:.3g}"


def untiled(ours: CausalVAE, ref: torch.nn.Module) -> None:
    ours.tiling = None
    ref.disable_tiling()
    # diffusers cuts videos longer than 16 frames into 16-frame pieces unless told not to.
    ref.use_framewise_encoding = ref.use_framewise_decoding = False


def tiled(ours: CausalVAE, ref: torch.nn.Module, tiling: TilingConfig) -> None:
    ours.tiling = tiling
    ref.enable_tiling(
        tile_sample_min_height=tiling.tile_size, tile_sample_min_width=tiling.tile_size,
        tile_sample_min_num_frames=tiling.tile_frames, tile_sample_stride_height=tiling.tile_stride,
        tile_sample_stride_width=tiling.tile_stride, tile_sample_stride_num_frames=tiling.tile_frame_stride,
    )
    ref.use_framewise_encoding = ref.use_framewise_decoding = True


def compare(ours: CausalVAE, ref: torch.nn.Module, frames: int, height: int, width: int, batch: int = 2) -> None:
    g = torch.Generator().manual_seed(frames)
    video = torch.randn(batch, 3, frames, height, width, generator=g)
    with torch.no_grad():
        expected = ref.encode(video).latent_dist
        got = ours.encode(video)
        assert_close(got.mean, expected.mean)
        assert_close(got.logvar, expected.logvar)
        latents = torch.randn(expected.mean.shape, generator=g)
        assert_close(ours.decode(latents), ref.decode(latents).sample)


@pytest.mark.parametrize("frames", [1, 9, 17])
def test_matches_diffusers_untiled(pair, frames):
    ours, ref = pair
    untiled(ours, ref)
    compare(ours, ref, frames, 24, 40)


# Tile plans chosen so both place the same tiles: diffusers also appends tiles lying wholly inside the
# previous one, which kinema skips (see kinema.models.tiling). 32-px tiles every 24 px: 72 px = 9 latents
# -> tiles at 0, 3, 6; 48 px -> 0, 3.
@pytest.mark.parametrize(
    "frames,height,tiling",
    [
        (1, 72, TilingConfig(32, 24, 20, 16)),  # spatial only
        (9, 48, TilingConfig(32, 24, 20, 16)),
        (17, 72, TilingConfig(32, 24, 20, 16)),
        (25, 48, TilingConfig(32, 24, 20, 16)),  # + time: frames 0–20, 16–24; latents 0–5, 4–6
        (33, 48, TilingConfig(32, 24, 16, 12)),  # + time: frames 0–16, 12–28, 24–32; latents 0–4, 3–7, 6–8
    ],
)
def test_matches_diffusers_tiled(pair, frames, height, tiling):
    ours, ref = pair
    tiled(ours, ref, tiling)
    try:
        compare(ours, ref, frames, height, 48, batch=1)
    finally:
        untiled(ours, ref)


def test_decode_matches_diffusers_on_small_latents():
    """Latents of std ≈ 0.03, as an encoder with small random weights makes them, decode as diffusers' do.

    Each decoder channel is then nearly its conv bias: a group's spread is small against its mean, which
    torch's channels-last CPU GroupNorm kernel got wrong by 1.6e-3 of the video here (see vae.GroupNorm).
    """
    cfg = VAEConfig(latent_channels=8, block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8)
    ref = diffusers.AutoencoderKLHunyuanVideo(**vae_config_to_diffusers(cfg)).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    ours = CausalVAE(cfg).eval()
    ours.load_state_dict(vae_state_from_diffusers(ref.state_dict()), strict=True)
    untiled(ours, ref)
    video = torch.rand(2, 3, 13, 24, 40, generator=g) * 2 - 1
    with torch.no_grad():
        expected = ref.encode(video).latent_dist
        assert_close(ours.encode(video).mean, expected.mean)
        small = expected.mean
        assert 0.01 < small.std().item() < 0.05
        assert_close(ours.decode(small), ref.decode(small).sample)
        unit = torch.randn(small.shape, generator=g)
        assert_close(ours.decode(unit), ref.decode(unit).sample)


def test_sampling_matches_diffusers(pair):
    ours, ref = pair
    untiled(ours, ref)
    video = torch.randn(1, 3, 5, 16, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref.encode(video).latent_dist.sample(generator=torch.Generator().manual_seed(5))
        got = ours.encode(video).sample(torch.Generator().manual_seed(5))
    assert_close(got, expected)


def test_config_and_state_round_trips(pair):
    ours, ref = pair
    assert vae_config_from_diffusers(dict(ref.config)) == TINY
    assert vae_config_from_diffusers({}) == VAEConfig()  # diffusers' defaults are the released model
    theirs = ref.state_dict()
    back = vae_state_to_diffusers(vae_state_from_diffusers(theirs))
    assert back.keys() == theirs.keys() and all(torch.equal(back[k], theirs[k]) for k in theirs)
    with pytest.raises(ValueError, match="act_fn='gelu'"):
        vae_config_from_diffusers({"act_fn": "gelu"})
    with pytest.raises(ValueError, match="down_block_types"):
        vae_config_from_diffusers({"down_block_types": ["DownEncoderBlock2D"] * 4})


def official_config(cfg: VAEConfig) -> dict:
    """The official AutoencoderKLCausal3D config.json of an architecture (as shipped beside pytorch_model.pt)."""
    n = len(cfg.block_out_channels)
    return {
        "_class_name": "AutoencoderKLCausal3D", "_diffusers_version": "0.4.2", "act_fn": "silu",
        "block_out_channels": list(cfg.block_out_channels), "down_block_types": ["DownEncoderBlockCausal3D"] * n,
        "in_channels": 3, "latent_channels": cfg.latent_channels, "layers_per_block": cfg.layers_per_block,
        "norm_num_groups": cfg.norm_num_groups, "out_channels": 3, "sample_size": 256, "sample_tsize": 64,
        "up_block_types": ["UpDecoderBlockCausal3D"] * n, "scaling_factor": cfg.scaling_factor,
        "time_compression_ratio": 4, "mid_block_add_attention": True,
    }


def test_official_and_diffusers_layouts_load_identical_models(pair, tmp_path):
    _, ref = pair
    diffusers_dir, official_dir = tmp_path / "diffusers", tmp_path / "official"
    ref.save_pretrained(diffusers_dir, safe_serialization=True)
    official_dir.mkdir()
    (official_dir / "config.json").write_text(json.dumps(official_config(TINY)))
    # A training checkpoint: VAE weights under "vae." beside loss weights, wrapped in "state_dict".
    state = {f"vae.{k}": v.clone() for k, v in ref.state_dict().items()}
    state["loss.discriminator.conv.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, official_dir / "pytorch_model.pt")

    from_diffusers, from_official = load_vae(diffusers_dir), load_vae(official_dir)
    assert from_diffusers.cfg == from_official.cfg == TINY
    a, b = from_diffusers.state_dict(), from_official.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    video = torch.randn(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(from_diffusers.encode(video).mean, from_official.encode(video).mean)


def test_official_conversion_functions():
    assert vae_config_from_official(official_config(VAEConfig())) == VAEConfig()
    with pytest.raises(ValueError, match="lacks \\['block_out_channels'"):
        vae_config_from_official({"latent_channels": 16, "layers_per_block": 2})
    plain = {"encoder.conv_in.conv.weight": torch.ones(1)}
    assert vae_state_from_official(plain).keys() == plain.keys()  # no prefix: names as they are
    prefixed = {"vae.encoder.conv_in.conv.weight": torch.ones(1), "loss.logvar": torch.zeros(1)}
    assert list(vae_state_from_official(prefixed)) == ["encoder.conv_in.conv.weight"]
