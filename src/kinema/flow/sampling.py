"""Solving the flow ODE from noise (t = 1) to data (t = 0): schedules, guidance, Euler.

The velocity field is any callable `velocity(x, t) -> v` with t a (B,) tensor in [0, 1]; the
pipeline builds it from the DiT, the text conditioning and the guidance mode.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from kinema.flow.path import time_shift

Velocity = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, Tensor], None]


def sigma_schedule(steps: int, shift: float = 1.0) -> Tensor:
    """Times t_0 = 1 > t_1 > ... > t_steps = 0: uniform in t, then time-shifted.

    Equals diffusers' FlowMatchEulerDiscreteScheduler(shift=s).set_timesteps(sigmas=linspace(1, 0, n+1)[:-1])
    as HunyuanVideoPipeline calls it (the scheduler's timesteps are these times × 1000).

    Returns:
        (steps + 1,) fp32.
    """
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be at least 1, got {steps}")
    return time_shift(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()


def euler(velocity: Velocity, noise: Tensor, sigmas: Tensor, callback: StepCallback | None = None) -> Tensor:
    """First-order Euler integration of dx/dt = v(x, t) along `sigmas` (HunyuanVideo §3.3).

    Args:
        velocity: v(x (B, ...), t (B,)) -> (B, ...).
        noise: x at t = sigmas[0] (usually 1): pure Gaussian noise.
        sigmas: (steps + 1,) decreasing times, see `sigma_schedule`.
        callback: called as callback(step, x) after every step.
    Returns:
        x at t = sigmas[-1] (usually 0): a sample.
    """
    x = noise
    for i in range(len(sigmas) - 1):
        t = sigmas[i].expand(x.shape[0]).to(x.device)
        x = x + (sigmas[i + 1] - sigmas[i]).item() * velocity(x, t).to(x.dtype)  # the Euler step
        if callback is not None:
            callback(i, x)
    return x


def classifier_free_guidance(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """v = v_uncond + s·(v_cond − v_uncond) (Ho & Salimans 2022); s = 1 is plain conditioning."""
    return v_uncond + scale * (v_cond - v_uncond)
