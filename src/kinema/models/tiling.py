"""Spatio-temporal tiled VAE encode/decode: peak memory set by the tile, not by the video.

The video (or latent) is cut into overlapping tiles in time and space; each tile goes through the
model alone, and each overlap is merged by a linear cross-fade from the earlier tile to the later
one. Temporal tiles carry one extra leading frame (the causal context): tile k > 0 starts on the
last frame of tile k−1's stride and drops its first output frame.

Same placement, cross-fade weights and merge order as the reference (Tencent's AutoencoderKLCausal3D,
diffusers' AutoencoderKLHunyuanVideo), so with equal tile settings the results agree. Departures:
- results stream into one preallocated output (the cross-fade happens in place there) and only the
  strips a later tile blends with are kept, instead of holding every decoded tile until the end;
- a tile lying wholly inside the previous one (the reference appends one whenever the video is a
  little longer than a tile, e.g. 65 frames with 64+1-frame tiles) is skipped; the previous tile
  then contributes up to the end. The reference's extra tile only re-blends frames with less context.

Shape legend: B batch, C channels, T frames, H height, W width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class TilingConfig:
    """Tile sizes and strides in video units (pixels, frames); latent tiles are these / the compression.

    Defaults are the reference's: 256-pixel tiles every 192 pixels, 64(+1)-frame tiles every 48 frames
    (16(+1) latent frames every 12): 25% overlap.
    """

    tile_size: int = 256
    tile_stride: int = 192
    tile_frames: int = 64
    tile_frame_stride: int = 48

    def __post_init__(self) -> None:
        if not 0 < self.tile_stride <= self.tile_size:
            raise ValueError(f"tile_stride must be in (0, tile_size={self.tile_size}], got {self.tile_stride}")
        if not 0 < self.tile_frame_stride <= self.tile_frames:
            raise ValueError(
                f"tile_frame_stride must be in (0, tile_frames={self.tile_frames}], got {self.tile_frame_stride}"
            )

    def check(self, spatial_ratio: int, temporal_ratio: int) -> None:
        """Raise unless every size and stride is a whole number of latent elements."""
        spatial = {"tile_size": self.tile_size, "tile_stride": self.tile_stride}
        temporal = {"tile_frames": self.tile_frames, "tile_frame_stride": self.tile_frame_stride}
        for names, ratio in ((spatial, spatial_ratio), (temporal, temporal_ratio)):
            for name, value in names.items():
                if value % ratio:
                    raise ValueError(f"{name}={value} must be a multiple of the VAE's compression ratio {ratio}")


@dataclass(frozen=True)
class _Tile:
    """One tile along one axis."""

    src: slice  # input elements the tile reads
    dst: int  # output index of the tile's first kept element
    keep: int  # how many of its leading output elements are final (the rest only cross-fade into the next tile)
    drop_first: bool  # temporal tiles after the first: the first output element is context only


def _spatial_plan(n_in: int, size: int, stride: int, scale: float) -> list[_Tile]:
    """Tiles covering n_in input elements; output = input × scale (8 to decode, 1/8 to encode)."""
    starts = [0]
    while starts[-1] + size < n_in:  # the last tile reaches the end: no tile wholly inside another
        starts.append(starts[-1] + stride)
    n_out = int(n_in * scale)
    tiles = []
    for i, s in enumerate(starts):
        last = i == len(starts) - 1
        dst = int(s * scale)
        tiles.append(_Tile(slice(s, s + size), dst, n_out - dst if last else int(stride * scale), False))
    return tiles


def _temporal_plan(n_in: int, size: int, stride: int, scale: float) -> list[_Tile]:
    """Tiles of size+1 elements (one leading causal-context element) over n_in = size·m+1 elements.

    The context element's output is dropped for every tile but the first, so tile k's kept output
    starts right after tile k−1's stride. Output length = (n_in − 1) × scale + 1.
    """
    starts = [0]
    while starts[-1] + size < n_in - 1:
        starts.append(starts[-1] + stride)
    n_out = int((n_in - 1) * scale) + 1
    tiles = []
    for k, s in enumerate(starts):
        last = k == len(starts) - 1
        dst = 0 if k == 0 else int(s * scale) + 1
        keep = n_out - dst if last else int(stride * scale) + (1 if k == 0 else 0)
        tiles.append(_Tile(slice(s, s + size + 1), dst, keep, k > 0))
    return tiles


def _ramp(n: int, dim: int, like: Tensor) -> Tensor:
    """Cross-fade weights y/n for y = 0..n−1, shaped to broadcast along `dim` of a 5D tensor."""
    shape = [1] * 5
    shape[dim] = n
    return (torch.arange(n, dtype=torch.float64) / n).to(device=like.device, dtype=like.dtype).reshape(shape)


def _blend_into(tile: Tensor, previous: Tensor, dim: int) -> None:
    """Cross-fade the start of `tile` from the end of `previous` along `dim`, in place.

    tile[y] = previous[−n + y] · (1 − y/n) + tile[y] · y/n, n = min of the two lengths (as in the reference).
    """
    n = min(tile.shape[dim], previous.shape[dim])
    if n == 0:
        return
    w = _ramp(n, dim, tile)
    head = tile.narrow(dim, 0, n)
    head.mul_(w).add_(previous.narrow(dim, previous.shape[dim] - n, n) * (1 - w))


def _run_tiled(
    fn: Callable[[Tensor], Tensor], x: Tensor, times: list[_Tile], rows: list[_Tile], cols: list[_Tile],
    blend_t: int, blend_hw: int, out_frames: int, out_height: int, out_width: int,
) -> Tensor:
    """Apply `fn` tile by tile and merge into one output, cross-fading overlaps.

    Merge order as in the reference: within a temporal tile, each spatial tile first blends with
    the tile above, then with the tile to its left (both as already blended); whole temporal tiles
    then blend with the previous temporal tile. Only the strips a later tile reads are kept.
    """
    out: Tensor | None = None
    for k, tt in enumerate(times):
        above: list[Tensor | None] = [None] * len(cols)  # bottom strip of the tile above, per column
        for i, rt in enumerate(rows):
            left: Tensor | None = None  # right strip of the tile to the left
            for j, ct in enumerate(cols):
                y = fn(x[:, :, tt.src, rt.src, ct.src])  # (B, C, t, h, w)
                if out is None:
                    out = y.new_empty(y.shape[0], y.shape[1], out_frames, out_height, out_width)
                if tt.drop_first:
                    y = y[:, :, 1:]
                if above[j] is not None:
                    _blend_into(y, above[j], dim=3)
                if left is not None:
                    _blend_into(y, left, dim=4)
                if i + 1 < len(rows):
                    above[j] = y[:, :, :, rt.keep : rt.keep + blend_hw].clone()
                if j + 1 < len(cols):
                    left = y[:, :, :, :, ct.keep : ct.keep + blend_hw].clone()
                # Write every frame (the tail is cross-faded by the next temporal tile), kept rows/columns only.
                y = y[:, :, :, : rt.keep, : ct.keep]
                frames = min(y.shape[2], out_frames - tt.dst)
                target = out[:, :, tt.dst : tt.dst + frames, rt.dst : rt.dst + rt.keep, ct.dst : ct.dst + ct.keep]
                y = y[:, :, :frames]
                if k > 0 and blend_t > 0:
                    n = min(blend_t, frames)
                    w = _ramp(n, 2, y)
                    target[:, :, :n].mul_(1 - w).add_(y[:, :, :n] * w)
                    target[:, :, n:].copy_(y[:, :, n:])
                else:
                    target.copy_(y)
    assert out is not None
    return out


def tiled_encode(
    encode: Callable[[Tensor], Tensor], video: Tensor, tiling: TilingConfig, spatial_ratio: int, temporal_ratio: int
) -> Tensor:
    """Encode (B, C, T, H, W) video tile by tile into (B, C', (T−1)/r_t + 1, H/r_s, W/r_s).

    Args:
        encode: maps a video tile to its latent tile (the VAE's encoder + quant_conv).
        video: frames 4k+1 (r_t·k+1) and H, W multiples of r_s.
    """
    tiling.check(spatial_ratio, temporal_ratio)
    _, _, t, h, w = video.shape
    s, ts = 1 / spatial_ratio, 1 / temporal_ratio
    times = _temporal_plan(t, tiling.tile_frames, tiling.tile_frame_stride, ts)
    rows = _spatial_plan(h, tiling.tile_size, tiling.tile_stride, s)
    cols = _spatial_plan(w, tiling.tile_size, tiling.tile_stride, s)
    blend_t = (tiling.tile_frames - tiling.tile_frame_stride) // temporal_ratio
    blend_hw = (tiling.tile_size - tiling.tile_stride) // spatial_ratio
    out_frames = (t - 1) // temporal_ratio + 1
    out_size = (out_frames, h // spatial_ratio, w // spatial_ratio)
    return _run_tiled(encode, video, times, rows, cols, blend_t, blend_hw, *out_size)


def tiled_decode(
    decode: Callable[[Tensor], Tensor], latents: Tensor, tiling: TilingConfig, spatial_ratio: int, temporal_ratio: int
) -> Tensor:
    """Decode (B, Z, T, H, W) latents tile by tile into (B, C, r_t·(T−1) + 1, r_s·H, r_s·W).

    Args:
        decode: maps a latent tile to its video tile (the VAE's post_quant_conv + decoder).
    """
    tiling.check(spatial_ratio, temporal_ratio)
    _, _, t, h, w = latents.shape
    size, stride = tiling.tile_size // spatial_ratio, tiling.tile_stride // spatial_ratio
    frames, frame_stride = tiling.tile_frames // temporal_ratio, tiling.tile_frame_stride // temporal_ratio
    times = _temporal_plan(t, frames, frame_stride, temporal_ratio)
    rows = _spatial_plan(h, size, stride, spatial_ratio)
    cols = _spatial_plan(w, size, stride, spatial_ratio)
    blend_t = tiling.tile_frames - tiling.tile_frame_stride
    blend_hw = tiling.tile_size - tiling.tile_stride
    out_frames = temporal_ratio * (t - 1) + 1
    out_size = (out_frames, spatial_ratio * h, spatial_ratio * w)
    return _run_tiled(decode, latents, times, rows, cols, blend_t, blend_hw, *out_size)
