"""Building blocks shared by the diffusion transformer: embeddings, modulation, MLPs, attention.

Shape legend: B batch, L tokens, D width, H heads, Dh head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, cos half first.

    Matches HunyuanVideo's `timestep_embedding` and diffusers' `Timesteps(flip_sin_to_cos=True,
    downscale_freq_shift=0)`. Always computed in fp32.

    Args:
        t: (B,) timesteps, e.g. in [0, 1000].
    Returns:
        (B, dim) fp32 embedding.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class MLPEmbedder(nn.Module):
    """Linear -> SiLU -> Linear: the reference's embedder for timesteps, guidance and pooled text."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, dim)
        self.out_layer = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class TimestepEmbedder(nn.Module):
    """Sinusoidal features followed by a two-layer MLP (`mlp.0`, `mlp.2` as in the official checkpoint)."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        emb = timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype)  # (B, freq_dim)
        return self.mlp(emb)  # (B, D)


class TextProjection(nn.Module):
    """Linear -> SiLU -> Linear projection of pooled text features (`linear_1`, `linear_2`)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class MLP(nn.Module):
    """fc1 -> activation -> fc2."""

    def __init__(self, dim: int, hidden: int, activation: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = activation
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Modulation(nn.Module):
    """adaLN: SiLU -> Linear producing `n` (B, D) vectors (shift/scale/gate ...) from the conditioning."""

    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.linear = nn.Linear(dim, n * dim)

    def forward(self, vec: Tensor) -> list[Tensor]:
        return list(self.linear(F.silu(vec))[:, None, :].chunk(self.n, dim=-1))  # n × (B, 1, D)


class QKNorm(nn.Module):
    """RMS normalisation of queries or keys over the head width, with a learned scale (`weight`)."""

    def __init__(self, head_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 like the reference, then return in the input dtype.
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation x·(1 + scale) + shift; shift/scale are (B, 1, D)."""
    return torch.addcmul(shift, x, 1 + scale)


def layer_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """LayerNorm without affine parameters over the last dimension."""
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


def attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:
    """Multi-head attention through torch's SDPA (flash / memory-efficient kernels where available).

    Args:
        q, k, v: (B, H, L, Dh).
        key_mask: (B, L) bool, True for keys that may be attended to, or None for all.
    Returns:
        (B, L, H·Dh).
    """
    mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, L)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, Dh)
    return out.transpose(1, 2).flatten(2)  # (B, L, H·Dh)


def split_qkv(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L, 3·H·Dh) fused projection -> three (B, H, L, Dh) tensors."""
    b, n, _ = qkv.shape
    q, k, v = qkv.view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)  # 3 × (B, H, L, Dh)
    return q, k, v
