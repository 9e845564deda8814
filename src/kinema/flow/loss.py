"""The flow-matching training loss."""

from __future__ import annotations

import torch
from torch import Tensor

from kinema.flow.path import interpolate, velocity_target


def flow_matching_loss(prediction: Tensor, x0: Tensor, noise: Tensor) -> Tensor:
    """Mean squared error between the predicted and the true velocity ε − x0 (Lipman et al. 2023, eq. 23)."""
    return torch.mean((prediction.float() - velocity_target(x0, noise).float()) ** 2)


def noisy_inputs(x0: Tensor, t: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Draw ε and return (x_t, ε) for a batch of clean samples x0 and times t (B,)."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return interpolate(x0, noise, t), noise
