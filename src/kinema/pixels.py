"""Video pixels and the models' range, both ways: what goes into the VAE and what comes out of it.

    x = to_model_range(frames)        # (N, T, H, W, 3) uint8 -> (N, 3, T, H, W) float in [−1, 1]
    frames = from_model_range(x)      # and back, clamped and rounded

The VAE (like the reference's) reads and writes RGB in [−1, 1], channels first. Training (the clips
the VAE trains on and the DiT's latent cache) and inference (the pipeline's decoded videos, the toy
world's probes) convert through these two functions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_model_range(video: np.ndarray) -> Tensor:
    """(N, T, H, W, 3) or (T, H, W, 3) uint8 -> (N, 3, T, H, W) float in [−1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(video))
    if x.ndim == 4:
        x = x[None]
    return x.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def from_model_range(video: Tensor) -> np.ndarray:
    """(N, 3, T, H, W) float in [−1, 1] -> (N, T, H, W, 3) uint8 (clamped)."""
    x = video.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()
