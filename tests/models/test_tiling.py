"""Tiled VAE inference: tile placement, cross-fades, tiled == untiled where the math says so, tile-bounded work."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kinema.models.tiling import TilingConfig, _spatial_plan, _temporal_plan, tiled_decode, tiled_encode
from kinema.models.vae import CausalVAE, VAEConfig

TINY = VAEConfig(latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4)


def encode_local(video: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder with no context: latent (j, y, x) is pixel (4j, 8y, 8x) (frame 0 alone for j = 0)."""
    return video[:, :, ::4, ::8, ::8] * 2.0 + 1.0


def decode_local(latents: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder with no context: frame 0 from latent 0, frames 4j−3..4j from latent j, 8× nearest."""
    t = latents.shape[2]
    index = torch.arange(t).repeat_interleave(4)[3:]
    return latents.index_select(2, index).repeat_interleave(8, dim=3).repeat_interleave(8, dim=4) - 0.5


def _tiling(size: int, stride: int, frames: int, frame_stride: int) -> TilingConfig:
    return TilingConfig(8 * size, 8 * min(stride, size), 4 * frames, 4 * min(frame_stride, frames))


tilings = st.builds(_tiling, st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(tiling=tilings, k=st.integers(0, 6), h=st.integers(1, 7), w=st.integers(1, 7))
def test_tiled_equals_untiled_for_maps_without_context(tiling, k, h, w):
    """With no context across tiles, overlaps agree and every cross-fade is exact: any misplaced tile shows."""
    g = torch.Generator().manual_seed(k * 100 + h * 10 + w)
    video = torch.randn(2, 3, 4 * k + 1, 8 * h, 8 * w, generator=g)
    assert torch.allclose(tiled_encode(encode_local, video, tiling, 8, 4), encode_local(video), atol=1e-6)
    latents = torch.randn(2, 4, k + 1, h, w, generator=g)
    assert torch.allclose(tiled_decode(decode_local, latents, tiling, 8, 4), decode_local(latents), atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), size=st.integers(1, 12), stride=st.integers(1, 12), temporal=st.booleans())
def test_tile_plans_partition_the_output(n, size, stride, temporal):
    stride = min(stride, size)
    plan = (_temporal_plan if temporal else _spatial_plan)(n, size, stride, 1)
    n_out = n
    covered = [i for tile in plan for i in range(tile.dst, tile.dst + tile.keep)]
    assert covered == list(range(n_out))  # kept parts tile the output exactly once, in order
    ends = [min(tile.src.stop, n) for tile in plan]
    assert ends[-1] == n and all(e < n for e in ends[:-1])  # only the last tile reaches the end
    blend = size - stride
    for tile in plan[1:]:  # every later tile is longer than the overlap it fades in
        length = min(tile.src.stop, n) - tile.src.start - int(tile.drop_first)
        assert length > blend


def test_cross_fade_is_linear_from_the_earlier_tile_to_the_later():
    """Tile k returns the constant k: the overlap ramps k−1 → k in steps of 1/overlap, as in the reference."""
    starts = []

    def constant_per_tile(tile: torch.Tensor) -> torch.Tensor:
        starts.append(tile)
        return torch.full((1, 1, tile.shape[2], 8 * tile.shape[3], 8 * tile.shape[4]), float(len(starts) - 1))

    out = tiled_decode(constant_per_tile, torch.zeros(1, 4, 1, 1, 7), TilingConfig(32, 24, 64, 48), 8, 4)
    row = out[0, 0, 0, 0]  # three tiles along width: pixels 0–31, 24–55 (kept from 24), 48–55
    assert len(starts) == 2  # 7 latents: tiles at 0 and 3; a third at 6 would lie inside the second
    ramp = torch.arange(8) / 8
    assert torch.equal(row[:24], torch.zeros(24))
    assert torch.allclose(row[24:32], ramp)
    assert torch.equal(row[32:], torch.ones(24))


def test_work_per_tile_is_bounded_by_the_tile_not_the_video():
    seen = []

    def recording(tile: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(tile.shape[2:]))
        return decode_local(tile)

    tiling = TilingConfig(32, 24, 16, 12)
    for t, h, w in [(5, 4, 4), (9, 12, 8), (13, 16, 16)]:
        seen.clear()
        tiled_decode(recording, torch.zeros(1, 4, t, h, w), tiling, 8, 4)
        assert max(seen) <= (16 // 4 + 1, 32 // 8, 32 // 8)
    assert len(seen) == 4 * 5 * 5  # 13 latent frames: tiles at 0, 3, 6, 9; 16 latents: 0, 3, ..., 12


def test_bad_tiling_is_an_error_for_people():
    with pytest.raises(ValueError, match="tile_stride must be in \\(0, tile_size=256\\]"):
        TilingConfig(256, 300)
    with pytest.raises(ValueError, match="tile_frame_stride must be"):
        TilingConfig(tile_frames=16, tile_frame_stride=0)
    with pytest.raises(ValueError, match="tile_size=100 must be a multiple of the VAE's compression ratio 8"):
        tiled_decode(decode_local, torch.zeros(1, 4, 2, 4, 4), TilingConfig(100, 96), 8, 4)


@pytest.fixture(scope="module")
def model() -> CausalVAE:
    # float64: these equalities are exact in real arithmetic, and in float32 a low-variance GroupNorm
    # group can amplify rounding (different reduction sizes) to ~1e-3.
    torch.manual_seed(0)
    vae = CausalVAE(TINY).eval().double()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return vae


def _both(model: CausalVAE, tiling: TilingConfig, fn_name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        model.tiling = None
        whole = getattr(model, fn_name)(x)
        model.tiling = tiling
        try:
            parts = getattr(model, fn_name)(x)
        finally:
            model.tiling = None
    if fn_name == "encode":
        return parts.mean, whole.mean
    return parts, whole


def assert_close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-10) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max() <= rel * b.abs().max()


def test_vae_tiled_equals_untiled_on_a_video_uniform_in_space(model):
    """Every spatial tile of a spatially uniform video sees what the whole video sees (statistics included)."""
    video = torch.randn(1, 3, 5, 1, 1, dtype=torch.float64).expand(1, 3, 5, 40, 48).contiguous()
    assert_close(*_both(model, TilingConfig(32, 24), "encode", video))
    latents = torch.randn(1, 4, 2, 1, 1, dtype=torch.float64).expand(1, 4, 2, 5, 6).contiguous()
    assert_close(*_both(model, TilingConfig(32, 24), "decode", latents))


def test_vae_tiled_equals_untiled_on_a_still_video(model):
    """Every temporal tile of a still video sees what the whole video sees (causal padding replicates frame 0)."""
    video = torch.randn(1, 3, 1, 8, 16, dtype=torch.float64).expand(1, 3, 17, 8, 16).contiguous()
    assert_close(*_both(model, TilingConfig(256, 192, 8, 4), "encode", video))
    latents = torch.randn(1, 4, 1, 1, 2, dtype=torch.float64).expand(1, 4, 5, 1, 2).contiguous()
    assert_close(*_both(model, TilingConfig(256, 192, 8, 4), "decode", latents))


def test_vae_one_tile_covering_everything_is_the_untiled_model(model):
    video = torch.randn(1, 3, 9, 16, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    parts, whole = _both(model, TilingConfig(), "encode", video[:, :, :5, :8])  # 256 px, 64+1 frames: one tile
    assert torch.equal(parts, whole)
