"""3D rotary position embedding over (time, height, width) latent patches, video tokens only.

HunyuanVideo splits each head's Dh channels into three groups (reference: 16, 56, 56 for Dh=128) that
rotate with the frame, row and column index of the patch; text tokens get no rotation. Channel pairs
are interleaved (x0, x1), (x2, x3), ... as in the reference and in diffusers.
"""

from __future__ import annotations

import torch
from torch import Tensor


def grid_positions(grid: tuple[int, int, int], device: torch.device | None = None) -> Tensor:
    """(3, T·H·W) fp32 frame, row and column index of every patch of a (T, H, W) grid, in t, h, w order."""
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0).flatten(1)


def rope_frequencies(
    grid: tuple[int, int, int], dims: tuple[int, int, int], theta: float, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """cos and sin tables for a (T, H, W) grid of patches, flattened in t, h, w order.

    Args:
        grid: number of patches along time, height, width.
        dims: rotary channels per axis (each even; their sum is the head width).
        theta: frequency base (reference: 256).
    Returns:
        cos, sin: (T·H·W, sum(dims)) fp32, each frequency repeated for its channel pair.
    """
    if any(d % 2 for d in dims):
        raise ValueError(f"rope dims must be even, got {dims}")
    positions = grid_positions(grid, device)  # (3, T·H·W)
    angles = []
    for pos, dim in zip(positions, dims):
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim)  # (dim/2,)
        angles.append(torch.outer(pos, freqs).repeat_interleave(2, dim=1))  # (N, dim)
    angle = torch.cat(angles, dim=1)  # (N, Dh)
    return angle.cos(), angle.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of `x` (B, H, N, Dh) by the (N, Dh) tables, in fp32."""
    xf = x.float()
    pairs = xf.unflatten(-1, (-1, 2))  # (B, H, N, Dh/2, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)  # (B, H, N, Dh)
    return (xf * cos + rotated * sin).to(x.dtype)
