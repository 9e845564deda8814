"""Sampling training times t in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from kinema.flow.path import time_shift


@dataclass(frozen=True)
class TimeSampler:
    """How training draws t: uniform or logit-normal (Esser et al. 2024, §3.1), then time-shifted.

    Attributes:
        kind: "uniform" or "logit_normal" (t = sigmoid(n), n ~ N(mean, std²)).
        mean, std: of the logit-normal's underlying normal.
        shift: time shift s applied after drawing (1 = none).
    """

    kind: Literal["uniform", "logit_normal"] = "logit_normal"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "logit_normal"):
            raise ValueError(f"TimeSampler.kind must be 'uniform' or 'logit_normal', got {self.kind!r}")
        if self.std <= 0 or self.shift <= 0:
            raise ValueError("TimeSampler.std and TimeSampler.shift must be positive")

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> Tensor:
        """Draw n times in (0, 1), shape (n,), fp32."""
        if self.kind == "uniform":
            t = torch.rand(n, generator=generator, device=device)
        else:
            t = torch.sigmoid(self.mean + self.std * torch.randn(n, generator=generator, device=device))
        return time_shift(t, self.shift)
